"""Train-step throughput and peak memory of SVSnet, with the 2D U-Net baseline as a ratio.

SVSnet (Hao et al., "Sequential vessel segmentation via deep channel attention network", Neural Networks 2020,
arXiv 2102.05229) segments the labelled frame of a window of T X-ray angiography frames: input ``(B, 1, T, H, W)``,
logits ``(B, 1, H, W)``. Its training is the official one: negative soft Dice over the flattened batch
(:class:`medseg_core.losses.DiceLoss`, ``mode="binary"``) and SGD, lr 0.01, momentum 0.9, Nesterov. The baseline
is the kit's 2D U-Net on single frames ``(B, 1, H, W)`` of the same size and batch, trained the same way.

Throughput is in *labelled windows per second* (batch items per second): one window of T frames yields one mask.
See ``benchmarks/_common.py`` for the timing and memory protocol.

Usage::

    python benchmarks/bench_svsnet.py                            # 256x256, B=2, T=4, CPU or GPU (auto)
    python benchmarks/bench_svsnet.py --window-lengths 1 2 4 --csv benchmarks/results.csv
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
from medseg_core.losses import DiceLoss
from medseg_core.models import create_model
from medseg_core.runtime import get_device

__all__ = ["build_cases", "main"]

SIZE_MULTIPLE = 64  # SVSnet halves H and W six times
THROUGHPUT = "windows/s"


def build_cases(size: int, batch_size: int, window_lengths: list[int], seed: int) -> list[TrainCase]:
    """One SVSnet case per window length T, input ``(B, 1, T, H, W)``; last, the U-Net baseline ``(B, 1, H, W)``."""
    common = {
        "build_loss": partial(DiceLoss, mode="binary"),
        "build_optimizer": partial(torch.optim.SGD, lr=0.01, momentum=0.9, nesterov=True),
        "target_shape": (batch_size, 1, size, size),
        "num_classes": 1,
        "seed": seed,
    }
    cases = [
        TrainCase(
            label=f"svsnet T={window_length}",
            build_model=partial(create_model, "svsnet", window_length=window_length),
            input_shape=(batch_size, 1, window_length, size, size),
            tags={"T": window_length},
            **common,
        )
        for window_length in window_lengths
    ]
    cases.append(
        TrainCase(
            label="unet2d (1 frame)",
            build_model=partial(create_model, "unet2d", in_channels=1, num_classes=1),
            input_shape=(batch_size, 1, size, size),
            tags={"T": 1},
            **common,
        )
    )
    return cases


def ratios_to_baseline(table: pd.DataFrame, results: list[RunResult]) -> pd.DataFrame:
    """SVSnet rows relative to the U-Net row (the last one): throughput, paired step time, parameters, memory."""
    baseline_row, baseline_result = table.iloc[-1], results[-1]
    svsnet_rows = table.iloc[:-1]
    return pd.DataFrame({
        "model": svsnet_rows["model"],
        "T": svsnet_rows["T"],
        "throughput_x": svsnet_rows[THROUGHPUT] / baseline_row[THROUGHPUT],
        "paired_step_time_x": [paired_ratio(result, baseline_result) for result in results[:-1]],
        "params_x": svsnet_rows["params_M"] / baseline_row["params_M"],
        "peak_train_mem_x": svsnet_rows["peak_train_MiB"] / baseline_row["peak_train_MiB"],
    })


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Parse options, measure, print the tables; return the result table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, size=256, batch_size=2)
    parser.add_argument(
        "--window-lengths", type=int, nargs="+", default=[4], metavar="T",
        help="SVSnet window lengths to sweep, e.g. 1 2 4 (default 4, the official one)",
    )
    args = parser.parse_args(argv)
    check_common_arguments(parser, args, SIZE_MULTIPLE)
    if min(args.window_lengths) < 1:
        parser.error(f"--window-lengths must be >= 1; got {args.window_lengths}")

    device = get_device(args.device)
    machine = machine_info(device, args.threads)
    print_report_header("SVSnet train step", machine, args)
    cases = build_cases(args.size, args.batch_size, args.window_lengths, args.seed)
    results = run_benchmark(cases, device=device, threads=args.threads, warmup=args.warmup, steps=args.steps)
    print(f"memory method: {results[0].memory_method}")

    table = summarise(cases, results, THROUGHPUT)
    print_table(f"Train step at {args.size}x{args.size}, batch {args.batch_size} ({THROUGHPUT} = labelled windows/s)",
                table)
    print_table("SVSnet relative to the 2D U-Net baseline (x = SVSnet / U-Net)", ratios_to_baseline(table, results))
    if args.csv is not None:
        append_csv(table, args.csv, machine, benchmark="svsnet")
        print(f"\nappended {len(table)} rows to {args.csv}")
    return table


if __name__ == "__main__":
    main()
