"""Pictures for notebooks and ``figures/``: overlays, frame strips, training curves, metric plots.

Overlays use :func:`torchvision.utils.draw_segmentation_masks`; plots use seaborn/matplotlib with labelled
axes and units so that they read in print. Every function returns the figure (or image) it made and draws
nothing else, so notebooks decide what to show and :func:`save_figure` decides where it goes.

The OCT pictures at the end (class channels, polar frames and scan conversion, splits, per-case scores,
confusion matrices, ECA attention weights) serve the OCT notebooks; they take arrays and tables, never files.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.patches import Patch
from torchvision.utils import draw_segmentation_masks

from .data.oct import OCT_CLASSES

if TYPE_CHECKING:
    from .data.synthetic_oct import PolarFrame

__all__ = [
    "to_display_image",
    "overlay",
    "plot_overlays",
    "plot_window",
    "plot_history",
    "plot_image_grid",
    "plot_predictions",
    "plot_threshold_sweep",
    "save_figure",
    "plot_class_channels",
    "plot_polar_frame",
    "plot_scan_conversion",
    "plot_mask_grid",
    "plot_patient_split",
    "plot_case_scores",
    "plot_confusion",
    "plot_attention_weights",
    "TRUTH_COLOUR",
    "PREDICTION_COLOUR",
    "OCT_CLASS_COLOURS",
]

TRUTH_COLOUR = "lime"
PREDICTION_COLOUR = "magenta"
OCT_CLASS_COLOURS: dict[str, str] = {
    "lumen": "deepskyblue", "fibrous_cap": "yellow", "lipid_core": "lime", "vasa_vasorum": "red",
}
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


# ----------------------------------------------------------------------------------------------------------------
# OCT: frames, masks, the simulator's polar domain
# ----------------------------------------------------------------------------------------------------------------
_BOUNDED_METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "cldice")
_CALCIUM_COLOUR = "lightgrey"
_TISSUE_COLOUR = "#3a2a1a"  # unlabelled tissue in polar label maps


def _as_display(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Like :func:`to_display_image`, and also accepts stored ``(H, W, 3)`` frames (uint8 read as 0..255)."""
    image = torch.as_tensor(np.asarray(image) if isinstance(image, np.ndarray) else image)
    if image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] != 3:
        image = image.permute(2, 0, 1)
    if image.dtype == torch.uint8:
        image = image.float() / 255.0
    return to_display_image(image)


def _class_patches(names: Sequence[str], colours: Sequence[str]) -> list[Patch]:
    return [Patch(color=colour, label=name.replace("_", " ")) for name, colour in zip(names, colours)]


