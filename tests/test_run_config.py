"""Every run folder holds its resolved settings (config.json), and `medseg train --config` trains that run again."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg_core.checkpoints import load_checkpoint
from medseg_core.cli import main
from test_faults import _oct_images


@pytest.fixture()
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


RUN = ["train", "--task", "oct", "--profile", "smoke", "--seed", "3", "--model-arg", "eca=none",
       "--set", "oct.num_patients=5", "oct.frames_per_patient=2", "deeplab.lr=0.002"]


def test_a_run_records_its_settings_and_train_config_trains_it_again(isolated, capsys):
    first, second = isolated / "first", isolated / "second"
    assert main([*RUN, "--out", str(first)]) == 0
    record = json.loads((first / "config.json").read_text())
    assert (record["task"], record["profile"], record["recipe"], record["seed"]) == ("oct", "smoke", None, 3)
    assert record["overrides"] == {"oct.num_patients": 5, "oct.frames_per_patient": 2, "deeplab.lr": 0.002}
    settings = record["settings"]
    assert settings["deeplab"]["lr"] == 0.002 and settings["oct"]["num_patients"] == 5 and "paths" not in settings
    assert settings["deeplab"]["epochs"] == 1 and settings["oct"]["classes"] == ["lipid_core"]  # the profile's own
    assert record["model"]["name"] == "deeplabv3plus" and record["model"]["args"] == {"eca": "none"}
    assert record["model"]["kwargs"]["eca"] == "none" and record["model"]["kwargs"]["num_classes"] == 2
    assert record["data"] is None and record["synthetic_data"].startswith("oct_smoke-") and record["init_from"] is None
    assert load_checkpoint(first / "best.pt")["run_config"] == record, "the checkpoint carries it too"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(first / "best.pt"), "--input", str(_oct_images(isolated / "in", 1)),
                 "--output", str(isolated / "predicted")]) == 0
    assert (f"checkpoint {first / 'best.pt'}: task oct, deeplabv3plus, profile smoke, epoch 1 of 1, validation Dice "
            in capsys.readouterr().out), "predict names the run's profile"

    assert main(["train", "--config", str(first / "config.json"), "--out", str(second)]) == 0
    assert json.loads((second / "config.json").read_text()) == record
    history = [load_checkpoint(run / "last.pt")["history"][0] for run in (first, second)]
    assert history[0]["train_loss"] == history[1]["train_loss"], "the same first epoch, to the last bit"
    assert history[0]["val_loss"] == history[1]["val_loss"]

    # a resume that would change the run is refused, and its config.json stays the run's
    before = (first / "config.json").read_bytes()
    capsys.readouterr()
    assert main([*RUN[:-1], "deeplab.lr=0.005", "--out", str(first)]) == 2
    _one_line_error(capsys, "cannot resume", "lr: stored 0.002, now 0.005")
    assert (first / "config.json").read_bytes() == before


def test_train_config_refuses_what_would_change_the_run_in_one_line(isolated, capsys):
    record_path = isolated / "run" / "config.json"
    record_path.parent.mkdir()
    record_path.write_text("{not json")
    assert main(["train", "--config", str(record_path)]) == 2
    _one_line_error(capsys, f"--config {record_path} cannot be read as JSON")
    record_path.write_text(json.dumps({"epochs": 3}))
    assert main(["train", "--config", str(record_path)]) == 2
    _one_line_error(capsys, "is not a run's config.json")
    assert main(["train", "--config", str(isolated / "nowhere.json")]) == 2
    _one_line_error(capsys, "no such file")
    assert main(["train", "--config", str(record_path), "--seed", "1", "--profile", "cpu"]) == 2
    _one_line_error(capsys, "which --profile, --seed would change", "--set changes settings on top of it")
    from medseg_core.config import get_profile
    from medseg_core.run_config import RECORD_FORMAT, profile_settings

    record = {"format": RECORD_FORMAT, "task": "oct", "profile": "smoke", "recipe": None, "overrides": {},
              "model": {"name": "deeplabv3plus", "args": {}, "kwargs": {}}, "seed": 0,
              "data": str(isolated / "moved_away"), "data_id": None, "init_from": None,
              "settings": profile_settings(get_profile("smoke"))}
    record_path.write_text(json.dumps(record))
    assert main(["train", "--config", str(record_path), "--out", str(isolated / "again")]) == 2
    _one_line_error(capsys, f"the run's data folder {isolated / 'moved_away'} is not here; pass --data")
    record["data"], record["settings"]["oct"]["no_such_field"] = None, 1
    record_path.write_text(json.dumps(record))
    assert main(["train", "--config", str(record_path), "--out", str(isolated / "again")]) == 2
    _one_line_error(capsys, "its settings do not apply to this version of the kit", "oct.no_such_field")
    assert not (isolated / "again").exists() and not (isolated / "data").exists()
