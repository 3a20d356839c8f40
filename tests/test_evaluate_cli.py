"""`medseg evaluate` end to end on fixture layouts (a smoke-trained SVSnet and the classical filters), and
`medseg download` offline."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pandas as pd
import pytest
import torch

from medseg_core.checkpoints import RunMetadata, save_checkpoint
from medseg_core.cli import main
from medseg_core.data import download
from medseg_core.folder_evaluation import OUTPUT_FILES
from medseg_core.models import create_model
from test_public_data import SIZE, _save, _write_arcade


@pytest.fixture()
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _one_line_error(capsys, message: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith("medseg: error: ") and message in err and err.count("\n") == 1, err


def test_evaluate_svsnet_checkpoint_on_arcade_at_native_size(isolated, capsys):
    run = isolated / "xca_run"
    assert main(["train", "--task", "xca", "--profile", "smoke", "--out", str(run)]) == 0
    arcade = _write_arcade(isolated / "arcade_data", "syntax")
    out = isolated / "scored"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(arcade), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    frames = pd.read_csv(out / "frames.csv")
    assert frames["id"].tolist() == ["1/00000", "2/00000"]  # the test split's two images
    assert frames.loc[0, "truth_pixels"] == 500 and frames.loc[1, "truth_pixels"] == 0  # scored at 48 px, not 64
    assert {"dice", "cldice", "precision", "recall", "hd95", "cluster"} <= set(frames.columns)
    meta = json.loads((out / "evaluation.json").read_text())
    assert meta["data"]["single_frame"] and meta["input"]["window_length"] == 4 and meta["split"] == "test"
    assert meta["challenge_metric"]["value"] == pytest.approx(frames["dice"].mean())
    assert len(meta["overlays"]) == 3 and all((out / "overlays" / name).is_file() for name in meta["overlays"])
    assert "one-frame videos" in capsys.readouterr().out
    before = (out / "frames.csv").read_bytes()
    assert main(["evaluate", "--checkpoint", "tophat", "--data", str(arcade), "--output", str(out)]) == 2
    _one_line_error(capsys, "never overwrites")
    assert (out / "frames.csv").read_bytes() == before and not list(isolated.glob(".scored*"))


def _write_xcad(root: Path, count: int = 4) -> Path:
    for n in range(count):
        rng = np.random.default_rng(n)
        frame = rng.uniform(0.6, 0.9, (SIZE, SIZE))
        truth = np.zeros((SIZE, SIZE), np.uint8)
        row = int(rng.integers(5, 40))
        frame[row:row + 3] -= 0.4
        truth[row:row + 3] = 255
        _save(root / "XCAD" / "test" / "images" / f"{n:03d}.png", (frame * 255).astype(np.uint8))
        _save(root / "XCAD" / "test" / "masks" / f"{n:03d}.png", truth)
    return root


@pytest.mark.parametrize("model, args", [("unet2d", ["--model-arg", "base_channels=4", "depth=2"]),
                                         ("deeplabv3plus", ["--model-arg", "eca=none"])])
def test_evaluate_a_2d_checkpoint(isolated, model, args):
    """The 2D models trained on angiograms (DeepLabV3+ with a one-channel stem) are scored like SVSnet."""
    run = isolated / f"{model}_run"
    assert main(["train", "--task", "xca", "--model", model, "--profile", "smoke", "--out", str(run), *args]) == 0
    out = isolated / "scored"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(_write_xcad(isolated)),
                 "--output", str(out)]) == 0
    meta = json.loads((out / "evaluation.json").read_text())
    assert meta["model"] == model and meta["input"]["input_kind"] == "image" and len(meta["overlays"]) == 3


@pytest.mark.parametrize("name", ["tophat", "frangi"])
def test_filters_without_a_training_split_are_cross_fitted(tmp_path, capsys, name):
    out = tmp_path / "scored"
    assert main(["evaluate", "--checkpoint", name, "--data", str(_write_xcad(tmp_path)), "--output", str(out)]) == 0
    meta = json.loads((out / "evaluation.json").read_text())
    assert "cross-fitting" in meta["classical_fit"]["fitted_on"] and len(meta["classical_fit"]["threshold"]) == 2
    frames = pd.read_csv(out / "frames.csv")
    assert len(frames) == 4 and frames["dice"].mean() > 0.5  # dark bars on a bright background: found
    assert "cross-fitting" in capsys.readouterr().out


def test_evaluate_refuses_oct_checkpoints_and_unknown_layouts(tmp_path, capsys):
    model = create_model("unet2d", in_channels=3, num_classes=2, depth=1, base_channels=2)
    checkpoint = save_checkpoint(tmp_path / "oct.pt", {"model": model.state_dict(), "model_spec": model.model_spec,
                                                       "metadata": RunMetadata("oct", 64).to_dict()})
    data = _write_xcad(tmp_path / "data", count=2)
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--output",
                 str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "task 'oct'")
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--checkpoint", "tophat", "--data", str(tmp_path / "empty"), "--output",
                 str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "no known angiography layout")
    assert not (tmp_path / "o").exists()


def test_download_prints_the_licence_and_fails_offline_in_one_line(tmp_path, capsys, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(download, "urlopen", offline)
    assert main(["download", "arcade", "--dest", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "licence: CC0 1.0" in captured.out and "zenodo.org/records/10390295" in captured.out
    assert captured.err.startswith("medseg: error: ") and "by hand" in captured.err
    assert captured.err.count("\n") == 1
    assert main(["download", "dca1", "--dest", str(tmp_path)]) == 2
    _one_line_error(capsys, "states no licence")
    assert list(tmp_path.iterdir()) == []


def test_download_verifies_and_unpacks_an_archive(tmp_path, monkeypatch):
    import hashlib
    import shutil

    payload = tmp_path / "payload" / "arcade" / "syntax" / "train" / "images"
    payload.mkdir(parents=True)
    torch.save({}, payload / "marker.pt")
    archive = Path(shutil.make_archive(str(tmp_path / "arcade"), "zip", tmp_path / "payload"))
    entry = download.PUBLIC_DATASETS["arcade"]
    fake = download.PublicDataset(**{**entry.__dict__, "url": archive.as_uri(),
                                     "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()})
    monkeypatch.setitem(download.PUBLIC_DATASETS, "arcade", fake)
    dest = tmp_path / "real"
    assert download.download_public_dataset("arcade", dest) == dest
    assert (dest / "arcade" / "syntax" / "train" / "images" / "marker.pt").is_file()
