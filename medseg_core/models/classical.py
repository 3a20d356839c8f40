"""Classical vessel filters as models: black top-hat and Frangi vesselness, the baselines a network must beat.

* **Black top-hat** (morphological closing minus the image; Zana & Klein, IEEE TIP 10(7), 2001, for vessels):
  after a Gaussian blur (sigma 1 px), ``closing(I) - I`` with a ``size x size`` square keeps dark structures
  narrower than the square, i.e. contrast-filled vessels on a brighter background. Computed in torch (max pooling),
  so it runs batched on any device.
* **Frangi vesselness** (Frangi, Niessen, Vincken, Viergever, MICCAI 1998): eigenvalues of the Hessian at the
  scales ``sigmas`` say how tube-like each pixel is; :func:`skimage.filters.frangi` with ``black_ridges=True``
  (dark vessels), whose ``gamma`` adapts to each image, so responses lie in [0, 1]. Runs on the CPU, frame by
  frame (the result comes back on the input's device).

Both take an XCA window ``(B, 1, T, H, W)`` like SVSnet (``input_kind = "window"``; frames prepared by the task's
:func:`~medseg_core.data.preprocess.preprocess_xca`: each frame divided by its maximum) and filter only the current
(labelled) frame, at :func:`~medseg_core.data.xca.current_frame_position` for the window policy. They have no
learnable weights: one number, the response ``threshold`` (a buffer, so it travels in ``state_dict`` and
checkpoints), is fitted on training or validation frames by :func:`fit_threshold`, which picks the threshold of
the best pooled Dice on a grid of responses (:func:`threshold_curve`). The output is logits like any model's::

    logits = steepness * (log(response) - log(threshold))   # sigmoid(logits) = r^k / (r^k + t^k)

so ``sigmoid(logits) > 0.5`` exactly where ``response > threshold`` and the kit's evaluation (threshold 0.5)
scores the fitted filter unchanged; the probability rises smoothly from 0.02 at half the threshold to 0.98 at
twice it (``steepness`` 4 is a display choice, not fitted).

Example (an XCA loader of the task, any split; fit on train or val, score on test)::

    model = create_model("tophat", window_length=4)    # what XCATask.model_kwargs gives a window model
    fit_threshold(model, loaders["val"])                 # sets model.threshold, returns it
    results = evaluate(model, loaders["test"], class_names=["vessel"])
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from skimage.filters import frangi as skimage_frangi
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from ..data.xca import WINDOW_POLICIES, current_frame_position
from ..runtime import get_device
from . import register_model
from .base import SegmentationModel

__all__ = ["ClassicalFilter", "BlackTopHat", "FrangiFilter", "CLASSICAL_MODELS", "threshold_curve", "fit_threshold",
           "tophat", "frangi"]

CLASSICAL_MODELS = ("frangi", "tophat")
"""Registered names of the weight-free filters (fit them with :func:`fit_threshold`, never train them)."""

_TINY = 1e-6  # responses are clamped here before the log: a zero response is a very negative logit, not -inf
_GRID = torch.cat([torch.zeros(1), torch.logspace(-4, 0, 400)])  # candidate thresholds of the fit


class ClassicalFilter(SegmentationModel):
    """Base of the weight-free filters: current frame of the window -> response ``(B, 1, H, W)`` -> logits.

    Subclasses implement :meth:`filter_frames` (``(B, H, W)`` frames in [0, 1] -> responses, larger = vessel).

    Args:
        window_length: T of the windows it is given (the task passes the profile's); only the current frame is used.
        window_policy: "centre" or "past": where the current frame sits in the window (the loader's policy).
        threshold: response above which a pixel is vessel; :func:`fit_threshold` replaces it.
        steepness: slope of the logits in log-response units (see the module docstring).
    """

    input_kind: ClassVar[str] = "window"
    weight_free: ClassVar[bool] = True
    default_threshold: ClassVar[float] = 0.05

    def __init__(self, window_length: int = 4, window_policy: str = "centre", threshold: float | None = None,
                 steepness: float = 4.0) -> None:
        super().__init__()
        if window_policy not in WINDOW_POLICIES:
            raise ValueError(f"unknown window policy {window_policy!r}; valid policies: {', '.join(WINDOW_POLICIES)}")
        threshold = self.default_threshold if threshold is None else threshold
        if not threshold > 0 or not steepness > 0:
            raise ValueError(f"threshold and steepness must be > 0; got {threshold} and {steepness}")
        self.window_length = window_length
        self.current = current_frame_position(window_length, window_policy)
        self.in_channels = 1
        self.num_classes = 1
        self.steepness = steepness
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    def fit(self, loader: DataLoader) -> dict[str, float]:
        """The threshold of the best pooled Dice on ``loader`` (:func:`fit_threshold`)."""
        return {"threshold": fit_threshold(self, loader)}

    def check_input_shape(self, x: torch.Tensor) -> None:
        """The base checks, then T: the window must have the ``window_length`` the filter was built for."""
        super().check_input_shape(x)
        if x.shape[2] != self.window_length:
            raise ValueError(f"{type(self).__name__} was built for window_length={self.window_length}; got T="
                             f"{x.shape[2]} in {tuple(x.shape)}. Build it with window_length={x.shape[2]}.")

    def filter_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, H, W)`` frames in [0, 1] -> vessel responses ``(B, H, W)`` >= 0."""
        raise NotImplementedError

    def response(self, x: torch.Tensor) -> torch.Tensor:
        """Window ``(B, 1, T, H, W)`` -> the filter's response on the current frame, ``(B, 1, H, W)`` float32."""
        self.check_input_shape(x)
        return self.filter_frames(x[:, 0, self.current].float()).clamp_min(0)[:, None]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.response(x)

    def forward_head(self, features: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """Response ``(B, 1, H, W)`` -> logits ``steepness * log(response / threshold)``."""
        return self.steepness * (features.clamp_min(_TINY).log() - self.threshold.clamp_min(_TINY).log())

    def extra_repr(self) -> str:
        return f"window_length={self.window_length}, current={self.current}, threshold={float(self.threshold):.4g}"


class BlackTopHat(ClassicalFilter):
    """Black top-hat after a Gaussian blur: ``closing(blur(I)) - blur(I)`` with a ``size x size`` square.

    Args:
        size: side of the square structuring element in pixels (odd); vessels narrower than it respond.
        sigma: Gaussian blur in pixels before the closing (0 disables it).
        **kwargs: :class:`ClassicalFilter`'s arguments.

    Example:
        >>> BlackTopHat(window_length=1)(torch.rand(2, 1, 1, 32, 32)).shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(self, size: int = 9, sigma: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if size < 3 or size % 2 == 0:
            raise ValueError(f"size must be an odd number >= 3, got {size}")
        self.size = size
        self.sigma = sigma

    def filter_frames(self, frames: torch.Tensor) -> torch.Tensor:
        image = frames[:, None]
        if self.sigma > 0:
            kernel = 2 * math.ceil(3 * self.sigma) + 1
            image = TF.gaussian_blur(image, [kernel, kernel], [self.sigma, self.sigma])
        dilated = F.max_pool2d(image, self.size, stride=1, padding=self.size // 2)
        closed = -F.max_pool2d(-dilated, self.size, stride=1, padding=self.size // 2)
        return (closed - image)[:, 0]


class FrangiFilter(ClassicalFilter):
    """Frangi vesselness for dark vessels (:func:`skimage.filters.frangi`, ``black_ridges=True``), in [0, 1].

    Args:
        sigmas: Hessian scales in pixels; cover the vessel radii at the input size (about 1-4 px at 128-256 px).
        **kwargs: :class:`ClassicalFilter`'s arguments.
    """

    default_threshold = 0.1

    def __init__(self, sigmas: tuple[float, ...] | list[float] = (1.0, 2.0, 3.0, 4.0), **kwargs) -> None:
        super().__init__(**kwargs)
        if not sigmas or min(sigmas) <= 0:
            raise ValueError(f"sigmas must be positive scales in pixels, got {sigmas}")
        self.sigmas = tuple(float(sigma) for sigma in sigmas)

    def filter_frames(self, frames: torch.Tensor) -> torch.Tensor:
        stack = frames.detach().cpu().double().numpy()
        responses = np.stack([skimage_frangi(frame, sigmas=self.sigmas, black_ridges=True) for frame in stack])
        return torch.from_numpy(responses).to(device=frames.device, dtype=torch.float32)


@torch.no_grad()
def threshold_curve(model: ClassicalFilter, loader: DataLoader,
                    device: str | torch.device | None = "auto") -> pd.DataFrame:
    """Pooled precision, recall and Dice of the filter's response at each candidate threshold, in one pass.

    Candidates: 0 and 400 log-spaced values in [1e-4, 1] (responses above 1 count in the top one). Pixel counts are
    pooled over all frames of ``loader`` (batches with ``"image"`` windows and ``"mask"`` ``(B, 1, H, W)``), as in
    :func:`medseg_core.evaluation.threshold_sweep`; memory does not grow with the number of frames.

    Returns:
        Columns ``threshold``, ``precision``, ``recall``, ``dice``, one row per candidate.
    """
    device = get_device(device)
    model = model.to(device).eval()
    grid = _GRID.to(device)
    above = torch.zeros(len(grid), dtype=torch.float64, device=device)  # pixels with response > candidate
    vessel_above = torch.zeros_like(above)  # ... of them vessel
    positives = 0.0
    for batch in loader:
        response = model.response(batch["image"].to(device)).flatten()
        truth = (batch["mask"].to(device) > 0.5).flatten()
        bins = torch.bucketize(response, grid, right=False) - 1  # index of the largest candidate < response
        above += torch.bincount(bins[bins >= 0], minlength=len(grid)).flip(0).cumsum(0).flip(0).double()
        vessel = bins[truth & (bins >= 0)]
        vessel_above += torch.bincount(vessel, minlength=len(grid)).flip(0).cumsum(0).flip(0).double()
        positives += float(truth.sum())
    if positives == 0 and not above.any():
        raise ValueError("the loader is empty or holds no pixels: nothing to fit the threshold on")
    true_pos, pred_pos = vessel_above.cpu().numpy(), above.cpu().numpy()
    precision = np.divide(true_pos, pred_pos, out=np.ones_like(true_pos), where=pred_pos > 0)
    recall = true_pos / positives if positives > 0 else np.ones_like(true_pos)
    total = pred_pos + positives
    dice = np.divide(2 * true_pos, total, out=np.ones_like(true_pos), where=total > 0)
    return pd.DataFrame({"threshold": _GRID.numpy().astype(float), "precision": precision, "recall": recall,
                         "dice": dice})


def fit_threshold(model: ClassicalFilter, loader: DataLoader, metric: str = "dice",
                  device: str | torch.device | None = "auto") -> float:
    """Set ``model.threshold`` to the candidate of :func:`threshold_curve` with the best pooled ``metric``.

    Fit on training or validation frames, never on the frames you report. Returns the chosen threshold.

    Raises:
        TypeError: ``model`` is not one of the classical filters (networks are trained, not fitted).
    """
    if not isinstance(model, ClassicalFilter):
        raise TypeError(f"fit_threshold fits the classical filters ({', '.join(CLASSICAL_MODELS)}), not "
                        f"{type(model).__name__}; networks choose a probability threshold with "
                        "medseg_core.evaluation.threshold_sweep")
    curve = threshold_curve(model, loader, device)
    best = float(curve.loc[curve[metric].idxmax(), "threshold"])
    model.threshold.fill_(max(best, _TINY))
    return float(model.threshold)


@register_model
def tophat(**kwargs) -> BlackTopHat:
    """Black top-hat (9x9 square after a Gaussian of sigma 1); fit its threshold with :func:`fit_threshold`."""
    return BlackTopHat(**kwargs)


@register_model
def frangi(**kwargs) -> FrangiFilter:
    """Frangi vesselness for dark vessels (sigmas 1-4 px); fit its threshold with :func:`fit_threshold`."""
    return FrangiFilter(**kwargs)
