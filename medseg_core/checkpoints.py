"""What every checkpoint carries and how it is written and read.

A checkpoint is a dict of tensors and plain values (``torch.load(..., weights_only=True)`` safe): the model's
weights and ``model_spec`` (registered name + constructor arguments, set by
:func:`medseg_core.models.create_model`), the optimiser/scheduler/scaler states and history the Trainer needs
to resume, its ``config``, and a :class:`RunMetadata`: how inputs were prepared in training, so that
:mod:`medseg_core.inference` prepares them the same way. The contract compares itself: :func:`settings_differences`
names how a stored run was trained otherwise than a config and metadata say, leaving out :data:`SPEED_SETTINGS`
(a resume also accepts :data:`RESUME_MAY_CHANGE`). Every way of training (``medseg train``,
:func:`medseg_core.experiments.train`, a notebook's own :class:`~medseg_core.training.Trainer`) writes one.

Writes are atomic (:func:`medseg_core.files.atomic_output`); an unreadable file is reported as such, with the
way out.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch

from .config import TrainConfig
from .errors import KitError
from .files import atomic_output
from .models import SegmentationModel, create_model
from .runtime import get_device

__all__ = ["RunMetadata", "SPEED_SETTINGS", "RESUME_MAY_CHANGE", "settings_differences", "CheckpointError",
           "CheckpointNotFoundError", "save_checkpoint", "copy_checkpoint",
           "load_checkpoint", "check_finite_weights", "load_model", "load_run", "describe_checkpoint"]

SPEED_SETTINGS = ("compile", "num_threads", "keep_freed_memory", "save_every")  # change speed, not results
RESUME_MAY_CHANGE = ("epochs", *SPEED_SETTINGS)  # a resume accepts a changed length and speed settings


class CheckpointError(KitError, RuntimeError):
    """A checkpoint that cannot be read or used; the message names the file and what to do."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint at the given path."""


@dataclass(frozen=True)
class RunMetadata:
    """How a run's inputs were prepared, stored in every checkpoint (plain values only).

    Args:
        task: the task's name (:data:`medseg_core.tasks.TASKS`: ``"xca"``, vessel windows, or ``"oct"``, RGB frames),
            which inference looks up (:func:`medseg_core.tasks.get_task`, an unknown name is refused there).
        image_size: side of the square model input.
        class_names: foreground class names, in label order (label 0 is background).
        input_kind: ``"window"`` (``(B, C, T, H, W)``) or ``"image"`` (``(B, C, H, W)``), the model's fact.
        window_length: frames per XCA window (1 for OCT and for 2D models on XCA).
        window_policy: ``"centre"`` or ``"past"`` (XCA).
        single_frame: trained on single frames (XCA data sets of one-frame videos, :mod:`medseg_core.data.public`):
            every training window repeated its one frame ``window_length`` times, so the model never saw motion.
            False in checkpoints written before the field existed.
    """

    task: str
    image_size: int
    class_names: tuple[str, ...] = ("foreground",)
    input_kind: str = "image"
    window_length: int = 1
    window_policy: str = "centre"
    single_frame: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(self.class_names))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the checkpoint (lists, not tuples: ``weights_only`` accepts both)."""
        return {**dataclasses.asdict(self), "class_names": list(self.class_names)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "RunMetadata":
        """Inverse of :meth:`to_dict`; unknown keys are ignored, missing ones take their defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in names})


def settings_differences(state: Mapping[str, Any], config: TrainConfig, metadata: RunMetadata,
                         ignore: Iterable[str] = SPEED_SETTINGS) -> list[str]:
    """How a checkpoint ``state`` was trained otherwise than ``config`` and ``metadata`` say: ``"key: stored ...,
    now ..."`` per training setting (leaving out ``ignore`` and settings the checkpoint predates), and the run
    metadata when it differs (metadata fields the checkpoint predates compare as their defaults). Empty when they
    agree."""
    stored = state.get("config") or {}
    differences = [f"{key}: stored {stored[key]!r}, now {value!r}" for key, value in asdict(config).items()
                   if key not in ignore and key in stored and stored[key] != value]
    stored_metadata = state.get("metadata") or {}
    if "task" in stored_metadata:
        stored_metadata = RunMetadata.from_dict(stored_metadata).to_dict()
    if stored_metadata != metadata.to_dict():
        differences.append(f"run metadata: stored {state.get('metadata')}, now {metadata.to_dict()}")
    return differences


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically: a crash mid-write leaves the previous file intact."""
    with atomic_output(path) as temporary:
        torch.save(state, temporary)
    return Path(path)


def copy_checkpoint(source: str | Path, destination: str | Path) -> Path:
    """Make ``destination`` a copy of the checkpoint ``source``, atomically, without rewriting its bytes.

    A hard link where the file system has them (instant; :func:`save_checkpoint` replaces files rather than
    rewriting them, so a later save to ``source`` leaves ``destination`` as it is), else a file copy.
    """
    with atomic_output(destination) as temporary:
        temporary.unlink(missing_ok=True)
        try:
            os.link(source, temporary)
        except OSError:  # no hard links here (some network or FAT file systems)
            shutil.copyfile(source, temporary)
    return Path(destination)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no code in the file runs); ``mmap=True`` maps the tensors
    instead of reading them (fast when only the settings are needed).

    Raises:
        CheckpointNotFoundError: (a ``FileNotFoundError``) no file at ``path``.
        CheckpointError: the file is empty, truncated, not a checkpoint, or holds objects other than tensors and
            plain values (the message says why, and not to retry with ``weights_only=False`` on untrusted files).
    """
    path = Path(path)
    if path.is_dir():
        held = ", ".join(sorted(item.name for item in path.glob("*.pt"))) or "none here"
        raise CheckpointNotFoundError(f"{path} is a folder, not a checkpoint: give one of the run's checkpoints "
                                      f"({held})")
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty (0 bytes; an interrupted copy?). "
                              f"{_way_out(path)}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises several types for truncated or foreign files
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        unsafe = [line for line in lines if "unsupported global" in line.lower()]  # torch spells it two ways
        if unsafe:
            raise CheckpointError(
                f"refused to load {path}: it holds pickled Python objects other than tensors and plain values "
                f"({unsafe[0][:160]}), which could run code when loaded: a malicious or foreign file. Do not retry "
                "with weights_only=False unless you trust where the file came from."
            ) from error
        causes = [line for line in lines if not line.startswith("Check the documentation")]
        reason = causes[-1] if causes else type(error).__name__  # torch puts the cause last, then a link
        raise CheckpointError(f"cannot read checkpoint {path} ({type(error).__name__}: {reason}): the file is "
                              f"truncated or not a checkpoint. {_way_out(path)}") from error


