"""Joint image/mask augmentation on :mod:`torchvision.transforms.v2`.

This module owns the training augmentations of the kit: one random draw of parameters per sample, applied
identically to every image channel and to the mask. Samples are dicts of tv_tensors, the same dicts the
datasets return::

    {"image": tv_tensors.Image (C, H, W), "mask": tv_tensors.Mask (1, H, W) or (H, W), "id": str}

For X-ray angiography windows the T frames are stacked as the channels of one image ``(T, H, W)``, so flips,
crops and affine warps move all frames and the mask together (:class:`medseg_core.data.xca.XCAWindowDataset`
does this stacking). Masks are warped with nearest-neighbour interpolation (torchvision does this for
:class:`~torchvision.tv_tensors.Mask`), so they keep their class values; resizes use ``NEAREST_EXACT`` for masks
(:class:`AlignedResize`, :class:`AlignedRandomResizedCrop`) so they stay on the image's pixel grid. Areas moved
in from outside the image are filled with 0 (black image, background mask). Needs torchvision >= 0.21 (the
public ``make_params``/``transform`` API of custom v2 transforms).

- :func:`xca_train_transforms`: SVSnet's official augmentation (Hao et al., Neural Networks 2020,
  arXiv 2102.05229): intensity shift +-0.2, horizontal and vertical flips, a random crop of 400/512 of the side
  resized back, rotation +-10 deg, zoom 0.8-1.2, translation +-20 %, shear +-2 deg.
- :func:`xca_display_transforms`: what real angiograms' display varies (``xca.display_augment``, for synthetic
  training aimed at real frames): gamma, contrast, detector blur and noise, one draw per window.
- :func:`oct_train_transforms`: flips, a small affine warp and brightness/contrast jitter for OCT frames.
- :func:`oct_polar_train_transforms`: the same for OCT frames in the polar view (rows = angles): a theta roll
  (:class:`RandomThetaRoll`, a rotation about the catheter), a mirror of the angles and the jitter.

Randomness comes from torch's generator, as everywhere in torchvision: seed it with
:func:`medseg_core.runtime.seed_everything` (or ``torch.manual_seed``); DataLoader worker processes are seeded by
the DataLoader from its own ``generator``. Normalisation (per-frame max for XCA, ImageNet mean/std for OCT) is
left to the datasets.
"""
from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .preprocess import size_pair

__all__ = [
    "RandomIntensityShift",
    "RandomGamma",
    "RandomContrast",
    "AlignedRandomResizedCrop",
    "AlignedResize",
    "xca_train_transforms",
    "xca_display_transforms",
    "oct_train_transforms",
    "RandomThetaRoll",
    "oct_polar_train_transforms",
    "XCA_STRENGTHS",
]

XCA_STRENGTHS = ("paper", "light")

# SVSnet's official crop: a 400 x 400 window of a 512 x 512 frame, resized back to 512 x 512.
_SVSNET_CROP_FRACTION = 400 / 512
# Images are warped bilinearly; torchvision always warps Mask tv_tensors with nearest neighbour.
_BILINEAR = v2.InterpolationMode.BILINEAR
# torchvision resizes Mask tv_tensors with legacy NEAREST, which samples half a pixel off the bilinear image grid;
# NEAREST_EXACT samples the same centres as the image (see AlignedResize).
_MASK_RESIZE = v2.InterpolationMode.NEAREST_EXACT


