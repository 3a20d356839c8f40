"""Explorers for the notebooks: ipywidgets controls over a model and a dataset, each with a static fallback.

Four explorers, one call each from a notebook:

* :func:`xca_explorer` - an angiography video frame by frame: the T-frame window the model sees, ground truth,
  prediction and errors, a threshold slider and the Dice of the frame.
* :func:`oct_explorer` - OCT frames in the Cartesian or the polar view, every class drawn, one class's errors.
* :func:`attention_explorer` - the channel weights of every attention block (ECA in DeepLabV3+, SVSnet's
  channel attention) for a chosen input.
* :func:`compare_explorer` - two models (or checkpoints) side by side on the same case.

Each returns an :class:`Explorer` (an ``ipywidgets.VBox`` of controls, a one-line readout and the picture as a
PNG ``ipywidgets.Image``) when a front end can show widgets, else a static :class:`matplotlib.figure.Figure` of
the first settings with the readout as its title, so headless runs (papermill, ``make docs``) still show a
picture. ``interactive=None`` asks :func:`front_end_attached`; pass ``True``/``False`` to choose yourself.

Models run through :func:`medseg_core.evaluation.predict_cases` (the kit's one logits -> probabilities rule),
one case at a time, and predictions are cached, so moving a slider back is instant. Pictures are drawn with
:func:`medseg_core.viz.overlay`; scores come from :mod:`medseg_core.metrics` (with its empty-mask rule).
"""
from __future__ import annotations

import html
import io
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure
from scipy import ndimage
from torch.utils.data import Dataset, default_collate
from torchvision.utils import draw_segmentation_masks

from .checkpoints import load_model
from .data.xca import XCAWindowDataset, window_indices
from .evaluation import predict_cases
from .metrics import dice
from .models.blocks import ECA, collect_attention_weights
from .viz import OCT_CLASS_COLOURS, PREDICTION_COLOUR, TRUTH_COLOUR, overlay, to_display_image

__all__ = [
    "front_end_attached",
    "Explorer",
    "cartesian_to_polar",
    "xca_explorer",
    "oct_explorer",
    "attention_explorer",
    "compare_explorer",
]

HIT_COLOUR = "gold"  # true positives in error maps; misses are TRUTH_COLOUR, false alarms PREDICTION_COLOUR
_ERROR_LEGEND = "gold: found · lime: missed · magenta: false alarm"
_FALLBACK_COLOURS = ("deepskyblue", "yellow", "lime", "red", "orange", "cyan")
Draw = Callable[..., str]  # draw(fig, **control values) -> readout text


def front_end_attached() -> bool:
    """Whether widgets can be shown: ``True`` in a kernel started by a Jupyter server (JupyterLab, Notebook,
    Voila: the server sets ``JPY_SESSION_NAME``) or in Colab; ``False`` outside a kernel and in kernels run
    headless by papermill or nbconvert. ``MEDSEG_WIDGETS=interactive`` or ``static`` overrides the guess (for
    other front ends, such as VS Code)."""
    setting = os.environ.get("MEDSEG_WIDGETS", "").strip().lower()
    if setting in ("interactive", "static"):
        return setting == "interactive"
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return bool(os.environ.get("JPY_SESSION_NAME")) or "google.colab" in sys.modules


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


class _StaticFigure(Figure):
    """A figure that shows itself as PNG when it ends a notebook cell, whatever the matplotlib backend."""

    def _repr_png_(self) -> bytes:
        return _png(self)


class Explorer(widgets.VBox):
    """Controls, a readout line and a picture that is redrawn whenever a control's value changes.

    Attributes:
        controls: ``{name: widget}``; set ``controls[name].value`` to move a control from code.
        readout: ``ipywidgets.HTML`` with the one-line readout of the current picture.
        image: ``ipywidgets.Image`` holding the current picture as PNG bytes.
    """

    def __init__(self, controls: Mapping[str, widgets.ValueWidget], draw: Draw, figsize: tuple[float, float]) -> None:
        self.controls = dict(controls)
        self.readout = widgets.HTML()
        self.image = widgets.Image(format="png")
        self._draw, self._figsize = draw, figsize
        super().__init__([widgets.HBox(list(self.controls.values())), self.readout, self.image])
        for control in self.controls.values():
            control.observe(self.refresh, names="value")
        self.refresh()

    @property
    def values(self) -> dict[str, Any]:
        """Current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def refresh(self, change: Any = None) -> None:
        """Redraw the picture and the readout for the current control values."""
        fig = Figure(figsize=self._figsize, layout="constrained")
        text = self._draw(fig, **self.values)
        self.image.value = _png(fig)
        self.readout.value = f"<code>{html.escape(text)}</code>"


def _explore(controls: Mapping[str, widgets.ValueWidget], draw: Draw, figsize: tuple[float, float],
             interactive: bool | None) -> Explorer | Figure:
    """An :class:`Explorer`, or (not interactive) one static figure of the controls' first values."""
    if front_end_attached() if interactive is None else interactive:
        return Explorer(controls, draw, figsize)
    fig = _StaticFigure(figsize=figsize, layout="constrained")
    fig.suptitle(draw(fig, **{name: control.value for name, control in controls.items()}), fontsize=9)
    return fig


