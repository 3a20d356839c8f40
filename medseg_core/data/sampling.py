"""Which samples a process reads: one rule for the loaders of every task, in one process or many (``torchrun``).

One process: training loaders shuffle with the loader's ``generator`` (or draw weighted samples with it) and
evaluation loaders read in order. Under ``torchrun`` (:func:`medseg_core.runtime.world_size` > 1) each process
reads its own share, and ``batch_size`` is per process:

* shuffled training: :class:`~torch.utils.data.distributed.DistributedSampler`, a permutation seeded by
  ``seed + epoch`` (the Trainer calls ``set_epoch``) dealt out ``[rank::world_size]``; it repeats a few samples
  so that every process gets as many, and so as many optimisation steps, as DDP needs;
* weighted training draws (OCT ``foreground_oversample``): :class:`WeightedShardSampler`, the same deal;
* evaluation: :class:`ShardSampler`, ``[rank::world_size]`` without repeats, so every sample counts once (the
  Trainer sums the validation results over processes).
"""
from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler, WeightedRandomSampler
from torch.utils.data.distributed import DistributedSampler

from ..runtime import rank, world_size

__all__ = ["loader_sampling", "ShardSampler", "WeightedShardSampler"]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world_size, ...`` below ``num_samples``: shards without repeats, sizes within 1."""

    def __init__(self, num_samples: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, num_samples, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class WeightedShardSampler(Sampler[int]):
    """:class:`~torch.utils.data.WeightedRandomSampler` (with replacement) shared out among processes.

    Every process draws the same ``ceil(num_samples / world_size) * world_size`` indices from a generator seeded
    with ``seed + epoch`` (as :class:`~torch.utils.data.distributed.DistributedSampler` seeds its permutation) and
    keeps ``[rank::world_size]``, so the processes together draw one weighted sample of the data per epoch.
    """

    def __init__(self, weights: Sequence[float], num_samples: int, seed: int, rank: int, world_size: int) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.double)
        self.total = math.ceil(num_samples / world_size) * world_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s indices next (the Trainer calls this before every epoch)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total, replacement=True, generator=generator)
        return iter(drawn[self.rank::self.world_size].tolist())

    def __len__(self) -> int:
        return self.total // self.world_size


def loader_sampling(dataset: Dataset, *, train: bool, seed: int, generator: torch.Generator | None = None,
                    weights: Sequence[float] | None = None) -> dict[str, Any]:
    """The ``shuffle`` or ``sampler`` keyword of this process's DataLoader over ``dataset`` (see the module docstring).

    Args:
        train: shuffle (or draw by ``weights``) instead of reading in order.
        seed: seeds the distributed training samplers (one process: ``generator`` decides the order).
        generator: the loader's generator, which the weighted sampler of a single process draws from.
        weights: per-sample weights of a training loader that draws with replacement, ``len(dataset)`` per epoch.
    """
    distributed = world_size() > 1
    if not train:
        return {"sampler": ShardSampler(len(dataset), rank(), world_size())} if distributed else {"shuffle": False}
    if weights is not None:
        if distributed:
            return {"sampler": WeightedShardSampler(weights, len(weights), seed, rank(), world_size())}
        return {"sampler": WeightedRandomSampler(weights, len(weights), replacement=True, generator=generator)}
    if distributed:
        return {"sampler": DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)}
    return {"shuffle": True}
