"""Coronary IVOCT data for the lipid-plaque DeepLabV3+: readers, patient-wise split, dataset, prepared derivative.

Owns everything between OCT files on disk and batches: the 4-channel masks of the public OCT dataset
(Danilov et al., Zenodo 10.5281/zenodo.14478210; channels lumen, fibrous cap, lipid core, vasa vasorum, each 0/255),
the dataset's layouts (patient-wise folds ``fold_k/{train,test}/{img,mask}``, a flat ``img/`` + ``mask/``) and
plain image/mask folders with single-channel masks. Synthetic data (:mod:`medseg_core.data.synthetic_oct`) uses
the same layouts, so everything below reads both. Augmentations are left to :mod:`medseg_core.data.transforms`
(passed in as ``transform``); downloads to :mod:`medseg_core.data.download`.

Frames of one pullback are near duplicates, so data is always split by patient (:func:`patient_split`), never by
frame. The seed of the improved DeepLabV3+ keeps only the lipid-core channel and resizes frames to 512 x 512:
:func:`prepare_lipid_dataset` writes that derivative once, with checksums.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd
import tifffile
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError
from ..files import file_digest, separate_folders
from .cache import DatasetWriter, check_complete
from .io import (DataError, MaskSummary, by_stem, check_mask_format, image_size, list_images, read_image,
                 to_label_mask, warn_aspect_change, write_image)
from .memo import DECODED_FRAMES
from .preprocess import SampleTransform, preprocess_oct, resize_oct
from .sampling import loader_sampling

if TYPE_CHECKING:
    from medseg_core.config import OCTConfig

__all__ = [
    "OCT_CLASSES",
    "OCT_NAME_PATTERN",
    "PAIR_COLUMNS",
    "read_oct_mask",
    "write_oct_mask",
    "find_oct_pairs",
    "patient_split",
    "block_split",
    "BLOCK_GAP",
    "every_kth_frame",
    "real_pullback_folder",
    "OCTDataset",
    "prepare_lipid_dataset",
    "oct_dataloaders",
]

OCT_CLASSES: tuple[str, ...] = ("lumen", "fibrous_cap", "lipid_core", "vasa_vasorum")  # channel order of the TIFFs
OCT_NAME_PATTERN = re.compile(r"^(?P<patient>\d{3})_(?P<pullback>\d+)_(?P<frame>\d{3,})$")
PAIR_COLUMNS = ("id", "patient", "pullback", "frame", "image_path", "mask_path", "fold", "split")



def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    classes = tuple(classes)
    unknown = [c for c in classes if c not in OCT_CLASSES]
    if not classes or unknown or len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be distinct names from {OCT_CLASSES}, got {classes}")
    return classes


# ----------------------------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------------------------


def read_oct_mask(path: str | Path, classes: Sequence[str] = ("lipid_core",),
                  summary: MaskSummary | None = None) -> np.ndarray:
    """Read an OCT mask as an ``(H, W)`` uint8 label map: 0 background, ``i`` the ``i``-th of ``classes``.

    Two encodings are understood:

    * the dataset's ``(H, W, 4)`` masks (one channel per class in :data:`OCT_CLASSES` order), stored 0/255 or 0/1.
      Where requested classes overlap (the real annotations overlap along some borders), the class later in
      ``classes`` wins.
    * single-channel label maps (for example from :func:`prepare_lipid_dataset` or plain folders), holding
      indices ``0..len(classes)``, or 0/255 for one class (converted with a warning, or counted in ``summary``
      for one warning per data set, see :func:`io.to_label_mask`).

    Raises:
        DataError: the file is missing, unreadable, a JPEG or holds other values; the message names the file.
        ValueError: ``classes`` names an unknown class.
    """
    classes = _check_classes(classes)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    check_mask_format(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            array = tifffile.imread(path)
        else:
            with Image.open(path) as image:
                array = np.asarray(image)
    except (tifffile.TiffFileError, UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise DataError(
            f"cannot read mask {path}: {error} (is the file complete? LZW TIFFs need imagecodecs)"
        ) from error
    if array.ndim == 3 and array.shape[0] == len(OCT_CLASSES) and array.shape[-1] != len(OCT_CLASSES):
        array = np.moveaxis(array, 0, -1)  # planar (4, H, W) storage
    if array.ndim == 3 and array.shape[-1] == len(OCT_CLASSES):
        labels = _channels_to_labels(array, classes, path)
        if summary is not None:
            summary.record(path, labels)
        return labels
    if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3)):
        return to_label_mask(np.squeeze(array, axis=-1) if array.ndim == 3 and array.shape[-1] == 1 else array,
                             num_classes=len(classes) + 1, source=path, summary=summary)
    raise DataError(
        f"mask {path} has shape {array.shape}; expected (H, W, {len(OCT_CLASSES)}) with channels {OCT_CLASSES}, "
        "or a single-channel (H, W) label map"
    )


def _channels_to_labels(array: np.ndarray, classes: tuple[str, ...], path: Path) -> np.ndarray:
    values = set(np.unique(array).tolist())
    if values <= {0, 1}:
        on = array == 1
    elif values <= {0, 255}:
        on = array == 255
    else:
        raise DataError(
            f"mask {path} channels hold values {sorted(values)[:10]}; expected 0/255 (the dataset's TIFFs) or 0/1 "
            "in every class channel (a resampled mask? resize masks with nearest-neighbour interpolation)"
        )
    labels = np.zeros(array.shape[:2], dtype=np.uint8)
    for index, name in enumerate(classes, start=1):
        labels[on[..., OCT_CLASSES.index(name)]] = index
    return labels


def write_oct_mask(path: str | Path, channels: np.ndarray) -> Path:
    """Write ``(H, W, 4)`` 0/255 uint8 class channels like the dataset: LZW TIFF that Pillow opens as RGBA."""
    channels = np.asarray(channels)
    if channels.ndim != 3 or channels.shape[-1] != len(OCT_CLASSES) or channels.dtype != np.uint8:
        raise ValueError(f"expected (H, W, {len(OCT_CLASSES)}) uint8 channels, got {channels.shape} {channels.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, channels, photometric="rgb", extrasamples=("unassalpha",), compression="lzw")
    return path


# ----------------------------------------------------------------------------------------------------------------
# Finding image/mask pairs
# ----------------------------------------------------------------------------------------------------------------


def find_oct_pairs(
    root: str | Path,
    *,
    image_dir: str | Path | None = None,
    mask_dir: str | Path | None = None,
    patient_from_stem: Callable[[str], str] | None = None,
    check_sizes: bool = True,
) -> pd.DataFrame:
    """List image/mask pairs under ``root`` as a DataFrame with :data:`PAIR_COLUMNS`.

    Understood layouts, tried in this order:

    1. ``image_dir`` and ``mask_dir`` given (relative to ``root`` or absolute): plain folders with any names;
    2. ``fold_k/<split>/{img,mask}`` (the dataset's patient-wise folds; ``fold`` and ``split`` columns filled,
       so each frame appears once per fold);
    3. ``img/`` + ``mask/`` (flat, like the released sample);
    4. ``images/`` + ``masks/``.

    Images and masks pair by file stem. ``patient``, ``pullback`` and ``frame`` come from names
    ``{patient:03d}_{pullback}_{frame:03d}``; other names go through ``patient_from_stem`` or, by default, each
    image becomes its own group (with a warning: a patient-wise split is then impossible).

    Args:
        check_sizes: compare image and mask sizes (reads only the file headers).

    Raises:
        DataError: no known layout, unpaired images or masks (a few names listed), or different image/mask sizes.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"OCT data folder not found: {root}")
    folders = _layout_folders(root, image_dir, mask_dir)
    frames = []
    for fold, split, images_folder, masks_folder in folders:
        for stem, image_path, mask_path in _pair_folder(images_folder, masks_folder):
            frames.append({"id": stem, "image_path": str(image_path), "mask_path": str(mask_path),
                           "fold": fold, "split": split})
    pairs = pd.DataFrame(frames)
    parsed = [_parse_stem(stem, patient_from_stem) for stem in pairs["id"]]
    pairs["patient"] = [p[0] for p in parsed]
    pairs["pullback"] = pd.array([p[1] for p in parsed], dtype="Int64")
    pairs["frame"] = pd.array([p[2] for p in parsed], dtype="Int64")
    pairs["fold"] = pd.array(pairs["fold"], dtype="Int64")
    unparsed = [stem for stem, p in zip(pairs["id"], parsed) if p[1] is None]
    if unparsed and patient_from_stem is None:
        warnings.warn(
            f"{len(unparsed)} file names (e.g. {unparsed[:3]}) do not follow "
            "{patient:03d}_{pullback}_{frame:03d}; "
            "each becomes its own patient group, so grouping frames by patient is impossible. Rename the files or "
            "pass patient_from_stem=",
            stacklevel=2,
        )
    if check_sizes:
        _check_pair_sizes(pairs)
    pairs = pairs.sort_values(["fold", "split", "patient", "pullback", "frame", "id"], na_position="first")
    return pairs.loc[:, list(PAIR_COLUMNS)].reset_index(drop=True)


