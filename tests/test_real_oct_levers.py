"""The levers of the real-OCT study (benchmarks/real_oct_levers.py) as library options: flip test-time
augmentation, the false-alarm rule fitted on validation frames, and cross-entropy class weights for OCT."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from medseg_core.config import get_profile
from medseg_core.errors import ConfigError
from medseg_core.evaluation import FalseAlarmRule, fit_false_alarm_rule, foreground_probabilities, score_frames
from medseg_core.models import flip_averaged_probabilities
from medseg_core.tasks import get_task


class _LeftHalf(nn.Module):
    """Two-class logits that call the left half of every frame foreground: not flip-invariant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        foreground = torch.full((x.shape[0], 1, *x.shape[-2:]), -10.0)
        foreground[..., : x.shape[-1] // 2] = 10.0
        return torch.cat([torch.zeros_like(foreground), foreground], dim=1)


def test_flip_tta_averages_the_four_flips_back_in_place() -> None:
    probabilities = flip_averaged_probabilities(_LeftHalf(), torch.zeros(2, 3, 4, 6))
    assert probabilities.shape == (2, 2, 4, 6)
    # the horizontal flips see the right half as foreground: two of the four views say left, two say right
    assert torch.allclose(probabilities[:, 1], torch.full((2, 4, 6), 0.5), atol=1e-4)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(2, 4, 6))
    vertical = flip_averaged_probabilities(_LeftHalf(), torch.zeros(2, 3, 4, 6), flips=((), (-2,)))
    assert torch.equal(vertical, flip_averaged_probabilities(_LeftHalf(), torch.zeros(2, 3, 4, 6), flips=((),)))


def test_foreground_probabilities_with_and_without_tta() -> None:
    image = torch.zeros(3, 4, 6)
    loader = [{"image": image[None].repeat(2, 1, 1, 1), "mask": torch.zeros(2, 4, 6, dtype=torch.long),
               "id": ["a", "b"]}]
    plain = foreground_probabilities(_LeftHalf(), loader)
    flipped = foreground_probabilities(_LeftHalf(), loader, tta=True)
    assert plain["id"] == ["a", "b"] and plain["probability"].shape == (2, 4, 6)
    assert plain["probability"][:, :, :3].min() > 0.99 and plain["probability"][:, :, 3:].max() < 0.01
    assert np.allclose(flipped["probability"], 0.5, atol=1e-4)


def _frames() -> tuple[np.ndarray, np.ndarray]:
    """Four plaque frames (a confident 8x8 block) and four plaque-free frames with a small, less confident blob."""
    probabilities = np.zeros((8, 32, 32), dtype=np.float32)
    truths = np.zeros((8, 32, 32), dtype=bool)
    for i in range(4):
        truths[i, 4:12, 4:12] = True
        probabilities[i, 4:12, 4:12] = 0.9
        probabilities[4 + i, 20:22, 20:23 + i] = 0.6  # 2 to 8 pixels of false alarm
    return probabilities, truths


def test_plain_rule_flags_every_blob_and_the_fitted_rule_removes_them() -> None:
    probabilities, truths = _frames()
    plain = score_frames(probabilities, truths)
    assert (plain["predicted_pixels"][4:] > 0).all() and plain["dice"][4:].eq(0).all()
    rule = fit_false_alarm_rule(probabilities, truths)
    fitted = score_frames(probabilities, truths, rule)
    assert (fitted["predicted_pixels"][4:] == 0).all()  # no false alarm left
    assert np.allclose(fitted["dice"][:4], 1.0)  # plaque kept whole
    assert rule.threshold < 0.9  # the lowest cut that does it: plaque pixels stay above it


def test_min_area_rule_empties_only_small_frames() -> None:
    probabilities = np.zeros((2, 8, 8), dtype=np.float32)
    probabilities[0, :2, :2] = 0.8  # 4 pixels
    probabilities[1, :4, :4] = 0.8  # 16 pixels
    masks = FalseAlarmRule(threshold=0.5, min_area=5).apply(probabilities)
    assert masks[0].sum() == 0 and masks[1].sum() == 16
    assert FalseAlarmRule().apply(probabilities[0]).sum() == 4  # one frame (H, W) works too


def test_fit_false_alarm_rule_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        fit_false_alarm_rule(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool))


