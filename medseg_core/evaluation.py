"""Evaluate a trained model on a dataset: per-case metric tables, threshold sweeps, case selection.

One function per question, each returning a pandas ``DataFrame`` (one row per case and class), so every
notebook, the CLI and the figure scripts compute results the same way. The metrics themselves, and the rule
for empty masks, live in :mod:`medseg_core.metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .metrics import binary_metrics, confusion_matrix
from .models import flip_averaged_probabilities, logits_to_probabilities, probabilities_to_labels
from .runtime import get_device

__all__ = ["predict_cases", "collect_cases", "evaluate", "dataset_confusion", "threshold_sweep", "choose_threshold",
           "select_cases", "foreground_probabilities", "FalseAlarmRule", "fit_false_alarm_rule", "score_frames",
           "DEFAULT_METRICS"]

DEFAULT_METRICS = ("dice", "iou", "precision", "recall", "specificity", "hd95", "cldice")


def _display(image: torch.Tensor, current: int | None) -> torch.Tensor:
    """The image a case is drawn on: the current (labelled) frame of a window, else the input itself."""
    if image.ndim == 4:  # (1, T, H, W) window
        return image[0, image.shape[1] // 2 if current is None else current]
    if current is not None and image.shape[0] > 1:  # (T, H, W) frames as channels
        return image[current]
    return image


@torch.no_grad()
def predict_cases(
    model: nn.Module, loader: DataLoader, device: str | torch.device | None = "auto", *,
    tta: bool | tuple[tuple[int, ...], ...] = False,
) -> Iterator[dict[str, object]]:
    """Run ``model`` over ``loader`` and yield one dict per case, on the CPU.

    With ``tta`` the probabilities are averaged over four flips of the input, or over the flips it names
    (:func:`~medseg_core.models.flip_averaged_probabilities`; polar frames: ``((), (-2,))``).

    Masks stored at another size than the model's input (a loader scoring at the data set's own resolution)
    get logits resized to them (bilinear, as :func:`medseg_core.inference.predict_labels` does).

    Yields:
        ``{"id": str, "image": model input without batch axis, "display": the image to draw on (the current
        frame of a window, from the sample's ``"current"``), "truth": (H, W) int64 labels, "probability":
        (K, H, W) float at the truth's size}`` with ``K = 1`` for binary models (foreground probability).
    """
    device = get_device(device)
    model = model.to(device).eval()
    for batch in loader:
        truths = batch["mask"]
        truths = (truths[:, 0] > 0.5).long() if truths.ndim == 4 else truths.long()
        size = tuple(truths.shape[-2:])
        if tta:  # an average of probabilities, resized as probabilities
            flips = {} if tta is True else {"flips": tta}
            probabilities = flip_averaged_probabilities(model, batch["image"].to(device), **flips)
            if probabilities.shape[-2:] != size:
                probabilities = F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)
        else:
            logits = model(batch["image"].to(device)).float()
            if logits.shape[-2:] != size:
                logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            probabilities = logits_to_probabilities(logits)
        probabilities = probabilities.cpu()
        currents = batch.get("current")
        for index, case_id in enumerate(batch["id"]):
            current = None if currents is None else int(currents[index])
            yield {"id": case_id, "image": batch["image"][index], "display": _display(batch["image"][index], current),
                   "truth": truths[index], "probability": probabilities[index]}


def collect_cases(model: nn.Module, loader: DataLoader, ids: Sequence[str] | None = None, max_cases: int = 4,
                  device: str | torch.device | None = "auto") -> list[dict[str, object]]:
    """The predicted cases ``ids`` (in that order; default: the first ``max_cases``), for plots.

    Raises:
        KeyError: some ``ids`` are not in the loader (the first five are named).
    """
    wanted = list(ids) if ids is not None else None
    cases: dict[str, dict[str, object]] = {}
    for case in predict_cases(model, loader, device):
        if wanted is None or case["id"] in wanted:
            cases[case["id"]] = case
        if len(cases) == (len(wanted) if wanted is not None else max_cases):
            break
    order = wanted if wanted is not None else list(cases)
    missing = [case_id for case_id in order if case_id not in cases]
    if missing:
        raise KeyError(f"cases not found in the loader: {missing[:5]}")
    return [cases[case_id] for case_id in order]


def _labels(probability: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(K, H, W)`` probabilities of one case -> ``(H, W)`` labels (the kit's one rule)."""
    return probabilities_to_labels(probability[None], threshold)[0]


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    *,
    class_names: Sequence[str] = ("foreground",),
    threshold: float = 0.5,
    metrics: Sequence[str] = DEFAULT_METRICS,
    clusters: Callable[[str], str] | None = None,
    device: str | torch.device | None = "auto",
) -> pd.DataFrame:
    """Per-case, per-foreground-class metrics of ``model`` on ``loader``.

    Args:
        class_names: names of the foreground classes 1..K-1 (binary models: one name).
        threshold: probability threshold for binary models (multi-class models use argmax); choose it on
            validation (:func:`choose_threshold`), never on test.
        clusters: ``case id -> video or patient`` (:meth:`medseg_core.tasks.Task.case_cluster`); adds a
            ``cluster`` column, the unit :mod:`medseg_core.stats` resamples.

    Returns:
        Columns ``id``, ``class``, one per metric, ``truth_pixels`` / ``predicted_pixels`` (so cases without the
        class can be told apart), ``hd95_failed`` (exactly one of prediction and truth is empty: HD95 is
        undefined, NaN, and the case is a failure, not a missing value) and ``cluster`` when asked; summarise
        with :mod:`medseg_core.stats`.
    """
    rows = []
    for case in predict_cases(model, loader, device):
        labels = _labels(case["probability"], threshold).numpy()
        truth = case["truth"].numpy()
        for class_index, class_name in enumerate(class_names, start=1):
            predicted, expected = labels == class_index, truth == class_index
            values = binary_metrics(predicted, expected, metrics=metrics)
            rows.append({"id": case["id"], "class": class_name, **values,
                         "truth_pixels": int(expected.sum()), "predicted_pixels": int(predicted.sum()),
                         "hd95_failed": bool(predicted.any()) != bool(expected.any())})
    if not rows:
        raise ValueError("the evaluation loader is empty: nothing to evaluate")
    table = pd.DataFrame(rows)
    if clusters is not None:
        table.insert(1, "cluster", table["id"].map(clusters))
    return table


def dataset_confusion(model: nn.Module, loader: DataLoader, num_classes: int, threshold: float = 0.5,
                      device: str | torch.device | None = "auto") -> np.ndarray:
    """Pixel confusion matrix ``(K, K)`` (rows: truth) pooled over all cases, as the parent DeepLabV3+ repo scores."""
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for case in predict_cases(model, loader, device):
        total += confusion_matrix(_labels(case["probability"], threshold).numpy(), case["truth"].numpy(), num_classes)
    return total


def threshold_sweep(
    model: nn.Module,
    loader: DataLoader,
    thresholds: Sequence[float] = tuple(np.round(np.linspace(0.05, 0.95, 19), 2)),
    device: str | torch.device | None = "auto",
) -> pd.DataFrame:
    """Dataset-level precision, recall and Dice of a binary model at each threshold (for PR curves).

    Counts are pooled over all pixels of all cases (a micro average), which is what a PR curve shows.
    """
    thresholds = np.asarray(thresholds, dtype=float)
    true_pos = np.zeros(len(thresholds))
    pred_pos = np.zeros(len(thresholds))
    positives = 0.0
    for case in predict_cases(model, loader, device):
        if case["probability"].shape[0] != 1:
            raise ValueError("threshold_sweep needs a binary model (one output channel)")
        probability = case["probability"][0].numpy().ravel()
        truth = case["truth"].numpy().ravel() > 0
        above = probability[None, :] > thresholds[:, None]
        true_pos += (above & truth).sum(axis=1)
        pred_pos += above.sum(axis=1)
        positives += truth.sum()
    precision = np.divide(true_pos, pred_pos, out=np.ones_like(true_pos), where=pred_pos > 0)
    recall = true_pos / positives if positives > 0 else np.ones_like(true_pos)
    dice = np.divide(2 * true_pos, pred_pos + positives, out=np.ones_like(true_pos), where=(pred_pos + positives) > 0)
    return pd.DataFrame({"threshold": thresholds, "precision": precision, "recall": recall, "dice": dice})


def choose_threshold(sweep: pd.DataFrame, metric: str = "dice") -> float:
    """The threshold of a :func:`threshold_sweep` with the highest ``metric``; sweep the *validation* split."""
    return float(sweep.loc[sweep[metric].idxmax(), "threshold"])


def select_cases(results: pd.DataFrame, metric: str = "dice", foreground_only: bool = True) -> pd.DataFrame:
    """The best, median and worst case by ``metric`` (NaN cases excluded), with a ``rank`` column.

    ``foreground_only`` (default) ranks only cases whose ground truth holds the class (``truth_pixels > 0``): an
    empty frame correctly left empty scores 1 and would otherwise always be "best".
    """
    if foreground_only:
        results = results[results["truth_pixels"] > 0]
    ranked = results.dropna(subset=[metric]).sort_values(metric, ascending=False, kind="stable")
    if ranked.empty:
        raise ValueError(f"no case has a defined {metric!r}")
    picks = {"best": 0, "median": len(ranked) // 2, "worst": len(ranked) - 1}
    return pd.concat([ranked.iloc[[i]].assign(rank=name) for name, i in picks.items()], ignore_index=True)


def foreground_probabilities(model: nn.Module, loader: DataLoader, *,
                             tta: bool | tuple[tuple[int, ...], ...] = False,
                             device: str | torch.device | None = "auto") -> dict[str, object]:
    """Every case's foreground probability and truth, for rules fitted on a split (:func:`fit_false_alarm_rule`).

    The foreground probability is ``1 - p(background)`` for K-class models (any foreground class), the sigmoid for
    binary ones. ``tta`` as in :func:`predict_cases`. Returns ``{"id": list of N ids, "probability": (N, H, W) float32, "truth": (N, H, W) bool}``.
    """
    ids, probabilities, truths = [], [], []
    for case in predict_cases(model, loader, device, tta=tta):
        probability = case["probability"]
        ids.append(case["id"])
        probabilities.append((probability[0] if probability.shape[0] == 1 else 1 - probability[0]).numpy())
        truths.append(case["truth"].numpy() > 0)
    if not ids:
        raise ValueError("the loader is empty: no cases to predict")
    return {"id": ids, "probability": np.stack(probabilities).astype(np.float32), "truth": np.stack(truths)}


@dataclass(frozen=True)
class FalseAlarmRule:
    """A frame-level rule against false alarms: pixels above ``threshold`` are foreground, and a frame keeps them
    only when there are at least ``min_area`` of them (else it is predicted empty). ``min_area`` counts pixels at
    the size the rule was fitted at. ``FalseAlarmRule()`` is the plain rule (``p > 0.5``, any area)."""

    threshold: float = 0.5
    min_area: int = 1

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """``(N, H, W)`` (or ``(H, W)``) foreground probabilities -> bool masks of the same shape."""
        masks = np.asarray(probabilities) > self.threshold
        flat = masks.reshape(-1, *masks.shape[-2:])
        keep = flat.sum(axis=(-2, -1)) >= self.min_area
        return (flat & keep[:, None, None]).reshape(masks.shape)


def score_frames(probabilities: np.ndarray, truths: np.ndarray, rule: FalseAlarmRule = FalseAlarmRule(),
                 ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Per-frame Dice (:func:`~medseg_core.metrics.binary_metrics`' empty rule: both empty scores 1), truth and
    predicted pixels of ``rule`` applied to ``(N, H, W)`` foreground probabilities against ``(N, H, W)`` truths."""
    masks = rule.apply(probabilities)
    truths = np.asarray(truths, dtype=bool)
    rows = [{"id": ids[i] if ids is not None else str(i), **binary_metrics(masks[i], truths[i], metrics=("dice",)),
             "truth_pixels": int(truths[i].sum()), "predicted_pixels": int(masks[i].sum())}
            for i in range(len(masks))]
    return pd.DataFrame(rows)


def fit_false_alarm_rule(
    probabilities: np.ndarray,
    truths: np.ndarray,
    thresholds: Sequence[float] = tuple(np.round(np.linspace(0.3, 0.9, 13), 2)),
    min_areas: Sequence[int] | None = None,
) -> FalseAlarmRule:
    """The :class:`FalseAlarmRule` with the highest mean Dice over all frames of a split (fit it on VALIDATION).

    Over all frames, with the kit's empty rule, a frame without foreground scores 1 when left empty and 0 when
    flagged, so the objective weighs missed plaque (lower Dice on plaque frames) against false alarms (plaque-free
    frames flagged) frame for frame. ``min_areas`` defaults to 1 and the predicted areas of the frames at each
    threshold (every cut that changes a frame's verdict). Ties go to the lower threshold, then the smaller area
    (the rule closest to the plain one).

    Args:
        probabilities: ``(N, H, W)`` foreground probabilities (:func:`foreground_probabilities`).
        truths: ``(N, H, W)`` bool truths.
    """
    probabilities, truths = np.asarray(probabilities), np.asarray(truths, dtype=bool)
    if probabilities.shape != truths.shape or probabilities.ndim != 3 or len(probabilities) == 0:
        raise ValueError(f"expected (N, H, W) probabilities and truths of one shape, got {probabilities.shape} and "
                         f"{truths.shape}")
    best, best_score = FalseAlarmRule(), -1.0
    for threshold in sorted(float(t) for t in thresholds):
        areas = (probabilities > threshold).sum(axis=(-2, -1))
        candidates = sorted({1, *(int(a) + 1 for a in areas), *(int(a) for a in areas if a > 0)}) \
            if min_areas is None else sorted(int(a) for a in min_areas)
        for min_area in candidates:
            rule = FalseAlarmRule(threshold, min_area)
            score = float(score_frames(probabilities, truths, rule)["dice"].mean())
            if score > best_score + 1e-12:
                best, best_score = rule, score
    return best
