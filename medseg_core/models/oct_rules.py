"""A classical rule for the OCT lipid core: a band of blurred grey values in a ring of the field of view.

The baseline a lipid network must beat. In IVOCT a lipid pool is a *signal-poor region with a diffuse border behind
a bright fibrous cap* (Xu et al., J Biomed Opt 13:034003, 2008; van Soest et al., J Biomed Opt 15:011105, 2010;
the optics of :mod:`medseg_core.data.synthetic_oct`): it scatters strongly but attenuates fast, so its pixels fall
from the cap's brightness towards the noise floor. Dark is not enough: the flushed lumen and the far wall are dark
too. The rule therefore has two parts, both fitted on training or validation frames:

* **grey band**: the ImageNet-normalised RGB frame is un-normalised, turned to grey (ITU-R 601 luma, monotone in the
  orange colour table's display value) and blurred with a Gaussian of ``sigma`` pixels (speckle is coarse); lipid is
  where the blurred grey value lies in ``(low, high)``;
* **ring**: and where the distance from the image centre (the catheter: IVOCT frames are scan-converted around it),
  as a fraction of the field-of-view radius ``min(H, W) / 2``, lies in ``(inner, outer)``, which leaves out most of
  the lumen (inside) and the dark far field (outside). On the 42 synthetic training frames of the cpu profile's
  ECA ablation (96 px) the ring raised the fitted rule's pooled Dice from 0.13 (band alone) to 0.31. Being a pixel
  rule, it still marks some lipid on every plaque-free frame.

No learnable weights (``weight_free``): the four numbers are buffers (they travel in ``state_dict`` and
checkpoints), set by :func:`fit_band`, which picks the band and ring of the best pooled lipid Dice over a grid in one
pass over the frames (:func:`band_counts`). The output is two-class logits like the networks', so the kit's
evaluation (argmax) scores the fitted rule unchanged::

    logits[:, 0] = 0                                                        # background
    logits[:, 1] = steepness * min(grey - low, high - grey, radius - inner, outer - radius)

The lipid logit is positive exactly inside both band and ring and falls smoothly outside; the lipid probability
rises from 0.5 on the border to 0.98 at 0.04 (grey value or radius fraction) inside it (``steepness`` 100 is a
display choice, not fitted).

Example (the OCT task's loaders; fit on frames without augmentation, e.g. validation, score on test)::

    model = create_model("intensity", **get_task("oct").model_kwargs(profile, "intensity"))
    fit_band(model, loaders["val"])                   # sets low, high, inner, outer; returns a BandFit
    results = evaluate(model, loaders["test"], class_names=["lipid_core"])
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as TF

from ..data.preprocess import imagenet_denormalise
from ..runtime import get_device
from . import register_model
from .base import SegmentationModel

__all__ = ["IntensityRule", "BandFit", "GREY_STEPS", "RING_STEPS", "radius_fraction", "band_counts", "fit_band",
           "intensity"]

GREY_STEPS = 256
"""The grey candidates of :func:`fit_band` are ``k / GREY_STEPS`` (about one 8-bit level apart)."""
RING_STEPS = 20
"""The ring candidates of :func:`fit_band` are ``k / RING_STEPS`` of the field-of-view radius."""


class IntensityRule(SegmentationModel):
    """Lipid = blurred grey value in ``(low, high)`` and distance from the centre in ``(inner, outer)``.

    Input ``(B, 3, H, W)`` ImageNet-normalised RGB (:func:`~medseg_core.data.preprocess.preprocess_oct`); output
    logits ``(B, 2, H, W)``: background 0, lipid positive exactly inside band and ring (see the module docstring).

    Args:
        num_classes: must be 2 (background, lipid core): the rule knows one class.
        in_channels: must be 3 (RGB).
        sigma: Gaussian blur in pixels at the input size before the band (0 disables it).
        low, high: the grey band, values in [0, 1]; None: :attr:`default_band`. :func:`fit_band` replaces them.
        inner, outer: the ring, fractions of the field-of-view radius ``min(H, W) / 2``; None: the whole frame
            (0 and the corner, sqrt 2). :func:`fit_band` replaces them.
        steepness: slope of the lipid logit per unit of grey value or radius fraction.

    Example:
        >>> IntensityRule()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 2, 32, 32])
    """

    input_kind: ClassVar[str] = "image"
    weight_free: ClassVar[bool] = True  # fitted by fit_band, never trained
    default_band: ClassVar[tuple[float, float]] = (0.01, 0.06)  # synthetic optics: noise floor (grey ~0.02) and above

    def __init__(self, num_classes: int = 2, in_channels: int = 3, sigma: float = 1.0, low: float | None = None,
                 high: float | None = None, inner: float | None = None, outer: float | None = None,
                 steepness: float = 100.0) -> None:
        super().__init__()
        if num_classes != 2:
            raise ValueError(f"IntensityRule segments one class (lipid core): num_classes must be 2 (background and "
                             f"lipid), got {num_classes}; keep oct.classes=('lipid_core',)")
        if in_channels != 3:
            raise ValueError(f"IntensityRule reads RGB OCT frames: in_channels must be 3, got {in_channels}")
        low = self.default_band[0] if low is None else low
        high = self.default_band[1] if high is None else high
        inner = 0.0 if inner is None else inner
        outer = math.sqrt(2.0) if outer is None else outer
        if not (low < high and inner < outer and sigma >= 0 and steepness > 0):
            raise ValueError(f"need low < high, inner < outer, sigma >= 0 and steepness > 0; got low={low}, "
                             f"high={high}, inner={inner}, outer={outer}, sigma={sigma}, steepness={steepness}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.sigma = sigma
        self.steepness = steepness
        for name, value in (("low", low), ("high", high), ("inner", inner), ("outer", outer)):
            self.register_buffer(name, torch.tensor(float(value)))

    def fit(self, loader: DataLoader) -> dict[str, float]:
        """Band and ring of the best pooled lipid Dice on ``loader`` (:func:`fit_band`), by name."""
        fitted = fit_band(self, loader)
        return {"low": fitted.low, "high": fitted.high, "inner": fitted.inner, "outer": fitted.outer,
                "fit_dice": fitted.dice}

    def grey(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB ``(B, 3, H, W)`` -> blurred grey values ``(B, H, W)``, about [0, 1]."""
        self.check_input_shape(x)
        grey = TF.rgb_to_grayscale(imagenet_denormalise(x.float()).clamp(0, 1))
        if self.sigma > 0:
            kernel = 2 * math.ceil(3 * self.sigma) + 1
            grey = TF.gaussian_blur(grey, [kernel, kernel], [self.sigma, self.sigma])
        return grey[:, 0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised RGB ``(B, 3, H, W)`` -> ``(B, 2, H, W)``: blurred grey value and radius fraction per pixel."""
        grey = self.grey(x)
        radius = radius_fraction(tuple(x.shape[-2:]), x.device).expand_as(grey)
        return torch.stack([grey, radius], dim=1)

    def forward_head(self, features: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """``(B, 2, H, W)`` grey and radius -> logits ``(B, 2, H, W)``: 0 and ``steepness * margin``."""
        grey, radius = features[:, 0], features[:, 1]
        margin = torch.stack([grey - self.low, self.high - grey, radius - self.inner, self.outer - radius]).amin(0)
        return torch.stack([torch.zeros_like(margin), self.steepness * margin], dim=1)

    def extra_repr(self) -> str:
        return (f"sigma={self.sigma}, band=({float(self.low):.4g}, {float(self.high):.4g}), "
                f"ring=({float(self.inner):.3g}, {float(self.outer):.3g})")


def radius_fraction(size: tuple[int, int], device: torch.device | str | None = None) -> torch.Tensor:
    """``(H, W)`` distance of each pixel from the image centre over the field-of-view radius ``min(H, W) / 2``."""
    height, width = size
    rows = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2
    columns = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2
    return torch.hypot(rows[:, None], columns[None, :]) / (min(height, width) / 2)


@torch.no_grad()
def band_counts(model: IntensityRule, loader: DataLoader, *, within_ring: bool = False,
                device: str | torch.device | None = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels and lipid pixels per (radius step, grey step), pooled over all frames of ``loader``, in one pass.

    Grey step ``k`` holds blurred grey values in ``((k - 1) / GREY_STEPS, k / GREY_STEPS]`` (step 0: 0 and below,
    the last step: above 1), radius step ``m`` radius fractions in ``((m - 1) / RING_STEPS, m / RING_STEPS]`` (the
    last step: beyond 1, the corners outside the field of view). With ``within_ring`` the pixels inside the model's
    ring are in radius step 0 and all others in step 1. Every pixel is counted, so ``lipid.sum()`` is all lipid.
    Batches are the OCT loaders' dicts: ``"image"`` ``(B, 3, H, W)``, ``"mask"`` ``(B, H, W)`` class indices
    (1 = lipid) or ``(B, 1, H, W)`` 0/1.

    Returns:
        ``(pixels, lipid)``, each ``(RING_STEPS + 2, GREY_STEPS + 2)`` int64 on the CPU.
    """
    device = get_device(device)
    model = model.to(device).eval()
    grey_edges = torch.arange(GREY_STEPS + 1, device=device) / GREY_STEPS
    ring_edges = torch.arange(RING_STEPS + 1, device=device) / RING_STEPS
    shape = (RING_STEPS + 2, GREY_STEPS + 2)
    pixels = torch.zeros(shape[0] * shape[1], dtype=torch.int64, device=device)
    lipid = torch.zeros_like(pixels)
    for batch in loader:
        features = model.forward_features(batch["image"].to(device))
        grey, radius = features[:, 0].contiguous(), features[:, 1].contiguous()
        masks = batch["mask"].to(device)
        truth = (masks[:, 0] > 0.5) if masks.ndim == 4 else (masks == 1)
        if within_ring:
            ring_step = ((radius <= model.inner) | (radius >= model.outer)).long()
        else:
            ring_step = torch.bucketize(radius, ring_edges)
        cells = (ring_step * shape[1] + torch.bucketize(grey, grey_edges)).flatten()
        pixels += torch.bincount(cells, minlength=len(pixels))
        lipid += torch.bincount(cells[truth.flatten()], minlength=len(lipid))
    return pixels.view(shape).cpu(), lipid.view(shape).cpu()


@dataclass(frozen=True)
class BandFit:
    """What :func:`fit_band` chose: the grey band, the ring and the pooled lipid Dice they reach on the fit frames."""

    low: float
    high: float
    inner: float
    outer: float
    dice: float


def _prefix_sums(counts: torch.Tensor) -> torch.Tensor:
    """``(R, G)`` counts -> ``(R + 1, G + 1)`` sums over ``[:r, :g]`` (a zero row and column first)."""
    return torch.nn.functional.pad(counts.double().cumsum(0).cumsum(1), (1, 0, 1, 0))


def fit_band(model: IntensityRule, loader: DataLoader, *, fit_ring: bool = True,
             device: str | torch.device | None = "auto") -> BandFit:
    """Set the band (and ring) of ``model`` to the candidates with the best pooled lipid Dice on ``loader``'s frames.

    Candidates: ``low < high`` in ``k / GREY_STEPS`` and, with ``fit_ring``, ``inner < outer`` in ``m / RING_STEPS``
    (without it the model's ring stays and only the pixels inside it can be predicted). Pixel counts are pooled over
    all frames (:func:`band_counts`), as :func:`medseg_core.evaluation.dataset_confusion` pools them; ties go to the
    first candidate (lowest ``inner``, ``outer``, ``low``, ``high``). Fit on training or validation frames, never on
    the frames you report, and on frames without intensity augmentation (the OCT training loader jitters brightness
    and contrast, shuffles and drops its last incomplete batch: fit on the validation loader, or on
    ``DataLoader(train_set, batch_size)`` over training frames built with ``oct.augment=False``).

    Returns:
        The :class:`BandFit`, also written into the model's buffers.

    Raises:
        TypeError: ``model`` is not an :class:`IntensityRule` (networks are trained, not fitted).
        ValueError: the frames hold no lipid pixel (nothing to fit).
    """
    if not isinstance(model, IntensityRule):
        raise TypeError(f"fit_band fits the intensity rule ('intensity'), not {type(model).__name__}; networks are "
                        "trained, and the XCA filters are fitted by medseg_core.models.classical.fit_threshold")
    pixels, lipid = band_counts(model, loader, within_ring=not fit_ring, device=device)
    positives = float(lipid.sum())
    if positives == 0:
        raise ValueError("the frames hold no lipid pixel (or the loader is empty): nothing to fit the band on")
    pixel_sums, lipid_sums = _prefix_sums(pixels), _prefix_sums(lipid)
    steps = range(RING_STEPS) if fit_ring else [-1]  # without the ring fit, every pixel sits in radius step 0
    best = (-1.0, 0, 0, 0, 0)  # dice, low step, high step, inner step, outer step
    for inner in steps:
        for outer in range(inner + 1, RING_STEPS + 1 if fit_ring else 1):
            # Radius steps inner+1..outer, then grey steps low+1..high for every (low, high) at once.
            ring_pixels = (pixel_sums[outer + 1] - pixel_sums[inner + 1])[1:GREY_STEPS + 2]
            ring_lipid = (lipid_sums[outer + 1] - lipid_sums[inner + 1])[1:GREY_STEPS + 2]
            hits = ring_lipid[None, :] - ring_lipid[:, None]
            dice = torch.triu(2 * hits / (ring_pixels[None, :] - ring_pixels[:, None] + positives), diagonal=1)
            index = int(dice.argmax())
            if float(dice.flatten()[index]) > best[0]:
                best = (float(dice.flatten()[index]), *divmod(index, GREY_STEPS + 1), inner, outer)
    dice, low, high, inner, outer = best
    fit = BandFit(low=low / GREY_STEPS, high=high / GREY_STEPS,
                  inner=inner / RING_STEPS if fit_ring else float(model.inner),
                  outer=outer / RING_STEPS if fit_ring else float(model.outer), dice=dice)
    for name in ("low", "high", "inner", "outer"):
        getattr(model, name).fill_(getattr(fit, name))
    return fit


@register_model
def intensity(**kwargs) -> IntensityRule:
    """Lipid core by a grey band in a ring of the field of view (sigma 1 px); fit it with :func:`fit_band`."""
    return IntensityRule(**kwargs)
