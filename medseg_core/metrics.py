"""Segmentation metrics per image, per class and per dataset (summaries over cases are :mod:`medseg_core.stats`).

This module owns how predictions are scored; :mod:`medseg_core.evaluation` calls it per case and builds the
tables. Inputs are hard masks (threshold probabilities first), as numpy arrays or torch tensors (any device):

* binary metrics take a boolean (or 0/1) prediction and target of shape ``(H, W)``;
* multiclass metrics take integer label maps ``(H, W)`` with values in ``[0, num_classes)``.

Metrics (``TP, FP, FN, TN`` are pixel counts):

* ``dice = 2TP / (2TP + FP + FN)``, ``iou = TP / (TP + FP + FN)``, ``precision = TP / (TP + FP)``,
  ``recall = TP / (TP + FN)`` (sensitivity), ``specificity = TN / (TN + FP)``,
  ``accuracy = (TP + TN) / (H * W)``.
* ``hd95``: 95th-percentile symmetric Hausdorff distance in pixels between the boundaries (mask minus its
  4-connected erosion, pixels on the image border count as boundary), with Euclidean distance transforms. Like
  MONAI's ``HausdorffDistanceMetric(percentile=95)``, it is the larger of the two directed 95th percentiles
  (prediction -> target and target -> prediction). medpy's ``hd95`` instead takes the 95th percentile of both
  directions pooled, which can give a smaller value.
* ``cldice``: centreline Dice (Shit et al., "clDice - a Novel Topology-Preserving Loss Function for Tubular
  Structure Segmentation", CVPR 2021) on :func:`skimage.morphology.skeletonize` skeletons:
  ``Tprec = |S_P & V_G| / |S_P|``, ``Tsens = |S_G & V_P| / |S_G|``, ``clDice = 2 Tprec Tsens / (Tprec + Tsens)``.

Empty-mask rule (applied by every function here):

* prediction and target both empty (a correct "nothing there"): dice, iou, precision, recall, cldice = 1 and
  hd95 = 0;
* exactly one of them empty: dice, iou, precision, recall, cldice = 0 and hd95 = NaN (undefined);
  :func:`medseg_core.stats.summarize` leaves NaN out of the mean and reports how many values it left out (``n_missing``);
* specificity with no negative pixels in the target = 1.

Dataset-level scores follow the parent DeepLabV3+ repository: :func:`confusion_matrix` accumulates pixel counts
over all images, :func:`miou_mpa` averages per-class IoU (mIoU) and per-class recall ("mean pixel accuracy",
mPA) over the classes present. Unlike the parent repository, a class absent from both prediction and target
is left out of the means (NaN) instead of counting as 0.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import ndimage
from skimage.morphology import skeletonize

__all__ = [
    "BINARY_METRICS",
    "dice",
    "iou",
    "precision",
    "recall",
    "specificity",
    "hd95",
    "cldice",
    "binary_metrics",
    "UNIT_INTERVAL_METRICS",
    "DISTANCE_METRICS",
    "multiclass_metrics",
    "confusion_matrix",
    "class_scores",
    "miou_mpa",
]

BINARY_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "hd95", "cldice")
UNIT_INTERVAL_METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "cldice")
"""Metrics that lie in [0, 1] (their means and intervals are kept there)."""
DISTANCE_METRICS: tuple[str, ...] = ("hd95",)
"""Metrics in pixels, at or above 0 (lower is better)."""
ArrayLike = np.ndarray | torch.Tensor
_MASK_FIX = "threshold probabilities (probs > 0.5) and convert 0/255 masks with medseg_core.data.io.to_label_mask"


# ----------------------------------------------------------------------------------------------------------------
# Input conversion and checks
# ----------------------------------------------------------------------------------------------------------------
def _to_numpy(array: ArrayLike) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _binary_pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``pred`` and ``target`` as boolean ``(H, W)`` arrays, or raise ``ValueError``."""
    arrays = []
    for name, array in (("pred", _to_numpy(pred)), ("target", _to_numpy(target))):
        if array.ndim != 2:
            raise ValueError(
                f"{name} must be a single (H, W) mask, got shape {array.shape}; "
                "select one image and channel first, e.g. mask[0] for a (1, H, W) mask"
            )
        if array.dtype != bool:
            if np.any((array != 0) & (array != 1)):
                raise ValueError(
                    f"{name} must hold only 0/1 (or bool), got values up to {array.max()}: {_MASK_FIX}"
                )
            array = array.astype(bool)
        arrays.append(array)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"pred shape {arrays[0].shape} does not match target shape {arrays[1].shape}")
    return arrays[0], arrays[1]


