"""Trainer: exact resume, atomic checkpoints, early stopping, NaN losses, history, model rebuild."""
from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from medseg_core.checkpoints import CheckpointError, RunMetadata, load_checkpoint, load_model
from medseg_core.config import TrainConfig
from medseg_core.errors import ConfigError
from medseg_core.models import SegmentationModel, create_model, register_model
from medseg_core.runtime import seed_everything
from medseg_core.training import Trainer

META = RunMetadata(task="xca", image_size=16, class_names=("square",))


class TinySegmenter(SegmentationModel):
    """Two convs with dropout, so that resume must restore RNG-dependent behaviour too."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.in_channels, self.num_classes = 1, 1
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.3), nn.Conv2d(channels, 1, 1)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_shape(x)
        return self.body(x)

    def forward_head(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        return x


@register_model
def _tiny_test_segmenter(**kwargs) -> TinySegmenter:
    return TinySegmenter(**kwargs)


class SquaresDataset(Dataset):
    """Bright squares on noise; the mask is the square. Noise is drawn per access (augmentation-like)."""

    def __init__(self, n: int = 12, size: int = 16, noise: float = 0.3) -> None:
        generator = torch.Generator().manual_seed(0)
        self.corners = torch.randint(0, size // 2, (n, 2), generator=generator)
        self.size = size
        self.noise = noise

    def __len__(self) -> int:
        return len(self.corners)

    def __getitem__(self, index: int) -> dict:
        y, x = self.corners[index].tolist()
        mask = torch.zeros(1, self.size, self.size)
        mask[:, y : y + 6, x : x + 6] = 1
        image = mask * 0.8 + self.noise * torch.rand(1, self.size, self.size)  # global RNG: must be re-seeded per epoch
        return {"image": image, "mask": mask, "id": str(index)}


def _loaders() -> tuple[DataLoader, DataLoader]:
    shuffling = torch.Generator().manual_seed(0)  # a loader-owned generator, as xca_dataloaders makes
    return (DataLoader(SquaresDataset(), batch_size=4, shuffle=True, generator=shuffling),
            DataLoader(SquaresDataset(6, noise=0.0), batch_size=3))


def _model(**kwargs) -> nn.Module:
    seed_everything(0)  # identical initial weights in every run of a test
    return create_model("_tiny_test_segmenter", **kwargs)


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, target)


def _config(**changes) -> TrainConfig:
    base = dict(epochs=3, batch_size=4, lr=0.05, optimizer="sgd", scheduler="cosine", device="cpu", seed=3)
    return TrainConfig(**{**base, **changes})


class Interrupt(Exception):
    pass


def _interrupt_after(epoch: int):
    def callback(trainer: Trainer, row: dict) -> None:
        if trainer.epoch == epoch:
            raise Interrupt

    return callback


def test_resume_after_interruption_gives_identical_weights(tmp_path):
    train, val = _loaders()
    full = Trainer(_model(), _bce, _config(), tmp_path / "full", progress=False, metadata=META)
    full.fit(train, val)

    interrupted = Trainer(
        _model(), _bce, _config(), tmp_path / "resumed",
        callbacks=[_interrupt_after(1)], progress=False, metadata=META,
    )
    with pytest.raises(Interrupt):
        interrupted.fit(train, val)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 1

    resumed = Trainer(_model(), _bce, _config(), tmp_path / "resumed", progress=False, metadata=META)
    history = resumed.fit(train, val)
    assert list(history["epoch"]) == [1, 2, 3]
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    pd.testing.assert_frame_equal(
        full.history_frame().drop(columns="time_s"), history.drop(columns="time_s"), check_exact=True
    )


def test_training_reduces_loss_and_writes_artifacts(tmp_path):
    train, val = _loaders()
    trainer = Trainer(_model(), _bce, _config(epochs=6, optimizer="adam", lr=0.02),
                      tmp_path, progress=False, metadata=META)
    history = trainer.fit(train, val)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert {"epoch", "train_loss", "val_loss", "val_dice", "lr", "time_s", "is_best"} <= set(history.columns)
    on_disk = pd.read_csv(tmp_path / "history.csv")
    assert len(on_disk) == 6 and on_disk["val_loss"].tolist() == pytest.approx(history["val_loss"].tolist())
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["best_score"] == pytest.approx(history["val_loss"].min())
    assert not list(tmp_path.glob(".*.tmp*")), "temporary checkpoint files left behind"


def test_checkpoint_rebuilds_model_with_weights_only(tmp_path):
    train, val = _loaders()
    trainer = Trainer(_model(channels=3), _bce, _config(epochs=1), tmp_path,
                      progress=False, metadata=META)
    trainer.fit(train, val)
    model = load_model(tmp_path / "last.pt", device="cpu")
    assert model.body[0].out_channels == 3 and not model.training
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[name])


def test_speed_settings_keep_checkpoints_and_may_change_on_resume(tmp_path):
    """compile, num_threads, keep_freed_memory: checkpoints hold the plain module's tensors, and a resume accepts
    a change."""
    train, val = _loaders()
    Trainer(_model(), _bce, _config(epochs=1), tmp_path, progress=False, metadata=META).fit(train, val)
    faster = _config(epochs=1, compile=True, num_threads=torch.get_num_threads(), keep_freed_memory=False)
    trainer = Trainer(_model(), _bce, faster, tmp_path, progress=False, metadata=META)
    assert trainer.forward_model is not trainer.model  # compiled lazily, at its first forward pass
    trainer.fit(train, val)  # resumes a finished epoch 1: nothing runs
    assert list(trainer.state_dict()["model"]) == list(_model().state_dict()) and trainer.epoch == 1


def test_corrupt_checkpoint_gives_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"truncated or not a checkpoint\. Retrain the run"):  # no other one
        load_checkpoint(path)
    (tmp_path / "best.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="cannot read checkpoint.*truncated or not a checkpoint.*another "
                                              "checkpoint of the run.*best.pt: to resume from it, copy it over"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    empty = tmp_path / "best.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="the file is empty"):
        load_checkpoint(empty)


def test_nan_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    train, val = _loaders()
    calls = {"n": 0}

    def loss_that_explodes(logits, target):
        calls["n"] += 1
        loss = _bce(logits, target)
        return loss * math.nan if calls["n"] > len(train) + 2 else loss

    trainer = Trainer(_model(), loss_that_explodes, _config(), tmp_path, progress=False, metadata=META)
    with pytest.raises(FloatingPointError, match="learning rate"):
        trainer.fit(train, val)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1


def test_early_stopping_stops_when_monitor_stalls(tmp_path):
    train, val = _loaders()
    config = _config(epochs=20, lr=0.0, early_stopping_patience=2, scheduler="none")
    history = Trainer(_model(), _bce, config, tmp_path, progress=False, metadata=META).fit(train, val)
    assert len(history) == 3  # epoch 1 sets the best, epochs 2-3 do not improve


def test_plateau_and_inverse_time_schedulers_change_lr():
    train, val = _loaders()
    config = _config(epochs=2, scheduler="inverse_time", lr_decay=0.5)
    trainer = Trainer(_model(), _bce, config, progress=False, metadata=META)
    history = trainer.fit(train, val)
    steps = len(train)
    assert history["lr"].iloc[0] == pytest.approx(0.05 / (1 + 0.5 * steps))
    plateau = _config(epochs=4, scheduler="plateau", plateau_patience=0, lr=0.0)
    history = Trainer(_model(), _bce, plateau, progress=False, metadata=META).fit(train, val)
    assert history["lr"].iloc[-1] == 0.0  # lr 0 stays 0; the call path ran without error


class _FixedLogits(nn.Module):
    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_validation_dice_counts_binary_and_multiclass():
    """Pooled validation Dice uses the kit's one logits -> labels rule, for (B, 1, H, W) and (B, H, W) targets."""
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :2] = 1
    logits = torch.full((1, 1, 4, 4), -5.0)
    logits[..., :2, :] = 5.0  # predicts 8 pixels, 4 of them correct
    for model_logits, mask in ((logits, target), (torch.cat([-logits, logits], dim=1), target[:, 0].long())):
        trainer = Trainer(_FixedLogits(model_logits), lambda out, t: out.mean(), _config(), metadata=META,
                          progress=False)
        _, overlap, total = trainer.validation_step({"image": torch.zeros(1, 1, 4, 4), "mask": mask})
        assert overlap / total == pytest.approx(2 * 4 / (8 + 4))


