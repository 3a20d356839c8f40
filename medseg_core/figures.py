"""Figures of the kit with provenance: the manifest, the ablation grids, model costs and the ablation plots.

This module owns what notebooks 05 (ECA ablation), 06 (window-length ablation) and 07 (reproduce every
figure) share:

* **Manifest.** :class:`FigureWriter` saves figures (through :func:`medseg_core.viz.save_figure`) and result
  tables (CSV) and records each file in ``<figures folder>/manifest.csv``: notebook, profile, seeds, source run,
  package versions (torch, torchvision, medseg-kit), git commit (``git rev-parse HEAD``, ``"unknown"`` outside a
  repository) and a UTC timestamp. :func:`check_figures` checks a folder against a manifest (by default the
  committed ``figures/manifest.csv``): every listed file must exist.
* **Ablation grids.** :class:`Ablation` names a variants x seeds grid (:data:`ECA_ABLATION`,
  :data:`WINDOW_LENGTH_ABLATION`) and runs it with :func:`medseg_core.experiments.run_grid` under the profile's
  ablation budget (:meth:`medseg_core.config.Profile.ablation_profile`), so 05, 06 and 07 share run folders.
* **Reuse.** :func:`reuse_or_train` loads the first finished run among candidate folders (those written by
  notebooks 02, 00, 04 and the ablations, see :func:`svsnet_sources` and :func:`deeplab_sources`) and trains the
  last candidate only when none is finished.
* **Costs.** :func:`architecture_table`: parameters, FLOPs (:class:`torch.utils.flop_counter.FlopCounterMode`:
  convolutions and matrix products, 2 FLOPs per multiply-add; element-wise operations are not counted) and the
  median CPU latency of a batch of one.
* **Plots** for ablations: metric means with intervals per variant, paired differences (forest plot), per-case
  box plots, metric and cost curves against the window length, tables as figures. General pictures (overlays,
  training curves, precision-recall, attention weights) live in :mod:`medseg_core.viz`; statistics in
  :mod:`medseg_core.stats`.
"""
from __future__ import annotations

import importlib.metadata
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .config import Profile, kit_home
from .files import write_csv_atomic
from .experiments import TrainedRun, get_task, run_grid, train
from .models import count_parameters, create_model
from .stats import summarize_runs
from .training import load_model
from .viz import save_figure

__all__ = [
    "MANIFEST_NAME",
    "committed_manifest",
    "provenance",
    "FigureWriter",
    "read_manifest",
    "check_figures",
    "Ablation",
    "ECA_ABLATION",
    "WINDOW_LENGTHS",
    "WINDOW_LENGTH_ABLATION",
    "RunSource",
    "svsnet_sources",
    "deeplab_sources",
    "reuse_or_train",
    "count_flops",
    "measure_latency",
    "architecture_table",
    "kit_architectures",
    "plot_table",
    "plot_ablation",
    "plot_paired_differences",
    "plot_metric_boxes",
    "plot_window_length_curve",
    "plot_cost_curve",
]

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("file", "kind", "notebook", "profile", "seeds", "source", "torch", "torchvision", "medseg_kit",
                    "commit", "uncommitted_changes", "timestamp")


def committed_manifest() -> Path:
    """The manifest of the committed figures, ``figures/manifest.csv`` in the kit's checkout (:func:`kit_home`)."""
    return kit_home() / "figures" / MANIFEST_NAME


_BOUNDED_METRICS = ("dice", "iou", "precision", "recall", "specificity", "accuracy", "cldice")


