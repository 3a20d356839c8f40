"""Inference on folders: masks and overlays for OCT images or whole XCA videos, from a saved checkpoint.

``medseg predict`` calls :func:`predict_folder`. Inputs are prepared exactly as in training, from the
``metadata`` a :class:`medseg_core.training.Trainer` checkpoint carries (task, image size, window length and
policy): OCT frames are resized and ImageNet-normalised; XCA frames are divided by their own maximum and every
frame of a video is segmented from its own window (replicate padding at the ends), so a whole video gets a mask
per frame. Masks are written at the input's original size as class-index PNGs (0 = background).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data.io import DataError, list_images, read_image, write_image
from .data.oct import IMAGENET_MEAN, IMAGENET_STD
from .data.xca import FRAMES_DIR, scale_by_frame_max, window_indices
from .training import load_checkpoint, load_model
from .viz import overlay

__all__ = ["predict_labels", "predict_images", "predict_video", "predict_folder"]


@torch.no_grad()
def predict_labels(model: nn.Module, inputs: torch.Tensor, output_size: tuple[int, int],
                   threshold: float = 0.5) -> np.ndarray:
    """Label maps ``(B, H_out, W_out)`` uint8 for a batch of prepared inputs, resized to ``output_size``."""
    device = next(model.parameters()).device
    logits = model(inputs.to(device)).float()
    logits = F.interpolate(logits, size=output_size, mode="bilinear", align_corners=False)
    if logits.shape[1] == 1:
        labels = torch.sigmoid(logits[:, 0]) > threshold
    else:
        labels = logits.argmax(dim=1)
    return labels.to(torch.uint8).cpu().numpy()


def _prepare_rgb(image: np.ndarray, image_size: int) -> torch.Tensor:
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    tensor = F.interpolate(tensor[None], size=(image_size, image_size), mode="bilinear", antialias=True,
                           align_corners=False)[0]
    return (tensor - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)


def predict_images(model: nn.Module, paths: list[Path], image_size: int,
                   threshold: float = 0.5) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """OCT-style RGB images, one at a time: yields ``(path, image (H, W, 3) uint8, labels (H, W) uint8)``."""
    for path in paths:
        image = read_image(path, "RGB")
        labels = predict_labels(model, _prepare_rgb(image, image_size)[None], image.shape[:2], threshold)[0]
        yield path, image, labels


def predict_video(model: nn.Module, frame_paths: list[Path], image_size: int, window_length: int,
                  window_policy: str = "centre", sequence_input: bool = True,
                  threshold: float = 0.5) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Every frame of a video from its own window: yields ``(path, frame (H, W) uint8, labels (H, W) uint8)``."""
    frames = [read_image(path, "L") for path in frame_paths]
    sizes = {frame.shape for frame in frames}
    if len(sizes) > 1:
        raise DataError(f"frames of {frame_paths[0].parent} differ in size: {sorted(sizes)}")
    stack = torch.from_numpy(np.stack(frames)).float()
    stack = F.interpolate(stack[None], size=(image_size, image_size), mode="bilinear", antialias=True,
                          align_corners=False)[0]
    for position, path in enumerate(frame_paths):
        window = scale_by_frame_max(stack[window_indices(position, len(frames), window_length, window_policy)])
        inputs = window[None, None] if sequence_input else window[None]
        yield path, frames[position], predict_labels(model, inputs, frames[position].shape, threshold)[0]


def _videos(input_dir: Path) -> list[tuple[str, list[Path]]]:
    """``(name, frame paths)`` for a MOSXAV split folder, a folder of video folders, or one video folder."""
    root = input_dir / FRAMES_DIR if (input_dir / FRAMES_DIR).is_dir() else input_dir
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if folders:
        return [(folder.name, list_images(folder)) for folder in folders]
    return [(input_dir.name, list_images(input_dir))]


def predict_folder(
    checkpoint: str | Path,
    input_dir: str | Path,
    output_dir: str | Path,
    *,
    threshold: float = 0.5,
    device: str | torch.device | None = "auto",
) -> pd.DataFrame:
    """Segment a folder with a trained checkpoint; write ``masks/`` and ``overlays/`` under ``output_dir``.

    Args:
        checkpoint: ``best.pt``/``last.pt`` written by the Trainer (via ``medseg train`` or a notebook).
        input_dir: OCT: a folder of images. XCA: one video folder of frames, a folder of video folders, or a
            MOSXAV split folder (``JPEGImages/<video>/``).

    Returns:
        One row per image/frame: ``id``, ``mask_path``, ``overlay_path``, ``foreground_fraction``.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    state = load_checkpoint(checkpoint)
    metadata: dict[str, Any] = state.get("metadata") or {}
    if "task" not in metadata:
        raise ValueError(f"{checkpoint} has no task metadata; it was not written by medseg train or experiments.train")
    model = load_model(state, device)
    if metadata["task"] == "xca":
        predictions = (
            (f"{name}/{path.stem}", image, labels)
            for name, paths in _videos(input_dir)
            for path, image, labels in predict_video(model, paths, metadata["image_size"], metadata["window_length"],
                                                     metadata["window_policy"], metadata.get("sequence_input", True),
                                                     threshold)
        )
    else:
        predictions = ((path.stem, image, labels) for path, image, labels in
                       predict_images(model, list_images(input_dir), metadata["image_size"], threshold))
    rows = []
    for case_id, image, labels in predictions:
        mask_path = write_image(output_dir / "masks" / f"{case_id}.png", labels)
        picture = overlay(image if image.ndim == 2 else torch.from_numpy(image).permute(2, 0, 1) / 255.0,
                          prediction=labels > 0)
        overlay_path = write_image(output_dir / "overlays" / f"{case_id}.png", picture.permute(1, 2, 0).numpy())
        rows.append({"id": case_id, "mask_path": str(mask_path), "overlay_path": str(overlay_path),
                     "foreground_fraction": float((labels > 0).mean())})
    table = pd.DataFrame(rows)
    table.to_csv(output_dir / "predictions.csv", index=False)
    return table
