"""One run and a grid of runs: :class:`RunSpec` (a run resolved once: task, profile, model and its effective
arguments, seed, data, initial weights, folder), :func:`train` (a task x a model x a seed) and :func:`run_grid`
(variants x seeds, resumable). A run's files, the one "finished" rule and the results schema are its
:class:`~medseg_core.run_folder.RunFolder`'s."""
from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from ..checkpoints import RunMetadata, load_checkpoint
from ..config import Profile, TrainConfig
from ..evaluation import evaluate
from ..files import ensure_writable, folder_fingerprint
from ..models import create_model
from ..models.summary import count_parameters
from ..run_config import run_record
from ..run_folder import RunFolder
from ..runtime import main_process_first, seed_everything
from ..tasks import Task, get_task
from ..training import EpochCallback, Trainer, initial_weights


@dataclass
class TrainedRun:
    """The result of :func:`train`: the model (best weights, eval mode), its history, data and folder."""

    model: nn.Module
    history: pd.DataFrame
    loaders: dict[str, DataLoader]
    run_dir: Path
    metadata: RunMetadata

    @property
    def folder(self) -> RunFolder:
        """The run's files (:class:`~medseg_core.run_folder.RunFolder`)."""
        return RunFolder(self.run_dir)

    def evaluate(self, split: str = "test", **kwargs: Any) -> pd.DataFrame:
        """Per-case metrics on a split with their ``cluster`` (see :func:`medseg_core.evaluation.evaluate`)."""
        return evaluate(self.model, self.loaders[split], class_names=self.metadata.class_names,
                        clusters=get_task(self.metadata.task).case_cluster, **kwargs)


