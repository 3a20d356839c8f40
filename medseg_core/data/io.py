"""Reading images and masks from disk with errors that name the file and the fix.

Shared by every reader in :mod:`medseg_core.data` (XCA videos, OCT frames, plain folders), so that a corrupt
file, a missing folder, a 16-bit or float image, NaN pixels, a JPEG mask or a mask stored as 0/255 is handled the
same way everywhere. Problems shared by many files of a data set are warned about once, with counts
(:class:`MaskSummary`, :func:`warn_aspect_change`).
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = [
    "DataError",
    "IMAGE_SUFFIXES",
    "MaskSummary",
    "by_stem",
    "check_mask_format",
    "image_size",
    "list_images",
    "read_image",
    "read_label_mask",
    "write_image",
    "write_label_mask",
    "to_label_mask",
    "warn_aspect_change",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm")


def by_stem(files: list[Path], folder: str | Path) -> dict[str, Path]:
    """File stem -> path for files that are named by their stem (OCT frames and their masks, predicted masks).

    Raises:
        DataError: two files share a stem (``a.png`` and ``a.tif``): which one is meant is unknown.
    """
    named: dict[str, Path] = {}
    for path in files:
        if path.stem in named:
            raise DataError(f"{folder} holds two files for {path.stem!r}: {named[path.stem].name} and {path.name}; "
                            "keep one of them (files are matched by name without suffix)")
        named[path.stem] = path
    return named


def list_images(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Sorted image files in ``folder``; raises :class:`DataError` if the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not files:
        raise DataError(f"no images ({', '.join(suffixes)}) in {folder}")
    return files


_EIGHT_BIT_MODES = frozenset({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
_TIFF_SUFFIXES = (".tif", ".tiff")
_JPEG_SUFFIXES = (".jpg", ".jpeg")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, the weights of Pillow's "L" conversion


def _unreadable(path: Path, error: Exception, what: str = "image") -> DataError:
    return DataError(f"cannot read {what} {path}: {error} (is the file complete and an image? LZW TIFFs need "
                     "imagecodecs)")


def _read_tiff(path: Path, what: str) -> np.ndarray:
    try:
        return tifffile.imread(path)
    except (tifffile.TiffFileError, OSError, ValueError) as error:
        raise _unreadable(path, error, what) from error


def _read_tiff_colours(path: Path) -> tuple[np.ndarray, int]:
    """A TIFF image's pixels and colour model (``photometric``); palette indices come back as their 16-bit RGB."""
    try:
        with tifffile.TiffFile(path) as tiff:
            raw, page = tiff.asarray(), tiff.pages.first
            photometric, colormap = int(page.photometric), page.colormap
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as error:
        raise _unreadable(path, error) from error
    if photometric == tifffile.PHOTOMETRIC.PALETTE and colormap is not None and raw.ndim == 2:
        return np.moveaxis(colormap[:, raw], 0, -1), tifffile.PHOTOMETRIC.RGB
    return raw, photometric


def _to_rgb_or_grey(unit: np.ndarray, photometric: int | None, path: Path) -> np.ndarray:
    """Values in [0, 1] of a TIFF colour model as RGB or grey: CMYK inks ("separated") to RGB as Pillow converts
    them, ``(1 - c)(1 - k)`` per channel, and min-is-white grey inverted; others are left as they are."""
    if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        return 1.0 - unit
    if photometric != tifffile.PHOTOMETRIC.SEPARATED:
        return unit
    if unit.ndim == 3 and unit.shape[0] == 4 and unit.shape[-1] != 4:  # planar
        unit = np.moveaxis(unit, 0, -1)
    if unit.ndim != 3 or unit.shape[-1] != 4:
        raise DataError(f"CMYK image {path} has shape {unit.shape}; expected (H, W, 4) inks: save it as RGB")
    return (1.0 - unit[..., :3]) * (1.0 - unit[..., 3:])


def image_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        if path.suffix.lower() not in _TIFF_SUFFIXES:
            raise _unreadable(path, error) from error
    try:
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            return int(page.imagelength), int(page.imagewidth)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as error:
        raise _unreadable(path, error) from error


