"""Provenance of the kit's figures and tables: the manifest, :class:`FigureWriter`, figure saving, checks.

:class:`FigureWriter` saves figures (PNG) and result tables (CSV) and records each file in
``<figures folder>/manifest.csv``: notebook, profile, seeds, source run, package versions (torch, torchvision,
medseg-kit), git commit (``git rev-parse HEAD``, ``"unknown"`` outside a repository), whether the checkout had
uncommitted changes, and a UTC timestamp. :func:`check_figures` checks a folder against a manifest (by default
the committed ``figures/manifest.csv``, :func:`committed_manifest`): every listed file must exist.

:func:`compare_tables` compares a fresh run's tables with the committed ones, column by column, within a stated
tolerance (``medseg check-figures``): it says which tables and columns moved more than a rerun should.
"""
from __future__ import annotations

import importlib.metadata
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import torch

from .config import kit_home
from .errors import MissingDataError
from .files import write_csv_atomic

__all__ = [
    "RERUN_TOLERANCE",
    "compare_tables",
    "MANIFEST_NAME",
    "MANIFEST_COLUMNS",
    "committed_manifest",
    "provenance",
    "read_manifest",
    "FigureWriter",
    "check_figures",
    "save_figure",
]

MANIFEST_NAME = "manifest.csv"


MANIFEST_COLUMNS = ("file", "kind", "notebook", "profile", "seeds", "source", "torch", "torchvision", "medseg_kit",
                    "commit", "uncommitted_changes", "timestamp")


def committed_manifest() -> Path:
    """The manifest of the committed figures, ``figures/manifest.csv`` in the kit's checkout (:func:`kit_home`)."""
    return kit_home() / "figures" / MANIFEST_NAME


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
    # the figures folder is this run's output: figures written by an earlier notebook of the same run are not
    # uncommitted changes of the code that makes them
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures") if commit else None
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
        MissingDataError: (a ``FileNotFoundError``) there is no manifest; figures saved through
            :class:`FigureWriter` create one.
    """
    path = _manifest_path(folder_or_file)
    if not path.is_file():
        raise MissingDataError(f"no figure manifest at {path}: figures saved with medseg_core.provenance.FigureWriter "
                               "write one (the committed one comes from `make reproduce`, run in the kit's checkout)")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


TABLE_FLOAT_FORMAT = "%.6g"
"""Floats of the tables in figures/: 6 significant digits (a Dice to 1e-6; the full precision stays in each run's
own test_metrics.csv)."""


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
        """Save ``table`` as ``<folder>/<name>.csv`` (index kept only when it is named; floats to 6 significant
        digits, :data:`TABLE_FLOAT_FORMAT`, so committed per-case tables stay small) and record it."""
        path = write_csv_atomic(table, self.folder / f"{name}.csv",
                                index=any(level is not None for level in table.index.names),
                                float_format=TABLE_FLOAT_FORMAT)
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



def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` as ``figures_dir/name.png`` (folders created) and return the path."""
    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


RERUN_TOLERANCE = 0.02
"""How far a metric in a committed table may move when the same notebooks run again elsewhere (absolute).

On one machine kind and thread count a run repeats exactly (``tests/test_reproducible.py``); another CPU,
BLAS build or thread count changes floating-point sums, and training amplifies that. Measured between two machines
of the same kind (cpu profile, same seeds): single SVSnet and DeepLabV3+ runs moved by up to 0.008 Dice, but the
3-seed ECA ablation's variant means moved by up to 0.10 (one seed's run failing on one machine and not the
other). So single-run tables are expected within this tolerance and ablation tables are not: their claims must
rest on differences larger than the per-seed spread, and ``medseg check-figures`` shows which tables moved."""
_KEY_COLUMNS = ("seed", "level", "window_length", "fold", "epoch", "frame", "pullback",
                "train_frames")  # numbers that name rows
