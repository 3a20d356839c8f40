"""run_grid: every variant x seed once, results read back on a rerun, retrained only when asked."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn

from medseg_core import experiments
from medseg_core.errors import ConfigError
from medseg_core.config import get_profile
from medseg_core.files import atomic_output, write_csv_atomic
from medseg_core.run_folder import RESULTS_FILE

VARIANTS = {"small": {"model_name": "unet2d", "model_kwargs": {"base_channels": 4}},
            "wide": {"model_name": "svsnet", "overrides": {"xca.window_length": 2}}}
RUN_NAMES = {"small": "xca_unet2d_T1-centre_base_channels-4", "wide": "xca_svsnet_T2-centre"}  # Task.run_name


class _FakeRun:
    """What run_grid needs from a trained run, with a test score that depends on the variant's settings."""

    def __init__(self, profile, model_kwargs, seed: int, run_dir: Path) -> None:
        self.model = nn.Conv2d(1, 1, 1)
        self.run_dir = run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "last.pt").write_bytes(b"resume state")
        self.score = 0.1 * profile.xca.window_length + 0.01 * seed + 0.001 * len(model_kwargs or {})

    def evaluate(self, split: str) -> pd.DataFrame:
        return pd.DataFrame({"id": ["001_1_000", "001_1_005"], "cluster": ["001", "001"],
                             "dice": [self.score, self.score]})


@pytest.fixture
def fake_train(monkeypatch):
    calls = []

    def train(spec, *, resume, progress, origin=None):
        calls.append({"variant": spec.folder.path.name, "resume": resume})
        return _FakeRun(spec.profile, spec.model_args, spec.seed, spec.folder.path)

    monkeypatch.setattr(experiments.RunSpec, "train", train)
    return calls


def test_grid_trains_each_run_once_and_reads_results_back(tmp_path, fake_train):
    profile = get_profile("smoke")
    first = experiments.run_grid("xca", profile, VARIANTS, [0, 1], tmp_path)
    names = [f"{RUN_NAMES[v]}_seed{s}" for v in VARIANTS for s in (0, 1)]
    assert [c["variant"] for c in fake_train] == names
    assert sorted(p.parent.name for p in tmp_path.glob(f"*/{RESULTS_FILE}")) == sorted(names)
    assert not list(tmp_path.glob("*/last.pt")), "resume state is dropped once a run's results are written"
    # the overrides reach their variant only: window length 2 for "wide", the profile's 4 for "small"
    scores = first.groupby(["variant", "seed"])["dice"].first()
    assert scores[("small", 1)] == pytest.approx(0.4 + 0.01 + 0.001)
    assert scores[("wide", 0)] == pytest.approx(0.2)
    assert set(first.columns) >= {"variant", "seed", "parameters", "train_seconds"}

    again = experiments.run_grid("xca", profile, VARIANTS, [0, 1], tmp_path)
    assert len(fake_train) == 4, "a rerun reads the CSVs back instead of training"
    pd.testing.assert_frame_equal(again, first, check_dtype=False)
    assert again["cluster"].tolist() == ["001"] * len(again), "patients like 001 are read back as text, not as 1"

    experiments.run_grid("xca", profile, VARIANTS, [0, 1, 2], tmp_path)  # a new seed trains only that seed
    assert [c["variant"] for c in fake_train[4:]] == [f"{RUN_NAMES['small']}_seed2", f"{RUN_NAMES['wide']}_seed2"]

    experiments.run_grid("xca", profile, {"small": VARIANTS["small"]}, [0], tmp_path, recompute=True)
    assert fake_train[-1] == {"variant": f"{RUN_NAMES['small']}_seed0", "resume": False}


def test_write_csv_atomic_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    write_csv_atomic(pd.DataFrame({"a": [1, 2]}), path)
    write_csv_atomic(pd.DataFrame({"a": [3]}), path)
    assert pd.read_csv(path)["a"].tolist() == [3]
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]


def test_atomic_output_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_output(path) as temporary:
            temporary.write_bytes(b"half of the new")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_parallel_grid_equals_the_same_runs_in_one_process_with_the_same_threads(tmp_path, monkeypatch):
    """jobs=2 trains in two spawned processes of torch threads // 2 each: the same numbers as those runs in turn."""
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    profile = get_profile("smoke", {"oct.image_size": 32, "grid_jobs": 2})
    variants = {"unet": {"model_name": "unet2d", "model_kwargs": {"base_channels": 4, "depth": 2}}}
    parallel = experiments.run_grid("oct", profile, variants, [0, 1], tmp_path / "parallel")
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        sequential = experiments.run_grid("oct", profile, variants, [0, 1], tmp_path / "sequential", jobs=1)
    finally:
        torch.set_num_threads(threads)
    assert parallel["seed"].tolist() == sequential["seed"].tolist()  # in the order of variants and seeds
    pd.testing.assert_frame_equal(parallel.drop(columns="train_seconds"), sequential.drop(columns="train_seconds"),
                                  check_exact=True)
    assert not list((tmp_path / "parallel").glob("*/last.pt"))


def test_grid_refuses_to_read_back_a_run_trained_with_other_settings(tmp_path, monkeypatch):
    """A finished run answers a grid, or a notebook reusing it, only for the settings it was trained with; speed
    settings may change."""
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    profile = get_profile("smoke", {"oct.image_size": 32})
    variants = {"unet": {"model_name": "unet2d", "model_kwargs": {"base_channels": 4, "depth": 2}}}
    first = experiments.run_grid("oct", profile, variants, [0], tmp_path / "grid", jobs=1)
    (csv,) = (tmp_path / "grid").glob(f"*/{RESULTS_FILE}")
    written = csv.stat().st_mtime_ns
    faster = profile.override({"deeplab.num_threads": 1, "deeplab.keep_freed_memory": False})
    again = experiments.run_grid("oct", faster, variants, [0], tmp_path / "grid", jobs=1)
    pd.testing.assert_frame_equal(again, first, check_dtype=False)
    assert csv.stat().st_mtime_ns == written, "speed settings read the finished run back"
    longer = profile.override({"deeplab.epochs": profile.deeplab.epochs + 1})
    with pytest.raises(ConfigError, match=r"epochs: stored 1, now 2.*recompute=True"):
        experiments.run_grid("oct", longer, variants, [0], tmp_path / "grid", jobs=1)
    experiments.run_grid("oct", longer, variants, [0], tmp_path / "grid", jobs=1, recompute=True)
    assert csv.stat().st_mtime_ns != written
    # notebooks reusing a run (reuse_or_train) apply the same check
    other_lr = longer.override({"deeplab.lr": longer.deeplab.lr * 2})
    source = experiments.RunSource("05", "oct", other_lr, csv.parent, "unet2d", variants["unet"]["model_kwargs"], 0)
    with pytest.raises(ConfigError, match=r"lr: stored .*, now "):
        experiments.reuse_or_train([source])
