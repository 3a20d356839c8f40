"""Statistics for comparing trained variants: summaries over seeds, paired tests across test cases, sentences.

:func:`summarize` gives mean, std and a t-interval of any table of results. On top of it, this module adds what
an ablation needs, for the per-case tables of :func:`medseg_core.experiments.run_grid` (one row per
variant, seed and test case):

* :func:`summarize_runs`: mean, std and 95 % t-interval of each metric per variant, with either the **seed**
  (each seed's mean over the test cases is one value: the spread is training variability) or the **case** (each
  case's mean over seeds is one value: the spread is test-set variability) as the unit;
* :func:`paired_comparison`: each variant against a reference on the same test cases (each case's metric averaged
  over the seeds both ran): mean difference with a paired t-interval, the paired t-test, the Wilcoxon
  signed-rank test (:func:`scipy.stats.wilcoxon`, zero differences dropped) and Holm's step-down correction over
  the variants compared (:func:`holm`); and, because a test across cases does not see training variability, the
  same difference per seed with a paired t-interval and t-test across seeds;
* :func:`describe_summary` and :func:`describe_comparisons`: sentences built from those tables, so notebooks state
  results from the numbers and never ahead of them.

With one seed the seed-unit interval is undefined (NaN) and says so; with fewer than two cases the tests are NaN.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["BOOKKEEPING_COLUMNS", "summarize", "summarize_runs", "summary_table", "paired_comparison", "holm", "describe_summary", "describe_comparisons"]

UNITS = ("seed", "case")

BOOKKEEPING_COLUMNS = frozenset({"truth_pixels", "predicted_pixels", "seed", "parameters", "train_seconds", "epoch"})
"""Numeric columns of result tables (written by ``evaluate`` and ``run_grid``) that are not metrics."""


def summarize(
    df: pd.DataFrame,
    by: str | Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean, standard deviation, count and t-distribution confidence interval of each metric column.

    NaN values (e.g. an undefined hd95) are left out; ``n`` counts the values used and ``n_missing`` those left
    out. The interval is ``mean +- t_{(1+confidence)/2, n-1} * std / sqrt(n)`` (NaN when ``n < 2``).

    Args:
        df: one row per case (per image, per seed...), one column per metric.
        by: column(s) to group by, e.g. ``"model"`` or ``["model", "fold"]``.
        metrics: columns to summarise (default: every numeric column not in ``by`` nor in
            :data:`BOOKKEEPING_COLUMNS`).
        confidence: coverage of the interval.

    Returns:
        A DataFrame indexed by ``(*by, "metric")`` with columns ``mean, std, n, n_missing, ci_low, ci_high``.
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
    missing = [column for column in [*by_columns, *metrics] if column not in df.columns]
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
    n = table["n"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        half_width = stats.t.ppf((1 + confidence) / 2, np.where(n > 1, n - 1, np.nan)) * table["std"] / np.sqrt(n)
    table["ci_low"] = table["mean"] - half_width
    table["ci_high"] = table["mean"] + half_width
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


def summarize_runs(
    results: pd.DataFrame,
    by: str | Sequence[str] = "variant",
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall"),
    *,
    unit: str = "seed",
    seed: str = "seed",
    case: str | Sequence[str] = "id",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean, std and t-interval of each metric per group, over seeds or over test cases.

    Args:
        results: one row per case and seed (e.g. from :func:`~medseg_core.experiments.run_grid`).
        by: the group column(s), e.g. ``"variant"``.
        metrics: metric columns; NaN values (an undefined hd95) are left out of the means.
        unit: ``"seed"``: one value per seed (its mean over the cases), so ``std`` and the interval describe
            training variability; ``"case"``: one value per case (its mean over the seeds), so they describe the
            test set's variability.
        seed: the seed column.
        case: the column(s) naming a case.
        confidence: coverage of the interval.

    Returns:
        One row per group and metric, groups in order of appearance: the ``by`` columns, ``metric``, ``mean``,
        ``std``, ``n`` (values used), ``ci_low``, ``ci_high``, ``n_seeds`` and ``n_cases``.

    Raises:
        ValueError: an unknown ``unit``, a missing column, or several rows per case and seed.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}; got {unit!r}")
    by, case, metrics = _as_list(by), _as_list(case), list(metrics)
    _check_columns(results, [*by, seed, *case, *metrics])
    _check_unique_cases(results, [*by, seed, *case], case)
    inner = [*by, seed] if unit == "seed" else [*by, *case]
    values = results.groupby(inner, sort=False)[metrics].mean().reset_index()
    table = summarize(values, by=by, metrics=metrics, confidence=confidence).reset_index()
    counts = results.groupby(by, sort=False).agg(n_seeds=(seed, "nunique"))
    counts["n_cases"] = results.drop_duplicates([*by, *case]).groupby(by, sort=False).size()
    table = table.drop(columns="n_missing").merge(counts.reset_index(), on=by)
    appearance = results[by].drop_duplicates().reset_index(drop=True).rename_axis("_order").reset_index()
    table = table.merge(appearance, on=by).sort_values("_order", kind="stable")  # groups in order of appearance
    return table.drop(columns="_order").reset_index(drop=True)


def summary_table(summary: pd.DataFrame, by: str | Sequence[str] = "variant", digits: int = 3) -> pd.DataFrame:
    """A :func:`summarize_runs` table to read: one row per group, one ``"mean ± std [ci_low, ci_high]"`` per metric.

    The last columns are ``n_seeds`` and ``n_cases``; save and compute with the tidy table, not this one.
    """
    by = _as_list(by)
    _check_columns(summary, [*by, "metric", "mean", "std", "ci_low", "ci_high", "n_seeds", "n_cases"])
    text = summary.assign(cell=[
        f"{_fmt(row['mean'], digits)} ± {_fmt(row['std'], digits)} [{_fmt(row['ci_low'], digits)}, "
        f"{_fmt(row['ci_high'], digits)}]" for _, row in summary.iterrows()])
    wide = text.pivot(index=by, columns="metric", values="cell")[list(pd.unique(summary["metric"]))]
    counts = summary.groupby(by)[["n_seeds", "n_cases"]].max()
    order = list(dict.fromkeys(map(tuple, summary[by].to_numpy()))) if len(by) > 1 else list(pd.unique(summary[by[0]]))
    return wide.join(counts).loc[order]


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control); NaN entries stay NaN and are not counted.

    The ``i``-th smallest of ``m`` p-values becomes ``max_{j <= i} min(1, (m - j) p_(j))`` (0-based ``j``).
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def _paired_tests(differences: np.ndarray, confidence: float) -> dict[str, float]:
    """Paired t-interval and t-test, and Wilcoxon signed-rank test, of ``differences`` (variant - reference)."""
    n = len(differences)
    mean = float(differences.mean()) if n else float("nan")
    if n < 2:
        return {"mean_difference": mean, "ci_low": np.nan, "ci_high": np.nan, "t_pvalue": np.nan,
                "wilcoxon_pvalue": np.nan}
    if not differences.any():  # identical predictions: no difference, and the tests are undefined (0 / 0)
        return {"mean_difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "t_pvalue": 1.0, "wilcoxon_pvalue": 1.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant nonzero differences: std 0
        t_test = stats.ttest_1samp(differences, 0.0)
        interval = t_test.confidence_interval(confidence)
        wilcoxon = stats.wilcoxon(differences)
    return {"mean_difference": mean, "ci_low": float(interval.low), "ci_high": float(interval.high),
            "t_pvalue": float(t_test.pvalue), "wilcoxon_pvalue": float(wilcoxon.pvalue)}


def paired_comparison(
    results: pd.DataFrame,
    reference: str,
    metrics: Sequence[str] = ("dice",),
    *,
    by: str = "variant",
    seed: str = "seed",
    case: str | Sequence[str] = "id",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Every group of ``by`` against ``reference`` on the same test cases, with paired tests at two levels.

    **Across test cases** (the main test): each case's metric is averaged over the seeds that both the variant
    and the reference ran, so a pair is (variant, reference) on one test case; cases with a NaN in either are
    left out (``n_cases`` counts the pairs used). This asks whether *these trained models* differ on *these*
    cases; it does not see training variability, and cases from one video or patient are correlated, so its
    p-values are optimistic about the method.

    **Across seeds**: per seed, the mean difference over that seed's paired cases; the paired t-interval and
    t-test of those per-seed differences (NaN with fewer than two seeds) say whether the difference survives
    retraining. Both levels are Holm-corrected over the variants compared, per metric.

    Args:
        results: one row per group, seed and case.
        reference: the value of ``by`` to compare against (e.g. ``"none"``).
        metrics: metric columns to compare.
        by: the group column.
        seed: the seed column.
        case: the column(s) naming a case.
        confidence: coverage of the t-intervals.

    Returns:
        One row per variant and metric: ``by``, ``reference``, ``metric``, ``n_cases``, ``n_seeds``,
        ``reference_mean``, ``variant_mean``, ``mean_difference`` (variant - reference), ``ci_low``, ``ci_high``,
        ``wins`` / ``losses`` (cases where the variant is higher / lower), ``t_pvalue``, ``wilcoxon_pvalue``,
        ``wilcoxon_holm`` (across cases), then ``seed_ci_low``, ``seed_ci_high``, ``seed_t_pvalue`` and
        ``seed_t_holm`` (across seeds).

    Raises:
        ValueError: ``reference`` is not a group, a column is missing, or several rows per case and seed.
    """
    case, metrics = _as_list(case), list(metrics)
    _check_columns(results, [by, seed, *case, *metrics])
    _check_unique_cases(results, [by, seed, *case], case)
    groups = list(pd.unique(results[by]))
    if reference not in groups:
        raise ValueError(f"reference {reference!r} is not among the {by!r} values {groups}")
    reference_rows = results[results[by] == reference]
    rows = []
    for variant in (g for g in groups if g != reference):
        variant_rows = results[results[by] == variant]
        seeds = sorted(set(variant_rows[seed]) & set(reference_rows[seed]))
        both = [rows_.loc[rows_[seed].isin(seeds)].set_index([seed, *case])[metrics]
                for rows_ in (variant_rows, reference_rows)]
        per_seed = both[0].add_suffix("_variant").join(both[1].add_suffix("_reference"), how="inner")
        means = [frame.groupby(level=case).mean() for frame in both]
        paired = means[0].add_suffix("_variant").join(means[1].add_suffix("_reference"), how="inner")
        for metric in metrics:
            pair = paired[[f"{metric}_variant", f"{metric}_reference"]].dropna().to_numpy()
            differences = pair[:, 0] - pair[:, 1]
            seed_pairs = per_seed[[f"{metric}_variant", f"{metric}_reference"]].dropna()
            seed_differences = (seed_pairs.iloc[:, 0] - seed_pairs.iloc[:, 1]).groupby(level=seed).mean().to_numpy()
            across_seeds = _paired_tests(seed_differences, confidence)
            rows.append({
                by: variant, "reference": reference, "metric": metric, "n_cases": len(pair), "n_seeds": len(seeds),
                "reference_mean": pair[:, 1].mean() if len(pair) else np.nan,
                "variant_mean": pair[:, 0].mean() if len(pair) else np.nan,
                **_paired_tests(differences, confidence),
                "wins": int((differences > 0).sum()), "losses": int((differences < 0).sum()),
                "seed_ci_low": across_seeds["ci_low"], "seed_ci_high": across_seeds["ci_high"],
                "seed_t_pvalue": across_seeds["t_pvalue"],
            })
    table = pd.DataFrame(rows)
    if table.empty:
        raise ValueError(f"nothing to compare: {by!r} holds only the reference {reference!r}")
    for column, adjusted in (("wilcoxon_pvalue", "wilcoxon_holm"), ("seed_t_pvalue", "seed_t_holm")):
        table[adjusted] = table.groupby("metric")[column].transform(lambda p: holm(p.to_numpy()))
    order = ["n_cases", "n_seeds", "reference_mean", "variant_mean", "mean_difference", "ci_low", "ci_high", "wins",
             "losses", "t_pvalue", "wilcoxon_pvalue", "wilcoxon_holm", "seed_ci_low", "seed_ci_high", "seed_t_pvalue",
             "seed_t_holm"]
    return table[[by, "reference", "metric", *order]]