def _layout_folders(
    root: Path, image_dir: str | Path | None, mask_dir: str | Path | None
) -> list[tuple[int | None, str | None, Path, Path]]:
    """``(fold, split, image folder, mask folder)`` for each folder pair of the detected layout."""
    if (image_dir is None) != (mask_dir is None):
        raise ValueError("pass both image_dir= and mask_dir=, or neither")
    if image_dir is not None:
        return [(None, None, root / image_dir, root / mask_dir)]
    fold_dirs = sorted((p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"fold_\d+", p.name)),
                       key=lambda p: int(p.name.split("_")[1]))
    if fold_dirs:
        folders = []
        for fold_dir in fold_dirs:
            splits = [s for s in sorted(fold_dir.iterdir()) if (s / "img").is_dir() and (s / "mask").is_dir()]
            if not splits:
                raise DataError(f"{fold_dir} holds no <split>/img + <split>/mask folders (expected train/ and test/)")
            folders += [(int(fold_dir.name.split("_")[1]), s.name, s / "img", s / "mask") for s in splits]
        return folders
    for images_name, masks_name in (("img", "mask"), ("images", "masks")):
        if (root / images_name).is_dir() and (root / masks_name).is_dir():
            return [(None, None, root / images_name, root / masks_name)]
    raise DataError(
        f"no OCT data layout found in {root}: expected fold_k/{{train,test}}/{{img,mask}}, img/ + mask/, "
        "images/ + masks/, or pass image_dir= and mask_dir="
    )


