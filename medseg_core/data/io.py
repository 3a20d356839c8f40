"""Reading images and masks from disk with errors that name the file and the fix.

Shared by every reader in :mod:`medseg_core.data` (XCA videos, OCT frames, plain folders), so that a corrupt
file, a missing folder or a mask stored as 0/255 is handled the same way everywhere.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = [
    "DataError",
    "IMAGE_SUFFIXES",
    "list_images",
    "read_image",
    "read_label_mask",
    "write_image",
    "to_label_mask",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm")


def list_images(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Sorted image files in ``folder``; raises :class:`DataError` if the folder is missing or holds none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and not p.name.startswith("."))
    if not files:
        raise DataError(f"no images ({', '.join(suffixes)}) in {folder}")
    return files


def read_image(path: str | Path, mode: str = "L") -> np.ndarray:
    """Read an image as ``uint8`` in PIL ``mode`` ("L": (H, W); "RGB": (H, W, 3); "RGBA": (H, W, 4))."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I;16", "I;16B", "I") and mode == "L":
                array = np.asarray(image, dtype=np.float64)
                scale = 255.0 / max(float(array.max()), 1.0)
                return (array * scale).round().astype(np.uint8)
            return np.array(image.convert(mode), dtype=np.uint8)  # a writable copy (torch.from_numpy needs one)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"cannot read image {path}: {error} (is the file complete and an image?)") from error


def to_label_mask(array: np.ndarray, num_classes: int = 2, source: str | Path = "<array>") -> np.ndarray:
    """Return an ``(H, W)`` uint8 label map with values in ``[0, num_classes)``.

    A binary mask stored as 0/255 (the most common mistake with segmentation data) is detected and converted
    to 0/1 with a warning. Any other value outside the class range raises :class:`DataError`.
    """
    if array.ndim == 3:
        if array.shape[2] in (3, 4) and np.all(array[..., :3] == array[..., :1]):
            array = array[..., 0]
        else:
            raise DataError(
                f"mask {source} has shape {array.shape}; expected a single-channel label map (H, W). "
                "Multi-channel masks (one channel per class) need a reader that knows the class order."
            )
    values = np.unique(array)
    if values.max(initial=0) < num_classes:
        return array.astype(np.uint8)
    if num_classes == 2 and set(values.tolist()) <= {0, 255}:
        warnings.warn(f"mask {source} is stored as 0/255; converted to class indices 0/1", stacklevel=3)
        return (array == 255).astype(np.uint8)
    raise DataError(
        f"mask {source} has values {values[:10].tolist()} but {num_classes} classes were expected "
        f"(class indices 0..{num_classes - 1}, or 0/255 for a binary mask)"
    )


def read_label_mask(path: str | Path, num_classes: int = 2) -> np.ndarray:
    """Read a single-channel mask file as an ``(H, W)`` uint8 label map (see :func:`to_label_mask`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask not found: {path}")
    try:
        with Image.open(path) as image:
            array = np.asarray(image)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise DataError(f"cannot read mask {path}: {error} (is the file complete and an image?)") from error
    return to_label_mask(array, num_classes=num_classes, source=path)


def write_image(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an image (format from the suffix), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path
