"""The angiography fine-tuning curve of notebook 10: SVSnet fine-tuned on n real frames of any labelled folder
(:mod:`medseg_core.data.public`'s layouts), from scratch and from the synthetic model, paired by seed, with equal
steps and validations: :func:`~.transfer.fine_tuning_curve`, the design of notebook 09's OCT study."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import pandas as pd

from ..config import Profile
from ..data.public import detect_format
from ..errors import ConfigError
from .runs import grid_run
from .transfer import TRANSFER_STARTS, fine_tuning_curve, transfer_profile

SPLIT_NOTE = ".*labelled frames: train"
"""The start of :func:`~medseg_core.data.public.training_splits`' warning, which every run of a curve repeats."""


def xca_transfer_profile(profile: Profile, data_format: str | None = None) -> Profile:
    """The profile of every run of :func:`xca_synthetic_to_real`: ``profile`` with the recipe
    ``profile.xca_transfer.recipe`` (``real-xca``), then ``profile.xca_transfer.overrides``, named
    ``<profile>_real-xca``; ``data_format`` sets ``xca.data_format`` (None keeps the profile's: detected)."""
    return transfer_profile(profile, profile.xca_transfer).override({"xca.data_format": data_format})


def xca_transfer_dir(profile: Profile, real_root: str | Path, data_format: str | None = None) -> Path:
    """Where the runs of one curve go: ``runs/<profile>_real-xca/synthetic_to_real/<format>_<folder name>``, one
    folder per real data set, so that curves on two data sets never read each other's results back."""
    real = xca_transfer_profile(profile, data_format)
    name = real.xca.data_format or detect_format(real_root)
    return real.run_dir("synthetic_to_real") / f"{name}_{re.sub(r'[^A-Za-z0-9._-]', '_', Path(real_root).resolve().name)}"


def xca_synthetic_to_real(
    profile: Profile,
    real_root: str | Path,
    pretrained: str | Path,
    *,
    data_format: str | None = None,
    train_frames: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    recompute: bool = False,
    verbose: bool = True,
) -> pd.DataFrame:
    """Fine-tune SVSnet on ``n`` real labelled frames of ``real_root``, from random weights and from ``pretrained``;
    test on its test split.

    The split is the data set's own, or cut by run (:func:`~medseg_core.data.public.training_splits`), the same for
    every run; the ``n`` frames are every k-th labelled training frame (:func:`~medseg_core.data.xca.every_kth_sample`),
    the same for every seed, so a ``scratch`` and a ``synthetic`` run with one ``n`` and seed see the same batches and
    differ only in their starting weights (paired). Every run has ``profile.xca_transfer.steps`` optimisation steps and
    about ``xca_transfer.validations`` validations, with the ``real-xca`` recipe's settings and then
    ``xca_transfer.overrides`` (:func:`xca_transfer_profile`). Runs are read back when their results exist, under
    :func:`xca_transfer_dir`.

    Args:
        real_root: a labelled angiography folder in a layout of :mod:`medseg_core.data.public`.
        pretrained: an SVSnet checkpoint trained on synthetic windows, with the profile's window length.
        data_format: its layout (default: ``xca.data_format``, else detected).
        train_frames: the ``n`` values (default ``profile.xca_transfer.train_frames``); values above the training
            split's size mean all of it, and are run once.
        seeds: default ``profile.xca_transfer.seeds``.

    Returns:
        Per-frame test results (:func:`~medseg_core.experiments.run_grid`'s columns) with ``start``
        (:data:`~.transfer.TRANSFER_STARTS`) and ``train_frames`` (frames used).

    Raises:
        ConfigError: an ``n`` below 1.
    """
    real = xca_transfer_profile(profile, data_format)
    counts = list(profile.xca_transfer.train_frames if train_frames is None else train_frames)
    if not counts or min(counts) < 1:
        raise ConfigError(f"train_frames must be at least 1 each; got {counts}")
    return fine_tuning_curve("xca", real, profile.xca_transfer, real_root, pretrained,
                             xca_transfer_dir(profile, real_root, data_format), train_frames=counts,
                             seeds=list(profile.xca_transfer.seeds if seeds is None else seeds), quiet=SPLIT_NOTE,
                             recompute=recompute, verbose=verbose)


def xca_transfer_run_dir(profile: Profile, real_root: str | Path, start: str, train_frames: int, seed: int = 0,
                         data_format: str | None = None) -> Path:
    """The run folder of one run of :func:`xca_synthetic_to_real` (:func:`~.runs.grid_run`).

    Args:
        start: one of :data:`~.transfer.TRANSFER_STARTS`.
        train_frames: the frames the run used (the results' ``train_frames`` column).
    """
    if start not in TRANSFER_STARTS:
        raise ValueError(f"start must be one of {TRANSFER_STARTS}; got {start!r}")
    real = xca_transfer_profile(profile, data_format)
    results_dir = xca_transfer_dir(profile, real_root, data_format)
    return grid_run("xca", real, results_dir, {"folder": f"{start}_n{train_frames}"}, seed).folder.path
