"""medseg-kit: SVSnet (XCA vessel sequences) and DeepLabV3+ with ECA (OCT lipid plaque), in notebooks.

The few names a notebook needs are re-exported here; everything else lives in its module, each owning one
thing: ``config`` (profiles, paths), ``runtime`` (device, seeds), ``files`` (atomic writes, digests),
``errors`` (user errors), ``models`` (registry, base class, ``summary``), ``losses``, ``metrics``, ``stats``,
``data`` (readers, preprocessing, generators), ``tasks`` (what each problem needs), ``checkpoints``,
``run_folder`` (a run's files), ``training`` (Trainer), ``evaluation``, ``inference``, ``experiments`` (RunSpec,
train, grids, ablations, run reuse), ``provenance`` (figure manifest), ``viz`` (images and results), ``notebooks``
(papermill runner), ``cli``.
"""
from .checkpoints import RunMetadata, load_model
from .config import get_profile, list_profiles
from .evaluation import collect_cases, evaluate, threshold_sweep
from .experiments import run_grid, train
from .stats import summarize
from .models import create_model, list_models
from .models.summary import count_parameters
from .runtime import get_device, seed_everything
from .tasks import get_task
from .training import Trainer

__all__ = [
    "get_profile",
    "list_profiles",
    "get_task",
    "create_model",
    "list_models",
    "count_parameters",
    "Trainer",
    "RunMetadata",
    "load_model",
    "train",
    "run_grid",
    "evaluate",
    "collect_cases",
    "threshold_sweep",
    "summarize",
    "get_device",
    "seed_everything",
]

__version__ = "0.1.0"