def read_image(path: str | Path, mode: str = "L", *, exact: bool = False) -> np.ndarray:
    """Read an image in ``mode`` ("L": (H, W); "RGB": (H, W, 3); "RGBA": (H, W, 4)), faithful to its bit depth.

    8-bit files (grayscale, RGB, palette, 1-bit) come back as uint8, converted to ``mode`` by Pillow. Any other
    file is first scaled to [0, 1] by its type's range: unsigned and signed integers are divided by the type's
    maximum (16-bit PNG/TIFF: 65535; negative values raise), floats are taken as they are and must lie in
    [0, 1] (values outside raise: they are not clipped). It is then returned as uint8 (``round(255 * value)``,
    ``exact=False``) or as float32 in [0, 1] (``exact=True``: no precision lost). Colour goes to gray with the
    ITU-R 601-2 weights, like Pillow. 16-bit RGB PNGs are decoded by Pillow at 8 bits per channel. TIFFs keep their
    colour model: CMYK inks become RGB as Pillow converts them, palette indices their colours, min-is-white grey
    is inverted.

    Raises:
        DataError: the file is missing or unreadable, holds NaN/Inf, floats outside [0, 1], negative integers,
            or is not one 2D frame (e.g. a multi-page stack); the message names the file.
    """
    if mode not in ("L", "RGB", "RGBA"):
        raise ValueError(f"mode must be 'L', 'RGB' or 'RGBA', got {mode!r}")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    photometric = None
    if path.suffix.lower() in _TIFF_SUFFIXES:
        raw, photometric = _read_tiff_colours(path)
        direct = photometric not in (tifffile.PHOTOMETRIC.SEPARATED, tifffile.PHOTOMETRIC.MINISWHITE)
        if direct and raw.dtype == np.uint8 and (raw.ndim == 2 or (raw.ndim == 3 and raw.shape[-1] in (3, 4))):
            return np.array(Image.fromarray(raw).convert(mode), dtype=np.uint8)
    else:
        try:
            with Image.open(path) as image:
                image.load()
                if image.mode in _EIGHT_BIT_MODES:
                    return np.array(image.convert(mode), dtype=np.uint8)  # a writable copy (torch needs one)
                raw = np.asarray(image)
                if image.mode == "I":  # Pillow's 32-bit container for 16-bit PNG/PGM data
                    raw = _as_uint16(raw, path)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise _unreadable(path, error) from error
    unit = _channels_to_mode(_to_rgb_or_grey(_unit_range(raw, path), photometric, path), mode, path)
    return unit.astype(np.float32) if exact else np.rint(unit * 255.0).astype(np.uint8)


def _as_uint16(raw: np.ndarray, path: Path) -> np.ndarray:
    if raw.size and (raw.min() < 0 or raw.max() > 65535):
        raise DataError(f"image {path} holds 32-bit values outside 0..65535; save it as a 16-bit PNG or a float "
                        "TIFF in [0, 1]")
    return raw.astype(np.uint16)


def _unit_range(raw: np.ndarray, path: Path) -> np.ndarray:
    """Pixel values scaled to [0, 1] by their type's range (float64), or DataError."""
    if raw.dtype == np.bool_:
        return raw.astype(np.float64)
    if np.issubdtype(raw.dtype, np.integer):
        if raw.size and raw.min() < 0:
            raise DataError(f"image {path} ({raw.dtype}) has negative values (min {raw.min()}); store images "
                            "unsigned (8/16-bit PNG) or as float in [0, 1]")
        return raw.astype(np.float64) / float(np.iinfo(raw.dtype).max)
    if np.issubdtype(raw.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(raw)))
        if bad:
            raise DataError(f"image {path} holds {bad} NaN/Inf pixels; replace them with valid values (e.g. the "
                            "background level) before using it")
        low, high = (float(raw.min()), float(raw.max())) if raw.size else (0.0, 0.0)
        if low < 0.0 or high > 1.0:
            raise DataError(f"float image {path} has values in [{low:.4g}, {high:.4g}]; float images are read as "
                            "they are and must lie in [0, 1]: rescale it, or store it as 8/16-bit integers")
        return raw.astype(np.float64)
    raise DataError(f"image {path} has pixel type {raw.dtype}; use 8/16-bit integers or float in [0, 1]")


