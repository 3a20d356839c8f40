"""The public angiography data sets in their released layouts: one reader each, one frame table, one dataset.

Every reader returns an :class:`XCAFrames`: a table with one row per frame (``split``, ``video``, ``frame``,
``id``, the image file and its label source) that :class:`XCAFramesDataset` turns into the samples of
:class:`~medseg_core.data.xca.XCAWindowDataset` (``{"image": (1, T, H, W), "mask": (1, H, W), "id", "current"}``,
prepared by the same :func:`~medseg_core.data.preprocess.preprocess_xca`), so training, evaluation and the
classical filters read any of them like the kit's own MOSXAV-layout folders. Single-frame data sets become
one-frame videos: every window repeats the frame T times (replicate padding of
:func:`~medseg_core.data.xca.window_indices`), which :meth:`XCAFrames.metadata` states (``single_frame``).

Layouts (each reader's docstring gives the details and the source it was checked against):

========================  =====================================================================================
``arcade-syntax``         ARCADE (Popov et al., Sci Data 2024; Zenodo 10390295): ``syntax/{train,val,test}/``
                          ``images/<n>.png`` + ``annotations/<split>.json`` (COCO polygons of 25 SYNTAX segments)
``arcade-stenosis``       the same under ``stenosis/`` (polygons of stenotic segments, category "stenosis")
``dca1``                  DCA1 (Cervantes-Sanchez et al., Appl Sci 2019): ``Database_134_Angiograms/<n>.pgm`` +
                          ``<n>_gt.pgm``
``xcad``                  XCAD (Ma et al., ICCV 2021): ``test/images/<name>.png`` + ``test/masks/<name>.png``
``chuac``                 CHUAC (Carballal et al., BSPC 2018): ``Original/<n>.png`` + ``Photoshop/angio<n>ok.png``
``sequences``             densely or sparsely labelled runs: ``[<split>/]{images,frames}/<run>/<frame>.png`` +
                          ``[<split>/]{masks,labels}/<run>/<frame>.png``
``mosxav``                the kit's own layout (:mod:`medseg_core.data.xca`): ``[<split>/]JPEGImages/<video>/`` +
                          ``Annotations_Semantic/<video>/``
========================  =====================================================================================

:func:`detect_format` names the layout of a folder; :func:`read_xca_frames` reads it. Masks stored as images are
binarised by one rule (:func:`binary_mask`): a pixel is vessel when it is at least half the mask's own maximum, so
0/1, 0/255, 0/65535 and anti-aliased drawn masks all read right. Polygons are filled by pixel centre
(:func:`rasterize_polygons`), COCO's convention: a square with corners (10, 10) and (20, 20) covers 100 pixels.
Downloads (only where the licence allows) are :mod:`medseg_core.data.download`.
"""
from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from skimage.draw import polygon as fill_polygon
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..config import XCAConfig
from .cache import check_complete
from .io import IMAGE_SUFFIXES, DataError, image_size, list_images, read_image
from .preprocess import SampleTransform, preprocess_xca
from .xca import (FRAMES_DIR, MASKS_DIR, SPLITS, _train_transform, carve_runs, current_frame_position,
                  every_kth_sample, split_loader, window_indices)

__all__ = [
    "FORMATS",
    "SYNTAX_SEGMENTS",
    "XCAFrames",
    "XCAFramesDataset",
    "SCORE_MEANING",
    "training_splits",
    "xca_frames_dataloaders",
    "write_synthetic_dca1",
    "binary_mask",
    "rasterize_polygons",
    "detect_format",
    "read_xca_frames",
    "read_arcade",
    "read_dca1",
    "read_xcad",
    "read_chuac",
    "read_sequences",
    "read_mosxav",
]

SYNTAX_SEGMENTS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "9a", "10", "10a", "11", "12", "12a",
                                    "13", "14", "14a", "15", "16", "16a", "16b", "16c", "12b", "14b")
"""ARCADE's 25 SYNTAX segment names, in the order of the per-segment label map (label ``i + 1``)."""
STENOSIS = "stenosis"
FRAME_DIRS = ("images", "frames")
LABEL_DIRS = ("masks", "labels")
FRAME_COLUMNS = ("split", "video", "frame", "id", "image", "mask", "shapes")


