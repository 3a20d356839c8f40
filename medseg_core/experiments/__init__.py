"""Experiments: a task x a model x a seed -> a trained run; grids of variants x seeds; the kit's studies.

One file per study, all re-exported here (``from medseg_core import experiments as ex``):

* :mod:`.runs` - :func:`train` is what ``medseg train``, the quickstart and the ablations call; notebooks 02 and 04
  build the same pieces by hand (task loaders, model, loss, :class:`~medseg_core.training.Trainer`) to show them.
  Both name the run folder with :meth:`medseg_core.tasks.Task.run_dir`, so the same settings always share one
  folder and a finished run is reused instead of retrained. :func:`run_grid` trains variants x seeds with
  identical budgets and reads back runs whose results exist, so long ablations can be interrupted and resumed.
* :mod:`.ablations` - :class:`Ablation` names the two grids of notebooks 05 and 06 (:data:`ECA_ABLATION`,
  :data:`WINDOW_LENGTH_ABLATION`): their design, run, committed results and analysis.
* :mod:`.transfer` - the synthetic-to-real study of notebook 09 (real OCT), and its design for any task
  (:func:`fine_tuning_curve`).
* :mod:`.xca_transfer` - the same study on a real angiography folder (notebook 10).
* :mod:`.reuse` - :func:`reuse_or_train` finds a finished run among the folders other notebooks write (notebooks
  07-09 reuse them).
"""
from .ablations import (ABLATIONS, ECA_ABLATION, WINDOW_LENGTH_ABLATION, WINDOW_LENGTHS, Ablation, AblationAnalysis,
                        read_committed_results)
from .reuse import deeplab_sources, kit_architectures, reuse_or_train, svsnet_sources
from .runs import RESULTS_FILE, RunSource, TrainedRun, check_finished_run, run_grid, train
from .transfer import (TRANSFER_STARTS, fine_tuning_curve, real_transfer_data, synthetic_to_real, transfer_budget,
                       transfer_profile, transfer_run_dir)
from .xca_transfer import xca_synthetic_to_real, xca_transfer_dir, xca_transfer_profile, xca_transfer_run_dir

__all__ = [
    "TrainedRun",
    "train",
    "run_grid",
    "RESULTS_FILE",
    "check_finished_run",
    "RunSource",
    "Ablation",
    "AblationAnalysis",
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
    "fine_tuning_curve",
    "xca_transfer_profile",
    "xca_synthetic_to_real",
    "xca_transfer_dir",
    "xca_transfer_run_dir",
    "svsnet_sources",
    "deeplab_sources",
    "reuse_or_train",
    "kit_architectures",
]
