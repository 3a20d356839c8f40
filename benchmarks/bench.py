"""The kit's benchmark: train-step and inference speed, peak memory, FLOPs and the share of the machine's GEMM rate
that each model reaches, at several image sizes, on the current device.

Models (``--models``, all by default), each trained with its paper's loss and optimizer on one fixed random batch:

* ``svsnet``: SVSnet, T = 4 (Hao et al., Neural Networks 2020), input ``(2, 1, 4, H, W)``; soft Dice
  (:class:`medseg_core.losses.DiceLoss`, binary) and SGD (lr 0.01, momentum 0.9, Nesterov); throughput in
  labelled windows of T frames per second.
* ``deeplabv3plus``: the kit's DeepLabV3+ (MobileNetV2 + ASPP + ECA on the skip and in ASPP, output stride 16, the
  reference implementation's model), input ``(8, 3, H, W)``; cross-entropy + soft Dice
  (:class:`medseg_core.losses.CEDiceLoss`) and RMSprop (lr 1e-5, momentum 0.9, weight decay 1e-6).
* ``deeplabv3plus-separable``: the same with ``separable=True`` (depthwise-separable ASPP and decoder convolutions).
* ``smp``: ``segmentation_models_pytorch.DeepLabV3Plus("mobilenet_v2", encoder_weights=None, classes=2)``, the
  same batch, loss and optimizer (a benchmark-only dependency: ``pip install -e .[bench]``).
* ``unet2d``: the kit's 2D U-Net on single frames ``(2, 1, H, W)``, SVSnet's baseline, trained as SVSnet.
* ``svsnet-checkpoint`` (not run by default; ``--checkpoint-activations`` adds it): SVSnet with
  ``checkpoint=True``, activation checkpointing of its encoder levels (less memory, more compute).

Every kit model runs twice in the same process: with the kit's default fast paths (what the Trainer does:
:func:`medseg_core.runtime.autocast_dtype` and :func:`medseg_core.runtime.memory_format`, i.e. bfloat16 autocast
on CPUs with native bf16 for 2D models, channels last for all) and with the previous default (float32, contiguous).
smp gets the same fast paths as the kit's DeepLabV3+, for a fair comparison. Every benchmark process keeps freed
memory for reuse as the Trainer does on CPU (:func:`medseg_core.runtime.keep_freed_memory`; all models alike);
``--release-freed-memory`` measures glibc's default instead, in a separate run. See ``benchmarks/_common.py`` for
the timing, FLOP, GEMM and memory protocol.

Usage::

    python benchmarks/bench.py                                   # 256² and 512², every model, CPU or GPU (auto)
    python benchmarks/bench.py --sizes 256 --steps 5 --csv benchmarks/results.csv
    python benchmarks/bench.py --quick                           # 64², two models, 1 + 2 steps: a smoke test
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from _common import (
    GEMM_SIZE,
    CaseResult,
    TrainCase,
    append_csv,
    machine_info,
    paired_ratio,
    print_table,
    run_benchmark,
)
from medseg_core.losses import CEDiceLoss, DiceLoss
from medseg_core.models import create_model
from medseg_core.runtime import autocast_dtype, get_device, memory_format

try:
    import segmentation_models_pytorch as smp
except ImportError:  # the comparison model is optional; asking for it without the package is a usage error
    smp = None

__all__ = ["MODELS", "build_cases", "results_table", "ratios_table", "main"]

DEFAULT_SIZES = (256, 512)
DEFAULT_MODELS = ("svsnet", "deeplabv3plus", "deeplabv3plus-separable", "smp", "unet2d")
QUICK_MODELS = ("deeplabv3plus-separable", "smp")
QUICK_SIZE, QUICK_BATCH, QUICK_WARMUP, QUICK_STEPS = 64, 2, 1, 2
DEFAULT, PREVIOUS, FAST_PATHS, SAME = "default", "previous", "fast paths", "default=previous"


@dataclass(frozen=True)
class ModelSpec:
    """A model of the benchmark: how to build and train it, its batch and the image sizes it accepts.

    Attributes:
        label: Name in the tables.
        build: Returns the model (picklable: it goes to fresh processes); None when its package is missing.
        batch: Items per step (images, or labelled windows for SVSnet).
        channels: Input channels.
        build_loss: Returns the loss, called as ``loss(logits, target)``.
        build_optimizer: Called with the parameters, returns the optimizer.
        num_classes: 1 for a binary mask target ``(B, 1, H, W)``, K >= 2 for class indices ``(B, H, W)``.
        window_length: Frames per input window (SVSnet: input ``(B, 1, T, H, W)``); None for 2D models.
        kit: A kit model (timed with and without the fast paths); False for the smp reference (fast paths only).
        size_multiple: Image sizes must be multiples of this.
    """

    label: str
    build: Callable[[], nn.Module] | None
    batch: int
    channels: int
    build_loss: Callable[[], nn.Module]
    build_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    num_classes: int
    window_length: int | None = None
    kit: bool = True
    size_multiple: int = 16

    def input_shape(self, size: int, batch: int) -> tuple[int, ...]:
        """``(B, C, H, W)``, or ``(B, 1, T, H, W)`` for a window model."""
        if self.window_length is not None:
            return (batch, self.channels, self.window_length, size, size)
        return (batch, self.channels, size, size)

    def target_shape(self, size: int, batch: int) -> tuple[int, ...]:
        """``(B, 1, H, W)`` binary mask or ``(B, H, W)`` class indices."""
        return (batch, 1, size, size) if self.num_classes == 1 else (batch, size, size)


_SGD = partial(torch.optim.SGD, lr=0.01, momentum=0.9, nesterov=True)  # SVSnet's optimizer, also for the U-Net
_RMSPROP = partial(torch.optim.RMSprop, lr=1e-5, momentum=0.9, weight_decay=1e-6)  # the OCT DeepLabV3+'s
_BINARY_DICE = partial(DiceLoss, mode="binary")
_DEEPLAB_KWARGS = {"num_classes": 2, "output_stride": 16, "eca": "both"}
_SMP = (partial(smp.DeepLabV3Plus, encoder_name="mobilenet_v2", encoder_weights=None, classes=2)
        if smp is not None else None)
MODELS: dict[str, ModelSpec] = {
    "svsnet": ModelSpec("svsnet T=4", partial(create_model, "svsnet", window_length=4), 2, 1, _BINARY_DICE, _SGD,
                        num_classes=1, window_length=4, size_multiple=64),
    "svsnet-checkpoint": ModelSpec("svsnet T=4 checkpointed",
                                   partial(create_model, "svsnet", window_length=4, checkpoint=True), 2, 1,
                                   _BINARY_DICE, _SGD, num_classes=1, window_length=4, size_multiple=64),
    "deeplabv3plus": ModelSpec("deeplabv3plus", partial(create_model, "deeplabv3plus", **_DEEPLAB_KWARGS), 8, 3,
                               CEDiceLoss, _RMSPROP, num_classes=2),
    "deeplabv3plus-separable": ModelSpec(
        "deeplabv3plus separable", partial(create_model, "deeplabv3plus", **_DEEPLAB_KWARGS, separable=True), 8, 3,
        CEDiceLoss, _RMSPROP, num_classes=2),
    "smp": ModelSpec("smp mobilenet_v2", _SMP, 8, 3, CEDiceLoss, _RMSPROP, num_classes=2, kit=False),
    "unet2d": ModelSpec("unet2d", partial(create_model, "unet2d", in_channels=1, num_classes=1), 2, 1, _BINARY_DICE,
                        _SGD, num_classes=1),
}
# (numerator, denominator) of the ratio table, as (model, setting); rows whose cases were not run are left out.
_COMPARISONS = [
    (("deeplabv3plus-separable", DEFAULT), ("smp", FAST_PATHS)),
    (("deeplabv3plus", DEFAULT), ("smp", FAST_PATHS)),
    (("deeplabv3plus-separable", DEFAULT), ("deeplabv3plus", DEFAULT)),
    (("svsnet", DEFAULT), ("unet2d", DEFAULT)),
    (("svsnet-checkpoint", DEFAULT), ("svsnet", DEFAULT)),
]


def settings(name: str, device: torch.device) -> list[str]:
    """The settings to time for a model: previous and default, or one of them when they coincide on ``device``."""
    spec = MODELS[name]
    if not spec.kit:
        return [FAST_PATHS]
    model = spec.build()
    fast = (autocast_dtype(device, model), memory_format(model))
    return [SAME] if fast == (None, torch.contiguous_format) else [PREVIOUS, DEFAULT]


def build_cases(
    model_settings: Mapping[str, list[str]], size: int, seed: int, batch: int | None = None
) -> list[TrainCase]:
    """The cases of one size: per model, each of its settings (previous and default are neighbours in ABBA).

    ``batch`` replaces every model's own batch size when given.
    """
    cases = []
    for name, names_settings in model_settings.items():
        spec = MODELS[name]
        items = batch or spec.batch
        for setting in names_settings:
            cases.append(TrainCase(
                label=spec.label, build_model=spec.build, build_loss=spec.build_loss,
                build_optimizer=spec.build_optimizer, input_shape=spec.input_shape(size, items),
                target_shape=spec.target_shape(size, items), num_classes=spec.num_classes,
                fast_paths=setting != PREVIOUS, seed=seed, tags={"key": name, "setting": setting},
            ))
    return cases


def results_table(
    cases: list[TrainCase], results: list[CaseResult], size: int, gemm: Mapping[str, float]
) -> pd.DataFrame:
    """One row per case: settings, size, FLOPs, train and inference times and throughput, memory, GEMM shares."""
    rows = []
    for case, result in zip(cases, results, strict=True):
        train = pd.Series(result.train_seconds)
        step = train.median()
        infer = float(pd.Series(result.infer_seconds).median())
        achieved = 3 * result.forward_flops / step / 1e9
        rows.append({
            "model": case.label,
            "setting": case.tags["setting"],
            "precision": result.precision,
            "layout": result.layout,
            "size": size,
            "batch": case.batch_size,
            "params_M": result.parameters / 1e6,
            "fwd_GFLOP": result.forward_flops / 1e9,
            "steps": len(train),
            "step_median_s": step,
            "step_iqr_s": train.quantile(0.75) - train.quantile(0.25),
            "train_items/s": case.batch_size / step,
            "infer_median_s": infer,
            "infer_items/s": case.batch_size / infer,
            "peak_train_MiB": result.peak_increase_mib,
            "peak_total_MiB": result.peak_total_mib,
            "achieved_GFLOP/s": achieved,
            "of_sgemm": achieved / gemm["float32"],
            "of_dtype_gemm": achieved / gemm.get(result.precision, math.nan),
        })
    return pd.DataFrame(rows)


def _ratio_row(name: str, table: pd.DataFrame, results: list[CaseResult], a: int, b: int) -> dict[str, object]:
    top, bottom = table.iloc[a], table.iloc[b]
    return {
        "comparison": name,
        "size": int(top["size"]),
        "train_throughput_x": top["train_items/s"] / bottom["train_items/s"],
        "paired_step_time_x": paired_ratio(results[a].train_seconds, results[b].train_seconds),
        "infer_throughput_x": top["infer_items/s"] / bottom["infer_items/s"],
        "paired_infer_time_x": paired_ratio(results[a].infer_seconds, results[b].infer_seconds),
        "peak_train_mem_x": top["peak_train_MiB"] / bottom["peak_train_MiB"],
        "params_x": top["params_M"] / bottom["params_M"],
        "fwd_flops_x": top["fwd_GFLOP"] / bottom["fwd_GFLOP"],
    }


def ratios_table(cases: list[TrainCase], table: pd.DataFrame, results: list[CaseResult]) -> pd.DataFrame:
    """Kit default / previous default for every kit model timed both ways, then the model comparisons."""
    index = {(case.tags["key"], case.tags["setting"]): i for i, case in enumerate(cases)}
    index.update({(key, DEFAULT): i for (key, setting), i in list(index.items()) if setting == SAME})
    rows = [_ratio_row(f"{cases[i].label}: default / previous", table, results, i, index[(key, PREVIOUS)])
            for (key, setting), i in index.items() if setting == DEFAULT and (key, PREVIOUS) in index]
    for numerator, denominator in _COMPARISONS:
        if numerator in index and denominator in index:
            a, b = index[numerator], index[denominator]
            rows.append(_ratio_row(f"{cases[a].label} / {cases[b].label}", table, results, a, b))
    return pd.DataFrame(rows)


PRINTED_COLUMNS = ["model", "setting", "precision", "layout", "batch", "params_M", "fwd_GFLOP", "step_median_s",
                   "step_iqr_s", "train_items/s", "infer_items/s", "peak_train_MiB", "achieved_GFLOP/s", "of_sgemm",
                   "of_dtype_gemm"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, metavar="N",
                        help=f"image heights = widths (default {' '.join(map(str, DEFAULT_SIZES))})")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=None,
                        help=f"models to run (default: {' '.join(DEFAULT_MODELS)}; --quick: {' '.join(QUICK_MODELS)})")
    parser.add_argument("--checkpoint-activations", action="store_true",
                        help="also run SVSnet with activation checkpointing of its encoder (svsnet-checkpoint)")
    parser.add_argument("--steps", type=int, default=None, help="timed train and inference steps per model "
                                                                f"(default 10; --quick: {QUICK_STEPS})")
    parser.add_argument("--warmup", type=int, default=None, help=f"untimed steps per model (default 2; --quick: "
                                                                 f"{QUICK_WARMUP})")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"items per step for every model (default: SVSnet and U-Net 2, DeepLabV3+ 8; --quick: "
                             f"{QUICK_BATCH})")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK_SIZE}², batch {QUICK_BATCH}, {QUICK_WARMUP} warm-up + "
                             f"{QUICK_STEPS} steps, two models")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights and of the batches")
    parser.add_argument("--release-freed-memory", action="store_true",
                        help="leave glibc's malloc as it is (freed memory back to the OS, the kit's previous default) "
                             "instead of runtime.keep_freed_memory in every process, as the Trainer does on CPU")
    parser.add_argument("--csv", type=Path, default=None,
                        help="append the result rows to this CSV file (the ratios to <stem>_ratios.csv beside it)")
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ([QUICK_SIZE] if args.quick else list(DEFAULT_SIZES))
    args.steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else 2)
    args.batch_size = args.batch_size or (QUICK_BATCH if args.quick else None)
    if args.models is None:
        args.models = [name for name in (QUICK_MODELS if args.quick else DEFAULT_MODELS)
                       if name != "smp" or smp is not None]
    elif "smp" in args.models and smp is None:
        parser.error("--models smp needs segmentation_models_pytorch: pip install -e .[bench]")
    if args.checkpoint_activations and "svsnet-checkpoint" not in args.models:
        args.models.append("svsnet-checkpoint")
    multiple = max(MODELS[name].size_multiple for name in args.models)
    if any(size <= 0 or size % multiple for size in args.sizes):
        parser.error(f"--sizes must be positive multiples of {multiple} for these models; got {args.sizes}")
    if args.steps < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error("need --steps >= 1, --warmup >= 0 and --threads >= 1")
    if args.batch_size is not None and args.batch_size < 2:
        parser.error(f"--batch-size must be >= 2 (DeepLabV3+'s BatchNorm after image pooling); got {args.batch_size}")
    return args


def _print_header(args: argparse.Namespace, machine: dict[str, str]) -> None:
    print("== medseg-kit benchmark: train step, inference, memory, FLOPs ==")
    print("command: " + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    print(f"settings: sizes {args.sizes}, models {args.models}, batch {args.batch_size or 'per model'}, "
          f"warmup {args.warmup}, steps {args.steps}")
    for key, value in machine.items():
        print(f"{key:>16}: {value}")
    if smp is not None:
        print(f"{'smp':>16}: {smp.__version__}")
    print(f"time: per size one fresh process; {args.warmup} warm-up step(s) per model, then {args.steps} timed train "
          "steps (forward + loss + backward + optimizer step) per model interleaved ABBA, then the same for "
          "inference (eval, no_grad)")
    print(f"memory: one more fresh process per model and size, peak over {max(args.warmup, 2)} train steps")
    print(f"GEMM: torch.mm {GEMM_SIZE}x{GEMM_SIZE} in the timing process, before and after the steps (median); "
          "achieved GFLOP/s = 3 x forward FLOPs / median step time")


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Parse options, measure every size, print the tables, append the CSVs; return the result table."""
    args = _parse(argv)
    device = get_device(args.device)
    keep_memory = not args.release_freed_memory
    machine = machine_info(device, args.threads, keep_memory)
    _print_header(args, machine)
    model_settings = {name: settings(name, device) for name in args.models}
    same = [MODELS[name].label for name, values in model_settings.items() if values == [SAME]]
    if same:
        print(f"default=previous: the kit's fast paths change nothing for {', '.join(same)} on {device.type} "
              "(float32, contiguous)")
    tables, ratios = [], []
    for size in args.sizes:
        cases = build_cases(model_settings, size, args.seed, args.batch_size)
        results, gemm = run_benchmark(cases, device=device, threads=args.threads, warmup=args.warmup,
                                      steps=args.steps, keep_memory=keep_memory)
        fast_dtypes = [name for name in gemm if name != "float32"]
        table = results_table(cases, results, size, gemm).assign(
            **{"sgemm_GFLOP/s": gemm["float32"],
               "fast_gemm_dtype": fast_dtypes[0] if fast_dtypes else "",
               "fast_gemm_GFLOP/s": gemm[fast_dtypes[0]] if fast_dtypes else math.nan})
        ratio = ratios_table(cases, table, results)
        print(f"\nmemory method: {results[0].memory_method}")
        print("GEMM " + ", ".join(f"{name} {rate:.1f} GFLOP/s" for name, rate in gemm.items()))
        print_table(f"{size}x{size} (items/s: images/s; SVSnet: labelled windows of T frames/s; of_sgemm = achieved "
                    "/ float32 GEMM, of_dtype_gemm = achieved / GEMM in the row's precision)",
                    table[PRINTED_COLUMNS])
        print_table(f"Ratios at {size}x{size} (x = first / second; throughput_x > 1 and time_x < 1: first faster)",
                    ratio)
        tables.append(table)
        ratios.append(ratio)
    table = pd.concat(tables, ignore_index=True)
    if args.csv is not None:
        append_csv(table, args.csv, machine)
        ratio_path = args.csv.with_name(f"{args.csv.stem}_ratios{args.csv.suffix or '.csv'}")
        append_csv(pd.concat(ratios, ignore_index=True), ratio_path, machine)
        print(f"\nappended {len(table)} rows to {args.csv} and the ratios to {ratio_path}")
    return table


if __name__ == "__main__":
    main()