def plot_class_channels(
    image: torch.Tensor | np.ndarray,
    channels: torch.Tensor | np.ndarray,
    class_names: Sequence[str] = OCT_CLASSES,
    title: str = "",
    size: float = 3.0,
    alpha: float = 0.55,
) -> plt.Figure:
    """An OCT frame, then each class channel of its mask drawn on it (one panel per class).

    Args:
        image: the frame as stored, ``(H, W, 3)`` uint8, or anything :func:`to_display_image` accepts.
        channels: ``(H, W, C)`` class channels as in the dataset's TIFFs (0/255, 0/1 or bool), ``C = len(class_names)``.
        class_names: channel names in order; colours from :data:`OCT_CLASS_COLOURS`.

    Each panel's title gives the class's share of the frame in percent.

    Raises:
        ValueError: ``channels`` is not ``(H, W, len(class_names))`` with the image's H and W.
    """
    canvas = _as_display(image)
    masks = torch.as_tensor(np.asarray(channels) > 0 if isinstance(channels, np.ndarray) else channels > 0)
    expected = (*canvas.shape[1:], len(class_names))
    if tuple(masks.shape) != expected:
        raise ValueError(f"channels must be (H, W, C) = {expected} for this image and {len(class_names)} classes; "
                         f"got {tuple(masks.shape)} (planar (C, H, W) masks: move the axis with np.moveaxis)")
    count = 1 + len(class_names)
    fig, axes = plt.subplots(1, count, figsize=(size * count, size + 0.5), squeeze=False)
    axes[0, 0].imshow(canvas.permute(1, 2, 0).numpy())
    axes[0, 0].set_title("image", fontsize=9)
    for index, (name, ax) in enumerate(zip(class_names, axes[0, 1:])):
        colour = OCT_CLASS_COLOURS.get(name, TRUTH_COLOUR)
        drawn = draw_segmentation_masks(canvas, masks[..., index], alpha=alpha, colors=colour)
        ax.imshow(drawn.permute(1, 2, 0).numpy())
        ax.set_title(f"{name.replace('_', ' ')}: {100 * masks[..., index].float().mean():.1f} % of frame", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _label_image(labels: np.ndarray, calcium: np.ndarray | None, class_names: Sequence[str]) -> np.ndarray:
    """``(A, S)`` label ids (``i`` = ``class_names[i - 1]``) -> ``(A, S, 3)`` float RGB, calcium in light grey."""
    from matplotlib.colors import to_rgb

    palette = np.array([to_rgb(_TISSUE_COLOUR)] + [to_rgb(OCT_CLASS_COLOURS.get(n, TRUTH_COLOUR)) for n in class_names])
    if labels.max() >= len(palette):
        raise ValueError(f"labels hold ids up to {labels.max()} but only {len(class_names)} classes are named")
    rgb = palette[labels]
    if calcium is not None:
        rgb[calcium] = to_rgb(_CALCIUM_COLOUR)
    return rgb


def plot_polar_frame(
    polar: "PolarFrame",
    alines: Mapping[str, float] | None = None,
    reference: "PolarFrame | None" = None,
    reference_name: str = "without plaques",
    average_lines: int = 5,
    class_names: Sequence[str] = OCT_CLASSES,
    title: str = "",
) -> plt.Figure:
    """A simulated frame in the polar domain: the A-lines, their labels, and depth profiles of chosen A-lines.

    Args:
        polar: a :class:`medseg_core.data.synthetic_oct.PolarFrame`: ``display`` and ``labels`` ``(A, S)``
            (rows = A-lines over 360 degrees, columns = depth), ``calcium`` ``(A, S)`` bool, ``radius_mm`` ``(S,)``.
        alines: ``{name: angle in degrees, clockwise from 3 o'clock}``; each is marked on both images and its
            display value is plotted against depth (the mean of ``average_lines`` neighbouring A-lines, which
            tames speckle without blurring along depth).
        reference: another frame of the same shape (e.g. the same anatomy simulated without plaques); its
            profiles at the same angles are drawn dashed, labelled ``reference_name``.
        reference_name: legend name of the reference frame.
        average_lines: A-lines averaged per profile (odd, >= 1).
        class_names: names of label ids 1, 2, ... (the simulator's order is :data:`OCT_CLASSES`).

    Raises:
        ValueError: mismatched array shapes or an even ``average_lines``.
    """
    display, labels = np.asarray(polar.display), np.asarray(polar.labels)
    radius = np.asarray(polar.radius_mm)
    if display.ndim != 2 or labels.shape != display.shape or radius.shape != display.shape[1:]:
        raise ValueError(f"polar frame needs display and labels (A, S) and radius_mm (S,); got {display.shape}, "
                         f"{labels.shape}, {radius.shape}")
    if average_lines < 1 or average_lines % 2 == 0:
        raise ValueError(f"average_lines must be odd and >= 1, got {average_lines}")
    reference_display = None if reference is None else np.asarray(reference.display)
    if reference_display is not None and reference_display.shape != display.shape:
        raise ValueError(f"reference frame is {reference_display.shape} but the frame is {display.shape}")
    num_alines = display.shape[0]
    extent = (0.0, float(radius[-1] + radius[0]), 360.0, 0.0)
    fig, (image_ax, label_ax, profile_ax) = plt.subplots(1, 3, figsize=(14, 4.6),
                                                         gridspec_kw={"width_ratios": [1, 1, 1.3]})
    image_ax.imshow(display, cmap="gray", vmin=0, vmax=1, extent=extent, aspect="auto", interpolation="nearest")
    image_ax.set(title="A-lines (display value)", xlabel="depth from catheter centre (mm)",
                 ylabel="A-line angle (deg, clockwise from 3 o'clock)")
    calcium = np.asarray(polar.calcium) if getattr(polar, "calcium", None) is not None else None
    label_ax.imshow(_label_image(labels, calcium, class_names), extent=extent, aspect="auto", interpolation="nearest")
    label_ax.set(title="labels", xlabel="depth from catheter centre (mm)")
    handles = _class_patches(class_names, [OCT_CLASS_COLOURS.get(n, TRUTH_COLOUR) for n in class_names])
    handles.append(Patch(color=_CALCIUM_COLOUR, label="calcium (not labelled)"))
    label_ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.8)
    for index, (name, angle) in enumerate((alines or {}).items()):
        colour = f"C{index}"
        row = int(round(angle / 360.0 * num_alines)) % num_alines
        rows = np.arange(row - average_lines // 2, row + average_lines // 2 + 1) % num_alines
        for ax in (image_ax, label_ax):
            ax.axhline(angle % 360.0, color=colour, linewidth=1.2)
        profile_ax.plot(radius, display[rows].mean(axis=0), color=colour, linewidth=1, label=f"{name} ({angle % 360:.0f}°)")
        if reference_display is not None:
            profile_ax.plot(radius, reference_display[rows].mean(axis=0), color=colour, linewidth=1, linestyle="--",
                            alpha=0.8, label=f"{name}, {reference_name}")
    profile_ax.set(title=f"depth profiles (mean of {average_lines} A-lines)", xlabel="depth from catheter centre (mm)",
                   ylabel="display value (log scale, 0-1)", ylim=(0, 1), xlim=extent[:2])
    if alines:
        profile_ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_scan_conversion(
    polar_display: np.ndarray,
    cartesian: np.ndarray,
    coloured: np.ndarray,
    fov_radius_mm: float,
    angle: float | None = None,
    title: str = "",
) -> plt.Figure:
    """Polar A-lines -> Cartesian grey image -> coloured frame, side by side with axes in mm.

    Args:
        polar_display: ``(A, S)`` display values (rows = angle clockwise from 3 o'clock, columns = depth).
        cartesian: ``(H, W)`` scan-converted display values.
        coloured: ``(H, W, 3)`` uint8 frame after the colour look-up table.
        fov_radius_mm: radius of the field of view (the last polar column, the edge of the Cartesian circle).
        angle: an A-line angle in degrees to mark in all three panels (a row in polar, a ray in Cartesian).
    """
    polar_display, cartesian, coloured = np.asarray(polar_display), np.asarray(cartesian), np.asarray(coloured)
    if polar_display.ndim != 2 or cartesian.ndim != 2 or coloured.shape != (*cartesian.shape, 3):
        raise ValueError(f"expected polar (A, S), Cartesian (H, W) and coloured (H, W, 3); got "
                         f"{polar_display.shape}, {cartesian.shape}, {coloured.shape}")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4), gridspec_kw={"width_ratios": [1.1, 1, 1]})
    axes[0].imshow(polar_display, cmap="gray", vmin=0, vmax=1, extent=(0, fov_radius_mm, 360, 0), aspect="auto")
    axes[0].set(title="1 · polar: one row per A-line", xlabel="depth (mm)", ylabel="angle (deg, clockwise from 3 o'clock)")
    box = (-fov_radius_mm, fov_radius_mm, fov_radius_mm, -fov_radius_mm)  # y grows downwards, like image rows
    axes[1].imshow(cartesian, cmap="gray", vmin=0, vmax=1, extent=box)
    axes[1].set(title="2 · scan-converted (bilinear)", xlabel="x (mm)", ylabel="y (mm)")
    axes[2].imshow(coloured, extent=box)
    axes[2].set(title="3 · orange look-up table", xlabel="x (mm)")
    if angle is not None:
        axes[0].axhline(angle % 360.0, color="C1", linewidth=1.5, label=f"A-line at {angle % 360:.0f}°")
        ray = fov_radius_mm * np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
        for ax in axes[1:]:
            ax.plot([0, ray[0]], [0, ray[1]], color="C1", linewidth=1.5)
        axes[0].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_mask_grid(
    images: Sequence[torch.Tensor | np.ndarray],
    masks: Sequence[torch.Tensor | np.ndarray | None] | None = None,
    titles: Sequence[str] | None = None,
    label: str = "lipid core",
    colour: str = TRUTH_COLOUR,
    columns: int = 4,
    size: float = 3.0,
    alpha: float = 0.45,
) -> plt.Figure:
    """A grid of images, each with one binary mask drawn on it (pixels > 0) and a one-entry legend.

    Args:
        images: ``(H, W, 3)`` uint8 frames as stored, or anything :func:`to_display_image` accepts (model inputs).
        masks: one ``(H, W)`` mask (or None) per image; None draws no masks.
        titles: one title per image.
        label: legend name of the mask.
    """
    count = len(images)
    if count == 0:
        raise ValueError("no images to plot")
    if masks is not None and len(masks) != count:
        raise ValueError(f"got {count} images but {len(masks)} masks; pass one mask (or None) per image")
    if titles is not None and len(titles) != count:
        raise ValueError(f"got {count} images but {len(titles)} titles")
    columns = min(columns, count)
    rows = int(np.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, (size + 0.3) * rows + 0.4), squeeze=False)
    drawn_any = False
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= count:
            continue
        canvas = _as_display(images[index])
        mask = None if masks is None else masks[index]
        if mask is not None:
            mask = torch.as_tensor(np.asarray(mask)).squeeze() > 0
            if mask.shape != canvas.shape[1:]:
                raise ValueError(f"mask {index} is {tuple(mask.shape)} but its image is {tuple(canvas.shape[1:])}")
            canvas = draw_segmentation_masks(canvas, mask, alpha=alpha, colors=colour)
            drawn_any = True
        ax.imshow(canvas.permute(1, 2, 0).numpy())
        if titles is not None:
            ax.set_title(titles[index], fontsize=9)
    if drawn_any:
        fig.legend(handles=[Patch(color=colour, label=label)], loc="lower center", frameon=False)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Splits and results
