"""Training the XCA task on real angiography layouts: single-frame data sets (windows repeat the frame, said in the
run metadata), splits from the layout, the real-xca recipe and the fine-tuning curve; on fixture files written in
each released layout."""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medseg_core.checkpoints import RunMetadata, load_checkpoint, settings_differences
from medseg_core.cli import main
from medseg_core.config import TrainConfig, get_profile
from medseg_core.errors import ConfigError, DataError
from medseg_core.tasks import get_task
from test_public_data import SIZE, _frame, _save, _write_arcade


@pytest.fixture()
def isolated(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MEDSEG_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MEDSEG_RUNS", str(tmp_path / "runs"))
    return tmp_path


def _truth(seed: int, size: int = SIZE, peak: int = 255) -> np.ndarray:
    truth = np.zeros((size, size), np.uint8)
    truth[8 + seed % 10: 14 + seed % 10, :] = peak  # a horizontal vessel
    return truth


def _write_dca1(root: Path, numbers=(1, 2, 3, 4, 5, 101, 102)) -> Path:
    """``Database_134_Angiograms/<n>.pgm`` + ``<n>_gt.pgm`` (0/255), as the authors' archive holds them."""
    folder = root / "Database_134_Angiograms"
    for n in numbers:
        _save(folder / f"{n}.pgm", _frame(n))
        _save(folder / f"{n}_gt.pgm", _truth(n))
    return root


def _write_xcad(root: Path, count: int = 6) -> Path:
    """``XCAD/test/images/<name>.png`` + ``XCAD/test/masks/<name>.png``: the labelled frames are a test set only."""
    for index in range(count):
        name = f"{index:03d}_PPA_44_PSA_00_{index}.png"
        _save(root / "XCAD" / "test" / "images" / name, _frame(index, bits=16))
        _save(root / "XCAD" / "test" / "masks" / name, _truth(index))
    return root


def _write_chuac(root: Path, numbers=(1, 2, 3, 4, 21, 22)) -> Path:
    """``angiography/Original/<n>.png`` (stored smaller) + ``angiography/Photoshop/angio<n>ok.png``."""
    for n in numbers:
        _save(root / "angiography" / "Original" / f"{n}.png", _frame(n, size=24))
        _save(root / "angiography" / "Photoshop" / f"angio{n}ok.png", _truth(n))
    return root


def _write_runs(root: Path, runs=("run1", "run2", "run3"), test_runs=("runB",)) -> Path:
    """``<split>/images/<run>/<frame>.png`` + ``<split>/masks/<run>/<frame>.png``: runs of 4 frames, 2 labelled."""
    for split, names in (("train", runs), ("test", test_runs)):
        for r, run in enumerate(names):
            for f in range(4):
                _save(root / split / "images" / run / f"{f:05d}.png", _frame(10 * r + f))
            for f in (1, 3):
                _save(root / split / "masks" / run / f"{f:05d}.png", _truth(f))
    return root


LAYOUTS = {  # writer, its format, labelled frames per split (train, val, test), what the split note says
    "arcade-syntax": (lambda root: _write_arcade(root, "syntax"), (2, 2, 2), "released splits kept"),
    "dca1": (_write_dca1, (4, 1, 2), "val: 1 of 5 runs carved"),
    "xcad": (_write_xcad, (4, 1, 1), "no training split in the release (test)"),
    "chuac": (_write_chuac, (3, 1, 2), "val: 1 of 4 runs carved"),
    "sequences": (_write_runs, (4, 2, 2), "val: 1 of 3 runs carved"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_xca_task_reads_each_released_layout_with_its_splits(tmp_path, layout):
    writer, sizes, note = LAYOUTS[layout]
    root = writer(tmp_path)
    task, profile = get_task("xca"), get_profile("smoke")
    with pytest.warns(UserWarning, match=re.escape(note)) as caught:
        loaders = task.make_loaders(profile, root, "svsnet", seed=0)
    assert f"{layout} data in {root}" in str(caught[0].message)
    assert tuple(len(loaders[split].dataset) for split in ("train", "val", "test")) == sizes
    files = {split: set(loader.dataset.data.labelled["image"]) for split, loader in loaders.items()}
    assert not (files["train"] & files["val"]) and not (files["train"] & files["test"]) and not (files["val"] & files["test"])
    item = loaders["val"].dataset[0]
    assert item["image"].shape == (1, 4, 64, 64) and item["mask"].shape == (1, 64, 64) and item["mask"].sum() > 0
    window = item["image"][0]
    single = layout != "sequences"
    assert all(torch.equal(frame, window[0]) for frame in window) == single  # a single frame, repeated
    assert task.run_metadata(profile, "svsnet", root).single_frame == single
    assert not task.run_metadata(profile, "svsnet").single_frame  # the synthetic data are videos


def test_splits_carved_from_a_layout_are_the_same_for_every_training_seed(tmp_path):
    root = _write_dca1(tmp_path, numbers=tuple(range(1, 11)) + (101,))
    task, profile = get_task("xca"), get_profile("smoke")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids = [{split: list(loader.dataset.samples["id"]) for split, loader in
                task.make_loaders(profile, root, "svsnet", seed=seed).items()} for seed in (0, 1)]
        other = task.make_loaders(profile.override({"xca.seed": 3}), root, "svsnet", seed=0)
    assert ids[0] == ids[1] and len(ids[0]["val"]) == 2  # 20 % of 10 training frames, chosen by xca.seed
    assert list(other["val"].dataset.samples["id"]) != ids[0]["val"]


def test_a_split_that_cannot_be_carved_says_so(tmp_path):
    root = _write_dca1(tmp_path, numbers=(1, 101))
    with pytest.raises(DataError, match="cannot carve a val split from 1 training run"):
        get_task("xca").make_loaders(get_profile("smoke"), root, "svsnet", seed=0)


def test_the_kits_layout_is_still_read_by_xca_dataloaders(tmp_path):
    for split in ("train", "test"):
        for video in ("v1", "v2"):
            for f in range(4):
                _save(tmp_path / split / "JPEGImages" / video / f"{f:05d}.png", _frame(f))
            _save(tmp_path / split / "Annotations_Semantic" / video / "00001.png", _truth(1, peak=1))
    task, profile = get_task("xca"), get_profile("smoke")
    assert task.read_frames(profile, tmp_path) is None
    with pytest.warns(UserWarning, match="has no val/ folder"):  # xca_dataloaders' own carving, by video
        loaders = task.make_loaders(profile, tmp_path, "svsnet", seed=0)
    assert type(loaders["train"].dataset).__name__ == "XCAWindowDataset"
    assert not task.run_metadata(profile, "svsnet", tmp_path).single_frame


def test_checkpoints_written_before_single_frame_existed_still_compare_equal():
    old = {k: v for k, v in RunMetadata(task="xca", image_size=64, window_length=4).to_dict().items()
           if k != "single_frame"}
    config = TrainConfig()
    state = {"config": {"epochs": config.epochs}, "metadata": old}
    assert RunMetadata.from_dict(old).single_frame is False
    assert settings_differences(state, config, RunMetadata(task="xca", image_size=64, window_length=4)) == []
    assert settings_differences(state, config, RunMetadata(task="xca", image_size=64, window_length=4,
                                                           single_frame=True))


def test_cli_trains_svsnet_on_a_single_frame_folder_and_says_so_in_the_checkpoint(isolated, capsys):
    root = _write_dca1(isolated / "dca1")
    out = isolated / "run"
    with pytest.warns(UserWarning, match="dca1 data"):
        assert main(["train", "--task", "xca", "--profile", "smoke", "--data", str(root), "--out", str(out)]) == 0
    metadata = RunMetadata.from_dict(load_checkpoint(out / "best.pt")["metadata"])
    assert metadata.single_frame and metadata.window_length == 4
    tested = pd.read_csv(out / "test_metrics.csv", dtype={"id": str})
    assert tested["id"].tolist() == ["101/00000", "102/00000"]  # DCA1's own test frames (101-134)
    assert "checkpoints and config.json" in capsys.readouterr().out


def test_cli_format_and_layout_errors_are_one_line_before_any_run_folder(isolated, capsys):
    root = _write_dca1(isolated / "dca1")
    cases = [(["--data", str(root), "--format", "xcad"], "no XCAD test data"),
             (["--data", str(isolated)], "no known angiography layout"),
             (["--format", "dca1"], "--format names the layout of --data")]
    for argv, message in cases:
        assert main(["train", "--task", "xca", "--profile", "smoke", "--out", str(isolated / "r"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("medseg: error: ") and message in err and err.count("\n") == 1, err
        assert not (isolated / "r").exists()


def test_real_xca_recipe_sets_its_documented_settings_in_every_profile():
    for name in ("smoke", "cpu", "paper"):
        profile = get_profile(name, recipe="real-xca")
        assert profile.name == f"{name}_real-xca"
        assert (profile.xca.image_size, profile.xca.train_crop) == (256, 128)
        assert (profile.svsnet.optimizer, profile.svsnet.lr, profile.svsnet.epochs) == ("adam", 5e-4, 12)
        assert (profile.svsnet.monitor, profile.svsnet.monitor_mode) == ("val_dice", "max")
    assert get_profile("cpu", {"xca.image_size": 128}, recipe="real-xca").xca.image_size == 128  # --set on top


def test_real_xca_recipe_fine_tunes_a_smoke_checkpoint_on_a_fixture_folder(isolated):
    synthetic = isolated / "synthetic"
    assert main(["train", "--task", "xca", "--profile", "smoke", "--out", str(synthetic)]) == 0
    root = _write_dca1(isolated / "dca1")
    with pytest.warns(UserWarning, match="dca1 data"):
        assert main(["train", "--task", "xca", "--profile", "smoke", "--recipe", "real-xca", "--data", str(root),
                     "--init-from", str(synthetic / "best.pt"),
                     "--set", "xca.image_size=64", "xca.train_crop=64", "svsnet.epochs=1"]) == 0
    run = isolated / "runs" / "smoke_real-xca" / "xca_svsnet_T4-centre_seed0"  # the recipe names the run folder
    state = load_checkpoint(run / "best.pt")
    assert state["init_from"]["path"] == str((synthetic / "best.pt").resolve())
    assert (state["config"]["optimizer"], state["config"]["lr"], state["config"]["monitor"]) == ("adam", 5e-4,
                                                                                                   "val_dice")
    metadata = RunMetadata.from_dict(state["metadata"])
    assert metadata.single_frame and metadata.image_size == 64
    assert len(pd.read_csv(run / "test_metrics.csv")) == 2


def test_train_frames_keeps_every_kth_labelled_training_frame_for_every_seed(tmp_path):
    root = _write_dca1(tmp_path / "dca1", numbers=tuple(range(1, 13)) + (101,))
    task, profile = get_task("xca"), get_profile("smoke", {"xca.train_frames": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaders = [task.make_loaders(profile, root, "svsnet", seed=seed) for seed in (0, 1)]
    kept = [[loader["train"].dataset[i]["id"] for i in range(len(loader["train"].dataset))] for loader in loaders]
    full = loaders[0]["train"].dataset.dataset.samples["id"].tolist()  # the 10 training frames left after val
    assert len(full) == 10 and kept[0] == kept[1] == [full[0], full[4], full[9]]
    assert len(loaders[0]["val"].dataset) == 2 and len(loaders[0]["test"].dataset) == 1  # other splits whole


def test_transfer_budget_counts_xcas_partial_last_batch_as_a_step():
    from medseg_core.experiments import transfer_budget

    transfer = get_profile("cpu").xca_transfer  # 200 steps, 5 validations
    assert transfer_budget(18, 4, transfer, task="xca") == {"xca.train_frames": 18, "svsnet.epochs": 40,
                                                            "svsnet.val_every": 8}  # 5 steps an epoch
    assert transfer_budget(18, 4, get_profile("cpu").transfer)["deeplab.epochs"] == 40  # 160 steps, 4 full batches


def test_xca_curve_pairs_the_starts_on_the_same_frames_and_reads_runs_back(isolated):
    from medseg_core import experiments as ex
    from medseg_core.models import create_model

    root = _write_dca1(isolated / "dca1", numbers=(1, 2, 3, 4, 5, 6, 101, 102))
    pretrained = isolated / "synthetic.pt"
    torch.manual_seed(0)
    torch.save({"model": create_model("svsnet", window_length=4).state_dict()}, pretrained)
    profile = get_profile("smoke")
    results = ex.xca_synthetic_to_real(profile, root, pretrained, train_frames=[2, 99], verbose=False)
    assert sorted(results.groupby(["start", "train_frames"]).size().items()) == [
        (("scratch", 2), 2), (("scratch", 5), 2), (("synthetic", 2), 2), (("synthetic", 5), 2)]  # 2 test frames each
    assert set(results["id"]) == {"101/00000", "102/00000"}
    for start in ex.TRANSFER_STARTS:
        for frames, epochs in ((2, 2), (5, 1)):  # 2 steps: one batch of 2 an epoch, or 3 batches (2 + 2 + 1)
            run = ex.xca_transfer_run_dir(profile, root, start, frames)
            state = load_checkpoint(run / "best.pt")
            assert len(pd.read_csv(run / "history.csv")) == epochs
            assert (state["init_from"] is not None) == (start == "synthetic")
            assert RunMetadata.from_dict(state["metadata"]).single_frame
    assert ex.xca_transfer_dir(profile, root).parent == isolated / "runs" / "smoke_real-xca" / "synthetic_to_real"
    written = (ex.xca_transfer_run_dir(profile, root, "scratch", 2) / "test_metrics.csv").stat().st_mtime_ns
    again = ex.xca_synthetic_to_real(profile, root, pretrained, train_frames=[2, 99], verbose=False)
    pd.testing.assert_frame_equal(again, results, check_dtype=False)
    assert (ex.xca_transfer_run_dir(profile, root, "scratch", 2) / "test_metrics.csv").stat().st_mtime_ns == written
    with pytest.raises(ConfigError, match="at least 1"):
        ex.xca_synthetic_to_real(profile, root, pretrained, train_frames=[0])


def test_the_synthetic_stand_in_is_read_as_dca1_and_says_it_is_synthetic(tmp_path):
    from medseg_core.data.public import FORMATS, SCORE_MEANING, detect_format, read_xca_frames, write_synthetic_dca1

    root = write_synthetic_dca1(tmp_path / "stand_in", train_frames=3, test_frames=2, image_size=64)
    assert detect_format(root) == "dca1" and "SYNTHETIC" in (root / "README.txt").read_text()
    data = read_xca_frames(root)
    assert data.frames["split"].tolist() == ["train"] * 3 + ["test"] * 2
    assert data.frames["video"].tolist() == ["1", "2", "3", "101", "102"]  # DCA1's training and test numbers
    masks = [data.read_mask(index) for index in range(len(data.frames))]
    assert all(mask.shape == (64, 64) and 0 < mask.mean() < 0.5 for mask in masks)  # vessels, not the whole frame
    assert set(SCORE_MEANING) == set(FORMATS) and data.metadata()["what_a_score_means"] == SCORE_MEANING["dca1"]
    with pytest.raises(ValueError, match="1-100"):
        write_synthetic_dca1(tmp_path / "x", train_frames=101)