def _fmt(value: float, digits: int = 3, signed: bool = False) -> str:
    if value is None or np.isnan(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def describe_summary(summary: pd.DataFrame, metric: str, by: str = "variant", higher_is_better: bool = True) -> str:
    """One sentence ranking the groups of a :func:`summarize_runs` table by ``metric``, from its numbers.

    Example: ``"dice (mean ± std over 3 seeds, 95 % CI): both 0.712 ± 0.010 [0.687, 0.737]; ...; highest: both."``
    """
    rows = summary[summary["metric"] == metric]
    if rows.empty:
        raise ValueError(f"metric {metric!r} is not in the summary (metrics: {sorted(summary['metric'].unique())})")
    rows = rows.sort_values("mean", ascending=not higher_is_better, kind="stable")
    seeds = sorted(rows["n_seeds"].unique())
    seed_text = f"{seeds[0]} seed{'s' if seeds[0] != 1 else ''}" if len(seeds) == 1 else f"{seeds} seeds"
    parts = [f"{row[by]} {_fmt(row['mean'])} ± {_fmt(row['std'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
             for _, row in rows.iterrows()]
    best = rows.iloc[0][by]
    word = "highest" if higher_is_better else "lowest"
    return f"{metric} (mean ± std, [95 % CI], {seed_text}): " + "; ".join(parts) + f". {word.capitalize()} mean: {best}."


def describe_comparisons(comparison: pd.DataFrame, by: str = "variant", alpha: float = 0.05) -> list[str]:
    """One sentence per row of a :func:`paired_comparison` table, with the verdict its numbers support.

    A difference is called significant across test cases when the Holm-adjusted Wilcoxon p-value is below
    ``alpha``; the sentence then says whether the seeds confirm it (the Holm-adjusted per-seed paired t-test below
    ``alpha``), do not (the result may not survive retraining), or are too few to tell; a difference significant
    across seeds only is called unresolved.
    """
    sentences = []
    for _, row in comparison.iterrows():
        p_holm, p_seed = row["wilcoxon_holm"], row["seed_t_holm"]
        if np.isnan(p_holm):
            verdict = "too few paired cases for a test"
        elif p_holm < alpha:
            direction = "higher" if row["mean_difference"] > 0 else "lower"
            verdict = f"{row[by]} is significantly {direction} than {row['reference']} across test cases at α = {alpha}"
            if np.isnan(p_seed):
                verdict += "; too few seeds to check that it survives retraining"
            elif p_seed < alpha:
                verdict += f", and the {row['n_seeds']} seeds confirm it"
            else:
                verdict += f", but not consistently across the {row['n_seeds']} seeds (it may not survive retraining)"
        else:
            verdict = f"no significant difference across test cases at α = {alpha}"
            if p_seed < alpha:  # NaN compares False
                verdict += " although the seeds differ consistently: the two levels disagree, treat it as unresolved"
        sentences.append(
            f"{row[by]} vs {row['reference']}, {row['metric']}: {_fmt(row['mean_difference'], signed=True)} "
            f"(95 % CI {_fmt(row['ci_low'], signed=True)} to {_fmt(row['ci_high'], signed=True)} over "
            f"{row['n_cases']} test cases, higher on {row['wins']}, lower on {row['losses']}; Wilcoxon p = "
            f"{_fmt(row['wilcoxon_pvalue'])}, Holm-adjusted {_fmt(p_holm)}; across {row['n_seeds']} seed(s): 95 % CI "
            f"{_fmt(row['seed_ci_low'], signed=True)} to {_fmt(row['seed_ci_high'], signed=True)}, paired t p = "
            f"{_fmt(row['seed_t_pvalue'])}, Holm-adjusted {_fmt(p_seed)}): {verdict}."
        )
    return sentences
