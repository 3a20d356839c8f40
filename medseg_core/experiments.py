"""Experiments: a task x a model x a seed -> a trained run; grids of variants x seeds; the kit's ablations.

:func:`train` is what ``medseg train``, the quickstart and the ablations call; notebooks 02 and 04 build the
same pieces by hand (task loaders, model, loss, :class:`~medseg_core.training.Trainer`) to show them. Both
name the run folder with :meth:`medseg_core.tasks.Task.run_dir`, so the same settings always share one folder
and a finished run is reused instead of retrained. :func:`run_grid` trains variants x seeds with identical
budgets and reads back runs whose results exist, so long ablations can be interrupted and resumed.
:class:`Ablation` names the two grids of notebooks 05 and 06 (:data:`ECA_ABLATION`,
:data:`WINDOW_LENGTH_ABLATION`); :func:`reuse_or_train` finds a finished run among the folders other
notebooks write (notebook 07 reuses them).
"""
from __future__ import annotations

import math
import multiprocessing
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from .checkpoints import RunMetadata, load_checkpoint, load_model
from .config import RECIPES, Profile, TransferConfig
from .errors import ConfigError, DataError, UnknownNameError
from .evaluation import evaluate
from .files import ensure_writable, folder_fingerprint, write_csv_atomic
from .models import create_model
from .models.summary import count_parameters
from .runtime import main_process_first, seed_everything
from .tasks import Task, get_task
from .training import Trainer, initial_weights, settings_differences

__all__ = [
    "TrainedRun",
    "train",
    "run_grid",
    "Ablation",
    "ECA_ABLATION",
    "WINDOW_LENGTHS",
    "WINDOW_LENGTH_ABLATION",
    "ABLATIONS",
    "read_committed_results",
    "TRANSFER_STARTS",
    "transfer_profile",
    "real_transfer_data",
    "synthetic_to_real",
    "transfer_budget",
    "transfer_run_dir",
    "RunSource",
    "svsnet_sources",
    "deeplab_sources",
    "reuse_or_train",
    "check_finished_run",
    "kit_architectures",
]

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
    metadata = task.run_metadata(profile, model_name)
    if getattr(model, "weight_free", False):  # a baseline: its thresholds are fitted on validation frames
        fitted = model.fit(loaders["val"] if loaders.get("val") is not None else loaders["train"])
        return TrainedRun(model.eval(), pd.DataFrame([fitted]), loaders, run_dir, metadata)
    init = initial_weights(model, init_from) if init_from is not None else None
    config = replace(task.train_config(profile), seed=seed)
    trainer = Trainer(model, task.make_loss(), config, run_dir, progress=progress, metadata=metadata,
                      data_id=folder_fingerprint(root), init_from=init)
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


def check_finished_run(run_dir: Path, task: Task, profile: Profile, model_name: str, seed: int) -> None:
    """Refuse to reuse a finished run that was trained with other settings than ``profile`` gives it.

    Compares the training settings (all but the speed settings; ``epochs`` included) and the run metadata stored
    in ``run_dir/best.pt`` with those of ``profile`` (:func:`~medseg_core.training.settings_differences`); loader
    settings that checkpoints do not hold (e.g. ``xca.train_crop``) are not compared. Without ``best.pt`` there is
    nothing to compare. Used by grids reading results back and by :func:`reuse_or_train`.

    Raises:
        ConfigError: the settings differ; the message names each and the way out.
    """
    best = run_dir / "best.pt"
    if not best.is_file():
        return
    differences = settings_differences(load_checkpoint(best, mmap=True), replace(task.train_config(profile), seed=seed),
                                       task.run_metadata(profile, model_name))
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
                check_finished_run(run_dir, task, variant_profile, spec.get("model_name") or task.default_model, seed)
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