class RandomIntensityShift(v2.Transform):
    """Add one random offset, uniform in ``[-max_shift, max_shift]``, to every image channel; masks are untouched.

    All frames of a window (the channels of one ``(T, H, W)`` image) get the same offset, as in SVSnet's
    official augmentation. Images must be floating point in [0, 1].

    Args:
        max_shift: largest absolute offset (SVSnet: 0.2).
        clamp: clip the result to [0, 1] so the dataset's value range holds after the shift.

    Example:
        >>> shift = RandomIntensityShift(0.2)
        >>> out = shift({"image": tv_tensors.Image(torch.rand(4, 8, 8)), "mask": tv_tensors.Mask(torch.zeros(1, 8, 8))})
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Video)

    def __init__(self, max_shift: float = 0.2, clamp: bool = True) -> None:
        super().__init__()
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.max_shift = float(max_shift)
        self.clamp = clamp

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the offset shared by all images of the sample."""
        shift = torch.empty(()).uniform_(-self.max_shift, self.max_shift).item()
        return {"shift": shift}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Shift one image or video tensor by ``params["shift"]``."""
        if not inpt.is_floating_point():
            raise ValueError(
                f"RandomIntensityShift expects float images in [0, 1], got dtype {inpt.dtype}; "
                "convert first with v2.ToDtype(torch.float32, scale=True)."
            )
        shifted = inpt.as_subclass(torch.Tensor) + params["shift"]
        if self.clamp:
            shifted = shifted.clamp(0.0, 1.0)
        return tv_tensors.wrap(shifted, like=inpt)


def _float_image(inpt: Any, name: str) -> torch.Tensor:
    if not inpt.is_floating_point():
        raise ValueError(f"{name} expects float images in [0, 1], got dtype {inpt.dtype}; "
                         "convert first with v2.ToDtype(torch.float32, scale=True).")
    return inpt.as_subclass(torch.Tensor)


def _check_range(name: str, values: tuple[float, float], positive: bool) -> tuple[float, float]:
    low, high = (float(value) for value in values)
    if not (0.0 < low if positive else 0.0 <= low) or low > high:
        raise ValueError(f"{name} must be (low, high) with {'0 <' if positive else '0 <='} low <= high, got {values}")
    return low, high


class RandomGamma(v2.Transform):
    """Raise every image channel to one random power, log-uniform in ``gamma`` (a display's gamma curve); masks are
    untouched. All frames of a window get the same gamma. Images must be floating point in [0, 1].

    Example:
        >>> out = RandomGamma((0.6, 1.6))({"image": tv_tensors.Image(torch.rand(4, 8, 8))})
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Video)

    def __init__(self, gamma: tuple[float, float] = (0.6, 1.6)) -> None:
        super().__init__()
        self.gamma = _check_range("gamma", gamma, positive=True)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the gamma shared by all images of the sample."""
        low, high = torch.log(torch.tensor(self.gamma))
        return {"gamma": torch.exp(torch.empty(()).uniform_(float(low), float(high))).item()}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """``image ** gamma``."""
        return tv_tensors.wrap(_float_image(inpt, "RandomGamma").clamp(0.0, 1.0) ** params["gamma"], like=inpt)


class RandomContrast(v2.Transform):
    """Scale every frame's deviations from its own mean by one random factor, uniform in ``contrast`` (a display's
    window width), then clip to [0, 1]; masks are untouched. All frames of a window get the same factor.

    Example:
        >>> out = RandomContrast((0.6, 1.4))({"image": tv_tensors.Image(torch.rand(4, 8, 8))})
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Video)

    def __init__(self, contrast: tuple[float, float] = (0.6, 1.4)) -> None:
        super().__init__()
        self.contrast = _check_range("contrast", contrast, positive=True)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the factor shared by all images of the sample."""
        return {"factor": torch.empty(()).uniform_(*self.contrast).item()}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """``mean + factor * (image - mean)`` per frame ``(H, W)``, clipped to [0, 1] (torchvision's
        ``adjust_contrast`` takes the mean over ``(C, H, W)`` with C in {1, 3}: a window ``(T, H, W)`` would be read as one image of T channels)."""
        image = _float_image(inpt, "RandomContrast")
        mean = image.mean(dim=(-2, -1), keepdim=True)
        return tv_tensors.wrap((mean + params["factor"] * (image - mean)).clamp(0.0, 1.0), like=inpt)


class AlignedRandomResizedCrop(v2.RandomResizedCrop):
    """:class:`~torchvision.transforms.v2.RandomResizedCrop` that resizes masks with ``NEAREST_EXACT``.

    torchvision resizes masks with legacy ``NEAREST``, which picks source pixels half a pixel away from the
    centres the bilinear image resize uses, so an upscaled mask drifts by up to half a pixel to the bottom right
    of its image (a mean shift of about 0.2 px with SVSnet's 400/512 crop), a bias for vessels 4-7 px wide.
    Images are resized as in the parent class. Arguments are those of the parent class.
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Crop and resize one input; masks with ``NEAREST_EXACT``."""
        if isinstance(inpt, tv_tensors.Mask):
            cropped = TF.crop(inpt, params["top"], params["left"], params["height"], params["width"])
            return TF.resize(cropped, list(self.size), interpolation=_MASK_RESIZE)
        return super().transform(inpt, params)


class AlignedResize(v2.Resize):
    """:class:`~torchvision.transforms.v2.Resize` that resizes masks with ``NEAREST_EXACT`` (see
    :class:`AlignedRandomResizedCrop`). Arguments are those of the parent class."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Resize one input; masks with ``NEAREST_EXACT``."""
        if isinstance(inpt, tv_tensors.Mask):
            return TF.resize(inpt, self.size, interpolation=_MASK_RESIZE, max_size=self.max_size)
        return super().transform(inpt, params)


def xca_train_transforms(
    image_size: int | tuple[int, int],
    strength: str = "paper",
    crop_probability: float = 0.5,
) -> v2.Compose:
    """Training augmentation for XCA windows: frames as channels of one image, the mask warped alike.

    ``"paper"`` is SVSnet's official recipe (intensity shift +-0.2; horizontal and vertical flips; with
    probability ``crop_probability`` a crop of 400/512 of each side at a random place, resized back;
    rotation +-10 deg, zoom 0.8-1.2, translation +-20 % and shear +-2 deg in one affine warp). ``"light"``
    keeps flips and a milder warp (shift +-0.1, rotation +-5 deg, zoom 0.9-1.1, translation +-5 %, no crop or
    shear), for short CPU runs where the paper's strong warps slow convergence.

    The pipeline ends with a resize to ``image_size`` (a no-op when the input already has that size), so every
    output can be batched. The probability of the crop is this kit's choice; the paper does not give one.

    Args:
        image_size: output size, an int (square) or ``(H, W)``.
        strength: ``"paper"`` or ``"light"``.
        crop_probability: probability of the random crop in ``"paper"`` strength.

    Returns:
        A v2 transform taking ``{"image": tv_tensors.Image (T, H, W) float in [0, 1],
        "mask": tv_tensors.Mask (1, H, W)}`` (other keys pass through) and returning the same structure.
    """
    size = size_pair(image_size)
    if strength not in XCA_STRENGTHS:
        raise ValueError(f"unknown strength {strength!r}; valid strengths: {', '.join(XCA_STRENGTHS)}")
    if not 0.0 <= crop_probability <= 1.0:
        raise ValueError(f"crop_probability must be in [0, 1], got {crop_probability}")
    if strength == "light":
        return v2.Compose(
            [
                RandomIntensityShift(0.1),
                v2.RandomHorizontalFlip(),
                v2.RandomVerticalFlip(),
                v2.RandomAffine(degrees=5, translate=(0.05, 0.05), scale=(0.9, 1.1), interpolation=_BILINEAR),
                AlignedResize(size, antialias=True),
            ]
        )
    # A crop covering the same fraction of both sides: area fraction f**2 at the image's own aspect ratio.
    crop_area = _SVSNET_CROP_FRACTION**2
    aspect = size[1] / size[0]
    return v2.Compose(
        [
            RandomIntensityShift(0.2),
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomApply(
                [AlignedRandomResizedCrop(size, scale=(crop_area, crop_area), ratio=(aspect, aspect), antialias=True)],
                p=crop_probability,
            ),
            v2.RandomAffine(degrees=10, translate=(0.2, 0.2), scale=(0.8, 1.2), shear=2, interpolation=_BILINEAR),
            AlignedResize(size, antialias=True),
        ]
    )


def xca_display_transforms(
    gamma: tuple[float, float] = (0.6, 1.6),
    contrast: tuple[float, float] = (0.6, 1.4),
    blur_sigma: tuple[float, float] = (0.3, 1.2),
    blur_probability: float = 0.3,
    noise_sigma: float = 0.03,
    noise_probability: float = 0.5,
) -> v2.Compose:
    """What the display of real angiograms varies, as augmentation of XCA windows (``xca.display_augment``).

    A gamma log-uniform in ``gamma`` and a contrast factor uniform in ``contrast`` (one of each per window, as one
    run has one display setting), then with ``blur_probability`` a Gaussian blur (sd uniform in ``blur_sigma``
    pixels, the detector's and the resampling's blur) and with ``noise_probability`` Gaussian noise of sd
    ``noise_sigma`` (independent per frame and pixel, clipped to [0, 1]). Masks are untouched. Apply to frames
    in [0, 1], before the geometric warps.

    Returns:
        A v2 transform taking ``{"image": tv_tensors.Image (T, H, W) float in [0, 1], "mask": ...}``.
    """
    for name, probability in (("blur_probability", blur_probability), ("noise_probability", noise_probability)):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {probability}")
    if noise_sigma < 0:
        raise ValueError(f"noise_sigma must be >= 0, got {noise_sigma}")
    return v2.Compose(
        [
            RandomGamma(gamma),
            RandomContrast(contrast),
            v2.RandomApply([v2.GaussianBlur(5, _check_range("blur_sigma", blur_sigma, positive=True))],
                           p=blur_probability),
            v2.RandomApply([v2.GaussianNoise(0.0, noise_sigma, clip=True)], p=noise_probability),
        ]
    )


def oct_train_transforms(image_size: int | tuple[int, int]) -> v2.Compose:
    """Training augmentation for OCT frames: flips, a small affine warp, brightness/contrast jitter.

    The jitter changes images only; masks (class indices) are warped with nearest-neighbour interpolation and
    keep their values. Apply before ImageNet normalisation.

    Args:
        image_size: output size, an int (square) or ``(H, W)``; the pipeline ends with a resize to it (a no-op
            when the input already has that size).

    Returns:
        A v2 transform taking ``{"image": tv_tensors.Image (3, H, W) uint8 or float in [0, 1],
        "mask": tv_tensors.Mask (H, W) int64}`` (other keys pass through) and returning the same structure.
    """
    size = size_pair(image_size)
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomAffine(degrees=10, translate=(0.05, 0.05), scale=(0.9, 1.1), interpolation=_BILINEAR),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
            AlignedResize(size, antialias=True),
        ]
    )


