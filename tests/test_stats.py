"""Statistics: cluster t-intervals that cover, per-seed values with few seeds, effect sizes, foreground split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medseg_core.exercises import _pretraining_effect, _transfer_results
from scipy import stats as scipy_stats

from medseg_core.stats import (MIN_SEEDS_FOR_INTERVAL, cluster_interval, describe_comparisons, describe_summary,
                               detectable_difference, detectable_effect_size, family_confidence, foreground_split,
                               paired_comparison, paired_seed_effect, summarize_runs, summary_table)


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


def test_cluster_interval_averages_clusters_first_and_stays_in_bounds():
    clusters = np.repeat(list("abcdef"), 10)
    values = np.where(np.isin(clusters, ["a", "b", "c"]), 1.0, 0.0)  # three all-1 clusters, three all-0
    _, *independent = cluster_interval(values)
    mean, *clustered = cluster_interval(values, clusters, bounds=(0, 1))
    assert mean == 0.5 and 0 <= clustered[0] < independent[0] < 0.5 < independent[1] < clustered[1] <= 1
    assert cluster_interval([0.2, 0.4, 0.9], ["a", "a", "b"])[0] == pytest.approx(0.6)  # each cluster weighs once
    assert np.isnan(cluster_interval(values, np.repeat(list("ab"), 30))[1])  # 2 clusters: no interval
    assert cluster_interval(np.r_[np.ones(30), 0.9], None, bounds=(0, 1))[2] <= 1.0


def _skewed_or_normal(rng: np.random.Generator, skewed: bool, size) -> np.ndarray:
    """Mean-0, sd-0.08 draws: normal, or gamma(4) (skewness 1) shifted and scaled."""
    return (rng.gamma(4, 1, size) - 4) / 2 * 0.08 if skewed else rng.normal(0, 0.08, size)


def _single_coverage(sizes_of, clusters: int, skewed: bool, repeats: int, rng: np.random.Generator) -> float:
    """Share of simulated designs whose nominal-95 % interval (cluster_interval) holds the true mean 0."""
    held = 0
    for _ in range(repeats):
        labels = np.repeat(np.arange(clusters), sizes_of(clusters))
        values = _skewed_or_normal(rng, skewed, clusters)[labels] + rng.normal(0, 0.05, len(labels))
        _, low, high = cluster_interval(values, labels)
        held += low <= 0 <= high
    return held / repeats


def _family_coverage(sizes_of, clusters: int, skewed: bool, repeats: int, rng: np.random.Generator) -> float:
    """Share of simulated ablations in which all 4 intervals against the reference (family level, 95 %) hold the
    true difference 0: 5 variants scored on the same frames, each with its own variant-by-cluster effect and frame
    noise (so the 4 paired differences share the reference's and are correlated, as in a grid)."""
    held = 0
    level = family_confidence(0.95, 4)
    for _ in range(repeats):
        labels = np.repeat(np.arange(clusters), sizes_of(clusters))
        scores = _skewed_or_normal(rng, skewed, (5, clusters))[:, labels] + rng.normal(0, 0.05, (5, len(labels)))
        held += all(low <= 0 <= high for _, low, high in
                    (cluster_interval(scores[v] - scores[0], labels, confidence=level) for v in range(1, 5)))
    return held / repeats


@pytest.mark.parametrize("clusters", [3, 4, 5, 10, 20])
@pytest.mark.parametrize("skewed", [False, True], ids=["normal", "skewed"])
def test_cluster_intervals_cover_at_few_unequal_clusters(clusters, skewed):
    """Nominal 95 % covers >= 0.93, alone (6,000 simulated designs: standard error 0.003) and for a family of 4
    comparisons with one reference (2,000 designs: 0.005); clusters of unequal size (5 clusters: 3, 3, 3, 2, 2
    frames as in the former ECA grid; else 1-6 frames), cluster effects normal or skewed (skewness 1), frame noise
    on top. Measured with 40,000 designs: skewness 1.4 gives 0.93 alone at 5 clusters, skewness 2 about 0.91-0.92."""
    rng = np.random.default_rng(clusters + 100 * skewed)
    sizes_of = (lambda g: np.array([3, 3, 3, 2, 2])) if clusters == 5 else (lambda g: rng.integers(1, 7, g))
    assert _single_coverage(sizes_of, clusters, skewed, 6000, rng) >= 0.93
    if clusters >= 5:
        assert _family_coverage(sizes_of, clusters, skewed, 2000, rng) >= 0.93


def test_few_seeds_list_their_values_instead_of_an_interval():
    results = _grid({"none": 0.0, "both": 0.05})
    summary = summarize_runs(results, metrics=["dice"]).set_index("variant")
    row = summary.loc["both"]
    seed_means = results[results["variant"] == "both"].groupby("seed")["dice"].mean()
    assert row["mean"] == pytest.approx(seed_means.mean()) and np.isnan(row["ci_low"])
    assert row["per_seed"] == ", ".join(f"{s}: {v:.3f}" for s, v in seed_means.items())
    assert "(seeds 0: " in summary_table(summarize_runs(results, metrics=["dice"])).loc["both", "dice"]
    many = summarize_runs(_grid({"a": 0.0}, seeds=range(MIN_SEEDS_FOR_INTERVAL)), metrics=["dice"]).iloc[0]
    assert row["n_clusters"] == 4
    assert 0 <= many["ci_low"] < many["mean"] < many["ci_high"] <= 1


def test_case_unit_draws_intervals_over_clusters():
    results = _grid({"a": 0.0}, clusters=6)
    by_cluster = summarize_runs(results, metrics=["dice"], unit="case").iloc[0]
    by_case = summarize_runs(results.drop(columns="cluster"), metrics=["dice"], unit="case").iloc[0]
    assert by_cluster["n_clusters"] == 6 and by_case["n_clusters"] == 30
    few = summarize_runs(_grid({"a": 0.0}, clusters=2), metrics=["dice"], unit="case").iloc[0]
    assert np.isnan(few["ci_low"])  # two videos cannot give an interval
    seed_unit = summarize_runs(results, metrics=["dice"], unit="seed").iloc[0]
    assert seed_unit["mean"] == pytest.approx(by_cluster["mean"])  # one estimate, two units of spread
    assert by_cluster["ci_high"] - by_cluster["ci_low"] > by_case["ci_high"] - by_case["ci_low"]  # clustering widens


def test_paired_comparison_reports_effects_with_family_wise_intervals():
    results = _grid({"none": 0.0, "both": 0.10, "skip": 0.0}, clusters=8)
    table = paired_comparison(results, "none", ["dice"]).set_index("variant")
    assert table["confidence"].iloc[0] == pytest.approx(1 - 0.05 / 2)  # two variants compared
    both, skip = table.loc["both"], table.loc["skip"]
    assert both["ci_low"] > 0 and both["seeds_agree"] and both["n_clusters"] == 8
    assert skip["ci_low"] < 0 < skip["ci_high"]
    assert 0 < skip["detectable"] < 0.5 and np.isnan(both["seed_ci_low"])  # 3 seeds: no seed interval
    assert both["verdict"] == "these models only" and skip["verdict"] == "not shown"  # 3 seeds: not across seeds
    few = paired_comparison(_grid({"none": 0.0, "both": 0.1}, clusters=2), "none", ["dice"])
    assert np.isnan(few.loc[0, "ci_low"]) and "gives no interval" in describe_comparisons(few)[0]
    sentences = dict(zip(["both", "skip"], describe_comparisons(table.reset_index())))
    assert "higher than none on test videos/patients like these for these trained models, but not shown across seeds" in sentences["both"]
    assert "no difference shown; this design detects about" in sentences["skip"]
    assert all("family: 2 comparisons with none on dice, 97.5 % each" in s for s in sentences.values())
    assert "p =" not in sentences["both"]  # no saturated p-value as evidence


def test_an_effect_is_shown_only_when_cases_and_seeds_agree_at_the_family_level():
    results = _grid({"none": 0.0, "both": 0.10, "skip": 0.0}, clusters=8, seeds=range(5))
    table = paired_comparison(results, "none", ["dice"]).set_index("variant")
    assert table.loc["both", "verdict"] == "shown" and table.loc["both", "seed_ci_low"] > 0
    assert "both is higher than none on test videos/patients like these, and across seeds" in describe_comparisons(
        table.reset_index())[0]
    level = table.loc["both", "confidence"]
    seed_values = results.groupby(["variant", "seed", "cluster"])["dice"].mean().groupby(["variant", "seed"]).mean()
    differences = (seed_values["both"] - seed_values["none"]).to_numpy()
    half = scipy_stats.t.ppf((1 + level) / 2, 4) * differences.std(ddof=1) / np.sqrt(5)
    assert table.loc["both", "seed_ci_low"] == pytest.approx(differences.mean() - half)  # the family's level


def test_detectable_difference_shrinks_with_more_clusters():
    rng = np.random.default_rng(0)
    assert detectable_difference(rng.normal(0, 0.1, 40)) < detectable_difference(rng.normal(0, 0.1, 10))
    assert np.isnan(detectable_difference([0.1, 0.2]))
    values = rng.normal(0, 0.1, 5)
    assert detectable_difference(values, alpha=0.0125) == pytest.approx(detectable_effect_size(5, 0.0125) * values.std(ddof=1))


@pytest.mark.parametrize("n, alpha", [(5, 0.05), (5, 0.0125), (10, 0.05)])
def test_detectable_effect_size_has_the_stated_power(n, alpha):
    """A paired t-test on n normal differences of the detectable size rejects in about 80 % of simulated designs."""
    effect = detectable_effect_size(n, alpha)
    samples = np.random.default_rng(n).normal(effect, 1.0, size=(20000, n))
    rejected = scipy_stats.ttest_1samp(samples, 0.0, axis=1).pvalue < alpha
    assert rejected.mean() == pytest.approx(0.8, abs=0.015)
    assert effect > (scipy_stats.norm.ppf(1 - alpha / 2) + scipy_stats.norm.ppf(0.8)) / np.sqrt(n)  # z understates


def test_foreground_split_keeps_empty_frames_apart():
    results = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "class": "lipid_core", "cluster": ["p1", "p1", "p2", "p2"],
        "dice": [0.8, 0.6, 1.0, 0.0], "iou": [0.7, 0.4, 1.0, 0.0],
        "truth_pixels": [50, 40, 0, 0], "predicted_pixels": [60, 30, 0, 7],
    })
    row = foreground_split(results).iloc[0]
    assert row["foreground_frames"] == 2 and row["dice"] == pytest.approx(0.7)
    assert row["empty_frames"] == 2 and row["false_alarm_rate"] == 0.5 and row["false_alarm_pixels"] == 3.5
    assert row["n_clusters"] == 2 and row["n_seeds"] == 1


