"""One run and a grid of runs: :func:`train` (a task x a model x a seed), :func:`run_grid` (variants x seeds,
resumable), and the check that a finished run answers the settings asked (:func:`check_finished_run`)."""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..checkpoints import RunMetadata, load_checkpoint
from ..config import Profile
from ..errors import ConfigError
from ..evaluation import evaluate
from ..files import ensure_writable, folder_fingerprint, write_csv_atomic
from ..models import create_model
from ..models.summary import count_parameters
from ..run_config import run_record
from ..runtime import main_process_first, seed_everything
from ..tasks import Task, get_task
from ..training import Trainer, initial_weights, settings_differences


RESULTS_FILE = "test_metrics.csv"  # per-case test metrics of a run; in a grid it also marks the run as done


@dataclass
class TrainedRun:
    """The result of :func:`train`: the model (best weights, eval mode), its history, data and folder."""

    model: nn.Module
    history: pd.DataFrame
    loaders: dict[str, DataLoader]
    run_dir: Path
    metadata: RunMetadata

    def evaluate(self, split: str = "test", **kwargs: Any) -> pd.DataFrame:
        """Per-case metrics on a split with their ``cluster`` (see :func:`medseg_core.evaluation.evaluate`)."""
        return evaluate(self.model, self.loaders[split], class_names=self.metadata.class_names,
                        clusters=get_task(self.metadata.task).case_cluster, **kwargs)


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
    init_from: str | Path | None = None,
    origin: Mapping[str, Any] | None = None,
) -> TrainedRun:
    """Train one model on one task with the profile's settings; returns the best checkpoint's model.

    Args:
        task: ``"xca"`` or ``"oct"`` (or a :class:`~medseg_core.tasks.Task`).
        model_name: a registered model (default: the task's, SVSnet or DeepLabV3+).
        model_kwargs: extra constructor arguments (e.g. ``{"eca": "none"}``).
        seed: seeds model initialisation, data order and augmentation.
        run_dir: checkpoints and history (default :meth:`Task.run_dir`, e.g. ``runs/cpu/xca_svsnet_T4-centre_seed0``).
        data_root: real or previously generated data in the task's layout (default: generate synthetic data).
        resume: continue from ``run_dir/last.pt`` if it exists (refused if it was trained with other settings,
            other data or other initial weights). ``run_dir`` is checked to be writable before any data is generated.
        init_from: a kit checkpoint (e.g. the ``best.pt`` of a synthetic run) whose weights the model starts from
            instead of its random initialisation; every tensor must match (see
            :func:`medseg_core.training.initial_weights`). The run records the checkpoint's path and digest.
        origin: how the run was asked for, recorded in its ``config.json`` (``{"profile", "recipe",
            "overrides"}``, :func:`medseg_core.run_config.run_record`; ``medseg train`` passes them).

    The run folder gets ``config.json``, the run's resolved settings (:mod:`medseg_core.run_config`), from which
    ``medseg train --config`` trains it again.

    A weight-free baseline (``create_model("tophat")``, ``"intensity"``: ``model.weight_free``) is not trained:
    its thresholds are fitted on the validation frames (``model.fit``) and ``history`` holds the fitted numbers.
    """
    task = get_task(task)
    model_name = model_name or task.default_model
    kwargs = task.model_kwargs(profile, model_name, model_kwargs)  # checks the model before any work
    run_dir = ensure_writable(run_dir if run_dir is not None else task.run_dir(profile, model_name, model_kwargs, seed))
    with main_process_first():  # under torchrun rank 0 writes the synthetic data, the others then reuse it
        root = Path(data_root) if data_root is not None else task.make_data(profile)
    loaders = task.make_loaders(profile, root, model_name, seed)
    seed_everything(seed)
    model = create_model(model_name, **kwargs)
    metadata = task.run_metadata(profile, model_name, root)
    if getattr(model, "weight_free", False):  # a baseline: its thresholds are fitted on validation frames
        fitted = model.fit(loaders["val"] if loaders.get("val") is not None else loaders["train"])
        return TrainedRun(model.eval(), pd.DataFrame([fitted]), loaders, run_dir, metadata)
    init = initial_weights(model, init_from) if init_from is not None else None
    config = replace(task.train_config(profile), seed=seed)
    data_id = folder_fingerprint(root)
    record = run_record(task.name, profile, model_name=model_name, model_args=model_kwargs or {}, model_kwargs=kwargs,
                        seed=seed, data=data_root, synthetic_data=None if data_root is not None else root.name,
                        data_id=data_id, init_from=init, origin=origin)
    trainer = Trainer(model, task.make_loss(profile), config, run_dir, progress=progress, metadata=metadata,
                      data_id=data_id, init_from=init, run_config=record)
    history = trainer.fit(loaders["train"], loaders.get("val"), resume=resume)
    best = run_dir / "best.pt"
    if best.is_file():
        model.load_state_dict(load_checkpoint(best, map_location=trainer.device)["model"])
    return TrainedRun(model.eval(), history, loaders, run_dir, metadata)


