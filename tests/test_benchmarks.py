"""benchmarks/bench.py end to end in ``--quick`` mode: it runs, prints its tables and appends CSVs with finite,
positive figures. Nothing here is about speed."""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench.py"
HAS_SMP = importlib.util.find_spec("segmentation_models_pytorch") is not None

POSITIVE_COLUMNS = ["params_M", "fwd_GFLOP", "step_median_s", "train_items/s", "infer_median_s", "infer_items/s",
                    "peak_train_MiB", "peak_total_MiB", "achieved_GFLOP/s", "of_sgemm", "of_dtype_gemm",
                    "sgemm_GFLOP/s"]
RATIO_COLUMNS = ["train_throughput_x", "paired_step_time_x", "infer_throughput_x", "paired_infer_time_x",
                 "peak_train_mem_x", "params_x", "fwd_flops_x"]


def _all_finite_positive(values: pd.Series) -> bool:
    return all(math.isfinite(value) and value > 0 for value in values.astype(float))


@pytest.mark.slow
def test_quick_benchmark_prints_tables_and_writes_csvs(tmp_path: Path) -> None:
    csv = tmp_path / "bench.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(BENCH), "--quick", "--csv", str(csv)], capture_output=True, text=True,
                         env=env, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    for text in ("64x64", "Ratios at 64x64", "GEMM float32", "cpu_native_bf16", "memory method"):
        assert text in run.stdout

    table = pd.read_csv(csv)
    assert len(table) == (3 if HAS_SMP else 2)  # separable previous and default (+ smp with the fast paths)
    for column in POSITIVE_COLUMNS:
        assert _all_finite_positive(table[column]), (column, table[column].tolist())
    assert set(table["size"]) == {64} and set(table["batch"]) == {2}
    assert {"date", "torch", "device", "threads", "cpu", "precision", "layout", "fast_gemm_dtype"} <= set(table)
    previous = table[table["setting"] == "previous"].iloc[0]
    assert (previous["model"], previous["precision"], previous["layout"]) == (
        "deeplabv3plus separable", "float32", "contiguous")
    default = table[(table["setting"] == "default")].iloc[0]
    assert default["layout"] == "channels_last"  # the kit's default for 2D models
    assert default["step_median_s"] * default["train_items/s"] == pytest.approx(2)  # throughput = batch / time

    ratios = pd.read_csv(tmp_path / "bench_ratios.csv")
    expected = {"deeplabv3plus separable: default / previous"}
    if HAS_SMP:
        expected.add("deeplabv3plus separable / smp mobilenet_v2")
    assert set(ratios["comparison"]) == expected
    for column in RATIO_COLUMNS:
        assert _all_finite_positive(ratios[column]), (column, ratios[column].tolist())
    for comparison in expected:
        assert comparison in run.stdout


def test_append_csv_keeps_earlier_rows_and_the_union_of_columns(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    common = importlib.import_module("_common")
    path = tmp_path / "results.csv"
    common.append_csv(pd.DataFrame({"model": ["a"], "step_median_s": [1.0]}), path, {"cpu": "x"})
    common.append_csv(pd.DataFrame({"model": ["b"], "infer_median_s": [2.0]}), path, {"cpu": "y"})
    rows = pd.read_csv(path)
    assert rows["model"].tolist() == ["a", "b"] and rows["cpu"].tolist() == ["x", "y"]
    assert rows["step_median_s"].iloc[0] == 1.0 and math.isnan(rows["step_median_s"].iloc[1])


def test_profile_step_splits_convolution_time_by_dimension(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "profile_step.py"), "--model", "svsnet",
                          "--size", "64", "--steps", "1"], capture_output=True, text=True, env=env, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "convolution time per step" in run.stdout
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith(("2D", "3D"))]
    assert {(row[0], row[1]) for row in rows} >= {("3D", "forward"), ("3D", "backward"), ("2D", "forward")}
    assert all(float(row[2]) > 0 for row in rows)


@pytest.mark.slow
def test_quick_data_benchmark_prints_generation_loading_and_training_throughput(tmp_path: Path) -> None:
    csv = tmp_path / "data.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "data_throughput.py"), "--quick", "--csv", str(csv)],
                         capture_output=True, text=True, env=env, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "Data against training" in run.stdout
    table = pd.read_csv(csv)
    assert list(table["task"]) == ["xca", "oct"]
    for column in ("generation_frames/s", "load_first_epoch/s", "load_later_epoch/s", "load_next_run/s",
                   "train_samples/s", "load/train first"):
        assert _all_finite_positive(table[column]), (column, table[column].tolist())
    assert (table["generated_frames"] > 0).all()