@dataclass(frozen=True)
class XCAFrames:
    """The frames of one angiography data set as one table; pixels are read on demand.

    Attributes:
        format: the reader's name (one of :data:`FORMATS`).
        root: the folder read.
        frames: one row per frame: ``split`` ("train", "val", "test", or "" where the release has no split),
            ``video`` (run; the image name for single-frame sets), ``frame`` (order within the video), ``id``
            (``"<video>/<frame:05d>"``, the kit's case id), ``image`` (path), ``mask`` (path, "" for an unlabelled
            frame or a polygon label) and ``shapes`` (polygons ``[(label, (N, 2) x/y array), ...]``, else None).
        single_frame: every video is one frame (windows repeat it).
        layout: the layout read and where it was documented.
        label_names: names of the labels in :meth:`read_labels` (ARCADE syntax: the 25 segments), else ().
        resize_frames_to_masks: frames stored at another size than their masks are resized to the mask's size
            (CHUAC's released images); otherwise a size mismatch is an error.
    """

    format: str
    root: Path
    frames: pd.DataFrame
    single_frame: bool
    layout: str
    label_names: tuple[str, ...] = ()
    resize_frames_to_masks: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def splits(self) -> list[str]:
        """The splits present, in train/val/test order ("" for a release without splits)."""
        present = set(self.frames["split"])
        return [name for name in ("", *SPLITS) if name in present]

    @property
    def runs(self) -> list[str]:
        """The labelled runs as ``"<split>/<video>"`` keys (``"/<video>"`` without a split), in table order."""
        labelled = self.labelled
        return list(dict.fromkeys(labelled["split"] + "/" + labelled["video"]))

    def select_runs(self, runs: Sequence[str]) -> "XCAFrames":
        """The frames of the runs ``runs`` (keys as in :attr:`runs`), labelled or not."""
        keys = self.frames["split"] + "/" + self.frames["video"]
        return replace(self, frames=self.frames[keys.isin(set(runs))].reset_index(drop=True))

    @property
    def labelled(self) -> pd.DataFrame:
        """The rows with a label (mask file or polygons)."""
        return self.frames[(self.frames["mask"] != "") | self.frames["shapes"].notna()]

    def select(self, split: str) -> "XCAFrames":
        """The frames of one split; KeyError naming the splits present."""
        if split not in self.splits:
            raise KeyError(f"{self.format} data in {self.root} has no split {split!r}; splits: {self.splits}")
        return replace(self, frames=self.frames[self.frames["split"] == split].reset_index(drop=True))

    def read_frame(self, index: int) -> np.ndarray:
        """Frame of row ``index`` as ``(H, W)``: uint8 for 8-bit files, float32 in [0, 1] for 16-bit ones."""
        return read_image(self.frames.at[index, "image"], "L", exact=True)

    def read_labels(self, index: int) -> np.ndarray:
        """Label map ``(H, W)`` uint8 of row ``index``: per-segment labels (1..len(label_names)) for polygon data
        with ``label_names``, else the binary mask. DataError if the frame has no label."""
        row = self.frames.loc[index]
        if row["shapes"] is not None:
            return rasterize_polygons(row["shapes"], image_size(row["image"]))
        if row["mask"] == "":
            raise DataError(f"frame {row['id']} ({row['image']}) has no label")
        return binary_mask(row["mask"])

    def read_mask(self, index: int) -> np.ndarray:
        """Binary vessel (or stenosis) mask ``(H, W)`` uint8 in {0, 1} of row ``index``: the union of its labels."""
        return (self.read_labels(index) > 0).astype(np.uint8)

    def metadata(self) -> dict[str, Any]:
        """What an evaluation or a training run should record about these data (plain values)."""
        return {"format": self.format, "root": str(self.root), "layout": self.layout,
                "splits": {split or "(none)": int((self.labelled["split"] == split).sum()) for split in self.splits},
                "videos": int(self.frames["video"].nunique()), "labelled_frames": len(self.labelled),
                "single_frame": self.single_frame,
                "windows": "each window repeats its one frame (replicate padding)" if self.single_frame else
                           "windows of neighbouring frames, replicate padding at the ends",
                "what_a_score_means": SCORE_MEANING[self.format], "notes": list(self.notes)}


def _table(rows: list[dict[str, Any]], root: Path, what: str) -> pd.DataFrame:
    if not rows:
        raise DataError(f"no labelled frames found in {root} for {what}")
    table = pd.DataFrame(rows)
    for column, default in (("mask", ""), ("shapes", None)):
        if column not in table:
            table[column] = default
    table["shapes"] = table["shapes"].astype(object).where(table["shapes"].notna(), None)
    table["id"] = [f"{video}/{frame:05d}" for video, frame in zip(table["video"], table["frame"])]
    order = {split: rank for rank, split in enumerate(("", *SPLITS))}
    table = table.sort_values(["split", "video", "frame"], kind="stable", key=lambda column: (
        column.map(order) if column.name == "split" else
        column.map(lambda name: _natural_key(Path(name))) if column.name == "video" else column)).reset_index(drop=True)
    duplicated = table.duplicated(["split", "id"])
    if duplicated.any():
        raise DataError(f"{root}: two frames share the id {table.loc[duplicated, 'id'].iloc[0]!r} in one split")
    return table.loc[:, list(FRAME_COLUMNS)]


