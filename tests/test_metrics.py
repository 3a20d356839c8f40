"""Tests for medseg_core.metrics: hand-checkable cases, the empty-mask rule, MONAI cross-checks, summaries."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from medseg_core.metrics import (
    BINARY_METRICS,
    binary_metrics,
    class_scores,
    cldice,
    confusion_matrix,
    dice,
    hd95,
    miou_mpa,
    multiclass_metrics,
)
from medseg_core.stats import cluster_interval, summarize

monai_metrics = pytest.importorskip("monai.metrics")


def _square(size: int = 12, top: int = 2, left: int = 2, side: int = 4) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def _blob_pairs(count: int = 6, size: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` pairs of overlapping, non-empty random blob masks ``(count, size, size)``."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((count, size, size)), sigma=(0, 3, 3))
    target = noise > 0.05
    pred = (noise + 0.1 * rng.standard_normal(noise.shape)) > 0.0
    assert target.any(axis=(1, 2)).all() and pred.any(axis=(1, 2)).all()
    return pred, target


def _one_hot(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """``(N, H, W)`` label maps as MONAI's one-hot batch ``(N, K, H, W)`` float."""
    return torch.nn.functional.one_hot(torch.from_numpy(labels), num_classes).permute(0, 3, 1, 2).float()


def _as_monai(masks: np.ndarray) -> torch.Tensor:
    """``(N, H, W)`` boolean masks as MONAI's one-channel batch ``(N, 1, H, W)`` float."""
    return torch.from_numpy(masks[:, None].astype(np.float32))


# ---------------------------------------------------------------------------------------------------------------
# Hand-checkable cases
# ---------------------------------------------------------------------------------------------------------------
def test_square_against_square_shifted_by_one_column() -> None:
    target = _square()
    pred = np.roll(target, 1, axis=1)  # overlap 4 x 3 = 12 of 16 pixels each
    scores = binary_metrics(pred, target)
    assert scores["dice"] == pytest.approx(2 * 12 / 32)
    assert scores["iou"] == pytest.approx(12 / 20)
    assert scores["precision"] == pytest.approx(12 / 16)
    assert scores["recall"] == pytest.approx(12 / 16)
    assert scores["specificity"] == pytest.approx((144 - 16 - 4) / (144 - 16))
    assert scores["accuracy"] == pytest.approx((144 - 8) / 144)
    assert scores["hd95"] == pytest.approx(1.0)


@pytest.mark.parametrize("shift", [1, 3, 5])
def test_hausdorff_of_shifted_square_is_the_shift(shift: int) -> None:
    target = _square(size=24, top=6, left=6, side=6)
    assert hd95(np.roll(target, shift, axis=1), target, percentile=100) == pytest.approx(shift)


def test_hd95_of_two_single_pixels_is_their_distance() -> None:
    pred, target = np.zeros((8, 8), dtype=bool), np.zeros((8, 8), dtype=bool)
    pred[0, 0], target[3, 4] = True, True
    assert hd95(pred, target) == pytest.approx(5.0)


def test_both_empty_is_a_correct_nothing_there() -> None:
    empty = np.zeros((8, 8), dtype=bool)
    scores = binary_metrics(empty, empty)
    assert scores == {name: (0.0 if name == "hd95" else 1.0) for name in BINARY_METRICS}


@pytest.mark.parametrize("empty_side", ["pred", "target"])
def test_exactly_one_empty_gives_zero_overlap_and_undefined_hd95(empty_side: str) -> None:
    full, empty = _square(), np.zeros((12, 12), dtype=bool)
    pred, target = (empty, full) if empty_side == "pred" else (full, empty)
    scores = binary_metrics(pred, target)
    for name in ("dice", "iou", "precision", "recall", "cldice"):
        assert scores[name] == 0.0, name
    assert math.isnan(scores["hd95"])
    assert scores["specificity"] == (1.0 if empty_side == "pred" else (144 - 16) / 144)


