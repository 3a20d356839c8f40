"""Tests of the OCT readers, layouts, patient split, dataset, prepared derivative and loaders."""
from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from PIL import Image
from torchvision import tv_tensors

from medseg_core.config import OCTConfig, real_data_path
from medseg_core.data.io import DataError
from medseg_core.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from medseg_core.data.oct import (
    OCT_CLASSES,
    OCTDataset,
    find_oct_pairs,
    oct_dataloaders,
    patient_split,
    prepare_lipid_dataset,
    read_oct_mask,
    write_oct_mask,
)
from medseg_core.data.synthetic_oct import write_oct_dataset


def real_sample_root() -> Path:
    """The real 11-frame sample the kit ships (``data/real/oct_zenodo_sample``), or ``$MEDSEG_OCT_SAMPLE``."""
    return real_data_path("oct_zenodo_sample")


@pytest.fixture(scope="module")
def flat_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oct_flat")
    write_oct_dataset(root, num_patients=5, frames_per_patient=3, seed=3, size=64)
    return root


@pytest.fixture(scope="module")
def fold_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("oct_folds")
    write_oct_dataset(root, num_patients=4, frames_per_patient=2, seed=4, size=64, layout="folds", num_folds=2)
    return root


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ------------------------------------------------------------------------------------------------ real sample


def test_real_sample_pairs_and_lipid_frames():
    root = real_sample_root()
    pairs = find_oct_pairs(root)
    assert len(pairs) == 11
    assert set(pairs["patient"]) == {"001"} and set(pairs["pullback"]) == {1}
    for row in pairs.itertuples():
        mask = read_oct_mask(row.mask_path, ("lipid_core",))
        assert mask.shape == (750, 750) and set(np.unique(mask)) <= {0, 1}
        assert mask.any() == (row.frame <= 19), row.id
    with pytest.raises(ValueError, match="at least 2 patients"):
        patient_split(pairs)


def test_real_sample_dataset_item():
    pairs = find_oct_pairs(real_sample_root())
    item = OCTDataset(pairs.iloc[:1], classes=("lumen", "lipid_core"), image_size=64)[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (64, 64) and item["mask"].dtype == torch.int64
    assert set(item["mask"].unique().tolist()) == {0, 1, 2}
    assert item["id"] == "001_1_001"


# ------------------------------------------------------------------------------------------------ masks


def test_read_oct_mask_follows_the_channel_order_and_later_classes_win(tmp_path):
    channels = np.zeros((8, 8, 4), dtype=np.uint8)
    for index in range(4):
        channels[index * 2, :, index] = 255  # row 2*i holds class i only
    channels[7, :, :] = 255  # row 7: every class at once
    path = write_oct_mask(tmp_path / "m.tiff", channels)
    labels = read_oct_mask(path, OCT_CLASSES)
    for index in range(4):
        assert (labels[index * 2] == index + 1).all()
    assert (labels[7] == 4).all()  # the last requested class wins where classes overlap
    assert (read_oct_mask(path, ("vasa_vasorum", "lumen"))[7] == 2).all()
    lipid = read_oct_mask(path, ("lipid_core",))
    assert set(np.unique(lipid)) == {0, 1} and (lipid[4] == 1).all() and (lipid[0] == 0).all()


def test_read_oct_mask_accepts_zero_one_channels(tmp_path):
    channels = np.zeros((6, 6, 4), dtype=np.uint8)
    channels[:3, :, 2] = 1
    path = tmp_path / "m.tiff"
    tifffile.imwrite(path, channels, photometric="rgb", extrasamples=("unassalpha",), compression="lzw")
    assert read_oct_mask(path).sum() == 18


def test_read_oct_mask_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="missing.tiff"):
        read_oct_mask(tmp_path / "missing.tiff")
    corrupt = tmp_path / "corrupt.tiff"
    corrupt.write_bytes(b"II*\x00 this is not a tiff")
    with pytest.raises(DataError, match="corrupt.tiff"):
        read_oct_mask(corrupt)
    resampled = np.full((4, 4, 4), 128, dtype=np.uint8)
    path = tmp_path / "resampled.tiff"
    tifffile.imwrite(path, resampled, photometric="rgb", extrasamples=("unassalpha",))
    with pytest.raises(DataError, match="resampled.tiff"):
        read_oct_mask(path)
    with pytest.raises(ValueError, match="classes"):
        read_oct_mask(path, ("plaque",))