class RandomThetaRoll(v2.Transform):
    """Roll polar OCT frames (rows = angles over 360 degrees) by a random number of rows, image and mask alike: a
    rotation about the catheter by up to ``+-max_degrees``, exact (no interpolation) in the polar view.

    Args:
        max_degrees: largest rotation; 180 draws any angle.
    """

    _transformed_types = (tv_tensors.Image, tv_tensors.Mask)

    def __init__(self, max_degrees: float = 180.0) -> None:
        super().__init__()
        if not 0.0 <= max_degrees <= 180.0:
            raise ValueError(f"max_degrees must be in [0, 180], got {max_degrees}")
        self.max_degrees = float(max_degrees)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        """Draw the rotation, in rows of the frames' angle axis (shared by image and mask)."""
        rows = v2.query_size(flat_inputs)[0]
        degrees = torch.empty(()).uniform_(-self.max_degrees, self.max_degrees).item()
        return {"shift": int(round(degrees / 360.0 * rows))}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        """Roll one image or mask along its angle axis (``-2``)."""
        return tv_tensors.wrap(inpt.as_subclass(torch.Tensor).roll(params["shift"], dims=-2), like=inpt)


def oct_polar_train_transforms(max_degrees: float = 180.0) -> v2.Compose:
    """Training augmentation for OCT frames in the polar view: a theta roll of up to ``+-max_degrees``
    (:class:`RandomThetaRoll`; none at 0), a mirror of the angle axis (the frame seen from the other side) and the
    brightness/contrast jitter of :func:`oct_train_transforms`. Depth is never flipped or warped: the catheter stays
    at column 0. Takes and returns the samples of :func:`oct_train_transforms`."""
    return v2.Compose(
        ([RandomThetaRoll(max_degrees)] if max_degrees > 0 else [])
        + [v2.RandomVerticalFlip(), v2.ColorJitter(brightness=0.2, contrast=0.2)]
    )