def test_specificity_is_one_when_target_has_no_negatives() -> None:
    full = np.ones((6, 6), dtype=bool)
    assert binary_metrics(_square(size=6, side=2), full, metrics=("specificity",)) == {"specificity": 1.0}


def test_cldice_of_a_line_with_itself_is_one() -> None:
    line = np.zeros((9, 40), dtype=bool)
    line[3:6, 4:36] = True
    assert cldice(line, line) == pytest.approx(1.0)


def test_cldice_of_a_one_pixel_gap_in_a_thin_line() -> None:
    target = np.zeros((5, 70), dtype=bool)
    target[2, 5:65] = True  # a 1-pixel-wide line is its own skeleton: |S_G| = 60
    pred = target.copy()
    pred[2, 30] = False  # Tprec = 1, Tsens = 59 / 60
    assert cldice(pred, target) == pytest.approx(2 * (59 / 60) / (1 + 59 / 60))
    assert dice(pred, target) == pytest.approx(2 * 59 / 119)


def test_broken_thin_vessel_lowers_cldice_while_dice_stays_high() -> None:
    target = np.zeros((24, 70), dtype=bool)
    target[3:10, 5:65] = True  # a thick vessel
    target[16, 5:65] = True  # a thin vessel
    pred = target.copy()
    pred[16, 7:65:4] = False  # the thin vessel broken in 15 places
    scores = binary_metrics(pred, target, metrics=("dice", "cldice"))
    assert scores["dice"] > 0.95
    assert scores["cldice"] < 0.95
    assert 1 - scores["cldice"] > 3 * (1 - scores["dice"])


def test_torch_inputs_give_the_same_scores_as_numpy() -> None:
    pred, target = _blob_pairs(count=1)
    from_numpy = binary_metrics(pred[0], target[0])
    from_torch = binary_metrics(torch.from_numpy(pred[0]), torch.from_numpy(target[0]).float())
    assert from_torch == pytest.approx(from_numpy)


# ---------------------------------------------------------------------------------------------------------------
# Cross-checks against MONAI (non-empty masks: MONAI returns NaN/inf where our empty-mask rule gives a number)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_dice_iou_hd95_match_monai() -> None:
    pred, target = _blob_pairs()
    ours = [binary_metrics(p, t, metrics=("dice", "iou", "hd95")) for p, t in zip(pred, target)]
    y_pred, y = _as_monai(pred), _as_monai(target)
    expected = {
        "dice": monai_metrics.DiceMetric(include_background=True, reduction="none")(y_pred, y),
        "iou": monai_metrics.MeanIoU(include_background=True, reduction="none")(y_pred, y),
        "hd95": monai_metrics.HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")(
            y_pred, y
        ),
    }
    for name, values in expected.items():
        np.testing.assert_allclose([row[name] for row in ours], values[:, 0].numpy(), rtol=1e-5, err_msg=name)
    assert len({row["hd95"] for row in ours}) > 1  # the cases differ, so agreement is informative


def test_precision_recall_specificity_match_monai_confusion_metrics() -> None:
    pred, target = _blob_pairs(seed=1)
    matrix = monai_metrics.get_confusion_matrix(_as_monai(pred), _as_monai(target), include_background=True)
    ours = [binary_metrics(p, t) for p, t in zip(pred, target)]
    for name, monai_name in [("precision", "precision"), ("recall", "sensitivity"), ("specificity", "specificity")]:
        expected = monai_metrics.compute_confusion_matrix_metric(monai_name, matrix)[:, 0].numpy()
        np.testing.assert_allclose([row[name] for row in ours], expected, rtol=1e-5, err_msg=name)


