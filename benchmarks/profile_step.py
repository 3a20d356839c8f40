"""Where a train step's time goes: ``torch.profiler`` over the benchmark's own cases (``bench.py``'s models,
batches, losses, optimizers and fast paths), operators grouped by kind and by 2D / 3D input.

Usage::

    python benchmarks/profile_step.py                       # SVSnet T=4, 256², the kit's default settings
    python benchmarks/profile_step.py --model deeplabv3plus --size 128 --steps 3

Prints the top operators by self time, then the convolution time per step split into 2D and 3D inputs and
forward and backward. It asserts nothing; it explains the GFLOP/s that ``bench.py`` reports.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import _Case  # noqa: E402
from bench import DEFAULT, MODELS, build_cases  # noqa: E402

from medseg_core.runtime import get_device, keep_freed_memory  # noqa: E402

CONVOLUTIONS = {"aten::mkldnn_convolution": "forward", "aten::convolution_backward": "backward"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="svsnet")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="profiled train steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = get_device("auto")
    if device.type == "cpu":
        keep_freed_memory()  # as the Trainer and bench.py
    case = _Case(build_cases({args.model: [DEFAULT]}, args.size, seed=0)[0], device)
    case.train_step()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(args.steps):
            case.train_step()
    print(f"{MODELS[args.model].label} at {args.size}², {case.precision}, {args.steps} profiled steps, "
          f"{torch.get_num_threads()} threads")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    per_step: dict[tuple[str, str], float] = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key in CONVOLUTIONS:
            dims = "3D" if event.input_shapes and len(event.input_shapes[0]) == 5 else "2D"
            per_step[(dims, CONVOLUTIONS[event.key])] += event.self_cpu_time_total / 1e3 / args.steps
    total = sum(event.self_cpu_time_total for event in prof.key_averages()) / 1e3 / args.steps
    print(f"convolution time per step (ms; all operators: {total:.0f} ms per step)")
    for (dims, direction), milliseconds in sorted(per_step.items()):
        print(f"  {dims} {direction:8s} {milliseconds:8.1f} ms  ({100 * milliseconds / total:4.1f} %)")


if __name__ == "__main__":
    main()
