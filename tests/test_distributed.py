"""Data-parallel training: two CPU processes (Gloo on loopback) against one process with their global batch."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from medseg_core import run_folder, training
from medseg_core.checkpoints import RunMetadata
from medseg_core.cli import main
from medseg_core.config import TrainConfig
from medseg_core.data.sampling import ShardSampler, WeightedShardSampler, loader_sampling
from medseg_core.errors import ConfigError
from medseg_core.runtime import cleanup_distributed, init_distributed, seed_everything

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with the Gloo backend is not available in this torch build")

META = RunMetadata(task="xca", image_size=16, class_names=("square",))
WORLD = 2
BATCH = 4  # global batch: one process reads BATCH, each of the WORLD processes BATCH // WORLD
TRAIN_SIZE, VAL_SIZE = 16, 5  # 5 validation samples: shards of 3 and 2
SEED = 3
RELATIVE_TOLERANCE = 1e-5


class FixedSquares(Dataset):
    """Bright squares on fixed noise, ``image`` and ``mask`` (1, 16, 16): the same samples in every process."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        corners = torch.randint(0, 8, (n, 2), generator=generator).tolist()
        self.masks = torch.zeros(n, 1, 16, 16)
        for mask, (y, x) in zip(self.masks, corners):
            mask[:, y : y + 6, x : x + 6] = 1
        self.images = self.masks * 0.8 + 0.3 * torch.rand(n, 1, 16, 16, generator=generator)

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "mask": self.masks[index], "id": str(index)}


def _model() -> nn.Module:
    seed_everything(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))


def _bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits, target)


CONFIG = TrainConfig(epochs=3, batch_size=BATCH, optimizer="sgd", lr=1.0, scheduler="cosine", amp=False,
                     device="cpu", seed=SEED)


class Interrupt(Exception):
    pass


def _stop_after_epoch_2(trainer: training.Trainer, row: dict) -> None:
    if trainer.epoch == 2:
        raise Interrupt


