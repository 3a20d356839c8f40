"""Preprocessing: the one function per task that turns stored pixels into model inputs.

The datasets (:class:`~medseg_core.data.xca.XCAWindowDataset`, :class:`~medseg_core.data.oct.OCTDataset`) and
inference (:mod:`medseg_core.inference`) both call these functions, so a frame is prepared the same way in
training and in use (no train/serve skew; ``tests/test_tasks.py`` feeds one file through both). Augmentation
is an optional joint transform in the middle, called with the one sample protocol of the kit: a dict
``{"image": tv_tensors.Image, "mask": tv_tensors.Mask}`` in, the same dict out (torchvision transforms v2).

* **XCA** (:func:`preprocess_xca`): frames resized (antialiased bilinear) to the model size, then each frame
  divided by its own maximum (SVSnet's preprocessing), then augmentation.
* **OCT** (:func:`preprocess_oct`): the RGB frame resized (antialiased bilinear, on 8-bit values), scaled to
  [0, 1], augmented, then normalised with the ImageNet mean and std (MobileNetV2's convention).
Masks are resized with nearest-neighbour interpolation and keep their labels.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SampleTransform",
    "size_pair",
    "scale_by_frame_max",
    "preprocess_xca",
    "preprocess_oct",
    "resize_oct",
    "imagenet_denormalise",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Sample = dict[str, Any]
SampleTransform = Callable[[Sample], Sample]


def size_pair(image_size: int | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """``(H, W)`` from an int (square) or a pair; None stays None. Raises ValueError for non-positive sizes."""
    if image_size is None:
        return None
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return int(height), int(width)


def scale_by_frame_max(frames: torch.Tensor) -> torch.Tensor:
    """Divide each frame ``(..., H, W)`` by its own maximum (SVSnet's preprocessing); all-zero frames stay zero.

    Returns float32 of the same shape with values in [0, 1].
    """
    frames = frames.to(torch.float32)
    peak = frames.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, frames / peak.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(frames))


def _apply(transform: SampleTransform | None, image: torch.Tensor, mask: torch.Tensor | None) -> Sample:
    sample: Sample = {"image": tv_tensors.Image(image)}
    if mask is not None:
        sample["mask"] = tv_tensors.Mask(mask)
    if transform is not None:
        sample = transform(sample)
    return {key: value.as_subclass(torch.Tensor) for key, value in sample.items()}


def preprocess_xca(
    frames: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    *,
    image_size: int | tuple[int, int] | None,
    transform: SampleTransform | None = None,
) -> Sample:
    """XCA frames ``(T, H, W)`` (any non-negative dtype) -> ``{"image": (T, h, w) float32 in [0, 1]}``.

    With ``mask`` ``(H, W)`` in {0, 1} the sample also holds ``"mask": (1, h, w) float32``. ``image_size``
    None keeps the stored size. Each frame is prepared on its own, so a video can be prepared frame by frame
    and cut into windows afterwards with the same result.
    """
    image = torch.as_tensor(np.asarray(frames) if isinstance(frames, np.ndarray) else frames).to(torch.float32)
    target = None if mask is None else torch.as_tensor(np.asarray(mask)).reshape(1, *image.shape[-2:])
    size = size_pair(image_size)
    if size is not None:
        image = TF.resize(image, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
        if target is not None:
            target = TF.resize(target, list(size), interpolation=InterpolationMode.NEAREST_EXACT)
    sample = _apply(transform, scale_by_frame_max(image), target)
    sample["image"] = sample["image"].to(torch.float32).contiguous()
    if "mask" in sample:
        sample["mask"] = sample["mask"].to(torch.float32).contiguous()
    return sample


def preprocess_oct(
    image: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor | None = None,
    *,
    image_size: int | tuple[int, int] | None,
    transform: SampleTransform | None = None,
) -> Sample:
    """An OCT frame, ``(H, W, 3)`` array or ``(3, H, W)`` tensor (uint8, or float in [0, 1]) -> model input.

    Returns ``{"image": (3, h, w) float32 ImageNet-normalised}`` and, with ``mask`` ``(H, W)`` class indices,
    ``"mask": (h, w) int64``. ``image_size`` None keeps the stored size.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) if isinstance(image, np.ndarray) else image
    target = None if mask is None else torch.as_tensor(np.asarray(mask))
    tensor, target = resize_oct(tensor, target, image_size)
    tensor = TF.to_dtype(tensor, torch.float32, scale=True)
    sample = _apply(transform, tensor, None if target is None else target.long())
    sample["image"] = TF.normalize(sample["image"].to(torch.float32), list(IMAGENET_MEAN), list(IMAGENET_STD))
    if "mask" in sample:
        sample["mask"] = sample["mask"].long()
    return sample


def resize_oct(image: torch.Tensor, mask: torch.Tensor | None, image_size: int | tuple[int, int] | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resize an OCT image ``(3, H, W)`` (antialiased bilinear, in its own dtype) and its mask ``(H, W)``
    (nearest); ``image_size`` None returns them unchanged. Also how ``medseg prepare`` writes its derivative."""
    size = size_pair(image_size)
    if size is None:
        return image, mask
    image = TF.resize(image, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
    if mask is not None:
        mask = TF.resize(mask[None], list(size), interpolation=InterpolationMode.NEAREST_EXACT)[0]
    return image, mask


def imagenet_denormalise(image: torch.Tensor) -> torch.Tensor:
    """Inverse of the OCT normalisation: ``(3, H, W)`` ImageNet-normalised -> RGB in about [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return image * std + mean
