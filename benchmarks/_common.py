"""Shared machinery of the benchmark scripts: command-line options, machine report, timed train steps, peak memory.

Both ``bench_svsnet.py`` and ``bench_deeplabv3plus.py`` describe what they measure as :class:`TrainCase` objects
and hand them to :func:`run_benchmark`, which measures in fresh processes (``spawn``):

* **time**: one process builds every case, runs ``warmup`` untimed train steps of each, then ``steps`` cycles in
  which every case runs one timed step, in ABBA order (cycle 1: A B, cycle 2: B A, ...). Neighbouring steps of
  different models see the same machine load, so a ratio between models stays fair on a shared machine; the
  paired ratio (:func:`paired_ratio`, the median over cycles of the two step times' ratio) is the most robust one.
  A train step is ``zero_grad -> forward -> loss -> backward -> optimizer.step`` on one fixed random batch, timed
  with :func:`time.perf_counter`, with ``torch.cuda.synchronize`` before and after on CUDA.
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

import argparse
import datetime as dt
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from medseg_core.models.summary import count_parameters
from medseg_core.runtime import get_device, seed_everything

__all__ = [
    "TrainCase",
    "RunResult",
    "add_common_arguments",
    "check_common_arguments",
    "machine_info",
    "print_report_header",
    "measure_memory",
    "time_interleaved",
    "run_benchmark",
    "paired_ratio",
    "summarise",
    "print_table",
    "append_csv",
]

MIB = 2**20
_CLEAR_REFS = Path("/proc/self/clear_refs")
_PROC_STATUS = Path("/proc/self/status")
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class TrainCase:
    """One model to benchmark: how to build it and the batch it trains on.

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
        channels_last: Put the model and the input in ``torch.channels_last`` memory format (4D input only).
        seed: Seed of the model initialisation and of the random batch.
        tags: Extra columns for the result table, e.g. ``{"T": 4}``.
    """

    label: str
    build_model: Callable[[], nn.Module]
    build_loss: Callable[[], nn.Module]
    build_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...]
    num_classes: int = 1
    channels_last: bool = False
    seed: int = 0
    tags: Mapping[str, object] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        """Items (images or labelled windows) per train step."""
        return self.input_shape[0]


@dataclass
class RunResult:
    """What :func:`run_benchmark` measured for one case.

    Attributes:
        label: The case's label.
        parameters: Trainable parameters of the model.
        step_seconds: Wall time of each timed train step, in cycle order (see :func:`paired_ratio`).
        peak_total_mib: Peak memory of the process (CPU: VmHWM) or of the device (CUDA: max allocated).
        peak_increase_mib: ``peak_total_mib`` minus the memory at the baseline (model, optimizer and batch built).
        memory_method: How the memory was measured, in words.
        threads: ``torch.get_num_threads()`` during the timing.
    """

    label: str
    parameters: int
    step_seconds: list[float]
    peak_total_mib: float
    peak_increase_mib: float
    memory_method: str
    threads: int


# ----------------------------------------------------------------------------------------------------------------
# Command line and machine report
# ----------------------------------------------------------------------------------------------------------------
def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    size: int,
    batch_size: int,
    steps: int = 10,
    warmup: int = 2,
    channels_last_option: bool = False,
) -> None:
    """Add the options shared by all benchmark scripts, with the script's defaults."""
    parser.add_argument("--size", type=int, default=size, help=f"image height and width (default {size})")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"items per step (default {batch_size})")
    parser.add_argument("--steps", type=int, default=steps, help=f"timed steps per model (default {steps})")
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed steps per model (default {warmup})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights and of the batch")
    if channels_last_option:
        parser.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    parser.add_argument("--csv", type=Path, default=None, help="append the result rows to this CSV file")


