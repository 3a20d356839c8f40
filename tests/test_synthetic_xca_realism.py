"""Realism options of the synthetic XCA generator, the display augmentation and the intensity-robust input (issue 24):
each option changes what it should and nothing else, the default data are unchanged bit for bit, the recipe is
valid."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from scipy import ndimage
from torchvision import tv_tensors

from medseg_core.config import REALISM_RANGES, RECIPES, XCAConfig, get_profile, list_profiles
from medseg_core.data import synthetic_xca as sx
from medseg_core.data.cache import read_stamp
from medseg_core.data.transforms import RandomContrast, RandomGamma, xca_display_transforms
from medseg_core.data.xca import _train_transform
from medseg_core.errors import ConfigError
from medseg_core.models import create_model
from medseg_core.models.blocks import LocalContrastNorm
from medseg_core.tasks import get_task

SIZE, FRAMES, SEED = 96, 4, 5


def _static(**options: float) -> sx.XCASequence:
    """A run without motion (so rest-pose renders are the frames' geometry), with the given realism options."""
    return sx.simulate_sequence(SEED, SIZE, FRAMES, motion_scale=0.0, realism=sx.Realism(**options))


@pytest.fixture(scope="module")
def plain() -> sx.XCASequence:
    return _static()


def test_default_output_is_unchanged_bit_for_bit() -> None:
    # SHA-256 of frames and masks of this run, computed with the generator before the realism options existed
    # (GENERATOR_VERSION 2, numpy 2.4 / scipy 1.17): the committed notebook results depend on these pixels.
    sequence = sx.simulate_sequence(7, 64, 6)
    digest = hashlib.sha256(sequence.frames.tobytes() + sequence.masks.tobytes()).hexdigest()
    assert digest == "822302e67543d5fece11bbb0281b83ddeaf4ed77c1b03a20949edacf826c4d82"
    again = sx.simulate_sequence(7, 64, 6, realism=sx.Realism())
    np.testing.assert_array_equal(again.frames, sequence.frames)
    assert sx.generator_settings(XCAConfig()).keys() == sx.generator_settings(XCAConfig(seed=3)).keys()
    assert "realism" not in sx.generator_settings(XCAConfig())


def test_realism_fields_are_the_configs_and_are_checked_like_profile_fields() -> None:
    assert [field.name for field in dataclasses.fields(sx.Realism)] == list(REALISM_RANGES)
    assert all(getattr(XCAConfig(), name) == 0.0 for name in REALISM_RANGES)
    config = XCAConfig(guide_wire=0.5, detector_blur=2.0)
    assert sx.Realism.from_config(config).settings() == {"guide_wire": 0.5, "detector_blur": 2.0}
    assert sx.dataset_digest(config) != sx.dataset_digest(XCAConfig())
    for key, value in (("xca.guide_wire", 1.5), ("xca.foreshortening", 0.9), ("xca.lung_texture", -0.1),
                       ("xca.input_norm", "global"), ("xca.display_augment", 1)):
        with pytest.raises(ConfigError, match=key):
            get_profile("smoke", {key: value})
    with pytest.raises(ConfigError, match="guide_wire"):
        sx.Realism(guide_wire=2.0)


@pytest.mark.parametrize("profile", list_profiles())
def test_recipe_xca_for_real_is_valid_and_turns_realism_on(profile: str) -> None:
    tuned = get_profile(profile, recipe="xca-for-real")
    assert tuned.name == f"{profile}_xca-for-real"
    for key, value in RECIPES["xca-for-real"].items():
        section, leaf = key.split(".")
        assert getattr(getattr(tuned, section), leaf) == value
    assert sx.Realism.from_config(tuned.xca).settings()  # some generator option is on: its own data folder
    assert get_task("xca").data_dir(tuned) != get_task("xca").data_dir(get_profile(profile))


def test_guide_wire_is_dark_thin_unlabelled_and_runs_past_the_mask(plain: sx.XCASequence) -> None:
    wired = _static(guide_wire=1.0)
    assert wired.guide_wire is not None and plain.guide_wire is None
    np.testing.assert_array_equal(wired.masks, plain.masks)  # never labelled
    wire = sx.render_guide_wire(wired.guide_wire, SIZE) > 0.02
    outside = wire & (wired.catheter_thickness == 0) & ~np.any(wired.masks.astype(bool), axis=0)
    assert outside.sum() >= 5  # the tip runs past where the labelled vessel ends
    ratio = wired.clean_frames[:, outside] / plain.clean_frames[:, outside]
    assert ratio.max() < 1.0 and np.median(ratio) < 0.97  # darker wherever it is, vessel or not
    assert wired.guide_wire.radius * 512 / SIZE < 0.9  # thinner than any labelled vessel (3 px on 512)
    untouched = ~ndimage.binary_dilation(sx.render_guide_wire(wired.guide_wire, SIZE) > 0, iterations=2)
    np.testing.assert_allclose(wired.clean_frames[:, untouched], plain.clean_frames[:, untouched])


@pytest.mark.parametrize("option", ["sternal_wires", "spine", "lung_texture"])
def test_static_anatomy_and_hardware_darken_the_background_but_never_the_mask(
        plain: sx.XCASequence, option: str) -> None:
    value = 0.08 if option == "lung_texture" else 1.0
    changed = _static(**{option: value})
    np.testing.assert_array_equal(changed.masks, plain.masks)
    np.testing.assert_array_equal(changed.tree.points, plain.tree.points)  # the scene's own draws are untouched
    extra = changed.background - plain.background
    assert extra.min() >= -1e-12 and extra.max() > 0.05  # only adds attenuation
    darker = extra > 0.05
    assert (changed.clean_frames[:, darker] < plain.clean_frames[:, darker]).mean() > 0.95


def test_sternal_wires_are_nearly_opaque_and_compact() -> None:
    rng = np.random.default_rng(0)
    hardware = sx.render_chest_hardware(rng, 256)
    assert hardware.max() > 1.0  # steel: optical depth above 1 across a wire
    assert 0.001 < (hardware > 0.1).mean() < 0.05


def test_foreshortening_squashes_the_tree_along_one_direction_and_changes_the_masks(plain: sx.XCASequence) -> None:
    tree = plain.tree
    squashed = sx.foreshorten(tree, 0.6, 0.0)  # angle 0: along the columns
    relative, moved = tree.points - tree.ostium, squashed.points - tree.ostium
    np.testing.assert_allclose(moved[:, 1], 0.6 * relative[:, 1])
    np.testing.assert_allclose(moved[:, 0], relative[:, 0])
    np.testing.assert_array_equal(squashed.radii, tree.radii)
    np.testing.assert_array_equal(squashed.path_length, tree.path_length)
    with pytest.raises(ValueError, match="factor"):
        sx.foreshorten(tree, 0.0, 0.0)
    changed = _static(foreshortening=0.8)
    assert not np.array_equal(changed.masks, plain.masks)


def test_poisson_gaussian_noise_has_the_set_variance() -> None:
    expected = np.full((400, 400), 300.0)
    plain = sx.xray_counts(expected, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(plain, np.random.default_rng(1).poisson(expected))  # the default: Poisson alone
    for sigma in (5.0, 20.0):
        counts = sx.xray_counts(expected, sigma, np.random.default_rng(1), np.random.default_rng(2))
        assert counts.mean() == pytest.approx(300.0, abs=0.5)
        assert counts.var() == pytest.approx(300.0 + sigma**2, rel=0.03)  # quantum + electronic
    with pytest.raises(ValueError, match="electronic_rng"):
        sx.xray_counts(expected, 5.0, np.random.default_rng(1))


def test_electronic_noise_and_blur_change_frames_not_masks_nor_clean_geometry(plain: sx.XCASequence) -> None:
    noisy = _static(electronic_noise=30.0)
    np.testing.assert_array_equal(noisy.masks, plain.masks)
    np.testing.assert_array_equal(noisy.clean_frames, plain.clean_frames)
    residual = lambda s: s.frames.astype(float) - 255 * s.clean_frames  # noqa: E731
    assert residual(noisy).var() > residual(plain).var() * 1.2
    blurred = _static(detector_blur=8.0)
    assert blurred.detector_blur > 0
    np.testing.assert_array_equal(blurred.masks, plain.masks)
    detail = lambda frames: float(np.abs(np.diff(frames, axis=-1)).mean())  # noqa: E731
    assert detail(blurred.clean_frames) < detail(plain.clean_frames)


def test_realistic_data_set_is_written_and_named_by_its_options(tmp_path) -> None:
    settings = dict(image_size=64, num_train_videos=1, num_val_videos=0, num_test_videos=0, frames_per_video=5,
                    label_every=5, seed=0)
    plain = sx.write_xca_dataset(tmp_path / "plain", **settings)
    real = sx.write_xca_dataset(tmp_path / "real", **settings, realism={"guide_wire": 1.0, "spine": 1.0})
    assert plain["vessel_fraction"].equals(real["vessel_fraction"])  # same masks
    assert "realism" not in read_stamp(tmp_path / "plain")["settings"]
    assert read_stamp(tmp_path / "real")["settings"]["realism"] == {"guide_wire": 1.0, "spine": 1.0}


def test_gamma_and_contrast_transforms_change_images_only() -> None:
    image = tv_tensors.Image(torch.rand(4, 16, 16))
    mask = tv_tensors.Mask((torch.rand(1, 16, 16) > 0.5).float())
    squared = RandomGamma((2.0, 2.0))({"image": image, "mask": mask})
    torch.testing.assert_close(squared["image"].as_subclass(torch.Tensor), image.as_subclass(torch.Tensor) ** 2)
    assert torch.equal(squared["mask"], mask)
    flat = RandomContrast((0.5, 0.5))({"image": image})["image"]
    mean = image.mean(dim=(-2, -1), keepdim=True)
    torch.testing.assert_close(flat.as_subclass(torch.Tensor), (mean + 0.5 * (image - mean)).as_subclass(torch.Tensor))
    torch.manual_seed(0)
    out = xca_display_transforms()({"image": image, "mask": mask})
    assert torch.equal(out["mask"], mask) and not torch.equal(out["image"], image)
    assert out["image"].min() >= 0 and out["image"].max() <= 1
    with pytest.raises(ValueError, match="gamma"):
        RandomGamma((0.0, 1.0))
    steps = _train_transform(XCAConfig(display_augment=True, augment=False), "paper").transforms
    assert any(isinstance(step, RandomGamma) for step in steps[0].transforms)


def test_local_contrast_input_ignores_gain_and_offset_and_adds_no_parameters() -> None:
    torch.manual_seed(0)
    frames = torch.rand(2, 1, 4, 64, 64)
    norm = LocalContrastNorm(floor=1e-4)
    torch.testing.assert_close(norm(3.0 * frames + 0.5), norm(frames), atol=1e-3, rtol=1e-3)
    assert norm(frames).shape == frames.shape
    local, plain = create_model("svsnet", input_norm="local"), create_model("svsnet")
    assert local.state_dict().keys() == plain.state_dict().keys()
    assert local(frames).shape == (2, 1, 64, 64)
    with pytest.raises(ValueError, match="input_norm"):
        create_model("svsnet", input_norm="global")
    profile = get_profile("smoke", {"xca.input_norm": "local"})
    assert get_task("xca").model_kwargs(profile, "svsnet")["input_norm"] == "local"
    assert "input_norm" not in get_task("xca").model_kwargs(get_profile("smoke"), "svsnet")
    with pytest.raises(ConfigError, match="input_norm"):
        get_task("xca").model_kwargs(profile, "unet2d")
