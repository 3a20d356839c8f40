"""Where code runs: device selection, seeding and process rank.

Everything that depends on the machine (CPU or CUDA, one process or many under ``torchrun``) is decided
here, once, so models, datasets and the Trainer never hard-code a device or assume a single process.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "seed_everything", "rank", "world_size", "is_main_process"]


def get_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Return ``cuda`` (this process's local GPU) when available, else ``cpu``.

    Args:
        preference: ``"auto"``/``None`` to choose, or an explicit device such as ``"cpu"`` or ``"cuda:1"``.
    """
    if preference not in (None, "auto"):
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device} was requested but CUDA is not available; use 'auto' or 'cpu'.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rank() -> int:
    """Global rank of this process (0 without ``torch.distributed``)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def world_size() -> int:
    """Number of processes taking part in training (1 without ``torch.distributed``)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def is_main_process() -> bool:
    """True on the process that writes checkpoints, histories and figures."""
    return rank() == 0
