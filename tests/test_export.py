"""`medseg export`: a weights-only checkpoint that loads safely and predicts the same, and an ONNX model that
onnxruntime runs with PyTorch's logits (1e-4), its preprocessing recorded beside it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from medseg_core.checkpoints import load_run, save_checkpoint
from medseg_core.cli import main
from medseg_core.config import get_profile
from medseg_core.models import create_model
from medseg_core.tasks import get_task
from medseg_core.training import Trainer
from test_faults import _checkpoint, _oct_images, _predict


def _smoke_checkpoint(tmp_path: Path, task_name: str) -> Path:
    """The task's default model (DeepLabV3+ or SVSnet) with the smoke profile's arguments, saved as the Trainer does."""
    profile, task = get_profile("smoke"), get_task(task_name)
    torch.manual_seed(0)
    model = create_model(task.default_model, **task.model_kwargs(profile, task.default_model))
    trainer = Trainer(model, nn.MSELoss(), task.train_config(profile), progress=False,
                      metadata=task.run_metadata(profile, task.default_model))
    return save_checkpoint(tmp_path / f"{task_name}_best.pt", trainer.state_dict())


def _one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_the_weights_only_checkpoint_loads_safely_and_predicts_the_same(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path, "oct")
    state = torch.load(checkpoint, weights_only=True)
    for name, tensor in state["model"].items():  # a state with moments, as a trained run's
        if tensor.is_floating_point():
            state["optimizer"]["state"][len(state["optimizer"]["state"])] = {"exp_avg": tensor.clone()}
    torch.save(state, checkpoint)
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "export")]) == 0
    assert "model.pt (" in capsys.readouterr().out
    exported = torch.load(tmp_path / "export" / "model.pt", weights_only=True)
    assert not {"optimizer", "scheduler", "scaler"} & set(exported)
    assert exported["metadata"] == state["metadata"] and exported["model_spec"] == state["model_spec"]
    assert exported["exported_from"]["path"] == str(checkpoint.resolve())
    assert (tmp_path / "export" / "model.pt").stat().st_size < 0.7 * checkpoint.stat().st_size
    images = _oct_images(tmp_path / "images", 2)
    assert _predict(checkpoint, images, tmp_path / "a") == 0 and _predict(tmp_path / "export/model.pt", images,
                                                                           tmp_path / "b") == 0
    for mask in (tmp_path / "a" / "masks").iterdir():
        assert np.array_equal(np.asarray(Image.open(mask)), np.asarray(Image.open(tmp_path / "b" / "masks" / mask.name)))
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == [".lock", "model.pt"]


def test_export_refusals_are_one_line_and_an_overwrite_replaces_the_whole_export(tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, f"checkpoint not found: {tmp_path / 'missing.pt'}")
    assert not (tmp_path / "out").exists()
    checkpoint, out = _checkpoint(tmp_path, "xca"), tmp_path / "out"
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(out)]) == 0
    (out / "model.onnx").write_bytes(b"an earlier export's ONNX model")
    before = (out / "model.pt").read_bytes()
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(out)]) == 2
    _one_line_error(capsys, f"{out} already holds an export (model.pt, model.onnx)", "--overwrite")
    assert (out / "model.pt").read_bytes() == before
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(out), "--overwrite"]) == 0
    assert not (out / "model.onnx").exists(), "no ONNX model of another export is left beside the new model.pt"
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "o2"), "--threshold", "1"]) == 2
    _one_line_error(capsys, "--threshold must be a probability strictly between 0 and 1")


@pytest.mark.slow
@pytest.mark.parametrize("task_name", ["oct", "xca"])  # DeepLabV3+ with ECA, SVSnet: both export cleanly
def test_the_onnx_model_gives_pytorchs_logits_in_onnxruntime(task_name, tmp_path):
    import onnxruntime

    checkpoint = _smoke_checkpoint(tmp_path, task_name)
    out = tmp_path / "export"
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(out), "--onnx"]) == 0
    record = json.loads((out / "preprocessing.json").read_text())
    model, metadata = load_run(out / "model.pt", "cpu")
    shape = [3 if size == "batch" else size for size in record["input"]["shape"]]  # another batch than exported
    inputs = torch.from_numpy(np.random.default_rng(1).random(shape, dtype=np.float32))
    if task_name == "oct":
        inputs = (inputs - torch.tensor(record["normalisation"]["mean"]).view(1, 3, 1, 1)) / torch.tensor(
            record["normalisation"]["std"]).view(1, 3, 1, 1)
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"image": inputs.numpy()})[0]
    with torch.no_grad():
        expected = model(inputs).numpy()
    assert logits.shape == expected.shape == (3, *[3 if s == "batch" else s for s in record["output"]["shape"]][1:])
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    assert record["checked"]["max_abs_logit_difference"] <= 1e-4 and record["opset"] >= 17
    assert record["image_size"] == [64, 64] and record["class_names"][0] == "background"
    if task_name == "xca":
        assert record["input"]["shape"] == ["batch", 1, 4, 64, 64] and record["class_names"] == ["background", "vessel"]
        assert record["window"]["offsets"] == [-2, -1, 0, 1] and record["window"]["policy"] == "centre"
        assert record["labels"]["threshold"] == 0.5 and record["normalisation"]["kind"] == "frame maximum"
    else:
        assert record["input"]["shape"] == ["batch", 3, 64, 64] and record["window"] is None
        assert record["class_names"] == ["background", "lipid_core"] and "argmax" in record["labels"]["rule"]