@dataclass(frozen=True)
class RunSpec:
    """One training run, resolved once (:meth:`resolve`): what it trains, on what, and where its files go.

    Everything a run needs comes from here, so ``medseg train``, the grids, :func:`reuse_or_train
    <medseg_core.experiments.reuse_or_train>` and notebooks 02 and 04 (which build the pieces one cell at a time)
    train the same run the same way: its :attr:`name`, :meth:`metadata`, :attr:`train_config`, the task's
    :meth:`loaders` (the task's fixed split), :meth:`create_model`, and a :meth:`trainer` that records metadata, the
    data's identity and the initial weights (so a resume on other data or from other weights is refused).

    Args:
        task: the task.
        profile: the run's settings.
        model_name: a registered model.
        model_args: the model arguments asked for (they name the run and are recorded as given).
        model_kwargs: the effective constructor arguments: the task's (channels, classes, window) with
            ``model_args`` on top (:meth:`medseg_core.tasks.Task.model_kwargs`, the one place they are filled in).
        seed: seeds initialisation, data order and augmentation.
        folder: the run's files.
        data_root: data in the task's layout; None: the profile's synthetic data.
        init_from: a kit checkpoint whose weights the model starts from; None: its random initialisation.
    """

    task: Task
    profile: Profile
    model_name: str
    model_args: Mapping[str, Any]
    model_kwargs: Mapping[str, Any]
    seed: int
    folder: RunFolder
    data_root: Path | None = None
    init_from: Path | None = None

    @classmethod
    def resolve(cls, task: str | Task, profile: Profile, *, model_name: str | None = None,
                model_args: Mapping[str, Any] | None = None, seed: int = 0, run_dir: str | Path | None = None,
                results_dir: str | Path | None = None, subfolder: str | None = None,
                data_root: str | Path | None = None, init_from: str | Path | None = None) -> "RunSpec":
        """The run of ``task`` x ``model_name`` (default: the profile's or the task's,
        :meth:`~medseg_core.tasks.Task.model_for`) x ``seed`` under ``profile``.

        Its folder is ``run_dir`` when given, else ``results_dir/[subfolder/]<run name>`` (a grid), else
        ``runs/<profile>/<run name>`` (:meth:`medseg_core.tasks.Task.run_dir`): the same settings always share one
        folder, whoever trains them.

        Raises:
            ConfigError / UnknownNameError: an unknown model, one the task cannot feed, or model arguments it does
                not take (before any work).
        """
        task = get_task(task)
        model_name = task.model_for(profile, model_name)
        model_args = dict(model_args or {})
        model_kwargs = task.model_kwargs(profile, model_name, model_args)  # checks the model before any work
        if run_dir is None and results_dir is not None:
            run_dir = Path(results_dir, subfolder or "", task.run_name(profile, model_name, model_args, seed))
        elif run_dir is None:
            run_dir = task.run_dir(profile, model_name, model_args, seed)
        return cls(task, profile, model_name, model_args, model_kwargs, seed, RunFolder(Path(run_dir)),
                   None if data_root is None else Path(data_root), None if init_from is None else Path(init_from))

    @property
    def name(self) -> str:
        """The run's name (:meth:`medseg_core.tasks.Task.run_name`), e.g. ``oct_deeplabv3plus_eca-none_seed1``."""
        return self.task.run_name(self.profile, self.model_name, self.model_args, self.seed)

    @property
    def train_config(self) -> TrainConfig:
        """The task's training settings under the profile, with the run's seed."""
        return replace(self.task.train_config(self.profile), seed=self.seed)

    def metadata(self, root: Path | None = None) -> RunMetadata:
        """What the checkpoints record about input preparation, for data in ``root`` (default: the run's data)."""
        return self.task.run_metadata(self.profile, self.model_name, root if root is not None else self.data_root)

    def data(self) -> Path:
        """The run's data folder: ``data_root``, or the profile's synthetic data (generated on first use; under
        ``torchrun`` rank 0 writes it and the others then reuse it)."""
        if self.data_root is not None:
            return self.data_root
        with main_process_first():
            return self.task.make_data(self.profile)

    def loaders(self, root: Path | None = None) -> dict[str, DataLoader]:
        """The task's ``{"train", "val", "test"}`` loaders for the model, with the task's fixed split (the seed
        orders and augments the data; OCT's patient split is ``oct.seed``'s whatever the seed)."""
        return self.task.make_loaders(self.profile, root if root is not None else self.data(), self.model_name,
                                      self.seed)

    def create_model(self) -> nn.Module:
        """The model with the effective arguments, initialised from the run's seed."""
        seed_everything(self.seed)
        return create_model(self.model_name, **self.model_kwargs)

    def trainer(self, model: nn.Module, root: Path | None = None, *, progress: bool = True,
                origin: Mapping[str, Any] | None = None, callbacks: Iterable[EpochCallback] = ()) -> Trainer:
        """A :class:`~medseg_core.training.Trainer` of ``model`` writing into the run's folder, with the task's loss,
        :attr:`train_config`, the run metadata, the identity of the data in ``root`` (default: the run's data), the
        initial weights (``init_from`` is loaded into ``model`` here, every tensor must match:
        :func:`~medseg_core.training.initial_weights`) and the run's record (``config.json``,
        :func:`~medseg_core.run_config.run_record`; ``origin``: how the run was asked for)."""
        root = root if root is not None else self.data()
        init = initial_weights(model, self.init_from) if self.init_from is not None else None
        data_id = folder_fingerprint(root)
        record = run_record(self.task.name, self.profile, model_name=self.model_name, model_args=self.model_args,
                            model_kwargs=self.model_kwargs, seed=self.seed, data=self.data_root,
                            synthetic_data=None if self.data_root is not None else root.name, data_id=data_id,
                            init_from=init, origin=origin)
        return Trainer(model, self.task.make_loss(self.profile), self.train_config, self.folder.path,
                       progress=progress, metadata=self.metadata(root), data_id=data_id, init_from=init,
                       run_config=record, callbacks=callbacks)

    def train(self, *, resume: bool = True, progress: bool = True,
              origin: Mapping[str, Any] | None = None) -> TrainedRun:
        """Train the run (see :func:`train`); returns the best checkpoint's model."""
        ensure_writable(self.folder.path)  # before any data is generated
        root = self.data()
        loaders = self.loaders(root)
        model = self.create_model()
        if getattr(model, "weight_free", False):  # a baseline: its thresholds are fitted on validation frames
            fitted = model.fit(loaders["val"] if loaders.get("val") is not None else loaders["train"])
            return TrainedRun(model.eval(), pd.DataFrame([fitted]), loaders, self.folder.path, self.metadata(root))
        trainer = self.trainer(model, root, progress=progress, origin=origin)
        history = trainer.fit(loaders["train"], loaders.get("val"), resume=resume)
        if self.folder.best.is_file():
            model.load_state_dict(load_checkpoint(self.folder.best, map_location=trainer.device)["model"])
        return TrainedRun(model.eval(), history, loaders, self.folder.path, trainer.metadata)

    def train_and_test(self, *, variant: str | None = None, split: str = "test", resume: bool = True,
                       progress: bool = False, origin: Mapping[str, Any] | None = None,
                       keep_resume_state: bool = True) -> tuple[TrainedRun, pd.DataFrame]:
        """Train the run, score ``split`` and write the results (:meth:`RunFolder.write_results
        <medseg_core.run_folder.RunFolder.write_results>`, ``variant`` default: the run's name), which marks it
        finished; the run and its results. ``keep_resume_state=False`` then deletes the resume state (grids: only a
        resume needs it, and it is the largest file)."""
        start = time.perf_counter()
        run = self.train(resume=resume, progress=progress, origin=origin)
        seconds = time.perf_counter() - start
        results = self.write_results(run.evaluate(split), run.model, seconds, variant=variant)
        if not keep_resume_state:
            self.folder.drop_resume_state()
        return run, results

    def write_results(self, cases: pd.DataFrame, model: nn.Module, train_seconds: float,
                      variant: str | None = None) -> pd.DataFrame:
        """Write the run's per-case test metrics (:func:`medseg_core.evaluation.evaluate`) with its seed, the
        model's parameters, the seconds training took and ``variant`` (default: the run's name) in the one results
        schema, atomically (:meth:`RunFolder.write_results <medseg_core.run_folder.RunFolder.write_results>`); the
        run is then finished. Returns the table written."""
        return self.folder.write_results(cases, variant=variant or self.name, seed=self.seed,
                                         parameters=count_parameters(model), train_seconds=train_seconds)

    def check_finished(self) -> None:
        """Refuse this run's finished folder when it was trained with other settings than this spec's
        (:meth:`RunFolder.check_matches <medseg_core.run_folder.RunFolder.check_matches>`).

        Raises:
            ConfigError: naming each changed setting and the way out.
        """
        self.folder.check_matches(self.train_config, self.metadata())


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
    """Train one model on one task with the profile's settings; returns the best checkpoint's model
    (:meth:`RunSpec.train` of :meth:`RunSpec.resolve`).

    Args:
        task: ``"xca"`` or ``"oct"`` (or a :class:`~medseg_core.tasks.Task`).
        model_name: a registered model (default: the task's, SVSnet or DeepLabV3+).
        model_kwargs: extra constructor arguments (e.g. ``{"eca": "none"}``).
        seed: seeds model initialisation, data order and augmentation.
        run_dir: the run folder (default :meth:`Task.run_dir`, e.g. ``runs/cpu/xca_svsnet_T4-centre_seed0``).
        data_root: real or previously generated data in the task's layout (default: generate synthetic data).
        resume: continue from the run's resume state if it exists (refused if it was trained with other settings,
            other data or other initial weights). ``run_dir`` is checked to be writable before any data is generated.
        init_from: a kit checkpoint (e.g. the best checkpoint of a synthetic run) whose weights the model starts
            from instead of its random initialisation; every tensor must match (see
            :func:`medseg_core.training.initial_weights`). The run records the checkpoint's path and digest.
        origin: how the run was asked for, recorded in its ``config.json`` (``{"profile", "recipe",
            "overrides"}``, :func:`medseg_core.run_config.run_record`; ``medseg train`` passes them).

    The run folder gets ``config.json``, the run's resolved settings (:mod:`medseg_core.run_config`), from which
    ``medseg train --config`` trains it again.

    A weight-free baseline (``create_model("tophat")``, ``"intensity"``: ``model.weight_free``) is not trained:
    its thresholds are fitted on the validation frames (``model.fit``) and ``history`` holds the fitted numbers.
    """
    spec = RunSpec.resolve(task, profile, model_name=model_name, model_args=model_kwargs, seed=seed, run_dir=run_dir,
                           data_root=data_root, init_from=init_from)
    return spec.train(resume=resume, progress=progress, origin=origin)