_UNSTABLE_COLUMNS = re.compile(r"seconds|latency|_ms$|time|threads|timestamp")
_DERIVED_TEXT_COLUMNS = ("per_seed",)  # numbers written as text ("0: 0.415, 1: 0.523"), compared through their columns


def compare_tables(fresh: str | Path, committed: str | Path | None = None, *,
                   tolerance: float = RERUN_TOLERANCE) -> pd.DataFrame:
    """Compare every table of the committed manifest with the same table in ``fresh`` (a figures folder).

    Rows are matched on the text columns (variant, metric, id, ...) and the numbers that name rows (seed, level,
    train_frames, ...); numeric columns are compared by their largest absolute difference, true/false columns
    (``hd95_failed``, ``seeds_agree``) as 0/1. Timing columns (seconds, latency, threads) are left out: they
    measure the machine, not the method; so are per-seed values written as text (``per_seed``), whose numbers
    the other tables hold.

    Returns:
        One row per table and numeric column: ``table``, ``column``, ``max_abs_difference``, ``within``
        (``<= tolerance``), or a row with ``column = "(missing)"``/``"(rows differ)"`` when the table is absent or
        its rows do not match.

    Raises:
        MissingDataError: no manifest at ``committed``, or ``fresh`` holds none of its tables (the wrong folder).
    """
    committed_manifest_path = Path(committed) if committed is not None else committed_manifest()
    listed = read_manifest(committed_manifest_path)
    folder = committed_manifest_path.parent if committed_manifest_path.suffix == ".csv" else committed_manifest_path
    tables = listed.loc[listed["kind"] == "table", "file"]
    if len(tables) and not any((Path(fresh) / name).is_file() for name in tables):
        raise MissingDataError(f"{fresh} holds none of the {len(tables)} tables of {committed_manifest_path} (e.g. "
                               f"{tables.iloc[0]}): pass the figures folder of a run, e.g. outputs/notebooks/cpu/figures "
                               "after `make reproduce`")
    rows = []
    for name in listed.loc[listed["kind"] == "table", "file"]:
        reference = pd.read_csv(folder / name)
        if not (Path(fresh) / name).is_file():
            rows.append({"table": name, "column": "(missing)", "max_abs_difference": float("nan"), "within": False})
            continue
        candidate = pd.read_csv(Path(fresh) / name)
        reference, candidate = (table.drop(columns=[c for c in _DERIVED_TEXT_COLUMNS if c in table])
                                for table in (reference, candidate))
        flags = [c for c in reference.select_dtypes("bool").columns if c in candidate]
        reference[flags], candidate[flags] = reference[flags].astype(float), candidate[flags].astype(float)
        numeric = [c for c in reference.select_dtypes("number").columns
                   if c in candidate and not _UNSTABLE_COLUMNS.search(c)]
        keys = [c for c in reference.columns if c in candidate and
                (c not in reference.select_dtypes("number").columns or c in _KEY_COLUMNS)]
        numeric = [c for c in numeric if c not in _KEY_COLUMNS]
        try:
            joined = reference.merge(candidate, on=keys, how="outer", suffixes=("", "_fresh"), validate="one_to_one",
                                     indicator=True) if keys else reference.join(candidate, rsuffix="_fresh")
        except pd.errors.MergeError:
            joined = None
        if joined is None or ("_merge" in joined and (joined["_merge"] != "both").any()) or len(candidate) != len(reference):
            rows.append({"table": name, "column": "(rows differ)", "max_abs_difference": float("nan"), "within": False})
            continue
        for column in numeric:
            difference = float((joined[column] - joined[f"{column}_fresh"]).abs().max())
            rows.append({"table": name, "column": column, "max_abs_difference": difference,
                         "within": bool(difference <= tolerance or (difference != difference and
                                                                     joined[column].isna().equals(joined[f"{column}_fresh"].isna())))})
    return pd.DataFrame(rows, columns=["table", "column", "max_abs_difference", "within"])
