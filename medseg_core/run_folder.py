"""A run's folder and its files, in one place: :class:`RunFolder`.

Every run, however it is trained (``medseg train``, a notebook's own Trainer, a grid, a transfer study), keeps
the same files in its folder, named here and nowhere else:

* ``best.pt`` and ``last.pt``: checkpoints (:mod:`medseg_core.checkpoints`), the best validated epoch and the
  resume state (a grid deletes ``last.pt`` once the run's results are written: only a resume needs it, and it is
  the largest file);
* ``history.csv``: one row per epoch (:meth:`medseg_core.training.Trainer.history_frame`);
* ``config.json``: the run's resolved settings (:mod:`medseg_core.run_config`);
* ``test_metrics.csv``: the run's **results**, one row per test case and class in one schema
  (:meth:`RunFolder.write_results`).

**Finished** has one rule (:meth:`RunFolder.is_finished`): the results file exists. It is written atomically, after
training ended and the test split was scored, so a run interrupted anywhere before that is not finished (and resumes
from its resume state). A finished run is reused only when it was trained with the settings asked for
(:meth:`RunFolder.check_matches`). The folder's lock (:meth:`RunFolder.lock`) keeps two trainings out of one folder.

Which folder a run gets is :class:`medseg_core.experiments.RunSpec`'s to decide; the checkpoint contract (what a
checkpoint holds, how settings compare) is :mod:`medseg_core.checkpoints`'.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import pandas as pd

from .checkpoints import RunMetadata, load_checkpoint, settings_differences
from .config import TrainConfig
from .errors import ConfigError
from .files import atomic_output, folder_lock, remove_stale_temporaries, write_csv_atomic

__all__ = ["RunFolder", "BEST_FILE", "LAST_FILE", "HISTORY_FILE", "RESULTS_FILE", "CONFIG_FILE", "RESULT_COLUMNS"]

BEST_FILE = "best.pt"  # the best validated epoch's checkpoint
LAST_FILE = "last.pt"  # the resume state: the last saved epoch's checkpoint
HISTORY_FILE = "history.csv"  # one row per epoch
RESULTS_FILE = "test_metrics.csv"  # per-case test metrics; its presence marks the run as finished
CONFIG_FILE = "config.json"  # the run's resolved settings
RESULT_COLUMNS = ("variant", "seed", "parameters", "train_seconds")
"""The run's columns of a results file, after the per-case columns of :func:`medseg_core.evaluation.evaluate`."""
_TEXT_COLUMNS = {"id": str, "cluster": str}  # ids and patients such as 001 stay text when read back


@dataclass(frozen=True)
class RunFolder:
    """The files of one run in ``path`` (see the module's description); nothing is created until written.

    Example:
        >>> folder = RunFolder("runs/smoke/xca_svsnet_T4-centre_seed0")
        >>> folder.best, folder.is_finished()
        (PosixPath('runs/smoke/xca_svsnet_T4-centre_seed0/best.pt'), False)
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # ---------------------------------------------------------------------------------------------- files
    @property
    def best(self) -> Path:
        """The best validated epoch's checkpoint."""
        return self.path / BEST_FILE

    @property
    def last(self) -> Path:
        """The resume state (the last saved epoch's checkpoint)."""
        return self.path / LAST_FILE

    @property
    def history(self) -> Path:
        """One row per epoch, as the Trainer logged them."""
        return self.path / HISTORY_FILE

    @property
    def results(self) -> Path:
        """Per-case test metrics (:meth:`write_results`); the mark of a finished run."""
        return self.path / RESULTS_FILE

    @property
    def config(self) -> Path:
        """The run's resolved settings (:mod:`medseg_core.run_config`)."""
        return self.path / CONFIG_FILE

    @property
    def training_files(self) -> tuple[Path, Path, Path]:
        """What a Trainer writes (best, last, history): a fresh start deletes them (:meth:`clear_training`)."""
        return self.best, self.last, self.history

    # ------------------------------------------------------------------------------------------- training
    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock on the folder (:func:`medseg_core.files.folder_lock`), held by the Trainer for a whole fit,
        before any of its files is touched (a restart deletes the earlier results under it). Once held, temporary
        files of writers that were killed mid-write are removed.

        Raises:
            ConfigError: another process trains in the folder (named), or it cannot be written.
        """
        with folder_lock(self.path, advice="wait for it to finish, or train into another run folder"):
            remove_stale_temporaries(self.path)
            yield

    def clear_training(self) -> None:
        """Delete :attr:`training_files` (call under :meth:`lock`): nothing of an earlier run mixes with a new one."""
        for path in self.training_files:
            path.unlink(missing_ok=True)

    def drop_resume_state(self) -> None:
        """Delete the resume state once the run is finished (the best checkpoint stays)."""
        self.last.unlink(missing_ok=True)

    def write_history(self, history: pd.DataFrame) -> Path:
        """Write the epoch history atomically."""
        return write_csv_atomic(history, self.history)

    def read_history(self) -> pd.DataFrame:
        """The epoch history as the Trainer wrote it."""
        return pd.read_csv(self.history)

    def write_config(self, record: Mapping[str, Any]) -> Path:
        """Write the run's record (:func:`medseg_core.run_config.run_record`) as indented JSON, atomically."""
        with atomic_output(self.config) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return self.config

    # -------------------------------------------------------------------------------------------- results
    def is_finished(self) -> bool:
        """The one rule: a run is finished when its results file exists (written after training and testing)."""
        return self.results.is_file()

    def write_results(self, cases: pd.DataFrame, *, variant: str, seed: int, parameters: int,
                      train_seconds: float) -> pd.DataFrame:
        """Write the run's results atomically and return them: ``cases`` (per-case metrics of
        :func:`medseg_core.evaluation.evaluate`) with the run's :data:`RESULT_COLUMNS` (the variant of a grid, or the
        run's name; the seed; the model's parameters; the seconds training took). This marks the run as finished, so
        a reader sees the whole table or none."""
        table = cases.assign(variant=variant, seed=seed, parameters=parameters, train_seconds=round(train_seconds, 1))
        write_csv_atomic(table, self.results)
        return table

    def read_results(self) -> pd.DataFrame:
        """The results as :meth:`write_results` wrote them (ids and clusters as text)."""
        return pd.read_csv(self.results, dtype=_TEXT_COLUMNS)

    def check_matches(self, config: TrainConfig, metadata: RunMetadata) -> None:
        """Refuse to reuse this run when it was trained with other settings than ``config`` and ``metadata``.

        Compares the training settings (all but :data:`~medseg_core.checkpoints.SPEED_SETTINGS`; ``epochs``
        included) and the run metadata stored in the best checkpoint
        (:func:`~medseg_core.checkpoints.settings_differences`); loader settings that checkpoints do not hold
        (e.g. ``xca.train_crop``) are not compared. Without a best checkpoint (a weight-free baseline) there is
        nothing to compare.

        Raises:
            ConfigError: the settings differ; the message names each and the way out.
        """
        if not self.best.is_file():
            return
        differences = settings_differences(load_checkpoint(self.best, mmap=True), config, metadata)
        if differences:
            raise ConfigError(
                f"the finished run {self.path} was trained with other settings ({'; '.join(differences)}), so it "
                "does not answer these. Retrain it (in a grid: recompute=True, in the notebooks' parameters: "
                "recompute = True; elsewhere move the folder away), or keep runs with the changed settings in "
                "another results folder."
            )
