"""Faults a user meets through the CLI: nothing is lost or mixed, and the error is one line naming the way out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from medseg_core import experiments
from medseg_core.checkpoints import copy_checkpoint, load_checkpoint, save_checkpoint
from medseg_core.cli import main
from medseg_core.config import get_profile
from medseg_core.data.io import write_image
from medseg_core.errors import ConfigError
from medseg_core.models import create_model
from medseg_core.tasks import get_task
from medseg_core.training import Trainer


@pytest.fixture()
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _checkpoint(tmp_path: Path, task_name: str) -> Path:
    """An untrained but complete checkpoint of a small 2D U-Net for ``task_name``, as the Trainer writes it."""
    profile, task = get_profile("smoke"), get_task(task_name)
    model = create_model("unet2d", **task.model_kwargs(profile, "unet2d", {"base_channels": 4, "depth": 2}))
    trainer = Trainer(model, nn.MSELoss(), profile.svsnet, metadata=task.run_metadata(profile, "unet2d"), progress=False)
    return save_checkpoint(tmp_path / f"{task_name}.pt", trainer.state_dict())


def _oct_images(folder: Path, count: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        write_image(folder / f"001_1_{index:03d}.png", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    return folder


def _xca_video(folder: Path, count: int = 5) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        write_image(folder / f"{index:05d}.png", rng.integers(0, 256, (40, 40), dtype=np.uint8))
    return folder


def _predict(checkpoint: Path, inputs: Path, output: Path, *extra: str) -> int:
    return main(["predict", "--checkpoint", str(checkpoint), "--input", str(inputs), "--output", str(output), *extra])


def test_predict_refuses_earlier_results_and_overwrite_replaces_them_whole(tmp_path, capsys):
    checkpoint, out = _checkpoint(tmp_path, "oct"), tmp_path / "out"
    assert _predict(checkpoint, _oct_images(tmp_path / "first", 3), out) == 0
    (out / "notes.txt").write_text("mine")
    assert _predict(checkpoint, _oct_images(tmp_path / "second", 2), out) == 2
    assert "already holds predictions" in capsys.readouterr().err
    assert len(list((out / "masks").iterdir())) == 3  # the first results are untouched
    assert _predict(checkpoint, tmp_path / "second", out, "--overwrite") == 0
    masks = sorted(p.name for p in (out / "masks").iterdir())
    table = pd.read_csv(out / "predictions.csv")
    assert len(masks) == len(table) == 2, "no stale mask of the first prediction is left mixed in"
    assert (out / "notes.txt").read_text() == "mine", "files predict did not write are kept"


def test_predict_with_a_corrupt_input_leaves_no_partial_output(tmp_path, capsys):
    checkpoint, out = _checkpoint(tmp_path, "oct"), tmp_path / "out"
    inputs = _oct_images(tmp_path / "in", 3)
    (inputs / "001_1_002.png").write_bytes(b"\x89PNG broken")
    assert _predict(checkpoint, inputs, out) == 2
    assert "001_1_002.png" in capsys.readouterr().err
    left = sorted(p.name for p in out.iterdir() if p.name != ".lock")  # the output folder's lock stays
    assert left == [], "neither masks nor a CSV of the frames before it"


def test_wrong_task_checkpoints_say_what_they_expected(tmp_path, capsys):
    assert _predict(_checkpoint(tmp_path, "xca"), _oct_images(tmp_path / "oct"), tmp_path / "a") == 2
    assert "not an XCA frame named by its number" in capsys.readouterr().err
    assert _predict(_checkpoint(tmp_path, "oct"), _xca_video(tmp_path / "video"), tmp_path / "b") == 2
    assert "greyscale image" in capsys.readouterr().err


def test_missing_input_is_reported_before_the_checkpoint_is_read(tmp_path, capsys):
    assert _predict(tmp_path / "missing.pt", tmp_path / "nowhere", tmp_path / "out") == 2
    assert "input folder not found" in capsys.readouterr().err


def test_training_into_an_unwritable_folder_fails_before_any_data_is_made(isolated, capsys):
    (isolated / "a_file").write_text("")
    assert main(["train", "--profile", "smoke", "--out", str(isolated / "a_file" / "run")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert not (isolated / "data").exists()


def test_restart_never_destroys_results_without_overwrite(isolated, capsys):
    run = isolated / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"a good model")
    assert main(["train", "--profile", "smoke", "--out", str(run), "--restart"]) == 2
    assert "--restart would replace best.pt" in capsys.readouterr().err
    assert (run / "best.pt").read_bytes() == b"a good model"


def test_truncated_last_checkpoint_names_the_way_out(isolated, capsys):
    run = isolated / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    (run / "best.pt").write_bytes(b"a good model")
    assert main(["train", "--profile", "smoke", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "truncated or not a checkpoint" in err and "best.pt" in err and "Traceback" not in err
    assert (run / "best.pt").read_bytes() == b"a good model"


def test_ctrl_c_says_how_to_resume(monkeypatch, capsys, isolated):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments.RunSpec, "train", interrupted)
    assert main(["train", "--profile", "smoke"]) == 130
    assert "resume with the same command" in capsys.readouterr().err


def test_resume_on_other_data_is_refused(tmp_path):
    profile, task = get_profile("smoke"), get_task("xca")
    metadata = task.run_metadata(profile, "unet2d")
    model = create_model("unet2d", **task.model_kwargs(profile, "unet2d", {"base_channels": 4, "depth": 2}))
    first = Trainer(model, nn.MSELoss(), profile.svsnet, tmp_path, metadata=metadata, data_id="aaaa", progress=False)
    save_checkpoint(tmp_path / "last.pt", first.state_dict())
    second = Trainer(model, nn.MSELoss(), profile.svsnet, tmp_path, metadata=metadata, data_id="bbbb", progress=False)
    with pytest.raises(ConfigError, match="data: stored aaaa, now bbbb"):
        second.check_resumable(first.state_dict())


class _Payload:
    """Stands for an object a malicious checkpoint would carry (any non-tensor class)."""


def test_unsafe_checkpoint_is_refused_with_advice(tmp_path):
    import torch

    from medseg_core.checkpoints import CheckpointError, load_checkpoint

    torch.save({"model": _Payload()}, tmp_path / "unsafe.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors.*Do not retry with weights_only=False"):
        load_checkpoint(tmp_path / "unsafe.pt")


def test_copy_checkpoint_is_a_snapshot_that_later_saves_leave_alone(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    save_checkpoint(last, {"epoch": 1, "weight": torch.ones(3)})
    copy_checkpoint(last, best)
    save_checkpoint(last, {"epoch": 2, "weight": torch.zeros(3)})  # the next epoch
    assert load_checkpoint(best)["epoch"] == 1 and load_checkpoint(best)["weight"].sum() == 3
    assert load_checkpoint(last)["epoch"] == 2
    copy_checkpoint(last, best)  # replacing an existing copy
    assert load_checkpoint(best)["epoch"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left
