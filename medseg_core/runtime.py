"""Where code runs: device selection, seeding and process rank.

Everything that depends on the machine (CPU or CUDA, one process or many under ``torchrun``) is decided
here, once, so models, datasets and the Trainer never hard-code a device or assume a single process.

Fast paths, decided here for the Trainer, inference and the benchmarks alike:

* :func:`autocast_dtype`: mixed precision. CUDA: float16 (with a grad scaler). CPU: bfloat16 where the CPU
  computes it natively (AVX512-BF16 / AMX: about 2.2x faster DeepLabV3+ train steps at 256², measured on the
  build machine) and the model has no 3D convolution: on torch 2.14.1 the oneDNN bfloat16 ``Conv3d`` backward
  hangs or crashes (SIGSEGV) on CPU at 128² and above, so SVSnet trains in float32 there.
* :func:`memory_format` and :func:`to_memory_format`: channels last. 2D models take ``channels_last`` (about 10 %
  faster float32 steps on CPU); models with 3D convolutions take ``channels_last_3d`` for their 5D tensors and
  ``channels_last`` for their 4D ones (SVSnet's float32 train step on 2 CPU cores: 1.43x faster at 256² and 512²,
  about 1.3x at 128², the same at 64²; oneDNN's channels-last ``Conv3d`` kernels beat its default-layout ones).
* :func:`keep_freed_memory`: on Linux CPUs, glibc's ``malloc`` keeps the memory of freed tensors for the next
  ones instead of handing it back to the operating system (large blocks are ``mmap``-ed and ``munmap``-ed by
  default, so every train step faults its activations' pages in again). The numbers are unchanged; the process
  keeps its peak memory until it ends (measured in the README's speed table).

Many processes (``torchrun``): :func:`init_distributed` joins the process group that ``torchrun`` describes in
the environment (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ...), NCCL on CUDA and Gloo on CPU;
:func:`barrier`, :func:`all_reduce_sum`, :func:`broadcast_buffers` and :func:`main_process_first` are no-ops
in a single process, so callers need no ``if``.
"""
from __future__ import annotations

import ctypes
import os
import random
import sys
from contextlib import contextmanager
from typing import Iterator, Sequence, TypeVar

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["get_device", "seed_everything", "rank", "world_size", "is_main_process", "init_distributed",
           "cleanup_distributed", "barrier", "all_reduce_sum", "broadcast_buffers", "main_process_first",
           "cpu_has_native_bf16", "cpu_numerics", "has_3d_convolution", "autocast_dtype", "memory_format", "to_memory_format",
           "keep_freed_memory"]


def get_device(preference: str | torch.device | None = "auto") -> torch.device:
    """Return ``cuda`` (this process's local GPU) when available, else ``cpu``.

    Args:
        preference: ``"auto"``/``None`` to choose, or an explicit device such as ``"cpu"`` or ``"cuda:1"``.

    Raises:
        ConfigError: an unknown device name, or CUDA asked for where there is none.
    """
    if preference not in (None, "auto"):
        try:
            device = torch.device(preference)
        except RuntimeError as error:
            raise ConfigError(f"unknown device {preference!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device} was requested but CUDA is not available; use 'auto' or 'cpu'")
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


def init_distributed() -> bool:
    """Join ``torchrun``'s process group when ``WORLD_SIZE`` > 1 (idempotent); True when distributed is active.

    Backend NCCL when CUDA is available (each process then uses GPU ``LOCAL_RANK``), else Gloo; rendezvous
    ``env://``. Raises :class:`~medseg_core.errors.ConfigError` when the environment cannot form the group.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed: train in one process")
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    try:
        torch.distributed.init_process_group(backend, init_method="env://")
    except (RuntimeError, ValueError) as error:
        raise ConfigError(f"cannot join the {backend} process group (WORLD_SIZE={os.environ['WORLD_SIZE']}): "
                          f"{str(error).splitlines()[0]}. Launch with torchrun, which sets RANK, MASTER_ADDR and "
                          "MASTER_PORT") from error
    return True


def cleanup_distributed() -> None:
    """Leave the process group joined by :func:`init_distributed` (nothing to do in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def barrier() -> None:
    """Wait until every process gets here (nothing to do in a single process)."""
    if world_size() > 1:
        torch.distributed.barrier()


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """Sums of ``values`` over all processes, in float64 (``values`` themselves in a single process)."""
    if world_size() == 1:
        return list(values)
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics drift apart under DDP), in place."""
    if world_size() > 1:
        for buffer in module.buffers():
            torch.distributed.broadcast(buffer, src=0)


@contextmanager
def main_process_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the others (e.g. rank 0 writes a dataset the others then reuse)."""
    if not is_main_process():
        barrier()
    yield
    if is_main_process():
        barrier()