# ----------------------------------------------------------------------------------------------------------------
# Provenance and the manifest
# ----------------------------------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(kit_home()), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def provenance() -> dict[str, str]:
    """Package versions and git state of this process, read once: the manifest's provenance columns."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "medseg_kit": _version("medseg-kit"),
        "commit": commit or "unknown",
        "uncommitted_changes": "unknown" if status is None else str(bool(status)).lower(),
    }


def _manifest_path(folder_or_file: str | Path) -> Path:
    path = Path(folder_or_file)
    return path if path.suffix == ".csv" else path / MANIFEST_NAME


def read_manifest(folder_or_file: str | Path) -> pd.DataFrame:
    """The manifest of a figures folder (or a manifest file) as a DataFrame, one row per file.

    Raises:
        FileNotFoundError: there is no manifest; figures saved through :class:`FigureWriter` create one.
    """
    path = _manifest_path(folder_or_file)
    if not path.is_file():
        raise FileNotFoundError(f"no figure manifest at {path}: figures saved with medseg_core.figures.FigureWriter "
                                "write one (the committed one comes from `make reproduce`)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@dataclass
class FigureWriter:
    """Save a notebook's figures and tables into a folder and record each file in its manifest.

    Args:
        folder: the figures folder (``cfg.paths.figures``; ``MEDSEG_FIGURES`` sets it).
        notebook: the notebook's name, e.g. ``"05_ablation_eca"``.
        profile: the profile's name.
        seeds: the seeds behind the files (overridable per file).

    Example:
        >>> writer = FigureWriter(cfg.paths.figures, "05_ablation_eca", cfg.name, cfg.ablation.seeds)
        >>> writer.save_figure(fig, "ablation_eca_metrics")
        >>> writer.save_table(summary, "ablation_eca_summary")
    """

    folder: Path
    notebook: str
    profile: str
    seeds: Sequence[int] = ()

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)

    def save_figure(self, fig: plt.Figure, name: str, *, seeds: Sequence[int] | None = None, source: str = "",
                    dpi: int = 150) -> Path:
        """Save ``fig`` as ``<folder>/<name>.png`` and record it; ``source`` names the run(s) it shows."""
        path = save_figure(fig, name, self.folder, dpi=dpi)
        self.record(path, "figure", seeds=seeds, source=source)
        return path

    def save_table(self, table: pd.DataFrame, name: str, *, seeds: Sequence[int] | None = None,
                   source: str = "") -> Path:
        """Save ``table`` as ``<folder>/<name>.csv`` (index kept only when it is named) and record it."""
        path = write_csv_atomic(table, self.folder / f"{name}.csv",
                                index=any(level is not None for level in table.index.names))
        self.record(path, "table", seeds=seeds, source=source)
        return path

    def record(self, path: str | Path, kind: str, *, seeds: Sequence[int] | None = None, source: str = "") -> None:
        """Add or replace the manifest row of ``path`` (a file inside the folder), atomically."""
        path = Path(path)
        row = {
            "file": path.relative_to(self.folder).as_posix(), "kind": kind, "notebook": self.notebook,
            "profile": self.profile, "seeds": " ".join(str(s) for s in (self.seeds if seeds is None else seeds)),
            "source": source, **provenance(), "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        manifest_path = self.folder / MANIFEST_NAME
        manifest = read_manifest(manifest_path) if manifest_path.is_file() else pd.DataFrame(columns=MANIFEST_COLUMNS)
        manifest = pd.concat([manifest[manifest["file"] != row["file"]], pd.DataFrame([row])], ignore_index=True)
        write_csv_atomic(manifest.reindex(columns=MANIFEST_COLUMNS).sort_values("file", kind="stable"), manifest_path)


def check_figures(
    folder: str | Path,
    manifest: str | Path | None = None,
    notebooks: Sequence[str] | None = None,
    kinds: Sequence[str] = ("figure", "table"),
    exclude_sources: Sequence[str] = (),
) -> pd.DataFrame:
    """Check that every file listed in ``manifest`` exists in ``folder`` (e.g. a CI run's output folder).

    Args:
        folder: the folder to check.
        manifest: a manifest file or its folder (default: the committed ``figures/manifest.csv``).
        notebooks: check only the files of these notebooks (e.g. ``["07_reproduce_figures"]``).
        kinds: check only these kinds of files.
        exclude_sources: skip files made from these sources (e.g. ``["oct_zenodo_sample"]`` where the real
            sample is absent).

    Returns:
        The manifest rows checked.

    Raises:
        FileNotFoundError: no manifest, or files are missing (all of them are named).
    """
    expected = read_manifest(committed_manifest() if manifest is None else manifest)
    expected = expected[expected["kind"].isin(kinds) & ~expected["source"].isin(list(exclude_sources))]
    if notebooks is not None:
        expected = expected[expected["notebook"].isin(list(notebooks))]
    missing = [name for name in expected["file"] if not (Path(folder) / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(expected)} files listed in the manifest are missing from "
                                f"{folder}: {missing}. Run the notebooks that made them (column 'notebook').")
    return expected.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------------
# Ablation grids shared by notebooks 05, 06 and 07
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
        name: run folder (``runs/<profile>_ablation/<name>``) and prefix of its figures and tables.
        task: ``"xca"`` or ``"oct"``.
        variants: ``{variant: {"model_name", "model_kwargs", "overrides"}}`` as :func:`run_grid` takes them.
        reference: the variant the others are compared with.
        levels: an optional numeric level per variant (e.g. the window length), for curves.
    """

    name: str
    task: str
    variants: Mapping[str, Mapping[str, Any]]
    reference: str
    levels: Mapping[str, float] = field(default_factory=dict)

    def results_dir(self, profile: Profile) -> Path:
        """Folder of the grid's per-run CSVs and checkpoints for ``profile``."""
        return profile.ablation_profile().run_dir(self.name)

    def run(self, profile: Profile, seeds: Sequence[int] | None = None, recompute: bool = False,
            verbose: bool = True) -> pd.DataFrame:
        """Train (or read back) every variant with every seed; per-case results (see :func:`run_grid`).

        ``seeds`` defaults to ``profile.ablation.seeds``; a ``level`` column is added when levels are defined.
        """
        seeds = profile.ablation.seeds if seeds is None else seeds
        results = run_grid(self.task, profile.ablation_profile(), self.variants, seeds, self.results_dir(profile),
                           recompute=recompute, verbose=verbose)
        if self.levels:
            results["level"] = results["variant"].map(self.levels)
        return results

    def describe(self, profile: Profile) -> str:
        """The grid's results folder relative to the runs folder (``runs/cpu_ablation/ablation_eca``), for manifests."""
        return _runs_relative(self.results_dir(profile), profile)

    def seeds_on_disk(self, profile: Profile) -> list[int]:
        """Seeds whose results exist for every variant (what :meth:`run` can read back without training)."""
        folder = self.results_dir(profile)
        found = [{int(p.stem.rsplit("_seed", 1)[1]) for p in folder.glob(f"{variant}_seed*.csv")}
                 for variant in self.variants]
        return sorted(set.intersection(*found)) if found else []


ECA_ABLATION = Ablation(
    name="ablation_eca",
    task="oct",
    variants={
        **{eca: {"model_name": "deeplabv3plus", "model_kwargs": {"eca": eca}} for eca in ("none", "skip", "aspp", "both")},
        # A plain U-Net with about DeepLabV3+'s parameter count (28 base channels: 5.9 M vs 5.8 M).
        "unet": {"model_name": "unet2d", "model_kwargs": {"base_channels": 28}},
    },
    reference="none",
)

WINDOW_LENGTHS = (1, 2, 3, 4, 5, 7)
WINDOW_LENGTH_ABLATION = Ablation(
    name="ablation_window_length",
    task="xca",
    variants={
        **{f"T{t}": {"model_name": "svsnet", "overrides": {"xca.window_length": t}} for t in WINDOW_LENGTHS},
        "unet2d": {"model_name": "unet2d"},  # the 2D U-Net sees the labelled frame alone
    },
    reference="T1",
    levels={f"T{t}": t for t in WINDOW_LENGTHS},
)


# ----------------------------------------------------------------------------------------------------------------
# Reusing the runs of other notebooks
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunSource:
    """A run folder that may hold a finished training run, with what rebuilds its data.

    Args:
        notebook: the notebook that writes this folder.
        profile: the profile the run was trained with (its data is rebuilt from it).
        run_dir: the folder (``best.pt``, ``history.csv``).
        model_name: the registered model.
        model_kwargs: constructor arguments beyond the task's defaults.
        seed: the run's seed (data order of the rebuilt loaders).
    """

    notebook: str
    profile: Profile
    run_dir: Path
    model_name: str
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0

    def is_finished(self, task: str) -> bool:
        """``best.pt`` exists and ``history.csv`` has all the profile's epochs."""
        history = self.run_dir / "history.csv"
        if not (self.run_dir / "best.pt").is_file() or not history.is_file():
            return False
        return len(pd.read_csv(history)) >= get_task(task).train_config(self.profile).epochs

    def describe(self) -> str:
        """``"runs/<profile>/<run> (<notebook>)"`` for manifests and notes."""
        return f"{_runs_relative(self.run_dir, self.profile)} ({self.notebook})"


def svsnet_sources(profile: Profile, seed: int = 0) -> list[RunSource]:
    """Where an SVSnet run of ``profile`` may be: notebook 02, notebook 00, the window-length ablation (T = 4)."""
    length, policy = profile.xca.window_length, profile.xca.window_policy
    return [
        RunSource("02_train_svsnet", profile, profile.run_dir(f"svsnet_T{length}_{policy}_seed{seed}"), "svsnet",
                  {"window_length": length}, seed),
        RunSource("00_quickstart", profile, profile.run_dir(f"xca_svsnet_seed{seed}"), "svsnet", {}, seed),
        # what run_grid writes for the variant f"T{length}" of WINDOW_LENGTH_ABLATION
        RunSource("06_ablation_window_length", profile.ablation_profile().override({"xca.window_length": length}),
                  WINDOW_LENGTH_ABLATION.results_dir(profile) / f"T{length}_seed{seed}", "svsnet", {}, seed),
    ]


def deeplab_sources(profile: Profile, seed: int = 0) -> list[RunSource]:
    """Where a DeepLabV3+ run (ECA at both places) of ``profile`` may be: notebook 04, then the ECA ablation."""
    return [
        RunSource("04_train_deeplabv3plus_eca", profile, profile.run_dir(f"deeplabv3plus_eca-both_os16_seed{seed}"),
                  "deeplabv3plus", {"eca": "both"}, seed),
        RunSource("05_ablation_eca", profile.ablation_profile(), ECA_ABLATION.results_dir(profile) / f"both_seed{seed}",
                  "deeplabv3plus", {"eca": "both"}, seed),
    ]


def reuse_or_train(task: str, sources: Sequence[RunSource], progress: bool = False) -> tuple[TrainedRun, RunSource]:
    """Load the first finished run among ``sources``; if none is finished, train the last one (resumable).

    Returns:
        The run (best weights, eval mode, its history and the loaders of its profile) and the source used.
    """
    if not sources:
        raise ValueError("no run sources given")
    task_spec = get_task(task)
    for source in sources:
        if source.is_finished(task):
            model = load_model(source.run_dir / "best.pt")
            root = task_spec.make_data(source.profile)
            loaders = task_spec.make_loaders(source.profile, root, source.model_name, source.seed)
            history = pd.read_csv(source.run_dir / "history.csv")
            return (TrainedRun(model, history, loaders, source.run_dir,
                               task_spec.metadata(source.profile, source.model_name)), source)
    source = sources[-1]
    run = train(task, source.profile, model_name=source.model_name, model_kwargs=source.model_kwargs,
                seed=source.seed, run_dir=source.run_dir, progress=progress)
    return run, source


# ----------------------------------------------------------------------------------------------------------------
# Model costs
# ----------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def count_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``inputs`` (convolutions and matrix products; 2 FLOPs per multiply-add)."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure_latency(model: nn.Module, inputs: torch.Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time in milliseconds of ``repeats`` forward passes (after ``warmup`` untimed ones), eval mode.

    Raises:
        ValueError: ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
    was_training = model.training
    model.eval()
    for _ in range(warmup):
        model(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(inputs)
        times.append(1000.0 * (time.perf_counter() - start))
    model.train(was_training)
    return statistics.median(times)


def architecture_table(models: Mapping[str, tuple[nn.Module, Sequence[int]]], repeats: int = 5) -> pd.DataFrame:
    """Parameters, GFLOPs and median CPU latency of each model on one input of the given shape.

    Args:
        models: ``{name: (model, input shape)}``, e.g. ``{"SVSnet T=4": (model, (1, 1, 4, 128, 128))}``; the
            input is random, batch one as given. Models are measured on the CPU in eval mode.
        repeats: timed forward passes per model (the median is reported).

    Returns:
        One row per model: ``model``, ``input``, ``parameters``, ``gflops``, ``latency_ms``, ``threads``.
    """
    rows = []
    for name, (model, shape) in models.items():
        model = model.cpu()
        inputs = torch.rand(tuple(shape), generator=torch.Generator().manual_seed(0))
        rows.append({
            "model": name, "input": "×".join(str(s) for s in shape), "parameters": count_parameters(model),
            "gflops": count_flops(model, inputs) / 1e9, "latency_ms": measure_latency(model, inputs, repeats),
            "threads": torch.get_num_threads(),
        })
    return pd.DataFrame(rows)


def kit_architectures(profile: Profile) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """The kit's models with the input shapes of ``profile`` (batch one), for :func:`architecture_table`.

    SVSnet at the profile's window length and the 2D U-Net on XCA frames; DeepLabV3+ with and without ECA and the
    parameter-matched U-Net of :data:`ECA_ABLATION` on OCT frames.
    """
    length, xca_size, oct_size = profile.xca.window_length, profile.xca.image_size, profile.oct.image_size
    classes = 1 + len(profile.oct.classes)
    unet = ECA_ABLATION.variants["unet"]["model_kwargs"]
    return {
        f"SVSnet, T = {length}": (create_model("svsnet", window_length=length), (1, 1, length, xca_size, xca_size)),
        "U-Net 2D, XCA": (create_model("unet2d"), (1, 1, xca_size, xca_size)),
        **{f"DeepLabV3+, ECA {eca}": (create_model("deeplabv3plus", num_classes=classes, eca=eca),
                                      (1, 3, oct_size, oct_size)) for eca in ("both", "none")},
        "U-Net 2D, OCT": (create_model("unet2d", in_channels=3, num_classes=classes, **unet), (1, 3, oct_size, oct_size)),
    }


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------
def _metric_label(metric: str) -> str:
    return {"dice": "Dice", "iou": "IoU", "cldice": "clDice", "hd95": "HD95 (pixels)"}.get(metric, metric)


def plot_table(table: pd.DataFrame, title: str = "", formats: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None) -> plt.Figure:
    """A DataFrame drawn as a table, for figures in print.

    Args:
        formats: ``{column: format spec}``, e.g. ``{"parameters": ",d"}``.
        labels: ``{column: header}``; other columns keep their names.
    """
    formats, labels = formats or {}, labels or {}
    cells = [[format(value, formats[column]) if column in formats else str(value) for column, value in row.items()]
             for _, row in table.iterrows()]
    headers = [labels.get(c, str(c)) for c in table.columns]
    characters = np.array([max([len(header)] + [len(row[i]) for row in cells]) + 2 for i, header in enumerate(headers)])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.085 * characters.sum()), 0.32 * (len(table) + 1) + 0.5))
    ax.axis("off")
    drawn = ax.table(cellText=cells, colLabels=headers, cellLoc="right", colWidths=list(characters / characters.sum()),
                     bbox=(0, 0, 1, 1))
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(9)
    for (row, _), cell in drawn.get_celld().items():
        if row == 0:
            cell.set_text_props(weight="bold")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def _order(values: pd.Series, order: Sequence[str] | None) -> list[str]:
    present = list(pd.unique(values))
    return [v for v in order if v in present] if order is not None else present


