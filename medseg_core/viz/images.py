"""Pictures of images: overlays of truth and prediction, window strips, grids, OCT class channels and polar frames.

Overlays use :func:`torchvision.utils.draw_segmentation_masks`. Every function takes arrays, tensors or
predicted cases and returns the figure or image it made; none runs a model or reads a file (predictions come
from :func:`medseg_core.evaluation.collect_cases`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import to_rgb
from matplotlib.patches import Patch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import draw_segmentation_masks

from ..data.oct import OCT_CLASSES
from ..data.preprocess import imagenet_denormalise
from ..models import probabilities_to_labels

if TYPE_CHECKING:
    from ..data.synthetic_oct import PolarFrame

__all__ = [
    "plot_mask_comparison",
    "TRUTH_COLOUR",
    "PREDICTION_COLOUR",
    "OCT_CLASS_COLOURS",
    "to_display_image",
    "overlay",
    "class_colours",
    "label_overlay",
    "plot_overlays",
    "plot_window",
    "plot_image_grid",
    "plot_predictions",
    "plot_class_channels",
    "plot_polar_frame",
    "plot_scan_conversion",
    "plot_mask_grid",
]

TRUTH_COLOUR = "lime"


PREDICTION_COLOUR = "magenta"


OCT_CLASS_COLOURS: dict[str, str] = {
    "lumen": "deepskyblue", "fibrous_cap": "yellow", "lipid_core": "lime", "vasa_vasorum": "red",
}


_CALCIUM_COLOUR = "lightgrey"


_TISSUE_COLOUR = "#3a2a1a"  # unlabelled tissue in polar label maps


def to_display_image(image: torch.Tensor | np.ndarray, imagenet_normalised: bool | None = None) -> torch.Tensor:
    """Any model input to a ``(3, H, W)`` uint8 tensor for drawing.

    Accepts ``(H, W)``, ``(1, H, W)`` or ``(3, H, W)``; for an SVSnet window pass its current frame (the
    ``"display"`` image of :func:`medseg_core.evaluation.predict_cases`, which knows the window policy).
    ImageNet-normalised RGB (OCT inputs) is detected from negative values unless ``imagenet_normalised`` says
    otherwise.
    """
    image = torch.as_tensor(image).detach().float().cpu()
    if image.ndim == 4:
        raise ValueError(f"cannot display a window of shape {tuple(image.shape)}: pass its current frame "
                         "(case['display'] from medseg_core.evaluation.predict_cases, or plot_window)")
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.shape[0] == 3 and (imagenet_normalised or (imagenet_normalised is None and image.min() < 0)):
        image = imagenet_denormalise(image)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    if image.shape[0] != 3:
        raise ValueError(f"cannot display an image of shape {tuple(image.shape)}; expected (H, W), (1, H, W) or (3, H, W)")
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


def class_colours(class_names: Sequence[str]) -> list[tuple[int, int, int]]:
    """RGB (0-255) of background (black) and of each class in label order, as predicted masks and their overlays
    show them: :data:`OCT_CLASS_COLOURS` for OCT classes, else :data:`PREDICTION_COLOUR`, then matplotlib's tab10."""
    spare = iter([PREDICTION_COLOUR, *plt.get_cmap("tab10").colors])
    named = [OCT_CLASS_COLOURS.get(name) or next(spare) for name in class_names]
    return [(0, 0, 0)] + [tuple(round(255 * value) for value in to_rgb(colour)) for colour in named]


def label_overlay(image: torch.Tensor | np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                  alpha: float = 0.45) -> torch.Tensor:
    """Image with each class of a label map ``(H, W)`` drawn in its :func:`class_colours` colour and a legend naming
    the classes in the top-left corner; ``(3, H, W)`` uint8. ``image``: ``(H, W)``, ``(H, W, 3)`` or ``(C, H, W)``,
    uint8 or float in [0, 1]."""
    pixels = torch.as_tensor(np.asarray(image))
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        pixels = pixels.permute(2, 0, 1)
    canvas = to_display_image(pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels)
    colours = class_colours(class_names)[1:]
    masks = torch.stack([torch.from_numpy(np.asarray(labels) == index) for index in range(1, len(colours) + 1)])
    canvas = draw_segmentation_masks(canvas, masks, alpha=alpha, colors=colours)
    return _draw_legend(canvas, [name.replace("_", " ") for name in class_names], colours)


def _draw_legend(canvas: torch.Tensor, names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> torch.Tensor:
    """A colour swatch and the name of each class on a dark box in the top-left corner of ``canvas`` (3, H, W)."""
    height, width = canvas.shape[1:]
    size = max(10, round(min(height, width) / 32))  # text height in pixels
    font = ImageFont.load_default(size=size)
    picture = Image.fromarray(canvas.permute(1, 2, 0).numpy()).convert("RGBA")
    layer = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    pad, line = max(2, size // 4), size + max(2, size // 4)
    text_width = max(draw.textlength(name, font=font) for name in names)
    draw.rectangle((0, 0, 3 * pad + size + text_width, pad + line * len(names)), fill=(0, 0, 0, 160))
    for row, (name, colour) in enumerate(zip(names, colours)):
        top = pad + row * line
        draw.rectangle((pad, top, pad + size - 1, top + size - 1), fill=(*colour, 255))
        draw.text((2 * pad + size, top), name, fill=(255, 255, 255, 255), font=font)
    combined = Image.alpha_composite(picture, layer).convert("RGB")
    return torch.from_numpy(np.asarray(combined).copy()).permute(2, 0, 1)


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


def plot_predictions(
    cases: Sequence[Mapping[str, Any]],
    *,
    results: pd.DataFrame | None = None,
    metric: str = "dice",
    threshold: float = 0.5,
) -> plt.Figure:
    """Overlays of predicted cases (from :func:`medseg_core.evaluation.collect_cases`): truth and prediction.

    Args:
        cases: dicts with ``id``, ``display`` (the image to draw on: the current frame of a window), ``truth``
            ``(H, W)`` labels and ``probability`` ``(K, H, W)``; labels follow the kit's one rule
            (:func:`medseg_core.models.probabilities_to_labels`).
        results: per-case metrics (:func:`medseg_core.evaluation.evaluate`); titles then show each case's ``metric``.
    """
    scores = results.groupby("id")[metric].mean() if results is not None else {}
    titles = [f"{case['id']}  {metric} {scores[case['id']]:.3f}" if case["id"] in scores else str(case["id"])
              for case in cases]
    predictions = [probabilities_to_labels(case["probability"][None], threshold)[0] > 0 for case in cases]
    return plot_overlays([case["display"] for case in cases], [case["truth"] > 0 for case in cases], predictions,
                         titles)


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
