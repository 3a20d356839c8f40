"""Statistics a reviewer accepts, for the per-case tables of evaluation and of the variant x seed grids.

The rules, each implemented once here and used by every notebook:

* **Say the unit and resample at it.** Test cases (frames) from one video or patient are correlated, so
  intervals across cases come from a **cluster bootstrap**: whole clusters (``cluster`` column: the video or the
  patient, :meth:`medseg_core.tasks.Task.case_cluster`) are resampled, never single frames. Percentile intervals
  of a mean stay inside the metric's bounds by construction. Below :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters
  no interval is given: a bootstrap over two or three videos would look precise and be wrong.
* **Few seeds: show each seed.** Across seeds, a t-interval is reported only from :data:`MIN_SEEDS_FOR_INTERVAL`
  seeds on (and clipped to the metric's bounds); with fewer, the per-seed values are listed (``per_seed``) and the
  interval is NaN.
* **Effect sizes with intervals, no saturated p-values.** :func:`paired_comparison` gives each variant's mean
  difference to a reference with a cluster-bootstrap interval at a family-wise (Bonferroni) confidence over the
  variants compared, the per-seed differences, and the smallest difference the design could detect
  (:func:`detectable_difference`, 80 % power); it reports no p-value that would only show how many frames there are.
* **Foreground and empty frames apart.** :func:`foreground_split` reports Dice/IoU on frames whose ground truth
  holds the class and, separately, false alarms on frames without it (rate of frames with any predicted pixel,
  predicted pixels per frame): an empty frame left empty scores 1 by the empty-mask rule and would dominate a
  mixed mean.

:func:`summarize` (mean, std and t-interval of any table) stays for plain descriptive tables.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["BOOKKEEPING_COLUMNS", "MIN_SEEDS_FOR_INTERVAL", "MIN_CLUSTERS_FOR_INTERVAL", "BOUNDED_METRICS", "summarize",
           "bootstrap_interval",
           "summarize_runs", "summary_table", "foreground_split", "detectable_difference", "paired_comparison",
           "paired_seed_effect", "describe_summary", "describe_comparisons"]

UNITS = ("seed", "case")
MIN_SEEDS_FOR_INTERVAL = 5  # fewer seeds: their values are listed, no t-interval is drawn from them
MIN_CLUSTERS_FOR_INTERVAL = 5  # fewer videos/patients: a percentile bootstrap is far too narrow; no interval
BOUNDED_METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "cldice")
N_BOOTSTRAP = 2000

BOOKKEEPING_COLUMNS = frozenset({"truth_pixels", "predicted_pixels", "seed", "parameters", "train_seconds", "epoch"})
"""Numeric columns of result tables (written by ``evaluate`` and ``run_grid``) that are not metrics."""


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
    each case's video or patient, as :func:`~medseg_core.evaluation.evaluate` writes it) the interval is the
    cluster bootstrap of :func:`bootstrap_interval`: whole videos or patients resampled, inside a bounded metric's
    bounds, NaN below :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters; ``n_clusters`` says how many there were. Frames
    of one video or patient are not independent: pass ``cluster`` for per-frame results.

    Args:
        df: one row per case (per image, per seed...), one column per metric.
        by: column(s) to group by, e.g. ``"model"`` or ``["model", "fold"]``.
        metrics: columns to summarise (default: every numeric column not in ``by`` nor in
            :data:`BOOKKEEPING_COLUMNS`).
        confidence: coverage of the interval.
        cluster: the cluster column for a bootstrap interval, or None for the t-interval over rows.

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
                table.loc[row, ["ci_low", "ci_high"]] = bootstrap_interval(
                    pd.to_numeric(group[metric]).to_numpy(), group[cluster].to_numpy(), confidence=confidence)
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


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence[object] | np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values``, resampling whole ``clusters`` (default: each value alone).

    Each bootstrap replicate draws as many clusters as there are, with replacement, and averages all their values
    (so a cluster weighs by its size, as in the point estimate). NaN values are left out. The interval of a mean
    of bounded values stays inside their bounds. With fewer than :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters the
    bootstrap sees only a handful of distinct resamples and its interval is far too narrow, so ``(nan, nan)`` is
    returned: the design cannot give an interval, and the tables say so.
    """
    values = np.asarray(values, dtype=float)
    clusters = np.arange(len(values)) if clusters is None else np.asarray(clusters)
    keep = ~np.isnan(values)
    values, clusters = values[keep], clusters[keep]
    labels, inverse = np.unique(clusters, return_inverse=True)
    if len(labels) < MIN_CLUSTERS_FOR_INTERVAL:
        return float("nan"), float("nan")
    sums = np.bincount(inverse, weights=values, minlength=len(labels))
    counts = np.bincount(inverse, minlength=len(labels)).astype(float)
    draws = np.random.default_rng(seed).integers(0, len(labels), size=(n_boot, len(labels)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _seed_interval(values: np.ndarray, metric: str, confidence: float) -> tuple[float, float]:
    """t-interval over seed values from :data:`MIN_SEEDS_FOR_INTERVAL` seeds on, clipped to a bounded metric's [0, 1]."""
    values = values[~np.isnan(values)]
    if len(values) < MIN_SEEDS_FOR_INTERVAL:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    low, high = values.mean() - half, values.mean() + half
    if metric in BOUNDED_METRICS:
        low, high = max(low, 0.0), min(high, 1.0)
    return float(low), float(high)


def _per_seed_text(values: pd.Series, digits: int = 3) -> str:
    return ", ".join(f"{seed}: {_fmt(value, digits)}" for seed, value in values.items())


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

    Args:
        results: one row per case and seed (e.g. from :func:`~medseg_core.experiments.run_grid`).
        by: the group column(s), e.g. ``"variant"``.
        metrics: metric columns; NaN values (an undefined hd95) are left out of the means.
        unit: ``"seed"``: one value per seed (its mean over the cases): ``std`` and the interval describe training
            variability; the interval is a t-interval from :data:`MIN_SEEDS_FOR_INTERVAL` seeds on, NaN below,
            and ``per_seed`` lists the values. ``"case"``: one value per case (its mean over the seeds); the
            interval is a cluster bootstrap over ``cluster`` (test-set variability).
        cluster: the column naming a case's video or patient (resampled as a whole); None or absent: each case
            is its own cluster (say so when you report it).
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
        seed_means = group.groupby(seed, sort=True)[metrics].mean()
        case_columns = [*case, cluster] if cluster else case
        case_means = group.groupby(case_columns, sort=False)[metrics].mean().reset_index()
        for metric in metrics:
            if unit == "seed":
                values = seed_means[metric].to_numpy()
                low, high = _seed_interval(values, metric, confidence)
            else:
                values = case_means[metric].to_numpy()
                low, high = bootstrap_interval(values, case_means[cluster] if cluster else None, confidence=confidence)
            finite = values[~np.isnan(values)]
            rows.append({**dict(zip(by, key)), "metric": metric, "unit": unit,
                         "mean": finite.mean() if len(finite) else np.nan,
                         "std": finite.std(ddof=1) if len(finite) > 1 else np.nan, "n": len(finite),
                         "ci_low": low, "ci_high": high, "per_seed": _per_seed_text(seed_means[metric]),
                         "n_seeds": group[seed].nunique(), "n_cases": len(case_means),
                         "n_clusters": case_means[cluster].nunique() if cluster else len(case_means)})
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
    cluster: str | None = "cluster",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Scores on frames with foreground and false alarms on frames without it, reported apart (per class).

    Needs the ``truth_pixels`` and ``predicted_pixels`` columns of :func:`medseg_core.evaluation.evaluate`.
    Frames are averaged over seeds first when a ``seed`` column is present (a frame counts once).

    Returns:
        One row per group: ``foreground_frames``, each metric's mean on them with a cluster-bootstrap interval
        (``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``), ``empty_frames``, ``false_alarm_rate`` (share of
        empty frames with any predicted pixel) with its interval, and ``false_alarm_pixels`` (mean predicted
        pixels on empty frames).
    """
    by = _as_list(by)
    _check_columns(results, [*by, "id", "truth_pixels", "predicted_pixels", *metrics])
    cluster = cluster if cluster is not None and cluster in results.columns else None
    keys = [*by, *(["class"] if "class" in results.columns else []), "id", *([cluster] if cluster else [])]
    frames = results.groupby(keys, sort=False)[["truth_pixels", "predicted_pixels", *metrics]].mean().reset_index()
    frames["alarm"] = (frames["predicted_pixels"] > 0).astype(float)
    group_keys = [*by, *(["class"] if "class" in results.columns else [])]
    rows = []
    for key, group in (frames.groupby(group_keys, sort=False) if group_keys else [((), frames)]):
        key = key if isinstance(key, tuple) else (key,)
        foreground, empty = group[group["truth_pixels"] > 0], group[group["truth_pixels"] == 0]
        row: dict[str, object] = {**dict(zip(group_keys, key)), "foreground_frames": len(foreground)}
        for metric in metrics:
            low, high = bootstrap_interval(foreground[metric], foreground[cluster] if cluster else None,
                                           confidence=confidence)
            row.update({metric: foreground[metric].mean(), f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        low, high = bootstrap_interval(empty["alarm"], empty[cluster] if cluster else None, confidence=confidence)
        row.update({"empty_frames": len(empty), "false_alarm_rate": empty["alarm"].mean() if len(empty) else np.nan,
                    "false_alarm_rate_ci_low": low, "false_alarm_rate_ci_high": high,
                    "false_alarm_pixels": empty["predicted_pixels"].mean() if len(empty) else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def detectable_difference(cluster_differences: Sequence[float] | np.ndarray, alpha: float = 0.05,
                          power: float = 0.8) -> float:
    """Smallest mean difference a paired design with these per-cluster differences detects with ``power``.

    ``(z_{1 - alpha/2} + z_{power}) * sd / sqrt(n)`` over the ``n`` clusters (normal approximation; NaN below
    :data:`MIN_CLUSTERS_FOR_INTERVAL` clusters, where the spread itself is not estimable). ``alpha`` should
    already carry any family-wise correction.
    """
    values = np.asarray(cluster_differences, dtype=float)
    values = values[~np.isnan(values)]
    if len(values) < MIN_CLUSTERS_FOR_INTERVAL:
        return float("nan")
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z * values.std(ddof=1) / np.sqrt(len(values)))


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

    **Across test cases**: each case's metric is averaged over the seeds both ran; the mean of the paired
    differences gets a cluster-bootstrap interval (whole videos or patients resampled) at the family-wise
    confidence ``1 - (1 - confidence) / m`` for ``m`` variants compared (Bonferroni), so all intervals of a metric
    hold together. ``detectable`` is the smallest difference this design detects with 80 % power at that level
    (:func:`detectable_difference` over the per-cluster mean differences). This asks whether *these trained
    models* differ on *these* cases; it does not see training variability.

    **Across seeds**: the mean difference of each seed (``per_seed``); with :data:`MIN_SEEDS_FOR_INTERVAL` seeds
    or more also a t-interval (``seed_ci_low``/``seed_ci_high``), else NaN. ``seeds_agree`` is True when every
    seed's difference has the sign of the overall difference.

    Returns:
        One row per variant and metric: ``by``, ``reference``, ``metric``, ``n_cases``, ``n_clusters``,
        ``n_seeds``, ``confidence`` (family-wise level of the intervals), ``reference_mean``, ``variant_mean``,
        ``mean_difference``, ``ci_low``, ``ci_high``, ``detectable``, ``wins`` / ``losses`` (cases higher /
        lower), ``per_seed``, ``seed_ci_low``, ``seed_ci_high``, ``seeds_agree``.

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
    family = 1 - (1 - confidence) / len(variants)
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
            low, high = bootstrap_interval(differences.to_numpy(), clusters, confidence=family)
            cluster_means = differences.groupby(level=cluster).mean() if cluster else differences
            seed_pairs = per_seed_pairs[[f"{metric}_variant", f"{metric}_reference"]].dropna()
            seed_differences = (seed_pairs.iloc[:, 0] - seed_pairs.iloc[:, 1]).groupby(level=seed).mean()
            seed_low, seed_high = _seed_interval(seed_differences.to_numpy(), "difference", confidence)
            mean = differences.mean() if len(differences) else np.nan
            rows.append({
                by: variant, "reference": reference, "metric": metric, "n_cases": len(differences),
                "n_clusters": len(cluster_means), "n_seeds": len(seeds), "confidence": family,
                "reference_mean": pair.iloc[:, 1].mean(), "variant_mean": pair.iloc[:, 0].mean(),
                "mean_difference": mean, "ci_low": low, "ci_high": high,
                "detectable": detectable_difference(cluster_means.to_numpy(), alpha=1 - family),
                "wins": int((differences > 0).sum()), "losses": int((differences < 0).sum()),
                "per_seed": _per_seed_text(seed_differences), "seed_ci_low": seed_low, "seed_ci_high": seed_high,
                "seeds_agree": bool(len(seed_differences)) and bool((np.sign(seed_differences) == np.sign(mean)).all()),
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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The effect of ``treatment`` against ``reference`` per group of ``by``, paired by seed and case.

    For designs with one cluster (one patient: no bootstrap over patients exists), where the seed is the unit: a
    seed trains one run of each arm (e.g. ``pair="start"``: ``"synthetic"`` and ``"scratch"``) on the same data,
    so each seed's mean difference over the shared cases is one paired value. ``effect`` is
    :func:`summarize_runs` of those differences with ``unit="seed"`` (per-seed values; a t-interval from
    :data:`MIN_SEEDS_FOR_INTERVAL` seeds on), plus ``detectable`` (:func:`detectable_difference` over the seeds,
    NaN below :data:`MIN_CLUSTERS_FOR_INTERVAL` of them) and ``seeds_agree`` (every seed's difference has the
    sign of their mean).

    Returns:
        ``paired``: one row per ``by``, seed and case with both arms, ``<metric>_difference`` and ``pair`` set to
        ``"<treatment> − <reference>"``; ``effect``: one row per group of ``by``.
    """
    _check_columns(results, [by, pair, seed, case, metric])
    paired = results.pivot_table(index=[by, seed, case], columns=pair, values=metric).reset_index()
    difference = f"{metric}_difference"
    paired = paired.assign(**{difference: paired[treatment] - paired[reference], pair: f"{treatment} − {reference}"})
    effect = summarize_runs(paired, by=by, metrics=[difference], unit="seed", seed=seed, case=case)
    seed_effects = paired.groupby([by, seed])[difference].mean().groupby(level=by)
    effect["detectable"] = effect[by].map(seed_effects.apply(detectable_difference))
    agree = seed_effects.apply(lambda values: bool((np.sign(values) == np.sign(values.mean())).all()))
    effect["seeds_agree"] = effect[by].map(agree)
    return paired, effect


def _fmt(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def describe_summary(summary: pd.DataFrame, metric: str, by: str = "variant", higher_is_better: bool = True) -> str:
    """One sentence ranking the groups of a :func:`summarize_runs` table by ``metric``, from its numbers.

    With few seeds it lists each seed's value instead of an interval.
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
            + f". {word.capitalize()} mean: {best}.")


def describe_comparisons(comparison: pd.DataFrame, by: str = "variant") -> list[str]:
    """One sentence per row of a :func:`paired_comparison` table, with the verdict its numbers support.

    A difference is called clear on these test cases when its family-wise interval excludes 0; the sentence then
    says whether every seed agrees in sign (it may not survive retraining otherwise). An interval containing 0 is
    "not shown", with the smallest difference the design could detect, so absence of evidence is not read as
    evidence of absence.
    """
    sentences = []
    for _, row in comparison.iterrows():
        level = f"{100 * row['confidence']:.1f} %"
        if np.isnan(row["ci_low"]):
            verdict = (f"only {row['n_clusters']} test videos/patients, fewer than {MIN_CLUSTERS_FOR_INTERVAL}: this "
                       "design cannot give an interval or a detectable difference; read the per-seed differences "
                       "and do not claim an effect")
        elif row["ci_low"] > 0 or row["ci_high"] < 0:
            direction = "higher" if row["mean_difference"] > 0 else "lower"
            verdict = f"{row[by]} is {direction} than {row['reference']} on these test cases"
            verdict += (f", and all {row['n_seeds']} seeds agree" if row["seeds_agree"] and row["n_seeds"] > 1 else
                        "; only one seed, so retraining is not checked" if row["n_seeds"] <= 1 else
                        f", but not every one of the {row['n_seeds']} seeds agrees (it may not survive retraining)")
        else:
            verdict = (f"no difference shown; this design detects about {_fmt(row['detectable'])} or more "
                       "(80 % power), so a smaller effect may be missed")
        sentences.append(
            f"{row[by]} vs {row['reference']}, {row['metric']}: {_fmt(row['mean_difference'], signed=True)} "
            f"({level} CI {_fmt(row['ci_low'], signed=True)} to {_fmt(row['ci_high'], signed=True)}, cluster "
            f"bootstrap over {row['n_clusters']} videos/patients, {row['n_cases']} cases; higher on {row['wins']}, "
            f"lower on {row['losses']}; per seed {row['per_seed']}): {verdict}."
        )
    return sentences
