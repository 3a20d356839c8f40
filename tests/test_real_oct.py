"""Issue 12, item 1: training on the real single-pullback OCT data.

A monitor that cannot choose a checkpoint warns (and ties fall back to the validation loss), runs can start
from a kit checkpoint (``init_from``), held-out blocks of one pullback can be placed where it holds plaque,
plaque frames can be oversampled, and the ``real-oct`` recipe trains through the CLI on the real frames.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from medseg_core.checkpoints import RunMetadata, load_checkpoint
from medseg_core.cli import main
from medseg_core.config import REAL_DATASETS, RECIPES, OCTConfig, get_profile, real_data_path
from medseg_core.data.oct import block_split, find_oct_pairs, oct_dataloaders
from medseg_core.data.synthetic_oct import write_oct_dataset
from medseg_core.errors import ConfigError, UnknownNameError
from medseg_core.training import Trainer, initial_weights

META = RunMetadata(task="oct", image_size=8, class_names=("lipid_core",))


def _model(channels: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 2, 1))


def _loader() -> DataLoader:
    images, masks = torch.randn(4, 3, 8, 8), torch.randint(0, 2, (4, 8, 8))
    return DataLoader([{"image": i, "mask": m} for i, m in zip(images, masks)], batch_size=2)


def _config(epochs: int = 3):
    from medseg_core.config import TrainConfig

    return TrainConfig(epochs=epochs, lr=1e-3, device="cpu", monitor="val_dice", monitor_mode="max")


class ScriptedTrainer(Trainer):
    """Validation returns scripted ``(val_dice, val_loss)`` per epoch, so best-checkpoint rules can be checked."""

    def __init__(self, *args, scores: list[tuple[float, float]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scores = scores

    def validate(self, loader: DataLoader) -> dict[str, float]:
        dice, loss = self.scores[self.epoch]
        return {"val_dice": dice, "val_loss": loss}


def _fit(tmp_path: Path, scores: list[tuple[float, float]]) -> tuple[list[str], int]:
    trainer = ScriptedTrainer(_model(), nn.CrossEntropyLoss(), _config(len(scores)), tmp_path, metadata=META,
                              progress=False, scores=scores)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(_loader(), _loader())
    return [str(w.message) for w in caught], load_checkpoint(tmp_path / "best.pt")["epoch"]


def test_constant_monitor_warns_and_falls_back_to_val_loss(tmp_path: Path) -> None:
    messages, best_epoch = _fit(tmp_path, [(0.0, 0.9), (0.0, 0.4), (0.0, 0.6)])
    assert best_epoch == 2  # the lowest val_loss, not epoch 1
    assert any("monitor 'val_dice' was 0 in all 3 epochs" in m and "epoch 2, the lowest val_loss" in m
               and "val_block_start" in m for m in messages)


def test_monitor_that_never_improves_after_epoch_one_warns(tmp_path: Path) -> None:
    messages, best_epoch = _fit(tmp_path, [(0.5, 0.9), (0.4, 0.4), (0.3, 0.3)])
    assert best_epoch == 1
    assert any("never improved after epoch 1" in m and "last.pt" in m for m in messages)


def test_improving_monitor_does_not_warn(tmp_path: Path) -> None:
    messages, best_epoch = _fit(tmp_path, [(0.1, 0.9), (0.3, 0.8), (0.2, 0.3)])
    assert best_epoch == 2 and not any("monitor 'val_dice'" in m for m in messages)


def test_init_from_loads_weights_refuses_other_shapes_and_is_recorded(tmp_path: Path) -> None:
    source = Trainer(_model(), nn.CrossEntropyLoss(), _config(1), tmp_path / "source", metadata=META, progress=False)
    source.fit(_loader(), _loader())
    checkpoint = tmp_path / "source" / "best.pt"
    model = _model()
    torch.nn.init.zeros_(model[0].weight)
    record = initial_weights(model, checkpoint)
    assert torch.equal(model[0].weight, load_checkpoint(checkpoint)["model"]["0.weight"])
    assert record["path"] == str(checkpoint.resolve()) and len(record["sha256"]) == 64
    with pytest.raises(ConfigError, match=r"3 tensors differ \(0\.weight: checkpoint \(4, 3, 3, 3\), model \(3, 3"):
        initial_weights(_model(channels=3), checkpoint)
    with pytest.raises(ConfigError, match="not found"):
        initial_weights(_model(), tmp_path / "missing.pt")

    run = tmp_path / "run"
    Trainer(model, nn.CrossEntropyLoss(), _config(1), run, metadata=META, progress=False,
            init_from=record).fit(_loader(), _loader())
    assert load_checkpoint(run / "last.pt")["init_from"] == record
    with pytest.raises(ConfigError, match="initial weights: stored .*best.pt, now random initialisation"):
        Trainer(_model(), nn.CrossEntropyLoss(), _config(2), run, metadata=META, progress=False).fit(
            _loader(), _loader())


def test_cli_init_from_missing_checkpoint_fails_before_work(tmp_path: Path, capsys) -> None:
    assert main(["train", "--task", "oct", "--profile", "smoke", "--out", str(tmp_path / "r"),
                 "--init-from", str(tmp_path / "none.pt")]) == 2
    assert "--init-from" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_block_start_places_the_held_out_block_with_gaps_on_both_sides(tmp_path: Path) -> None:
    write_oct_dataset(tmp_path, num_patients=1, frames_per_patient=30, seed=4, size=32)
    pairs = find_oct_pairs(tmp_path)
    frames = pairs["frame"].astype(int).tolist()
    train, held = block_split(pairs, 0.2, gap=2, start=frames[10])
    assert held["frame"].astype(int).tolist() == frames[10:16]
    assert train["frame"].astype(int).tolist() == frames[:8] + frames[18:]
    _, late = block_split(pairs, 0.2, gap=2, start=frames[-2])  # moved back so that the block fits
    assert late["frame"].astype(int).tolist() == frames[-6:]
    with pytest.raises(ValueError, match="no frame is numbered"):
        block_split(pairs, 0.2, start=frames[-1] + 1)


def test_foreground_oversampling_weights_frames_with_foreground(tmp_path: Path) -> None:
    write_oct_dataset(tmp_path, num_patients=3, frames_per_patient=6, seed=1, size=32)
    config = OCTConfig(image_size=16, augment=False, foreground_oversample=5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = oct_dataloaders(tmp_path, config, batch_size=2)["train"]
    sampler = loader.sampler
    assert isinstance(sampler, WeightedRandomSampler) and sampler.generator is loader.generator
    expected = [5.0 if has else 1.0 for has in loader.dataset.has_foreground]
    assert sampler.weights.tolist() == expected and len(set(expected)) == 2
    with pytest.raises(ConfigError, match="at least 1"):
        get_profile("smoke", {"oct.foreground_oversample": 0.5})


def test_real_oct_recipe_applies_under_set_overrides() -> None:
    profile = get_profile("cpu", {"oct.image_size": 64}, recipe="real-oct")
    assert profile.name == "cpu_real-oct" and profile.oct.image_size == 64
    for key, value in RECIPES["real-oct"].items():
        section, field = key.split(".")
        if key != "oct.image_size":
            assert getattr(getattr(profile, section), field) == value
    with pytest.raises(UnknownNameError, match="valid recipes: real-oct"):
        get_profile("cpu", recipe="nope")


def _real_flat_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "real"
    for name in ("oct_zenodo_sample", "oct_zenodo_pullback"):
        source = real_data_path(name)
        if not (source / "img").is_dir():
            pytest.skip(f"real OCT data {name} not found at {source} (set {REAL_DATASETS[name]})")
        for sub in ("img", "mask"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for path in (source / sub).iterdir():
                (folder / sub / path.name).symlink_to(path)
    return folder


def test_real_oct_recipe_one_epoch_smoke_run(tmp_path: Path, capsys) -> None:
    data = _real_flat_folder(tmp_path)
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="not patient-independent"):
        assert main(["train", "--task", "oct", "--profile", "cpu", "--recipe", "real-oct", "--data", str(data),
                     "--out", str(out), "--set", "deeplab.epochs=1", "oct.image_size=32"]) == 0
    state = load_checkpoint(out / "best.pt")
    assert state["config"]["epochs"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaders = oct_dataloaders(data, get_profile("cpu", recipe="real-oct").oct, batch_size=4)
    # Validation and test blocks both hold plaque (the README: lipid in 001-019, 076-086, 093, 097-098, 113-115,
    # 131-133), with gaps: so val_dice can choose a checkpoint.
    for split in ("val", "test"):
        assert any(loaders[split].dataset.has_foreground), split
    assert sum(loaders["train"].dataset.has_foreground) >= 5
    import pandas as pd

    metrics = pd.read_csv(out / "test_metrics.csv")
    assert len(metrics) == len(loaders["test"].dataset) and {"truth_pixels", "predicted_pixels"} <= set(metrics)


def test_cli_unknown_recipe_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["train", "--task", "oct", "--profile", "smoke", "--recipe", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "unknown recipe 'nope'; valid recipes: real-oct" in capsys.readouterr().err


def test_rotation_turns_training_frames_and_keeps_mask_labels(tmp_path: Path) -> None:
    write_oct_dataset(tmp_path, num_patients=3, frames_per_patient=4, seed=2, size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = oct_dataloaders(tmp_path, OCTConfig(image_size=16), batch_size=2)["train"].dataset
        turned = oct_dataloaders(tmp_path, OCTConfig(image_size=16, rotation=180.0), batch_size=2)["train"].dataset
    assert plain.transform.transforms[0].__class__.__name__ != "RandomRotation"
    assert turned.transform.transforms[0].degrees == [-180.0, 180.0]
    torch.manual_seed(0)
    masks = [turned[i]["mask"] for i in range(len(turned))]
    assert all(set(mask.unique().tolist()) <= {0, 1} for mask in masks)


def test_real_oct_sample_recipe_splits_the_shipped_frames_into_gapped_blocks() -> None:
    root = real_data_path("oct_zenodo_sample")  # shipped with the kit
    profile = get_profile("smoke", {"oct.augment": False}, recipe="real-oct-sample")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaders = oct_dataloaders(root, profile.oct, batch_size=2)
    frames = {split: sorted(loader.dataset.pairs["frame"]) for split, loader in loaders.items()}
    assert frames == {"train": [7, 10, 13, 28, 31], "val": [1], "test": [19, 22]}
    # Frames are 3 apart: a gap of 1 keeps every held-out frame 6 frames from training, as 5 do on the pullback.
    held = frames["val"] + frames["test"]
    assert min(abs(h - t) for h in held for t in frames["train"]) == 6
    assert loaders["test"].dataset.has_foreground == [True, False] and loaders["val"].dataset.has_foreground == [True]
    assert sum(loaders["train"].dataset.has_foreground) == 3
    messages = [str(w.message) for w in caught]
    assert sum("with 1 frames left out on each side" in m and "not patient-independent" in m for m in messages) == 2


def test_real_transfer_data_uses_the_pullback_when_there_else_the_shipped_sample(tmp_path: Path, monkeypatch) -> None:
    from medseg_core.errors import DataError
    from medseg_core.experiments import real_transfer_data, transfer_profile

    sample = real_data_path("oct_zenodo_sample")
    monkeypatch.setenv(REAL_DATASETS["oct_zenodo_pullback"], str(tmp_path / "absent"))
    assert real_transfer_data(tmp_path / "links") == (sample, "real-oct-sample")
    assert not (tmp_path / "links").exists()
    pullback = tmp_path / "pullback"  # the released layout, one frame (the reader is tested elsewhere)
    for sub, suffix in (("img", "png"), ("mask", "tiff")):
        (pullback / sub).mkdir(parents=True)
        (pullback / sub / f"001_1_076.{suffix}").write_bytes(b"")
    root, recipe = real_transfer_data(tmp_path / "links", pullback)
    assert recipe == "real-oct" and root == tmp_path / "links"
    assert sorted(p.name for p in (root / "img").iterdir()) == sorted(
        [p.name for p in (sample / "img").iterdir()] + ["001_1_076.png"])
    with pytest.raises(DataError, match="not found at .*absent"):
        real_transfer_data(tmp_path / "other", tmp_path / "absent")
    profile = get_profile("smoke", {"transfer.recipe": "real-oct-sample"})
    assert transfer_profile(profile).name == "smoke_real-oct-sample"
    assert transfer_profile(profile).oct.block_gap == 1 and transfer_profile(get_profile("smoke")).oct.block_gap is None
    with pytest.raises(UnknownNameError, match="valid recipes: real-oct, real-oct-sample"):
        transfer_profile(get_profile("smoke", {"transfer.recipe": "nope"}))