# ----------------------------------------------------------------------------------------------------------------
# Masks and polygons
# ----------------------------------------------------------------------------------------------------------------
def binary_mask(path: str | Path) -> np.ndarray:
    """A mask image as ``(H, W)`` uint8 in {0, 1}: pixels at least half the mask's own maximum are 1.

    Reads 8/16-bit grayscale, palette, 1-bit and RGB (gray) files, PNG or PGM; an all-zero mask stays zero.

    Raises:
        DataError: the file is missing, unreadable or a lossy JPEG (its edges are not labels).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raise DataError(f"mask {path} is a lossy JPEG, whose compression alters the labels along every edge; "
                        "use the PNG/PGM masks of the release")
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("L") if image.mode in ("RGB", "RGBA", "P", "LA") else image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"cannot read mask {path}: {error}") from error
    if array.ndim != 2:
        raise DataError(f"mask {path} has shape {array.shape}; expected one (H, W) label image")
    peak = array.max(initial=0)
    return (array >= peak / 2).astype(np.uint8) if peak > 0 else np.zeros(array.shape, np.uint8)


def rasterize_polygons(shapes: Sequence[tuple[int, np.ndarray]], size: tuple[int, int]) -> np.ndarray:
    """Fill polygons into a ``(H, W)`` uint8 label map, each with its label (later polygons on top).

    A pixel ``(row, col)`` is inside when its centre ``(col + 0.5, row + 0.5)`` is (COCO's pixel convention), so a
    polygon covers its area in pixels. ``shapes``: ``[(label, (N, 2) array of x, y vertices), ...]``.
    """
    labels = np.zeros(size, np.uint8)
    for label, vertices in shapes:
        rows, cols = fill_polygon(vertices[:, 1] - 0.5, vertices[:, 0] - 0.5, shape=size)
        labels[rows, cols] = label
    return labels


# ----------------------------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------------------------
def _find(root: Path, candidates: Sequence[str]) -> Path | None:
    """The first of ``root`` and ``root/<candidate>`` that exists as a folder, else None."""
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    return None


def _arcade_task_root(root: Path, task: str) -> Path:
    """``arcade/<task>`` from ``arcade/``, ``arcade/<task>`` or the unpacked archive's parent."""
    for candidate in (root / task, root / "arcade" / task, root):
        if any((candidate / split / "images").is_dir() for split in SPLITS):
            return candidate
    raise DataError(f"no ARCADE {task} data in {root}: expected {task}/{{train,val,test}}/images/*.png and "
                    f"{task}/<split>/annotations/<split>.json (Zenodo 10390295, unpacked)")


def _coco_json(folder: Path) -> Path:
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() == ".json") if folder.is_dir() else []
    if len(files) != 1:
        raise DataError(f"expected one COCO .json file in {folder}, found {[p.name for p in files]}")
    return files[0]


def _coco_polygons(annotation: dict[str, Any], path: Path) -> list[np.ndarray]:
    segmentation = annotation.get("segmentation")
    if not isinstance(segmentation, list) or not all(isinstance(part, list) for part in segmentation):
        raise DataError(f"{path}: annotation {annotation.get('id')} has segmentation {str(segmentation)[:60]}; "
                        "expected COCO polygons [[x1, y1, x2, y2, ...], ...] (RLE is not used by ARCADE)")
    polygons = []
    for part in segmentation:
        if len(part) < 6 or len(part) % 2:
            raise DataError(f"{path}: annotation {annotation.get('id')} has a polygon of {len(part)} numbers; "
                            "a polygon needs at least three x, y pairs")
        polygons.append(np.asarray(part, dtype=np.float64).reshape(-1, 2))
    return polygons


def read_arcade(root: str | Path, task: str = "syntax") -> XCAFrames:
    """ARCADE, syntax (vessel segments) or stenosis, as single frames with polygon labels.

    Layout (Zenodo record 10390295, "ARCADE ... Dataset", version COCO, described on the record's page; also the
    layout torch_em and torch-arcade read)::

        arcade/{syntax,stenosis}/{train,val,test}/images/<n>.png          512 x 512 frames
        arcade/{syntax,stenosis}/{train,val,test}/annotations/<split>.json

    Each JSON is COCO: ``images`` (``id``, ``file_name``, ``width``, ``height``), ``categories`` (``id``,
    ``name``: the SYNTAX segment "1" ... "16c", "12b", "14b", or "stenosis") and ``annotations`` (``image_id``,
    ``category_id``, ``segmentation``: polygons ``[[x1, y1, x2, y2, ...]]`` in pixels). Segments are identified by
    category **name**, never by ``category_id`` (the ids do not follow the segment numbers). ``root`` may be the
    unpacked archive's folder, ``arcade/``, or ``arcade/<task>``.

    Syntax: the binary mask is the union of the 25 segment polygons (the full vessel tree, what binary
    benchmarks score); :meth:`XCAFrames.read_labels` gives the per-segment map (label ``i + 1`` =
    ``SYNTAX_SEGMENTS[i]``). Stenosis: the union of the "stenosis" polygons. Images without annotations are kept
    with an empty mask. Small side branches are not always annotated: precision is biased low, so read recall and
    clDice beside Dice.
    """
    if task not in ("syntax", STENOSIS):
        raise ValueError(f"task must be 'syntax' or 'stenosis', got {task!r}")
    base = _arcade_task_root(Path(root), task)
    names = SYNTAX_SEGMENTS if task == "syntax" else (STENOSIS,)
    rows = []
    for split in SPLITS:
        images_dir = base / split / "images"
        if not images_dir.is_dir():
            continue
        path = _coco_json(base / split / "annotations")
        try:
            coco = json.loads(path.read_text(encoding="utf-8"))
            categories = {entry["id"]: entry["name"] for entry in coco["categories"]}
            images = {entry["id"]: entry["file_name"] for entry in coco["images"]}
            annotations = coco["annotations"]
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path} is not a COCO file with images, categories and annotations ({error!r})") from error
        shapes: dict[int, list[tuple[int, np.ndarray]]] = {image_id: [] for image_id in images}
        for annotation in annotations:
            name = categories.get(annotation.get("category_id"))
            if annotation.get("image_id") not in images:
                raise DataError(f"{path}: annotation {annotation.get('id')} names image {annotation.get('image_id')}, "
                                "which is not in its images list")
            if name in names:
                label = names.index(name) + 1
                shapes[annotation["image_id"]] += [(label, part) for part in _coco_polygons(annotation, path)]
            elif name not in (*SYNTAX_SEGMENTS, STENOSIS):
                raise DataError(f"{path}: category {annotation.get('category_id')} is named {name!r}, not an ARCADE "
                                f"segment or 'stenosis'; is this an ARCADE {task} file?")
        for image_id, file_name in images.items():
            image_path = images_dir / file_name
            if not image_path.is_file():
                raise DataError(f"{path} lists {file_name}, which is not in {images_dir}")
            rows.append({"split": split, "video": Path(file_name).stem, "frame": 0, "image": str(image_path),
                         "shapes": shapes[image_id]})
    return XCAFrames(f"arcade-{task}", Path(root), _table(rows, base, f"ARCADE {task}"), single_frame=True,
                     layout=f"ARCADE {task}: <split>/images/<n>.png + <split>/annotations/<split>.json (COCO polygons; "
                            "Zenodo 10390295)",
                     label_names=names if task == "syntax" else ())


