"""The benchmark protocol behind ``bench.py``: machine report, GEMM reference, timed train and inference steps,
peak memory, all in fresh processes (``spawn``).

``bench.py`` describes what it measures as :class:`TrainCase` objects and hands each group (one image size) to
:func:`run_benchmark`:

* **time**: one process builds every case of the group, counts each model's forward FLOPs, measures the machine's
  own GEMM rate, runs ``warmup`` untimed train steps of each case, then ``steps`` cycles in which every case runs
  one timed train step, in ABBA order (cycle 1: A B C, cycle 2: C B A, ...), then the same for inference
  (``warmup`` untimed, ``steps`` timed). Neighbouring steps of different models see the same machine load, so a
  ratio between models stays fair on a shared machine; the paired ratio (:func:`paired_ratio`, the median over
  cycles of the two step times' ratio) is the most robust one.

  - A train step is what :class:`medseg_core.training.Trainer` does: ``zero_grad -> forward (under autocast when
    the case uses the fast paths) -> loss on float32 logits -> backward -> optimizer.step`` (with a grad scaler
    for float16), on one fixed random batch, model in train mode. An inference step is a forward pass in eval
    mode under ``torch.no_grad`` (and the same autocast). Both are timed with :func:`time.perf_counter`, with
    ``torch.cuda.synchronize`` before and after on CUDA.
  - Fast paths (``TrainCase.fast_paths``): the mixed-precision dtype :func:`medseg_core.runtime.autocast_dtype`
    and the layout :func:`medseg_core.runtime.memory_format` choose for the model on the device, as the Trainer
    does by default; without them float32 and the contiguous layout (the kit's previous default).
  - The allocator (``keep_memory``, per process, so for all cases of a run alike): by default every benchmark
    process calls :func:`medseg_core.runtime.keep_freed_memory`, as the Trainer does on CPU; ``bench.py
    --release-freed-memory`` leaves glibc's default (the kit's previous one) to measure what it changes.
  - Forward FLOPs: :func:`medseg_core.models.summary.count_flops` (``FlopCounterMode``, convolutions and matrix
    products, 2 per multiply-add) on the case's batch. A train step is counted as 3x the forward FLOPs (backward
    about twice the forward), so achieved GFLOP/s = 3 x forward FLOPs / median step time.
  - GEMM reference (:func:`gemm_gflops`): ``torch.mm`` of two ``n x n`` matrices (n = 2048) in float32 and in the
    fast-path dtype of a 2D model on the device (bfloat16 on CPUs with native bf16, float16 on CUDA), measured
    before and after the timed steps in the same process, median of all repetitions: the rate this machine
    reaches on the easiest kernel there is, under the load of the moment.
* **peak memory**: one more process per case, holding only that model, runs ``max(warmup, 2)`` train steps (the
  first allocates gradients and optimizer state, the second is a steady one) and reports the peak on top of the
  memory at the baseline, i.e. once model, optimizer and batch are built: gradients, optimizer state,
  activations and allocator overhead.

  - CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` at the baseline, minus the memory
    allocated at the baseline (the total is reported too);
  - CPU (Linux): the kernel's resident-set high-water mark ``VmHWM`` from ``/proc/self/status``, reset to the
    current RSS at the baseline by writing ``5`` to ``/proc/self/clear_refs``, minus ``VmRSS`` at the baseline.
    The process is fresh, so the figure is not lowered by memory another model left in the allocator's free
    lists. Where the reset is not permitted, the high-water mark of the fresh process is used as is (the peak of
    importing and building is far below that of a train step, so the figure is nearly the same);
  - elsewhere: ``resource.getrusage(...).ru_maxrss`` before and after (a lower bound); NaN where even that is
    missing (Windows).
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from medseg_core.models.summary import count_flops, count_parameters
from medseg_core.runtime import (autocast_dtype, cpu_has_native_bf16, get_device, keep_freed_memory, memory_format,
                                seed_everything, to_memory_format)

__all__ = [
    "TrainCase",
    "CaseResult",
    "machine_info",
    "fast_gemm_dtype",
    "gemm_gflops",
    "measure_memory",
    "time_interleaved",
    "run_benchmark",
    "paired_ratio",
    "print_table",
    "append_csv",
]

MIB = 2**20
GEMM_SIZE = 2048
_CLEAR_REFS = Path("/proc/self/clear_refs")
_PROC_STATUS = Path("/proc/self/status")
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class TrainCase:
    """One model to benchmark: how to build it, the batch it trains on and whether the fast paths are on.

    Every field must be picklable (module-level functions, classes, :func:`functools.partial` of them): the case is
    sent to a fresh process.

    Args:
        label: Name in the result table, e.g. ``"svsnet T=4"``.
        build_model: Returns the model (logits out).
        build_loss: Returns the loss module, called as ``loss(logits, target)``.
        build_optimizer: Called with the model's parameters, returns the optimizer.
        input_shape: Shape of the random input batch, e.g. ``(B, 1, T, H, W)`` or ``(B, 3, H, W)``; values in [0, 1).
        target_shape: Shape of the target, ``(B, 1, H, W)`` for a binary mask or ``(B, H, W)`` for class indices.
        num_classes: 1 for a binary float mask target, K >= 2 for int64 class indices in ``[0, K)``.
        fast_paths: Use the kit's mixed precision and memory format for this model and device (see the module
            docstring); ``False``: float32, contiguous.
        seed: Seed of the model initialisation and of the random batch.
        tags: Extra columns for the result table, e.g. ``{"setting": "kit default"}``.
    """

    label: str
    build_model: Callable[[], nn.Module]
    build_loss: Callable[[], nn.Module]
    build_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    num_classes: int = 1
    fast_paths: bool = True
    seed: int = 0
    tags: Mapping[str, object] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        """Items (images or labelled windows) per step."""
        return self.input_shape[0]


@dataclass
class CaseResult:
    """What :func:`run_benchmark` measured for one case.

    Attributes:
        label: The case's label.
        parameters: Trainable parameters of the model.
        forward_flops: FLOPs of one forward pass on the case's batch.
        precision: Compute dtype of the forward pass (``"bfloat16"`` under autocast, else ``"float32"``).
        layout: Memory format of model and input (``"channels_last"``, ``"channels_last_3d"`` or ``"contiguous"``).
        train_seconds: Wall time of each timed train step, in cycle order (see :func:`paired_ratio`).
        infer_seconds: Wall time of each timed inference step, in cycle order.
        peak_total_mib: Peak memory of the process (CPU: VmHWM) or of the device (CUDA: max allocated).
        peak_increase_mib: ``peak_total_mib`` minus the memory at the baseline (model, optimizer and batch built).
        memory_method: How the memory was measured, in words.
        threads: ``torch.get_num_threads()`` during the timing.
    """

    label: str
    parameters: int
    forward_flops: int
    precision: str
    layout: str
    train_seconds: list[float]
    infer_seconds: list[float]
    peak_total_mib: float
    peak_increase_mib: float
    memory_method: str
    threads: int


# ----------------------------------------------------------------------------------------------------------------
# Machine report
# ----------------------------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    if _CPUINFO.exists():
        for line in _CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info(device: torch.device, threads: int | None, keep_memory: bool = True) -> dict[str, str]:
    """Describe where the benchmark runs: date, torch version, device, threads, CPU model, native bfloat16, and
    whether the benchmark processes keep freed memory (:func:`medseg_core.runtime.keep_freed_memory`)."""
    if device.type == "cuda":
        device_name = f"{device} ({torch.cuda.get_device_name(device)})"
    else:
        device_name = str(device)
    usable_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "device": device_name,
        "threads": str(threads if threads is not None else torch.get_num_threads()),
        "cpu": _cpu_model(),
        "usable_cpus": str(usable_cpus),
        "cpu_native_bf16": str(cpu_has_native_bf16()),
        "freed_memory_kept": str(keep_memory and device.type == "cpu"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


# ----------------------------------------------------------------------------------------------------------------
# Measurements (run in a fresh process)
# ----------------------------------------------------------------------------------------------------------------
def _read_proc_status_kib(field_name: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``), or ``None`` off Linux."""
    if not _PROC_STATUS.exists():
        return None
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return None


