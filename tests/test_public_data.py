"""Readers of the public angiography layouts, on tiny fixture files written here in each released layout."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medseg_core.data.io import DataError
from medseg_core.data.public import (FORMATS, SYNTAX_SEGMENTS, XCAFramesDataset, binary_mask, detect_format,
                                     read_xca_frames)
from medseg_core.errors import UnknownNameError

SIZE = 48


def _frame(seed: int, bits: int = 8, size: int = SIZE) -> np.ndarray:
    values = np.random.default_rng(seed).uniform(0.3, 0.9, (size, size))
    return (values * (255 if bits == 8 else 65535)).astype(np.uint8 if bits == 8 else np.uint16)


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _square(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _write_arcade(root: Path, task: str, splits=("train", "val", "test")) -> Path:
    """``arcade/<task>/<split>/images/<n>.png`` + ``annotations/<split>.json`` as released on Zenodo 10390295."""
    categories = [{"id": index + 1, "name": name, "supercategory": ""} for index, name in enumerate(SYNTAX_SEGMENTS)]
    categories[19]["id"], categories[4]["id"] = 5, 20  # ids need not follow the segment names ("16" has id 5)
    categories.append({"id": 26, "name": "stenosis", "supercategory": ""})
    for s, split in enumerate(splits):
        folder = root / "arcade" / task / split
        _save(folder / "images" / "1.png", _frame(s))
        _save(folder / "images" / "2.png", _frame(s + 10))
        if task == "syntax":
            annotations = [
                {"id": 1, "image_id": 1, "category_id": 20, "segmentation": [_square(10, 10, 20, 20)]},  # "5"
                {"id": 2, "image_id": 1, "category_id": 5, "segmentation": [_square(30, 5, 40, 45)]},  # "16"
                {"id": 3, "image_id": 1, "category_id": 26, "segmentation": [_square(0, 0, 4, 4)]},  # not a segment
            ]
        else:
            annotations = [{"id": 1, "image_id": 1, "category_id": 26, "segmentation": [_square(10, 10, 20, 20)],
                            "area": 100.0, "bbox": [10, 10, 10, 10], "iscrowd": 0}]
        coco = {"images": [{"id": 1, "file_name": "1.png", "width": SIZE, "height": SIZE},
                           {"id": 2, "file_name": "2.png", "width": SIZE, "height": SIZE}],
                "categories": categories, "annotations": annotations}
        (folder / "annotations").mkdir(parents=True)
        (folder / "annotations" / f"{split}.json").write_text(json.dumps(coco))
    return root


def test_arcade_syntax_union_mask_and_segment_labels(tmp_path):
    root = _write_arcade(tmp_path, "syntax")
    assert detect_format(root) == "arcade-syntax" == detect_format(root / "arcade" / "syntax")
    data = read_xca_frames(root)
    assert data.splits == ["train", "val", "test"] and data.single_frame and len(data.frames) == 6
    train = data.select("train")
    first = train.frames.index[train.frames["id"] == "1/00000"][0]
    mask = train.read_mask(first)
    assert mask.sum() == 100 + 400  # two squares of 10x10 and 10x40 pixels; the stenosis polygon is left out
    assert mask[10:20, 10:20].all() and not mask[20, 10] and not mask[0:4, 0:4].any()
    labels = train.read_labels(first)
    assert set(np.unique(labels)) == {0, SYNTAX_SEGMENTS.index("5") + 1, SYNTAX_SEGMENTS.index("16") + 1}
    assert labels[15, 15] == 5 and labels[20, 35] == 20  # by category name, not category_id
    second = train.frames.index[train.frames["id"] == "2/00000"][0]
    assert train.read_mask(second).sum() == 0  # an image without annotations: an empty mask, kept
    item = XCAFramesDataset(train, window_length=4)[0]  # a one-frame video: the window repeats the frame
    assert item["image"].shape == (1, 4, SIZE, SIZE) and all(torch.equal(f, item["image"][0, 0]) for f in item["image"][0])
    assert data.metadata()["single_frame"] and "repeats" in data.metadata()["windows"]


def test_arcade_stenosis_polygons(tmp_path):
    root = _write_arcade(tmp_path, "stenosis", splits=("train",))
    assert detect_format(root) == "arcade-stenosis"
    data = read_xca_frames(root)
    assert data.format == "arcade-stenosis" and data.read_mask(0).sum() == 100


def test_arcade_unknown_category_is_refused(tmp_path):
    root = _write_arcade(tmp_path, "syntax", splits=("train",))
    path = root / "arcade" / "syntax" / "train" / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    next(category for category in coco["categories"] if category["id"] == 20)["name"] = "cat"  # used by a polygon
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError, match="not an ARCADE segment"):
        read_xca_frames(root)


def test_dca1_pgm_pairs_and_paper_split(tmp_path):
    folder = tmp_path / "Database_134_Angiograms"
    for n in (1, 2, 101):
        _save(folder / f"{n}.pgm", _frame(n, size=30))
        truth = np.zeros((30, 30), np.uint8)
        truth[5:10, :] = 255
        _save(folder / f"{n}_gt.pgm", truth)
    assert (folder / "1.pgm").read_bytes()[:2] == b"P5"  # binary PGM, as released
    assert detect_format(tmp_path) == "dca1"
    data = read_xca_frames(tmp_path)
    assert data.frames["split"].tolist() == ["train", "train", "test"]
    assert data.read_mask(0).sum() == 5 * 30 and data.read_frame(0).shape == (30, 30)


def test_xcad_test_images_and_masks_16_bit(tmp_path):
    base = tmp_path / "XCAD" / "test"
    image = _save(base / "images" / "000_PPA_44_PSA_00_8.png", _frame(0, bits=16))
    truth = np.zeros((SIZE, SIZE), np.uint16)
    truth[:, 7:9] = 65535
    _save(base / "masks" / "000_PPA_44_PSA_00_8.png", truth)
    assert Image.open(image).mode.startswith("I")  # a 16-bit file
    assert detect_format(tmp_path) == "xcad"
    data = read_xca_frames(tmp_path)
    assert data.splits == ["test"] and data.read_mask(0).sum() == 2 * SIZE
    frame = data.read_frame(0)
    assert frame.dtype == np.float32 and 0.29 < frame.min() and frame.max() < 0.91


def test_chuac_frames_resized_to_their_larger_masks(tmp_path):
    base = tmp_path / "angiography"
    for n, suffix in ((1, "png"), (12, "PNG"), (21, "png")):
        _save(base / "Original" / f"{n}.png", _frame(n, size=24))
        truth = np.zeros((SIZE, SIZE), np.uint8)
        truth[10:20, 10:20] = 255
        truth[20, 10:20] = 90  # an anti-aliased edge below half the maximum is background
        _save(base / "Photoshop" / f"angio{n}ok.{suffix}", truth)
    assert detect_format(tmp_path) == "chuac"
    data = read_xca_frames(tmp_path)
    assert data.frames["split"].tolist() == ["train", "train", "test"] and data.read_mask(0).sum() == 100
    item = XCAFramesDataset(data, window_length=2, time_axis=True)[0]
    assert item["image"].shape == (1, 2, SIZE, SIZE) and item["mask"].shape == (1, SIZE, SIZE)
    assert "resized to the mask size" in data.metadata()["notes"][0]


def _write_sequences(root: Path) -> Path:
    for f in range(4):
        frame = np.full((SIZE, SIZE), 50, np.uint8)
        frame[0, f] = 200  # frame f is marked at column f
        _save(root / "train" / "images" / "run1" / f"{f:05d}.png", frame)
    for f in (1, 3):
        truth = np.zeros((SIZE, SIZE), np.uint8)
        truth[f:f + 4, :] = 1
        _save(root / "train" / "masks" / "run1" / f"{f:05d}.png", truth)
    _save(root / "test" / "frames" / "runB" / "00000.png", np.full((SIZE, SIZE), 80, np.uint8))
    _save(root / "test" / "labels" / "runB" / "00000.png", np.eye(SIZE, dtype=np.uint8))
    return root


def test_sequence_folder_windows_follow_the_frames(tmp_path):
    root = _write_sequences(tmp_path)
    assert detect_format(root) == "sequences"
    data = read_xca_frames(root)
    assert not data.single_frame and len(data.labelled) == 3 and len(data.frames) == 5
    dataset = XCAFramesDataset(data.select("train"), window_length=4)
    assert dataset.samples["id"].tolist() == ["run1/00001", "run1/00003"]
    window = dataset[0]["image"][0]  # frames -1..2 around frame 1, the first repeated: 0, 0, 1, 2
    assert [int(torch.argmax(frame[0])) for frame in window] == [0, 0, 1, 2]
    assert dataset[0]["mask"].sum() == 4 * SIZE and dataset[0]["current"] == 2
    native = XCAFramesDataset(data.select("test"), image_size=16, native_masks=True)[0]
    assert native["image"].shape == (1, 1, 16, 16) and native["mask"].shape == (1, SIZE, SIZE)


def test_mosxav_layout_is_read_like_the_kit_reads_it(tmp_path):
    for f in range(3):
        _save(tmp_path / "test" / "JPEGImages" / "v1" / f"{f:05d}.png", _frame(f))
    _save(tmp_path / "test" / "Annotations_Semantic" / "v1" / "00002.png", np.eye(SIZE, dtype=np.uint8))
    assert detect_format(tmp_path) == "mosxav"
    data = read_xca_frames(tmp_path)
    assert data.labelled["id"].tolist() == ["v1/00002"] and data.read_mask(2).sum() == SIZE


@pytest.mark.parametrize(("bits", "values"), [(8, (0, 1)), (8, (0, 255)), (16, (0, 65535)), (16, (0, 255))])
def test_binary_mask_reads_every_storage(tmp_path, bits, values):
    array = np.full((8, 8), values[0], np.uint8 if bits == 8 else np.uint16)
    array[:2] = values[1]
    assert binary_mask(_save(tmp_path / "m.png", array)).sum() == 16


def test_bad_folders_say_what_was_expected(tmp_path):
    with pytest.raises(DataError, match="no known angiography layout.*arcade-syntax"):
        detect_format(tmp_path)
    with pytest.raises(UnknownNameError, match="formats: " + ", ".join(FORMATS)):
        read_xca_frames(tmp_path, format="drive")
    folder = tmp_path / "Database_134_Angiograms"
    _save(folder / "3_gt.pgm", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match="has no image"):
        read_xca_frames(tmp_path, format="dca1")