def _pair_folder(images_folder: Path, masks_folder: Path) -> list[tuple[str, Path, Path]]:
    images = by_stem(list_images(images_folder), images_folder)
    masks = by_stem(list_images(masks_folder), masks_folder)
    for missing, have, lack in ((sorted(set(images) - set(masks)), images_folder, masks_folder),
                                (sorted(set(masks) - set(images)), masks_folder, images_folder)):
        if missing:
            raise DataError(
                f"{len(missing)} files in {have} have no partner with the same name in {lack}, e.g. {missing[:5]}; "
                "every image needs a mask with the same file stem"
            )
    return [(stem, images[stem], masks[stem]) for stem in sorted(images)]


def _parse_stem(stem: str, patient_from_stem: Callable[[str], str] | None) -> tuple[str, int | None, int | None]:
    match = OCT_NAME_PATTERN.match(stem)
    if match:
        return match["patient"], int(match["pullback"]), int(match["frame"])
    return (str(patient_from_stem(stem)) if patient_from_stem else stem), None, None


def _check_pair_sizes(pairs: pd.DataFrame) -> None:
    mismatched = []
    for row in pairs.drop_duplicates("id").itertuples():  # the fold layout holds copies of each frame: check one
        image_hw, mask_hw = image_size(row.image_path), image_size(row.mask_path)
        if image_hw != mask_hw:
            mismatched.append(f"{row.id} (image {image_hw[0]}x{image_hw[1]}, mask {mask_hw[0]}x{mask_hw[1]}, HxW)")
    if mismatched:
        raise DataError(
            f"{len(mismatched)} image/mask pairs differ in size, e.g. {mismatched[:5]}; "
            "masks must have their image's size"
        )


# ----------------------------------------------------------------------------------------------------------------
# Split and dataset
# ----------------------------------------------------------------------------------------------------------------


def held_out_patients(patients: int, fraction: float) -> int:
    """How many of ``patients`` a patient-wise split holds out: ``round(fraction * patients)``, at least one, and at
    least one left for training (the rule of :func:`patient_split`, also used to size designs before any data)."""
    return min(patients - 1, max(1, int(round(fraction * patients))))