def _grid_run_dir(task: Task, profile: Profile, results_dir: Path, spec: Mapping[str, Any], seed: int) -> Path:
    folder = results_dir / spec["folder"] if spec.get("folder") else results_dir
    return folder / task.run_name(profile, spec.get("model_name"), spec.get("model_kwargs"), seed)


def _grid_run(task: Task, profile: Profile, spec: Mapping[str, Any], variant: str, seed: int, run_dir: Path,
              split: str, data_root: str | Path | None, recompute: bool, progress: bool) -> tuple[pd.DataFrame, float]:
    """Train and evaluate one run of a grid, write its results CSV; the table and the seconds it took."""
    start = time.perf_counter()
    run = train(task, profile, model_name=spec.get("model_name"), model_kwargs=spec.get("model_kwargs"), seed=seed,
                run_dir=run_dir, data_root=data_root, resume=not recompute, progress=progress,
                init_from=spec.get("init_from"))
    seconds = time.perf_counter() - start
    table = run.evaluate(split).assign(variant=variant, seed=seed, parameters=count_parameters(run.model),
                                       train_seconds=round(seconds, 1))
    write_csv_atomic(table, run_dir / RESULTS_FILE)  # the CSV marks the run as done: never leave half of one
    (run.run_dir / "last.pt").unlink(missing_ok=True)
    return table, seconds


def check_finished_run(run_dir: Path, task: Task, profile: Profile, model_name: str, seed: int,
                       data_root: str | Path | None = None) -> None:
    """Refuse to reuse a finished run that was trained with other settings than ``profile`` gives it.

    Compares the training settings (all but the speed settings; ``epochs`` included) and the run metadata stored
    in ``run_dir/best.pt`` with those of ``profile`` on ``data_root`` (None: its synthetic data;
    :func:`~medseg_core.training.settings_differences`); loader settings that checkpoints do not hold (e.g.
    ``xca.train_crop``) are not compared. Without ``best.pt`` there is nothing to compare. Used by grids reading
    results back and by :func:`reuse_or_train`.

    Raises:
        ConfigError: the settings differ; the message names each and the way out.
    """
    best = run_dir / "best.pt"
    if not best.is_file():
        return
    differences = settings_differences(load_checkpoint(best, mmap=True), replace(task.train_config(profile), seed=seed),
                                       task.run_metadata(profile, model_name, data_root))
    if differences:
        raise ConfigError(
            f"the finished run {run_dir} was trained with other settings ({'; '.join(differences)}), so it does not "
            "answer these. Retrain it (in a grid: recompute=True, in the notebooks' parameters: recompute = True; "
            "elsewhere move the folder away), or keep runs with the changed settings in another results folder."
        )