def _label_pair(pred: ArrayLike, target: ArrayLike, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return integer label maps of equal shape with values in ``[0, num_classes)``, or raise ``ValueError``."""
    arrays = []
    for name, array in (("pred", _to_numpy(pred)), ("target", _to_numpy(target))):
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}; use argmax first")
        if array.size and (array.min() < 0 or array.max() >= num_classes):
            raise ValueError(
                f"{name} holds class indices in [{array.min()}, {array.max()}] but num_classes={num_classes} "
                f"(indices 0..{num_classes - 1}): {_MASK_FIX}"
            )
        arrays.append(array.astype(np.int64))
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"pred shape {arrays[0].shape} does not match target shape {arrays[1].shape}")
    return arrays[0], arrays[1]


# ----------------------------------------------------------------------------------------------------------------
# Per-image binary metrics on validated boolean arrays
# ----------------------------------------------------------------------------------------------------------------
def _ratio(numerator: int, denominator: int, value_if_undefined: float) -> float:
    return float(numerator) / denominator if denominator else value_if_undefined


def _count_scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Dice, IoU, precision, recall, specificity and accuracy from one pass of pixel counts."""
    tp = int(np.count_nonzero(pred & target))
    fp = int(np.count_nonzero(pred & ~target))
    fn = int(np.count_nonzero(~pred & target))
    tn = pred.size - tp - fp - fn
    both_empty = 1.0 if tp + fp + fn == 0 else 0.0
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
        "specificity": _ratio(tn, tn + fp, 1.0),
        "accuracy": _ratio(tp + tn, pred.size, 1.0),
    }


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def _hausdorff(pred: np.ndarray, target: np.ndarray, percentile: float) -> float:
    pred_any, target_any = pred.any(), target.any()
    if not pred_any and not target_any:
        return 0.0
    if not pred_any or not target_any:
        return float("nan")
    pred_edge, target_edge = _boundary(pred), _boundary(target)
    to_target = ndimage.distance_transform_edt(~target_edge)[pred_edge]
    to_pred = ndimage.distance_transform_edt(~pred_edge)[target_edge]
    return float(max(np.percentile(to_target, percentile), np.percentile(to_pred, percentile)))


def _cldice(pred: np.ndarray, target: np.ndarray) -> float:
    pred_any, target_any = pred.any(), target.any()
    if not pred_any and not target_any:
        return 1.0
    if not pred_any or not target_any:
        return 0.0
    pred_skeleton, target_skeleton = skeletonize(pred), skeletonize(target)
    topology_precision = np.count_nonzero(pred_skeleton & target) / np.count_nonzero(pred_skeleton)
    topology_sensitivity = np.count_nonzero(target_skeleton & pred) / np.count_nonzero(target_skeleton)
    total = topology_precision + topology_sensitivity
    return float(2.0 * topology_precision * topology_sensitivity / total) if total else 0.0


def dice(pred: ArrayLike, target: ArrayLike) -> float:
    """Dice ``2TP / (2TP + FP + FN)`` of boolean masks ``(H, W)`` (empty-mask rule in the module docstring)."""
    return _count_scores(*_binary_pair(pred, target))["dice"]


def iou(pred: ArrayLike, target: ArrayLike) -> float:
    """Intersection over union (Jaccard) ``TP / (TP + FP + FN)`` of boolean masks ``(H, W)``."""
    return _count_scores(*_binary_pair(pred, target))["iou"]


def precision(pred: ArrayLike, target: ArrayLike) -> float:
    """Precision ``TP / (TP + FP)`` of boolean masks ``(H, W)``."""
    return _count_scores(*_binary_pair(pred, target))["precision"]


def recall(pred: ArrayLike, target: ArrayLike) -> float:
    """Recall (sensitivity) ``TP / (TP + FN)`` of boolean masks ``(H, W)``."""
    return _count_scores(*_binary_pair(pred, target))["recall"]


def specificity(pred: ArrayLike, target: ArrayLike) -> float:
    """Specificity ``TN / (TN + FP)`` of boolean masks ``(H, W)``; 1 when the target has no negatives."""
    return _count_scores(*_binary_pair(pred, target))["specificity"]


def hd95(pred: ArrayLike, target: ArrayLike, percentile: float = 95.0) -> float:
    """Symmetric percentile Hausdorff distance in pixels between the boundaries of boolean masks ``(H, W)``.

    Args:
        pred: predicted mask ``(H, W)``.
        target: reference mask ``(H, W)``.
        percentile: 95 for HD95, 100 for the classical Hausdorff distance.

    Returns:
        ``max(P_q(d(pred -> target)), P_q(d(target -> pred)))``; 0 if both masks are empty, NaN if one is.
    """
    return _hausdorff(*_binary_pair(pred, target), percentile)


def cldice(pred: ArrayLike, target: ArrayLike) -> float:
    """Centreline Dice (Shit et al., CVPR 2021) of boolean masks ``(H, W)`` via skimage skeletons."""
    return _cldice(*_binary_pair(pred, target))


