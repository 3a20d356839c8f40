"""Video files and DICOM cines read as frame sequences, with errors that name the file and the fix.

``medseg predict`` takes a whole angiography run as one file: a video (``.mp4``, ``.avi``, ...; decoded with
PyAV, FFmpeg's bindings) or a DICOM cine (a multi-frame X-ray angiography object; pydicom). Both come back as a
list of frames in time order (frame 0 first), in the form :func:`medseg_core.data.io.read_image` gives a frame
of a folder: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 for 8-bit pixels, else float32 in [0, 1], so a cine is
prepared exactly as the same frames stored as PNGs would be.

DICOM pixels are scaled by the bits they store (``BitsStored``: a 10-bit cine's 1023 is 1.0), ``MONOCHROME1``
(white is 0) is inverted, palette colour looked up and YCbCr converted to RGB (pydicom's default).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .io import _channels_to_mode

__all__ = ["VIDEO_SUFFIXES", "DICOM_SUFFIXES", "is_video", "is_dicom", "read_video", "read_dicom", "read_sequence"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv")
DICOM_SUFFIXES = (".dcm", ".dicom")
_DICOM_MAGIC_OFFSET = 128  # "DICM" follows the 128-byte preamble of a DICOM file (PS3.10, 7.1)


def is_video(path: str | Path) -> bool:
    """Whether ``path`` is named as a video file (:data:`VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_dicom(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM file: named ``.dcm``/``.dicom``, or any file with the ``DICM`` marker (files
    exported from a PACS often have no suffix)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(_DICOM_MAGIC_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def read_video(path: str | Path, mode: str = "L") -> list[np.ndarray]:
    """Every frame of a video file in presentation order: ``(H, W)`` (``mode="L"``) or ``(H, W, 3)`` (``"RGB"``)
    uint8.

    Raises:
        DataError: the file is missing, not a video FFmpeg can decode, holds no video stream or no frame.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataError(f"{path} holds no video stream (audio only?): give a video of the angiography run")
            frames = [frame.to_ndarray(format="gray" if mode == "L" else "rgb24")
                      for frame in container.decode(container.streams.video[0])]
    except av.FFmpegError as error:
        raise DataError(f"cannot read video {path}: {error} (is the file complete and a video? Export the run as "
                        "MP4 or AVI, or as a folder of numbered PNG frames)") from error
    if not frames:
        raise DataError(f"video {path} holds no frame")
    return frames


def read_dicom(path: str | Path, mode: str = "L") -> list[np.ndarray]:
    """Every frame of a DICOM image or cine in stored (frame number) order: ``(H, W)`` (``mode="L"``) or
    ``(H, W, 3)`` (``"RGB"``), uint8 when it stores 8-bit pixels, else float32 in [0, 1].

    Raises:
        DataError: the file is missing or not DICOM, holds no pixel data (a report, a presentation state), or
            pixels pydicom cannot decode (a compressed transfer syntax without its decoder package).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_color_lut

    path = Path(path)
    if not path.is_file():
        raise DataError(f"DICOM file not found: {path}")
    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read DICOM file {path}: {error}") from error
    if "PixelData" not in dataset:
        kind = getattr(dataset, "SOPClassUID", None)
        raise DataError(f"DICOM file {path} holds no pixel data ({kind.name if kind else 'no SOP class'}): it is not "
                        "an image or a cine; give the file of the angiography run itself")
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # pydicom raises several types for missing decoders and damaged pixel data
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown transfer syntax")
        raise DataError(f"cannot decode the pixels of DICOM file {path} ({getattr(syntax, 'name', syntax)}: "
                        f"{error}); install the decoder pydicom names, or export the cine uncompressed") from error
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    pixels = pixels.reshape(frames, *pixels.shape[-3 if samples > 1 else -2:])
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
        unit = pixels.astype(np.float64) / float(np.iinfo(pixels.dtype).max)
    else:
        bits = int(getattr(dataset, "BitsStored", 8 * pixels.dtype.itemsize))
        if bits == 8 and pixels.dtype == np.uint8 and photometric != "MONOCHROME1":  # as an 8-bit PNG is read
            return [np.array(Image.fromarray(frame).convert(mode), dtype=np.uint8) for frame in pixels]
        offset = 2.0 ** (bits - 1) if int(getattr(dataset, "PixelRepresentation", 0)) == 1 else 0.0
        unit = np.clip((pixels.astype(np.float64) + offset) / (2.0 ** bits - 1.0), 0.0, 1.0)
        if photometric == "MONOCHROME1":
            unit = 1.0 - unit
    return [_channels_to_mode(frame, mode, path).astype(np.float32) for frame in unit]


def read_sequence(path: str | Path, mode: str = "L") -> list[np.ndarray]:
    """The frames of a video file or a DICOM file (:func:`read_video`, :func:`read_dicom`), in time order.

    Raises:
        DataError: ``path`` is neither, or cannot be read (see those functions).
    """
    if is_video(path):
        return read_video(path, mode)
    if is_dicom(path):
        return read_dicom(path, mode)
    raise DataError(f"{path} is neither a video ({', '.join(VIDEO_SUFFIXES)}) nor a DICOM file")