def plot_ablation(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall"),
    by: str = "variant",
    order: Sequence[str] | None = None,
    reference: str | None = None,
    title: str = "",
) -> plt.Figure:
    """Per-variant mean and 95 % interval over seeds (see :func:`~medseg_core.stats.summarize_runs`), one panel per metric.

    Each seed's mean over the test cases is a small dot; the reference variant's mean is a dashed line.

    Args:
        results: per-case results of a grid (``by``, ``seed``, ``id`` and metric columns).
        order: variants from left to right (default: as they appear).
        reference: a variant to draw as a horizontal line.
    """
    order = _order(results[by], order)
    summary = summarize_runs(results, by=by, metrics=metrics)
    seed_means = results.groupby([by, "seed"], sort=False)[list(metrics)].mean().reset_index()
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics) + 0.6, 3.8), squeeze=False, sharey=False)
    positions = {variant: index for index, variant in enumerate(order)}
    for ax, metric in zip(axes[0], metrics):
        rows = summary[summary["metric"] == metric].set_index(by).loc[order]
        x = np.arange(len(order))
        error = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
        ax.errorbar(x, rows["mean"], yerr=np.nan_to_num(error), fmt="o", color="black", capsize=4, markersize=6,
                    label="mean, 95 % CI over seeds", zorder=3)
        dots = seed_means[seed_means[by].isin(order)]
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(dots))
        ax.scatter(dots[by].map(positions) + jitter, dots[metric], s=14, color="C0", alpha=0.6, label="one seed",
                   zorder=2)
        if reference is not None and reference in rows.index:
            ax.axhline(rows.loc[reference, "mean"], color="grey", linestyle="--", linewidth=1, label=f"{reference} mean")
        ax.set_xticks(x, order, rotation=30, ha="right")
        ax.set(xlabel="", ylabel=_metric_label(metric), title=_metric_label(metric))
        if metric in _BOUNDED_METRICS:  # a t-interval may reach past 1: keep its cap visible
            ax.set_ylim(-0.02, max(1.02, float(np.nanmax(rows["ci_high"].to_numpy(), initial=0.0)) + 0.02))
        ax.grid(axis="y", alpha=0.3)
    n_seeds = int(summary["n_seeds"].max())
    axes[0, 0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title or f"test metrics per variant ({n_seeds} seed{'s' if n_seeds != 1 else ''})")
    fig.tight_layout()
    return fig


