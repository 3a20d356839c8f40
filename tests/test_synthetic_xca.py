"""Synthetic XCA generator: determinism, physics of the rendering, mask rule, motion, noise, layout and cache."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medseg_core.config import XCAConfig
from medseg_core.data import synthetic_xca as sx
from medseg_core.data.cache import read_stamp
from medseg_core.data.io import DataError

LABEL_EVERY = 5


@pytest.fixture(scope="module")
def sequences_128() -> list[sx.XCASequence]:
    return [sx.simulate_sequence(seed, image_size=128, num_frames=20) for seed in range(5)]


@pytest.fixture(scope="module")
def sequence_256() -> sx.XCASequence:
    return sx.simulate_sequence(11, image_size=256, num_frames=11)


@pytest.fixture(scope="module")
def static_sequence() -> sx.XCASequence:
    return sx.simulate_sequence(3, image_size=96, num_frames=8, motion_scale=0.0)


def _straight_tree(radius: float, row: float, image_size: int = 64) -> sx.VesselTree:
    """A single horizontal vessel of constant radius across the frame."""
    cols = np.arange(-10.0, image_size + 10.0, 0.5)
    centreline = np.stack([np.full_like(cols, row), cols], axis=1)
    segment = sx.VesselSegment(centreline, np.full(len(cols), radius), cols - cols[0], generation=0, parent=-1)
    return sx.VesselTree((segment,), image_size, centreline[0])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# ---------------------------------------------------------------------------------------------------------------
# Determinism, shapes
# ---------------------------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_arrays_and_other_seed_differs() -> None:
    first, again, other = (sx.simulate_sequence(seed, image_size=64, num_frames=5) for seed in (7, 7, 8))
    np.testing.assert_array_equal(first.frames, again.frames)
    np.testing.assert_array_equal(first.masks, again.masks)
    np.testing.assert_array_equal(first.clean_frames, again.clean_frames)
    assert not np.array_equal(first.frames, other.frames)
    assert not np.array_equal(first.masks, other.masks)


def test_seed_sequence_input_is_reproducible_and_prefix_independent_of_length() -> None:
    seed = sx.video_seed(5, 2)
    short = sx.simulate_sequence(seed, image_size=64, num_frames=3)
    long = sx.simulate_sequence(seed, image_size=64, num_frames=6)  # the same SeedSequence object, used twice
    np.testing.assert_array_equal(short.frames, long.frames[:3])
    np.testing.assert_array_equal(short.masks, long.masks[:3])


def test_shapes_dtypes_and_value_ranges(sequences_128: list[sx.XCASequence]) -> None:
    sequence = sequences_128[0]
    assert sequence.frames.shape == sequence.masks.shape == sequence.clean_frames.shape == (20, 128, 128)
    assert sequence.frames.dtype == np.uint8 and sequence.masks.dtype == np.uint8
    assert sequence.clean_frames.dtype == np.float32
    assert set(np.unique(sequence.masks).tolist()) == {0, 1}
    assert 0.0 <= sequence.clean_frames.min() and sequence.clean_frames.max() <= 1.0
    assert sequence.times.shape == sequence.contrast_curve.shape == (20,)
    np.testing.assert_allclose(np.diff(sequence.times), 1 / 15.0)
    for layer in (sequence.background, sequence.vessel_thickness, sequence.catheter_thickness):
        assert layer.shape == (128, 128) and np.isfinite(layer).all()


@pytest.mark.parametrize(
    "call",
    [
        lambda: sx.simulate_sequence(0, image_size=16),
        lambda: sx.simulate_sequence(-1, image_size=64),
        lambda: sx.simulate_sequence(0, image_size=64, num_frames=0),
        lambda: sx.simulate_sequence(0, image_size=64, mask_min_contrast=1.5),
        lambda: sx.sample_vessel_tree(np.random.default_rng(0), 64, coverage_range=(0.2, 0.1)),
        lambda: sx.render_background(np.random.default_rng(0), 64, margin=-1),
    ],
)
def test_bad_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


# ---------------------------------------------------------------------------------------------------------------
# Geometry and rendering
# ---------------------------------------------------------------------------------------------------------------
def test_vessel_tree_is_a_tapering_tree_with_realistic_widths() -> None:
    tree = sx.sample_vessel_tree(np.random.default_rng(4), 512)
    root = tree.segments[0]
    assert root.parent == -1 and root.generation == 0
    np.testing.assert_allclose(root.centreline[0], tree.ostium)
    widths = 2 * tree.radii
    assert widths.min() >= 3.0 - 1e-9 and widths.max() <= 18.0 + 1e-9
    assert widths.max() == pytest.approx(2 * root.radii.max())  # the trunk is the thickest vessel
    assert len(tree.segments) >= 15
    # The trunk splits into two or three major vessels, by Murray's law, each in its own depth layer.
    major = [s for s in tree.segments if s.generation == 1]
    assert 2 <= len(major) <= 3 and len({s.layer for s in major}) == len(major)
    assert sum(s.radii[0] ** 3 for s in major) == pytest.approx(root.radii[-1] ** 3)
    for segment in tree.segments[1:]:
        parent = tree.segments[segment.parent]
        assert segment.generation == parent.generation + 1
        # The branch starts on its parent's centreline, is thinner than the parent there, and continues its path.
        index = int(np.argmin(np.linalg.norm(parent.centreline - segment.centreline[0], axis=1)))
        assert np.linalg.norm(parent.centreline[index] - segment.centreline[0]) < 1e-6
        assert segment.radii[0] < parent.radii[max(index - 1, 0)]
        assert segment.path_length[0] == pytest.approx(parent.path_length[index])
        assert np.all(np.diff(segment.path_length) > 0)


def test_scaled_tree_keeps_relative_geometry() -> None:
    tree = sx.sample_vessel_tree(np.random.default_rng(1), 512)
    small = tree.scaled(128)
    assert small.image_size == 128
    np.testing.assert_allclose(small.radii, tree.radii / 4)
    np.testing.assert_allclose(small.total_length, tree.total_length / 4, rtol=1e-9)


@pytest.mark.parametrize("radius", [0.4, 2.3])
def test_thickness_is_the_chord_and_conserves_cross_section_area(radius: float) -> None:
    thickness = sx.render_vessel_thickness(_straight_tree(radius, row=30.3), 64)
    profile = thickness[:, 32]
    # Summing the pixel-averaged chord across the vessel gives the circle's area, pi r^2 (Beer-Lambert mass).
    assert profile.sum() == pytest.approx(math.pi * radius**2, rel=0.02)
    assert profile.max() <= 2 * radius + 1e-6
    # Soft, sub-pixel edges: the profile has partial values, not a binary footprint.
    assert np.count_nonzero((profile > 0) & (profile < profile.max() - 1e-6)) >= 1


def test_displacement_moves_the_rendering() -> None:
    tree = sx.sample_vessel_tree(np.random.default_rng(2), 96)
    still = sx.render_vessel_thickness(tree, 96)
    moved = sx.render_vessel_thickness(tree, 96, displacement=lambda points: np.tile([3.0, -2.0], (len(points), 1)))
    np.testing.assert_allclose(moved[10:-10, 10:-10], np.roll(still, (3, -2), axis=(0, 1))[10:-10, 10:-10], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        sx.render_vessel_thickness(tree, 96, displacement=lambda points: np.zeros(3))


def test_cardiac_motion_is_periodic_and_non_rigid() -> None:
    motion = sx.sample_motion(np.random.default_rng(0), 128)
    assert 60 / 90 - 1e-9 <= motion.cardiac_period_s <= 1.0 + 1e-9
    grid = np.stack(np.mgrid[0:128:16, 0:128:16], axis=-1).reshape(-1, 2).astype(float)
    at_t = sx.cardiac_displacement(motion, 0.2, grid)
    np.testing.assert_allclose(sx.cardiac_displacement(motion, 0.2 + motion.cardiac_period_s, grid), at_t, atol=1e-9)
    peak = max(np.abs(sx.cardiac_displacement(motion, t, grid)).max() for t in np.linspace(0, 1, 16))
    assert 0 < peak <= motion.cardiac_amplitude + 1e-9
    end_systole = (0.5 - motion.cardiac_phase) * motion.cardiac_period_s  # beat(t) == 1
    assert motion.beat(end_systole) == pytest.approx(1.0)
    field = sx.cardiac_displacement(motion, end_systole, grid)
    assert np.std(field, axis=0).max() > 0.1 * np.abs(field).max()  # points move differently: not a translation
    assert np.ptp([sx.respiratory_shift(motion, t) for t in np.linspace(0, 1.3, 20)], axis=0).max() > 0


# ---------------------------------------------------------------------------------------------------------------
# Masks: coverage, rule, wash-in, motion
# ---------------------------------------------------------------------------------------------------------------
def test_labelled_post_wash_in_masks_cover_realistic_fraction(
    sequences_128: list[sx.XCASequence], sequence_256: sx.XCASequence
) -> None:
    for sequence in [*sequences_128, sequence_256]:
        labelled = np.arange(0, len(sequence.frames), LABEL_EVERY)
        filled = sequence.times[labelled] >= sequence.bolus.opacified_s
        assert filled.sum() >= len(labelled) - 1  # at most frame 0 is still filling
        fractions = sequence.vessel_fraction[labelled[sequence.opacified[labelled]]]
        assert np.all((fractions >= 0.04) & (fractions <= 0.14)), fractions


def test_mask_is_the_documented_contrast_rule_in_the_moving_frame(sequences_128: list[sx.XCASequence]) -> None:
    sequence = sequences_128[1]
    for index in (0, 2, 13):
        t = sequence.times[index]
        chord = sx.render_vessel_thickness(
            sequence.tree, 128, partial(sequence.motion.displacement, t), partial(sequence.bolus.concentration, t=t)
        )
        darkening = 1.0 - np.exp(-sequence.bolus.attenuation * (512 / 128) * chord)
        np.testing.assert_array_equal(sequence.masks[index], darkening >= sequence.mask_min_contrast)


def test_wash_in_grows_the_mask_and_empty_masks_need_a_threshold_above_the_contrast(
    sequences_128: list[sx.XCASequence],
) -> None:
    for sequence in sequences_128:
        before_washout = sequence.times < sequence.bolus.washout_s
        assert np.all(np.diff(sequence.contrast_curve[before_washout]) >= 0)
        assert sequence.contrast_curve[0] < 1.0 and sequence.contrast_curve[sequence.opacified] == pytest.approx(1.0)
        assert 0 < sequence.vessel_fraction[0] < sequence.vessel_fraction[sequence.opacified].min()
    # Only a threshold above the darkest vessel's contrast (documented rule) empties the masks.
    blind = sx.simulate_sequence(0, image_size=64, num_frames=6, mask_min_contrast=0.9)
    assert blind.masks.sum() == 0


def test_wash_out_fades_the_contrast_and_shrinks_but_never_empties_the_mask(
    sequences_128: list[sx.XCASequence],
) -> None:
    washing_out = [s for s in sequences_128 if s.bolus.washout_s + s.bolus.fill_time_s < s.times[-1]]
    assert washing_out, "none of the fixture's sequences washes out; pick other seeds"
    for sequence in washing_out:
        after = sequence.times >= sequence.bolus.washout_s + sequence.bolus.fill_time_s  # the whole tree washes out
        assert np.all(np.diff(sequence.contrast_curve[after]) < 0)
        assert sequence.contrast_curve[-1] > sequence.bolus.residual
        last, full = len(sequence.times) - 1, int(np.flatnonzero(sequence.opacified)[-1])
        assert 0 < sequence.vessel_fraction[last] <= sequence.vessel_fraction[full]
        # The image contrast of the vessels fades: their darkening falls with the concentration.
        vessel = sequence.masks[last].astype(bool) & sequence.masks[full].astype(bool)
        fade = [1 - sequence.clean_frames[i][vessel].mean() / np.median(sequence.clean_frames[i]) for i in (full, last)]
        assert fade[1] < fade[0]


def test_collimator_blades_are_dark_straight_unlabelled_and_static() -> None:
    sequences = [sx.simulate_sequence(seed, image_size=96, num_frames=3) for seed in range(6)]
    with_blades = [s for s in sequences if s.collimator.max() > 0.25]
    assert len(with_blades) >= 3
    for sequence in with_blades:
        blade = sequence.collimator > 0.25
        assert sequence.masks[:, blade].sum() == 0  # never labelled ...
        near_vessels = ndimage.binary_dilation(sequence.vessel_thickness > 0, iterations=2)
        assert not np.any(near_vessels & blade)  # ... nor hiding a vessel
        open_field = (np.abs(sequence.collimator) < 0.01) & (sequence.catheter_thickness == 0)
        assert sequence.clean_frames[0][blade].mean() < 0.8 * sequence.clean_frames[0][open_field].mean()
        # Fixed to the detector: the blade's pixels stay equally dark while the chest moves.
        opaque = sequence.collimator > 1.5
        np.testing.assert_allclose(sequence.clean_frames[0][opaque], sequence.clean_frames[2][opaque], atol=0.01)


def test_vessels_are_darker_than_their_surroundings(sequences_128: list[sx.XCASequence]) -> None:
    for sequence in sequences_128:
        index = 10
        vessel = sequence.masks[index].astype(bool)
        ring = ndimage.binary_dilation(vessel, iterations=3) & ~vessel & (sequence.catheter_thickness == 0)
        frame = sequence.frames[index].astype(float)
        assert frame[vessel].mean() < 0.85 * frame[ring].mean()


def test_catheter_is_dark_but_not_labelled(sequences_128: list[sx.XCASequence]) -> None:
    for sequence in sequences_128:
        index = 10
        move = partial(sequence.motion.displacement, sequence.times[index])
        catheter = sx.render_catheter(sequence.catheter, 128, move)
        vessels = sx.render_vessel_thickness(sequence.tree, 128, move)
        tube = (catheter > 0.5 * catheter.max()) & (ndimage.binary_dilation(vessels > 0, iterations=2) == 0)
        assert tube.sum() > 10
        assert sequence.masks[index][tube].sum() == 0
        ring = ndimage.binary_dilation(catheter > 0, iterations=3) & (catheter == 0) & (vessels == 0)
        assert sequence.clean_frames[index][tube].mean() < 0.9 * sequence.clean_frames[index][ring].mean()
        # It enters from outside the frame and ends at the ostium.
        start = sequence.catheter.centreline[0]
        assert np.any((start < 0) | (start > 127))
        np.testing.assert_allclose(sequence.catheter.centreline[-1], sequence.tree.ostium, atol=1e-6)


def test_frames_change_and_masks_move_smoothly(sequences_128: list[sx.XCASequence]) -> None:
    for sequence in sequences_128:
        frames, masks = sequence.frames.astype(int), sequence.masks.astype(bool)
        assert all(np.abs(frames[t + 1] - frames[t]).mean() > 1.0 for t in range(len(frames) - 1))
        ious = [_iou(masks[t], masks[t + 1]) for t in range(len(masks) - 1) if sequence.opacified[t]]
        assert min(ious) > 0.5 and np.mean(ious) > 0.7
        assert np.mean(ious) < 0.99 and min(ious) < 1.0  # the vessels move


def test_noise_is_independent_between_frames(static_sequence: sx.XCASequence) -> None:
    sequence = static_sequence
    full = np.flatnonzero(sequence.opacified)
    # Without motion, fully opacified frames have identical masks and noise-free images ...
    for a, b in zip(full[:-1], full[1:]):
        np.testing.assert_array_equal(sequence.masks[a], sequence.masks[b])
        np.testing.assert_allclose(sequence.clean_frames[a], sequence.clean_frames[b])
    # ... yet the frames differ, by quantum noise that is uncorrelated from frame to frame.
    residual = sequence.frames[full].astype(float) / 255.0 - sequence.clean_frames[full]
    assert residual.std() > 0.01
    for a, b in zip(residual[:-1], residual[1:]):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.05


# ---------------------------------------------------------------------------------------------------------------
# Dataset on disk
# ---------------------------------------------------------------------------------------------------------------
WRITE_ARGS = dict(
    image_size=64, num_train_videos=1, num_val_videos=1, num_test_videos=1, frames_per_video=7, label_every=5, seed=3
)


def test_layout_manifest_and_mask_files(tmp_path) -> None:
    manifest = sx.write_xca_dataset(tmp_path, **WRITE_ARGS)
    assert list(manifest.columns) == [
        "split", "video", "frame", "image_path", "mask_path", "has_mask", "vessel_fraction"
    ]
    assert len(manifest) == 3 * 7
    expected = {"train": ("syn0000", [0, 5]), "val": ("syn0001", [0, 5]), "test": ("syn0002", list(range(7)))}
    for split, (video, labelled) in expected.items():
        frames = sorted(p.name for p in (tmp_path / split / "JPEGImages" / video).iterdir())
        masks = sorted(p.name for p in (tmp_path / split / "Annotations_Semantic" / video).iterdir())
        assert frames == [f"{i:05d}.png" for i in range(7)]
        assert masks == [f"{i:05d}.png" for i in labelled]
        rows = manifest[manifest["split"] == split]
        assert rows["has_mask"].tolist() == [i in labelled for i in range(7)]
        assert rows.loc[~rows["has_mask"], "vessel_fraction"].isna().all()
    for row in manifest[manifest["has_mask"]].itertuples():
        with Image.open(tmp_path / row.mask_path) as image:
            assert image.mode == "L"
            mask = np.asarray(image)
        assert set(np.unique(mask).tolist()) <= {0, 1} and mask.max() == 1
        assert row.vessel_fraction == pytest.approx(mask.mean())
    with Image.open(tmp_path / manifest["image_path"].iloc[0]) as image:
        assert image.mode == "L" and image.size == (64, 64)
    # Video k is simulated from its own seed, independent of the other videos.
    video = sx.simulate_sequence(sx.video_seed(3, 1), 64, 7)
    written = np.asarray(Image.open(tmp_path / "val/JPEGImages/syn0001/00003.png"))
    np.testing.assert_array_equal(written, video.frames[3])
    stamp = read_stamp(tmp_path)
    assert stamp["settings"]["image_size"] == 64 and stamp["settings"]["seed"] == 3
    assert set(stamp["files"]) == {*manifest["image_path"], *manifest.loc[manifest["has_mask"], "mask_path"],
                                   "manifest.csv"}


def test_cache_is_reused_and_overwrite_regenerates(tmp_path, monkeypatch) -> None:
    first = sx.write_xca_dataset(tmp_path, **WRITE_ARGS)
    frame_path = tmp_path / first["image_path"].iloc[2]
    original = frame_path.read_bytes()

    calls = []
    real_simulate = sx.simulate_sequence

    def counting_simulate(*args, **kwargs):
        calls.append(args)
        return real_simulate(*args, **kwargs)

    monkeypatch.setattr(sx, "simulate_sequence", counting_simulate)
    cached = sx.write_xca_dataset(tmp_path, **WRITE_ARGS)
    assert calls == []
    assert cached.equals(first)

    frame_path.write_bytes(b"")  # damage a frame: overwrite=True must bring it back
    sx.write_xca_dataset(tmp_path, **WRITE_ARGS, overwrite=True)
    assert len(calls) == 3
    assert frame_path.read_bytes() == original

    with pytest.raises(DataError, match="seed: 3 -> 4"):  # other parameters: never replaced silently
        sx.write_xca_dataset(tmp_path, **{**WRITE_ARGS, "seed": 4})
    assert len(calls) == 3 and frame_path.read_bytes() == original
    sx.write_xca_dataset(tmp_path, **{**WRITE_ARGS, "seed": 4}, overwrite=True)
    assert len(calls) == 6
    assert read_stamp(tmp_path)["settings"]["seed"] == 4


def test_missing_file_is_reported_and_restored_with_overwrite(tmp_path) -> None:
    manifest = sx.write_xca_dataset(tmp_path, **WRITE_ARGS)
    missing = tmp_path / manifest["mask_path"].iloc[0]
    missing.unlink()
    with pytest.raises(DataError, match=f"lacks {manifest['mask_path'].iloc[0]}"):
        sx.write_xca_dataset(tmp_path, **WRITE_ARGS)
    sx.write_xca_dataset(tmp_path, **WRITE_ARGS, overwrite=True)
    assert missing.is_file()


def test_foreign_files_are_never_deleted(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")  # beside the dataset: written around, left alone
    manifest = sx.write_xca_dataset(tmp_path, **WRITE_ARGS)
    user_file = tmp_path / "train" / "JPEGImages" / "syn0000" / "my_notes.txt"
    user_file.write_text("also mine")  # inside the generator's folders
    sx.write_xca_dataset(tmp_path, **{**WRITE_ARGS, "seed": 9}, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine" and user_file.read_text() == "also mine"
    assert len(list(user_file.parent.glob("*.png"))) == WRITE_ARGS["frames_per_video"]
    assert len(manifest) == len(sx.write_xca_dataset(tmp_path, **{**WRITE_ARGS, "seed": 9}))

    other = tmp_path / "other"
    (other / "train").mkdir(parents=True)  # where the generator writes, without its stamp: maybe real data
    for overwrite in (False, True):
        with pytest.raises(DataError, match="not written by write_xca_dataset"):
            sx.write_xca_dataset(other, **WRITE_ARGS, overwrite=overwrite)


def test_ensure_xca_dataset_uses_the_config(tmp_path) -> None:
    config = XCAConfig(image_size=64, num_train_videos=1, num_val_videos=0, num_test_videos=1, frames_per_video=4)
    root = sx.ensure_xca_dataset(config, tmp_path / "xca")
    stored = read_stamp(root)["settings"]
    assert read_stamp(root)["digest"] == sx.dataset_digest(config)
    assert {key: stored[key] for key in ("image_size", "frames_per_video", "label_every", "seed")} == {
        "image_size": 64, "frames_per_video": 4, "label_every": config.label_every, "seed": config.seed
    }
    assert sorted(p.name for p in (root / "test" / "Annotations_Semantic" / "syn0001").iterdir()) == [
        f"{i:05d}.png" for i in range(4)
    ]


def test_write_rejects_empty_dataset(tmp_path) -> None:
    with pytest.raises(ValueError, match="at least one video"):
        no_videos = {"num_train_videos": 0, "num_val_videos": 0, "num_test_videos": 0}
        sx.write_xca_dataset(tmp_path, **{**WRITE_ARGS, **no_videos})