def check_common_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, size_multiple: int) -> None:
    """Stop with a usage error naming the fix when an option is out of range."""
    if args.size <= 0 or args.size % size_multiple:
        parser.error(f"--size must be a positive multiple of {size_multiple} for these models; got {args.size}")
    for name in ("batch_size", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be >= 0; got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1; got {args.threads}")


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what :mod:`platform` knows."""
    if _CPUINFO.exists():
        for line in _CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine_info(device: torch.device, threads: int | None) -> dict[str, str]:
    """Describe where the benchmark runs: date, torch version, device, threads, CPU model."""
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
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_report_header(title: str, machine: Mapping[str, str], args: argparse.Namespace) -> None:
    """Print the title, the command line, the machine and the measurement protocol."""
    print(f"== {title} ==")
    print("command: " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    for key, value in machine.items():
        print(f"{key:>12}: {value}")
    print(
        f"time: one fresh process; {args.warmup} warm-up step(s) per model, then {args.steps} timed train steps "
        "(forward + loss + backward + optimizer step) per model, interleaved ABBA across models"
    )
    print(f"memory: one more fresh process per model, peak over {max(args.warmup, 2)} train steps")


# ----------------------------------------------------------------------------------------------------------------
# One measurement (runs in a fresh process)
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


def _make_batch(case: TrainCase, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch: input ``case.input_shape`` in [0, 1), target mask or class indices."""
    generator = torch.Generator().manual_seed(case.seed)
    images = torch.rand(case.input_shape, generator=generator)
    if case.num_classes == 1:
        target = (torch.rand(case.target_shape, generator=generator) < 0.1).float()  # ~10 % foreground, like vessels
    else:
        target = torch.randint(0, case.num_classes, case.target_shape, generator=generator)
    if case.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images.to(device), target.to(device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _TrainStep:
    """A built case (seeded model, loss, optimizer, batch on ``device``); calling it runs one train step."""

    def __init__(self, case: TrainCase, device: torch.device) -> None:
        seed_everything(case.seed)
        model = case.build_model().to(device).train()
        if case.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.loss_fn = case.build_loss().to(device)
        self.optimizer = case.build_optimizer(model.parameters())
        self.images, self.target = _make_batch(case, device)

    def __call__(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.images), self.target)
        loss.backward()
        self.optimizer.step()


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def measure_memory(case: TrainCase, device_name: str, threads: int | None, steps: int) -> tuple[float, float, str]:
    """Peak memory of ``steps`` train steps of ``case``; run it in a fresh process (the figures assume it).

    Returns:
        ``(peak_total_mib, peak_increase_mib, method)``, see the module docstring.
    """
    _set_threads(threads)
    device = get_device(device_name)
    train_step = _TrainStep(case, device)
    memory = _PeakMemory(device)
    memory.start()
    for _ in range(steps):
        train_step()
    peak_total, peak_increase = memory.stop()
    return peak_total, peak_increase, memory.method


def time_interleaved(
    cases: Sequence[TrainCase], device_name: str, threads: int | None, warmup: int, steps: int
) -> tuple[list[list[float]], list[int], int]:
    """Time ``steps`` train steps of every case, interleaved ABBA after ``warmup`` untimed steps of each.

    Returns:
        ``(step_seconds, parameters, threads)``: per case the wall time of each timed step (in cycle order) and
        the trainable parameter count, and ``torch.get_num_threads()`` during the run.
    """
    _set_threads(threads)
    device = get_device(device_name)
    train_steps = [_TrainStep(case, device) for case in cases]
    for train_step in train_steps:
        for _ in range(warmup):
            train_step()
    step_seconds: list[list[float]] = [[] for _ in cases]
    for cycle in range(steps):
        order = range(len(cases)) if cycle % 2 == 0 else reversed(range(len(cases)))
        for index in order:
            _synchronize(device)
            start = time.perf_counter()
            train_steps[index]()
            _synchronize(device)
            step_seconds[index].append(time.perf_counter() - start)
    parameters = [count_parameters(train_step.model) for train_step in train_steps]
    return step_seconds, parameters, torch.get_num_threads()


# ----------------------------------------------------------------------------------------------------------------
# Orchestration and reporting (parent process)
# ----------------------------------------------------------------------------------------------------------------
def _in_fresh_process(function: Callable[..., Any], *args: Any) -> Any:
    """Call ``function(*args)`` in a new interpreter (clean allocator and high-water mark); return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run_benchmark(
    cases: Sequence[TrainCase], *, device: torch.device, threads: int | None, warmup: int, steps: int
) -> list[RunResult]:
    """Measure peak memory (one fresh process per case), then time all cases interleaved (one fresh process).

    Progress goes to stderr.
    """
    memory_steps = max(warmup, 2)
    memory = []
    for case in cases:
        memory.append(_in_fresh_process(measure_memory, case, str(device), threads, memory_steps))
        print(f"  memory {case.label}: +{memory[-1][1]:.0f} MiB over {memory_steps} steps", file=sys.stderr, flush=True)
    print(f"  timing {len(cases)} model(s): {warmup} warm-up + {steps} interleaved steps each", file=sys.stderr,
          flush=True)
    step_seconds, parameters, used_threads = _in_fresh_process(
        time_interleaved, list(cases), str(device), threads, warmup, steps
    )
    return [
        RunResult(
            label=case.label,
            parameters=n_parameters,
            step_seconds=seconds,
            peak_total_mib=peak_total,
            peak_increase_mib=peak_increase,
            memory_method=method,
            threads=used_threads,
        )
        for case, seconds, n_parameters, (peak_total, peak_increase, method) in zip(
            cases, step_seconds, parameters, memory, strict=True
        )
    ]


def paired_ratio(numerator: RunResult, denominator: RunResult) -> float:
    """Median over cycles of ``numerator`` step time / ``denominator`` step time (neighbouring steps, same load)."""
    return float(np.median(np.asarray(numerator.step_seconds) / np.asarray(denominator.step_seconds)))


def summarise(cases: Sequence[TrainCase], results: Sequence[RunResult], throughput_name: str) -> pd.DataFrame:
    """One row per case: parameters, step time median and IQR, throughput, peak memory.

    Args:
        throughput_name: Column name of ``batch_size / median step time``, e.g. ``"images/s"``.
    """
    rows = []
    for case, result in zip(cases, results, strict=True):
        seconds = np.asarray(result.step_seconds)
        q25, median, q75 = np.percentile(seconds, [25, 50, 75])
        rows.append({
            "model": case.label,
            **case.tags,
            "params_M": result.parameters / 1e6,
            "batch": case.batch_size,
            "steps": seconds.size,
            "step_median_s": median,
            "step_iqr_s": q75 - q25,
            throughput_name: case.batch_size / median,
            "peak_train_MiB": result.peak_increase_mib,
            "peak_total_MiB": result.peak_total_mib,
        })
    return pd.DataFrame(rows)


def print_table(title: str, table: pd.DataFrame) -> None:
    """Print a table with a title, all columns, 3 decimals."""
    print(f"\n{title}")
    with pd.option_context("display.width", 200, "display.max_columns", None, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))


def append_csv(table: pd.DataFrame, path: Path, machine: Mapping[str, str], benchmark: str) -> None:
    """Append ``table`` to ``path`` with the benchmark name and machine columns.

    Rows of both scripts can share one file: the columns are the union of the old and new ones (empty where a
    benchmark has no such column).
    """
    rows = table.assign(benchmark=benchmark, **machine)
    if path.exists() and path.stat().st_size > 0:
        rows = pd.concat([pd.read_csv(path), rows], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(path, index=False)
