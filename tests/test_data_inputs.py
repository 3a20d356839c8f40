"""Inputs read faithfully (bit depths, NaN, JPEG masks) and one warning per data set (issue 11, items 6, 9, 13)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from medseg_core.config import OCTConfig, XCAConfig
from medseg_core.data.io import DataError, read_image, read_label_mask, to_label_mask
from medseg_core.data.oct import OCTDataset, find_oct_pairs, oct_dataloaders, prepare_lipid_dataset, read_oct_mask
from medseg_core.data.synthetic_oct import write_oct_dataset
from medseg_core.data.xca import XCAWindowDataset, xca_dataloaders


def gradient(height: int = 8, width: int = 10) -> np.ndarray:
    """(H, W) float64 ramp over [0, 1]."""
    return np.linspace(0.0, 1.0, height * width).reshape(height, width)


# ------------------------------------------------------------------------------------------------ bit depths


def test_16_bit_png_is_scaled_by_its_range_not_clipped(tmp_path: Path) -> None:
    values = (gradient() * 65535).round().astype(np.uint16)
    path = tmp_path / "frame16.png"
    Image.fromarray(values).save(path)
    exact = read_image(path, "L", exact=True)
    assert exact.dtype == np.float32
    np.testing.assert_allclose(exact, values / 65535.0, atol=1e-7)
    as_uint8 = read_image(path, "RGB")
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == (8, 10, 3)
    np.testing.assert_array_equal(as_uint8[..., 1], np.rint(values / 65535.0 * 255).astype(np.uint8))
    assert (as_uint8 == 255).mean() < 0.05  # was 78 % white: values above 255 were clipped


def test_float_tiff_in_unit_range_is_kept(tmp_path: Path) -> None:
    values = gradient().astype(np.float32)
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, values)
    np.testing.assert_allclose(read_image(path, "L", exact=True), values, atol=1e-7)
    assert read_image(path, "L").max() == 255  # was all zero
    rgb = np.stack([values, values * 0.5, values * 0.25], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)
    np.testing.assert_allclose(read_image(tmp_path / "rgb.tif", "L", exact=True), rgb @ [0.299, 0.587, 0.114],
                               atol=1e-6)
    uint16_rgb = (rgb * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", uint16_rgb)
    np.testing.assert_allclose(read_image(tmp_path / "rgb16.tif", "RGB", exact=True), uint16_rgb / 65535, atol=1e-7)


def test_bad_pixel_values_raise_naming_the_file(tmp_path: Path) -> None:
    values = gradient().astype(np.float32)
    values[2, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", values)
    with pytest.raises(DataError, match=r"nan\.tif holds 1 NaN/Inf pixels"):
        read_image(tmp_path / "nan.tif")
    tifffile.imwrite(tmp_path / "raw.tif", (gradient() * 4095).astype(np.float32))
    with pytest.raises(DataError, match=r"raw\.tif has values in \[0, 4095\].*must lie in \[0, 1\]"):
        read_image(tmp_path / "raw.tif")
    tifffile.imwrite(tmp_path / "signed.tif", (gradient() * 200 - 100).astype(np.int16))
    with pytest.raises(DataError, match="signed.tif .* negative values"):
        read_image(tmp_path / "signed.tif")


def test_eight_bit_reads_are_unchanged(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    tifffile.imwrite(tmp_path / "rgb.tif", rgb)
    for name in ("rgb.png", "rgb.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / name, "RGB", exact=True), rgb)
        np.testing.assert_array_equal(read_image(tmp_path / name, "L"), np.asarray(Image.fromarray(rgb).convert("L")))


def test_oct_dataset_reads_16_bit_frames_faithfully(tmp_path: Path) -> None:
    """A 16-bit copy of a frame gives the same network input as its 8-bit original (to rounding)."""
    root = tmp_path / "oct"
    manifest = write_oct_dataset(root, num_patients=1, frames_per_patient=1, seed=0, size=64)
    image_path = root / manifest["image_path"][0]
    gray16 = np.asarray(Image.open(image_path).convert("L"), dtype=np.uint16) * 257
    Image.fromarray(np.asarray(Image.open(image_path).convert("L"))).save(image_path)
    gray8_input = OCTDataset(find_oct_pairs(root), image_size=None)[0]["image"]
    Image.fromarray(gray16).save(image_path)
    sixteen = OCTDataset(find_oct_pairs(root), image_size=None)[0]["image"]
    assert sixteen.shape == (3, 64, 64)
    np.testing.assert_allclose(sixteen.numpy(), gray8_input.numpy(), atol=1e-5)


# --------------------------------------------------------------------------------------------------- masks


def test_jpeg_masks_are_refused(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 255
    Image.fromarray(mask).save(tmp_path / "mask.jpg")
    for read in (read_label_mask, read_oct_mask):
        with pytest.raises(DataError, match=r"mask\.jpg is a lossy JPEG.*save masks as PNG"):
            read(tmp_path / "mask.jpg")


def test_float_and_negative_masks_raise(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="non-integer values"):
        to_label_mask(np.array([[0.0, 0.5], [1.0, 0.0]], np.float32), source="soft.tif")
    with pytest.raises(DataError, match="non-integer values"):
        to_label_mask(np.array([[0.0, np.nan]], np.float32), source="nan.tif")
    with pytest.raises(DataError, match=r"values \[-1, 0, 1\]"):
        to_label_mask(np.array([[-1, 0, 1]], np.int16), source="ignore.png")
    np.testing.assert_array_equal(to_label_mask(np.array([[0.0, 1.0]], np.float32)), [[0, 1]])


def write_xca_split(root: Path, masks: list[np.ndarray], size: tuple[int, int] = (16, 16)) -> None:
    """One video ``v`` with a labelled frame per mask."""
    rng = np.random.default_rng(0)
    for index, mask in enumerate(masks):
        frames = root / "JPEGImages" / "v"
        frames.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(1, 255, size, dtype=np.uint8)).save(frames / f"{index:05d}.png")
        (root / "Annotations_Semantic" / "v").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "Annotations_Semantic" / "v" / f"{index:05d}.png")


def test_split_without_foreground_warns_once_with_counts(tmp_path: Path) -> None:
    empty = np.zeros((16, 16), np.uint8)
    write_xca_split(tmp_path / "test", [empty] * 4)
    with pytest.warns(UserWarning) as caught:
        XCAWindowDataset(tmp_path / "test", window_length=2)
    messages = [str(w.message) for w in caught if "foreground" in str(w.message)]
    assert len(messages) == 1
    assert f"XCA split {tmp_path / 'test'} (1 videos, 4 labelled frames): none of its 4 masks" in messages[0]
    assert "Every Dice score on it is 1.0 by the empty-mask rule" in messages[0]

    some = empty.copy()
    some[3, 3] = 1
    write_xca_split(tmp_path / "fine", [empty, some])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        XCAWindowDataset(tmp_path / "fine", window_length=2)


def test_oct_split_without_lipid_warns_once(tmp_path: Path) -> None:
    root = tmp_path / "oct"
    write_oct_dataset(root, num_patients=2, frames_per_patient=2, seed=0, size=64)
    pairs = find_oct_pairs(root)
    no_lipid = [row.id for row in pairs.itertuples() if not read_oct_mask(row.mask_path).any()]
    assert no_lipid, "the synthetic pullbacks have frames without lipid"
    with pytest.warns(UserWarning, match=rf"OCT val split \({len(no_lipid)} frames\): none of its {len(no_lipid)} "):
        OCTDataset(pairs[pairs["id"].isin(no_lipid)], image_size=32, name="OCT val split")


def test_non_square_frames_warn_once(tmp_path: Path) -> None:
    mask = np.zeros((12, 20), np.uint8)
    mask[4:6, 4:9] = 1
    write_xca_split(tmp_path / "wide", [mask] * 3, size=(12, 20))
    with pytest.warns(UserWarning, match=r"1 of 1 videos \(e\.g\. v, 12x20 HxW\) are resized to 16x16"):
        XCAWindowDataset(tmp_path / "wide", window_length=2, image_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        XCAWindowDataset(tmp_path / "wide", window_length=2, image_size=(6, 10))  # same aspect ratio


def test_zero_255_masks_warn_once_per_dataset(tmp_path: Path) -> None:
    root = tmp_path / "data"
    rng = np.random.default_rng(1)
    for index in range(3):
        for folder in ("img", "mask"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "img" / f"001_1_{index:03d}.png")
        mask = np.zeros((16, 16), np.uint8)
        mask[2:6, 2:6] = 255
        Image.fromarray(mask).save(root / "mask" / f"001_1_{index:03d}.png")
    with pytest.warns(UserWarning) as caught:
        data = OCTDataset(find_oct_pairs(root), image_size=16, name="plain folder")
        for index in range(len(data)):
            data[index]
    assert [str(w.message).split(" (e.g.")[0] for w in caught if "0/255" in str(w.message)] == [
        "plain folder (3 frames): 3 of 3 masks are stored as 0/255"
    ]
    with pytest.warns(UserWarning) as caught:
        prepare_lipid_dataset(root, tmp_path / "prepared", image_size=16)
    assert len([w for w in caught if "0/255" in str(w.message)]) == 1


def test_xca_loaders_read_16_bit_frames(tmp_path: Path) -> None:
    """16-bit frames train like their 8-bit originals: each frame is divided by its maximum either way."""
    rng = np.random.default_rng(2)
    for split in ("train", "val", "test"):
        for index in range(3):
            frame = rng.integers(1, 255, (16, 16), dtype=np.uint8)
            for name, values in (("eight", frame), ("sixteen", frame.astype(np.uint16) * 257)):
                path = tmp_path / name / split / "JPEGImages" / "v" / f"{index:05d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(values).save(path)
                mask_path = tmp_path / name / split / "Annotations_Semantic" / "v" / f"{index:05d}.png"
                mask_path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray((frame > 128).astype(np.uint8)).save(mask_path)
    config = XCAConfig(image_size=16, window_length=2, augment=False)
    eight = next(iter(xca_dataloaders(tmp_path / "eight", config, batch_size=3)["test"]))["image"]
    sixteen = next(iter(xca_dataloaders(tmp_path / "sixteen", config, batch_size=3)["test"]))["image"]
    np.testing.assert_allclose(sixteen.numpy(), eight.numpy(), atol=1e-6)
    assert float(sixteen.std()) > 0.1


def test_oct_loaders_accept_16_bit_frames(tmp_path: Path) -> None:
    root = tmp_path / "oct"
    manifest = write_oct_dataset(root, num_patients=3, frames_per_patient=2, seed=2, size=64)
    for relative in manifest["image_path"]:
        rgb = np.asarray(Image.open(root / relative).convert("L"), dtype=np.uint16) * 257
        Image.fromarray(rgb).save(root / relative)
    loaders = oct_dataloaders(root, OCTConfig(image_size=32, augment=False), batch_size=2)
    batch = next(iter(loaders["train"]))
    assert batch["image"].shape == (2, 3, 32, 32) and float(batch["image"].std()) > 0.1


# -------------------------------------------------------------------------------------- single patient (issue 12)


def _frames(loader) -> list[int]:
    return loader.dataset.pairs["frame"].astype(int).tolist()


def test_single_patient_is_split_by_blocks_with_a_gap(tmp_path: Path) -> None:
    root = tmp_path / "one"
    write_oct_dataset(root, num_patients=1, frames_per_patient=30, seed=4, size=64)
    config = OCTConfig(image_size=32, augment=False, val_fraction=0.2, test_fraction=0.2)
    with pytest.warns(UserWarning) as caught:
        loaders = oct_dataloaders(root, config, batch_size=4)
    messages = [str(w.message) for w in caught if "not patient-independent" in str(w.message)]
    assert len(messages) == 2 and "the test split is the last 6 frames" in messages[0]
    assert "the validation split is the last 4 frames" in messages[1]
    train, val, test = (_frames(loaders[split]) for split in ("train", "val", "test"))
    step = 3  # write_oct_dataset's frame_step
    assert len(train) == 30 - 6 - 5 - 4 - 5 and max(train) + 6 * step == min(val)
    assert max(val) + 6 * step == min(test) and test == sorted(test) and max(test) == 1 + 29 * step

    two = tmp_path / "two"
    write_oct_dataset(two, num_patients=2, frames_per_patient=12, seed=4, size=64)
    with pytest.warns(UserWarning, match="validation split is the last 2 frames"):
        loaders = oct_dataloaders(two, config, batch_size=2)
    assert loaders["test"].dataset.pairs["patient"].nunique() == 1  # the test set stays patient-wise
    assert set(loaders["val"].dataset.pairs["patient"]) == set(loaders["train"].dataset.pairs["patient"])


def test_real_single_patient_pullback_loads_with_block_splits() -> None:
    from medseg_core.config import real_data_path

    root = real_data_path("oct_zenodo_pullback")
    if not (root / "img").is_dir():
        pytest.skip(f"real pullback not found at {root} (set MEDSEG_OCT_PULLBACK)")
    config = OCTConfig(image_size=32, augment=False)
    with pytest.warns(UserWarning) as caught:
        loaders = oct_dataloaders(root, config, batch_size=4)
    messages = [str(w.message) for w in caught]
    assert sum("not patient-independent" in m for m in messages) == 2
    train, val, test = (_frames(loaders[split]) for split in ("train", "val", "test"))
    assert (min(train), max(train), min(val), max(val), min(test), max(test)) == (76, 137, 143, 159, 165, 186)
    # The README: lipid only in frames 076-133, so both held-out blocks have none, and say so.
    assert any(f"OCT val split of {root} (17 frames): none of its 17 masks" in m for m in messages)
    assert any(f"OCT test split of {root} (22 frames): none of its 22 masks" in m for m in messages)
    batch = next(iter(loaders["train"]))
    assert batch["image"].shape == (4, 3, 32, 32)
