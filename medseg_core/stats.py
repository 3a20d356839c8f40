"""Statistics a reviewer accepts, for the per-case tables of evaluation and of the variant x seed grids.

The rules, each implemented once here and used by every notebook:

* **Say the unit and resample at it.** Test cases (frames) of one video or patient are correlated, so an
  interval across cases is an interval across **clusters** (``cluster`` column: the video or the patient,
  :meth:`medseg_core.tasks.Task.case_cluster`). :func:`cluster_interval` averages each cluster first (every video
  or patient weighs once: the estimate is the mean of cluster means) and draws a **t-interval on the G cluster
  means with G - 1 degrees of freedom**, clipped to the metric's bounds. Why not a bootstrap: with the few
  clusters of a teaching kit (5-20 videos or patients) a percentile cluster bootstrap is too narrow (simulated
  through the kit's former function: 0.84 coverage at nominal 95 % with 5 patients); the t-interval on cluster
  means is exact for normal cluster means and, measured by ``tests/test_stats.py`` with clusters of unequal size,
  covers >= 0.93 at 3 to 20 clusters for normal and skewed (skewness 1) effects, alone and (0.96 measured) for a
  family of 4 comparisons with one reference; at skewness 1.4 it is 0.93 and at skewness 2 about 0.91-0.92 (4-5
  clusters). Below :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters no interval is given.
* **One family, one level.** :func:`paired_comparison` compares m variants with a reference on one metric: the
  family. Every interval of the family, over clusters and over seeds, is drawn at the family-wise level
  ``1 - (1 - confidence) / m`` (Bonferroni), and the family is named in the table (``family``) and in every
  sentence :func:`describe_comparisons` writes.
* **Detectable differences from the noncentral t.** :func:`detectable_difference` solves the power of the
  two-sided one-sample t-test on the G cluster differences (noncentral t, scipy) for the smallest mean difference
  detected with 80 % power, with the observed spread plugged in: a plug-in estimate, itself uncertain.
* **Few seeds: show each seed.** Across seeds, a t-interval is reported only from :data:`MIN_SEEDS_FOR_INTERVAL`
  seeds on (clipped to the metric's bounds); every table lists the per-seed values (``per_seed``).
* **Foreground and empty frames apart.** :func:`foreground_split` reports Dice/IoU on frames whose ground truth
  holds the class and, separately, false alarms on frames without it: the **mean per-seed rate** of empty frames
  with any predicted pixel, each seed's rate listed, and the "any seed alarms" rate only as a labelled secondary
  column (it grows with the number of seeds).

:func:`summarize` (mean, std and interval of any table) stays for plain descriptive tables.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .metrics import DISTANCE_METRICS, UNIT_INTERVAL_METRICS

__all__ = ["BOOKKEEPING_COLUMNS", "MIN_SEEDS_FOR_INTERVAL", "MIN_CLUSTERS_FOR_INTERVAL", "BOUNDED_METRICS", "summarize",
           "cluster_means", "cluster_interval", "family_confidence",
           "summarize_runs", "summary_table", "foreground_split", "detectable_difference", "detectable_effect_size", "paired_comparison",
           "paired_seed_effect", "describe_summary", "describe_comparisons", "describe_seed_effects"]

UNITS = ("seed", "case")
MIN_SEEDS_FOR_INTERVAL = 5  # fewer seeds: their values are listed, no t-interval is drawn from them
MIN_CLUSTERS_FOR_INTERVAL = 3  # fewer videos/patients: the spread of cluster means is one difference; no interval
BOUNDED_METRICS = (*UNIT_INTERVAL_METRICS, "false_alarm_rate")
POWER = 0.8  # power at which detectable differences are stated

BOOKKEEPING_COLUMNS = frozenset({"truth_pixels", "predicted_pixels", "seed", "parameters", "train_seconds", "epoch"})
"""Numeric columns of result tables (written by ``evaluate`` and ``run_grid``) that are not metrics."""


NON_NEGATIVE_METRICS = DISTANCE_METRICS  # distances: an interval of their mean stays at or above 0


def _bounds(metric: str) -> tuple[float, float] | None:
    """[0, 1] for a bounded metric, [-1, 1] for a difference of one, [0, inf) for a distance, None otherwise."""
    base = metric.removesuffix("_difference")
    difference = metric.endswith("_difference") or metric == "difference"
    if base in BOUNDED_METRICS:
        return (-1.0, 1.0) if difference else (0.0, 1.0)
    if base in NON_NEGATIVE_METRICS and not difference:
        return (0.0, float("inf"))
    return None


def family_confidence(confidence: float, comparisons: int) -> float:
    """Bonferroni level of each interval so that ``comparisons`` intervals hold together at ``confidence``."""
    return 1 - (1 - confidence) / max(comparisons, 1)


def cluster_means(values: Sequence[float] | np.ndarray,
                  clusters: Sequence[object] | np.ndarray | None = None) -> np.ndarray:
    """Mean of the non-NaN ``values`` of each cluster, shape (G,) (no clusters: each value is its own)."""
    values = np.asarray(values, dtype=float)
    clusters = np.arange(len(values)) if clusters is None else np.asarray(clusters)
    keep = ~np.isnan(values)
    if not keep.any():
        return np.empty(0)
    labels, inverse = np.unique(clusters[keep], return_inverse=True)
    return np.bincount(inverse, weights=values[keep]) / np.bincount(inverse)


def _t_interval(means: np.ndarray, confidence: float, bounds: tuple[float, float] | None,
                minimum: int) -> tuple[float, float]:
    if len(means) < minimum:
        return float("nan"), float("nan")
    centre = means.mean()
    half = stats.t.ppf((1 + confidence) / 2, len(means) - 1) * means.std(ddof=1) / np.sqrt(len(means))
    low, high = centre - half, centre + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return float(low), float(high)


def cluster_interval(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[object] | np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, float]:
    """Mean of cluster means and its t-interval with G - 1 degrees of freedom: ``(estimate, low, high)``.

    Each of the G clusters (videos, patients; default: each value alone) is averaged first, NaN values left out,
    so every cluster weighs once. The interval is ``mean +- t_{(1+confidence)/2, G-1} sd / sqrt(G)`` over the
    cluster means, clipped to ``bounds`` (a bounded metric's [0, 1]: the true mean lies inside them, so clipping
    keeps the coverage). Below :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters the interval is ``(nan, nan)``.
    Coverage is measured in ``tests/test_stats.py`` (see the module docstring).
    """
    means = cluster_means(values, clusters)
    estimate = float(means.mean()) if len(means) else float("nan")
    return (estimate, *_t_interval(means, confidence, bounds, MIN_CLUSTERS_FOR_INTERVAL))


def summarize(
    df: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
    cluster: str | None = None,
) -> pd.DataFrame:
    """Mean, standard deviation, count and confidence interval of each metric column.

    NaN values (e.g. an undefined hd95) are left out; ``n`` counts the values used and ``n_missing`` those left
    out. Without ``cluster`` the rows are taken as independent and the interval is
    ``mean +- t_{(1+confidence)/2, n-1} * std / sqrt(n)`` (NaN when ``n < 2``). With ``cluster`` (the column naming
    each case's video or patient, as :func:`~medseg_core.evaluation.evaluate` writes it) ``mean`` is the mean of
    cluster means and the interval is :func:`cluster_interval`'s (inside a bounded metric's bounds, NaN below
    :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters); ``n_clusters`` says how many there were; ``std`` stays the
    spread of the single values. Frames of one video or patient are not independent: pass ``cluster`` for
    per-frame results.

    Args:
        df: one row per case (per image, per seed...), one column per metric.
        by: column(s) to group by, e.g. ``"model"`` or ``["model", "fold"]``.
        metrics: columns to summarise (default: every numeric column not in ``by`` nor in
            :data:`BOOKKEEPING_COLUMNS`).
        confidence: coverage of the interval.
        cluster: the cluster column, or None for the t-interval over rows.

    Returns:
        A DataFrame indexed by ``(*by, "metric")`` with columns ``mean, std, n, n_missing, ci_low, ci_high``
        (and ``n_clusters`` with ``cluster``).
    """
    by_columns = [by] if isinstance(by, str) else list(by or [])
    if metrics is None:
        metrics = [
            column
            for column in df.columns
            if column not in by_columns
            and column not in BOOKKEEPING_COLUMNS
            and pd.api.types.is_numeric_dtype(df[column])
            and not pd.api.types.is_bool_dtype(df[column])
        ]
    missing = [column for column in [*by_columns, *metrics, *([cluster] if cluster else [])] if column not in df.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the table (columns: {list(df.columns)})")
    if not metrics:
        raise ValueError(f"no numeric metric columns to summarise in {list(df.columns)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")

    long = df.melt(id_vars=by_columns, value_vars=list(metrics), var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"])
    if by_columns:  # group-major rows, metrics in column order within each group
        long = long.sort_values(by_columns, kind="stable")
    grouped = long.groupby([*by_columns, "metric"], sort=False, dropna=False)["value"]
    table = grouped.agg(mean="mean", std="std", n="count", size="size")
    table["n_missing"] = table.pop("size") - table["n"]
    if not cluster:
        n = table["n"].to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            half_width = stats.t.ppf((1 + confidence) / 2, np.where(n > 1, n - 1, np.nan)) * table["std"] / np.sqrt(n)
        table["ci_low"] = table["mean"] - half_width
        table["ci_high"] = table["mean"] + half_width
    else:
        table[["ci_low", "ci_high", "n_clusters"]] = np.nan
        groups = df.groupby(by_columns, sort=False) if by_columns else [((), df)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            for metric in metrics:
                row = (*key, metric)
                table.loc[row, ["mean", "ci_low", "ci_high"]] = cluster_interval(
                    pd.to_numeric(group[metric]).to_numpy(), group[cluster].to_numpy(), confidence=confidence,
                    bounds=_bounds(metric))
                table.loc[row, "n_clusters"] = group.loc[group[metric].notna(), cluster].nunique()
        table["n_clusters"] = table["n_clusters"].astype(int)
    return table


def _as_list(columns: str | Sequence[str]) -> list[str]:
    return [columns] if isinstance(columns, str) else list(columns)


def _check_columns(results: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in results.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the results (columns: {list(results.columns)})")


def _check_unique_cases(results: pd.DataFrame, keys: list[str], case: list[str]) -> None:
    duplicated = results.duplicated(subset=keys)
    if duplicated.any():
        example = results.loc[duplicated, keys].iloc[0].to_dict()
        raise ValueError(
            f"several rows per case {case} for {example}: the results hold several classes or repeated ids; "
            f"select one class first (results[results['class'] == ...]) or add the column to case=..."
        )


def _seed_interval(values: np.ndarray, metric: str, confidence: float) -> tuple[float, float]:
    """t-interval over seed values from :data:`MIN_SEEDS_FOR_INTERVAL` seeds on, clipped to the metric's bounds."""
    values = np.asarray(values, dtype=float)
    return _t_interval(values[~np.isnan(values)], confidence, _bounds(metric), MIN_SEEDS_FOR_INTERVAL)