# ----------------------------------------------------------------------------------------------------------------
# The ablation grids of notebooks 05 and 06 (notebook 07 reuses them)
# ----------------------------------------------------------------------------------------------------------------
def _runs_relative(path: Path, profile: Profile) -> str:
    """``path`` as ``runs/...`` when it lies in the profile's runs folder (manifests stay machine-independent)."""
    try:
        return (Path("runs") / Path(path).resolve().relative_to(profile.paths.runs.resolve())).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Ablation:
    """A variants x seeds grid on one task, trained under the profile's ablation budget.

    Args:
        name: results folder (``runs/<profile>_ablation/<name>``) and prefix of its figures and tables.
        task: ``"xca"`` or ``"oct"``.
        variants: ``{variant: {"model_name", "model_kwargs", "overrides"}}`` as :func:`run_grid` takes them.
        reference: the variant the others are compared with.
        notebook: the notebook that runs the grid (named in :meth:`source`).
        levels: an optional numeric level per variant (e.g. the window length), for curves.
        baseline: a weight-free variant (a classical filter or intensity rule, fitted on validation frames) that
            every table shows as a row: what the networks add over it. It is not part of the question's family.
    """

    name: str
    task: str
    variants: Mapping[str, Mapping[str, Any]]
    reference: str
    notebook: str
    levels: Mapping[str, float] = field(default_factory=dict)
    baseline: str | None = None

    def variants_for(self, profile: Profile) -> dict[str, Mapping[str, Any]]:
        """The variants ``profile`` runs, in the grid's order: ``profile.ablation.grid_variants[name]``, else all.

        Raises:
            UnknownNameError: a chosen variant is not in the grid, or the reference is left out; the message lists
                the grid's variants.
        """
        chosen = profile.ablation.grid_variants.get(self.name)
        if chosen is None:
            return dict(self.variants)
        chosen = (*chosen, *([self.baseline] if self.baseline and self.baseline not in chosen else []))
        unknown = sorted(set(chosen) - set(self.variants))
        if unknown or self.reference not in chosen:
            problem = f"unknown variants {unknown}" if unknown else f"the reference {self.reference!r} is left out"
            raise UnknownNameError(f"ablation.grid_variants[{self.name!r}]: {problem}; the grid's variants: "
                                   f"{', '.join(self.variants)} (the reference {self.reference!r} must be one)")
        return {name: spec for name, spec in self.variants.items() if name in chosen}

    def results_dir(self, profile: Profile) -> Path:
        """Folder of the grid's run folders for ``profile``."""
        return profile.ablation_profile().run_dir(self.name)

    def run_dir(self, profile: Profile, variant: str, seed: int) -> Path:
        """The run folder of one variant and seed (what :func:`run_grid` writes)."""
        spec = self.variants[variant]
        variant_profile = profile.ablation_profile().override(spec.get("overrides"))
        return _grid_run_dir(get_task(self.task), variant_profile, self.results_dir(profile), spec, seed)

    def source(self, profile: Profile, variant: str, seed: int = 0) -> RunSource:
        """One run of the grid as a :class:`RunSource`, for :func:`reuse_or_train` (other notebooks reuse it).

        Raises:
            UnknownNameError: ``variant`` is not in the grid; the message lists its variants.
        """
        if variant not in self.variants:
            raise UnknownNameError(f"{self.name} has no variant {variant!r}; its variants: {', '.join(self.variants)}")
        spec = self.variants[variant]
        return RunSource(self.notebook, self.task, profile.ablation_profile().override(spec.get("overrides")),
                         self.run_dir(profile, variant, seed), spec.get("model_name") or get_task(self.task).default_model,
                         dict(spec.get("model_kwargs") or {}), seed)

    def run(self, profile: Profile, seeds: Sequence[int] | None = None, recompute: bool = False,
            verbose: bool = True) -> pd.DataFrame:
        """Train (or read back) every variant of :meth:`variants_for` with every seed; per-case results (see
        :func:`run_grid`).

        ``seeds`` defaults to ``profile.ablation.seeds_for(name)``; a ``level`` column is added when levels are
        defined.
        """
        seeds = profile.ablation.seeds_for(self.name) if seeds is None else seeds
        results = run_grid(self.task, profile.ablation_profile(), self.variants_for(profile), seeds,
                           self.results_dir(profile),
                           recompute=recompute, verbose=verbose)
        if self.levels:
            results["level"] = results["variant"].map(self.levels)
        return results

    def design(self, profile: Profile, metric_sd: float | None = None) -> pd.DataFrame:
        """The design before it runs: what it can detect. One row per unit of the question (test clusters, seeds).

        ``comparisons`` is the family (every network variant of :meth:`variants_for` against the reference),
        ``level`` each interval's family-wise confidence, ``detectable_sd`` the smallest mean difference a paired
        t-test on that many units detects with 80 % power at that level, in standard deviations of the per-unit
        differences (noncentral t, :func:`~medseg_core.stats.detectable_effect_size`); with ``metric_sd`` (e.g.
        the spread of per-cluster differences of an earlier run) also in metric units, a plug-in estimate.
        """
        from .stats import MIN_SEEDS_FOR_INTERVAL, POWER, detectable_effect_size, family_confidence

        ablation = profile.ablation_profile()
        comparisons = len([v for v in self.variants_for(profile) if v not in (self.reference, self.baseline)])
        level = family_confidence(0.95, comparisons)
        units = {"test " + ("videos" if self.task == "xca" else "patients"): get_task(self.task).test_clusters(ablation),
                 "seeds": len(profile.ablation.seeds_for(self.name))}
        rows = []
        for unit, count in units.items():
            minimum = MIN_SEEDS_FOR_INTERVAL if unit == "seeds" else 3
            effect = detectable_effect_size(count, 1 - level, POWER) if count >= minimum else float("nan")
            rows.append({"unit": unit, "count": count, "comparisons": comparisons, "level": level,
                         "detectable_sd": effect,
                         **({"detectable": effect * metric_sd} if metric_sd is not None else {}),
                         "question": (f"do these trained models differ on test {unit.split()[-1]} like these?"
                                      if unit != "seeds" else "does the difference survive retraining?")})
        return pd.DataFrame(rows)

    def analyse(self, results: pd.DataFrame, metrics: Sequence[str]) -> "AblationAnalysis":
        """Summary (baseline row included), the question's family and the networks-vs-baseline family, from the
        per-case table of :meth:`run` (or :func:`read_committed_results`)."""
        from .stats import paired_comparison, summarize_runs

        metrics = list(metrics)
        networks = results[results["variant"] != self.baseline] if self.baseline else results
        summary = summarize_runs(results, by="variant", metrics=metrics)
        comparison = paired_comparison(networks, self.reference, metrics)
        against_baseline = None
        if self.baseline and self.baseline in set(results["variant"]):
            against_baseline = paired_comparison(results, self.baseline, metrics)
        return AblationAnalysis(self, summary, comparison, against_baseline)

    def describe(self, profile: Profile) -> str:
        """The grid's results folder relative to the runs folder (``runs/cpu_ablation/ablation_eca``), for manifests."""
        return _runs_relative(self.results_dir(profile), profile)

    def seeds_on_disk(self, profile: Profile) -> list[int]:
        """Seeds whose results exist for every variant of :meth:`variants_for` (what :meth:`run` reads back)."""
        seeds = sorted({int(path.parent.name.rsplit("_seed", 1)[1])
                        for path in self.results_dir(profile).glob(f"*_seed*/{RESULTS_FILE}")})
        return [seed for seed in seeds
                if all((self.run_dir(profile, variant, seed) / RESULTS_FILE).is_file()
                       for variant in self.variants_for(profile))]


