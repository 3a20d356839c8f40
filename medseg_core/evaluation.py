"""Evaluate a trained model on a dataset: per-case metric tables, threshold sweeps, case selection.

One function per question, each returning a pandas ``DataFrame`` (one row per case and class), so every
notebook, the CLI and the figure scripts compute results the same way. The metrics themselves, and the rule
for empty masks, live in :mod:`medseg_core.metrics`.
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .metrics import binary_metrics, confusion_matrix
from .models import logits_to_probabilities, probabilities_to_labels
from .runtime import get_device

__all__ = ["predict_cases", "collect_cases", "evaluate", "dataset_confusion", "threshold_sweep", "choose_threshold",
           "select_cases",
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
    model: nn.Module, loader: DataLoader, device: str | torch.device | None = "auto"
) -> Iterator[dict[str, object]]:
    """Run ``model`` over ``loader`` and yield one dict per case, on the CPU.

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
        logits = model(batch["image"].to(device)).float()
        if logits.shape[-2:] != truths.shape[-2:]:
            logits = F.interpolate(logits, size=tuple(truths.shape[-2:]), mode="bilinear", align_corners=False)
        probabilities = logits_to_probabilities(logits).cpu()
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