def test_resume_refuses_changed_settings_and_allows_more_epochs(tmp_path):
    train, val = _loaders()
    Trainer(_model(), _bce, _config(epochs=1), tmp_path, progress=False, metadata=META).fit(train, val)
    with pytest.raises(ConfigError, match=r"lr: stored 0.05, now 0.5.*--restart --overwrite"):
        Trainer(_model(), _bce, _config(epochs=2, lr=0.5), tmp_path, progress=False, metadata=META).fit(train, val)
    with pytest.raises(ConfigError, match="model: stored"):
        Trainer(_model(channels=3), _bce, _config(epochs=2), tmp_path, progress=False, metadata=META).fit(train, val)
    history = Trainer(_model(), _bce, _config(epochs=2), tmp_path, progress=False, metadata=META).fit(train, val)
    assert len(history) == 2  # extended from 1 to 2 epochs


def test_two_trainings_cannot_share_a_run_folder(tmp_path):
    """The second Trainer on a folder in use is refused with the holder named (the first keeps its files)."""
    train, val = _loaders()
    first = Trainer(_model(), _bce, _config(epochs=1), tmp_path, progress=False, metadata=META)
    second = Trainer(_model(), _bce, _config(epochs=1), tmp_path, progress=False, metadata=META)
    with first._run_folder_lock():
        with pytest.raises(ConfigError, match=r"in use by process \d+"):
            second.fit(train, val)
    assert not (tmp_path / "last.pt").exists()
    second.fit(train, val)  # free again once the first is done
    assert (tmp_path / "last.pt").is_file()