def _slider(description: str, count: int) -> widgets.IntSlider:
    if count < 1:
        raise ValueError(f"nothing to explore: the dataset has no {description}s")
    return widgets.IntSlider(0, 0, count - 1, description=description, continuous_update=False)


def _threshold_slider(value: float) -> widgets.FloatSlider:
    return widgets.FloatSlider(value, min=0.05, max=0.95, step=0.05, description="threshold", continuous_update=False)


# ----------------------------------------------------------------------------------------------------------------
# Cases: one dataset item through the model
# ----------------------------------------------------------------------------------------------------------------
class _Cases:
    """Lazily predicted, cached cases ``{"id", "image", "truth" (H, W), "probability" (K, H, W)}`` of a model."""

    def __init__(self, model: nn.Module, dataset: Dataset, indices: Sequence[int] | None = None) -> None:
        self.model, self.dataset = model, dataset
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self._cache: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, Any]:
        if position not in self._cache:
            batch = default_collate([self.dataset[self.indices[position]]])
            case = next(predict_cases(self.model, [batch]))
            case["attention"] = {name: w[0].float().cpu() for name, w in collect_attention_weights(self.model).items()}
            self._cache[position] = case
        return self._cache[position]


def _current_frame(image: torch.Tensor, dataset: Dataset) -> torch.Tensor:
    """The frame to draw of a model input: the labelled frame of an XCA window, the image itself otherwise."""
    if isinstance(dataset, XCAWindowDataset):
        frames = image[0] if dataset.time_axis else image  # (T, H, W)
        return frames[dataset.current_frame_position]
    return image


