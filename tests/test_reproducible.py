"""A run is repeatable: the same seed on the same machine and thread count gives the same numbers, exactly."""
from __future__ import annotations

import pandas as pd

from medseg_core.config import get_profile
from medseg_core.experiments import train


def test_two_runs_of_one_seed_give_identical_histories_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    profile = get_profile("smoke", {"svsnet.epochs": 2})
    runs = [train("xca", profile, seed=3, run_dir=tmp_path / name, progress=False) for name in ("first", "second")]
    columns = ["epoch", "train_loss", "val_loss", "val_dice", "lr"]
    pd.testing.assert_frame_equal(runs[0].history[columns], runs[1].history[columns], check_exact=True)
    metrics = [run.evaluate("test").drop(columns=["cluster"]) for run in runs]
    pd.testing.assert_frame_equal(metrics[0], metrics[1], check_exact=True)
