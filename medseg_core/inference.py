"""Inference on folders and files: masks and overlays for OCT images or whole XCA videos, from a saved checkpoint.

``medseg predict`` calls :func:`predict_folder`. The checkpoint's :class:`~medseg_core.checkpoints.RunMetadata`
says which task it was trained for and how inputs were prepared; inputs go through that task's preprocessing
function (:mod:`medseg_core.data.preprocess`, the one the datasets call). Every frame of an XCA video is
segmented from its own window (replicate padding at the ends): each frame is read and prepared once, then the
windows are cut from the prepared video and run in batches. Masks are written at the input's original size as
palette PNGs whose pixels are class indices (0 = background) and whose palette shows each class in colour;
overlays draw the classes in the same colours with a legend naming them.

What ``--input`` may be (:func:`predict_folder`): a folder (OCT images; an XCA video folder of numbered frames, a
folder of such folders, a MOSXAV split folder), one image, a video file (``.mp4``, ``.avi``, ...) or a DICOM file
(a multi-frame cine, or one frame): :mod:`medseg_core.data.video` reads a file's frames in time order, and for XCA
they are the video whose windows are cut, as a folder's frames are. A file's frames are named ``<file
stem>/00000``, ``00001``, ... (their position, from 0), as the kit's own video folders number theirs.

Nothing half-done is left behind: results are written into a staging folder and moved into place once every
input has been predicted, and a folder that already holds predictions is only replaced with ``overwrite``. A
prediction holds a lock on its output folder (``.lock``, :func:`medseg_core.files.folder_lock`) from start to end,
so a second one into the same folder is refused instead of mixing or deleting the first one's results.
"""
from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from .checkpoints import RunMetadata, describe_checkpoint, load_checkpoint, load_run
from .data.io import IMAGE_SUFFIXES, DataError, by_stem, list_images, read_image, write_image, write_label_mask
from .data.video import DICOM_SUFFIXES, VIDEO_SUFFIXES, is_dicom, is_video, read_sequence
from .data.xca import FRAMES_DIR, frames_by_number, window_indices
from .errors import ConfigError
from .files import ensure_writable, folder_lock, write_csv_atomic
from .models import logits_to_labels
from .tasks import get_task
from .viz import class_colours, label_overlay

__all__ = ["predict_labels", "predict_image", "predict_images", "predict_frames", "predict_video", "predict_folder",
           "check_apart", "OUTPUT_ENTRIES"]

OUTPUT_ENTRIES = ("masks", "overlays", "predictions.csv")  # what predict_folder writes into its output folder
STAGING_PREFIX = ".predict-incomplete-"  # the staging folder of one run, inside the output folder
NEARLY_ALL = 0.9  # a frame where the model marks more than this fraction of the pixels is "nearly all" foreground
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


@torch.no_grad()
def predict_labels(model: nn.Module, inputs: torch.Tensor, output_size: tuple[int, int],
                   threshold: float = 0.5) -> np.ndarray:
    """Label maps ``(B, H_out, W_out)`` uint8 for a batch of prepared inputs, logits resized to ``output_size``.

    Each case is upsampled on its own, so a batch of large frames never holds all their full-size logits at once.
    """
    device = next(model.parameters()).device
    logits = model(inputs.to(device)).float()
    labels = [logits_to_labels(F.interpolate(case[None], size=output_size, mode="bilinear", align_corners=False),
                               threshold)[0].to(torch.uint8).cpu().numpy() for case in logits]
    return np.stack(labels)


def predict_image(model: nn.Module, image: np.ndarray, metadata: RunMetadata, threshold: float = 0.5) -> np.ndarray:
    """Labels ``(H, W)`` uint8 of one OCT image ``(H, W, 3)`` (uint8, or float32 in [0, 1]), at its size."""
    inputs = get_task(metadata.task).preprocess(image, image_size=metadata.image_size)["image"][None]
    return predict_labels(model, inputs, image.shape[:2], threshold)[0]


def predict_images(model: nn.Module, paths: list[Path], metadata: RunMetadata,
                   threshold: float = 0.5) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """OCT RGB images, one at a time: yields ``(path, image (H, W, 3) as stored, labels (H, W) uint8)``.

    Raises:
        DataError: an image is greyscale (an XCA frame given to an OCT checkpoint?).
    """
    for path in paths:
        image = read_image(path, "RGB", exact=True)  # as the dataset reads it (any bit depth); corrupt files fail here
        with Image.open(path) as stored:
            if stored.mode in _GREY_MODES:
                raise DataError(f"{path} is a greyscale image (mode {stored.mode}), but the checkpoint was trained on "
                                "RGB OCT frames (task 'oct'); an XCA frame? Use an XCA checkpoint for angiograms.")
        yield path, image, predict_image(model, image, metadata, threshold)