def plot_paired_differences(comparison: pd.DataFrame, by: str = "variant", title: str = "") -> plt.Figure:
    """Forest plot of a :func:`~medseg_core.stats.paired_comparison` table: mean difference and 95 % CI per variant.

    One panel per metric, two panels per row. Black: the 95 % t-interval across test cases, with the Holm-adjusted
    Wilcoxon p-value beside it; orange (when there are two seeds or more): the 95 % t-interval across seeds.
    """
    metrics = list(pd.unique(comparison["metric"]))
    variants = list(pd.unique(comparison[by]))
    columns = min(2, len(metrics))
    rows_of_panels = int(np.ceil(len(metrics) / columns))
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(5.2 * columns, (0.45 * len(variants) + 1.6) * rows_of_panels
                                                              + 0.5), squeeze=False, sharey=True)
    for ax in axes.flat[len(metrics):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics):
        rows = comparison[comparison["metric"] == metric].set_index(by).loc[variants]
        y = np.arange(len(variants))
        error = np.vstack([rows["mean_difference"] - rows["ci_low"], rows["ci_high"] - rows["mean_difference"]])
        ax.errorbar(rows["mean_difference"], y, xerr=np.nan_to_num(error), fmt="o", color="black", capsize=4,
                    label="95 % CI across test cases")
        seed_error = np.vstack([rows["mean_difference"] - rows["seed_ci_low"],
                                rows["seed_ci_high"] - rows["mean_difference"]])
        if np.isfinite(seed_error).any():
            ax.errorbar(rows["mean_difference"], y + 0.22, xerr=seed_error, fmt="none", color="C1", capsize=3,
                        linewidth=2.5, alpha=0.7, label="95 % CI across seeds")
        ax.axvline(0, color="grey", linestyle="--", linewidth=1)
        for position, (_, row) in zip(y, rows.iterrows()):
            ax.annotate(f"p_Holm = {row['wilcoxon_holm']:.3g}", (1.0, position), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_yticks(y, variants)
        reference = rows["reference"].iloc[0]
        ax.set(xlabel=f"{_metric_label(metric)}: variant − {reference} (paired, per test case)",
               title=_metric_label(metric))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].invert_yaxis()  # first variant on top (the axes share y: invert once)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False, fontsize=9)
    n_cases, n_seeds = int(comparison["n_cases"].max()), int(comparison["n_seeds"].max())
    fig.suptitle(title or f"difference to {comparison['reference'].iloc[0]}: mean over {n_cases} test cases "
                          f"({n_seeds} seed(s) averaged per case); p_Holm: Wilcoxon across cases")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def plot_metric_boxes(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "iou", "precision", "recall"),
    by: str = "variant",
    order: Sequence[str] | None = None,
    case: str | Sequence[str] = "id",
    title: str = "",
) -> plt.Figure:
    """Box plots of per-case metrics: metrics along x, one coloured box per group; each dot is one test case.

    A case's value is its mean over the seeds present (so every case counts once); values a group does not have
    (NaN, e.g. an undefined HD95) are left out. Use bounded metrics (Dice, IoU, ...) together: they share one
    0-1 axis.
    """
    case = [case] if isinstance(case, str) else list(case)
    order = _order(results[by], order)
    per_case = results.groupby([by, *case], sort=False)[list(metrics)].mean().reset_index()
    width = 0.8 / len(order)
    fig, ax = plt.subplots(figsize=(1.6 + len(metrics) * (0.45 * len(order) + 0.5), 4.0))
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    for index, group in enumerate(order):
        rows = per_case[per_case[by] == group]
        values = [rows[metric].dropna().to_numpy() for metric in metrics]
        positions = np.arange(len(metrics)) - 0.4 + (index + 0.5) * width
        colour = f"C{index % 10}"
        ax.boxplot(values, positions=positions, widths=0.85 * width, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": colour, "alpha": 0.35}, medianprops={"color": colour, "linewidth": 2})
        for position, metric_values in zip(positions, values):
            jitter = rng.uniform(-0.3, 0.3, len(metric_values)) * width
            ax.scatter(position + jitter, metric_values, s=7, color=colour, alpha=0.8, zorder=3)
        ax.scatter([], [], color=colour, marker="s", s=40, label=f"{group} (n = {len(rows)})")
    ax.set_xticks(range(len(metrics)), [_metric_label(m) for m in metrics])
    ax.set(xlim=(-0.5, len(metrics) - 0.5), ylabel="value per test case")
    if all(metric in _BOUNDED_METRICS for metric in metrics):
        ax.set_ylim(-0.02, 1.02)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title=by, bbox_to_anchor=(1.01, 1), loc="upper left", frameon=False, fontsize=8)
    ax.set_title(title or "per-case test metrics (box: quartiles; dot: one test case, averaged over seeds)")
    fig.tight_layout()
    return fig