def _numbered_stem(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


def read_dca1(root: str | Path) -> XCAFrames:
    """DCA1: 134 angiograms of 300 x 300 px with expert vessel masks, as single frames.

    Layout (the archive DB_Angiograms_134.zip of the authors' page personal.cimat.mx/~ivan.cruz/DB_Angiograms.html,
    as torch_em and other public readers open it)::

        Database_134_Angiograms/<n>.pgm       n = 1 ... 134, 8-bit gray
        Database_134_Angiograms/<n>_gt.pgm    the expert mask (0/255)

    ``root`` may be that folder or its parent. Split as the dataset paper (Cervantes-Sanchez et al., Appl Sci 9:
    5507, 2019) and its public users: images 1-100 "train", 101-134 "test"; there is no validation split.
    """
    root = Path(root)
    folder = _find(root, ("Database_134_Angiograms",)) or root
    masks = {path.stem.removesuffix("_gt"): path for path in folder.glob("*_gt.pgm")}
    if not masks:
        raise DataError(f"no DCA1 masks (<n>_gt.pgm) in {folder}; expected Database_134_Angiograms/<n>.pgm + "
                        "<n>_gt.pgm")
    rows = []
    for stem, mask_path in sorted(masks.items(), key=lambda item: _numbered_stem(Path(item[0]))):
        image_path = folder / f"{stem}.pgm"
        if not image_path.is_file():
            raise DataError(f"DCA1 mask {mask_path} has no image {image_path}")
        split = "train" if stem.isdigit() and int(stem) <= 100 else "test"
        rows.append({"split": split, "video": stem, "frame": 0, "image": str(image_path), "mask": str(mask_path)})
    return XCAFrames("dca1", root, _table(rows, folder, "DCA1"), single_frame=True,
                     layout="DCA1: Database_134_Angiograms/<n>.pgm + <n>_gt.pgm (authors' archive); 1-100 train, "
                            "101-134 test")


def read_xcad(root: str | Path) -> XCAFrames:
    """XCAD: the 126 expert-labelled test angiograms (512 x 512) of the self-supervised XCAD set, single frames.

    Layout (XCAD.zip linked from github.com/AISIGSJTU/SSVS, as its and DARL's data loaders read it)::

        XCAD/test/images/<name>.png     angiograms
        XCAD/test/masks/<name>.png      expert vessel masks, same file names
        XCAD/train/trainB/*.png         unlabelled angiograms (not read: no labels)

    ``root`` may be ``XCAD/`` or its parent. Only the test split is labelled, so there is no training or
    validation split (DARL validates on the first 12 test images; the kit does not).
    """
    root = Path(root)
    base = _find(root, ("XCAD",)) or root
    images_dir, masks_dir = base / "test" / "images", base / "test" / "masks"
    if not (images_dir.is_dir() and masks_dir.is_dir()):
        raise DataError(f"no XCAD test data in {root}: expected XCAD/test/images/*.png + XCAD/test/masks/*.png")
    masks = {path.stem: path for path in list_images(masks_dir)}
    rows = []
    for image_path in list_images(images_dir):
        if image_path.stem not in masks:
            raise DataError(f"XCAD image {image_path} has no mask {masks_dir / image_path.name}")
        rows.append({"split": "test", "video": image_path.stem, "frame": 0, "image": str(image_path),
                     "mask": str(masks[image_path.stem])})
    return XCAFrames("xcad", root, _table(rows, base, "XCAD"), single_frame=True,
                     layout="XCAD: test/images/<name>.png + test/masks/<name>.png (SSVS release); test only")


def read_chuac(root: str | Path) -> XCAFrames:
    """CHUAC: 30 angiograms with expert masks, single frames.

    Layout (the figshare release of Carballal et al., BSPC 2018, as the public Medical_Segmentation_Benchmark
    reader opens it)::

        angiography/Original/<n>.png          n = 1 ... 30, stored smaller than the masks (189 x 189)
        angiography/Photoshop/angio<n>ok.png  expert masks, 512 x 512 (suffix .png or .PNG)
        angiography/Hemotool/...              semi-automatic masks (not read)

    ``root`` may be ``angiography/`` or its parent. Frames are resized (antialiased bilinear) to their mask's size
    before preprocessing, as that reader does, and this is stated in the metadata. Split as its public users:
    1-20 "train", 21-30 "test".
    """
    root = Path(root)
    base = _find(root, ("angiography",)) or root
    originals, expert = base / "Original", base / "Photoshop"
    if not (originals.is_dir() and expert.is_dir()):
        raise DataError(f"no CHUAC data in {root}: expected angiography/Original/<n>.png + "
                        "angiography/Photoshop/angio<n>ok.png")
    masks = {m["n"]: path for path in expert.iterdir() if (m := re.fullmatch(r"angio(?P<n>\d+)ok\.png", path.name,
                                                                              re.IGNORECASE))}
    rows = []
    for image_path in sorted(list_images(originals), key=_numbered_stem):
        if image_path.stem not in masks:
            raise DataError(f"CHUAC image {image_path} has no expert mask {expert / f'angio{image_path.stem}ok.png'}")
        split = "train" if image_path.stem.isdigit() and int(image_path.stem) <= 20 else "test"
        rows.append({"split": split, "video": image_path.stem, "frame": 0, "image": str(image_path),
                     "mask": str(masks[image_path.stem])})
    return XCAFrames("chuac", root, _table(rows, base, "CHUAC"), single_frame=True, resize_frames_to_masks=True,
                     layout="CHUAC: Original/<n>.png + Photoshop/angio<n>ok.png (figshare release); 1-20 train, "
                            "21-30 test",
                     notes=("frames are stored smaller than their masks and are resized to the mask size",))


def _split_folders(root: Path, is_split: Callable[[Path], bool]) -> list[tuple[str, Path]]:
    """``[(split, folder)]``: ``root`` itself ("" split) or its ``train/val/test`` sub-folders."""
    if is_split(root):
        return [("", root)]
    return [(split, root / split) for split in SPLITS if is_split(root / split)]


def _natural_key(path: Path) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.stem))