def test_oct_class_weights_reach_the_loss_and_are_checked() -> None:
    task = get_task("oct")
    assert task.make_loss(get_profile("smoke")).class_weights is None
    loss = task.make_loss(get_profile("smoke", {"oct.class_weights": [1.0, 3.0]}))
    assert torch.equal(loss.class_weights, torch.tensor([1.0, 3.0]))
    logits, target = torch.zeros(1, 2, 2, 2), torch.tensor([[[0, 1], [1, 1]]])
    logits[:, 1, 0, 0] = 2.0  # wrong on the one background pixel only: a heavier lipid weight lowers the CE mean
    assert loss(logits, target) < task.make_loss(get_profile("smoke"))(logits, target)
    with pytest.raises(ConfigError, match="one positive weight for background and each of lipid_core"):
        task.make_loss(get_profile("smoke", {"oct.class_weights": [1.0]}))


def test_polar_transform_inverts_scan_convert_inside_the_field_of_view() -> None:
    from medseg_core.data.synthetic_oct import polar_transform, scan_convert

    polar = np.zeros((64, 32), dtype=np.float32)
    polar[8:16, 10:20] = 1.0  # a sector: angles 45-90 degrees clockwise from 3 o'clock, mid depth
    cartesian = scan_convert(polar, 64, order=0)
    centre = 31.5
    row, column = np.argwhere(cartesian > 0).mean(axis=0)
    assert row > centre and column > centre  # clockwise from 3 o'clock with rows down: the lower right quadrant
    back = polar_transform(cartesian, 64, 32, order=0)
    assert (back[8:16, 11:19] == 1).all() and back[24:, :].sum() == 0


def test_theta_roll_moves_image_and_mask_rows_together() -> None:
    from torchvision import tv_tensors

    from medseg_core.data.transforms import RandomThetaRoll

    image = torch.arange(36.0).reshape(1, 36, 1).expand(3, 36, 4).clone()
    mask = torch.zeros(36, 4, dtype=torch.long)
    mask[5] = 1
    torch.manual_seed(0)
    out = RandomThetaRoll(180.0)({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask)})
    row = int(out["mask"].argmax(dim=0)[0])
    assert out["image"][0, row, 0] == 5.0  # the labelled row kept its pixels
    assert sorted(out["image"][0, :, 0].tolist()) == list(range(36))  # a roll: nothing lost, nothing interpolated
    with pytest.raises(ValueError, match=r"\[0, 180\]"):
        RandomThetaRoll(200.0)


def test_polar_oct_dataset_serves_polar_frames(tmp_path) -> None:
    from medseg_core.data.oct import OCTDataset, find_oct_pairs, write_oct_mask
    from PIL import Image

    (tmp_path / "img").mkdir()
    channels = np.zeros((48, 48, 4), dtype=np.uint8)
    channels[30:40, 20:28, 2] = 255  # lipid below the centre: angles near 90 degrees (6 o'clock)
    write_oct_mask(tmp_path / "mask" / "001_1_001.tiff", channels)
    Image.fromarray(np.full((48, 48, 3), 128, dtype=np.uint8)).save(tmp_path / "img" / "001_1_001.png")
    pairs = find_oct_pairs(tmp_path)
    polar = OCTDataset(pairs, image_size=32, polar=True, cache=False)[0]
    assert polar["image"].shape == (3, 32, 32) and polar["mask"].shape == (32, 32)
    lipid_rows = np.flatnonzero(polar["mask"].numpy().any(axis=1))
    assert lipid_rows.min() >= 4 and lipid_rows.max() <= 12  # 90 +- 45 degrees of 32 rows over 360 degrees
    with pytest.raises(ValueError, match="needs an image_size"):
        OCTDataset(pairs, image_size=None, polar=True)


def test_a_recipe_can_choose_the_oct_model() -> None:
    task = get_task("oct")
    assert task.model_for(get_profile("smoke")) == "deeplabv3plus"
    chosen = get_profile("smoke", {"oct.model": "unet2d"})
    assert task.model_for(chosen) == "unet2d" and task.model_for(chosen, "deeplabv3plus") == "deeplabv3plus"
    assert task.run_name(chosen).startswith("oct_unet2d_")
    assert get_task("xca").model_for(chosen) == "svsnet"  # the OCT section's choice only
