"""What a model costs: parameters (total and per block), FLOPs of a forward pass, CPU latency, and the
architecture table that lists them side by side (notebooks 06 and 07, the benchmarks).

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions and matrix products, 2
FLOPs per multiply-add; element-wise operations are not counted.
"""
from __future__ import annotations

import statistics
import time
from typing import Mapping, Sequence

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "parameter_table", "count_flops", "measure_latency", "architecture_table"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module) -> pd.DataFrame:
    """Trainable parameters per top-level child of ``model`` (plus a total row), as a DataFrame."""
    rows = [{"module": name, "type": type(child).__name__, "parameters": count_parameters(child)}
            for name, child in model.named_children()]
    rows.append({"module": "total", "type": type(model).__name__, "parameters": count_parameters(model)})
    return pd.DataFrame(rows)


@torch.no_grad()
def count_flops(model: nn.Module, inputs: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``inputs`` (convolutions and matrix products; 2 FLOPs per multiply-add)."""
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter:
        model(inputs)
    model.train(was_training)
    return int(counter.get_total_flops())


@torch.no_grad()
def measure_latency(model: nn.Module, inputs: torch.Tensor, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time in milliseconds of ``repeats`` forward passes (after ``warmup`` untimed ones), eval mode.

    Raises:
        ValueError: ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got repeats={repeats}, warmup={warmup}")
    was_training = model.training
    model.eval()
    for _ in range(warmup):
        model(inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(inputs)
        times.append(1000.0 * (time.perf_counter() - start))
    model.train(was_training)
    return statistics.median(times)


def architecture_table(models: Mapping[str, tuple[nn.Module, Sequence[int]]], repeats: int = 5) -> pd.DataFrame:
    """Parameters, GFLOPs and median CPU latency of each model on one input of the given shape.

    Args:
        models: ``{name: (model, input shape)}``, e.g. ``{"SVSnet T=4": (model, (1, 1, 4, 128, 128))}``; the
            input is random, batch one as given. Models are measured on the CPU in eval mode.
        repeats: timed forward passes per model (the median is reported).

    Returns:
        One row per model: ``model``, ``input``, ``parameters``, ``gflops``, ``latency_ms``, ``threads``.
    """
    rows = []
    for name, (model, shape) in models.items():
        model = model.cpu()
        inputs = torch.rand(tuple(shape), generator=torch.Generator().manual_seed(0))
        rows.append({
            "model": name, "input": "×".join(str(s) for s in shape), "parameters": count_parameters(model),
            "gflops": count_flops(model, inputs) / 1e9, "latency_ms": measure_latency(model, inputs, repeats),
            "threads": torch.get_num_threads(),
        })
    return pd.DataFrame(rows)