def _init_grid_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def run_grid(
    task: str | Task,
    profile: Profile,
    variants: Mapping[str, Mapping[str, Any]],
    seeds: Sequence[int],
    results_dir: str | Path,
    *,
    split: str = "test",
    data_root: str | Path | None = None,
    recompute: bool = False,
    progress: bool = False,
    verbose: bool = False,
    jobs: int | None = None,
) -> pd.DataFrame:
    """Train every variant with every seed under the same budget and evaluate it; resumable.

    Args:
        variants: ``{variant name: {"model_name": ..., "model_kwargs": {...}, "overrides": {...}, "init_from":
            ..., "folder": ...}}``; overrides are dotted profile keys applied for that variant only (e.g.
            ``{"xca.window_length": 2}``), ``init_from`` a checkpoint the variant starts from (see :func:`train`),
            ``folder`` a sub-folder of ``results_dir`` for the variant's runs (when run names alone would clash).
        data_root: real or prepared data in the task's layout (default: the profile's synthetic data).
        results_dir: one run folder per variant and seed, named by :meth:`Task.run_name`, holding ``best.pt``,
            ``history.csv`` and ``test_metrics.csv``; a run whose CSV exists is read back instead of retrained
            unless ``recompute``. An interrupted run resumes from its ``last.pt``, which is deleted once its CSV
            is written (it is only needed to resume, and it is the largest file).
        progress: progress bars while training (one process only).
        verbose: print one line per run (trained or read back, seconds, mean test Dice).
        jobs: runs trained side by side, each in its own process with ``torch.get_num_threads() // jobs``
            threads (default ``profile.grid_jobs``). Small models on few cores use the machine better this way:
            on 2 cores, two 1-thread runs of the cpu ECA ablation finish in 52 s where one 2-thread run takes
            40 s (1.5x the throughput). A run's numbers depend on its thread count, so compare runs trained
            with the same ``jobs`` on the same machine.

    Returns:
        Per-case metrics of all runs with ``variant``, ``seed``, ``parameters`` and ``train_seconds`` columns,
        in the order of ``variants`` and ``seeds``.
    """
    task = get_task(task)
    results_dir = Path(results_dir)
    jobs = profile.grid_jobs if jobs is None else jobs
    tables: dict[tuple[str, int], pd.DataFrame] = {}
    pending = []
    for variant, spec in variants.items():
        variant_profile = profile.override(spec.get("overrides"))
        for seed in seeds:
            run_dir = _grid_run_dir(task, variant_profile, results_dir, spec, seed)
            csv = run_dir / RESULTS_FILE
            if csv.is_file() and not recompute:
                check_finished_run(run_dir, task, variant_profile, spec.get("model_name") or task.default_model, seed,
                                   data_root)
                # ids and patients such as 001 stay text (else a read-back cluster 1 differs from a fresh "001")
                tables[variant, seed] = pd.read_csv(csv, dtype={"id": str, "cluster": str})
                if verbose:
                    print(f"{variant} seed {seed}: read back from {csv}", flush=True)
                continue
            pending.append((task, variant_profile, spec, variant, seed, run_dir, split, data_root, recompute))

    def finished(variant: str, seed: int, table: pd.DataFrame, seconds: float) -> None:
        tables[variant, seed] = table
        if verbose:
            print(f"{variant} seed {seed}: trained and tested in {seconds:.1f} s, mean test Dice "
                  f"{table['dice'].mean():.3f}", flush=True)

    if jobs > 1 and len(pending) > 1:
        for variant_profile in {id(run[1]): run[1] for run in pending}.values():
            if data_root is None:  # written once here, not by two workers at a time
                task.make_data(variant_profile)
        threads = max(1, torch.get_num_threads() // jobs)
        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch's thread pools exist
        with ProcessPoolExecutor(min(jobs, len(pending)), mp_context=context, initializer=_init_grid_worker,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(_grid_run, *run, False): run for run in pending}
            try:
                for future in as_completed(futures):
                    finished(futures[future][3], futures[future][4], *future.result())
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    else:
        for run in pending:
            finished(run[3], run[4], *_grid_run(*run, progress))
    return pd.concat([tables[variant, seed] for variant in variants for seed in seeds], ignore_index=True)


def _runs_relative(path: Path, profile: Profile) -> str:
    """``path`` as ``runs/...`` when it lies in the profile's runs folder (manifests stay machine-independent)."""
    try:
        return (Path("runs") / Path(path).resolve().relative_to(profile.paths.runs.resolve())).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class RunSource:
    """A run folder that may hold a finished training run, with what rebuilds its data.

    Args:
        notebook: the notebook that writes this folder.
        task: the task's name.
        profile: the profile the run was trained with (its data is rebuilt from it).
        run_dir: the folder (``best.pt``, ``history.csv``).
        model_name: the registered model.
        model_kwargs: constructor arguments beyond the task's.
        seed: the run's seed (data order of the rebuilt loaders).
    """

    notebook: str
    task: str
    profile: Profile
    run_dir: Path
    model_name: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def is_finished(self) -> bool:
        """``best.pt`` exists and ``history.csv`` has all the profile's epochs."""
        history = self.run_dir / "history.csv"
        if not (self.run_dir / "best.pt").is_file() or not history.is_file():
            return False
        return len(pd.read_csv(history)) >= get_task(self.task).train_config(self.profile).epochs

    def describe(self) -> str:
        """``"runs/<profile>/<run> (<notebook>)"`` for manifests and notes."""
        return f"{_runs_relative(self.run_dir, self.profile)} ({self.notebook})"
