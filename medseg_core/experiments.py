"""Experiments: a task (data + loss + classes) x a model x a seed -> a trained run and tidy result tables.

Two tasks are built in: ``"xca"`` (SVSnet's vessel segmentation on angiography windows) and ``"oct"``
(lipid-core segmentation on OCT frames). :func:`train` is what ``medseg train``, the training notebooks and
the ablations call; :func:`run_grid` trains variants x seeds with identical budgets and skips runs whose
results already exist, so long ablations can be interrupted and resumed.

Everything a run needs comes from a :class:`medseg_core.config.Profile`; data is generated on first use
(synthetic) unless ``data_root`` points at real data in the same layout.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch.nn as nn
from torch.utils.data import DataLoader

from .config import Profile, TrainConfig
from .files import write_csv_atomic
from .evaluation import evaluate
from .losses import CEDiceLoss, DiceLoss
from .models import count_parameters, create_model
from .runtime import seed_everything
from .training import Trainer, load_checkpoint

__all__ = ["Task", "TASKS", "get_task", "TrainedRun", "train", "run_grid"]

SEQUENCE_MODELS = ("svsnet",)


@dataclass(frozen=True)
class Task:
    """What a segmentation problem needs besides the model: data, loss, class names, training settings."""

    name: str
    default_model: str
    make_data: Callable[[Profile], Path]
    make_loaders: Callable[[Profile, Path, str, int], dict[str, DataLoader]]
    make_loss: Callable[[], nn.Module]
    model_kwargs: Callable[[Profile, str], dict[str, Any]]
    train_config: Callable[[Profile], TrainConfig]
    metadata: Callable[[Profile, str], dict[str, Any]]  # stored in checkpoints: how inference prepares inputs


# ------------------------------------------------------------------------------------------------------ XCA
def _xca_data(profile: Profile) -> Path:
    from .data.synthetic_xca import ensure_xca_dataset

    return ensure_xca_dataset(profile.xca, profile.data_dir("xca"))


def _xca_profile_for(profile: Profile, model_name: str) -> Profile:
    """2D models see the labelled frame alone (T = 1); sequence models see the profile's window."""
    return profile if model_name in SEQUENCE_MODELS else profile.override({"xca.window_length": 1})


def _xca_loaders(profile: Profile, root: Path, model_name: str, seed: int) -> dict[str, DataLoader]:
    from .data.xca import xca_dataloaders

    profile = _xca_profile_for(profile, model_name)
    return xca_dataloaders(root, profile.xca, profile.svsnet.batch_size, num_workers=profile.svsnet.num_workers,
                           seed=seed, time_axis=model_name in SEQUENCE_MODELS)


def _xca_metadata(profile: Profile, model_name: str) -> dict[str, Any]:
    xca = _xca_profile_for(profile, model_name).xca
    return {"task": "xca", "image_size": xca.image_size, "window_length": xca.window_length,
            "window_policy": xca.window_policy, "sequence_input": model_name in SEQUENCE_MODELS,
            "class_names": ["vessel"]}


def _xca_model_kwargs(profile: Profile, model_name: str) -> dict[str, Any]:
    if model_name in SEQUENCE_MODELS:
        return {"window_length": profile.xca.window_length}
    return {"in_channels": 1, "num_classes": 1}


# ------------------------------------------------------------------------------------------------------ OCT
def _oct_data(profile: Profile) -> Path:
    from .data.synthetic_oct import ensure_oct_dataset

    return ensure_oct_dataset(profile.oct, profile.data_dir("oct"))


def _oct_loaders(profile: Profile, root: Path, model_name: str, seed: int) -> dict[str, DataLoader]:
    from .data.oct import oct_dataloaders

    return oct_dataloaders(root, profile.oct, profile.deeplab.batch_size, num_workers=profile.deeplab.num_workers,
                           seed=seed)


def _oct_metadata(profile: Profile, model_name: str) -> dict[str, Any]:
    return {"task": "oct", "image_size": profile.oct.image_size, "class_names": list(profile.oct.classes)}


def _oct_model_kwargs(profile: Profile, model_name: str) -> dict[str, Any]:
    num_classes = 1 + len(profile.oct.classes)
    if model_name == "deeplabv3plus":
        return {"num_classes": num_classes}
    return {"in_channels": 3, "num_classes": num_classes}


TASKS: dict[str, Task] = {
    "xca": Task(
        name="xca",
        default_model="svsnet",
        make_data=_xca_data,
        make_loaders=_xca_loaders,
        make_loss=lambda: DiceLoss(mode="binary"),
        model_kwargs=_xca_model_kwargs,
        train_config=lambda profile: profile.svsnet,
        metadata=_xca_metadata,
    ),
    "oct": Task(
        name="oct",
        default_model="deeplabv3plus",
        make_data=_oct_data,
        make_loaders=_oct_loaders,
        make_loss=lambda: CEDiceLoss(),
        model_kwargs=_oct_model_kwargs,
        train_config=lambda profile: profile.deeplab,
        metadata=_oct_metadata,
    ),
}