def _per_seed_text(values: pd.Series, digits: int = 3) -> str:
    return ", ".join(f"{seed}: {_fmt(value, digits)}" for seed, value in values.items())


def _seed_values(group: pd.DataFrame, metrics: list[str], seed: str, cluster: str | None) -> pd.DataFrame:
    """Each seed's value of each metric: its mean of cluster means (the case-unit estimate, seed by seed)."""
    if cluster is None:
        return group.groupby(seed, sort=True)[metrics].mean()
    return group.groupby([seed, cluster], sort=True)[metrics].mean().groupby(level=seed).mean()


def summarize_runs(
    results: pd.DataFrame,
    by: str | Sequence[str] = "variant",
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall"),
    *,
    unit: str = "seed",
    seed: str = "seed",
    case: str | Sequence[str] = "id",
    cluster: str | None = "cluster",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean, std and interval of each metric per group, with the unit said.

    Each estimate is a mean of cluster means (each video or patient weighs once), so the seed and case units
    share one ``mean``.

    Args:
        results: one row per case and seed (e.g. from :func:`~medseg_core.experiments.run_grid`).
        by: the group column(s), e.g. ``"variant"``.
        metrics: metric columns; NaN values (an undefined hd95) are left out of the means.
        unit: ``"seed"``: one value per seed: ``std`` and the interval describe training variability; a
            t-interval from :data:`MIN_SEEDS_FOR_INTERVAL` seeds on, NaN below. ``"case"``: each case averaged
            over the seeds; the interval is :func:`cluster_interval` over ``cluster`` (test-set variability).
            ``per_seed`` lists each seed's value in both.
        cluster: the column naming a case's video or patient; None or absent: each case is its own cluster
            (say so when you report it).
        confidence: coverage of the interval.

    Returns:
        One row per group and metric, groups in order of appearance: the ``by`` columns, ``metric``, ``unit``,
        ``mean``, ``std``, ``n`` (values used), ``ci_low``, ``ci_high``, ``per_seed``, ``n_seeds``, ``n_cases``,
        ``n_clusters``.

    Raises:
        ValueError: an unknown ``unit``, a missing column, or several rows per case and seed.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}; got {unit!r}")
    by, case, metrics = _as_list(by), _as_list(case), list(metrics)
    _check_columns(results, [*by, seed, *case, *metrics])
    _check_unique_cases(results, [*by, seed, *case], case)
    cluster = cluster if cluster is not None and cluster in results.columns else None
    rows = []
    for key, group in results.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        seed_values = _seed_values(group, metrics, seed, cluster)
        case_columns = [*case, cluster] if cluster else case
        case_means = group.groupby(case_columns, sort=False)[metrics].mean().reset_index()
        n_clusters = case_means[cluster].nunique() if cluster else len(case_means)
        for metric in metrics:
            if unit == "seed":
                values = seed_values[metric].to_numpy()
                finite = values[~np.isnan(values)]
                mean = finite.mean() if len(finite) else np.nan
                low, high = _seed_interval(values, metric, confidence)
            else:
                values = case_means[metric].to_numpy()
                finite = values[~np.isnan(values)]
                mean, low, high = cluster_interval(values, case_means[cluster] if cluster else None,
                                                   confidence=confidence, bounds=_bounds(metric))
            rows.append({**dict(zip(by, key)), "metric": metric, "unit": unit, "mean": mean,
                         "std": finite.std(ddof=1) if len(finite) > 1 else np.nan, "n": len(finite),
                         "ci_low": low, "ci_high": high, "per_seed": _per_seed_text(seed_values[metric]),
                         "n_seeds": group[seed].nunique(), "n_cases": len(case_means), "n_clusters": n_clusters})
    return pd.DataFrame(rows)


