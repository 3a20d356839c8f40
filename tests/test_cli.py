"""`medseg train` and `medseg predict` end to end on tiny synthetic data (and on the real OCT sample)."""
from __future__ import annotations

from medseg_core.tasks import get_task

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medseg_core.cli import main
from medseg_core.checkpoints import load_checkpoint
from medseg_core.config import real_data_path

REAL_OCT_SAMPLE = real_data_path("oct_zenodo_sample")  # shipped with the kit: data/real/oct_zenodo_sample


@pytest.fixture()
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture()
def oct_checkpoint(isolated) -> Path:
    out = isolated / "oct_run"
    assert main(["train", "--task", "oct", "--profile", "smoke", "--out", str(out),
                 "--set", "oct.num_patients=5", "oct.frames_per_patient=2"]) == 0
    return out / "best.pt"


def test_train_oct_writes_checkpoint_history_and_test_metrics(oct_checkpoint):
    state = load_checkpoint(oct_checkpoint)
    assert state["model_spec"]["name"] == "deeplabv3plus"
    assert state["metadata"] == {"task": "oct", "image_size": 64, "class_names": ["lipid_core"], "input_kind": "image",
                                 "window_length": 1, "window_policy": "centre", "single_frame": False}
    run_dir = oct_checkpoint.parent
    assert len(pd.read_csv(run_dir / "history.csv")) == 1
    assert {"dice", "iou", "precision", "recall"} <= set(pd.read_csv(run_dir / "test_metrics.csv").columns)


def test_train_prints_false_alarms_on_cases_without_foreground_apart(isolated, capsys):
    out = isolated / "oct_summary"
    assert main(["train", "--task", "oct", "--profile", "smoke", "--out", str(out),
                 "--set", "oct.num_patients=5", "oct.frames_per_patient=2"]) == 0
    results = pd.read_csv(out / "test_metrics.csv")
    empty = results[results["truth_pixels"] == 0]
    printed = capsys.readouterr().out
    assert f"test metrics on the {len(results) - len(empty)} of {len(results)} cases with foreground" in printed
    assert len(empty) > 0  # this split holds a plaque-free test frame, so the false-alarm line must be there
    alarms = int((empty["predicted_pixels"] > 0).sum())
    assert f"false alarms (lipid_core): {alarms} of the {len(empty)} cases without foreground" in printed


def test_predict_writes_masks_and_overlays_for_real_oct_frames(oct_checkpoint, tmp_path):
    out = tmp_path / "predicted"
    assert main(["predict", "--checkpoint", str(oct_checkpoint), "--input", str(REAL_OCT_SAMPLE / "img"),
                 "--output", str(out)]) == 0
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 11
    with Image.open(out / "masks" / "001_1_001.png") as stored:  # a palette PNG: class indices, shown in colour
        assert stored.mode == "P"
        mask = np.asarray(stored)
    assert mask.shape == (750, 750) and set(np.unique(mask)) <= {0, 1}
    assert Image.open(out / "overlays" / "001_1_001.png").size == (750, 750)


def test_train_and_predict_xca_whole_video(isolated):
    out = isolated / "xca_run"
    assert main(["train", "--task", "xca", "--profile", "smoke", "--out", str(out)]) == 0
    from medseg_core.config import get_profile

    video = next((get_task("xca").data_dir(get_profile("smoke")) / "test" / "JPEGImages").iterdir())
    predicted = isolated / "predicted"
    assert main(["predict", "--checkpoint", str(out / "best.pt"), "--input", str(video), "--output",
                 str(predicted)]) == 0
    frames = sorted(video.iterdir())
    masks = sorted((predicted / "masks" / video.name).iterdir())
    assert [m.stem for m in masks] == [f.stem for f in frames]  # one mask per frame, unlabelled ones too