@dataclass(frozen=True)
class AblationAnalysis:
    """What :meth:`Ablation.analyse` finds: ``summary`` (:func:`~medseg_core.stats.summarize_runs`, baseline row
    included), ``comparison`` (the question's family: every network against the reference) and
    ``against_baseline`` (every network against the weight-free baseline, its own family; None without one)."""

    grid: Ablation
    summary: pd.DataFrame
    comparison: pd.DataFrame
    against_baseline: pd.DataFrame | None

    def verdicts(self, metric: str = "dice") -> list[str]:
        """Every sentence that states an effect of this grid, generated from its tables
        (:func:`~medseg_core.stats.describe_comparisons`): the question's family, then the baseline's."""
        from .stats import describe_comparisons

        tables = [self.comparison, *([self.against_baseline] if self.against_baseline is not None else [])]
        unit = "videos" if self.grid.task == "xca" else "patients"
        return [sentence for table in tables
                for sentence in describe_comparisons(table[table["metric"] == metric], unit=unit)]


ECA_ABLATION = Ablation(
    name="ablation_eca",
    task="oct",
    variants={
        **{eca: {"model_name": "deeplabv3plus", "model_kwargs": {"eca": eca}} for eca in ("none", "skip", "aspp", "both")},
        # A plain U-Net with about DeepLabV3+'s parameter count (28 base channels: 5.9 M vs 5.8 M).
        "unet": {"model_name": "unet2d", "model_kwargs": {"base_channels": 28}},
        # A grey-value band in a ring of the field of view, fitted on the validation frames (models.oct_rules).
        "intensity": {"model_name": "intensity"},
    },
    reference="none",
    notebook="05_ablation_eca",
    baseline="intensity",
)