def _ru_maxrss_mib() -> float:
    """Peak RSS from getrusage (KiB on Linux, bytes on macOS); NaN without the ``resource`` module (Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


class _PeakMemory:
    """Peak memory between :meth:`start` and :meth:`stop` (see the module docstring for the method)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline_mib = 0.0
        self.method = ""

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline_mib = torch.cuda.memory_allocated(self.device) / MIB
            self.method = "CUDA: torch.cuda.max_memory_allocated, minus memory allocated at the baseline"
        elif _read_proc_status_kib("VmRSS") is not None:
            try:
                _CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
                self.method = "CPU: VmHWM reset at the baseline (clear_refs), minus VmRSS at the baseline"
            except OSError:
                self.method = "CPU: VmHWM of a fresh process (reset not permitted), minus VmRSS at the baseline"
            self.baseline_mib = _read_proc_status_kib("VmRSS") / 1024
        else:
            self.baseline_mib = _ru_maxrss_mib()
            self.method = "CPU: getrusage ru_maxrss after minus before (a lower bound)"

    def stop(self) -> tuple[float, float]:
        """Return ``(peak_total_mib, peak_increase_mib)``."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / MIB
        elif _read_proc_status_kib("VmHWM") is not None:
            peak = _read_proc_status_kib("VmHWM") / 1024
        else:
            peak = _ru_maxrss_mib()
        return peak, peak - self.baseline_mib



def _make_batch(
    case: TrainCase, device: torch.device, layout: torch.memory_format
) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch: input ``case.input_shape`` in [0, 1) in ``layout``, target mask or class indices."""
    generator = torch.Generator().manual_seed(case.seed)
    images = torch.rand(case.input_shape, generator=generator)
    if case.num_classes == 1:
        target = (torch.rand(case.target_shape, generator=generator) < 0.1).float()  # ~10 % foreground, like vessels
    else:
        target = torch.randint(0, case.num_classes, case.target_shape, generator=generator)
    return to_memory_format(images, layout).to(device), target.to(device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _layout_name(layout: torch.memory_format) -> str:
    return {torch.channels_last: "channels_last", torch.channels_last_3d: "channels_last_3d"}.get(layout, "contiguous")


class _Case:
    """A built case (seeded model, loss, optimizer, batch on ``device``, fast paths resolved as the Trainer does)."""

    def __init__(self, case: TrainCase, device: torch.device) -> None:
        seed_everything(case.seed)
        model = case.build_model()
        self.layout = memory_format(model, case.fast_paths)
        self.amp_dtype = autocast_dtype(device, model, case.fast_paths)
        self.device = device
        self.model = to_memory_format(model.to(device), self.layout).train()
        self.loss_fn = case.build_loss().to(device)
        self.optimizer = case.build_optimizer(self.model.parameters())
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.images, self.target = _make_batch(case, device, self.layout)

    @property
    def precision(self) -> str:
        """The forward pass's compute dtype, e.g. ``"bfloat16"``."""
        return str(self.amp_dtype or torch.float32).removeprefix("torch.")

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def train_step(self) -> None:
        """``zero_grad -> forward -> loss -> backward -> optimizer.step``, as ``Trainer.train_step``."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_fn(self.model(self.images).float(), self.target)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    @torch.no_grad()
    def infer_step(self) -> None:
        """One forward pass; call with the model in eval mode."""
        with self._autocast():
            self.model(self.images)


def _prepare_process(device_name: str, threads: int | None, keep_memory: bool) -> torch.device:
    """Thread count and allocator of a fresh benchmark process, as the Trainer sets them; returns the device."""
    if threads is not None:
        torch.set_num_threads(threads)
    device = get_device(device_name)
    if keep_memory and device.type == "cpu":
        keep_freed_memory()
    return device


def fast_gemm_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype the kit uses for a 2D model on ``device`` (None: float32 only)."""
    return autocast_dtype(device, nn.Conv2d(1, 1, 1))


def gemm_gflops(device: torch.device, dtype: torch.dtype, n: int = GEMM_SIZE, repeats: int = 5,
                warmup: int = 3) -> list[float]:
    """GFLOP/s (``2 n^3`` FLOPs per product) of ``repeats`` timed ``torch.mm`` of two ``n x n`` ``dtype`` matrices."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(n, n, generator=generator).to(device, dtype) for _ in range(2))
    rates = []
    for index in range(warmup + repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        if index >= warmup:
            rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return rates


def measure_memory(case: TrainCase, device_name: str, threads: int | None, steps: int,
                   keep_memory: bool = True) -> tuple[float, float, str]:
    """Peak memory of ``steps`` train steps of ``case``; run it in a fresh process (the figures assume it).

    Returns:
        ``(peak_total_mib, peak_increase_mib, method)``, see the module docstring.
    """
    device = _prepare_process(device_name, threads, keep_memory)
    built = _Case(case, device)
    memory = _PeakMemory(device)
    memory.start()
    for _ in range(steps):
        built.train_step()
    peak_total, peak_increase = memory.stop()
    return peak_total, peak_increase, memory.method


@dataclass
class _Timing:
    """What :func:`time_interleaved` returns: per case, then per process."""

    train_seconds: list[list[float]]
    infer_seconds: list[list[float]]
    parameters: list[int]
    forward_flops: list[int]
    precision: list[str]
    layout: list[str]
    threads: int
    gemm_gflops: dict[str, float]


def _interleave(
    steps: Sequence[Callable[[], None]], device: torch.device, warmup: int, cycles: int
) -> list[list[float]]:
    """``warmup`` untimed calls of each step, then ``cycles`` ABBA cycles of one timed call each; seconds per step."""
    for step in steps:
        for _ in range(warmup):
            step()
    seconds: list[list[float]] = [[] for _ in steps]
    for cycle in range(cycles):
        order = range(len(steps)) if cycle % 2 == 0 else reversed(range(len(steps)))
        for index in order:
            _synchronize(device)
            start = time.perf_counter()
            steps[index]()
            _synchronize(device)
            seconds[index].append(time.perf_counter() - start)
    return seconds


def time_interleaved(cases: Sequence[TrainCase], device_name: str, threads: int | None, warmup: int,
                     steps: int, keep_memory: bool = True) -> _Timing:
    """Count FLOPs, measure GEMM, then time train steps and inference steps of every case, interleaved ABBA.

    Run it in a fresh process. The GEMM rates are the medians over repetitions before and after the timed steps.
    """
    device = _prepare_process(device_name, threads, keep_memory)
    built = [_Case(case, device) for case in cases]
    flops = [count_flops(case.model, case.images) for case in built]  # eval mode, float32, no autocast
    gemm_dtypes = [torch.float32] + [dtype for dtype in [fast_gemm_dtype(device)] if dtype is not None]
    rates: dict[torch.dtype, list[float]] = {dtype: gemm_gflops(device, dtype) for dtype in gemm_dtypes}
    train_seconds = _interleave([case.train_step for case in built], device, warmup, steps)
    for case in built:
        case.model.eval()
    infer_seconds = _interleave([case.infer_step for case in built], device, warmup, steps)
    for dtype in gemm_dtypes:
        rates[dtype] += gemm_gflops(device, dtype)
    return _Timing(
        train_seconds=train_seconds,
        infer_seconds=infer_seconds,
        parameters=[count_parameters(case.model) for case in built],
        forward_flops=flops,
        precision=[case.precision for case in built],
        layout=[_layout_name(case.layout) for case in built],
        threads=torch.get_num_threads(),
        gemm_gflops={str(dtype).removeprefix("torch."): statistics.median(values) for dtype, values in rates.items()},
    )


# ----------------------------------------------------------------------------------------------------------------
# Orchestration and reporting (parent process)
# ----------------------------------------------------------------------------------------------------------------
def _in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` in a new interpreter (clean allocator and high-water mark); return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run_benchmark(
    cases: Sequence[TrainCase], *, device: torch.device, threads: int | None, warmup: int, steps: int,
    keep_memory: bool = True,
) -> tuple[list[CaseResult], dict[str, float]]:
    """Measure peak memory (one fresh process per case), then time all cases interleaved (one fresh process);
    ``keep_memory``: every process keeps freed memory (:func:`medseg_core.runtime.keep_freed_memory`).

    Returns:
        ``(results, gemm)``: one :class:`CaseResult` per case, and the GEMM GFLOP/s by dtype name of the timing
        process. Progress goes to stderr.
    """
    memory_steps = max(warmup, 2)
    memory = []
    for case in cases:
        memory.append(_in_fresh_process(measure_memory, case, str(device), threads, memory_steps, keep_memory))
        print(f"  memory {case.label}: +{memory[-1][1]:.0f} MiB over {memory_steps} steps", file=sys.stderr, flush=True)
    print(f"  timing {len(cases)} model(s): {warmup} warm-up + {steps} interleaved train steps each, then the same "
          "for inference", file=sys.stderr, flush=True)
    timing: _Timing = _in_fresh_process(time_interleaved, list(cases), str(device), threads, warmup, steps,
                                        keep_memory)
    results = [
        CaseResult(
            label=case.label,
            parameters=timing.parameters[index],
            forward_flops=timing.forward_flops[index],
            precision=timing.precision[index],
            layout=timing.layout[index],
            train_seconds=timing.train_seconds[index],
            infer_seconds=timing.infer_seconds[index],
            peak_total_mib=peak_total,
            peak_increase_mib=peak_increase,
            memory_method=method,
            threads=timing.threads,
        )
        for index, (case, (peak_total, peak_increase, method)) in enumerate(zip(cases, memory, strict=True))
    ]
    return results, timing.gemm_gflops


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over cycles of ``numerator`` / ``denominator`` step times (neighbouring steps, same load)."""
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


def print_table(title: str, table: pd.DataFrame) -> None:
    """Print a table with a title, all columns, 3 decimals."""
    print(f"\n{title}")
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))


def append_csv(table: pd.DataFrame, path: Path, machine: Mapping[str, str]) -> None:
    """Append ``table`` to ``path`` with the machine columns.

    Rows of several runs can share one file: the columns are the union of the old and new ones (empty where a run
    has no such column).
    """
    rows = table.assign(**machine)
    if path.exists() and path.stat().st_size > 0:
        rows = pd.concat([pd.read_csv(path), rows], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False)