def _worker(rank: int, port: int, out_dir: str, results: str) -> None:
    """One of the WORLD processes: 2 epochs, interrupted, then resumed to 3; writes what it saw to ``results``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    assert init_distributed() and init_distributed()  # idempotent
    written: list[str] = []

    def recording(write, path_position: int):
        def wrapper(*args):
            written.append(Path(args[path_position]).name)
            return write(*args)
        return wrapper

    training.save_checkpoint = recording(training.save_checkpoint, 0)
    training.copy_checkpoint = recording(training.copy_checkpoint, 1)
    run_folder.write_csv_atomic = recording(run_folder.write_csv_atomic, 1)  # the history
    try:
        train_set, val_set = FixedSquares(TRAIN_SIZE, 0), FixedSquares(VAL_SIZE, 1)
        train = DataLoader(train_set, batch_size=BATCH // WORLD, **loader_sampling(train_set, train=True, seed=SEED))
        val = DataLoader(val_set, batch_size=1, **loader_sampling(val_set, train=False, seed=SEED))
        interrupted = training.Trainer(_model(), _bce, CONFIG, out_dir, metadata=META, progress=False,
                                       callbacks=[_stop_after_epoch_2])
        try:
            interrupted.fit(train, val)
        except Interrupt:
            pass
        resumed = training.Trainer(_model(), _bce, CONFIG, out_dir, metadata=META, progress=False)
        history = resumed.fit(train, val)
        Path(results.format(rank)).write_text(json.dumps({
            "history": history.drop(columns="time_s").to_dict("list"),
            "written": written,
            "ddp": isinstance(resumed.network, nn.parallel.DistributedDataParallel),
            "shards": [len(train.sampler), len(val.sampler)],
        }))
    finally:
        cleanup_distributed()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spawn(tmp_path: Path, timeout_s: float = 120.0) -> list[dict]:
    """Run :func:`_worker` in WORLD processes (killed if they hang); their results, by rank."""
    context = mp.spawn(_worker, args=(_free_port(), str(tmp_path / "run"), str(tmp_path / "rank{}.json")),
                       nprocs=WORLD, join=False)
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=1.0):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} training processes did not finish within {timeout_s:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(WORLD)]


def test_two_processes_train_like_one_with_their_global_batch(tmp_path, monkeypatch):
    """Two processes at batch 2 (DDP, gradients averaged) follow one process at batch 4, epoch by epoch.

    The single process reads the same permutation as the two together (a DistributedSampler of one replica with
    the same seed), so global batch k holds the same 4 samples; validation reads one sample per batch in both.
    The model has no BatchNorm (whose statistics would be per process) and no dropout, and the loss is a
    per-pixel mean, so the mean of the two half-batch gradients is the full-batch gradient and the runs differ
    only in the order of floating-point sums: measured relative differences of train_loss and val_loss up to
    1.7e-7 (``RELATIVE_TOLERANCE`` is 1e-5). With the gradient all-reduce switched off (``no_sync`` around
    each step) the processes drift apart: train_loss moved by 6e-5, 2e-5 and 1e-2 in epochs 1-3, val_loss by
    7e-4 to 3e-2, and the test failed. The distributed run is interrupted after epoch 2 and resumed (both
    processes load ``last.pt``); only rank 0 writes files, and both log the same history.
    """
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the spawned processes inherit it
    ranks = _spawn(tmp_path)

    train_set = FixedSquares(TRAIN_SIZE, 0)
    sampler = DistributedSampler(train_set, num_replicas=1, rank=0, shuffle=True, seed=SEED)
    train = DataLoader(train_set, batch_size=BATCH, sampler=sampler)
    val = DataLoader(FixedSquares(VAL_SIZE, 1), batch_size=1)
    single = training.Trainer(_model(), _bce, CONFIG, metadata=META, progress=False).fit(train, val)

    assert ranks[0]["history"] == ranks[1]["history"], "the processes logged different histories"
    assert all(rank["ddp"] for rank in ranks) and [rank["shards"] for rank in ranks] == [[8, 3], [8, 2]]
    assert ranks[0]["history"]["epoch"] == [1, 2, 3]
    for column in ("train_loss", "val_loss", "val_dice", "lr"):
        assert ranks[0]["history"][column] == pytest.approx(single[column].tolist(), rel=RELATIVE_TOLERANCE), column
    assert ranks[1]["written"] == [], "a process other than rank 0 wrote files"
    assert {"last.pt", "best.pt", "history.csv"} <= set(ranks[0]["written"])
    assert sorted(path.name for path in (tmp_path / "run").iterdir() if not path.name.startswith(".")) == [
        "best.pt", "history.csv", "last.pt"]


def test_shard_samplers_deal_out_every_sample_once():
    """Validation shards partition the data; weighted shards are one weighted draw per epoch, dealt out."""
    assert sorted(i for rank in range(3) for i in ShardSampler(7, rank, 3)) == list(range(7))
    weights = [4.0 if i % 5 == 0 else 1.0 for i in range(10)]
    shards = [WeightedShardSampler(weights, 10, seed=1, rank=rank, world_size=3) for rank in range(3)]
    assert [len(shard) for shard in shards] == [4, 4, 4]  # 10 rounded up to 12: as many steps in every process
    epoch_0 = [list(shard) for shard in shards]
    for shard in shards:
        shard.set_epoch(1)
    assert [list(shard) for shard in shards] != epoch_0
    drawn = torch.multinomial(torch.tensor(weights, dtype=torch.double), 12, replacement=True,
                              generator=torch.Generator().manual_seed(1 + 1))
    assert [i for step in zip(*[list(shard) for shard in shards]) for i in step] == drawn.tolist()


def test_init_distributed_outside_torchrun(monkeypatch, capsys):
    """One process: nothing to join; WORLD_SIZE > 1 without torchrun's other variables: a one-line user error."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not init_distributed()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="cannot join the .* process group .*Launch with torchrun"):
        init_distributed()
    assert main(["train", "--profile", "smoke"]) == 2
    assert capsys.readouterr().err.startswith("medseg: error: cannot join the")
    assert not dist.is_initialized()
