"""The OCT dataset's own protocol: patient-level k-fold cross-validation, ``medseg cv --task oct``.

The public IVOCT dataset (Danilov et al., Comput Biol Med 197:111061, 2025; Zenodo 10.5281/zenodo.14478210) is
released in patient-level folds ``fold_k/{train,test}/{img,mask}`` (every patient in exactly one test fold), and
its paper scores 5-fold cross-validation. :func:`cross_validate` trains one model per fold with the profile's
settings (:func:`medseg_core.experiments.train`: the fold's training patients split into training and validation by
patient, best checkpoint by validation), scores the fold's test patients with
:func:`medseg_core.evaluation.evaluate`, and tabulates:

* ``cv_frames.csv``: every test frame of every fold (``fold``, ``class``, metrics, ``cluster`` = patient);
* ``cv_folds.csv``: per fold and class, Dice/IoU on frames with the class and false alarms on frames without
  (:func:`medseg_core.stats.foreground_split`, intervals over the fold's patients);
* ``cv_summary.csv``: per class, the mean of the fold scores and their spread over folds, the pooled frames'
  scores, and the published number beside it (:data:`PUBLISHED_OCT_DICE`, with its conditions).

Folds are read as released; the kit never re-splits them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from torch.utils.data import DataLoader

from .config import Profile
from .data.oct import find_oct_pairs, oct_dataloaders
from .errors import ConfigError, DataError
from .files import ensure_writable, write_csv_atomic
from .stats import foreground_split
from .tasks import OCTTask, get_task

__all__ = ["PUBLISHED_OCT_DICE", "CrossValidation", "cross_validate"]

PUBLISHED_OCT_DICE: dict[str, tuple[float, str]] = {
    "lipid_core": (0.751, "Danilov et al. 2025, best single model (LinkNet of nine smp architectures), 103 patients, "
                          "patient-level 5-fold"),
    "fibrous_cap": (0.736, "Danilov et al. 2025, best single model, 5-fold"),
    "lumen": (0.987, "Danilov et al. 2025, best single model, 5-fold"),
}
"""Dice published for the dataset, per class: (value, conditions). Not for the kit's architecture: none is."""


@dataclass(frozen=True)
class _FoldTask(OCTTask):
    """The OCT task reading one released fold: its test patients are the test set."""

    fold: int = 1

    def make_loaders(self, profile: Profile, root: Path, model_name: str, seed: int) -> dict[str, DataLoader]:
        return oct_dataloaders(root, profile.oct, profile.deeplab.batch_size, num_workers=profile.deeplab.num_workers,
                               seed=seed, split_seed=profile.oct.seed, fold=self.fold)


@dataclass
class CrossValidation:
    """What :func:`cross_validate` computed and wrote into ``out_dir``."""

    frames: pd.DataFrame
    folds: pd.DataFrame
    summary: pd.DataFrame
    out_dir: Path


def _released_folds(root: Path, folds: int) -> list[int]:
    pairs = find_oct_pairs(root)
    available = sorted(int(fold) for fold in pairs["fold"].dropna().unique())
    if not available:
        raise DataError(f"{root} is not in the fold layout fold_k/{{train,test}}/{{img,mask}} of the released OCT "
                        "dataset; cross-validation reads the released patient folds (flat data: use medseg train)")
    if folds > len(available):
        raise ConfigError(f"--folds {folds}: {root} holds {len(available)} folds ({available})")
    return available[:folds]


def cross_validate(
    root: str | Path,
    profile: Profile,
    *,
    task: str = "oct",
    folds: int = 5,
    model_name: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> CrossValidation:
    """Train and test one model per released fold of the OCT dataset in ``root``; write the three tables.

    Args:
        root: the dataset in its fold layout (real, or ``write_oct_dataset(..., layout="folds")``).
        profile: training and preprocessing settings (every fold the same).
        task: "oct" (the only task with released folds).
        folds: how many folds to run, the first ``folds`` of those released.
        out_dir: per-fold run folders ``fold<k>/`` and the tables (default ``runs/<profile>/oct_cv_<model>_seed<seed>``).
        seed: seed of every fold's training (one seed: fold-to-fold spread is the spread reported).

    Finished folds are reused (``train`` resumes), so an interrupted cross-validation continues where it stopped.
    """
    from .experiments import train

    if task != "oct":
        raise ConfigError(f"cross-validation reads the OCT dataset's released patient folds; task {task!r} has none "
                          "(use --task oct)")
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    root = Path(root)
    base = get_task("oct")
    model_name = model_name or base.default_model
    out_dir = ensure_writable(Path(out_dir) if out_dir is not None else
                              profile.run_dir(f"oct_cv_{model_name}_seed{seed}"))
    fields = {field.name: getattr(base, field.name) for field in dataclasses.fields(base)}
    tables = []
    for fold in _released_folds(root, folds):
        run = train(_FoldTask(**fields, fold=fold), profile, model_name=model_name, model_kwargs=model_kwargs,
                    seed=seed, run_dir=out_dir / f"fold{fold}", data_root=root, progress=progress)
        tables.append(run.evaluate("test").assign(fold=fold))
    frames = pd.concat(tables, ignore_index=True)
    per_fold = foreground_split(frames, by="fold", metrics=("dice", "iou"))
    summary = _summary(frames, per_fold)
    write_csv_atomic(frames, out_dir / "cv_frames.csv")
    write_csv_atomic(per_fold, out_dir / "cv_folds.csv")
    write_csv_atomic(summary, out_dir / "cv_summary.csv")
    return CrossValidation(frames, per_fold, summary, out_dir)


def _summary(frames: pd.DataFrame, per_fold: pd.DataFrame) -> pd.DataFrame:
    """Per class: mean and spread of the fold Dice scores, the pooled frames' Dice, and the published Dice."""
    pooled = foreground_split(frames, metrics=("dice", "iou")).set_index("class")
    rows = []
    for name, group in per_fold.groupby("class", sort=False):
        published = PUBLISHED_OCT_DICE.get(name)
        rows.append({"class": name, "folds": len(group), "dice_mean_of_folds": group["dice"].mean(),
                     "dice_sd_over_folds": group["dice"].std(ddof=1), "dice_pooled": pooled.at[name, "dice"],
                     "dice_pooled_ci_low": pooled.at[name, "dice_ci_low"],
                     "dice_pooled_ci_high": pooled.at[name, "dice_ci_high"],
                     "false_alarm_rate_pooled": pooled.at[name, "false_alarm_rate"],
                     "published_dice": published[0] if published else float("nan"),
                     "published_conditions": published[1] if published else ""})
    return pd.DataFrame(rows)