def _run_rows(split: str, run: str, frame_paths: list[Path], label_paths: dict[str, Path]) -> list[dict[str, Any]]:
    ordered = sorted(frame_paths, key=_natural_key)
    sizes = {image_size(path) for path in ordered}
    if len(sizes) > 1:
        raise DataError(f"frames of run {run} ({ordered[0].parent}) differ in size: {sorted(sizes)}")
    numbers = [int(p.stem) if p.stem.isdigit() else index for index, p in enumerate(ordered)]
    unknown = sorted(set(label_paths) - {path.stem for path in ordered})
    if unknown:
        raise DataError(f"masks {unknown[:5]} of run {run} have no frame with the same name in {ordered[0].parent}")
    return [{"split": split, "video": run, "frame": number, "image": str(path),
             "mask": str(label_paths.get(path.stem, ""))} for number, path in zip(numbers, ordered)]


def read_sequences(root: str | Path) -> XCAFrames:
    """Labelled angiography runs in plain folders (any number of labelled frames per run).

    Layout (the kit's generic layout, for data without a reader of its own)::

        [<split>/]images/<run>/<frame>.png    frames (or frames/<run>/; .png/.jpg/.tif/.pgm, 8 or 16 bit)
        [<split>/]masks/<run>/<frame>.png     masks with the frame's file stem (or labels/<run>/)

    Frames are ordered by the numbers in their names; unlabelled frames still feed the windows of their
    neighbours. ``<split>`` is train/val/test (optional).
    """
    root = Path(root)

    def dirs(folder: Path) -> tuple[Path | None, Path | None]:
        return _find(folder, FRAME_DIRS), _find(folder, LABEL_DIRS)

    folders = _split_folders(root, lambda folder: all(dirs(folder)))
    if not folders:
        raise DataError(f"no sequence layout in {root}: expected [<split>/]images/<run>/<frame>.png + "
                        "[<split>/]masks/<run>/<frame>.png (or frames/ and labels/)")
    rows = []
    for split, folder in folders:
        frames_dir, labels_dir = dirs(folder)
        runs = sorted(p for p in frames_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not runs:
            raise DataError(f"no run folders in {frames_dir}; expected {frames_dir.name}/<run>/<frame>.png")
        for run in runs:
            labels = {p.stem: p for p in list_images(labels_dir / run.name)} if (labels_dir / run.name).is_dir() else {}
            rows += _run_rows(split, run.name, list_images(run), labels)
    table = _table(rows, root, "the sequence layout")
    return XCAFrames("sequences", root, table, single_frame=bool((table.groupby(["split", "video"]).size() == 1).all()),
                     layout="sequences: [<split>/]images/<run>/<frame>.png + [<split>/]masks/<run>/<frame>.png")


def read_mosxav(root: str | Path) -> XCAFrames:
    """The kit's MOSXAV/DAVIS layout (:mod:`medseg_core.data.xca`): a split folder or a root of split folders.

    Layout (MOSXAV's release, and what :func:`~medseg_core.data.synthetic_xca.write_xca_dataset` writes)::

        [<split>/]JPEGImages/<video>/00000.png            frames named by number
        [<split>/]Annotations_Semantic/<video>/00000.png  masks of the labelled frames
    """
    root = Path(root)
    folders = _split_folders(root, lambda folder: (folder / FRAMES_DIR).is_dir())
    if not folders:
        raise DataError(f"no {FRAMES_DIR}/ folder in {root} or its train/val/test folders")
    rows = []
    for split, folder in folders:
        for run in sorted(p for p in (folder / FRAMES_DIR).iterdir() if p.is_dir() and not p.name.startswith(".")):
            masks_dir = folder / MASKS_DIR / run.name
            labels = {p.stem: p for p in list_images(masks_dir)} if masks_dir.is_dir() else {}
            rows += _run_rows(split, run.name, list_images(run), labels)
    table = _table(rows, root, "the MOSXAV layout")
    return XCAFrames("mosxav", root, table, single_frame=bool((table.groupby(["split", "video"]).size() == 1).all()),
                     layout=f"MOSXAV: [<split>/]{FRAMES_DIR}/<video>/<n>.png + {MASKS_DIR}/<video>/<n>.png")


_SINGLE_FRAMES = ("Single frames: every window repeats the frame, so SVSnet's temporal fusion sees no motion and a "
                  "score says nothing about what the window adds.")
SCORE_MEANING: dict[str, str] = {
    "arcade-syntax": "Expert polygons of the 25 SYNTAX segments, their union the full tree. Small side branches are "
                     "not always drawn (partial labels): a model that finds them loses precision without being wrong, "
                     "so read recall and clDice beside Dice. Published ARCADE scores use the released test split. "
                     + _SINGLE_FRAMES,
    "arcade-stenosis": "Polygons of the stenotic segments only: a vessel model scored here is scored on stenoses, "
                       "not on vessels; the layout is for stenosis models. " + _SINGLE_FRAMES,
    "dca1": "Expert masks of 134 small (300 x 300) frames, the paper's split 1-100 / 101-134; the release does not "
            "say which frames share a patient, so test frames may share patients with training frames. "
            + _SINGLE_FRAMES,
    "xcad": "The 126 expert-labelled frames are released as a test set (the training frames are unlabelled): scored "
            "whole it is that test set; trained on, it is cut by frame and its test part is no longer comparable with "
            "published XCAD scores. " + _SINGLE_FRAMES,
    "chuac": "30 frames stored smaller (189 x 189) than their 512 x 512 expert masks and upsampled to them: the masks "
             "can hold detail the frames lost. 20 / 10 split of its public users: 10 test frames give a wide "
             "interval. " + _SINGLE_FRAMES,
    "sequences": "Runs labelled by whoever made the masks, and that sets what a score means: masks made by a model "
                 "(pseudo-labels) measure agreement with that model, not accuracy; runs of one patient give scores "
                 "that are not patient-independent (intervals resample runs, not patients).",
    "mosxav": "Runs in the kit's layout: expert masks on real MOSXAV (every 5th training frame, every test frame), "
              "exact masks on the kit's synthetic data, which say nothing about real angiograms.",
}
"""What a score on each layout can and cannot mean (label source, partial labels, splits, single frames): said by
``medseg evaluate`` (``evaluation.json``) and notebook 10."""

_READERS: dict[str, Callable[[Path], XCAFrames]] = {
    "arcade-syntax": lambda root: read_arcade(root, "syntax"),
    "arcade-stenosis": lambda root: read_arcade(root, STENOSIS),
    "dca1": read_dca1,
    "xcad": read_xcad,
    "chuac": read_chuac,
    "sequences": read_sequences,
    "mosxav": read_mosxav,
}
FORMATS: tuple[str, ...] = tuple(_READERS)


def _images_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (none if it is missing)."""
    return [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES] if folder.is_dir() else []


def detect_format(root: str | Path) -> str:
    """The layout of ``root`` (one of :data:`FORMATS`), from its folder and file names alone.

    ARCADE folders holding both tasks are read as "arcade-syntax" (the vessel task); pass the format to choose.

    Raises:
        DataError: ``root`` is missing or matches no layout (the message lists them).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    for task in ("syntax", STENOSIS):
        for candidate in (root / task, root / "arcade" / task):
            if any((candidate / split / "annotations").is_dir() for split in SPLITS):
                return f"arcade-{task}"
    if any((root / split / "annotations").is_dir() and (root / split / "images").is_dir() for split in SPLITS):
        return "arcade-stenosis" if root.name == STENOSIS else "arcade-syntax"
    if (root / "Database_134_Angiograms").is_dir() or any(root.glob("*_gt.pgm")):
        return "dca1"
    if any((folder / "test" / "masks").is_dir() and any(_images_in(folder / "test" / "images"))
           for folder in (root, root / "XCAD")):
        return "xcad"
    if any((folder / "Original").is_dir() and (folder / "Photoshop").is_dir() for folder in (root, root / "angiography")):
        return "chuac"
    if _split_folders(root, lambda folder: (folder / FRAMES_DIR).is_dir()):
        return "mosxav"
    if _split_folders(root, lambda folder: bool(_find(folder, FRAME_DIRS) and _find(folder, LABEL_DIRS))):
        return "sequences"
    raise DataError(f"no known angiography layout in {root}; formats: {', '.join(FORMATS)} (see "
                    "medseg_core.data.public), or pass --format")


def read_xca_frames(root: str | Path, format: str | None = None) -> XCAFrames:
    """Read ``root`` with the reader of ``format`` (default: :func:`detect_format`).

    Raises:
        UnknownNameError: (a KeyError) an unknown format; the message lists them.
        DataError: the folder does not hold that layout, or a file is missing or unreadable.
    """
    from ..errors import UnknownNameError

    name = format or detect_format(root)
    if name not in _READERS:
        raise UnknownNameError(f"unknown data format {name!r}; formats: {', '.join(FORMATS)}")
    if not Path(root).is_dir():
        raise DataError(f"data folder not found: {root}")
    return _READERS[name](Path(root))


# ----------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------
class XCAFramesDataset(Dataset):
    """The samples of :class:`~medseg_core.data.xca.XCAWindowDataset` from any :class:`XCAFrames`.

    One item per labelled frame: ``{"image": (1, T, H, W) float32 in [0, 1] ((T, H, W) with time_axis=False),
    "mask": (1, H, W) float32 in {0, 1}, "id": "<video>/<frame:05d>", "current": position of the frame in the
    window}``. Windows follow :func:`~medseg_core.data.xca.window_indices` (a one-frame video repeats its frame).

    Args:
        data: the frames (e.g. ``read_xca_frames(root).select("test")``).
        window_length, window_policy, transform, time_axis, image_size: as for ``XCAWindowDataset``.
        native_masks: keep masks at their stored size (frames still resized to ``image_size``), to score
            predictions at the data set's own resolution; incompatible with ``transform``.
    """

    def __init__(self, data: XCAFrames, window_length: int = 1, window_policy: str = "centre",
                 transform: SampleTransform | None = None, time_axis: bool = True,
                 image_size: int | tuple[int, int] | None = None, native_masks: bool = False) -> None:
        if native_masks and transform is not None:
            raise ValueError("native_masks=True keeps masks at their stored size, so no joint transform can apply")
        self.data = data
        self.window_length = window_length
        self.window_policy = window_policy
        self.current_frame_position = current_frame_position(window_length, window_policy)
        self.transform = transform
        self.time_axis = time_axis
        self.image_size = image_size
        self.native_masks = native_masks
        frames = data.frames
        self._videos = {key: group.index.to_list() for key, group in frames.groupby(["split", "video"], sort=False)}
        labelled = set(data.labelled.index)
        self._items = [(key, position) for key, rows in self._videos.items()
                       for position, row in enumerate(rows) if row in labelled]
        if not self._items:
            raise DataError(f"{data.format} data in {data.root} has no labelled frame in this selection")
        self.samples = pd.DataFrame([{"split": key[0], "video": key[1], "frame": int(frames.at[self._videos[key][p],
                                     "frame"]), "id": frames.at[self._videos[key][p], "id"]} for key, p in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, position = self._items[index]
        rows = self._videos[key]
        row = rows[position]
        indices = window_indices(position, len(rows), self.window_length, self.window_policy)
        window = np.stack([self.data.read_frame(rows[i]) for i in indices])
        mask = self.data.read_mask(row)
        window = self._match_size(torch.from_numpy(window).float(), mask.shape, row)
        if self.native_masks:
            sample = preprocess_xca(window, image_size=self.image_size)
            sample["mask"] = torch.from_numpy(mask).float()[None]
        else:
            sample = preprocess_xca(window, mask, image_size=self.image_size, transform=self.transform)
        return {"image": sample["image"].unsqueeze(0) if self.time_axis else sample["image"], "mask": sample["mask"],
                "id": self.data.frames.at[row, "id"], "current": self.current_frame_position}

    def _match_size(self, window: torch.Tensor, mask_size: tuple[int, int], row: int) -> torch.Tensor:
        if tuple(window.shape[-2:]) == tuple(mask_size):
            return window
        if not self.data.resize_frames_to_masks:
            raise DataError(f"frame {self.data.frames.at[row, 'image']} is {tuple(window.shape[-2:])} (HxW) but its "
                            f"mask is {tuple(mask_size)}; masks must have the size of their frame")
        return TF.resize(window, list(mask_size), interpolation=InterpolationMode.BILINEAR, antialias=True)

    def __repr__(self) -> str:
        return (f"XCAFramesDataset(format={self.data.format!r}, samples={len(self)}, "
                f"window_length={self.window_length}, single_frame={self.data.single_frame})")


# ----------------------------------------------------------------------------------------------------------------
# Training on a public layout
# ----------------------------------------------------------------------------------------------------------------
def training_splits(data: XCAFrames, val_fraction: float = 0.2, test_fraction: float = 0.2,
                    seed: int = 0) -> tuple[dict[str, XCAFrames], str]:
    """The train / val / test frames a training run uses, and a sentence that says how they were made.

    * Splits the release defines are kept: ARCADE's train/val/test, DCA1's and CHUAC's train/test (the papers'
      numbering), a sequence or MOSXAV folder's split folders.
    * A missing test split, then a missing val split, is carved from the training runs: ``test_fraction`` and
      ``val_fraction`` of them (at least one each, one left; :func:`~medseg_core.data.xca.carve_runs`).
    * A data set without a training split (XCAD releases its labelled frames as one test set; a folder without split
      folders) is pooled and cut the same way: test, then validation, the rest for training. Its test part is then
      not the release's test set, so a score on it is not comparable with published ones.

    Units are runs (videos) because the frames of one run are near duplicates; in single-frame data sets each frame
    is its own run: these releases do not say which frames come from one patient, so one patient's frames can land
    on both sides. Runs are drawn by a permutation seeded with ``seed`` (``xca.seed``), so every training seed sees
    one split.

    Raises:
        DataError: too few runs to carve a split (at least two are needed for each cut).
    """
    runs = data.runs
    if "train" in data.splits:
        base, parts, how = data.select("train"), {split: data.select(split) for split in ("val", "test")
                                                   if split in data.splits}, ["released splits kept"]
    else:
        base, parts = data, {}
        how = [f"no training split in the release ({', '.join(s or 'no split folders' for s in data.splits)}): "
               f"its {len(runs)} labelled runs are pooled and cut by run, so its test part is not the release's "
               "test set and is not comparable with published scores"]
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split in parts:
            continue
        names = base.runs
        if len(names) < 2:
            raise DataError(f"{data.format} data in {data.root}: cannot carve a {split} split from {len(names)} "
                            f"training run(s); add a {split}/ split or more runs")
        kept, carved = carve_runs(names, fraction, seed)
        parts[split], base = base.select_runs(carved), base.select_runs(kept)
        how.append(f"{split}: {len(carved)} of {len(names)} runs carved by run with seed {seed}")
    parts["train"] = base
    sizes = ", ".join(f"{split} {len(parts[split].labelled)}" for split in SPLITS)
    unit = "a run is one frame here" if data.single_frame else "a run is one video"
    return ({split: parts[split] for split in SPLITS},
            f"{data.format} data in {data.root} ({unit}): {'; '.join(how)}; labelled frames: {sizes}")


def xca_frames_dataloaders(
    data: XCAFrames,
    xca_config: XCAConfig,
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    time_axis: bool = True,
    augment_strength: str = "paper",
) -> dict[str, DataLoader]:
    """``{"train", "val", "test"}`` DataLoaders of a data set in a public layout, as
    :func:`~medseg_core.data.xca.xca_dataloaders` makes them for the kit's layout.

    Splits by :func:`training_splits` (``xca.val_fraction``, ``xca.test_fraction``, ``xca.seed``), said once in a
    warning; windows, frame size, augmentation, training crop and ``train_frames`` (every k-th labelled training
    frame, :func:`~medseg_core.data.xca.every_kth_sample`) from ``xca_config``; samples of
    :class:`XCAFramesDataset` (one-frame videos repeat their frame in every window). ``seed`` orders the training
    batches (:func:`~medseg_core.data.xca.split_loader`).
    """
    check_complete(data.root)  # a data set the kit has not finished writing is refused, not read in part
    parts, how = training_splits(data, xca_config.val_fraction, xca_config.test_fraction, xca_config.seed)
    warnings.warn(how, UserWarning, stacklevel=2)
    loaders = {}
    for split in SPLITS:
        dataset = XCAFramesDataset(parts[split], window_length=xca_config.window_length,
                                   window_policy=xca_config.window_policy,
                                   transform=_train_transform(xca_config, augment_strength) if split == "train" else None,
                                   time_axis=time_axis, image_size=xca_config.image_size)
        if split == "train" and xca_config.train_frames is not None:
            dataset = every_kth_sample(dataset, xca_config.train_frames)
        loaders[split] = split_loader(dataset, split, batch_size, num_workers, seed)
    return loaders


def write_synthetic_dca1(root: str | Path, *, train_frames: int = 8, test_frames: int = 4, image_size: int = 128,
                         seed: int = 0) -> Path:
    """Write SYNTHETIC angiograms in DCA1's released layout: a stand-in for trying the real-data workflow (readers,
    ``medseg evaluate``, fine-tuning) where no real angiograms are at hand. Scores on it say nothing about real ones.

    Each frame comes from its own run of the kit's generator
    (:func:`~medseg_core.data.synthetic_xca.simulate_sequence`, seeds :func:`~medseg_core.data.synthetic_xca.video_seed`
    of ``seed``): the frame of its first six with the most vessel filled. Layout as :func:`read_dca1` reads it::

        root/Database_134_Angiograms/<n>.pgm       n = 1 ... train_frames (DCA1's training numbers) and
        root/Database_134_Angiograms/<n>_gt.pgm    101 ... 100 + test_frames (its test numbers); masks 0/255
        root/README.txt                            says that the frames are synthetic

    Returns:
        ``root``. Existing files of these names are replaced.
    """
    from .io import write_image
    from .synthetic_xca import simulate_sequence, video_seed

    if not 1 <= train_frames <= 100 or test_frames < 1:
        raise ValueError(f"train_frames must be in [1, 100] (DCA1 numbers its training frames 1-100) and test_frames "
                         f"at least 1; got {train_frames} and {test_frames}")
    root = Path(root)
    folder = root / "Database_134_Angiograms"
    numbers = [*range(1, train_frames + 1), *range(101, 101 + test_frames)]
    for index, number in enumerate(numbers):
        run = simulate_sequence(video_seed(seed, index), image_size=image_size, num_frames=6)
        best = int(run.masks.reshape(len(run.masks), -1).sum(1).argmax())
        write_image(folder / f"{number}.pgm", run.frames[best])
        write_image(folder / f"{number}_gt.pgm", run.masks[best] * np.uint8(255))
    (root / "README.txt").write_text(
        "SYNTHETIC angiograms in the layout of DCA1 (Cervantes-Sanchez et al., Appl Sci 2019), written by "
        "medseg_core.data.public.write_synthetic_dca1 from the kit's generator. They are not X-ray images of patients "
        "and not DCA1's frames: scores on them say nothing about real angiograms.\n", encoding="utf-8")
    return root
