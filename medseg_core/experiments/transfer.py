"""The synthetic-to-real study of notebook 09: fine-tuning on n real frames from scratch and from the
synthetic model, equal steps and validations. :func:`fine_tuning_curve` is the study's design for any task (the
angiography curve of notebook 10 is :mod:`.xca_transfer`)."""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
from torch.utils.data import Dataset

from ..config import RECIPES, Profile, TransferConfig
from ..errors import ConfigError, DataError, UnknownNameError
from ..tasks import get_task
from .runs import grid_run, run_grid


TRANSFER_STARTS = ("scratch", "synthetic")
"""Where the fine-tuning runs of :func:`synthetic_to_real` start: random weights, or the synthetic-trained model."""

_CURVE_SECTIONS = {"oct": ("oct", "deeplab", True), "xca": ("xca", "svsnet", False)}
"""Per task: the profile section holding ``train_frames``, the training section (``epochs``, ``val_every``), and
whether its training loader drops a partial last batch (OCT: DeepLabV3+'s BatchNorm needs two frames)."""


def transfer_profile(profile: Profile, transfer: TransferConfig | None = None) -> Profile:
    """The profile of every run of a synthetic-to-real study: ``profile`` with the recipe ``transfer.recipe`` and
    then ``transfer.overrides`` (default ``profile.transfer``: ``real-oct``, the single pullback's blocks, plaque
    oversampling, rotation), named ``<profile>_<recipe>`` as ``get_profile(..., recipe=)`` names it.

    Raises:
        UnknownNameError: ``transfer.recipe`` is not in :data:`~medseg_core.config.RECIPES`; the message lists them.
    """
    transfer = profile.transfer if transfer is None else transfer
    recipe = transfer.recipe
    if recipe not in RECIPES:
        raise UnknownNameError(f"unknown recipe {recipe!r} (transfer.recipe); valid recipes: {', '.join(RECIPES)}")
    return profile.override({**RECIPES[recipe], **transfer.overrides, "name": f"{profile.name}_{recipe}"})


def real_transfer_data(links_folder: str | Path, pullback: str | Path | None = None) -> tuple[Path, str]:
    """The real OCT frames of :func:`synthetic_to_real` and the recipe (``transfer.recipe``) that splits them.

    With the 111-frame pullback (``pullback``, else :func:`~medseg_core.config.real_data_path`'s
    ``oct_zenodo_pullback``, optional), the kit's 11-frame sample and the pullback are linked into ``links_folder``
    (:func:`~medseg_core.data.oct.real_pullback_folder`): 122 frames, recipe ``real-oct``. Without it, the bundled
    sample's own folder, recipe ``real-oct-sample``.

    Raises:
        DataError: ``pullback`` was given but has no ``img/`` and ``mask/``, or the sample is missing.
    """
    from ..config import REAL_DATASETS, real_data_path
    from ..data.oct import real_pullback_folder

    sample = real_data_path("oct_zenodo_sample")
    found = Path(pullback) if pullback is not None else real_data_path("oct_zenodo_pullback")
    if pullback is not None or (found / "img").is_dir():
        return real_pullback_folder(links_folder, [sample, found]), "real-oct"
    if not (sample / "img").is_dir() or not (sample / "mask").is_dir():
        raise DataError(f"the kit's real OCT sample is missing at {sample} (no img/ and mask/ there): restore "
                        f"data/real/oct_zenodo_sample from git or set {REAL_DATASETS['oct_zenodo_sample']}")
    return sample, "real-oct-sample"


def transfer_budget(frames: int, batch_size: int, transfer: TransferConfig, task: str = "oct") -> dict[str, int]:
    """The overrides of a fine-tuning run on ``frames`` frames: epochs for ``transfer.steps`` optimisation steps
    and ``<train section>.val_every`` for at most ``transfer.validations`` validated epochs (fewer by at most half
    when the epochs do not divide evenly). OCT's training loader drops a partial last batch, so ``frames //
    batch_size`` steps an epoch (one step when ``frames <= batch_size``); XCA's keeps it (``ceil``)."""
    data, training, drop_last = _CURVE_SECTIONS[task]
    batches = frames // batch_size if drop_last else math.ceil(frames / batch_size)
    steps_per_epoch = batches if frames > batch_size else 1
    epochs = math.ceil(transfer.steps / steps_per_epoch)
    return {f"{data}.train_frames": frames, f"{training}.epochs": epochs,
            f"{training}.val_every": math.ceil(epochs / transfer.validations)}