def test_empty_training_loader_is_an_error():
    empty = DataLoader(SquaresDataset(0), batch_size=2)
    trainer = Trainer(_model(), _bce, _config(), progress=False, metadata=META)
    with pytest.raises(ValueError, match="training loader is empty"):
        trainer.fit(empty)


def test_resume_accepts_the_same_model_with_defaults_given_or_implied(tmp_path):
    """Notebook 04 passes eca="both" explicitly, ms.train leaves it implied: one model, so one run can resume."""
    train, val = _loaders()
    Trainer(_model(channels=4), _bce, _config(epochs=1), tmp_path, progress=False, metadata=META).fit(train, val)
    history = Trainer(_model(), _bce, _config(epochs=2), tmp_path, progress=False, metadata=META).fit(train, val)
    assert len(history) == 2


def test_svsnet_activation_checkpointing_is_the_same_run(tmp_path):
    """``checkpoint`` changes how SVSnet runs, not what it computes: one run name, and a resume accepts it."""
    from medseg_core.models import create_model
    from medseg_core.tasks import get_task
    from medseg_core.training import _effective_spec

    task, profile = get_task("xca"), __import__("medseg_core").get_profile("smoke")
    assert task.run_name(profile, "svsnet", {"checkpoint": True}) == task.run_name(profile, "svsnet")
    plain, checkpointed = create_model("svsnet", base_channels=4), create_model("svsnet", base_channels=4, checkpoint=True)
    assert _effective_spec(plain.model_spec) == _effective_spec(checkpointed.model_spec)
    assert _effective_spec(plain.model_spec) != _effective_spec(create_model("svsnet", base_channels=8).model_spec)