def test_multiclass_metrics_and_class_scores_match_monai() -> None:
    rng = np.random.default_rng(2)
    smooth = ndimage.gaussian_filter(rng.standard_normal((4, 32, 32)), sigma=(0, 3, 3))
    target = np.digitize(smooth, [-0.05, 0.05])  # 3 classes
    pred = np.digitize(smooth + 0.05 * rng.standard_normal(smooth.shape), [-0.05, 0.05])
    names = ["background", "lipid", "calcium"]
    one_hot_pred, one_hot_target = _one_hot(pred, 3), _one_hot(target, 3)
    per_image_dice = monai_metrics.DiceMetric(include_background=True, reduction="none")(one_hot_pred, one_hot_target)
    for index in range(len(pred)):
        scores = multiclass_metrics(pred[index], target[index], 3, names, include_background=True)
        expected = [per_image_dice[index, c].item() for c in range(3)]
        assert [scores[f"dice_{name}"] for name in names] == pytest.approx(expected, rel=1e-5)
        assert scores["pixel_accuracy"] == pytest.approx(np.mean(pred[index] == target[index]))

    matrix = monai_metrics.get_confusion_matrix(one_hot_pred, one_hot_target, include_background=True).sum(0)
    table = class_scores(confusion_matrix(pred, target, 3), names)
    for column, monai_name in [("iou", "threat score"), ("recall", "sensitivity"), ("precision", "precision")]:
        expected = monai_metrics.compute_confusion_matrix_metric(monai_name, matrix).numpy()
        np.testing.assert_allclose(table[column].to_numpy(), expected, rtol=1e-5, err_msg=column)


def test_multiclass_metrics_skip_background_by_default() -> None:
    labels = np.array([[0, 1], [1, 1]])
    scores = multiclass_metrics(labels, labels, 2, ["background", "plaque"], metrics=("dice",))
    assert scores == {"pixel_accuracy": 1.0, "dice_plaque": 1.0}


# ---------------------------------------------------------------------------------------------------------------
# Confusion matrix, mIoU and mPA
# ---------------------------------------------------------------------------------------------------------------
def test_confusion_matrix_counts_rows_as_target() -> None:
    pred = np.array([[0, 1], [1, 1]])
    target = np.array([[0, 0], [1, 1]])
    np.testing.assert_array_equal(confusion_matrix(pred, target, 2), [[1, 1], [0, 2]])
    np.testing.assert_array_equal(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 3).sum(), 4)


def test_miou_mpa_by_hand() -> None:
    confusion = np.array([[3, 1], [2, 4]])  # IoU: 3/6, 4/7; recall: 3/4, 4/6
    miou, mpa = miou_mpa(confusion)
    assert miou == pytest.approx((3 / 6 + 4 / 7) / 2)
    assert mpa == pytest.approx((3 / 4 + 4 / 6) / 2)


def test_miou_leaves_out_classes_absent_everywhere() -> None:
    confusion = np.array([[3, 1, 0], [2, 4, 0], [0, 0, 0]])
    assert miou_mpa(confusion) == pytest.approx(miou_mpa(confusion[:2, :2]))


# ---------------------------------------------------------------------------------------------------------------
# Input errors
# ---------------------------------------------------------------------------------------------------------------
def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(12, 12\).*\(10, 12\)"):
        binary_metrics(_square(), np.zeros((10, 12), dtype=bool))


def test_batched_or_channel_masks_are_rejected_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"\(1, 12, 12\).*mask\[0\]"):
        dice(_square()[None], _square()[None])


def test_0_255_mask_raises_with_fix() -> None:
    with pytest.raises(ValueError, match="to_label_mask"):
        binary_metrics(_square(), _square().astype(np.uint8) * 255)
    with pytest.raises(ValueError, match="to_label_mask"):
        confusion_matrix(np.zeros((4, 4), dtype=np.int64), np.full((4, 4), 255), num_classes=2)


def test_unknown_metric_and_float_labels_raise() -> None:
    with pytest.raises(ValueError, match="valid names"):
        binary_metrics(_square(), _square(), metrics=("dice", "f1"))
    with pytest.raises(ValueError, match="argmax"):
        multiclass_metrics(np.zeros((4, 4)), np.zeros((4, 4), dtype=np.int64), 2)