def fine_tuning_curve(
    task_name: str,
    real: Profile,
    transfer: TransferConfig,
    real_root: str | Path,
    pretrained: str | Path,
    results_dir: Path,
    *,
    train_frames: Sequence[int],
    seeds: Sequence[int],
    facts: Callable[[Dataset], dict[str, Any]] = lambda dataset: {},
    quiet: str | None = None,
    recompute: bool = False,
    verbose: bool = True,
) -> pd.DataFrame:
    """The design of a synthetic-to-real study, for any task: its model fine-tuned on ``n`` real training frames
    (each of ``train_frames``; the task's every-k-th rule, the same frames for every seed), from random weights and
    from ``pretrained`` (:data:`TRANSFER_STARTS`), each with ``transfer.steps`` optimisation steps and about
    ``transfer.validations`` validations (:func:`transfer_budget`), under ``real`` (:func:`transfer_profile`);
    tested on ``real_root``'s test split. Runs (``results_dir/<start>_n<n>/<run name>``) are read back when their
    results exist (:func:`run_grid`).

    Args:
        facts: extra columns from a variant's training dataset (e.g. how many of its frames hold plaque).
        quiet: a regular expression of warnings the runs repeat (the split's own words, shown once by the caller).

    Returns:
        Per-frame test results (:func:`run_grid`'s columns) with ``start``, ``train_frames`` (frames used: a count
        above the training split's size means all of it, run once) and the ``facts`` columns.
    """
    task = get_task(task_name)
    model_name, batch = task.default_model, task.train_config(real).batch_size
    variants, columns = {}, {}
    for count in train_frames:
        sized = real.override({f"{_CURVE_SECTIONS[task_name][0]}.train_frames": count})
        with warnings.catch_warnings():  # the split's warnings are the caller's to show, once
            warnings.simplefilter("ignore")
            used_set = task.make_loaders(sized, Path(real_root), model_name, 0)["train"].dataset
        used = len(used_set)
        budget = transfer_budget(used, batch, transfer, task_name)
        for start in TRANSFER_STARTS:
            variant = f"{start}_n{used}"  # a count above the training split's size is the same variant: run once
            variants[variant] = {"model_name": model_name, "overrides": budget, "folder": variant,
                                 "init_from": pretrained if start == "synthetic" else None}
            columns[variant] = {"start": start, "train_frames": used, **facts(used_set)}
    with warnings.catch_warnings():  # the split's warnings once, by the caller; a stalled monitor still warns
        if quiet:
            warnings.filterwarnings("ignore", message=quiet)
        results = run_grid(task, real, variants, seeds, results_dir, data_root=real_root, recompute=recompute,
                           verbose=verbose)
    tables = [results[results["variant"] == variant].assign(**values) for variant, values in columns.items()]
    return pd.concat(tables, ignore_index=True)


def synthetic_to_real(
    profile: Profile,
    real_root: str | Path,
    pretrained: str | Path,
    *,
    train_frames: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    recompute: bool = False,
    verbose: bool = True,
) -> pd.DataFrame:
    """Fine-tune DeepLabV3+ on ``n`` real frames, from random weights and from ``pretrained``; test on the real block.

    Every run has the same number of optimisation steps (``profile.transfer.steps``) and about the same number of
    validated epochs (``profile.transfer.validations``), so a small ``n`` means less data, not also less training
    or more checkpoints to choose from; the ``n`` frames are every k-th of the training block
    (:func:`medseg_core.data.oct.every_kth_frame`), the same for every seed (seeds vary initialisation and
    order). Checkpoints are chosen on the validation block. Runs are read back when their results exist
    (:func:`run_grid`), under ``runs/<profile>_<recipe>/synthetic_to_real/<start>_n<n>/`` (:func:`transfer_profile`).

    Args:
        real_root: the real frames in one flat folder (:func:`real_transfer_data`), split by ``transfer.recipe``.
        pretrained: a DeepLabV3+ checkpoint trained on synthetic frames (notebook 04's ``best.pt``).
        train_frames: the ``n`` values (default ``profile.transfer.train_frames``); values above the training
            block's size mean all of it, and are run once.
        seeds: default ``profile.transfer.seeds``.

    Returns:
        Per-frame test results (:func:`run_grid`'s columns) with ``start`` (:data:`TRANSFER_STARTS`),
        ``train_frames`` (frames used) and ``plaque_frames`` (of them, frames with plaque).

    Raises:
        ConfigError: an ``n`` below 2 (a training batch needs two frames for BatchNorm).
    """
    real = transfer_profile(profile)
    counts = list(profile.transfer.train_frames if train_frames is None else train_frames)
    if min(counts) < 2:
        raise ConfigError(f"train_frames must be at least 2 (BatchNorm needs two frames per batch); got {counts}")
    return fine_tuning_curve("oct", real, profile.transfer, real_root, pretrained, real.run_dir("synthetic_to_real"),
                             train_frames=counts, seeds=list(profile.transfer.seeds if seeds is None else seeds),
                             facts=lambda dataset: {"plaque_frames": sum(dataset.has_foreground)},
                             quiet=".*(not patient-independent|no foreground).*", recompute=recompute, verbose=verbose)


def transfer_run_dir(profile: Profile, start: str, train_frames: int, seed: int = 0) -> Path:
    """The run folder of one run of :func:`synthetic_to_real` (:func:`~.runs.grid_run`).

    Args:
        start: one of :data:`TRANSFER_STARTS`.
        train_frames: the frames the run used (the results' ``train_frames`` column, not a requested ``n`` above
            the training block's size).
    """
    if start not in TRANSFER_STARTS:
        raise ValueError(f"start must be one of {TRANSFER_STARTS}; got {start!r}")
    real = transfer_profile(profile)
    return grid_run("oct", real, real.run_dir("synthetic_to_real"), {"folder": f"{start}_n{train_frames}"},
                    seed).folder.path