def plot_window_length_curve(
    results: pd.DataFrame,
    metrics: Sequence[str] = ("dice", "cldice"),
    level: str = "level",
    by: str = "variant",
    baseline: str | None = None,
    xlabel: str = "window length T (frames)",
    title: str = "",
) -> plt.Figure:
    """Metrics against a numeric level (the window length): mean over seeds with its 95 % band, one panel each.

    Args:
        results: per-case grid results with a ``level`` column (NaN for the baseline) and ``by`` / ``seed``.
        baseline: a variant without a level (the 2D U-Net), drawn as a horizontal line with its band.

    With one seed the bands are undefined and not drawn; the title gives the number of seeds.
    """
    curve_rows = results[results[by] != baseline] if baseline is not None else results
    summary = summarize_runs(curve_rows.dropna(subset=[level]), by=level, metrics=metrics).sort_values(level)
    seed_means = curve_rows.groupby([level, "seed"])[list(metrics)].mean().reset_index()
    base = summarize_runs(results[results[by] == baseline], by=by, metrics=metrics) if baseline is not None else None
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.0 * len(metrics), 3.9), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = summary[summary["metric"] == metric]
        ax.plot(rows[level], rows["mean"], marker="o", color="C0", label="SVSnet, mean over seeds")
        ax.fill_between(rows[level], rows["ci_low"], rows["ci_high"], color="C0", alpha=0.2, label="95 % CI")
        ax.scatter(seed_means[level], seed_means[metric], s=12, color="C0", alpha=0.5, label="one seed")
        if base is not None and not base.empty:
            row = base[base["metric"] == metric].iloc[0]
            ax.axhline(row["mean"], color="C3", linestyle="--", linewidth=1.2, label=f"{baseline} (2D), mean")
            if np.isfinite(row["ci_low"]):
                ax.axhspan(row["ci_low"], row["ci_high"], color="C3", alpha=0.1, label=f"{baseline}, 95 % CI")
        ax.set_xticks(rows[level].to_numpy())
        ax.set(xlabel=xlabel, ylabel=_metric_label(metric), title=f"{_metric_label(metric)} vs {xlabel.split(' (')[0]}")
        ax.grid(alpha=0.3)
    n_seeds = int(summary["n_seeds"].max())
    axes[0, 0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title or f"test metrics vs window length ({n_seeds} seed{'s' if n_seeds != 1 else ''}; "
                          f"{int(summary['n_cases'].max())} test frames)")
    fig.tight_layout()
    return fig