def _channels_to_mode(unit: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """(H, W), (H, W, C) or planar (C, H, W) values in [0, 1] -> ``mode``'s (H, W) / (H, W, 3) / (H, W, 4)."""
    if unit.ndim == 3 and unit.shape[0] in (3, 4) and unit.shape[-1] not in (1, 2, 3, 4):
        unit = np.moveaxis(unit, 0, -1)
    if unit.ndim == 3 and unit.shape[-1] in (1, 2):  # gray, gray + alpha
        unit, alpha = unit[..., 0], (unit[..., 1] if unit.shape[-1] == 2 else None)
    elif unit.ndim == 3 and unit.shape[-1] in (3, 4):
        alpha = unit[..., 3] if unit.shape[-1] == 4 else None
        unit = unit[..., :3]
    elif unit.ndim == 2:
        alpha = None
    else:
        raise DataError(f"image {path} has shape {unit.shape}; expected one frame (H, W) or (H, W, 3/4) "
                        "(multi-page stacks: save one frame per file)")
    if mode == "L":
        return unit @ _LUMA if unit.ndim == 3 else unit
    rgb = unit if unit.ndim == 3 else np.repeat(unit[..., None], 3, axis=-1)
    if mode == "RGB":
        return rgb
    return np.concatenate([rgb, (np.ones(rgb.shape[:2]) if alpha is None else alpha)[..., None]], axis=-1)


@dataclass
class MaskSummary:
    """Facts about the masks of one data set, per file (reading a file again changes nothing), warned once.

    Datasets read every mask once when they are built and call :meth:`warn`, so a problem shared by many files
    gives one warning with counts instead of one per file and epoch.
    """

    foreground: dict[str, int] = field(default_factory=dict)  # foreground pixels of each mask file
    stored_0_255: set[str] = field(default_factory=set)  # masks converted from 0/255

    def record(self, source: str | Path, labels: np.ndarray, stored_0_255: bool = False) -> None:
        """Note one mask's label map ``(H, W)`` and whether it was stored as 0/255."""
        self.foreground[str(source)] = int(np.count_nonzero(labels))
        if stored_0_255:
            self.stored_0_255.add(str(source))

    def update(self, other: "MaskSummary") -> None:
        """Add the facts of ``other`` (e.g. one file's, read once and kept) to these."""
        self.foreground.update(other.foreground)
        self.stored_0_255 |= other.stored_0_255

    def warn(self, dataset: str) -> None:
        """One warning for 0/255 masks and one for a data set without any foreground, naming ``dataset``."""
        count = len(self.foreground)
        if self.stored_0_255:
            warnings.warn(
                f"{dataset}: {len(self.stored_0_255)} of {count} masks are stored as 0/255 (e.g. "
                f"{min(self.stored_0_255)}); converted to class indices 0/1. Save masks with values 0 and 1 to "
                "silence this",
                UserWarning,
                stacklevel=3,
            )
        if count and not any(self.foreground.values()):
            warnings.warn(
                f"{dataset}: none of its {count} masks has a foreground pixel. Every Dice score on it is 1.0 by "
                "the empty-mask rule whatever the model predicts, and soft Dice gives the same loss for every "
                "prediction; check that these are the right masks (foreground = 1) and classes",
                UserWarning,
                stacklevel=3,
            )


def warn_aspect_change(sizes: Mapping[str, tuple[int, int]], target: tuple[int, int], dataset: str, kind: str,
                       fix: str) -> None:
    """Warn once if resizing the ``kind`` in ``sizes`` (name -> (H, W)) to ``target`` (H, W) squashes them."""
    changed = {name: size for name, size in sizes.items() if size[0] * target[1] != size[1] * target[0]}
    if changed:
        name, (height, width) = min(changed.items())
        warnings.warn(
            f"{dataset}: {len(changed)} of {len(sizes)} {kind} (e.g. {name}, {height}x{width} HxW) are resized to "
            f"{target[0]}x{target[1]}, which changes their aspect ratio; {fix}",
            UserWarning,
            stacklevel=3,
        )


def check_mask_format(path: Path) -> None:
    """Raise :class:`DataError` for a mask saved as JPEG: its lossy compression changes labels along every edge."""
    if path.suffix.lower() in _JPEG_SUFFIXES:
        raise DataError(f"mask {path} is a lossy JPEG, whose compression alters the labels along every edge; "
                        "save masks as PNG (lossless) and use those")


def to_label_mask(array: np.ndarray, num_classes: int = 2, source: str | Path = "<array>",
                  summary: MaskSummary | None = None) -> np.ndarray:
    """Return an ``(H, W)`` uint8 label map with values in ``[0, num_classes)``.

    A binary mask stored as 0/255 (the most common mistake with segmentation data) is detected and converted
    to 0/1: with ``summary`` it is counted there (one warning per data set, see :class:`MaskSummary`), without
    one it is warned about. Any other value outside the class range, negative, non-integer or NaN values raise
    :class:`DataError`.
    """
    if array.ndim == 3:
        if array.shape[2] in (3, 4) and np.all(array[..., :3] == array[..., :1]):
            array = array[..., 0]
        else:
            raise DataError(
                f"mask {source} has shape {array.shape}; expected a single-channel label map (H, W). "
                "Multi-channel masks (one channel per class) need a reader that knows the class order."
            )
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        raise DataError(
            f"mask {source} holds non-integer values (or NaN/Inf); masks hold class indices: threshold soft masks "
            "and resize masks with nearest-neighbour interpolation"
        )
    values = np.unique(array)
    stored_0_255 = False
    if values.min(initial=0) >= 0 and values.max(initial=0) < num_classes:
        labels = array.astype(np.uint8)
    elif num_classes == 2 and set(values.tolist()) <= {0, 255}:
        labels, stored_0_255 = (array == 255).astype(np.uint8), True
    else:
        raise DataError(
            f"mask {source} has values {values[:10].tolist()} but {num_classes} classes were expected "
            f"(class indices 0..{num_classes - 1}, or 0/255 for a binary mask)"
        )
    if summary is not None:
        summary.record(source, labels, stored_0_255)
    elif stored_0_255:
        warnings.warn(f"mask {source} is stored as 0/255; converted to class indices 0/1", stacklevel=3)
    return labels


def read_label_mask(path: str | Path, num_classes: int = 2, summary: MaskSummary | None = None) -> np.ndarray:
    """Read a single-channel mask file as an ``(H, W)`` uint8 label map (see :func:`to_label_mask`).

    Raises:
        DataError: missing, unreadable or JPEG file, or values that are not class indices.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    check_mask_format(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        array = _read_tiff(path, "mask")
    else:
        try:
            with Image.open(path) as image:
                array = np.asarray(image)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise _unreadable(path, error, "mask") from error
    return to_label_mask(array, num_classes=num_classes, source=path, summary=summary)


def write_image(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an image (format from the suffix), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path


def write_label_mask(path: str | Path, labels: np.ndarray, colours: Sequence[tuple[int, int, int]]) -> Path:
    """Write a label map ``(H, W)`` of class indices as a palette PNG, creating parent folders.

    The pixel values stay the class indices (:func:`read_label_mask`, ``np.asarray(Image.open(path))`` and every
    image library that reads palette indices get 0, 1, ... back); the palette maps class ``k`` to ``colours[k]``
    (RGB 0-255, background first), so any image viewer shows the classes in colour instead of near-black.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"label masks are written as PNG (lossless, with a palette); got {path.name}")
    if labels.size and int(labels.max()) >= len(colours):
        raise ValueError(f"labels go up to {int(labels.max())} but only {len(colours)} colours were given")
    image = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8))
    image.putpalette([channel for colour in colours for channel in colour])  # "L" becomes "P", pixels unchanged
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