def test_saving_every_second_epoch_resumes_exactly_and_keeps_the_best_epoch(tmp_path):
    """save_every=2 over 5 epochs: files at epochs 2, 4 and 5; an interruption at epoch 3 repeats epoch 3."""
    train, val = _loaders()
    config = _config(epochs=5, save_every=2, monitor="val_dice", monitor_mode="max")
    full = Trainer(_model(), _bce, config, tmp_path / "full", progress=False, metadata=META)
    full.fit(train, val)
    assert load_checkpoint(tmp_path / "full" / "last.pt")["epoch"] == 5
    best_epochs = [int(row["epoch"]) for row in full.history if row["is_best"]]
    assert load_checkpoint(tmp_path / "full" / "best.pt")["epoch"] == best_epochs[-1]

    interrupted = Trainer(_model(), _bce, config, tmp_path / "resumed", callbacks=[_interrupt_after(3)],
                          progress=False, metadata=META)
    with pytest.raises(Interrupt):
        interrupted.fit(train, val)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["epoch"] == 2  # epoch 3 was not saved
    saved_best = [int(row["epoch"]) for row in full.history[:2] if row["is_best"]][-1]
    assert load_checkpoint(tmp_path / "resumed" / "best.pt")["epoch"] == saved_best  # agrees with last.pt

    resumed = Trainer(_model(), _bce, replace(config, save_every=1), tmp_path / "resumed", progress=False,
                      metadata=META)  # save_every may change on resume
    history = resumed.fit(train, val)
    assert list(history["epoch"]) == [1, 2, 3, 4, 5]
    for name, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    best_full = load_checkpoint(tmp_path / "full" / "best.pt")["model"]
    best_resumed = load_checkpoint(tmp_path / "resumed" / "best.pt")["model"]
    assert all(torch.equal(best_full[name], best_resumed[name]) for name in best_full)


def test_validating_every_third_epoch_picks_best_among_validated_epochs(tmp_path):
    """val_every=3 over 7 epochs validates epochs 3, 6 and 7; the others have empty val_ columns and never win."""
    train, val = _loaders()
    config = _config(epochs=7, val_every=3, monitor="val_dice", monitor_mode="max", scheduler="plateau",
                     plateau_patience=0, early_stopping_patience=2)
    history = Trainer(_model(), _bce, config, tmp_path, progress=False, metadata=META).fit(train, val)
    validated = history.dropna(subset=["val_dice"])
    assert list(validated["epoch"]) == [3, 6, 7]
    assert history["val_loss"].isna().sum() == 4
    assert set(history.loc[history["is_best"] == 1, "epoch"]) <= {3, 6, 7}
    assert history.loc[history["epoch"] == 3, "is_best"].item() == 1  # the first validated epoch sets the best
    best_epoch = int(history.loc[history["is_best"] == 1, "epoch"].iloc[-1])
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == best_epoch
    # patience 2 counts validated epochs only: counting every epoch would have stopped after epoch 5
    assert len(history) == 7
    # the plateau scheduler steps after validated epochs only (a step without the monitor would lower the lr)
    lrs = history.set_index("epoch")["lr"]
    assert all(lrs[epoch + 1] == lrs[epoch] for epoch in (1, 2, 4, 5))


def test_resume_inside_a_validation_cycle_repeats_the_run_exactly(tmp_path):
    """val_every=3, save_every=2, interrupted after epoch 5 (last.pt at 4): the resumed run equals the full one."""
    train, val = _loaders()
    config = _config(epochs=7, val_every=3, save_every=2, monitor="val_dice", monitor_mode="max")
    full = Trainer(_model(), _bce, config, tmp_path / "full", progress=False, metadata=META).fit(train, val)
    interrupted = Trainer(_model(), _bce, config, tmp_path / "resumed", callbacks=[_interrupt_after(5)],
                          progress=False, metadata=META)
    with pytest.raises(Interrupt):
        interrupted.fit(train, val)
    resumed = Trainer(_model(), _bce, config, tmp_path / "resumed", progress=False, metadata=META).fit(train, val)
    pd.testing.assert_frame_equal(full.drop(columns="time_s"), resumed.drop(columns="time_s"))
    best_full = load_checkpoint(tmp_path / "full" / "best.pt")
    best_resumed = load_checkpoint(tmp_path / "resumed" / "best.pt")
    assert best_full["epoch"] == best_resumed["epoch"]
    assert all(torch.equal(best_full["model"][name], best_resumed["model"][name]) for name in best_full["model"])