def predict_frames(model: nn.Module, frames: list[np.ndarray], metadata: RunMetadata, threshold: float = 0.5,
                   batch_size: int = 8, source: str | Path = "the video") -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Every frame of a video ``(H, W)`` each, in time order, from its own window, in batches: yields
    ``(position, frame as given, labels (H, W) uint8)``.

    Each frame is prepared once (``(N, h, w)`` float32 at the model's size is kept); windows are cut from the
    prepared frames, ``batch_size`` at a time.

    Raises:
        DataError: the frames differ in size (``source`` names the video).
    """
    preprocess = get_task(metadata.task).preprocess
    sizes = {frame.shape for frame in frames}
    if len(sizes) > 1:
        raise DataError(f"frames of {source} differ in size: {sorted(sizes)}")
    prepared = torch.cat([preprocess(frame[None], image_size=metadata.image_size)["image"] for frame in frames])
    for start in range(0, len(frames), batch_size):
        positions = range(start, min(start + batch_size, len(frames)))
        windows = torch.stack([prepared[window_indices(position, len(frames), metadata.window_length,
                                                       metadata.window_policy)] for position in positions])
        inputs = windows[:, None] if metadata.input_kind == "window" else windows
        labels = predict_labels(model, inputs, frames[0].shape, threshold)
        for offset, position in enumerate(positions):
            yield position, frames[position], labels[offset]


def predict_video(model: nn.Module, frame_paths: list[Path], metadata: RunMetadata, threshold: float = 0.5,
                  batch_size: int = 8) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Every frame of a video folder (paths in time order) from its own window (:func:`predict_frames`): yields
    ``(path, frame (H, W) as stored, labels)``."""
    frames = [read_image(path, "L", exact=True) for path in frame_paths]
    for position, frame, labels in predict_frames(model, frames, metadata, threshold, batch_size,
                                                  frame_paths[0].parent):
        yield frame_paths[position], frame, labels


def _videos(input_dir: Path) -> list[tuple[str, list[Path]]]:
    """``(name, frame paths in number order)`` for a MOSXAV split folder, a folder of video folders, or one video
    folder (an absolute path: its name names the video)."""
    root = input_dir / FRAMES_DIR if (input_dir / FRAMES_DIR).is_dir() else input_dir
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    videos = [(folder.name, list_images(folder)) for folder in folders] or [(input_dir.name or "video",
                                                                             list_images(input_dir))]
    for name, paths in videos:
        named = [path for path in paths if not path.stem.isdigit()]
        if named:
            raise DataError(f"{named[0]} is not an XCA frame named by its number (00000.png, ...), but the checkpoint "
                            "was trained on XCA videos (task 'xca'): give a video folder, a folder of video folders "
                            "or a MOSXAV split folder (an OCT image folder? use an OCT checkpoint).")
    return [(name, list(frames_by_number(paths).values())) for name, paths in videos]  # training's order


def _cases(model: nn.Module, metadata: RunMetadata, input_path: Path, threshold: float,
           batch_size: int) -> tuple[int, Iterator[tuple[str, np.ndarray, np.ndarray]]]:
    """How many masks ``input_path`` (a folder or a file, see :func:`predict_folder`) gives, and ``(case id, image
    as stored, labels)`` for each, predicted lazily. Folder names are checked and files read here."""
    xca = metadata.task == "xca"
    if input_path.is_dir() and xca:
        videos = _videos(input_path)
        return sum(len(paths) for _, paths in videos), (
            (f"{name}/{path.stem}", image, labels) for name, paths in videos
            for path, image, labels in predict_video(model, paths, metadata, threshold, batch_size))
    if input_path.is_dir():
        images = list(by_stem(list_images(input_path), input_path).values())  # a mask per stem: stems unique
        return len(images), ((path.stem, image, labels) for path, image, labels in
                             predict_images(model, images, metadata, threshold))
    if is_video(input_path) or is_dicom(input_path):
        frames, name = read_sequence(input_path, "L" if xca else "RGB"), input_path.stem
        if xca:
            return len(frames), ((f"{name}/{position:05d}", frame, labels) for position, frame, labels
                                 in predict_frames(model, frames, metadata, threshold, batch_size, input_path))
        if all(np.array_equal(frames[0][..., 0], frames[0][..., channel]) for channel in (1, 2)):
            raise DataError(f"{input_path} holds greyscale frames, but the checkpoint was trained on RGB OCT frames "
                            "(task 'oct'); an angiography run? Use an XCA checkpoint for angiograms.")
        return len(frames), ((f"{name}/{position:05d}", frame, predict_image(model, frame, metadata, threshold))
                             for position, frame in enumerate(frames))
    if xca:  # one image: a video of one frame
        if metadata.window_length > 1 and not metadata.single_frame:
            warnings.warn(f"{input_path} is one frame: each of the checkpoint's windows of {metadata.window_length} "
                          "frames repeats it, a motionless video it was not trained on; give the whole run (a video "
                          "folder, a video file or a DICOM cine) for the masks it was trained to make", UserWarning,
                          stacklevel=4)
        return 1, ((input_path.stem, image, labels) for _, image, labels in
                   predict_video(model, [input_path], metadata, threshold, batch_size))
    return 1, ((path.stem, image, labels) for path, image, labels in
               predict_images(model, [input_path], metadata, threshold))


def check_output_folder(output_dir: Path, overwrite: bool) -> None:
    """Refuse an output folder that holds earlier predictions unless ``overwrite``; check it can be written."""
    earlier = [name for name in OUTPUT_ENTRIES if (output_dir / name).exists()]
    if earlier and not overwrite:
        raise ConfigError(f"{output_dir} already holds predictions ({', '.join(earlier)}); choose another --output "
                          "or pass --overwrite to replace them (other files there are kept)")
    ensure_writable(output_dir)


def predict_folder(
    checkpoint: str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    threshold: float = 0.5,
    device: str | torch.device | None = "auto",
    overwrite: bool = False,
    overlays: bool = True,
    batch_size: int = 8,
    progress: bool = True,
) -> pd.DataFrame:
    """Segment a folder with a trained checkpoint; write ``masks/`` (and ``overlays/``) under ``output_dir``.

    Args:
        checkpoint: ``best.pt``/``last.pt`` written by the Trainer (``medseg train``, a notebook, a grid).
        input_dir: a folder, OCT: of images; XCA: one video folder of frames, a folder of video folders, or a
            MOSXAV split folder (``JPEGImages/<video>/``). Or one file: an image, a video (:data:`VIDEO_SUFFIXES`)
            or a DICOM file (a cine); for XCA a file's frames are one video (one image: a video of one frame, every
            window repeats it). It may not lie inside what the prediction replaces (see :func:`check_apart`), nor,
            for an XCA folder, hold ``output_dir``.
        overwrite: replace the masks, overlays and ``predictions.csv`` of an earlier prediction in ``output_dir``.
        threshold: probability above which a binary model's pixel is foreground, in (0, 1).
        overlays: also write overlay pictures, the classes in colour with a legend (masks alone are faster).
        batch_size: XCA windows per forward pass (at least 1).
        progress: a progress bar over the frames (``tqdm.auto``) while a prediction runs.

    Masks are palette PNGs (:func:`~medseg_core.data.io.write_label_mask`): their pixels are the class indices, and
    any image viewer shows the classes in the colours of :func:`~medseg_core.viz.class_colours`. A warning says
    when the model marked nearly every pixel on most frames.

    Returns:
        One row per image/frame: ``id``, ``mask_path``, ``overlay_path`` (relative to ``output_dir``; empty without
        overlays), ``foreground_fraction``; also written as ``predictions.csv``. ``attrs["checkpoint"]`` describes
        the checkpoint (:func:`~medseg_core.checkpoints.describe_checkpoint`).

    Raises:
        ConfigError: ``threshold`` or ``batch_size`` out of range; ``output_dir`` holds earlier predictions
            (without ``overwrite``), cannot be written, overlaps ``input_dir`` (:func:`check_apart`), or another
            prediction into it is running.
        DataError: the inputs cannot be read or do not fit the checkpoint's task.
    """
    if not 0.0 < threshold < 1.0:  # NaN fails too
        raise ConfigError(f"--threshold must be a probability strictly between 0 and 1; got {threshold!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1; got {batch_size!r}")
    check_input(Path(input_dir))
    input_dir, output_dir = Path(input_dir).resolve(), Path(output_dir).resolve()  # `--input ..` names its video
    model, metadata = load_run(checkpoint, device)
    check_apart(input_dir, output_dir, metadata.task)
    with folder_lock(output_dir, advice="wait for it to finish, or choose another --output"):
        check_output_folder(output_dir, overwrite)
        table = _predict_into(model, metadata, input_dir, output_dir, threshold=threshold, overlays=overlays,
                              batch_size=batch_size, progress=progress)
    table.attrs["checkpoint"] = describe_checkpoint(load_checkpoint(checkpoint, mmap=True), checkpoint)
    _warn_if_nearly_everything(table, metadata, table.attrs["checkpoint"])
    return table


def _warn_if_nearly_everything(table: pd.DataFrame, metadata: RunMetadata, checkpoint: str) -> None:
    """Warn when the model marked more than :data:`NEARLY_ALL` of the pixels on most frames: what an untrained or
    diverged model, a threshold too low or inputs unlike the training data look like."""
    full = int((table["foreground_fraction"] > NEARLY_ALL).sum()) if len(table) else 0
    if full > len(table) / 2:
        warnings.warn(
            f"the model marks more than {NEARLY_ALL:.0%} of the pixels as {' or '.join(metadata.class_names)} in {full} "
            f"of {len(table)} frames; such masks rarely mean anything: a model trained too briefly (a smoke run?), a "
            f"--threshold too low, or inputs unlike its training data. Look at the overlays and at the checkpoint "
            f"({checkpoint})",
            UserWarning,
            stacklevel=3,
        )


def check_input(path: Path) -> None:
    """Refuse an input that is neither a folder nor a file :func:`predict_folder` reads, before any work.

    Raises:
        DataError: ``path`` does not exist, or is a file of another kind (named with the kinds it may be).
    """
    kinds = (f"a folder, an image ({', '.join(IMAGE_SUFFIXES)}), a video ({', '.join(VIDEO_SUFFIXES)}) or a DICOM "
             f"file ({', '.join(DICOM_SUFFIXES)}, or any file with the DICM marker)")
    if not path.exists():
        raise DataError(f"input folder not found: {path} (nor a file of that name); --input takes {kinds}")
    if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES and not is_video(path) and not is_dicom(path):
        raise DataError(f"--input {path} is not a file medseg predict reads; it takes {kinds}")


def check_apart(input_dir: Path, output_dir: Path, task: str) -> None:
    """Refuse an input the prediction would replace (inside the output's ``masks/``, ``overlays/`` or staging folder)
    and, for an XCA folder, an output inside the input tree, whose folders are read as videos. Paths are absolute.

    Raises:
        ConfigError: naming both folders and the way out.
    """
    inside = input_dir.relative_to(output_dir).parts if input_dir.is_relative_to(output_dir) else ()
    if inside and (inside[0] in OUTPUT_ENTRIES or inside[0].startswith(STAGING_PREFIX)):
        raise ConfigError(f"--input {input_dir} lies inside {output_dir / inside[0]}, which this prediction replaces: "
                          "choose another --output (or copy the inputs elsewhere)")
    if task == "xca" and input_dir.is_dir() and output_dir.is_relative_to(input_dir):
        raise ConfigError(f"--output {output_dir} lies inside --input {input_dir}, whose folders are read as XCA "
                          "videos: choose an --output outside it")


def _predict_into(model: nn.Module, metadata: RunMetadata, input_dir: Path, output_dir: Path, *, threshold: float,
                  overlays: bool, batch_size: int, progress: bool) -> pd.DataFrame:
    """:func:`predict_folder`'s work, under the output folder's lock: predict into a staging folder of this process
    and move the results into place once every input is done."""
    total, predictions = _cases(model, metadata, input_dir, threshold, batch_size)
    colours = class_colours(metadata.class_names)
    for stale in output_dir.glob(f"{STAGING_PREFIX}*"):  # left by a killed run (a live one would hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=output_dir))
    try:
        rows = []
        # leave=False and delay: short runs and early refusals print no bar; a long one shows it while it runs
        with tqdm(predictions, total=total, desc="predicting", unit="frame", leave=False, delay=0.5,
                  disable=not progress) as bar:
            for case_id, image, labels in bar:
                mask_path = f"masks/{case_id}.png"  # relative to output_dir: the folder can be moved or shared
                write_label_mask(staging / mask_path, labels, colours)
                overlay_path = f"overlays/{case_id}.png" if overlays else ""
                if overlays:
                    picture = label_overlay(image, labels, metadata.class_names)
                    write_image(staging / overlay_path, picture.permute(1, 2, 0).numpy())
                rows.append({"id": case_id, "mask_path": mask_path, "overlay_path": overlay_path,
                             "foreground_fraction": float((labels > 0).mean())})
        table = pd.DataFrame(rows)
        write_csv_atomic(table, staging / "predictions.csv")
        for name in OUTPUT_ENTRIES:  # replace the earlier prediction as a whole, never mix old and new
            target = output_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            if (staging / name).exists():
                (staging / name).rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return table
