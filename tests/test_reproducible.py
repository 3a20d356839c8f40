"""A run is repeatable: the same seed on the same machine and thread count gives the same numbers, exactly.

Both tasks: SVSnet trains in float32 and channels_last_3d, DeepLabV3+ with bfloat16 autocast where the CPU has
native bf16 and channels_last, so both fast-path layouts are checked.
"""
from __future__ import annotations

import pandas as pd
import pytest

from medseg_core.config import get_profile
from medseg_core.experiments import train


@pytest.mark.parametrize("task, overrides", [("xca", {"svsnet.epochs": 2}),
                                             ("oct", {"deeplab.epochs": 2, "oct.image_size": 32})])
def test_two_runs_of_one_seed_give_identical_histories_and_metrics(task, overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    profile = get_profile("smoke", overrides)
    runs = [train(task, profile, seed=3, run_dir=tmp_path / name, progress=False) for name in ("first", "second")]
    columns = ["epoch", "train_loss", "val_loss", "val_dice", "lr"]
    pd.testing.assert_frame_equal(runs[0].history[columns], runs[1].history[columns], check_exact=True)
    metrics = [run.evaluate("test").drop(columns=["cluster"]) for run in runs]
    pd.testing.assert_frame_equal(metrics[0], metrics[1], check_exact=True)
