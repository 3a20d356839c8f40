"""Experiments: a task x a model x a seed -> a trained run; grids of variants x seeds; the kit's studies.

One file per study, all re-exported here (``from medseg_core import experiments as ex``):

* :mod:`.runs` - :class:`RunSpec` resolves a run once (task, profile, model and its arguments, seed, data,
  initial weights, folder); :func:`train` is what ``medseg train``, the quickstart and the ablations call, and
  notebooks 02 and 04 build the same pieces one cell at a time from a :class:`RunSpec` (loaders, model,
  :class:`~medseg_core.training.Trainer`) to show them. The same settings always share one folder
  (:class:`~medseg_core.run_folder.RunFolder`) and a finished run is reused instead of retrained. :func:`run_grid`
  trains variants x seeds with identical budgets and reads back finished runs, so long ablations can be
  interrupted and resumed.
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
from .runs import RunSource, RunSpec, TrainedRun, run_grid, train
from .transfer import (TRANSFER_STARTS, fine_tuning_curve, real_transfer_data, synthetic_to_real, transfer_budget,
                       transfer_profile, transfer_run_dir)
from .xca_transfer import xca_synthetic_to_real, xca_transfer_dir, xca_transfer_profile, xca_transfer_run_dir

__all__ = [
    "TrainedRun",
    "train",
    "run_grid",
    "RunSpec",
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