def get_task(name: str) -> Task:
    """A built-in task by name; ``KeyError`` lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}") from None


@dataclass
class TrainedRun:
    """The result of :func:`train`: the model (best weights, eval mode), its history, data and folder."""

    model: nn.Module
    history: pd.DataFrame
    loaders: dict[str, DataLoader]
    run_dir: Path
    metadata: dict[str, Any]

    def evaluate(self, split: str = "test", **kwargs: Any) -> pd.DataFrame:
        """Per-case metrics on a split (see :func:`medseg_core.evaluation.evaluate`)."""
        return evaluate(self.model, self.loaders[split], class_names=self.metadata["class_names"], **kwargs)


def train(
    task: str | Task,
    profile: Profile,
    *,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    run_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
) -> TrainedRun:
    """Train one model on one task with the profile's settings; returns the best checkpoint's model.

    Args:
        task: ``"xca"`` or ``"oct"`` (or a :class:`Task`).
        model_name: a registered model (default: the task's, SVSnet or DeepLabV3+).
        model_kwargs: extra constructor arguments (e.g. ``{"eca": "none"}``).
        seed: seeds model initialisation, data order and augmentation.
        run_dir: checkpoints and history (default ``runs/<profile>/<task>_<model>_seed<seed>``).
        data_root: real or previously generated data in the task's layout (default: generate synthetic data).
        resume: continue from ``run_dir/last.pt`` if it exists.
    """
    task = get_task(task) if isinstance(task, str) else task
    model_name = model_name or task.default_model
    root = Path(data_root) if data_root is not None else task.make_data(profile)
    run_dir = Path(run_dir) if run_dir is not None else profile.run_dir(f"{task.name}_{model_name}_seed{seed}")
    loaders = task.make_loaders(profile, root, model_name, seed)
    seed_everything(seed)
    model = create_model(model_name, **{**task.model_kwargs(profile, model_name), **(model_kwargs or {})})
    config = replace(task.train_config(profile), seed=seed)
    metadata = task.metadata(profile, model_name)
    trainer = Trainer(model, task.make_loss(), config, run_dir, progress=progress, metadata=metadata)
    history = trainer.fit(loaders["train"], loaders.get("val"), resume=resume)
    best = run_dir / "best.pt"
    if best.is_file():
        model.load_state_dict(load_checkpoint(best, map_location=trainer.device)["model"])
    return TrainedRun(model.eval(), history, loaders, run_dir, metadata)


def run_grid(
    task: str | Task,
    profile: Profile,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    results_dir: str | Path,
    *,
    split: str = "test",
    recompute: bool = False,
    progress: bool = False,
    verbose: bool = False,
) -> pd.DataFrame:
    """Train every variant with every seed under the same budget and evaluate it; resumable.

    Args:
        variants: ``{variant name: {"model_name": ..., "model_kwargs": {...}, "overrides": {...}}}``; overrides
            are dotted profile keys applied for that variant only (e.g. ``{"xca.window_length": 2}``).
        results_dir: per-run CSVs (``<variant>_seed<seed>.csv``) and run folders (``<variant>_seed<seed>/`` with
            ``best.pt`` and ``history.csv``); a run whose CSV exists is read back instead of retrained unless
            ``recompute``. An interrupted run resumes from its ``last.pt``, which is deleted once its CSV is
            written (it is only needed to resume, and it is the largest file).
        progress: progress bars while training.
        verbose: print one line per run (trained or read back, seconds, mean test Dice).

    Returns:
        Per-case metrics of all runs with ``variant``, ``seed``, ``parameters`` and ``train_seconds`` columns.
    """
    task = get_task(task) if isinstance(task, str) else task
    results_dir = Path(results_dir)
    tables = []
    for variant, spec in variants.items():
        variant_profile = profile.override(spec.get("overrides"))
        for seed in seeds:
            csv = results_dir / f"{variant}_seed{seed}.csv"
            if csv.is_file() and not recompute:
                tables.append(pd.read_csv(csv))
                if verbose:
                    print(f"{variant} seed {seed}: read back from {csv}", flush=True)
                continue
            start = time.perf_counter()
            run = train(task, variant_profile, model_name=spec.get("model_name"), model_kwargs=spec.get("model_kwargs"),
                        seed=seed, run_dir=results_dir / f"{variant}_seed{seed}", resume=not recompute,
                        progress=progress)
            seconds = time.perf_counter() - start
            table = run.evaluate(split).assign(variant=variant, seed=seed, parameters=count_parameters(run.model),
                                               train_seconds=round(seconds, 1))
            write_csv_atomic(table, csv)  # the CSV marks the run as done: never leave half of one
            (run.run_dir / "last.pt").unlink(missing_ok=True)
            tables.append(table)
            if verbose:
                print(f"{variant} seed {seed}: trained and tested in {seconds:.1f} s, mean test Dice "
                      f"{table['dice'].mean():.3f}", flush=True)
    return pd.concat(tables, ignore_index=True)