def summary_table(summary: pd.DataFrame, by: str | Sequence[str] = "variant", digits: int = 3) -> pd.DataFrame:
    """A :func:`summarize_runs` table to read: one row per group, one cell per metric.

    A cell is ``"mean ± std [ci_low, ci_high]"`` where the interval exists, else ``"mean (seed: value, ...)"``
    (few seeds: each seed's value instead of an interval). The last columns are ``n_seeds``, ``n_cases`` and
    ``n_clusters``; compute with the tidy table, not this one.
    """
    by = _as_list(by)
    _check_columns(summary, [*by, "metric", "mean", "std", "ci_low", "ci_high", "per_seed", "n_seeds", "n_cases"])

    def cell(row: pd.Series) -> str:
        if np.isfinite(row["ci_low"]):
            return f"{_fmt(row['mean'], digits)} ± {_fmt(row['std'], digits)} [{_fmt(row['ci_low'], digits)}, " \
                   f"{_fmt(row['ci_high'], digits)}]"
        return f"{_fmt(row['mean'], digits)} (seeds {row['per_seed']})"

    text = summary.assign(cell=[cell(row) for _, row in summary.iterrows()])
    wide = text.pivot(index=by, columns="metric", values="cell")[list(pd.unique(summary["metric"]))]
    count_columns = [c for c in ("n_seeds", "n_cases", "n_clusters") if c in summary]
    counts = summary.groupby(by)[count_columns].max()
    order = list(dict.fromkeys(map(tuple, summary[by].to_numpy()))) if len(by) > 1 else list(pd.unique(summary[by[0]]))
    return wide.join(counts).loc[order]


