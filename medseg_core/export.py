"""Exports of a trained checkpoint: a weights-only checkpoint, and an ONNX model with its preprocessing beside it.

``medseg export`` calls :func:`export_checkpoint`. A run's ``best.pt`` holds what resuming needs (optimiser,
scheduler and grad-scaler states: Adam keeps two tensors per weight, so the file is about three times the model);
the export keeps what using the model needs:

* ``model.pt``: the weights, ``model_spec``, run metadata, training settings and history (no optimiser state);
  ``torch.load(..., weights_only=True)`` reads it, and ``medseg predict``, ``medseg evaluate`` and ``--init-from``
  take it like any checkpoint.
* with ``onnx=True``: ``model.onnx`` (``torch.onnx.export``, the ``torch.export``-based exporter, opset
  :data:`ONNX_OPSET`, any batch size) and ``preprocessing.json``, everything a runtime outside the kit must do to
  the pixels before the model and to the logits after it (:func:`preprocessing_record`), with the check that
  onnxruntime reproduces the PyTorch logits (:data:`ONNX_TOLERANCE`).

Each file is written atomically; an output folder that holds an earlier export is only replaced with
``overwrite`` (then as a whole: no ``model.onnx`` of an earlier export is left beside a new ``model.pt``).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .checkpoints import RunMetadata, describe_checkpoint, load_checkpoint, load_run, save_checkpoint
from .data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from .data.xca import current_frame_position
from .errors import ConfigError
from .files import atomic_output, ensure_writable, file_digest, folder_lock

__all__ = ["WEIGHTS_FILE", "ONNX_FILE", "PREPROCESSING_FILE", "EXPORT_ENTRIES", "ONNX_OPSET", "ONNX_TOLERANCE",
           "weights_only_state", "preprocessing_record", "export_onnx", "export_checkpoint"]

WEIGHTS_FILE = "model.pt"
ONNX_FILE = "model.onnx"
PREPROCESSING_FILE = "preprocessing.json"
EXPORT_ENTRIES = (WEIGHTS_FILE, ONNX_FILE, PREPROCESSING_FILE)  # what an export writes into its output folder
ONNX_OPSET = 18  # the lowest opset torch's exporter implements; onnxruntime >= 1.14 runs it
ONNX_TOLERANCE = 1e-4  # largest absolute logit difference accepted between onnxruntime and PyTorch
_KEPT = ("model", "model_spec", "metadata", "config", "epoch", "history", "run_config", "init_from", "data_id")


def weights_only_state(state: Mapping[str, Any], source: str | Path) -> dict[str, Any]:
    """What using a model needs from a checkpoint ``state`` (:data:`_KEPT`: weights, model spec, run metadata,
    settings, history), without optimiser, scheduler or scaler state, plus where it came from."""
    kept = {key: state[key] for key in _KEPT if key in state}
    return {**kept, "exported_from": {"path": str(Path(source).resolve()), "sha256": file_digest(source)}}


def preprocessing_record(metadata: RunMetadata, channels: int, num_classes: int, threshold: float = 0.5
                         ) -> dict[str, Any]:
    """Everything a runtime must do around the ONNX model, as plain values (``preprocessing.json``).

    Inputs ``(batch, C, H, W)`` (OCT, 2D models) or ``(batch, 1, T, H, W)`` (XCA windows) at ``image_size``;
    logits ``(batch, K, H, W)`` at the same size. The steps are those of :mod:`medseg_core.data.preprocess` and
    :mod:`medseg_core.inference`, in order.
    """
    size = [metadata.image_size, metadata.image_size]
    if metadata.task == "xca":
        frames = metadata.window_length
        normalisation = {"kind": "frame maximum", "rule": "after resizing, each frame is divided by its own maximum "
                         "(all-zero frames stay zero): values in [0, 1]"}
        read = "each frame as greyscale; 8-bit values as they are, others scaled to [0, 1] by their type's range"
    else:
        frames = 1
        normalisation = {"kind": "ImageNet", "scale": "uint8 / 255 after resizing", "mean": list(IMAGENET_MEAN),
                         "std": list(IMAGENET_STD), "rule": "(value / 255 - mean) / std per RGB channel"}
        read = "RGB, 8-bit; resized on the 8-bit values"
    window = metadata.input_kind == "window"
    before = current_frame_position(metadata.window_length, metadata.window_policy) if window else 0
    record: dict[str, Any] = {
        "task": metadata.task,
        "input": {"name": "image", "dtype": "float32",
                  "shape": ["batch", channels, frames, *size] if window else ["batch", channels, *size],
                  "layout": "(batch, channels, frames, height, width)" if window else "(batch, channels, height, width)"},
        "output": {"name": "logits", "dtype": "float32", "shape": ["batch", num_classes, *size],
                   "layout": "(batch, classes, height, width)"},
        "channels": channels,
        "image_size": size,
        "read": read,
        "resize": {"size": size, "interpolation": "bilinear", "antialias": True},
        "normalisation": normalisation,
        "window": None if not window else {
            "length": metadata.window_length, "policy": metadata.window_policy,
            "offsets": [offset - before for offset in range(metadata.window_length)],
            "rule": "the window of frame i holds frames i + offset, in time order, clamped to the video (the first "
                    "and last frames repeat at its ends); every frame is prepared on its own first",
            "trained_on_single_frames": metadata.single_frame},
        "class_names": ["background", *metadata.class_names],
        "labels": ({"rule": "sigmoid(logit) > threshold: class 1, else 0", "threshold": threshold}
                   if num_classes == 1 else {"rule": "argmax over the classes of softmax(logits)"}),
        "output_resize": "logits resized to the input frame's size (bilinear, align_corners=False), then labelled",
    }
    return record


def export_onnx(model: torch.nn.Module, metadata: RunMetadata, path: str | Path) -> float:
    """Write ``model`` (eval mode) as ONNX at ``path`` (atomically), for any batch size, and check it.

    Returns:
        The largest absolute difference between onnxruntime's and PyTorch's logits on a random batch of 2.

    Raises:
        ConfigError: the export packages (``onnx``, ``onnxscript``, ``onnxruntime``) are missing, or onnxruntime's
            logits differ from PyTorch's by more than :data:`ONNX_TOLERANCE`.
    """
    try:
        import onnxruntime
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError as error:
        raise ConfigError(f"ONNX export needs the {error.name} package: pip install 'medseg-kit[export]' (or "
                          "pip install onnx onnxscript onnxruntime)") from error
    size = metadata.image_size
    shape = ((2, model.in_channels, metadata.window_length, size, size) if metadata.input_kind == "window"
             else (2, model.in_channels, size, size))
    example = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    model = model.cpu().eval()
    with torch.no_grad():
        expected = model(example).float().numpy()
    with atomic_output(path) as temporary:  # checked before it replaces anything
        with warnings.catch_warnings():
            # attention blocks keep their last weights for plots (models.blocks): a side effect the graph rightly drops
            warnings.filterwarnings("ignore", message=r"The tensor attributes .*last_weights")
            torch.onnx.export(model, (example,), str(temporary), input_names=["image"], output_names=["logits"],
                              opset_version=ONNX_OPSET, dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        session = onnxruntime.InferenceSession(str(temporary), providers=["CPUExecutionProvider"])
        difference = float(np.abs(session.run(None, {"image": example.numpy()})[0] - expected).max())
        if not difference <= ONNX_TOLERANCE:
            raise ConfigError(f"the ONNX export of this model gives logits {difference:.2g} away from PyTorch's (more "
                              f"than {ONNX_TOLERANCE:g}), so none was written: use {WEIGHTS_FILE} with PyTorch")
    return difference


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path, *, onnx: bool = False,
                      overwrite: bool = False, threshold: float = 0.5) -> dict[str, Path]:
    """Write ``model.pt`` (weights only) and, with ``onnx``, ``model.onnx`` and ``preprocessing.json`` into
    ``output_dir``.

    Returns:
        ``{file name: path}`` of what was written.

    Raises:
        CheckpointNotFoundError: no checkpoint at ``checkpoint`` (a ``FileNotFoundError``).
        CheckpointError: the checkpoint is unreadable, has no run metadata, or holds NaN/Inf weights.
        ConfigError: ``output_dir`` holds an earlier export (without ``overwrite``), cannot be written, or is in
            use; ``threshold`` is not in (0, 1); the ONNX packages are missing or the ONNX model is not faithful.
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"--threshold must be a probability strictly between 0 and 1; got {threshold!r}")
    model, metadata = load_run(checkpoint, "cpu")  # refuses unreadable, foreign and diverged checkpoints
    state = load_checkpoint(checkpoint, mmap=True)  # the rest of it, without reading the tensors twice
    output_dir = Path(output_dir)
    with folder_lock(output_dir, advice="wait for it to finish, or choose another --output"):
        earlier = [name for name in EXPORT_ENTRIES if (output_dir / name).exists()]
        if earlier and not overwrite:
            raise ConfigError(f"{output_dir} already holds an export ({', '.join(earlier)}); choose another --output "
                              "or pass --overwrite to replace it")
        ensure_writable(output_dir)
        written = {}
        if onnx:  # first: a model that cannot be exported faithfully changes nothing
            difference = export_onnx(model, metadata, output_dir / ONNX_FILE)
            written[ONNX_FILE] = output_dir / ONNX_FILE
        written[WEIGHTS_FILE] = save_checkpoint(output_dir / WEIGHTS_FILE, weights_only_state(state, checkpoint))
        if onnx:
            record = {"model_file": ONNX_FILE, "opset": ONNX_OPSET,
                      **preprocessing_record(metadata, model.in_channels, model.num_classes, threshold),
                      "checked": {"runtime": "onnxruntime", "max_abs_logit_difference": difference,
                                  "tolerance": ONNX_TOLERANCE},
                      "checkpoint": describe_checkpoint(state, checkpoint)}
            with atomic_output(output_dir / PREPROCESSING_FILE) as temporary:
                temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            written[PREPROCESSING_FILE] = output_dir / PREPROCESSING_FILE
        for name in EXPORT_ENTRIES:  # an earlier export's other files would not match this one
            if name not in written:
                (output_dir / name).unlink(missing_ok=True)
    return written