WINDOW_LENGTHS = (1, 2, 3, 4, 5, 7)
WINDOW_LENGTH_ABLATION = Ablation(
    name="ablation_window_length",
    task="xca",
    variants={
        **{f"T{t}": {"model_name": "svsnet", "overrides": {"xca.window_length": t}} for t in WINDOW_LENGTHS},
        "unet2d": {"model_name": "unet2d"},  # the 2D U-Net sees the labelled frame alone
        "tophat": {"model_name": "tophat"},  # black top-hat on the labelled frame, threshold fitted on validation
    },
    reference="T1",
    notebook="06_ablation_window_length",
    levels={f"T{t}": t for t in WINDOW_LENGTHS},
    baseline="tophat",
)


ABLATIONS = {grid.name: grid for grid in (ECA_ABLATION, WINDOW_LENGTH_ABLATION)}


def read_committed_results(grid: Ablation | str, figures: str | Path | None = None) -> pd.DataFrame:
    """The per-case results of an ablation grid as the committed run saved them, ``figures/<name>_cases.csv``.

    Notebooks 05 and 06 read this table with ``use_committed = True`` instead of training (the committed run is
    documented in ``figures/manifest.csv``); it has the columns of :meth:`Ablation.run` (plus what the notebook
    added before saving it, e.g. ``window_length``).

    Args:
        grid: an :class:`Ablation` (e.g. :data:`ECA_ABLATION`) or its name (a key of :data:`ABLATIONS`).
        figures: the folder of the tables (default: the committed ``figures/``).

    Raises:
        FileNotFoundError: the table is absent; the message names the file and how to make it.
    """
    from .provenance import committed_manifest  # provenance imports plotting; only this reader needs it

    grid = ABLATIONS[grid] if isinstance(grid, str) else grid
    path = Path(figures or committed_manifest().parent) / f"{grid.name}_cases.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no committed results for {grid.name!r}: {path} does not exist. `make reproduce` "
                                "writes it (the cpu run of every notebook), or set use_committed = False to train here.")
    results = pd.read_csv(path, dtype={"id": str})
    if "cluster" not in results:  # tables written before cases carried their video or patient
        results.insert(1, "cluster", results["id"].map(get_task(grid.task).case_cluster))
    return results

# ----------------------------------------------------------------------------------------------------------------
# The synthetic-to-real study of notebook 09
# ----------------------------------------------------------------------------------------------------------------
TRANSFER_STARTS = ("scratch", "synthetic")
"""Where the fine-tuning runs of :func:`synthetic_to_real` start: random weights, or the synthetic-trained model."""


def transfer_profile(profile: Profile) -> Profile:
    """The profile of every run of :func:`synthetic_to_real`: ``profile`` with the recipe ``profile.transfer.recipe``
    (``real-oct``: the single pullback's blocks, plaque oversampling, rotation) and then
    ``profile.transfer.overrides``, named ``<profile>_<recipe>`` as ``get_profile(..., recipe=)`` names it.

    Raises:
        UnknownNameError: ``transfer.recipe`` is not in :data:`~medseg_core.config.RECIPES`; the message lists them.
    """
    recipe = profile.transfer.recipe
    if recipe not in RECIPES:
        raise UnknownNameError(f"unknown recipe {recipe!r} (transfer.recipe); valid recipes: {', '.join(RECIPES)}")
    return profile.override({**RECIPES[recipe], **profile.transfer.overrides, "name": f"{profile.name}_{recipe}"})