# ----------------------------------------------------------------------------------------------------------------
def plot_patient_split(splits: Mapping[str, pd.DataFrame], title: str = "") -> plt.Figure:
    """Every frame as a square at (frame number, patient), coloured by its split.

    A patient-wise split gives each row one colour; a row with two colours is a patient whose near-duplicate
    frames sit on both sides of the split (leakage).

    Args:
        splits: ``{split name: pairs}``, each with ``patient`` and ``frame`` columns (e.g. from
            :func:`medseg_core.data.oct.find_oct_pairs` and :func:`~medseg_core.data.oct.patient_split`); frames
            without a number are placed by their order within the patient.
    """
    if not splits:
        raise ValueError("no splits to plot")
    tables = []
    for name, pairs in splits.items():
        missing = {"patient", "frame"} - set(pairs.columns)
        if missing:
            raise ValueError(f"split {name!r} lacks columns {sorted(missing)}; use find_oct_pairs() tables")
        tables.append(pairs[["patient", "frame"]].assign(split=name))
    frames = pd.concat(tables, ignore_index=True)
    position = frames.groupby("patient").cumcount() + 1
    frames["frame"] = pd.to_numeric(frames["frame"]).astype(float).fillna(position.astype(float))
    frames["patient"] = frames["patient"].astype(str)
    frames = frames.sort_values(["patient", "frame"], kind="stable")  # categorical y axis in patient order
    fig, ax = plt.subplots(figsize=(7, 0.32 * frames["patient"].nunique() + 1.6))
    sns.scatterplot(frames, x="frame", y="patient", hue="split", marker="s", s=60, ax=ax,
                    hue_order=list(splits), palette="Set1")
    ax.set(xlabel="frame number in the pullback", ylabel="patient", title=title or "split by patient")
    ax.legend(title="split", bbox_to_anchor=(1.02, 1), loc="upper left", frameon=False)
    fig.tight_layout()
    return fig