def test_read_oct_mask_single_channel_label_maps(tmp_path):
    binary = np.zeros((5, 5), dtype=np.uint8)
    binary[1:3] = 255
    with pytest.warns(UserWarning, match="0/255"):
        labels = read_oct_mask(save_png(tmp_path / "b.png", binary))
    np.testing.assert_array_equal(labels, binary // 255)
    indices = np.array([[0, 1, 2]], dtype=np.uint8)
    labels = read_oct_mask(save_png(tmp_path / "i.png", indices), ("lumen", "lipid_core"))
    np.testing.assert_array_equal(labels, indices)


# ------------------------------------------------------------------------------------------------ layouts


def test_flat_layout(flat_root):
    pairs = find_oct_pairs(flat_root)
    assert len(pairs) == 15
    assert pairs["fold"].isna().all() and pairs["split"].isna().all()
    assert sorted(pairs["patient"].unique()) == ["001", "002", "003", "004", "005"]
    assert pairs["frame"].tolist()[:3] == [1, 4, 7]
    for row in pairs.itertuples():
        assert Path(row.image_path).stem == Path(row.mask_path).stem == row.id


def test_fold_layout(fold_root):
    pairs = find_oct_pairs(fold_root)
    assert len(pairs) == 2 * 8  # every frame once per fold
    assert set(pairs["fold"]) == {1, 2} and set(pairs["split"]) == {"train", "test"}
    for _, one_fold in pairs.groupby("fold"):
        train = set(one_fold.loc[one_fold["split"] == "train", "patient"])
        test = set(one_fold.loc[one_fold["split"] == "test", "patient"])
        assert train and test and not train & test
    with pytest.raises(ValueError, match="select one"):
        patient_split(pairs)


def test_plain_folders_with_255_masks_and_any_names(tmp_path):
    for stem in ("010_2_001", "010_2_002", "011_1_001"):
        save_png(tmp_path / "images" / f"{stem}.png", np.full((12, 12, 3), 90, dtype=np.uint8))
        save_png(tmp_path / "masks" / f"{stem}.png", np.tile(np.array([0, 255], dtype=np.uint8), (12, 6)))
    pairs = find_oct_pairs(tmp_path)
    assert pairs["patient"].tolist() == ["010", "010", "011"]
    with pytest.warns(UserWarning, match="0/255"):
        item = OCTDataset(pairs, image_size=None)[0]
    assert set(item["mask"].unique().tolist()) == {0, 1}

    shutil.copytree(tmp_path / "images", tmp_path / "frames_rgb")
    shutil.copytree(tmp_path / "masks", tmp_path / "labels_bin")
    explicit = find_oct_pairs(tmp_path, image_dir="frames_rgb", mask_dir="labels_bin")
    assert explicit["id"].tolist() == pairs["id"].tolist()


def test_unparseable_names_warn_or_use_the_patient_function(tmp_path):
    for stem in ("caseA_slice1", "caseA_slice2", "caseB_slice1"):
        save_png(tmp_path / "images" / f"{stem}.png", np.zeros((4, 4, 3), dtype=np.uint8))
        save_png(tmp_path / "masks" / f"{stem}.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.warns(UserWarning, match="patient"):
        pairs = find_oct_pairs(tmp_path)
    assert pairs["patient"].nunique() == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grouped = find_oct_pairs(tmp_path, patient_from_stem=lambda stem: stem.split("_")[0])
    assert sorted(grouped["patient"].unique()) == ["caseA", "caseB"]


def test_unpaired_files_and_size_mismatch_raise(tmp_path):
    save_png(tmp_path / "images" / "001_1_001.png", np.zeros((8, 8, 3), dtype=np.uint8))
    save_png(tmp_path / "images" / "001_1_002.png", np.zeros((8, 8, 3), dtype=np.uint8))
    save_png(tmp_path / "masks" / "001_1_001.png", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="001_1_002"):
        find_oct_pairs(tmp_path)
    save_png(tmp_path / "masks" / "001_1_002.png", np.zeros((8, 6), dtype=np.uint8))
    save_png(tmp_path / "masks" / "001_1_003.png", np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(DataError, match="001_1_003"):
        find_oct_pairs(tmp_path)
    (tmp_path / "masks" / "001_1_003.png").unlink()
    with pytest.raises(DataError, match="differ in size"):
        find_oct_pairs(tmp_path)


def test_missing_root_and_unknown_layout_raise(tmp_path):
    with pytest.raises(DataError, match="not found"):
        find_oct_pairs(tmp_path / "nowhere")
    (tmp_path / "scans").mkdir()
    with pytest.raises(DataError, match="image_dir"):
        find_oct_pairs(tmp_path)


# ------------------------------------------------------------------------------------------------ split, dataset


def test_patient_split_never_shares_a_patient(flat_root):
    pairs = find_oct_pairs(flat_root)
    for seed in range(4):
        train, val = patient_split(pairs, val_fraction=0.4, seed=seed)
        assert not set(train["patient"]) & set(val["patient"])
        assert len(train) + len(val) == len(pairs)
        assert val["patient"].nunique() == 2
    first, second = patient_split(pairs, 0.4, seed=1), patient_split(pairs, 0.4, seed=1)
    assert first[1]["id"].tolist() == second[1]["id"].tolist()
    with pytest.raises(ValueError, match="val_fraction"):
        patient_split(pairs, val_fraction=1.0)


def test_dataset_item_is_normalised_and_resized(flat_root):
    pairs = find_oct_pairs(flat_root)
    dataset = OCTDataset(pairs, image_size=32)
    item = dataset[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (32, 32) and item["mask"].dtype == torch.int64
    assert item["id"] == pairs["id"][0]
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    unnormalised = item["image"] * std + mean
    assert unnormalised.min() >= -1e-5 and unnormalised.max() <= 1 + 1e-5
    native = OCTDataset(pairs, image_size=None)[0]
    stored = np.asarray(Image.open(pairs["image_path"][0]).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose((native["image"] * std + mean).permute(1, 2, 0).numpy(), stored, atol=1e-5)


def test_dataset_hands_tv_tensors_to_the_transform(flat_root):
    """The one sample protocol of the kit: a dict of tv_tensors in, the same dict out (as for XCA)."""
    pairs = find_oct_pairs(flat_root)
    seen = []

    def flip(sample):
        image, mask = sample["image"], sample["mask"]
        seen.append((type(image), type(mask), image.dtype, mask.dtype))
        return {"image": image.flip(-1), "mask": mask.flip(-1)}

    plain, flipped = OCTDataset(pairs, image_size=32)[4], OCTDataset(pairs, image_size=32, transform=flip)[4]
    assert seen == [(tv_tensors.Image, tv_tensors.Mask, torch.float32, torch.int64)]
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    torch.testing.assert_close(flipped["mask"], plain["mask"].flip(-1))
    assert type(flipped["image"]) is torch.Tensor and type(flipped["mask"]) is torch.Tensor


def test_dataset_rejects_bad_input(flat_root):
    with pytest.raises(ValueError, match="columns"):
        OCTDataset(pd.DataFrame({"id": ["a"]}))
    with pytest.raises(ValueError, match="empty"):
        OCTDataset(find_oct_pairs(flat_root).iloc[:0])


# ------------------------------------------------------------------------------------------------ prepare, loaders


def test_prepare_lipid_dataset_is_idempotent(fold_root, tmp_path):
    dst = tmp_path / "prepared"
    manifest = prepare_lipid_dataset(fold_root, dst, image_size=32)
    assert len(manifest) == 8 and manifest["id"].is_unique
    assert manifest["fold"].notna().all()
    for row in manifest.itertuples():
        mask_path, image_path = dst / row.mask_path, dst / row.image_path
        assert hashlib.sha256(mask_path.read_bytes()).hexdigest() == row.mask_sha256
        assert hashlib.sha256(image_path.read_bytes()).hexdigest() == row.image_sha256
        mask = np.asarray(Image.open(mask_path))
        assert mask.shape == (32, 32) and Image.open(mask_path).mode == "L" and set(np.unique(mask)) <= {0, 1}
        assert row.lipid_core_fraction == pytest.approx(mask.mean())
        assert Image.open(image_path).size == (32, 32)
    stamps = {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file()}
    again = prepare_lipid_dataset(fold_root, dst, image_size=32)
    pd.testing.assert_frame_equal(again, manifest)
    assert {p: p.stat().st_mtime_ns for p in dst.rglob("*") if p.is_file()} == stamps

    (dst / manifest["mask_path"][0]).unlink()  # a damaged derivative is never replaced silently ...
    with pytest.raises(DataError, match="lacks mask/.*overwrite=True"):
        prepare_lipid_dataset(fold_root, dst, image_size=32)
    rebuilt = prepare_lipid_dataset(fold_root, dst, image_size=32, overwrite=True)  # ... but rebuilt byte for byte
    assert rebuilt["mask_sha256"].tolist() == manifest["mask_sha256"].tolist()
    pairs = find_oct_pairs(dst)
    assert len(pairs) == 8 and OCTDataset(pairs, image_size=None)[0]["mask"].shape == (32, 32)


def test_prepare_refuses_foreign_output_folder(flat_root, tmp_path):
    (tmp_path / "img").mkdir()
    with pytest.raises(DataError, match="not written by prepare_lipid_dataset"):
        prepare_lipid_dataset(flat_root, tmp_path, image_size=16)


def test_dataloaders_split_by_patient(flat_root, fold_root):
    config = OCTConfig(image_size=32, val_fraction=0.4, test_fraction=0.2, augment=False)
    loaders = oct_dataloaders(flat_root, config, batch_size=2, seed=0)
    batch = next(iter(loaders["train"]))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["mask"].shape == (2, 32, 32)
    patients = {split: set(loader.dataset.pairs["patient"]) for split, loader in loaders.items()}
    assert all(patients.values())
    assert not (patients["train"] & patients["val"] or patients["train"] & patients["test"]
                or patients["val"] & patients["test"])
    assert sum(len(loader.dataset) for loader in loaders.values()) == 15

    fold_loaders = oct_dataloaders(fold_root, config, batch_size=2, fold=2)
    test_patients = set(find_oct_pairs(fold_root).query("fold == 2 and split == 'test'")["patient"])
    used = set(fold_loaders["train"].dataset.pairs["patient"]) | set(fold_loaders["val"].dataset.pairs["patient"])
    assert used and not used & test_patients
    assert set(fold_loaders["test"].dataset.pairs["patient"]) == test_patients
    with pytest.raises(ValueError, match="available folds"):
        oct_dataloaders(fold_root, config, batch_size=2, fold=7)


def test_cached_frames_equal_fresh_reads_and_skip_the_files(tmp_path):
    write_oct_dataset(tmp_path, num_patients=2, frames_per_patient=2, seed=3, size=48)
    pairs = find_oct_pairs(tmp_path)
    cached, fresh = OCTDataset(pairs, image_size=32), OCTDataset(pairs, image_size=32, cache=False)
    first = [cached[i] for i in range(len(cached))]
    for item, plain in zip(first, (fresh[i] for i in range(len(fresh)))):
        assert torch.equal(item["image"], plain["image"]) and torch.equal(item["mask"], plain["mask"])
    for path in list(pairs["image_path"]) + list(pairs["mask_path"]):
        Path(path).unlink()  # a cached frame never reads its files again
    for index, item in enumerate(first):
        again = cached[index]
        assert torch.equal(again["image"], item["image"]) and torch.equal(again["mask"], item["mask"])
    with pytest.raises((DataError, FileNotFoundError, OSError)):
        fresh[0]