def plot_cost_curve(
    costs: pd.DataFrame,
    x: str = "window_length",
    columns: Mapping[str, str] | None = None,
    baseline: pd.Series | None = None,
    baseline_name: str = "baseline",
    xlabel: str = "window length T (frames)",
    title: str = "",
) -> plt.Figure:
    """Model costs (an :func:`architecture_table` with an ``x`` column) against ``x``, one panel per cost.

    Args:
        columns: ``{column: axis label}`` (default parameters in millions, GFLOPs and CPU latency).
        baseline: one row of the same table (e.g. the 2D U-Net) drawn as a dashed line.
    """
    columns = dict(columns or {"parameters": "parameters (millions)", "gflops": "GFLOPs per forward pass",
                               "latency_ms": "CPU latency, batch 1 (ms)"})
    costs = costs.sort_values(x)
    scale = {"parameters": 1e-6}
    fig, axes = plt.subplots(1, len(columns), figsize=(4.3 * len(columns), 3.6), squeeze=False)
    for ax, (column, label) in zip(axes[0], columns.items()):
        factor = scale.get(column, 1.0)
        ax.plot(costs[x], costs[column] * factor, marker="o", color="C0", label="SVSnet")
        if baseline is not None:
            ax.axhline(baseline[column] * factor, color="C3", linestyle="--", linewidth=1.2, label=baseline_name)
        ax.set_xticks(costs[x].to_numpy())
        ax.set(xlabel=xlabel, ylabel=label, ylim=(0, None))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
