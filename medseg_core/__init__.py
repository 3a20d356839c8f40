"""medseg-kit: SVSnet (XCA vessel sequences) and DeepLabV3+ with ECA (OCT lipid plaque), in notebooks.

The few names a notebook needs are re-exported here; everything else lives in its module:
``config`` (profiles), ``models`` (registry), ``losses``, ``metrics``, ``data``, ``training`` (Trainer),
``evaluation``, ``experiments`` (tasks, variant x seed grids), ``stats`` (comparisons over seeds and cases),
``figures`` (manifest, ablations, model costs), ``viz``, ``notebooks`` (papermill runner), ``cli``.
"""
from .config import get_profile, list_profiles
from .evaluation import evaluate, threshold_sweep
from .experiments import run_grid, train
from .metrics import summarize
from .models import count_parameters, create_model, list_models
from .runtime import get_device, seed_everything
from .training import Trainer, load_model

__all__ = [
    "get_profile",
    "list_profiles",
    "create_model",
    "list_models",
    "count_parameters",
    "Trainer",
    "load_model",
    "train",
    "run_grid",
    "evaluate",
    "threshold_sweep",
    "summarize",
    "get_device",
    "seed_everything",
]

__version__ = "0.1.0"