def real_transfer_data(links_folder: str | Path, pullback: str | Path | None = None) -> tuple[Path, str]:
    """The real OCT frames of :func:`synthetic_to_real` and the recipe (``transfer.recipe``) that splits them.

    With the 111-frame pullback (``pullback``, else :func:`~medseg_core.config.real_data_path`'s
    ``oct_zenodo_pullback``, optional), the kit's 11-frame sample and the pullback are linked into ``links_folder``
    (:func:`~medseg_core.data.oct.real_pullback_folder`): 122 frames, recipe ``real-oct``. Without it, the bundled
    sample's own folder, recipe ``real-oct-sample``.

    Raises:
        DataError: ``pullback`` was given but has no ``img/`` and ``mask/``, or the sample is missing.
    """
    from .config import REAL_DATASETS, real_data_path
    from .data.oct import real_pullback_folder

    sample = real_data_path("oct_zenodo_sample")
    found = Path(pullback) if pullback is not None else real_data_path("oct_zenodo_pullback")
    if pullback is not None or (found / "img").is_dir():
        return real_pullback_folder(links_folder, [sample, found]), "real-oct"
    if not (sample / "img").is_dir() or not (sample / "mask").is_dir():
        raise DataError(f"the kit's real OCT sample is missing at {sample} (no img/ and mask/ there): restore "
                        f"data/real/oct_zenodo_sample from git or set {REAL_DATASETS['oct_zenodo_sample']}")
    return sample, "real-oct-sample"


def transfer_budget(frames: int, batch_size: int, transfer: TransferConfig) -> dict[str, int]:
    """The overrides of a fine-tuning run on ``frames`` frames: epochs for ``transfer.steps`` optimisation steps
    (the training loader drops a partial last batch, so ``frames // batch_size`` steps an epoch, or one step when
    ``frames <= batch_size``) and ``deeplab.val_every`` for at most ``transfer.validations`` validated epochs
    (fewer by at most half when the epochs do not divide evenly)."""
    steps_per_epoch = frames // batch_size if frames > batch_size else 1
    epochs = math.ceil(transfer.steps / steps_per_epoch)
    return {"oct.train_frames": frames, "deeplab.epochs": epochs,
            "deeplab.val_every": math.ceil(epochs / transfer.validations)}


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
    task, real = get_task("oct"), transfer_profile(profile)
    counts = list(profile.transfer.train_frames if train_frames is None else train_frames)
    if min(counts) < 2:
        raise ConfigError(f"train_frames must be at least 2 (BatchNorm needs two frames per batch); got {counts}")
    seeds = list(profile.transfer.seeds if seeds is None else seeds)
    batch, variants, facts = real.deeplab.batch_size, {}, {}
    for count in counts:
        sized = real.override({"oct.train_frames": count})
        with warnings.catch_warnings():  # the single-patient warning is the notebook's to show, once
            warnings.simplefilter("ignore")
            used_set = task.make_loaders(sized, Path(real_root), "deeplabv3plus", 0)["train"].dataset
        used = len(used_set)
        budget = transfer_budget(used, batch, profile.transfer)
        for start in TRANSFER_STARTS:
            variant = f"{start}_n{used}"  # a count above the training block's size is the same variant: run once
            variants[variant] = {"model_name": "deeplabv3plus", "overrides": budget, "folder": variant,
                                 "init_from": pretrained if start == "synthetic" else None}
            facts[variant] = {"start": start, "train_frames": used, "plaque_frames": sum(used_set.has_foreground)}
    with warnings.catch_warnings():  # the split's warnings once above; a stalled monitor still warns
        warnings.filterwarnings("ignore", message=".*(not patient-independent|no foreground).*")
        results = run_grid(task, real, variants, seeds, real.run_dir("synthetic_to_real"), data_root=real_root,
                           recompute=recompute, verbose=verbose)
    tables = [results[results["variant"] == variant].assign(**values) for variant, values in facts.items()]
    return pd.concat(tables, ignore_index=True)


def transfer_run_dir(profile: Profile, start: str, train_frames: int, seed: int = 0) -> Path:
    """The run folder of one run of :func:`synthetic_to_real` (``best.pt``, ``history.csv``, ``test_metrics.csv``).

    Args:
        start: one of :data:`TRANSFER_STARTS`.
        train_frames: the frames the run used (the results' ``train_frames`` column, not a requested ``n`` above
            the training block's size).
    """
    if start not in TRANSFER_STARTS:
        raise ValueError(f"start must be one of {TRANSFER_STARTS}; got {start!r}")
    real = transfer_profile(profile)
    return (real.run_dir("synthetic_to_real") / f"{start}_n{train_frames}"
            / get_task("oct").run_name(real, "deeplabv3plus", seed=seed))


