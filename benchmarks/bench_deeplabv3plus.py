"""Train-step throughput and peak memory of the kit's DeepLabV3+ (MobileNetV2 + ASPP + ECA) next to smp's.

Ours: ``create_model("deeplabv3plus", num_classes=2, output_stride=16, eca="both")``, the OCT lipid-plaque model
(DeepLabV3+: Chen et al., ECCV 2018, arXiv 1802.02611; ECA: Wang et al., CVPR 2020, arXiv 1910.03151).
Reference: ``segmentation_models_pytorch.DeepLabV3Plus(encoder_name="mobilenet_v2", encoder_weights=None,
classes=2)`` at the same output stride (a benchmark-only dependency: ``pip install -e .[bench]``). smp's ASPP and
decoder use depthwise-separable convolutions and atrous rates 12/24/36, so it is smaller than the seed's model.

Both are timed in the same process, their train steps interleaved (ABBA), on the same random batch of
``(B, 3, H, W)`` images and ``(B, H, W)`` class indices, with the seed's loss (cross-entropy + soft Dice,
:class:`medseg_core.losses.CEDiceLoss`) and optimizer (RMSprop, lr 1e-5, momentum 0.9, weight decay 1e-6).
See ``benchmarks/_common.py`` for the timing and memory protocol.

Usage::

    python benchmarks/bench_deeplabv3plus.py                     # 256x256, B=8, CPU or GPU (auto)
    python benchmarks/bench_deeplabv3plus.py --channels-last --csv benchmarks/results.csv
"""
from __future__ import annotations

import argparse
from functools import partial

import pandas as pd
import torch

from _common import (
    RunResult,
    TrainCase,
    add_common_arguments,
    append_csv,
    check_common_arguments,
    machine_info,
    paired_ratio,
    print_report_header,
    print_table,
    run_benchmark,
    summarise,
)
from medseg_core.losses import CEDiceLoss
from medseg_core.models import create_model
from medseg_core.runtime import get_device

try:
    import segmentation_models_pytorch as smp
except ImportError as error:
    raise SystemExit(
        "bench_deeplabv3plus.py compares against segmentation_models_pytorch, which is not installed; "
        "install the benchmark extra: pip install -e .[bench]"
    ) from error

__all__ = ["build_cases", "main"]

NUM_CLASSES = 2
THROUGHPUT = "images/s"


def build_cases(size: int, batch_size: int, output_stride: int, channels_last: bool, seed: int) -> list[TrainCase]:
    """Our DeepLabV3+ (first) and smp's, same input ``(B, 3, H, W)``, target ``(B, H, W)``, loss and optimizer."""
    common = {
        "build_loss": CEDiceLoss,
        "build_optimizer": partial(torch.optim.RMSprop, lr=1e-5, momentum=0.9, weight_decay=1e-6),
        "input_shape": (batch_size, 3, size, size),
        "target_shape": (batch_size, size, size),
        "num_classes": NUM_CLASSES,
        "channels_last": channels_last,
        "seed": seed,
    }
    ours = partial(create_model, "deeplabv3plus", num_classes=NUM_CLASSES, output_stride=output_stride, eca="both")
    reference = partial(
        smp.DeepLabV3Plus, encoder_name="mobilenet_v2", encoder_weights=None, classes=NUM_CLASSES,
        encoder_output_stride=output_stride,
    )
    return [TrainCase(label="ours: deeplabv3plus eca=both", build_model=ours, **common),
            TrainCase(label="smp: DeepLabV3Plus mobilenet_v2", build_model=reference, **common)]


def ours_over_smp(table: pd.DataFrame, results: list[RunResult]) -> pd.DataFrame:
    """Ratios ours / smp (ours is the first row): throughput, paired step time, parameters, peak training memory."""
    ours, reference = table.iloc[0], table.iloc[1]
    return pd.DataFrame([{
        "throughput_x": ours[THROUGHPUT] / reference[THROUGHPUT],
        "paired_step_time_x": paired_ratio(results[0], results[1]),
        "params_x": ours["params_M"] / reference["params_M"],
        "peak_train_mem_x": ours["peak_train_MiB"] / reference["peak_train_MiB"],
    }])


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Parse options, measure, print the tables; return the result table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, size=256, batch_size=8, channels_last_option=True)
    parser.add_argument("--output-stride", type=int, default=16, choices=[8, 16], help="both models (default 16)")
    args = parser.parse_args(argv)
    check_common_arguments(parser, args, size_multiple=args.output_stride)

    device = get_device(args.device)
    machine = machine_info(device, args.threads)
    print_report_header("DeepLabV3+ train step: ours vs segmentation_models_pytorch", machine, args)
    print(f"smp {smp.__version__}; output stride {args.output_stride}; channels_last {args.channels_last}")
    cases = build_cases(args.size, args.batch_size, args.output_stride, args.channels_last, args.seed)
    results = run_benchmark(cases, device=device, threads=args.threads, warmup=args.warmup, steps=args.steps)
    print(f"memory method: {results[0].memory_method}")

    table = summarise(cases, results, THROUGHPUT)
    print_table(f"Train step at {args.size}x{args.size}, batch {args.batch_size}", table)
    ratios = ours_over_smp(table, results)
    print_table("Ours relative to smp (x = ours / smp)", ratios)
    print(f"\nthroughput: ours {table[THROUGHPUT].iloc[0]:.3f} vs smp {table[THROUGHPUT].iloc[1]:.3f} {THROUGHPUT} "
          f"(ours/smp = {ratios['throughput_x'].iloc[0]:.2f}); parameters: ours {results[0].parameters:,} "
          f"vs smp {results[1].parameters:,}")
    if args.csv is not None:
        append_csv(table.assign(channels_last=args.channels_last, output_stride=args.output_stride), args.csv,
                   machine, benchmark="deeplabv3plus")
        print(f"\nappended {len(table)} rows to {args.csv}")
    return table


if __name__ == "__main__":
    main()