def test_predict_rejects_checkpoint_without_metadata(tmp_path):
    import torch

    path = tmp_path / "foreign.pt"
    torch.save({"model": {}}, path)
    assert main(["predict", "--checkpoint", str(path), "--input", str(tmp_path), "--output", str(tmp_path / "o")]) == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--profile", "no-such-profile"], "unknown profile 'no-such-profile'; valid profiles: smoke, cpu, paper"),
    (["train", "--profile", "smoke", "--model", "nonet"], "unknown model 'nonet'; valid names: "),
    (["train", "--profile", "smoke", "--task", "ct"], "unknown task 'ct'; valid tasks: xca, oct"),
    (["train", "--profile", "smoke", "--task", "oct", "--model", "svsnet"], "takes window inputs"),
    (["generate", "xca", "--profile", "smoke", "--set", "xca.no_such_field=1"], "unknown profile field 'xca.no_such_field'"),
    (["generate", "xca", "--profile", "smoke", "--set", "svsnet.lr=abc"], "svsnet.lr must be float"),
    (["generate", "xca", "--profile", "smoke", "--set", "svsnet.epochs=1.5"], "svsnet.epochs must be int"),
    (["generate", "xca", "--profile", "smoke", "--set", "svsnet.epochs=-1"], "svsnet.epochs must be at least 1"),
    (["generate", "xca", "--profile", "smoke", "--set", "deeplab.num_threads=0"], "num_threads must be at least 1"),
    (["generate", "xca", "--profile", "smoke", "--set", "xca=3"], "xca is a section"),
    (["generate", "xca", "--profile", "smoke", "--set", "xca.image_size"], "expect KEY=VALUE"),
    (["predict", "--checkpoint", "missing.pt", "--input", ".", "--output", "o"], "checkpoint not found: missing.pt"),
])
def test_user_errors_are_one_line_with_exit_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_explicit_null_sets_none_on_the_cli(tmp_path):
    from medseg_core.config import get_profile

    assert get_profile("smoke", {"svsnet.grad_clip": None}, none_keeps=False).svsnet.grad_clip is None
    assert get_profile("smoke", {"svsnet.grad_clip": None}).svsnet.grad_clip == 1.0  # a notebook's "keep"


# ---------------------------------------------------------------------------------- user mistakes: one line, exit 2
def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medseg: error: "), err
    return err[0]


def test_unknown_notebook_number_is_one_line_listing_the_valid_ones(capsys):
    assert main(["notebooks", "--only", "99"]) == 2
    line = _one_error_line(capsys)
    assert "no notebook matches 99" in line and "valid numbers: 00, 01" in line


def test_notebooks_without_papermill_say_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "papermill", None)  # import papermill now fails, as where it is not installed
    assert main(["notebooks", "--only", "00"]) == 2
    assert 'needs papermill, which is not installed' in _one_error_line(capsys)


def test_check_figures_on_an_empty_folder_says_which_folder_to_pass(tmp_path, capsys, monkeypatch):
    committed = tmp_path / "committed"
    committed.mkdir()
    pd.DataFrame([{"file": "scores.csv", "kind": "table", "notebook": "07"}]).to_csv(committed / "manifest.csv",
                                                                                    index=False)
    assert main(["check-figures", str(tmp_path / "empty"), "--committed", str(committed)]) == 2
    assert "holds none of the 1 tables" in _one_error_line(capsys)
    monkeypatch.setenv("MEDSEG_HOME", str(tmp_path))  # outside a checkout: no committed manifest
    assert main(["check-figures", str(tmp_path / "empty")]) == 2
    line = _one_error_line(capsys)
    assert "no figure manifest" in line and "medseg_core.provenance.FigureWriter" in line
    import importlib

    module, _, name = "medseg_core.provenance.FigureWriter".rpartition(".")
    assert hasattr(importlib.import_module(module), name)  # the hint names code that exists


def test_train_on_the_real_sample_without_its_recipe_names_the_recipe(isolated, capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--task", "oct", "--profile", "smoke", "--data", str(REAL_OCT_SAMPLE),
                     "--out", str(isolated / "run")]) == 2
    line = _one_error_line(capsys)
    assert "too few for a block split" in line and "--recipe real-oct-sample" in line
    assert not [w for w in caught if "patient-independent" in str(w.message)]  # the splits warn once both worked
    assert not (isolated / "run" / "last.pt").exists()