def patient_split(
    pairs: pd.DataFrame, val_fraction: float = 0.2, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split pairs into training and validation by patient (never by frame: neighbouring frames are near duplicates).

    ``round(val_fraction * patients)`` patients (at least one, and at least one left for training) go to validation,
    chosen by a seeded permutation of the sorted patient ids.

    Raises:
        ValueError: ``val_fraction`` outside (0, 1), fewer than two patients, or pairs from several folds of the
            fold layout (select one fold's split first).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if pairs["id"].duplicated().any():
        raise ValueError(
            "pairs repeat frame ids (several folds of the fold layout?); select one first, e.g. "
            "pairs[(pairs.fold == 1) & (pairs.split == 'train')]"
        )
    patients = np.array(sorted(pairs["patient"].unique()))
    if patients.size < 2:
        raise ConfigError(f"a patient-wise split needs at least 2 patients, got {patients.tolist()}")
    num_val = held_out_patients(patients.size, val_fraction)
    val_patients = set(patients[np.random.default_rng(seed).permutation(patients.size)[:num_val]])
    is_val = pairs["patient"].isin(val_patients)
    train, val = pairs[~is_val].reset_index(drop=True), pairs[is_val].reset_index(drop=True)
    assert not set(train["patient"]) & set(val["patient"]), "a patient is in both training and validation"
    return train, val


BLOCK_GAP = 5
"""Frames left out between a training block and a held-out block of one pullback (single-patient splits)."""


def block_split(
    pairs: pd.DataFrame, val_fraction: float = 0.2, gap: int = BLOCK_GAP, start: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split one patient's frames into training frames and one contiguous held-out block.

    Frames are ordered by ``pullback, frame, id``; ``round(val_fraction * n)`` (at least one) consecutive frames
    are held out: the last ones by default, or those from the first frame numbered ``start`` or later (moved back
    so that the block fits). The ``gap`` stored frames on each side of the block are dropped (neighbouring frames
    are near duplicates); the rest train. ``start`` places the block where the pullback holds foreground, so that
    its score means something. A score on the held-out block is not patient-independent: use this only when there
    is a single patient.

    Raises:
        ValueError: ``val_fraction`` outside (0, 1) or ``start`` beyond the last frame.
        DataError: (a ``ValueError``) too few frames to leave a training frame after the gap.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    ordered = pairs.sort_values(["pullback", "frame", "id"], na_position="first").reset_index(drop=True)
    held = max(1, int(round(val_fraction * len(ordered))))
    first = len(ordered) - held
    if start is not None:
        after = np.flatnonzero(ordered["frame"].fillna(-1).to_numpy() >= start)
        if after.size == 0:
            raise ConfigError(f"no frame is numbered {start} or later (the last is {ordered['frame'].max()})")
        first = min(int(after[0]), first)
    position = np.arange(len(ordered))
    is_held = (position >= first) & (position < first + held)
    is_train = (position < first - gap) | (position >= first + held + gap)
    if not is_train.any():
        raise DataError(
            f"{len(ordered)} frames are too few for a block split ({held} held out, a gap of {gap}, at least one to "
            "train on): add frames or patients, or lower oct.block_gap (for the kit's 11-frame real sample: "
            "--recipe real-oct-sample)"
        )
    return ordered[is_train].reset_index(drop=True), ordered[is_held].reset_index(drop=True)


def every_kth_frame(pairs: pd.DataFrame, count: int) -> pd.DataFrame:
    """``count`` frames evenly spaced along the pullbacks (ordered by patient, pullback, frame): what annotating
    every k-th frame gives. All frames when ``count`` is at least their number.

    Raises:
        ValueError: ``count`` below 1.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    ordered = pairs.sort_values(["patient", "pullback", "frame", "id"], na_position="first").reset_index(drop=True)
    if count >= len(ordered):
        return ordered
    return ordered.iloc[np.linspace(0, len(ordered) - 1, count).round().astype(int)].reset_index(drop=True)


def real_pullback_folder(folder: str | Path, sources: Sequence[str | Path] | None = None) -> Path:
    """One flat ``img/`` + ``mask/`` folder of links to the real frames in ``sources`` (default: the kit's 11-frame
    sample and the optional 111-frame pullback, 122 frames of one pullback, see
    :func:`medseg_core.config.real_data_path`), as the ``real-oct`` recipe reads them. Links that exist are kept, so
    calling it twice is harmless.

    Raises:
        DataError: a source is missing; the message names its folder (and environment variable for the defaults).
    """
    from ..config import REAL_DATASETS, real_data_path

    folder = Path(folder)
    defaults = ("oct_zenodo_sample", "oct_zenodo_pullback")
    named = ({real_data_path(name): f" or set {REAL_DATASETS[name]} to its folder" for name in defaults}
             if sources is None else {Path(source): "" for source in sources})
    for source, remedy in named.items():
        if not (source / "img").is_dir() or not (source / "mask").is_dir():
            raise DataError(f"real OCT data {source.name!r} not found at {source} (no img/ and mask/ there): put the "
                            f"data set there{remedy}")
        for sub in ("img", "mask"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for path in sorted((source / sub).iterdir()):
                link = folder / sub / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
    return folder


def _split(pairs: pd.DataFrame, fraction: float, seed: int, purpose: str, root: Path,
           block_start: int | None = None, gap: int | None = None) -> tuple[pd.DataFrame, ...]:
    """Patient-wise split, or a block split (from frame ``block_start``, ``gap`` frames left out on each side,
    default :data:`BLOCK_GAP`) with a warning for a single patient."""
    if pairs["patient"].nunique() >= 2:
        return patient_split(pairs, fraction, seed=seed)
    gap = BLOCK_GAP if gap is None else gap
    try:
        rest, held = block_split(pairs, fraction, gap=gap, start=block_start)
    except DataError as error:
        raise DataError(f"{root}: one patient, so the {purpose} split is a block of frames, but {error}") from None
    where = (f"last {len(held)} frames of the pullback" if block_start is None
             else f"block of {len(held)} frames from frame {block_start}")
    warnings.warn(
        f"{root}: one patient ({pairs['patient'].iloc[0]}) for {len(pairs)} frames, so the {purpose} split is the "
        f"{where} (frames {held['frame'].iloc[0]}-{held['frame'].iloc[-1]}), with {gap} frames left out on each side. Neighbouring frames are near "
        f"duplicates: the {purpose} score is not patient-independent; say so wherever it is reported",
        UserWarning,
        stacklevel=3,
    )
    return rest, held


def _load_pair(
    image_path: str | Path, mask_path: str | Path, classes: tuple[str, ...], summary: MaskSummary | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(3, H, W)`` image and ``(H, W)`` uint8 label map, checked to have the same size.

    The image is uint8 for 8-bit files and float32 in [0, 1] for any other bit depth (see :func:`io.read_image`).
    """
    image = read_image(image_path, mode="RGB", exact=True)
    mask = read_oct_mask(mask_path, classes, summary)
    if image.shape[:2] != mask.shape:
        raise DataError(f"image {image_path} is {image.shape[:2]} but its mask {mask_path} is {mask.shape}")
    return torch.from_numpy(image).permute(2, 0, 1).contiguous(), torch.from_numpy(mask)


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    """uint8 or float [0, 1] image -> uint8 (rounded), for writing 8-bit files."""
    return image if image.dtype == torch.uint8 else (image * 255.0).round().clamp(0, 255).to(torch.uint8)


def _to_polar(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(3, S, S)`` image (uint8 or float) and ``(S, S)`` labels -> the polar view at ``S`` angles x ``S`` depths:
    float32 image in [0, 1] (bilinear), labels (nearest)."""
    from .synthetic_oct import polar_transform

    side = image.shape[-1]
    scaled = image.permute(1, 2, 0).numpy().astype(np.float32) / (255.0 if image.dtype == torch.uint8 else 1.0)
    polar_image = polar_transform(scaled, side, side, order=1)
    polar_mask = polar_transform(mask.numpy(), side, side, order=0)
    return torch.from_numpy(polar_image).permute(2, 0, 1).contiguous(), torch.from_numpy(polar_mask)


class OCTDataset(Dataset):
    """OCT frames for segmentation: ``{"image": (3, H, W) float32 ImageNet-normalised, "mask": (H, W) int64, "id"}``.

    Each item is read and prepared by :func:`medseg_core.data.preprocess.preprocess_oct` (the function inference
    calls too): resized to ``image_size`` (antialiased bilinear image, nearest mask), scaled to [0, 1], augmented
    by ``transform`` (``{"image": tv_tensors.Image, "mask": tv_tensors.Mask}`` in and out), then normalised with
    the ImageNet mean and std.

    Images of any bit depth are scaled by their type's range (see :func:`medseg_core.data.io.read_image`).
    Building the dataset reads every mask once and warns once (naming ``name``) if no mask has any foreground,
    if masks are stored as 0/255, or if frames that are not square get squashed to ``image_size``.

    Args:
        pairs: rows with ``id``, ``image_path``, ``mask_path`` (e.g. from :func:`find_oct_pairs`).
        classes: foreground classes in label order (mask value ``i`` = ``classes[i - 1]``).
        image_size: output side length, or None to keep the stored size.
        transform: joint augmentation, e.g. ``medseg_core.data.transforms.oct_train_transforms(image_size)``.
        name: what the warnings call this data, e.g. ``"OCT val split"``.
        polar: after the resize, map image and mask to the polar view (rows = ``image_size`` angles clockwise from
            3 o'clock, columns = ``image_size`` depths out to the inscribed circle;
            :func:`~medseg_core.data.synthetic_oct.polar_transform`); predictions map back with
            :func:`~medseg_core.data.synthetic_oct.scan_convert`. Needs ``image_size``.
        cache: keep each frame decoded and resized (uint8 image, label map) in memory after its first read, and
            each mask's facts after construction, in the process-wide memo
            :data:`~medseg_core.data.memo.DECODED_FRAMES`: later epochs, and later datasets of the same files at
            the same size (the next run of a grid), skip PNG/TIFF decoding and resizing (on 2 cores these cost
            more than a bfloat16 train step at 128²); augmentation still runs on every read. A file changed on disk
            is read again. DataLoader workers inherit the memo and keep their own additions (about
            ``4 * image_size**2`` bytes per frame).

    Attributes:
        has_foreground: per frame, whether its mask holds any foreground class (read once, at construction).
    """

    def __init__(
        self,
        pairs: pd.DataFrame,
        classes: Sequence[str] = ("lipid_core",),
        image_size: int | None = 512,
        transform: SampleTransform | None = None,
        name: str = "OCT data",
        cache: bool = True,
        polar: bool = False,
    ) -> None:
        missing = {"id", "image_path", "mask_path"} - set(pairs.columns)
        if missing:
            raise ValueError(f"pairs lack columns {sorted(missing)}; build them with find_oct_pairs()")
        if len(pairs) == 0:
            raise ValueError("pairs is empty: no OCT frames to load")
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be positive or None, got {image_size}")
        self.pairs = pairs.reset_index(drop=True)
        self.classes = _check_classes(classes)
        self.image_size = image_size
        self.transform = transform
        self.cache = cache
        if polar and image_size is None:
            raise ValueError("polar=True needs an image_size (the polar frame's angles and depths)")
        self.polar = polar
        self._frames: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._summary = MaskSummary()
        sizes, self.has_foreground = {}, []
        for row in self.pairs.itertuples():
            shape, facts = self._mask_facts(row.mask_path)
            self._summary.update(facts)
            sizes[row.id] = shape
            self.has_foreground.append(facts.foreground[str(row.mask_path)] > 0)
        label = f"{name} ({len(self.pairs)} frames)"
        self._summary.warn(label)
        if image_size is not None:
            warn_aspect_change(sizes, (image_size, image_size), label, "frames",
                               "OCT frames are square (a circular field of view): crop or pad them to square first")

    def __len__(self) -> int:
        return len(self.pairs)

    def _mask_facts(self, mask_path: str | Path) -> tuple[tuple[int, int], MaskSummary]:
        """The stored mask's ``(H, W)`` and its facts (a one-file :class:`MaskSummary`)."""
        def read() -> tuple[tuple[int, int], MaskSummary]:
            facts = MaskSummary()
            return read_oct_mask(mask_path, self.classes, facts).shape, facts

        return DECODED_FRAMES.get([mask_path], ("oct mask facts", self.classes), read) if self.cache else read()

    def _frame(self, index: int, row: pd.Series) -> tuple[torch.Tensor, torch.Tensor]:
        """``(3, S, S)`` image (uint8 for 8-bit files) and ``(S, S)`` label map, decoded and resized."""
        def read() -> tuple[torch.Tensor, torch.Tensor]:
            image, mask = resize_oct(*_load_pair(row["image_path"], row["mask_path"], self.classes, self._summary),
                                     self.image_size)
            return _to_polar(image, mask) if self.polar else (image, mask)

        if not self.cache:
            return read()
        if index not in self._frames:  # this dataset's own references: later epochs need not look at the files
            self._frames[index] = DECODED_FRAMES.get([row["image_path"], row["mask_path"]],
                                                     ("oct frame", self.classes, self.image_size, self.polar), read)
        return self._frames[index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        row = self.pairs.iloc[index]
        image, mask = self._frame(index, row)
        sample = preprocess_oct(image, mask, image_size=None, transform=self.transform)  # resized above
        return {"image": sample["image"], "mask": sample["mask"], "id": str(row["id"])}


# ----------------------------------------------------------------------------------------------------------------
# Prepared derivative and loaders
# ----------------------------------------------------------------------------------------------------------------

_PREPARE_WRITER = f"{__name__}.prepare_lipid_dataset"
_PREPARE_VERSION = 2  # 2: stamped by data.cache (1 wrote prepare.json)


def prepare_lipid_dataset(
    src_root: str | Path,
    dst_root: str | Path,
    image_size: int = 512,
    classes: Sequence[str] = ("lipid_core",),
    *,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write the reference implementation's processed derivative: resized RGB images and single-channel label masks, with a manifest.

    ``dst_root/img/<id>.png`` (``image_size`` square RGB), ``dst_root/mask/<id>.png`` (uint8 labels ``0..len(classes)``,
    0/1 for the default lipid core), and ``dst_root/manifest.csv`` with ``id, patient, pullback, frame, fold``
    (the test fold in the fold layout), ``source_image, source_mask, image_path, mask_path`` (relative to
    ``dst_root``), ``image_sha256, mask_sha256`` and ``<class>_fraction``. ``find_oct_pairs(dst_root)`` reads it.

    Written through :class:`~medseg_core.data.cache.DatasetWriter` (stamp ``medseg_dataset.json`` last):
    the same source (frame ids and file contents) and settings on a complete output whose files all keep their
    checksums return the manifest without writing. A run that stopped part-way (e.g. on a bad source frame)
    leaves a partial output that the next run deletes and redoes; files it did not write are never touched.

    Args:
        overwrite: replace a complete output made from another source or with other settings, or one whose
            files changed (only the files its stamp lists are deleted).

    Raises:
        ConfigError: ``dst_root`` and ``src_root`` are one folder or one lies inside the other (paths resolved),
            ``dst_root`` cannot be written, ``image_size`` < 1 or unknown ``classes``.
        DataError: ``dst_root`` holds ``img/``/``mask/`` not written by this function, a complete output with
            other settings (without ``overwrite``), or the source is unusable (the message names the file).
    """
    classes = _check_classes(classes)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"--image-size must be at least 1; got {image_size!r}")
    src_root, dst_root = separate_folders(src_root, dst_root)  # before anything is read or deleted
    pairs = find_oct_pairs(src_root)
    frames = _unique_frames(pairs)
    listing = [(row.id, file_digest(row.image_path), file_digest(row.mask_path)) for row in frames.itertuples()]
    settings = {"source": str(src_root), "image_size": int(image_size), "classes": list(classes),
                "num_frames": len(frames),
                "source_files": hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]}  # ids and contents
    manifest_path = dst_root / "manifest.csv"
    with DatasetWriter(dst_root, writer=_PREPARE_WRITER, version=_PREPARE_VERSION, settings=settings,
                       outputs=("img", "mask", "manifest.csv"), verify_digests=True) as output:
        if output.reuse(overwrite):
            return pd.read_csv(manifest_path, dtype={"id": str, "patient": str}).astype(
                {"pullback": "Int64", "frame": "Int64", "fold": "Int64"})
        summary = MaskSummary()
        rows = []
        for frame in frames.itertuples():
            try:
                image, mask = _load_pair(frame.image_path, frame.mask_path, classes, summary)
            except DataError as error:
                raise DataError(f"{error}. prepare_lipid_dataset stopped there; once the source is fixed, run it "
                                f"again: it redoes its partial output in {dst_root}") from error
            image, mask = resize_oct(image, mask, image_size)
            image_rel, mask_rel = f"img/{frame.id}.png", f"mask/{frame.id}.png"
            write_image(output.claim(image_rel), _to_uint8(image).permute(1, 2, 0).numpy())
            write_image(output.claim(mask_rel), mask.numpy())
            rows.append({
                "id": frame.id, "patient": frame.patient, "pullback": frame.pullback, "frame": frame.frame,
                "fold": frame.fold, "source_image": frame.image_path, "source_mask": frame.mask_path,
                "image_path": image_rel, "mask_path": mask_rel,
                "image_sha256": file_digest(dst_root / image_rel), "mask_sha256": file_digest(dst_root / mask_rel),
                **{f"{name}_fraction": float((mask == i).float().mean()) for i, name in enumerate(classes, start=1)},
            })
        summary.warn(f"OCT source {src_root}")
        manifest = pd.DataFrame(rows).astype({"pullback": "Int64", "frame": "Int64", "fold": "Int64"})
        manifest.to_csv(output.claim("manifest.csv"), index=False)
        output.finish()
    return manifest


def _unique_frames(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per frame id; in the fold layout ``fold`` becomes the frame's test fold."""
    if pairs["fold"].isna().all():
        return pairs.reset_index(drop=True)
    test_fold = pairs[pairs["split"] == "test"].drop_duplicates("id").set_index("id")["fold"]
    frames = pairs.drop_duplicates("id").reset_index(drop=True)
    frames["fold"] = pd.array(frames["id"].map(test_fold), dtype="Int64")
    return frames


def oct_dataloaders(
    root: str | Path,
    oct_config: "OCTConfig",
    batch_size: int,
    num_workers: int = 0,
    seed: int = 0,
    *,
    split_seed: int | None = None,
    fold: int | None = None,
    train_transform: SampleTransform | None = None,
) -> dict[str, DataLoader]:
    """Training, validation and test loaders from an OCT root (real or written by ``write_oct_dataset``).

    Every split is by patient. In the fold layout, the test split of ``fold`` (default: the first fold) is the
    test set and its training split is divided into training and validation (``oct_config.val_fraction``). In
    the flat layout, ``oct_config.test_fraction`` of the patients are held out for testing first, then
    ``val_fraction`` of the rest for validation. Where a single patient is left to split (one pullback, as in
    the real sample), the held-out set is a contiguous block with ``oct_config.block_gap`` frames (default
    :data:`BLOCK_GAP`) dropped on each side (:func:`block_split`): at the end of the pullback, or from frame
    ``oct_config.test_block_start`` / ``val_block_start`` (place the blocks where the pullback holds foreground), and a warning says that its
    score is not patient-independent. Every split warns once if none of its masks has foreground. Also uses ``classes``,
    ``image_size`` and ``augment``; ``oct_config.train_frames`` keeps that many training frames, every k-th
    (:func:`every_kth_frame`); with ``augment`` and no ``train_transform``, ``oct_train_transforms(image_size)``
    augments the training set, after a random rotation of up to ``oct_config.rotation`` degrees when it is set.
    The training loader drops an incomplete last batch (BatchNorm in ASPP's image pooling needs two samples).
    With ``oct_config.foreground_oversample`` above 1, it draws training frames with replacement (as many per
    epoch as there are frames), frames whose mask holds foreground that many times as often as the others.
    Under ``torchrun`` the training and validation loaders read this process's share
    (:func:`~medseg_core.data.sampling.loader_sampling`; ``batch_size`` is per process); the test loader reads all.

    Args:
        seed: seeds the shuffling of the training loader, and the patient splits unless ``split_seed`` is given.
        split_seed: seeds the patient splits alone, so runs with different seeds share one split (the kit passes
            ``oct_config.seed``: seeds then vary initialisation and data order only).

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``; only the training loader shuffles.
    """
    split = seed if split_seed is None else split_seed
    check_complete(root)  # a data set the kit has not finished writing is refused, not read in part
    pairs = find_oct_pairs(root)
    in_folds = bool(pairs["fold"].notna().any())
    if in_folds:
        folds = sorted(pairs["fold"].dropna().unique().tolist())
        fold = folds[0] if fold is None else fold
        if fold not in folds:
            raise ValueError(f"fold {fold} not found in {root}; available folds: {folds}")
        test_pairs = pairs[(pairs["fold"] == fold) & (pairs["split"] == "test")].reset_index(drop=True)
        pairs = pairs[(pairs["fold"] == fold) & (pairs["split"] == "train")]
    with warnings.catch_warnings(record=True) as split_warnings:  # said once both splits have worked
        warnings.simplefilter("always")
        if not in_folds:
            pairs, test_pairs = _split(pairs, oct_config.test_fraction, split, "test", Path(root),
                                       oct_config.test_block_start, oct_config.block_gap)
        train_pairs, val_pairs = _split(pairs, oct_config.val_fraction, split, "validation", Path(root),
                                        oct_config.val_block_start, oct_config.block_gap)
    for caught in split_warnings:
        warnings.warn(caught.message, caught.category, stacklevel=2)
    if oct_config.train_frames is not None:
        train_pairs = every_kth_frame(train_pairs, oct_config.train_frames)
    if train_transform is None and oct_config.augment and oct_config.polar:
        from .transforms import oct_polar_train_transforms

        train_transform = oct_polar_train_transforms(oct_config.rotation)
    elif train_transform is None and oct_config.augment:
        from torchvision.transforms import v2

        from .transforms import oct_train_transforms

        train_transform = oct_train_transforms(oct_config.image_size)
        if oct_config.rotation > 0:  # IVOCT frames turn freely about the catheter: plaque can lie at any angle
            rotate = v2.RandomRotation(oct_config.rotation, interpolation=v2.InterpolationMode.BILINEAR)
            train_transform = v2.Compose([rotate, train_transform])
    common = {"classes": oct_config.classes, "image_size": oct_config.image_size, "polar": oct_config.polar}
    names = {split: f"OCT {split} split of {root}" for split in ("train", "val", "test")}
    loader_options = {"batch_size": batch_size, "num_workers": num_workers, "pin_memory": torch.cuda.is_available(),
                      "persistent_workers": num_workers > 0}
    train_set = OCTDataset(train_pairs, transform=train_transform, name=names["train"], **common)
    val_set = OCTDataset(val_pairs, name=names["val"], **common)
    generator = torch.Generator().manual_seed(seed)  # the Trainer re-seeds it every epoch: exact resume
    weights = None
    if oct_config.foreground_oversample != 1.0:
        weights = [oct_config.foreground_oversample if has else 1.0 for has in train_set.has_foreground]
    sampling = loader_sampling(train_set, train=True, seed=seed, generator=generator, weights=weights)
    per_process = len(sampling["sampler"]) if "sampler" in sampling else len(train_set)
    return {
        "train": DataLoader(train_set, drop_last=per_process > batch_size, generator=generator, **sampling,
                            **loader_options),
        "val": DataLoader(val_set, **loader_sampling(val_set, train=False, seed=seed), **loader_options),
        "test": DataLoader(OCTDataset(test_pairs, name=names["test"], **common), shuffle=False, **loader_options),
    }