# ----------------------------------------------------------------------------------------------------------------
# Reusing the runs of other notebooks
# ----------------------------------------------------------------------------------------------------------------
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


def svsnet_sources(profile: Profile, seed: int = 0) -> list[RunSource]:
    """Where an SVSnet run of ``profile`` may be: notebooks 00 / 02 (one folder), the window-length ablation (when
    the profile's window length is one of its variants)."""
    task, variant = get_task("xca"), f"T{profile.xca.window_length}"
    sources = [RunSource("02_train_svsnet", "xca", profile, task.run_dir(profile, "svsnet", seed=seed), "svsnet", {}, seed)]
    if variant in WINDOW_LENGTH_ABLATION.variants:
        sources.append(WINDOW_LENGTH_ABLATION.source(profile, variant, seed))
    return sources


def deeplab_sources(profile: Profile, seed: int = 0) -> list[RunSource]:
    """Where a DeepLabV3+ run (ECA at both places) of ``profile`` may be: notebook 04, then the ECA ablation."""
    task = get_task("oct")
    return [
        RunSource("04_train_deeplabv3plus_eca", "oct", profile, task.run_dir(profile, "deeplabv3plus", seed=seed),
                  "deeplabv3plus", {}, seed),
        ECA_ABLATION.source(profile, "both", seed),
    ]


def reuse_or_train(sources: Sequence[RunSource], progress: bool = False) -> tuple[TrainedRun, RunSource]:
    """Load the first finished run among ``sources``; if none is finished, train the last one (resumable).

    Returns:
        The run (best weights, eval mode, its history and the loaders of its profile) and the source used.

    Raises:
        ConfigError: the first finished run was trained with other settings than its source's profile gives it
            (:func:`check_finished_run`).
    """
    if not sources:
        raise ValueError("no run sources given")
    for source in sources:
        if source.is_finished():
            task = get_task(source.task)
            check_finished_run(source.run_dir, task, source.profile, source.model_name, source.seed)
            model = load_model(source.run_dir / "best.pt")
            loaders = task.make_loaders(source.profile, task.make_data(source.profile), source.model_name, source.seed)
            history = pd.read_csv(source.run_dir / "history.csv")
            return (TrainedRun(model, history, loaders, source.run_dir,
                               task.run_metadata(source.profile, source.model_name)), source)
    source = sources[-1]
    run = train(source.task, source.profile, model_name=source.model_name, model_kwargs=source.model_kwargs,
                seed=source.seed, run_dir=source.run_dir, progress=progress)
    return run, source


def kit_architectures(profile: Profile) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """The kit's models with the input shapes of ``profile`` (batch one), for
    :func:`medseg_core.models.summary.architecture_table`.

    SVSnet at the profile's window length and the 2D U-Net on XCA frames; DeepLabV3+ with and without ECA and the
    parameter-matched U-Net of :data:`ECA_ABLATION` on OCT frames.
    """
    xca, oct_task = get_task("xca"), get_task("oct")
    length, xca_size, oct_size = profile.xca.window_length, profile.xca.image_size, profile.oct.image_size
    unet = ECA_ABLATION.variants["unet"]["model_kwargs"]
    return {
        f"SVSnet, T = {length}": (create_model("svsnet", **xca.model_kwargs(profile, "svsnet")),
                                  (1, 1, length, xca_size, xca_size)),
        "U-Net 2D, XCA": (create_model("unet2d", **xca.model_kwargs(profile, "unet2d")), (1, 1, xca_size, xca_size)),
        **{f"DeepLabV3+, ECA {eca}": (create_model("deeplabv3plus", **oct_task.model_kwargs(profile, "deeplabv3plus",
                                                                                              {"eca": eca})),
                                      (1, 3, oct_size, oct_size)) for eca in ("both", "none")},
        "U-Net 2D, OCT": (create_model("unet2d", **oct_task.model_kwargs(profile, "unet2d", unet)),
                          (1, 3, oct_size, oct_size)),
    }