def binary_metrics(
    pred: ArrayLike, target: ArrayLike, metrics: Sequence[str] = BINARY_METRICS
) -> dict[str, float]:
    """Score one binary prediction against its target.

    Args:
        pred: predicted mask ``(H, W)``, bool or 0/1.
        target: reference mask ``(H, W)``, bool or 0/1.
        metrics: names from :data:`BINARY_METRICS`.

    Returns:
        ``{name: value}`` in the order of ``metrics``.

    Example:
        >>> binary_metrics(np.eye(4, dtype=bool), np.eye(4, dtype=bool), metrics=("dice", "hd95"))
        {'dice': 1.0, 'hd95': 0.0}
    """
    unknown = [name for name in metrics if name not in BINARY_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; valid names: {', '.join(BINARY_METRICS)}")
    pred_mask, target_mask = _binary_pair(pred, target)
    scores = _count_scores(pred_mask, target_mask)
    if "hd95" in metrics:
        scores["hd95"] = _hausdorff(pred_mask, target_mask, 95.0)
    if "cldice" in metrics:
        scores["cldice"] = _cldice(pred_mask, target_mask)
    return {name: scores[name] for name in metrics}


def multiclass_metrics(
    pred_labels: ArrayLike,
    target_labels: ArrayLike,
    num_classes: int,
    class_names: Sequence[str] | None = None,
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall", "specificity", "hd95"),
    include_background: bool = False,
) -> dict[str, float]:
    """Binary metrics of each class (one class against the rest) for one label map.

    Args:
        pred_labels: predicted class indices ``(H, W)``.
        target_labels: reference class indices ``(H, W)``.
        num_classes: number of classes ``K``; labels must lie in ``[0, K)``.
        class_names: ``K`` names used in the keys (default ``"class0"``, ``"class1"``, ...).
        metrics: names from :data:`BINARY_METRICS`.
        include_background: also score class 0.

    Returns:
        ``{"pixel_accuracy": ..., "<metric>_<class name>": ...}``, e.g. ``{"dice_plaque": 0.8, ...}``.
    """
    names = list(class_names) if class_names is not None else [f"class{index}" for index in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} entries but num_classes={num_classes}")
    pred, target = _label_pair(pred_labels, target_labels, num_classes)
    if pred.ndim != 2:
        raise ValueError(f"label maps must have shape (H, W), got {pred.shape}; score one image at a time")
    scores: dict[str, float] = {"pixel_accuracy": float(np.mean(pred == target))}
    for index in range(0 if include_background else 1, num_classes):
        per_class = binary_metrics(pred == index, target == index, metrics)
        scores.update({f"{metric}_{names[index]}": value for metric, value in per_class.items()})
    return scores


# ----------------------------------------------------------------------------------------------------------------
# Dataset-level scores from a confusion matrix
# ----------------------------------------------------------------------------------------------------------------
def confusion_matrix(pred: ArrayLike, target: ArrayLike, num_classes: int) -> np.ndarray:
    """Pixel confusion matrix ``(K, K)`` int64: rows are target classes, columns predicted classes.

    Args:
        pred: predicted class indices, any shape (one image ``(H, W)`` or a batch ``(B, H, W)``).
        target: reference class indices of the same shape.
        num_classes: ``K``.

    Sum the matrices of all images to score a dataset with :func:`miou_mpa`.
    """
    pred_array, target_array = _label_pair(pred, target, num_classes)
    flat = num_classes * target_array.ravel() + pred_array.ravel()
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def class_scores(confusion: ArrayLike, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-class IoU, recall and precision from a confusion matrix (rows = target, columns = prediction).

    Returns:
        A DataFrame indexed by class name with columns ``iou``, ``recall``, ``precision``; NaN for a class absent
        from both target and prediction (or, for recall/precision, from the target/prediction).
    """
    matrix = _to_numpy(confusion).astype(np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {matrix.shape}")
    if matrix.sum() == 0:
        raise ValueError("confusion matrix is empty (no pixels counted)")
    names = list(class_names) if class_names is not None else [f"class{index}" for index in range(len(matrix))]
    if len(names) != len(matrix):
        raise ValueError(f"class_names has {len(names)} entries but the confusion matrix has {len(matrix)} classes")
    true_positive = np.diag(matrix)
    target_count, pred_count = matrix.sum(axis=1), matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "iou": true_positive / (target_count + pred_count - true_positive),
                "recall": true_positive / target_count,
                "precision": true_positive / pred_count,
            },
            index=pd.Index(names, name="class"),
        )


def miou_mpa(confusion: ArrayLike) -> tuple[float, float]:
    """Mean IoU and mean pixel accuracy (mean per-class recall), as the parent DeepLabV3+ repository prints.

    Args:
        confusion: ``(K, K)`` confusion matrix from :func:`confusion_matrix` (summed over a dataset).

    Returns:
        ``(miou, mpa)``, each averaged over the classes for which it is defined.
    """
    scores = class_scores(confusion)
    return float(np.nanmean(scores["iou"])), float(np.nanmean(scores["recall"]))
