"""Summaries over seeds, paired tests against a reference, Holm's correction and the sentences built from them."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from medseg_core.stats import (describe_comparisons, describe_summary, holm, paired_comparison, summarize_runs,
                               summary_table)


def _grid(offsets: dict[str, float], seeds=(0, 1, 2), cases=8, noise=0.02, rng_seed=0) -> pd.DataFrame:
    """Per-case results: each case has a base Dice; a variant adds its offset plus small noise per seed."""
    rng = np.random.default_rng(rng_seed)
    base = rng.uniform(0.3, 0.7, cases)
    rows = []
    for variant, offset in offsets.items():
        for seed in seeds:
            values = base + offset + rng.normal(0, noise, cases)
            for index, value in enumerate(values):
                rows.append({"variant": variant, "seed": seed, "id": f"case{index}", "class": "lipid_core",
                             "dice": value, "iou": value / (2 - value)})
    return pd.DataFrame(rows)


def test_summarize_runs_seed_unit_averages_cases_first():
    results = _grid({"none": 0.0, "both": 0.05})
    summary = summarize_runs(results, metrics=["dice"]).set_index("variant")
    seed_means = results[results["variant"] == "both"].groupby("seed")["dice"].mean()
    row = summary.loc["both"]
    assert row["mean"] == pytest.approx(seed_means.mean())
    assert row["std"] == pytest.approx(seed_means.std(ddof=1))
    assert row["n"] == 3 and row["n_seeds"] == 3 and row["n_cases"] == 8
    half = scipy_stats.t.ppf(0.975, 2) * seed_means.std(ddof=1) / np.sqrt(3)
    assert row["ci_low"] == pytest.approx(seed_means.mean() - half)


def test_summarize_runs_case_unit_averages_seeds_first():
    results = _grid({"none": 0.0})
    summary = summarize_runs(results, metrics=["dice", "iou"], unit="case")
    case_means = results.groupby("id")["dice"].mean()
    dice = summary[summary["metric"] == "dice"].iloc[0]
    assert dice["n"] == 8
    assert dice["std"] == pytest.approx(case_means.std(ddof=1))
    assert set(summary["metric"]) == {"dice", "iou"}


def test_summarize_runs_one_seed_has_no_interval():
    summary = summarize_runs(_grid({"none": 0.0}, seeds=(0,)), metrics=["dice"])
    assert summary["n_seeds"].iloc[0] == 1 and np.isnan(summary["ci_low"].iloc[0])


def test_summarize_runs_rejects_duplicate_cases_and_unknown_unit():
    results = _grid({"none": 0.0})
    two_classes = pd.concat([results, results.assign(**{"class": "lumen"})])
    with pytest.raises(ValueError, match="several rows per case"):
        summarize_runs(two_classes, metrics=["dice"])
    summarize_runs(two_classes, by=["variant", "class"], metrics=["dice"], case=["id", "class"])
    with pytest.raises(ValueError, match="unit"):
        summarize_runs(results, unit="image")
    with pytest.raises(ValueError, match="columns"):
        summarize_runs(results, metrics=["cldice"])


def test_holm_matches_its_definition():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, np.nan, 0.9])
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.4, 0.9])
    assert holm([0.6, 0.7]).max() <= 1.0


def test_paired_comparison_agrees_with_scipy_on_seed_averaged_pairs():
    results = _grid({"none": 0.0, "both": 0.05, "skip": 0.0})
    table = paired_comparison(results, "none", metrics=["dice"]).set_index("variant")
    means = results.groupby(["variant", "id"])["dice"].mean().unstack("variant")
    differences = means["both"] - means["none"]
    row = table.loc["both"]
    assert row["n_cases"] == 8 and row["n_seeds"] == 3
    assert row["mean_difference"] == pytest.approx(differences.mean())
    assert row["t_pvalue"] == pytest.approx(scipy_stats.ttest_rel(means["both"], means["none"]).pvalue)
    assert row["wilcoxon_pvalue"] == pytest.approx(scipy_stats.wilcoxon(differences).pvalue)
    assert row["ci_low"] < row["mean_difference"] < row["ci_high"]
    assert row["wins"] == (differences > 0).sum()
    assert row["wilcoxon_holm"] >= row["wilcoxon_pvalue"]
    assert set(table.index) == {"both", "skip"}


def test_paired_comparison_across_seeds_uses_per_seed_mean_differences():
    results = _grid({"none": 0.0}, cases=10, noise=0.0)
    shifts = {0: 0.10, 1: -0.10, 2: 0.12}  # the variant's advantage depends on the seed
    variant = results.assign(variant="both", dice=results["dice"] + results["seed"].map(shifts))
    row = paired_comparison(pd.concat([results, variant]), "none").iloc[0]
    test = scipy_stats.ttest_1samp(list(shifts.values()), 0.0)
    assert row["seed_t_pvalue"] == pytest.approx(test.pvalue)
    assert row["seed_ci_low"] == pytest.approx(test.confidence_interval(0.95).low)
    assert row["mean_difference"] == pytest.approx(np.mean(list(shifts.values())))
    assert row["wilcoxon_holm"] < 0.05 < row["seed_t_pvalue"] == row["seed_t_holm"]  # one comparison: no change
    assert "not consistently across the 3 seeds" in describe_comparisons(pd.DataFrame([row]))[0]
    one_seed = paired_comparison(pd.concat([results, variant])[lambda t: t["seed"] == 0], "none").iloc[0]
    assert np.isnan(one_seed["seed_t_pvalue"])
    assert "too few seeds" in describe_comparisons(pd.DataFrame([one_seed]))[0]


def test_paired_comparison_pairs_cases_by_id_not_by_row_order():
    results = _grid({"none": 0.0, "both": 0.1}, noise=0.0)
    shuffled = results.sample(frac=1.0, random_state=1)
    row = paired_comparison(shuffled, "none").iloc[0]
    assert row["mean_difference"] == pytest.approx(0.1)
    assert row["wins"] == 8 and row["losses"] == 0


def test_paired_comparison_identical_variants_and_missing_reference():
    results = _grid({"none": 0.0})
    copy = results.assign(variant="copy")
    row = paired_comparison(pd.concat([results, copy]), "none").iloc[0]
    assert row["mean_difference"] == 0 and row["wilcoxon_pvalue"] == 1.0
    with pytest.raises(ValueError, match="reference 'aspp'"):
        paired_comparison(results, "aspp")
    with pytest.raises(ValueError, match="only the reference"):
        paired_comparison(results, "none")


def test_descriptions_follow_the_numbers():
    results = _grid({"none": 0.0, "both": 0.2, "skip": 0.0}, cases=12)
    summary = summarize_runs(results, metrics=["dice"])
    sentence = describe_summary(summary, "dice")
    assert sentence.endswith("Highest mean: both.") and "3 seeds" in sentence
    lowest = summary.loc[summary["mean"].idxmin(), "variant"]
    assert describe_summary(summary, "dice", higher_is_better=False).endswith(f"Lowest mean: {lowest}.")
    sentences = dict(zip(["both", "skip"], describe_comparisons(paired_comparison(results, "none"))))
    assert "both is significantly higher than none across test cases" in sentences["both"]
    assert "the 3 seeds confirm it" in sentences["both"]
    assert "no significant difference" in sentences["skip"]
    with pytest.raises(ValueError, match="metric 'hd95'"):
        describe_summary(summary, "hd95")


def test_summary_table_is_one_readable_row_per_variant():
    results = _grid({"none": 0.0, "both": 0.05})
    summary = summarize_runs(results, metrics=["dice", "iou"])
    table = summary_table(summary)
    assert list(table.index) == ["none", "both"] and list(table.columns) == ["dice", "iou", "n_seeds", "n_cases"]
    row = summary[(summary["variant"] == "both") & (summary["metric"] == "dice")].iloc[0]
    assert table.loc["both", "dice"].startswith(f"{row['mean']:.3f} ± {row['std']:.3f} [{row['ci_low']:.3f}, ")


def test_a_difference_significant_across_seeds_only_is_called_unresolved():
    results = _grid({"none": 0.0}, cases=10, noise=0.0)
    case_noise = np.tile([0.4, -0.4], 5)  # large, mean zero, the same in every seed
    offset = results["id"].str[4:].astype(int).map(dict(enumerate(case_noise)))
    variant = results.assign(variant="both", dice=results["dice"] + 0.05 + offset + 0.001 * results["seed"])
    row = paired_comparison(pd.concat([results, variant]), "none").iloc[0]
    assert row["wilcoxon_holm"] > 0.05 > row["seed_t_holm"]
    assert "treat it as unresolved" in describe_comparisons(pd.DataFrame([row]))[0]