def _masks(case: Mapping[str, Any], class_index: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean truth and prediction ``(H, W)`` of one class: a binary model's only channel, else ``class_index``.

    A pixel is predicted where the class probability exceeds ``threshold`` (for two classes at 0.5 this is the
    argmax).
    """
    probability, truth = case["probability"], case["truth"]
    if probability.shape[0] == 1:
        return (truth > 0).numpy(), (probability[0] > threshold).numpy()
    return (truth == class_index).numpy(), (probability[class_index] > threshold).numpy()


def _error_image(frame: torch.Tensor, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8: hits gold, misses lime, false alarms magenta on the frame."""
    canvas = to_display_image(frame)
    for mask, colour in ((truth & prediction, HIT_COLOUR), (truth & ~prediction, TRUTH_COLOUR),
                         (~truth & prediction, PREDICTION_COLOUR)):
        canvas = draw_segmentation_masks(canvas, torch.from_numpy(mask), alpha=0.6, colors=colour)
    return canvas.permute(1, 2, 0).numpy()


def _label_image(frame: torch.Tensor, labels: torch.Tensor, colours: Sequence[str]) -> np.ndarray:
    """``(H, W, 3)`` uint8: every foreground class ``i >= 1`` of ``labels`` in ``colours[i - 1]``."""
    canvas = to_display_image(frame)
    for index, colour in enumerate(colours, start=1):
        canvas = draw_segmentation_masks(canvas, labels == index, alpha=0.45, colors=colour)
    return canvas.permute(1, 2, 0).numpy()


def _show(ax: Any, image: np.ndarray, title: str) -> None:
    ax.imshow(image)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _dice_text(truth: np.ndarray, prediction: np.ndarray) -> str:
    text = f"Dice {dice(prediction, truth):.3f} ({int(prediction.sum())} px predicted, {int(truth.sum())} px true)"
    if not truth.any():
        text += "; empty ground truth: Dice is 1 if nothing is predicted, else 0 (empty-mask rule)"
    return text


# ----------------------------------------------------------------------------------------------------------------
# XCA sequences
# ----------------------------------------------------------------------------------------------------------------
def xca_explorer(
    model: nn.Module,
    dataset: XCAWindowDataset,
    video: str | None = None,
    threshold: float = 0.5,
    interactive: bool | None = None,
) -> Explorer | Figure:
    """Step through the labelled frames of one video: where the T-frame window sits in the video, the window as
    the model sees it, ground truth, prediction and errors at a chosen threshold, and the frame's Dice.

    Args:
        model: a binary XCA model (SVSnet, or a 2D model with ``time_axis=False`` data), logits ``(B, 1, H, W)``.
        dataset: the windows, e.g. ``loaders["test"].dataset`` (test videos are labelled on every frame).
        video: which video (default: the dataset's first).
        threshold: first position of the threshold slider.
        interactive: widgets (``True``), one static figure (``False``), or ask :func:`front_end_attached`.

    Controls: ``frame`` (index among the video's labelled frames) and ``threshold``.
    """
    names = dataset.samples["video"]
    video = names.iloc[0] if video is None else video
    if video not in set(names):
        raise ValueError(f"video {video!r} not in the dataset; videos: {sorted(set(names))}")
    source = next(v for v in dataset.videos if v.name == video)
    cases = _Cases(model, dataset, np.flatnonzero(names.to_numpy() == video))
    length, policy = dataset.window_length, dataset.window_policy

    def draw(fig: Figure, frame: int, threshold: float) -> str:
        case = cases[frame]
        position = source.labelled_frames[frame]
        window = window_indices(position, source.num_frames, length, policy)
        top, middle, bottom = fig.subfigures(3, 1, height_ratios=(0.45, 1.0, 1.6))
        ax = top.subplots()
        ax.axvspan(min(window) - 0.5, max(window) + 0.5, color=HIT_COLOUR, alpha=0.5, label=f"window (T = {length})")
        ax.scatter(range(source.num_frames), np.zeros(source.num_frames), s=12, color="grey", label="frame")
        ax.scatter([position], [0], s=60, color="red", marker="v", label="current (labelled) frame")
        ax.set(xlim=(-0.5, source.num_frames - 0.5), yticks=[], xlabel=f"frame of video {video}")
        ax.legend(loc="upper right", fontsize=7, ncol=3, frameon=False)
        frames = case["image"][0] if dataset.time_axis else case["image"]
        for t, axis in enumerate(np.atleast_1d(middle.subplots(1, len(frames)))):
            axis.imshow(frames[t].numpy(), cmap="gray")
            offset = window[t] - position
            axis.set_title("current" if t == dataset.current_frame_position else f"frame {offset:+d}"
                           + (" (repeated)" if window.count(window[t]) > 1 else ""), fontsize=8)
            axis.set_xticks([]), axis.set_yticks([])
            if t == dataset.current_frame_position:
                for spine in axis.spines.values():
                    spine.set(color="red", linewidth=2)
        truth, prediction = _masks(case, 1, threshold)
        current = frames[dataset.current_frame_position]
        axes = bottom.subplots(1, 3)
        _show(axes[0], overlay(current, truth).permute(1, 2, 0).numpy(), "ground truth (lime)")
        _show(axes[1], overlay(current, None, prediction).permute(1, 2, 0).numpy(),
              f"prediction > {threshold:.2f} (magenta)")
        _show(axes[2], _error_image(current, truth, prediction), _ERROR_LEGEND)
        return (f"{case['id']}: window frames {[source.frame_numbers[i] for i in window]} ({policy} policy, "
                f"T = {length}); threshold {threshold:.2f}: {_dice_text(truth, prediction)}")

    controls = {"frame": _slider("frame", len(cases)), "threshold": _threshold_slider(threshold)}
    return _explore(controls, draw, (10, 7.5), interactive)


# ----------------------------------------------------------------------------------------------------------------
# OCT frames
# ----------------------------------------------------------------------------------------------------------------
def cartesian_to_polar(image: np.ndarray, num_angles: int = 360, num_depths: int | None = None,
                       order: int = 1) -> np.ndarray:
    """Unroll a circular OCT frame ``(H, W)`` or ``(H, W, C)`` into polar ``(num_angles, num_depths[, C])``.

    The inverse of :func:`medseg_core.data.synthetic_oct.scan_convert`: rows are angles clockwise from 3 o'clock
    (row ``a`` at ``360 a / num_angles`` degrees), columns are depths from the catheter at the image centre to
    the edge of the circular field of view (``num_depths`` defaults to half the side). Use ``order=0`` for label
    maps.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected an image (H, W) or (H, W, C); got shape {image.shape}")
    height, width = image.shape[:2]
    num_depths = num_depths or min(height, width) // 2
    angle = 2.0 * np.pi * np.arange(num_angles) / num_angles
    radius = (np.arange(num_depths) + 0.5) / num_depths * (min(height, width) / 2.0)
    rows = (height - 1) / 2.0 + radius[None, :] * np.sin(angle)[:, None]
    columns = (width - 1) / 2.0 + radius[None, :] * np.cos(angle)[:, None]
    planes = image[..., None] if image.ndim == 2 else image
    polar = np.stack([ndimage.map_coordinates(planes[..., c].astype(np.float64), [rows, columns], order=order,
                                              mode="constant") for c in range(planes.shape[-1])], axis=-1)
    polar = polar[..., 0] if image.ndim == 2 else polar
    return np.clip(np.round(polar), 0, 255).astype(np.uint8) if image.dtype == np.uint8 else polar.astype(image.dtype)


def oct_explorer(
    model: nn.Module,
    dataset: Dataset,
    class_names: Sequence[str] | None = None,
    threshold: float = 0.5,
    interactive: bool | None = None,
) -> Explorer | Figure:
    """Step through OCT frames in the Cartesian or the polar view: every class of the ground truth and of the
    prediction (argmax), and one class's errors at a threshold with its Dice.

    Args:
        model: a multiclass OCT model, logits ``(B, K, H, W)`` (e.g. DeepLabV3+).
        dataset: OCT frames ``{"image": (3, H, W), "mask": (H, W), "id"}``, e.g. ``loaders["test"].dataset``.
        class_names: the K class names, background first (default: ``background`` + ``dataset.classes``).
        threshold: first position of the threshold slider (for the chosen class's probability).
        interactive: widgets (``True``), one static figure (``False``), or ask :func:`front_end_attached`.

    Controls: ``frame``, ``class_index`` (a foreground class), ``view`` (``"Cartesian"`` or ``"polar"``) and
    ``threshold``.
    """
    class_names = list(class_names or ("background", *getattr(dataset, "classes", ("foreground",))))
    colours = [OCT_CLASS_COLOURS.get(name, _FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)])
               for i, name in enumerate(class_names[1:])]
    cases = _Cases(model, dataset)

    def draw(fig: Figure, frame: int, class_index: int, view: str, threshold: float) -> str:
        case = cases[frame]
        truth, prediction = _masks(case, class_index, threshold)
        panels = {
            "ground truth, all classes": _label_image(case["image"], case["truth"], colours),
            "prediction (argmax), all classes": _label_image(case["image"], case["probability"].argmax(0), colours),
            f"{class_names[class_index]} > {threshold:.2f}: errors": _error_image(case["image"], truth, prediction),
        }
        for ax, (title, picture) in zip(fig.subplots(1, 3), panels.items()):
            if view == "polar":
                picture = cartesian_to_polar(picture)
                ax.imshow(picture, aspect="auto", extent=(0, picture.shape[1], 360, 0))
                ax.set(xlabel="depth (px from the catheter)", ylabel="angle (deg, clockwise from 3 o'clock)")
                ax.set_title(title, fontsize=8)
            else:
                _show(ax, picture, title)
        fig.supxlabel(_ERROR_LEGEND, fontsize=8)
        legend = ", ".join(f"{name} {colour}" for name, colour in zip(class_names[1:], colours))
        return f"{case['id']} ({view}; {legend}): {class_names[class_index]} {_dice_text(truth, prediction)}"

    controls = {
        "frame": _slider("frame", len(cases)),
        "class_index": widgets.Dropdown(options=[(name, i) for i, name in enumerate(class_names) if i > 0],
                                        description="class"),
        "view": widgets.ToggleButtons(options=["Cartesian", "polar"], description="view"),
        "threshold": _threshold_slider(threshold),
    }
    return _explore(controls, draw, (12, 4.6), interactive)


# ----------------------------------------------------------------------------------------------------------------
# Attention weights
# ----------------------------------------------------------------------------------------------------------------
def attention_explorer(
    model: nn.Module,
    dataset: Dataset,
    indices: Sequence[int] | None = None,
    interactive: bool | None = None,
) -> Explorer | Figure:
    """The channel weights ``(C,)`` of each attention block of ``model`` for a chosen input, against their mean
    over the explored inputs: ECA in DeepLabV3+, the encoder and decoder channel attention in SVSnet.

    Args:
        model: a model with attention blocks (:class:`medseg_core.models.blocks.AttentionModule`).
        dataset: inputs in the dataset's format, e.g. ``loaders["test"].dataset``.
        indices: dataset items to explore (default: the first 8).
        interactive: widgets (``True``), one static figure (``False``), or ask :func:`front_end_attached`.

    Controls: ``case`` and ``block`` (a module name, e.g. ``"aspp.attention"``).
    """
    cases = _Cases(model, dataset, range(min(8, len(dataset))) if indices is None else indices)
    weights = [cases[i]["attention"] for i in range(len(cases))]  # every case: for the mean over inputs
    if not weights or not weights[0]:
        raise ValueError(f"{type(model).__name__} has no attention block, so there are no weights to explore")
    modules = dict(model.named_modules())
    groups = model.attention_groups() if hasattr(model, "attention_groups") else {}

    def draw(fig: Figure, case: int, block: str) -> str:
        values = weights[case][block].numpy()
        mean = np.mean([w[block].numpy() for w in weights], axis=0)
        image_ax, weight_ax = fig.subplots(1, 2, width_ratios=(1, 3))
        frame = _current_frame(cases[case]["image"], dataset)
        _show(image_ax, to_display_image(frame).permute(1, 2, 0).numpy(), cases[case]["id"])
        channels = np.arange(values.size)
        weight_ax.plot(channels, mean, color="grey", linewidth=0.8, label=f"mean over {len(weights)} inputs")
        weight_ax.plot(channels, values, color="C0", linewidth=0.9, marker="o" if values.size <= 64 else None,
                       markersize=3, label="this input")
        names = groups.get(block, [])
        for index, name in enumerate(names):
            width = values.size // len(names)
            if index % 2:
                weight_ax.axvspan(index * width - 0.5, (index + 1) * width - 0.5, color="grey", alpha=0.12)
            weight_ax.text((index + 0.5) * width, 1.0, name, transform=weight_ax.get_xaxis_transform(), ha="center",
                           va="bottom", fontsize=7)
        weight_ax.set(xlim=(-0.5, values.size - 0.5), xlabel="channel", ylabel="weight (sigmoid)")
        weight_ax.legend(fontsize=7, frameon=False, loc="lower right")
        module = modules[block]
        kind = f"ECA, k = {module.kernel_size}" if isinstance(module, ECA) else type(module).__name__
        top = np.argsort(values)[::-1][:3].tolist()
        return (f"{cases[case]['id']}, {block} ({kind}): {values.size} channels; weights {values.min():.3f} to {values.max():.3f}, "
                f"mean {values.mean():.3f}; most weighted channels {top}")

    controls = {"case": _slider("case", len(cases)),
                "block": widgets.Dropdown(options=list(weights[0]), description="block")}
    return _explore(controls, draw, (12, 3.6), interactive)


# ----------------------------------------------------------------------------------------------------------------
# Two models side by side
# ----------------------------------------------------------------------------------------------------------------
def compare_explorer(
    models: Mapping[str, nn.Module | str | Path],
    dataset: Dataset,
    class_index: int = 1,
    threshold: float = 0.5,
    interactive: bool | None = None,
) -> Explorer | Figure:
    """Two models on the same case: each one's errors at a threshold, with its Dice and the difference.

    Args:
        models: two ``{name: model or checkpoint path}``; paths are loaded with :func:`medseg_core.load_model`.
        dataset: cases both models can read, e.g. ``loaders["test"].dataset``.
        class_index: the class scored for multiclass models (binary models score their only channel).
        threshold: first position of the threshold slider.
        interactive: widgets (``True``), one static figure (``False``), or ask :func:`front_end_attached`.

    Controls: ``case`` and ``threshold``.
    """
    if len(models) != 2:
        raise ValueError(f"compare_explorer compares two models; got {len(models)}: {list(models)}")
    cases = {name: _Cases(load_model(m) if isinstance(m, (str, Path)) else m, dataset) for name, m in models.items()}

    def draw(fig: Figure, case: int, threshold: float) -> str:
        scores = {}
        for ax, (name, model_cases) in zip(fig.subplots(1, 2), cases.items()):
            truth, prediction = _masks(model_cases[case], class_index, threshold)
            scores[name] = dice(prediction, truth)
            frame = _current_frame(model_cases[case]["image"], dataset)
            _show(ax, _error_image(frame, truth, prediction), f"{name}: Dice {scores[name]:.3f}")
        fig.supxlabel(_ERROR_LEGEND, fontsize=8)
        (first, a), (second, b) = scores.items()
        case_id = next(iter(cases.values()))[case]["id"]
        return (f"{case_id} at threshold {threshold:.2f}: {first} Dice {a:.3f}, {second} Dice {b:.3f} "
                f"({first} - {second} = {a - b:+.3f})")

    controls = {"case": _slider("case", len(dataset)), "threshold": _threshold_slider(threshold)}
    return _explore(controls, draw, (8, 4.4), interactive)
