"""Tests of the synthetic IVOCT generator: physics cues, geometry, on-disk format and caching."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg_core.config import real_data_path
from medseg_core.data.io import DataError
from medseg_core.data.oct import OCT_CLASSES
from medseg_core.data.synthetic_oct import (
    CATHETER_RADIUS_MM,
    apply_oct_colormap,
    generate_oct_frame,
    render_frame,
    sample_frame_params,
    sample_pullback_params,
    scan_convert,
    simulate_polar_frame,
    write_oct_dataset,
)

SIZE = 128


def real_sample_root() -> Path:
    """The real 11-frame sample the kit ships (``data/real/oct_zenodo_sample``), or ``$MEDSEG_OCT_SAMPLE``."""
    return real_data_path("oct_zenodo_sample")


def channel(frame_mask: np.ndarray, name: str) -> np.ndarray:
    return frame_mask[..., OCT_CLASSES.index(name)] > 0


@pytest.fixture(scope="module")
def flat_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("oct_flat")
    manifest = write_oct_dataset(root, num_patients=3, frames_per_patient=4, seed=5, size=96)
    return root, manifest


# ------------------------------------------------------------------------------------------------ single frames


def test_frame_shapes_and_mask_encoding():
    frame = generate_oct_frame(0, SIZE, lipid=True)
    assert frame.image.shape == (SIZE, SIZE, 3) and frame.image.dtype == np.uint8
    assert frame.mask.shape == (SIZE, SIZE, 4) and frame.mask.dtype == np.uint8
    assert set(np.unique(frame.mask)) <= {0, 255}
    assert (frame.mask > 0).sum(axis=-1).max() == 1, "generated classes must not overlap"
    for name in ("lumen", "fibrous_cap", "lipid_core"):
        assert channel(frame.mask, name).any(), name
    corner = (slice(0, 5), slice(0, 5))  # outside the circular field of view
    assert frame.image[corner].max() == 0 and frame.mask[corner].max() == 0


def test_frame_without_lipid_has_no_cap_or_lipid():
    frame = generate_oct_frame(1, SIZE, lipid=False)
    assert not channel(frame.mask, "lipid_core").any()
    assert not channel(frame.mask, "fibrous_cap").any()
    assert channel(frame.mask, "lumen").any()


def test_same_seed_same_frame_and_different_seed_different_frame():
    a, b, c = generate_oct_frame(3, 96), generate_oct_frame(3, 96), generate_oct_frame(4, 96)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.image, c.image)


def test_lipid_pool_is_signal_poor_behind_a_bright_cap():
    params = sample_frame_params(np.random.default_rng(7), lipid=True, calcium=False)
    with_lipid = simulate_polar_frame(params, np.random.default_rng(0), num_samples=200)
    without_lipid = simulate_polar_frame(dataclasses.replace(params, lipid=None), np.random.default_rng(0),
                                         num_samples=200)
    lipid = with_lipid.labels == 3
    cap = with_lipid.labels == 2
    assert with_lipid.display[cap].mean() > with_lipid.display[lipid].mean() + 0.2
    # The same tissue without the pool is brighter: the pool attenuates the light.
    assert without_lipid.display[lipid].mean() > with_lipid.display[lipid].mean() + 0.1
    assert not (without_lipid.labels >= 2).any()


def test_calcium_is_signal_poor_and_unlabelled():
    params = sample_frame_params(np.random.default_rng(11), lipid=True, calcium=True)
    assert params.calcium is not None
    polar = simulate_polar_frame(params, np.random.default_rng(0), num_samples=200)
    without = simulate_polar_frame(dataclasses.replace(params, calcium=None), np.random.default_rng(0),
                                   num_samples=200)
    assert polar.calcium.any()
    assert (polar.labels[polar.calcium] == 0).all(), "calcium must never be labelled"
    assert without.display[polar.calcium].mean() > polar.display[polar.calcium].mean() + 0.1


def test_guidewire_casts_a_signal_free_shadow():
    params = sample_frame_params(np.random.default_rng(2), lipid=False, calcium=False)
    polar = simulate_polar_frame(params, np.random.default_rng(0), num_samples=200)
    angles = 2 * np.pi * np.arange(polar.display.shape[0]) / polar.display.shape[0]
    offset = np.abs(np.angle(np.exp(1j * (angles - params.guidewire_angle))))
    tissue = (polar.labels == 0) & (polar.radius_mm[None, :] > CATHETER_RADIUS_MM)
    shadow_rows, lit_rows = offset < 0.05, offset > 0.5
    shadow = polar.display[shadow_rows][tissue[shadow_rows]].mean()
    lit = polar.display[lit_rows][tissue[lit_rows]].mean()
    assert shadow < 0.5 * lit


def test_catheter_sheath_is_a_bright_ring():
    polar = simulate_polar_frame(sample_frame_params(np.random.default_rng(0)), np.random.default_rng(0),
                                 num_samples=400)
    profile = polar.display.mean(axis=0)
    sheath = np.argmin(np.abs(polar.radius_mm - CATHETER_RADIUS_MM))
    fluid = np.argmin(np.abs(polar.radius_mm - 0.4))
    assert profile[sheath] > profile[fluid] + 0.1


def test_pullback_has_one_contiguous_lipid_run_and_frames_without_lipid():
    for seed in range(5):
        frames = sample_pullback_params(np.random.default_rng(seed), 7)
        has_lipid = np.array([f.lipid is not None for f in frames])
        assert 1 <= has_lipid.sum() <= 6
        runs = np.flatnonzero(np.diff(np.r_[0, has_lipid.astype(int), 0]))
        assert len(runs) == 2, f"lipid frames {has_lipid} are not one contiguous run"


# ------------------------------------------------------------------------------------------------ geometry


def test_scan_convert_angles_run_clockwise_from_three_oclock():
    num_alines, num_samples, size = 360, 50, 101
    angle_index = np.tile(np.arange(num_alines, dtype=np.float32)[:, None], (1, num_samples))
    cartesian = scan_convert(angle_index, size, order=0)
    centre = size // 2
    assert cartesian[centre, centre + 40] in (0, num_alines - 1)  # 3 o'clock (either side of 0 degrees)
    assert cartesian[centre + 40, centre] == pytest.approx(90, abs=1)  # 6 o'clock: image rows go down
    assert cartesian[centre, centre - 40] == pytest.approx(180, abs=1)
    assert cartesian[centre - 40, centre] == pytest.approx(270, abs=1)
    assert cartesian[0, 0] == 0  # outside the field of view


def test_scan_convert_depth_reaches_the_edge_of_the_field_of_view():
    depth_index = np.tile(np.arange(64, dtype=np.float32)[None, :], (32, 1))
    cartesian = scan_convert(depth_index, 129, order=1)
    centre = 64
    row = cartesian[centre, centre:centre + 64]
    assert np.all(np.diff(row) > 0)
    assert row[-1] == pytest.approx(63 * (1 - 0.5 / 64), abs=1.0)


def test_colormap_is_orange_and_monotonic():
    rgb = apply_oct_colormap(np.linspace(0, 1, 256)[None, :])[0].astype(int)
    assert (rgb[0] == 0).all()
    assert np.all(np.diff(rgb[:, 0]) >= 0) and np.all(np.diff(rgb[:, 1]) >= 0)
    assert np.all(rgb[:, 0] >= rgb[:, 1]) and np.all(rgb[:, 1] >= rgb[:, 2])


def test_render_frame_rejects_tiny_sizes():
    with pytest.raises(ValueError, match="size"):
        render_frame(sample_frame_params(np.random.default_rng(0)), np.random.default_rng(0), size=8)


# ------------------------------------------------------------------------------------------------ writer


def test_flat_layout_names_files_and_manifest(flat_dataset):
    root, manifest = flat_dataset
    assert len(manifest) == 12
    assert sorted(manifest["patient"].unique()) == ["001", "002", "003"]
    for row in manifest.itertuples():
        assert re.fullmatch(r"\d{3}_1_\d{3}", row.id)
        assert (root / row.image_path).is_file() and (root / row.mask_path).is_file()
        mask = tifffile.imread(root / row.mask_path)
        assert row.lipid_core_fraction == pytest.approx((mask[..., 2] > 0).mean())
        assert row.has_lipid == (mask[..., 2] > 0).any()
    for _, frames in manifest.groupby("patient"):
        assert frames["has_lipid"].any() and not frames["has_lipid"].all()
    assert sorted(p.name for p in (root / "img").iterdir()) == sorted(f"{i}.png" for i in manifest["id"])


def test_write_is_cached_and_guards_against_other_parameters(flat_dataset, tmp_path):
    root, manifest = flat_dataset
    image = root / manifest["image_path"][0]
    stamp = image.stat().st_mtime_ns
    again = write_oct_dataset(root, num_patients=3, frames_per_patient=4, seed=5, size=96)
    assert again.equals(manifest)
    assert image.stat().st_mtime_ns == stamp

    other = tmp_path / "other"
    write_oct_dataset(other, num_patients=1, frames_per_patient=2, seed=0, size=64)
    with pytest.raises(DataError, match="overwrite=True"):
        write_oct_dataset(other, num_patients=2, frames_per_patient=2, seed=0, size=64)
    rewritten = write_oct_dataset(other, num_patients=2, frames_per_patient=2, seed=0, size=64, overwrite=True)
    assert len(rewritten) == 4 and len(list((other / "img").iterdir())) == 4


def test_write_refuses_a_folder_with_foreign_data(tmp_path):
    (tmp_path / "img").mkdir()
    with pytest.raises(DataError, match="not written by write_oct_dataset"):
        write_oct_dataset(tmp_path, num_patients=1, frames_per_patient=1, seed=0, size=64, overwrite=True)


def test_patients_do_not_depend_on_how_many_are_generated(tmp_path):
    small = write_oct_dataset(tmp_path / "a", num_patients=1, frames_per_patient=2, seed=9, size=64)
    large = write_oct_dataset(tmp_path / "b", num_patients=2, frames_per_patient=2, seed=9, size=64)
    for rel in small["image_path"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert set(large["patient"]) == {"001", "002"}


def test_fold_layout_is_patient_wise(tmp_path):
    manifest = write_oct_dataset(tmp_path, num_patients=4, frames_per_patient=2, seed=1, size=64, layout="folds",
                                 num_folds=2)
    assert manifest.groupby("patient")["fold"].nunique().eq(1).all()
    all_patients = set(manifest["patient"])
    for fold in (1, 2):
        split_patients = {}
        for split in ("train", "test"):
            names = [p.stem for p in (tmp_path / f"fold_{fold}" / split / "img").iterdir()]
            assert sorted(names) == sorted(p.stem for p in (tmp_path / f"fold_{fold}" / split / "mask").iterdir())
            split_patients[split] = {n[:3] for n in names}
        assert not split_patients["train"] & split_patients["test"]
        assert split_patients["train"] | split_patients["test"] == all_patients
        assert split_patients["test"] == set(manifest.loc[manifest["fold"] == fold, "patient"])


def test_invalid_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        write_oct_dataset(tmp_path, num_patients=1, frames_per_patient=1, seed=0, layout="nested")
    with pytest.raises(ValueError, match="num_folds"):
        write_oct_dataset(tmp_path, num_patients=2, frames_per_patient=1, seed=0, layout="folds", num_folds=5)


def test_full_size_frame_matches_the_real_file_format(tmp_path):
    manifest = write_oct_dataset(tmp_path, num_patients=1, frames_per_patient=1, seed=0, size=750)
    image_path, mask_path = tmp_path / manifest["image_path"][0], tmp_path / manifest["mask_path"][0]
    real = real_sample_root()
    references = [(image_path, mask_path), (real / "img/001_1_001.png", real / "mask/001_1_001.tiff")]
    for png, tiff in references:
        with Image.open(png) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (750, 750))
        with Image.open(tiff) as mask:
            assert (mask.format, mask.mode, mask.size) == ("TIFF", "RGBA", (750, 750))
        with tifffile.TiffFile(tiff) as handle:
            page = handle.pages[0]
            assert page.compression == tifffile.COMPRESSION.LZW
            assert page.shape == (750, 750, 4) and page.dtype == np.uint8
            assert page.photometric == tifffile.PHOTOMETRIC.RGB
            assert tuple(page.extrasamples) == (tifffile.EXTRASAMPLE.UNASSALPHA,)
        assert set(np.unique(tifffile.imread(tiff))) == {0, 255}