def cpu_has_native_bf16() -> bool:
    """True when this CPU runs bfloat16 matrix products natively (oneDNN sees AVX512-BF16 or AMX)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:  # a build without oneDNN
        return False


def cpu_numerics() -> str:
    """How training computes on this machine's CPU, in words for run-time tables (what :func:`autocast_dtype`
    picks with ``amp`` on, the profiles' default)."""
    return "bfloat16 autocast for 2D models" if cpu_has_native_bf16() else "float32"


def has_3d_convolution(model: torch.nn.Module) -> bool:
    """True when ``model`` contains a 3D (transposed) convolution, as SVSnet's encoder does."""
    return any(isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)) for module in model.modules())


def autocast_dtype(device: torch.device, model: torch.nn.Module, enabled: bool = True) -> torch.dtype | None:
    """The mixed-precision dtype for ``model`` on ``device``, or None for float32 (see the module docstring).

    CUDA: float16. CPU: bfloat16 when the CPU computes it natively and ``model`` has no 3D convolution.
    """
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16() and not has_3d_convolution(model):
        return torch.bfloat16
    return None


def memory_format(model: torch.nn.Module, enabled: bool = True) -> torch.memory_format:
    """The layout of ``model``'s input: ``channels_last_3d`` for models with 3D convolutions, ``channels_last``
    for 2D models, ``contiguous_format`` when not ``enabled``."""
    if not enabled:
        return torch.contiguous_format
    return torch.channels_last_3d if has_3d_convolution(model) else torch.channels_last


_CHANNELS_LAST_BY_RANK = {4: torch.channels_last, 5: torch.channels_last_3d}

T = TypeVar("T", torch.Tensor, torch.nn.Module)


def to_memory_format(value: T, layout: torch.memory_format) -> T:
    """A tensor, or a module's parameters and buffers, in ``layout``.

    Any channels-last ``layout`` means channels last for every tensor that has one: 4D tensors get
    ``channels_last`` and 5D tensors ``channels_last_3d``, so a model mixing 3D and 2D layers (SVSnet) converts
    whole; other ranks are left as they are. ``contiguous_format`` makes every tensor contiguous. A module is
    converted in place and returned.
    """
    def convert(tensor: torch.Tensor) -> torch.Tensor:
        if layout == torch.contiguous_format:
            return tensor.contiguous()
        target = _CHANNELS_LAST_BY_RANK.get(tensor.ndim)
        return tensor if target is None else tensor.contiguous(memory_format=target)

    if isinstance(value, torch.Tensor):
        return convert(value)
    return value._apply(convert)


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD -1, M_MMAP_MAX -4.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_TRIM_THRESHOLD_BYTES = 2**31 - 1  # the largest value mallopt takes (a C int): free memory above 2 GiB is returned
_kept_freed_memory = False


def keep_freed_memory() -> bool:
    """Make this process's ``malloc`` keep freed memory for reuse; True when it does (Linux with glibc).

    glibc serves large blocks (tensors above a few MiB) with ``mmap`` and unmaps them when they are freed, and
    trims the heap's free top, so each CPU train step pays for page faults on memory it had a step ago (2 cores,
    float32, DeepLabV3+ separable at 256², batch 8: 2.53 s -> 1.85 s per step with this). This turns both off
    (``mallopt(M_MMAP_MAX, 0)``, ``M_TRIM_THRESHOLD`` 2 GiB), as ``MALLOC_MMAP_MAX_=0`` would at start-up.
    Process-wide and for the rest of the process: the resident memory stays at its peak until the process ends.
    Results are bit for bit the same. Does nothing (returns False) on other C libraries and systems.
    """
    global _kept_freed_memory
    if not _kept_freed_memory and sys.platform.startswith("linux"):
        try:
            mallopt = ctypes.CDLL("libc.so.6").mallopt
        except (OSError, AttributeError):  # not glibc (e.g. musl)
            return False
        _kept_freed_memory = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES))
    return _kept_freed_memory