def plot_case_scores(
    results: pd.DataFrame, metric: str = "dice", group: str | None = None, title: str = ""
) -> plt.Figure:
    """One bar per case (e.g. per test frame), best first, with the mean as a dashed line.

    Args:
        results: one row per case with ``id`` and ``metric`` columns (from :func:`medseg_core.evaluation.evaluate`,
            one class).
        group: a column to colour the bars by (e.g. ``"patient"``).

    Raises:
        ValueError: a missing column, several rows per case (select one class first), or no defined values.
    """
    needed = {"id", metric} | ({group} if group else set())
    missing = needed - set(results.columns)
    if missing:
        raise ValueError(f"results lack columns {sorted(missing)} (columns: {list(results.columns)})")
    if results["id"].duplicated().any():
        raise ValueError("results hold several rows per case (several classes?); select one, e.g. "
                         "results[results['class'] == 'lipid_core']")
    ranked = results.dropna(subset=[metric]).sort_values(metric, ascending=False, kind="stable")
    if ranked.empty:
        raise ValueError(f"no case has a defined {metric!r}")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.32 * len(ranked) + 2.0), 3.8))
    sns.barplot(ranked, x="id", y=metric, hue=group, dodge=False, ax=ax, palette="tab10" if group else None,
                color=None if group else "C0")
    mean = ranked[metric].mean()
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.3f}")
    ax.set(xlabel="case", ylabel=metric, title=title or f"{metric} per case (n = {len(ranked)})")
    if metric in _BOUNDED_METRICS:
        ax.set_ylim(0, 1.05)
    for bars in ax.containers:  # values on the bars, so that a score of 0 is visible too
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.legend(title=group, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False, fontsize=8)
    skipped = len(results) - len(ranked)
    if skipped:
        ax.annotate(f"{skipped} case(s) with undefined {metric} not shown", (0, -0.45), xycoords="axes fraction",
                    fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(confusion: np.ndarray | torch.Tensor, class_names: Sequence[str], title: str = "") -> plt.Figure:
    """A pixel confusion matrix (rows = true class, columns = predicted), as % of each true class with counts.

    Args:
        confusion: ``(K, K)`` counts from :func:`medseg_core.metrics.confusion_matrix` (summed over a dataset).
        class_names: K names.
    """
    matrix = np.asarray(confusion, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(class_names):
        raise ValueError(f"confusion must be (K, K) with K = len(class_names) = {len(class_names)}; "
                         f"got {matrix.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = 100 * matrix / matrix.sum(axis=1, keepdims=True)
    labels = np.array([[f"{p:.1f} %\n({int(n):,} px)" for p, n in zip(prow, nrow)] for prow, nrow in zip(percent, matrix)])
    size = 1.6 * len(class_names) + 1.8
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    names = [name.replace("_", " ") for name in class_names]
    sns.heatmap(percent, annot=labels, fmt="", cmap="Blues", vmin=0, vmax=100, xticklabels=names, yticklabels=names,
                cbar_kws={"label": "% of the true class's pixels"}, ax=ax)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "pixel confusion matrix")
    fig.tight_layout()
    return fig


def plot_attention_weights(
    weights: Mapping[str, torch.Tensor],
    groups: Mapping[str, Sequence[str]] | None = None,
    title: str = "",
) -> plt.Figure:
    """Per-channel attention weights of each attention block: batch mean (line) and batch range (band).

    Args:
        weights: ``{block name: (B, C) weights}``, e.g. ``model.attention_weights()`` after a forward pass.
        groups: ``{block name: names}`` for blocks whose channels are equal consecutive groups (ASPP's
            concatenation of its branches); each group is shaded and named.

    Raises:
        ValueError: no weights (run a forward pass first), a tensor that is not ``(B, C)``, or a group count that
            does not divide C.
    """
    if not weights:
        raise ValueError("no attention weights: run a forward pass first (and use a model with attention blocks)")
    fig, axes = plt.subplots(len(weights), 1, figsize=(10, 2.9 * len(weights)), squeeze=False)
    for ax, (name, tensor) in zip(axes[:, 0], weights.items()):
        values = torch.as_tensor(tensor).detach().float().cpu()
        if values.ndim != 2:
            raise ValueError(f"weights of {name!r} must be (B, C), got {tuple(values.shape)}")
        batch, channels = values.shape
        x = np.arange(channels)
        ax.fill_between(x, values.min(0).values.numpy(), values.max(0).values.numpy(), color="C0", alpha=0.25,
                        linewidth=0, label=f"range over {batch} image(s)")
        ax.plot(x, values.mean(0).numpy(), color="C0", linewidth=0.8, marker="o" if channels <= 64 else None,
                markersize=3, label="mean")
        names = (groups or {}).get(name)
        if names:
            if channels % len(names):
                raise ValueError(f"{name!r} has {channels} channels, not divisible into {len(names)} groups")
            width = channels // len(names)
            for index, group_name in enumerate(names):
                if index % 2:
                    ax.axvspan(index * width - 0.5, (index + 1) * width - 0.5, color="grey", alpha=0.12, linewidth=0)
                ax.text((index + 0.5) * width, 1.0, group_name, transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=8)
        ax.set(xlim=(-0.5, channels - 0.5), xlabel="channel", ylabel="weight (sigmoid)")
        ax.set_title(f"{name}: {channels} channels", fontsize=10, pad=14 if names else 6)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_image_grid(images: dict[str, np.ndarray | torch.Tensor], columns: int = 4, size: float = 3.0,
                    cmap: str = "gray", colorbar: bool = False) -> plt.Figure:
    """Named 2D arrays (or RGB ``(H, W, 3)``) side by side, titled by their names."""
    count = len(images)
    columns = min(columns, count)
    rows = int(np.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image) in zip(axes.flat, images.items()):
        shown = ax.imshow(np.asarray(image), cmap=cmap)
        ax.set_title(title, fontsize=9)
        if colorbar and np.asarray(image).ndim == 2:
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig


def plot_mask_comparison(groups: Mapping[str, np.ndarray], per_group: int = 4, size: float = 2.6) -> plt.Figure:
    """Binary masks side by side, one row per group (e.g. ``{"real": (N, H, W), "synthetic": (M, H, W)}``),
    the first ``per_group`` of each, titled by group and index."""
    fig, axes = plt.subplots(len(groups), per_group, figsize=(size * per_group, size * len(groups)), squeeze=False)
    for row, (name, masks) in zip(axes, groups.items()):
        for index, ax in enumerate(row):
            ax.axis("off")
            if index < len(masks):
                ax.imshow(np.asarray(masks[index]), cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{name} {index}", fontsize=9)
    fig.tight_layout()
    return fig
