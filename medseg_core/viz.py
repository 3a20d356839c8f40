"""Pictures for notebooks and ``figures/``: overlays, frame strips, training curves, metric plots.

Overlays use :func:`torchvision.utils.draw_segmentation_masks`; plots use seaborn/matplotlib with labelled
axes and units so that they read in print. Every function returns the figure (or image) it made and draws
nothing else, so notebooks decide what to show and :func:`save_figure` decides where it goes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from torchvision.utils import draw_segmentation_masks

__all__ = [
    "to_display_image",
    "overlay",
    "plot_overlays",
    "plot_window",
    "plot_history",
    "plot_predictions",
    "plot_threshold_sweep",
    "save_figure",
    "TRUTH_COLOUR",
    "PREDICTION_COLOUR",
]

TRUTH_COLOUR = "lime"
PREDICTION_COLOUR = "magenta"
_IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
_IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)


def to_display_image(image: torch.Tensor | np.ndarray, imagenet_normalised: bool | None = None) -> torch.Tensor:
    """Any model input to a ``(3, H, W)`` uint8 tensor for drawing.

    Accepts ``(H, W)``, ``(1, H, W)``, ``(3, H, W)`` or an SVSnet window ``(1, T, H, W)`` (the labelled frame
    of a centred window is shown; pass the frame yourself for other policies). ImageNet-normalised RGB (OCT
    inputs) is detected from negative values unless ``imagenet_normalised`` says otherwise.
    """
    image = torch.as_tensor(image).detach().float().cpu()
    if image.ndim == 4:  # (1, T, H, W) window: the current frame of the centre policy
        image = image[0, image.shape[1] // 2]
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.shape[0] == 3 and (imagenet_normalised or (imagenet_normalised is None and image.min() < 0)):
        image = image * _IMAGENET_STD + _IMAGENET_MEAN
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if image.shape[0] != 3:
        raise ValueError(f"cannot display an image of shape {tuple(image.shape)}; expected (H, W), (C, H, W) or (1, T, H, W)")
    low, high = image.min(), image.max()
    if low < 0 or high > 1:
        image = (image - low) / (high - low + 1e-8)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def overlay(
    image: torch.Tensor | np.ndarray,
    truth: torch.Tensor | np.ndarray | None = None,
    prediction: torch.Tensor | np.ndarray | None = None,
    alpha: float = 0.45,
) -> torch.Tensor:
    """Image with the ground truth (lime) and the prediction (magenta) drawn on it; ``(3, H, W)`` uint8."""
    canvas = to_display_image(image)
    for mask, colour in ((truth, TRUTH_COLOUR), (prediction, PREDICTION_COLOUR)):
        if mask is None:
            continue
        mask = torch.as_tensor(mask).detach().cpu().squeeze()
        if mask.shape != canvas.shape[1:]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match the image {tuple(canvas.shape[1:])}")
        canvas = draw_segmentation_masks(canvas, mask.bool(), alpha=alpha, colors=colour)
    return canvas


def plot_overlays(
    images: Sequence[torch.Tensor],
    truths: Sequence[torch.Tensor | None],
    predictions: Sequence[torch.Tensor | None],
    titles: Sequence[str] | None = None,
    columns: int = 4,
    size: float = 3.0,
) -> plt.Figure:
    """A grid of :func:`overlay` images with a colour legend."""
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    columns = min(columns, count)
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows + 0.4), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index < count:
            ax.imshow(overlay(images[index], truths[index], predictions[index]).permute(1, 2, 0).numpy())
            if titles is not None:
                ax.set_title(titles[index], fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=TRUTH_COLOUR), plt.Rectangle((0, 0), 1, 1, color=PREDICTION_COLOUR)]
    fig.legend(handles, ["ground truth", "prediction"], loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_window(window: torch.Tensor, mask: torch.Tensor | None = None, current: int | None = None,
                size: float = 2.6) -> plt.Figure:
    """The T frames of an SVSnet window ``(1, T, H, W)`` side by side; the mask is drawn on the current frame."""
    frames = torch.as_tensor(window).squeeze(0)
    count = frames.shape[0]
    current = count // 2 if current is None else current
    fig, axes = plt.subplots(1, count, figsize=(size * count, size + 0.3), squeeze=False)
    for t, ax in enumerate(axes[0]):
        truth = mask if (mask is not None and t == current) else None
        ax.imshow(overlay(frames[t], truth).permute(1, 2, 0).numpy())
        ax.set_title(f"frame t{t - current:+d}" if t != current else "current frame (labelled)", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_history(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """Training curves: loss (train/validation) and validation Dice per epoch."""
    fig, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    losses = history.melt("epoch", [c for c in ("train_loss", "val_loss") if c in history], "split", "loss")
    sns.lineplot(losses, x="epoch", y="loss", hue="split", marker="o", ax=loss_ax)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if "val_dice" in history:
        sns.lineplot(history, x="epoch", y="val_dice", marker="o", ax=dice_ax, color="C2")
        dice_ax.set(xlabel="epoch", ylabel="Dice", title="validation Dice", ylim=(0, 1))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` as ``figures_dir/name.png`` (folders created) and return the path."""
    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def plot_predictions(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    ids: Sequence[str] | None = None,
    *,
    results: pd.DataFrame | None = None,
    metric: str = "dice",
    max_cases: int = 4,
    threshold: float = 0.5,
) -> plt.Figure:
    """Overlays of the model's predictions for the cases ``ids`` (default: the first ``max_cases``).

    With ``results`` (from :func:`medseg_core.evaluation.evaluate`), titles show each case's ``metric``.
    """
    from .evaluation import predict_cases

    wanted = list(ids) if ids is not None else None
    cases = {}
    for case in predict_cases(model, loader):
        if (wanted is None and len(cases) < max_cases) or (wanted is not None and case["id"] in wanted):
            cases[case["id"]] = case
        if len(cases) == (len(wanted) if wanted is not None else max_cases):
            break
    order = wanted if wanted is not None else list(cases)
    missing = [case_id for case_id in order if case_id not in cases]
    if missing:
        raise KeyError(f"cases not found in the loader: {missing[:5]}")
    scores = results.groupby("id")[metric].mean() if results is not None else {}
    titles = [f"{i}  {metric} {scores[i]:.3f}" if i in scores else i for i in order]
    predictions = []
    for case_id in order:
        probability = cases[case_id]["probability"]
        predictions.append(probability[0] > threshold if probability.shape[0] == 1 else probability.argmax(0) > 0)
    return plot_overlays([cases[i]["image"] for i in order], [cases[i]["truth"] > 0 for i in order], predictions,
                         titles)


def plot_threshold_sweep(sweep: pd.DataFrame, title: str = "") -> plt.Figure:
    """Precision-recall curve and Dice vs threshold from :func:`medseg_core.evaluation.threshold_sweep`."""
    fig, (pr_ax, dice_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.lineplot(sweep, x="recall", y="precision", marker="o", sort=False, ax=pr_ax)
    pr_ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title="precision-recall (pixels)")
    sns.lineplot(sweep, x="threshold", y="dice", marker="o", ax=dice_ax, color="C2")
    best = sweep.loc[sweep["dice"].idxmax()]
    dice_ax.axvline(best["threshold"], color="grey", linestyle="--", label=f"best {best['threshold']:.2f}")
    dice_ax.set(xlabel="probability threshold", ylabel="Dice", ylim=(0, 1), title="Dice vs threshold")
    dice_ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