def grid_run(task: str | Task, profile: Profile, results_dir: str | Path, variant: Mapping[str, Any], seed: int,
             data_root: str | Path | None = None) -> RunSpec:
    """One run of a grid (:func:`run_grid`): ``profile`` with the variant's overrides, in
    ``results_dir/[folder/]<run name>``."""
    return RunSpec.resolve(task, profile.override(variant.get("overrides")), model_name=variant.get("model_name"),
                           model_args=variant.get("model_kwargs"), seed=seed, results_dir=results_dir,
                           subfolder=variant.get("folder"), data_root=data_root, init_from=variant.get("init_from"))


def _grid_run(spec: RunSpec, variant: str, split: str, recompute: bool, progress: bool) -> tuple[pd.DataFrame, float]:
    """Train and test one run of a grid (its resume state dropped once its results are written); the table and the
    seconds it took."""
    _, table = spec.train_and_test(variant=variant, split=split, resume=not recompute, progress=progress,
                                   keep_resume_state=False)
    return table, float(table["train_seconds"].iloc[0]) if len(table) else 0.0


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
        results_dir: one run folder per variant and seed (:func:`grid_run`), named by :meth:`Task.run_name`; a
            finished run (:meth:`RunFolder.is_finished <medseg_core.run_folder.RunFolder.is_finished>`: its
            results exist) is read back instead of retrained unless ``recompute``, once it is checked to be trained
            with these settings (:meth:`RunSpec.check_finished`). An interrupted run resumes from its resume
            state, which is deleted once its results are written (only a resume needs it, and it is the largest
            file).
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
    for variant, variant_spec in variants.items():
        for seed in seeds:
            spec = grid_run(task, profile, results_dir, variant_spec, seed, data_root)
            if spec.folder.is_finished() and not recompute:
                spec.check_finished()
                # the grid names its variants (a run another notebook finished names itself)
                tables[variant, seed] = spec.folder.read_results().assign(variant=variant)
                if verbose:
                    print(f"{variant} seed {seed}: read back from {spec.folder.results}", flush=True)
                continue
            pending.append((spec, variant, split, recompute))

    def finished(variant: str, seed: int, table: pd.DataFrame, seconds: float) -> None:
        tables[variant, seed] = table
        if verbose:
            print(f"{variant} seed {seed}: trained and tested in {seconds:.1f} s, mean test Dice "
                  f"{table['dice'].mean():.3f}", flush=True)

    if jobs > 1 and len(pending) > 1:
        for spec in {id(run[0].profile): run[0] for run in pending}.values():
            spec.data()  # written once here, not by two workers at a time
        threads = max(1, torch.get_num_threads() // jobs)
        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch's thread pools exist
        with ProcessPoolExecutor(min(jobs, len(pending)), mp_context=context, initializer=_init_grid_worker,
                                 initargs=(threads,)) as pool:
            futures = {pool.submit(_grid_run, *run, False): run for run in pending}
            try:
                for future in as_completed(futures):
                    finished(futures[future][1], futures[future][0].seed, *future.result())
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
    else:
        for run in pending:
            finished(run[1], run[0].seed, *_grid_run(*run, progress))
    return pd.concat([tables[variant, seed] for variant in variants for seed in seeds], ignore_index=True)


def _runs_relative(path: Path, profile: Profile) -> str:
    """``path`` as ``runs/...`` when it lies in the profile's runs folder (manifests stay machine-independent)."""
    try:
        return (Path("runs") / Path(path).resolve().relative_to(profile.paths.runs.resolve())).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class RunSource:
    """A run folder that may hold a finished training run, with what rebuilds its data (:attr:`spec`).

    Args:
        notebook: the notebook that writes this folder.
        task: the task's name.
        profile: the profile the run was trained with (its data is rebuilt from it).
        run_dir: the run's folder.
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

    @property
    def spec(self) -> RunSpec:
        """The run this source holds, resolved (its folder is ``run_dir``)."""
        return RunSpec.resolve(self.task, self.profile, model_name=self.model_name, model_args=self.model_kwargs,
                               seed=self.seed, run_dir=self.run_dir)

    def is_finished(self) -> bool:
        """Whether the run is finished (:meth:`RunFolder.is_finished <medseg_core.run_folder.RunFolder.is_finished>`:
        its results exist)."""
        return RunFolder(self.run_dir).is_finished()

    def describe(self) -> str:
        """``"runs/<profile>/<run> (<notebook>)"`` for manifests and notes."""
        return f"{_runs_relative(self.run_dir, self.profile)} ({self.notebook})"
