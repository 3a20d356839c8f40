"""Tests for medseg_core.data.transforms: joint, seeded augmentation of frames and masks."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision import tv_tensors

from medseg_core.data.transforms import (
    AlignedResize,
    RandomIntensityShift,
    oct_train_transforms,
    xca_train_transforms,
)

SIZE = (32, 40)


def blob_frame(size: tuple[int, int] = SIZE) -> torch.Tensor:
    """A binary image of two large shapes, so that most pixels are far from an edge."""
    ys, xs = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    disk = (ys - 12) ** 2 + (xs - 14) ** 2 < 8**2
    bar = (ys > 20) & (xs > 22)
    return (disk | bar).float()


def sample(frames: torch.Tensor, mask: torch.Tensor) -> dict:
    return {"image": tv_tensors.Image(frames), "mask": tv_tensors.Mask(mask), "id": "video/00000"}


@pytest.mark.parametrize("strength", ["paper", "light"])
def test_all_frames_get_the_same_geometry(strength: str) -> None:
    transform = xca_train_transforms(SIZE, strength)
    frames = blob_frame().expand(4, *SIZE).clone()
    torch.manual_seed(0)
    for _ in range(10):
        out = transform(sample(frames, torch.zeros(1, *SIZE, dtype=torch.uint8)))["image"]
        assert out.shape == (4, *SIZE)
        for t in range(1, 4):
            assert torch.equal(out[t], out[0])


@pytest.mark.parametrize("strength", ["paper", "light"])
def test_mask_follows_the_frames(strength: str) -> None:
    transform = xca_train_transforms(SIZE, strength, crop_probability=1.0)
    frame = blob_frame()
    mask = (frame > 0.5).to(torch.uint8).unsqueeze(0)
    torch.manual_seed(1)
    changed = 0
    for _ in range(30):
        out = transform(sample(frame.expand(4, *SIZE).clone(), mask))
        warped = out["mask"]
        assert warped.dtype == torch.uint8 and set(warped.unique().tolist()) <= {0, 1}
        # Away from mask edges (3x3 neighbourhood all vessel / all background) and from the image border, the
        # thresholded frame must agree with the mask: they were warped with the same parameters. The intensity
        # shift is at most 0.2, so 0.5 still separates foreground from background.
        as_float = warped.float().unsqueeze(0)
        inside = -F.max_pool2d(-as_float, 3, 1, 1)[0, 0] > 0.5
        outside = F.max_pool2d(as_float, 3, 1, 1)[0, 0] < 0.5
        foreground = out["image"][2] > 0.5
        disagree = (inside & ~foreground) | (outside & foreground)
        assert not disagree[1:-1, 1:-1].any()
        changed += int(not torch.equal(warped, mask))
    assert changed >= 15  # the transform does move the mask


def test_seeded_reproducibility() -> None:
    transform = xca_train_transforms(SIZE)
    frames, mask = torch.rand(4, *SIZE), (torch.rand(1, *SIZE) > 0.5).to(torch.uint8)
    torch.manual_seed(7)
    first = transform(sample(frames, mask))
    torch.manual_seed(7)
    second = transform(sample(frames, mask))
    torch.manual_seed(8)
    third = transform(sample(frames, mask))
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["mask"], second["mask"])
    assert not torch.equal(first["image"], third["image"])
    assert first["id"] == "video/00000"


def test_intensity_shift_touches_images_only_and_all_frames_alike() -> None:
    shift = RandomIntensityShift(0.2)
    frames = torch.full((3, 5, 5), 0.5)
    frames[1] = 0.4
    mask = torch.ones(1, 5, 5, dtype=torch.uint8)
    torch.manual_seed(0)
    offsets = []
    for _ in range(20):
        out = shift(sample(frames, mask))
        assert torch.equal(out["mask"], mask)
        assert isinstance(out["image"], tv_tensors.Image)
        delta = out["image"] - frames
        assert torch.allclose(delta, delta.flatten()[0].expand_as(delta), atol=1e-6)
        offsets.append(delta.flatten()[0].item())
    assert all(-0.2 <= o <= 0.2 for o in offsets) and max(offsets) - min(offsets) > 0.1


def test_intensity_shift_clamps_and_rejects_uint8() -> None:
    torch.manual_seed(0)
    out = [RandomIntensityShift(0.5)(tv_tensors.Image(torch.ones(1, 2, 2))) for _ in range(20)]
    assert all(o.max() <= 1.0 for o in out) and any(o.max() < 1.0 for o in out)
    with pytest.raises(ValueError, match="float"):
        RandomIntensityShift(0.2)(tv_tensors.Image(torch.ones(1, 2, 2, dtype=torch.uint8)))
    with pytest.raises(ValueError):
        RandomIntensityShift(-0.1)


def test_output_is_resized_to_image_size() -> None:
    out = xca_train_transforms(16)(sample(torch.rand(2, *SIZE), torch.zeros(1, *SIZE, dtype=torch.uint8)))
    assert out["image"].shape == (2, 16, 16) and out["mask"].shape == (1, 16, 16)


def centroid(binary: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(binary.shape[0]), torch.arange(binary.shape[1]), indexing="ij")
    weights = binary.float()
    return torch.stack([(weights * ys).sum(), (weights * xs).sum()]) / weights.sum()


def test_aligned_resize_keeps_masks_on_the_image_grid() -> None:
    mask = (blob_frame((13, 16)) > 0.5).to(torch.uint8).unsqueeze(0)
    offsets = []
    for size in [(45, 55), (32, 40), (29, 37), (20, 25)]:  # non-integer upscaling factors
        out = AlignedResize(size, antialias=True)(sample(mask.float(), mask))
        assert out["mask"].dtype == torch.uint8 and set(out["mask"].unique().tolist()) == {0, 1}
        offsets.append(centroid(out["image"][0]) - centroid(out["mask"][0]))
    # Legacy NEAREST puts masks about 0.3 px below-right of the bilinearly resized image on average.
    assert torch.stack(offsets).mean().abs() < 0.1


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="strength"):
        xca_train_transforms(32, "heavy")
    with pytest.raises(ValueError):
        xca_train_transforms(0)
    with pytest.raises(ValueError):
        xca_train_transforms(32, crop_probability=1.5)


def test_oct_transforms_keep_class_indices_and_jitter_images_only() -> None:
    transform = oct_train_transforms(SIZE)
    mask = torch.zeros(*SIZE, dtype=torch.int64)
    mask[5:15, 5:20] = 1
    mask[20:30, 10:30] = 2
    image = torch.rand(3, *SIZE)
    torch.manual_seed(0)
    for _ in range(10):
        out = transform(sample(image, mask))
        assert out["image"].shape == (3, *SIZE) and out["mask"].shape == SIZE
        assert out["mask"].dtype == torch.int64
        assert set(out["mask"].unique().tolist()) <= {0, 1, 2}
    torch.manual_seed(5)
    first = transform(sample(image, mask))
    torch.manual_seed(5)
    second = transform(sample(image, mask))
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["mask"], second["mask"])