# ---------------------------------------------------------------------------------------------------------------
# summarize
# ---------------------------------------------------------------------------------------------------------------
def test_summarize_by_hand_with_t_quantile() -> None:
    table = summarize(pd.DataFrame({"dice": [1.0, 2.0, 3.0]}))
    row = table.loc["dice"]
    assert (row["mean"], row["std"], row["n"], row["n_missing"]) == (2.0, 1.0, 3, 0)
    half_width = 4.303 / math.sqrt(3)  # t(0.975, 2 degrees of freedom) = 4.303 from a t table
    assert row["ci_low"] == pytest.approx(2.0 - half_width, rel=1e-3)
    assert row["ci_high"] == pytest.approx(2.0 + half_width, rel=1e-3)


def test_summarize_ci_contains_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"size": ["small"] * 10 + ["large"] * 400, "dice": rng.normal(0.8, 0.1, 410)})
    table = summarize(frame, by="size").xs("dice", level="metric")
    assert (table["ci_low"] < table["mean"]).all() and (table["mean"] < table["ci_high"]).all()
    width = table["ci_high"] - table["ci_low"]
    assert width["large"] < width["small"] / 4


def test_summarize_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(4)
    trials, n = 2000, 5  # with n = 5 a normal-quantile interval would cover only about 88 %
    frame = pd.DataFrame({"trial": np.repeat(np.arange(trials), n), "score": rng.normal(0.0, 1.0, trials * n)})
    table = summarize(frame, by="trial")
    coverage = ((table["ci_low"] <= 0.0) & (0.0 <= table["ci_high"])).mean()
    assert 0.93 < coverage < 0.97


def test_summarize_leaves_out_nan_and_counts_it() -> None:
    frame = pd.DataFrame(
        {"id": list("abcde"), "model": ["u", "u", "u", "v", "v"], "hd95": [1.0, np.nan, 3.0, 4.0, np.nan]}
    )
    table = summarize(frame, by="model")
    assert list(table.index) == [("u", "hd95"), ("v", "hd95")]  # the string "id" column is not a metric
    assert table.loc[("u", "hd95"), "mean"] == pytest.approx(2.0)
    assert (table.loc[("u", "hd95"), "n"], table.loc[("u", "hd95"), "n_missing"]) == (2, 1)
    assert table.loc[("v", "hd95"), "n"] == 1 and math.isnan(table.loc[("v", "hd95"), "ci_low"])


def test_summarize_unknown_column_raises() -> None:
    with pytest.raises(ValueError, match="not in the table"):
        summarize(pd.DataFrame({"dice": [1.0]}), by="model")


def test_summarize_skips_bookkeeping_columns_by_default():
    table = pd.DataFrame({"dice": [0.5, 0.7], "truth_pixels": [10, 20], "seed": [0, 1]})
    assert summarize(table).index.tolist() == ["dice"]
    assert summarize(table, metrics=["truth_pixels"]).index.tolist() == ["truth_pixels"]


def test_summarize_with_clusters_averages_them_and_stays_in_bounds() -> None:
    rng = np.random.default_rng(5)
    patients = np.repeat([f"p{i}" for i in range(6)], 8)
    frame = pd.DataFrame({"cluster": patients, "dice": np.clip(rng.normal(0.9, 0.1, 48), 0, 1)})
    clustered = summarize(frame, metrics=["dice"], cluster="cluster").loc["dice"]
    assert clustered["n_clusters"] == 6
    mean, low, high = cluster_interval(frame["dice"], frame["cluster"], bounds=(0, 1))
    assert (clustered["mean"], clustered["ci_low"], clustered["ci_high"]) == (mean, low, high) and 0 <= low < high <= 1
    two = summarize(frame[frame["cluster"].isin(["p0", "p1"])], metrics=["dice"], cluster="cluster").loc["dice"]
    assert math.isnan(two["ci_low"]) and two["n_clusters"] == 2  # 16 frames of 2 patients: no interval
    assert not math.isnan(summarize(frame[frame["cluster"].isin(["p0", "p1"])], metrics=["dice"]).loc["dice", "ci_low"])
