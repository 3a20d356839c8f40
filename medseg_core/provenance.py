"""Provenance of the kit's figures and tables: the manifest, :class:`FigureWriter`, figure saving, checks.

:class:`FigureWriter` saves figures (PNG) and result tables (CSV) and records each file in
``<figures folder>/manifest.csv``: notebook, profile, seeds, source run, package versions (torch, torchvision,
medseg-kit), git commit (``git rev-parse HEAD``, ``"unknown"`` outside a repository), whether the checkout had
uncommitted changes, and a UTC timestamp. :func:`check_figures` checks a folder against a manifest (by default
the committed ``figures/manifest.csv``, :func:`committed_manifest`): every listed file must exist.
"""
from __future__ import annotations

import importlib.metadata
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
from .files import write_csv_atomic

__all__ = [
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



def save_figure(fig: plt.Figure, name: str, figures_dir: str | Path, dpi: int = 150) -> Path:
    """Save ``fig`` as ``figures_dir/name.png`` (folders created) and return the path."""
    path = Path(figures_dir) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
