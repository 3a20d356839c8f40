"""Statistics: cluster bootstrap inside the bounds, per-seed values with few seeds, effect sizes, foreground split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseg_core.exercises import _pretraining_effect, _transfer_results
from medseg_core.stats import (MIN_SEEDS_FOR_INTERVAL, bootstrap_interval, describe_comparisons, describe_summary,
                               detectable_difference, foreground_split, paired_comparison, paired_seed_effect,
                               summarize_runs, summary_table)


def _grid(offsets: dict[str, float], seeds=(0, 1, 2), clusters=4, per_cluster=5, noise=0.02,
          rng_seed=0) -> pd.DataFrame:
    """Per-case results in clusters (videos): a case's base Dice shares its cluster's level; variants add offsets."""
    rng = np.random.default_rng(rng_seed)
    level = rng.uniform(0.3, 0.7, clusters)
    base = np.repeat(level, per_cluster) + rng.normal(0, 0.05, clusters * per_cluster)
    rows = []
    for variant, offset in offsets.items():
        for seed in seeds:
            values = np.clip(base + offset + rng.normal(0, noise, len(base)), 0, 1)
            for index, value in enumerate(values):
                rows.append({"variant": variant, "seed": seed, "id": f"v{index // per_cluster}/{index:05d}",
                             "cluster": f"v{index // per_cluster}", "dice": value, "iou": value / (2 - value)})
    return pd.DataFrame(rows)


def test_bootstrap_interval_resamples_clusters_and_stays_in_bounds():
    clusters = np.repeat(list("abcdef"), 10)
    values = np.where(np.isin(clusters, ["a", "b", "c"]), 1.0, 0.0)  # three all-1 clusters, three all-0
    independent = bootstrap_interval(values)
    clustered = bootstrap_interval(values, clusters)
    assert 0 <= clustered[0] < independent[0] < 0.5 < independent[1] < clustered[1] <= 1  # clustering widens
    assert np.isnan(bootstrap_interval(values, np.repeat(list("abcd"), 15))[0])  # 4 clusters: no interval
    near_one = bootstrap_interval(np.r_[np.ones(30), 0.9], None)
    assert near_one[1] <= 1.0


def test_few_seeds_list_their_values_instead_of_an_interval():
    results = _grid({"none": 0.0, "both": 0.05})
    summary = summarize_runs(results, metrics=["dice"]).set_index("variant")
    row = summary.loc["both"]
    seed_means = results[results["variant"] == "both"].groupby("seed")["dice"].mean()
    assert row["mean"] == pytest.approx(seed_means.mean()) and np.isnan(row["ci_low"])
    assert row["per_seed"] == ", ".join(f"{s}: {v:.3f}" for s, v in seed_means.items())
    assert "(seeds 0: " in summary_table(summarize_runs(results, metrics=["dice"])).loc["both", "dice"]
    many = summarize_runs(_grid({"a": 0.0}, seeds=range(MIN_SEEDS_FOR_INTERVAL)), metrics=["dice"]).iloc[0]
    assert 0 <= many["ci_low"] < many["mean"] < many["ci_high"] <= 1


def test_case_unit_bootstraps_over_clusters():
    results = _grid({"a": 0.0}, clusters=6)
    by_cluster = summarize_runs(results, metrics=["dice"], unit="case").iloc[0]
    by_case = summarize_runs(results.drop(columns="cluster"), metrics=["dice"], unit="case").iloc[0]
    assert by_cluster["n_clusters"] == 6 and by_case["n_clusters"] == 30
    few = summarize_runs(_grid({"a": 0.0}, clusters=3), metrics=["dice"], unit="case").iloc[0]
    assert np.isnan(few["ci_low"])  # three videos cannot give an interval
    assert by_cluster["ci_high"] - by_cluster["ci_low"] > by_case["ci_high"] - by_case["ci_low"]  # clustering widens


def test_paired_comparison_reports_effects_with_family_wise_intervals():
    results = _grid({"none": 0.0, "both": 0.10, "skip": 0.0}, clusters=8)
    table = paired_comparison(results, "none", ["dice"]).set_index("variant")
    assert table["confidence"].iloc[0] == pytest.approx(1 - 0.05 / 2)  # two variants compared
    both, skip = table.loc["both"], table.loc["skip"]
    assert both["ci_low"] > 0 and both["seeds_agree"] and both["n_clusters"] == 8
    assert skip["ci_low"] < 0 < skip["ci_high"]
    assert 0 < skip["detectable"] < 0.5 and np.isnan(both["seed_ci_low"])  # 3 seeds: no seed interval
    few = paired_comparison(_grid({"none": 0.0, "both": 0.1}, clusters=2), "none", ["dice"])
    assert np.isnan(few.loc[0, "ci_low"]) and "cannot give an interval" in describe_comparisons(few)[0]
    sentences = dict(zip(["both", "skip"], describe_comparisons(paired_comparison(results, "none", ["dice"]))))
    assert "higher than none on these test cases, and all 3 seeds agree" in sentences["both"]
    assert "no difference shown; this design detects about" in sentences["skip"]
    assert "p =" not in sentences["both"]  # no saturated p-value as evidence


def test_detectable_difference_shrinks_with_more_clusters():
    rng = np.random.default_rng(0)
    assert detectable_difference(rng.normal(0, 0.1, 40)) < detectable_difference(rng.normal(0, 0.1, 10))
    assert np.isnan(detectable_difference([0.1]))


def test_foreground_split_keeps_empty_frames_apart():
    results = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "class": "lipid_core", "cluster": ["p1", "p1", "p2", "p2"],
        "dice": [0.8, 0.6, 1.0, 0.0], "iou": [0.7, 0.4, 1.0, 0.0],
        "truth_pixels": [50, 40, 0, 0], "predicted_pixels": [60, 30, 0, 7],
    })
    row = foreground_split(results).iloc[0]
    assert row["foreground_frames"] == 2 and row["dice"] == pytest.approx(0.7)
    assert row["empty_frames"] == 2 and row["false_alarm_rate"] == 0.5 and row["false_alarm_pixels"] == 3.5


def test_describe_summary_names_the_unit_and_the_seeds():
    summary = summarize_runs(_grid({"none": 0.0, "both": 0.05}), metrics=["dice"])
    sentence = describe_summary(summary, "dice")
    assert sentence.startswith("dice (mean over seeds, 3 seeds): both") and sentence.endswith("Highest mean: both.")
    with pytest.raises(ValueError, match="not in the summary"):
        describe_summary(summary, "hd95")


def test_paired_seed_effect_pairs_arms_by_seed_and_case():
    results = _transfer_results()
    plaque = results[results["truth_pixels"] > 0]
    paired, effect = paired_seed_effect(plaque, "start", "synthetic", "scratch", by="train_frames")
    assert set(paired["start"]) == {"synthetic − scratch"}
    per_seed = paired.groupby(["train_frames", "seed"])["dice_difference"].mean()
    pd.testing.assert_series_equal(per_seed, _pretraining_effect(results), check_names=False)
    assert effect["train_frames"].tolist() == [4, 16] and effect["n_seeds"].tolist() == [3, 3]
    assert effect["seeds_agree"].all()  # the synthetic start gains in every seed by construction
    assert effect["detectable"].isna().all()  # 3 seeds: below the 5 a spread needs
    assert effect.loc[0, "mean"] > effect.loc[1, "mean"] > 0  # a larger gain at n = 4 than at n = 16