def describe_checkpoint(state: Mapping[str, Any], source: str | Path) -> str:
    """One line naming a checkpoint and what it learnt: file, task, model, profile (and recipe) of the run when it
    recorded them (``run_config``), epochs trained of those planned, and the validation scores of its epoch.

    Example: ``checkpoint runs/smoke/xca_svsnet_T4-centre_seed0/best.pt: task xca, svsnet, profile smoke, epoch 1
    of 1, validation Dice 0.0312, loss 0.914``.
    """
    metadata, spec = state.get("metadata") or {}, state.get("model_spec") or {}
    run, config, epoch = state.get("run_config") or {}, state.get("config") or {}, state.get("epoch")
    parts = [f"task {metadata.get('task', 'unknown')}", spec.get("name", "model of unknown kind")]
    if run.get("profile"):
        parts.append(f"profile {run['profile']}" + (f" with recipe {run['recipe']}" if run.get("recipe") else ""))
    if epoch is not None:
        parts.append(f"epoch {epoch} of {config.get('epochs', '?')}")
    row = next((row for row in reversed(state.get("history") or []) if row.get("epoch") == epoch), {})
    scores = [f"{label} {row[key]:.4g}" for key, label in (("val_dice", "Dice"), ("val_loss", "loss"))
              if isinstance(row.get(key), float) and row[key] == row[key]]
    parts.append("validation " + ", ".join(scores) if scores else "no validation score recorded")
    return f"checkpoint {source}: {', '.join(parts)}"


def _way_out(path: Path) -> str:
    """What to do about an unreadable checkpoint: use another one of its run (named, when its folder holds one)."""
    others = sorted(item for item in path.parent.glob("*.pt") if item.name != path.name)
    if not others:
        return "Retrain the run (move its folder aside and start again)."
    return (f"Use another checkpoint of the run ({', '.join(str(item) for item in others)}: to resume from it, copy "
            f"it over {path}), or move the run folder aside and start again.")


def check_finite_weights(weights: Mapping[str, Any], source: str | Path) -> None:
    """Refuse model weights holding NaN or Inf (a run that diverged): its predictions would be empty or noise.

    Raises:
        CheckpointError: naming ``source``, the tensors and the way out.
    """
    bad = [name for name, tensor in weights.items() if isinstance(tensor, torch.Tensor)
           and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise CheckpointError(f"{source} holds non-finite weights (NaN or Inf in {len(bad)} "
                              f"{'tensor' if len(bad) == 1 else 'tensors'}: {shown}): the run diverged. Use an earlier "
                              "checkpoint of it, or retrain with a lower learning rate or gradient clipping")


def load_model(checkpoint: str | Path | Mapping[str, Any], device: str | torch.device | None = "auto") -> SegmentationModel:
    """Rebuild a registered model from a checkpoint (a path or an already loaded state), in eval mode.

    Raises:
        CheckpointError: no ``model_spec``, or weights with NaN/Inf (:func:`check_finite_weights`).
    """
    if isinstance(checkpoint, Mapping):
        return _build_model(checkpoint, device, "the checkpoint")
    return _build_model(load_checkpoint(checkpoint), device, checkpoint)


def _build_model(state: Mapping[str, Any], device: str | torch.device | None, source: str | Path) -> SegmentationModel:
    spec = state.get("model_spec")
    if not spec:
        raise CheckpointError("the checkpoint has no model_spec; build the model yourself and load state['model']")
    check_finite_weights(state["model"], source)
    kwargs = {k: v for k, v in spec["kwargs"].items() if k != "pretrained"}
    model = create_model(spec["name"], **kwargs)
    model.load_state_dict(state["model"])
    return model.to(get_device(device)).eval()


def load_run(checkpoint: str | Path, device: str | torch.device | None = "auto") -> tuple[SegmentationModel, RunMetadata]:
    """The model (eval mode) and the :class:`RunMetadata` of a checkpoint, for inference.

    Raises:
        CheckpointError: the checkpoint has no run metadata (it was not written by the kit's Trainer), or its weights
            hold NaN/Inf.
    """
    state = load_checkpoint(checkpoint)
    if not state.get("metadata") or "task" not in state["metadata"]:
        raise CheckpointError(f"{checkpoint} has no run metadata (task, image size, window); it was not written by "
                              "the kit's Trainer. Retrain with medseg train or a notebook of this kit.")
    return _build_model(state, device, checkpoint), RunMetadata.from_dict(state["metadata"])