def test_false_alarm_rate_is_the_mean_per_seed_rate_not_any_seed():
    """Four empty frames of one patient; seed 1 flags all of them, seeds 0 and 2 none: the rate is 1/3, not 1."""
    rows = [{"id": f"f{i}", "cluster": "p1", "seed": seed, "dice": float(seed != 1), "truth_pixels": 0,
             "predicted_pixels": 5 if seed == 1 else 0} for seed in range(3) for i in range(4)]
    row = foreground_split(pd.DataFrame(rows), metrics=["dice"]).iloc[0]
    assert row["false_alarm_rate"] == pytest.approx(1 / 3) and row["false_alarm_rate_any_seed"] == 1.0
    assert row["false_alarm_rate_per_seed"] == "0: 0.000, 1: 1.000, 2: 0.000" and row["n_seeds"] == 3


def test_describe_summary_names_the_unit_and_the_seeds():
    summary = summarize_runs(_grid({"none": 0.0, "both": 0.05}), metrics=["dice"])
    sentence = describe_summary(summary, "dice")
    assert sentence.startswith("dice (mean over seeds, 3 seeds): both") and sentence.endswith("Highest mean: both (a ranking, not an effect: see the paired comparisons).")
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
    _, one_patient = paired_seed_effect(plaque.assign(cluster="001"), "start", "synthetic", "scratch", by="train_frames")
    assert one_patient["n_clusters"].tolist() == [1, 1]  # one pullback is one cluster, whatever its frames
    assert effect.loc[0, "mean"] > effect.loc[1, "mean"] > 0  # a larger gain at n = 4 than at n = 16