def foreground_split(
    results: pd.DataFrame,
    by: str | Sequence[str] = (),
    metrics: Sequence[str] = ("dice", "iou"),
    *,
    seed: str = "seed",
    cluster: str | None = "cluster",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Scores on frames with foreground and false alarms on frames without it, reported apart (per class).

    Needs the ``truth_pixels`` and ``predicted_pixels`` columns of :func:`medseg_core.evaluation.evaluate`. Every
    estimate is computed seed by seed (a table without ``seed`` is one seed) as a mean of cluster means (each
    video or patient weighs once: a rate is the mean of each patient's share of frames), then averaged over the
    seeds; the interval is :func:`cluster_interval` over the clusters of the seed-averaged frames. A frame is its
    ``id`` within its cluster.

    Returns:
        One row per group: ``foreground_frames``, each metric's mean on them with its interval (``<metric>``,
        ``<metric>_ci_low``, ``<metric>_ci_high``), ``empty_frames``, ``false_alarm_rate`` (the mean per-seed
        share of empty frames with any predicted pixel) with its interval, ``false_alarm_rate_per_seed`` (each
        seed's rate), ``false_alarm_rate_any_seed`` (secondary, weighted the same way: share of empty frames
        flagged by at least one seed, which grows with the number of seeds), ``false_alarm_pixels`` (mean predicted pixels on empty
        frames), ``n_seeds`` and ``n_clusters``.
    """
    by = _as_list(by)
    _check_columns(results, [*by, "id", "truth_pixels", "predicted_pixels", *metrics])
    cluster = cluster if cluster is not None and cluster in results.columns else None
    table = results if seed in results.columns else results.assign(**{seed: 0})
    table = table.assign(alarm=(table["predicted_pixels"] > 0).astype(float))
    class_key = ["class"] if "class" in results.columns else []
    group_keys = [*by, *class_key]
    frame_keys = [*group_keys, "id", *([cluster] if cluster else [])]
    values = ["truth_pixels", "predicted_pixels", "alarm", *metrics]
    rows = []
    for key, group in (table.groupby(group_keys, sort=False) if group_keys else [((), table)]):
        key = key if isinstance(key, tuple) else (key,)
        frames = group.groupby(frame_keys, sort=False)[values].mean().reset_index()
        case = ["id", *([cluster] if cluster else [])]  # a frame is its id within its video or patient
        has_foreground = frames.set_index(case)["truth_pixels"] > 0
        on_frame = group.set_index(case).index.isin(has_foreground[has_foreground].index)
        off = group[~on_frame]
        foreground, empty = frames[has_foreground.to_numpy()], frames[~has_foreground.to_numpy()]
        row: dict[str, object] = {**dict(zip(group_keys, key)), "foreground_frames": len(foreground)}
        for metric in metrics:
            mean, low, high = cluster_interval(foreground[metric], foreground[cluster] if cluster else None,
                                               confidence=confidence, bounds=_bounds(metric))
            row.update({metric: mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        rate, low, high = cluster_interval(empty["alarm"], empty[cluster] if cluster else None,
                                           confidence=confidence, bounds=(0.0, 1.0))
        per_seed = _seed_values(off, ["alarm"], seed, cluster)["alarm"] if len(off) else pd.Series(dtype=float)
        flagged = off.groupby(case)["alarm"].max()  # 1 where any seed flags the frame; weighted as the rate is
        any_seed = (cluster_means(flagged.to_numpy(), flagged.index.get_level_values(cluster)).mean()
                    if cluster and len(flagged) else flagged.mean() if len(flagged) else np.nan)
        row.update({"empty_frames": len(empty), "false_alarm_rate": rate, "false_alarm_rate_ci_low": low,
                    "false_alarm_rate_ci_high": high, "false_alarm_rate_per_seed": _per_seed_text(per_seed),
                    "false_alarm_rate_any_seed": any_seed,
                    "false_alarm_pixels": empty["predicted_pixels"].mean() if len(empty) else np.nan,
                    "n_seeds": group[seed].nunique(),
                    "n_clusters": frames[cluster].nunique() if cluster else len(frames)})
        rows.append(row)
    return pd.DataFrame(rows)


def detectable_difference(cluster_differences: Sequence[float] | np.ndarray, alpha: float = 0.05,
                          power: float = POWER, minimum: int = MIN_CLUSTERS_FOR_INTERVAL) -> float:
    """Smallest mean difference a paired t-test on these per-cluster differences detects with ``power``.

    Solves ``P(|T'| > t_{1-alpha/2, n-1}) = power`` for the noncentral t ``T'`` with ``n - 1`` degrees of freedom
    and noncentrality ``delta sqrt(n) / sd``, with the observed ``sd`` plugged in: a plug-in estimate (the sd of a
    few clusters is itself uncertain). NaN below ``minimum`` values (:data:`MIN_CLUSTERS_FOR_INTERVAL` clusters). ``alpha`` should
    already carry any family-wise correction. For 5 clusters: 1.68 sd at alpha 0.05, 2.48 sd at 0.0125.
    """
    values = np.asarray(cluster_differences, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < max(minimum, 2):
        return float("nan")
    return float(detectable_effect_size(len(values), alpha, power) * values.std(ddof=1))


def detectable_effect_size(n: int, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest standardised mean difference (in sd) a two-sided one-sample t-test on ``n`` values detects."""
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)

    def shortfall(effect: float) -> float:
        noncentrality = effect * np.sqrt(n)
        lower_tail = np.nan_to_num(stats.nct.cdf(-critical, df, noncentrality))  # scipy: NaN where it is ~0
        return stats.nct.sf(critical, df, noncentrality) + lower_tail - power

    high = 1.0
    while shortfall(high) < 0:  # power grows with the effect: widen the bracket until it is reached
        high *= 2
    return float(optimize.brentq(shortfall, 1e-6, high))


VERDICTS = {
    "shown": "shown over test clusters (videos, patients) like these and across seeds",
    "these models only": "shown over test clusters like these for these trained models, not across seeds",
    "not shown": "not shown",
    "no interval": "no interval: too few test videos/patients",
}
"""What a row of :func:`paired_comparison` supports at the family-wise level (its ``verdict`` column)."""


def _verdict(ci: tuple[float, float], seed_ci: tuple[float, float]) -> str:
    if np.isnan(ci[0]):
        return "no interval"
    if ci[0] <= 0 <= ci[1]:
        return "not shown"
    same_side = (seed_ci[0] > 0 and ci[0] > 0) or (seed_ci[1] < 0 and ci[1] < 0)
    return "shown" if same_side else "these models only"


def paired_comparison(
    results: pd.DataFrame,
    reference: str,
    metrics: Sequence[str] = ("dice",),
    *,
    by: str = "variant",
    seed: str = "seed",
    case: str | Sequence[str] = "id",
    cluster: str | None = "cluster",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every group of ``by`` against ``reference`` on the same test cases: effect sizes with intervals.

    The **family** of a metric is its m comparisons with ``reference``; every interval of the family is drawn at
    ``1 - (1 - confidence) / m`` (Bonferroni, :func:`family_confidence`), over clusters and over seeds alike.

    **Across test cases**: each case's metric is averaged over the seeds both ran; the paired differences are
    averaged per cluster (video or patient) and :func:`cluster_interval` gives the mean of the G cluster
    differences and its t-interval (G - 1 degrees of freedom). ``detectable`` is the smallest difference this
    design detects with 80 % power at the family level (:func:`detectable_difference`, a plug-in estimate). This
    asks whether *these trained models* differ on cases like these; it does not see training variability.

    **Across seeds**: each seed's mean difference (``per_seed``); from :data:`MIN_SEEDS_FOR_INTERVAL` seeds on a
    t-interval at the family level (``seed_ci_low``/``seed_ci_high``), else NaN. ``seeds_agree``: every seed's
    difference has the sign of the overall difference.

    ``verdict`` (a key of :data:`VERDICTS`): ``"shown"`` when the case interval excludes 0 and the seed interval
    excludes 0 on the same side; ``"these models only"`` when only the case interval does; ``"not shown"``;
    ``"no interval"`` below :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters.

    Returns:
        One row per variant and metric: ``by``, ``reference``, ``metric``, ``family``, ``n_cases``,
        ``n_clusters``, ``n_seeds``, ``confidence`` (family-wise level of each interval), ``reference_mean``,
        ``variant_mean``, ``mean_difference``, ``ci_low``, ``ci_high``, ``detectable`` (over clusters),
        ``seed_detectable`` (over seeds, NaN below :data:`MIN_SEEDS_FOR_INTERVAL`), ``wins`` / ``losses`` (clusters
        higher / lower), ``per_seed``, ``seed_ci_low``, ``seed_ci_high``, ``seeds_agree``, ``verdict``.

    Raises:
        ValueError: ``reference`` is not a group, a column is missing, or several rows per case and seed.
    """
    case, metrics = _as_list(case), list(metrics)
    _check_columns(results, [by, seed, *case, *metrics])
    _check_unique_cases(results, [by, seed, *case], case)
    cluster = cluster if cluster is not None and cluster in results.columns else None
    groups = list(pd.unique(results[by]))
    if reference not in groups:
        raise ValueError(f"reference {reference!r} is not among the {by!r} values {groups}")
    variants = [g for g in groups if g != reference]
    if not variants:
        raise ValueError(f"nothing to compare: {by!r} holds only the reference {reference!r}")
    family = family_confidence(confidence, len(variants))
    case_keys = [*case, cluster] if cluster else case
    reference_rows = results[results[by] == reference]
    rows = []
    for variant in variants:
        variant_rows = results[results[by] == variant]
        seeds = sorted(set(variant_rows[seed]) & set(reference_rows[seed]))
        both = [frame[frame[seed].isin(seeds)].set_index([seed, *case_keys])[metrics]
                for frame in (variant_rows, reference_rows)]
        per_seed_pairs = both[0].add_suffix("_variant").join(both[1].add_suffix("_reference"), how="inner")
        means = [frame.groupby(level=case_keys).mean() for frame in both]
        paired = means[0].add_suffix("_variant").join(means[1].add_suffix("_reference"), how="inner")
        for metric in metrics:
            pair = paired[[f"{metric}_variant", f"{metric}_reference"]].dropna()
            differences = pair.iloc[:, 0] - pair.iloc[:, 1]
            clusters = differences.index.get_level_values(cluster) if cluster else None
            bounds = _bounds(f"{metric}_difference")  # [-1, 1] for a bounded metric; none for a distance
            mean, low, high = cluster_interval(differences.to_numpy(), clusters, confidence=family, bounds=bounds)
            cluster_differences = cluster_means(differences.to_numpy(), clusters)
            seed_pairs = per_seed_pairs[[f"{metric}_variant", f"{metric}_reference"]].dropna()
            seed_table = (seed_pairs.iloc[:, 0] - seed_pairs.iloc[:, 1]).rename("d").reset_index()
            seed_differences = _seed_values(seed_table, ["d"], seed, cluster)["d"]
            seed_values = seed_differences.dropna().to_numpy()
            seed_low, seed_high = _t_interval(seed_values, family, bounds, MIN_SEEDS_FOR_INTERVAL)
            rows.append({
                by: variant, "reference": reference, "metric": metric,
                "family": f"{len(variants)} comparison{'s' if len(variants) > 1 else ''} with {reference} on {metric}",
                "n_cases": len(differences), "n_clusters": len(cluster_differences), "n_seeds": len(seeds),
                "confidence": family,
                "reference_mean": cluster_means(pair.iloc[:, 1].to_numpy(), clusters).mean() if len(pair) else np.nan,
                "variant_mean": cluster_means(pair.iloc[:, 0].to_numpy(), clusters).mean() if len(pair) else np.nan,
                "mean_difference": mean, "ci_low": low, "ci_high": high,
                "detectable": detectable_difference(cluster_differences, alpha=1 - family),
                "seed_detectable": detectable_difference(seed_values, alpha=1 - family, minimum=MIN_SEEDS_FOR_INTERVAL),
                "wins": int((cluster_differences > 0).sum()), "losses": int((cluster_differences < 0).sum()),
                "per_seed": _per_seed_text(seed_differences), "seed_ci_low": seed_low, "seed_ci_high": seed_high,
                "seeds_agree": bool(len(seed_differences)) and bool((np.sign(seed_differences) == np.sign(mean)).all()),
                "verdict": _verdict((low, high), (seed_low, seed_high)),
            })
    return pd.DataFrame(rows)


def paired_seed_effect(
    results: pd.DataFrame,
    pair: str,
    treatment: str,
    reference: str,
    *,
    by: str,
    metric: str = "dice",
    seed: str = "seed",
    case: str = "id",
    cluster: str | None = "cluster",
    confidence: float = 0.95,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The effect of ``treatment`` against ``reference`` per group of ``by``, paired by seed and case.

    For designs with one cluster (one patient: no interval over patients exists), where the seed is the unit: a
    seed trains one run of each arm (e.g. ``pair="start"``: ``"synthetic"`` and ``"scratch"``) on the same data,
    so each seed's mean difference over the shared cases is one paired value. ``effect`` is
    :func:`summarize_runs` of those differences with ``unit="seed"`` (per-seed values; a t-interval from
    :data:`MIN_SEEDS_FOR_INTERVAL` seeds on, at the family level over the groups of ``by``), plus ``family``,
    ``detectable`` (:func:`detectable_difference` over the seeds, NaN below :data:`MIN_SEEDS_FOR_INTERVAL`) and
    ``seeds_agree``. ``n_clusters`` counts the videos or patients of the cases (1 for one pullback).

    Returns:
        ``paired``: one row per ``by``, seed and case with both arms, ``<metric>_difference`` and ``pair`` set to
        ``"<treatment> − <reference>"``; ``effect``: one row per group of ``by``.
    """
    _check_columns(results, [by, pair, seed, case, metric])
    _check_unique_cases(results, [by, pair, seed, case], [case])
    cluster = cluster if cluster is not None and cluster in results.columns else None
    index = [by, seed, case, *([cluster] if cluster else [])]
    paired = results.pivot_table(index=index, columns=pair, values=metric).reset_index()
    paired.columns.name = None
    difference = f"{metric}_difference"
    paired = paired.assign(**{difference: paired[treatment] - paired[reference], pair: f"{treatment} − {reference}"})
    groups = paired[by].nunique()
    family = family_confidence(confidence, groups)
    effect = summarize_runs(paired, by=by, metrics=[difference], unit="seed", seed=seed, case=case,
                            cluster=cluster, confidence=family)
    seed_effects = pd.concat({level: _seed_values(rows, [difference], seed, cluster)[difference]
                              for level, rows in paired.groupby(by, sort=False)}, names=[by]).groupby(level=by)
    effect["family"] = f"{groups} value{'s' if groups > 1 else ''} of {by}, {treatment} − {reference} on {metric}"
    effect["confidence"] = family
    effect["detectable"] = effect[by].map(seed_effects.apply(
        lambda values: detectable_difference(values.to_numpy(), alpha=1 - family, minimum=MIN_SEEDS_FOR_INTERVAL)))
    agree = seed_effects.apply(lambda values: bool((np.sign(values) == np.sign(values.mean())).all()))
    effect["seeds_agree"] = effect[by].map(agree)
    return paired, effect


def _fmt(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def describe_summary(summary: pd.DataFrame, metric: str, by: str = "variant", higher_is_better: bool = True) -> str:
    """One sentence ranking the groups of a :func:`summarize_runs` table by ``metric``, from its numbers.

    With few seeds it lists each seed's value instead of an interval. A ranking is not an effect: the sentence
    says so and points to :func:`describe_comparisons`.
    """
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"metric {metric!r} is not in the summary (metrics: {sorted(summary['metric'].unique())})")
    rows = rows.sort_values("mean", ascending=not higher_is_better, kind="stable")
    seeds = sorted(rows["n_seeds"].unique())
    seed_text = f"{seeds[0]} seed{'s' if seeds[0] != 1 else ''}" if len(seeds) == 1 else f"{seeds} seeds"
    parts = [f"{row[by]} {_fmt(row['mean'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
             if np.isfinite(row["ci_low"]) else f"{row[by]} {_fmt(row['mean'])} (seeds {row['per_seed']})"
             for _, row in rows.iterrows()]
    best = rows.iloc[0][by]
    word = "highest" if higher_is_better else "lowest"
    unit = rows["unit"].iloc[0] if "unit" in rows else "seed"
    return (f"{metric} (mean over {unit}s, {seed_text}): " + "; ".join(parts)
            + f". {word.capitalize()} mean: {best} (a ranking, not an effect: see the paired comparisons).")


def describe_comparisons(comparison: pd.DataFrame, by: str = "variant", unit: str = "videos/patients") -> list[str]:
    """One sentence per row of a :func:`paired_comparison` table, with the verdict its numbers support.

    The verdict is the table's ``verdict`` column (one rule, in :func:`paired_comparison`); every sentence names
    its family and the family-wise level. An interval containing 0 is "not shown", with the smallest difference
    the design could detect, so absence of evidence is not read as evidence of absence. ``unit`` names the
    clusters (``"videos"``, ``"patients"``).
    """
    sentences = []
    for _, row in comparison.iterrows():
        level = f"{100 * row['confidence']:.4g} %"
        direction = "higher" if row["mean_difference"] > 0 else "lower"
        seeds = f"{row['n_seeds']} seed{'s' if row['n_seeds'] != 1 else ''}"
        seed_interval = (f"seed interval {_fmt(row['seed_ci_low'], signed=True)} to "
                         f"{_fmt(row['seed_ci_high'], signed=True)}" if np.isfinite(row["seed_ci_low"])
                         else f"no seed interval from {seeds}")
        verdict = {
            "no interval": f"only {row['n_clusters']} test {unit}, fewer than {MIN_CLUSTERS_FOR_INTERVAL}: "
                           "this design gives no interval; do not claim an effect",
            "shown": f"{row[by]} is {direction} than {row['reference']} on test {unit} like these, and across seeds",
            "these models only": f"{row[by]} is {direction} than {row['reference']} on test {unit} like these for "
                                 f"these trained models, but not shown across seeds ({seed_interval}): do not claim a "
                                 "general effect",
            "not shown": f"no difference shown; this design detects about {_fmt(row['detectable'])} or more over "
                         f"{unit}" + (f" and {_fmt(row['seed_detectable'])} over seeds"
                                      if np.isfinite(row.get("seed_detectable", np.nan)) else "")
                         + " (80 % power, plug-in estimates), so a smaller effect may be missed",
        }[row["verdict"]]
        sentences.append(
            f"{row[by]} vs {row['reference']}, {row['metric']} (family: {row['family']}, {level} each): "
            f"{_fmt(row['mean_difference'], signed=True)} (CI {_fmt(row['ci_low'], signed=True)} to "
            f"{_fmt(row['ci_high'], signed=True)}, t over {row['n_clusters']} test {unit}, {row['n_cases']} "
            f"cases; higher in {row['wins']}, lower in {row['losses']} of them; per seed {row['per_seed']}): "
            f"{verdict}."
        )
    return sentences


def describe_seed_effects(effect: pd.DataFrame, by: str, what: str) -> list[str]:
    """One sentence per row of :func:`paired_seed_effect`'s ``effect`` table, with the verdict its numbers support.

    ``what`` names the difference (e.g. ``"synthetic − scratch"``). An effect is shown only when the family-wise
    interval over seeds excludes 0; below :data:`MIN_SEEDS_FOR_INTERVAL` seeds no interval exists and nothing is
    claimed. The unit is the seed: a one-patient design says nothing about other patients.
    """
    sentences = []
    for _, row in effect.iterrows():
        family = f"family: {row['family']}, {100 * row['confidence']:.4g} % each"
        if not np.isfinite(row["ci_low"]):
            verdict = f"{row['n_seeds']} seed(s), fewer than {MIN_SEEDS_FOR_INTERVAL}: no interval; claim nothing"
        else:
            shown = ("higher" if row["ci_low"] > 0 else "lower" if row["ci_high"] < 0 else None)
            verdict = (f"interval over seeds {_fmt(row['ci_low'], signed=True)} to {_fmt(row['ci_high'], signed=True)}: "
                       + (f"shown {shown} on this test set" if shown else
                          f"no difference shown (this design detects about {_fmt(row['detectable'])} or more)"))
        sign = "every seed agrees in sign" if row["seeds_agree"] else "the seeds disagree in sign"
        sentences.append(f"{by} = {row[by]} ({family}): {what} {_fmt(row['mean'], signed=True)} (seeds "
                         f"{row['per_seed']}; {sign}; {row['n_clusters']} test cluster(s)); {verdict}.")
    return sentences