def test_distance_differences_are_not_clipped_to_the_dice_range():
    """hd95 is in pixels: a paired difference of -5 px keeps its interval around -5, not inside [-1, 1]."""
    results = _grid({"none": 0.0, "both": 0.0}, clusters=6, seeds=range(5))
    results["hd95"] = 20.0 + np.where(results["variant"] == "both", -5.0, 0.0) + np.random.default_rng(1).normal(
        0, 1.0, len(results))
    row = paired_comparison(results, "none", ["hd95"]).iloc[0]
    assert row["ci_low"] < row["mean_difference"] < row["ci_high"] < -3 and row["seed_ci_low"] < -3


def test_frames_are_told_apart_by_id_within_their_cluster_and_rates_weigh_clusters_alike():
    """Two videos both number a frame 00001 (one with foreground, one empty); patient A has 1 empty frame, flagged,
    patient B 9 empty frames, none flagged: per patient 1.0 and 0.0, so 0.5, any seed weighted the same way."""
    rows = [{"id": "00001", "cluster": "A", "dice": 0.7, "truth_pixels": 10, "predicted_pixels": 8},
            {"id": "00002", "cluster": "A", "dice": 0.0, "truth_pixels": 0, "predicted_pixels": 3},
            *({"id": f"{i:05d}", "cluster": "B", "dice": 1.0, "truth_pixels": 0, "predicted_pixels": 0}
              for i in range(1, 10))]
    row = foreground_split(pd.DataFrame(rows), metrics=["dice"]).iloc[0]
    assert (row["foreground_frames"], row["empty_frames"]) == (1, 10)
    assert row["false_alarm_rate"] == pytest.approx(0.5) and row["false_alarm_rate_any_seed"] == pytest.approx(0.5)
