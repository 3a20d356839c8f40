"""Data against training: synthetic generation, loading and training throughput per task, in one process.

For each task, with a profile's data and training settings (``--profile``, default ``cpu``; ``--set`` overrides):

* **generation**: the task's synthetic dataset written into a fresh temporary folder (``Task.make_data``), in
  frames per second (OCT frames at the public dataset's 750², XCA frames at ``xca.image_size``);
* **loading**: the training loader iterated as the Trainer does (decoding, resizing, augmentation, collation;
  ``num_workers`` of the profile), three ways: the first epoch of a new process (files decoded), a later epoch,
  and the first epoch of a second loader over the same files (the next run of a grid, served by the process's
  memo, :mod:`medseg_core.data.memo`); samples per second;
* **training**: the Trainer's train step (the kit's fast paths) on batches of that loader, samples per second.

``load / train`` is loading throughput over training throughput: above 1, one process loads faster than it
trains, so loading does not limit training. Prints a table; ``--csv PATH`` appends it with the machine columns.

Usage::

    python benchmarks/data_throughput.py                     # cpu profile: XCA windows 128², OCT frames 128²
    python benchmarks/data_throughput.py --set oct.image_size=96 --tasks oct
    python benchmarks/data_throughput.py --quick             # smoke profile, a few steps
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_csv, machine_info, print_table  # noqa: E402

from medseg_core.cli import parse_overrides  # noqa: E402
from medseg_core.config import get_profile  # noqa: E402
from medseg_core.data.memo import DECODED_FRAMES  # noqa: E402
from medseg_core.models import create_model  # noqa: E402
from medseg_core.runtime import get_device  # noqa: E402
from medseg_core.tasks import get_task  # noqa: E402
from medseg_core.training import Trainer  # noqa: E402


IMAGE_FOLDERS = {"img", "JPEGImages"}  # where the synthetic OCT and XCA writers put frames (masks elsewhere)


def _samples_per_second(loader: torch.utils.data.DataLoader) -> float:
    start, samples = time.perf_counter(), 0
    for batch in loader:
        samples += len(batch["image"])
    return samples / (time.perf_counter() - start)


def measure(task_name: str, profile_name: str, overrides: dict, train_steps: int) -> dict:
    """One task's row: generation, loading and training throughput."""
    task = get_task(task_name)
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MEDSEG_DATA"] = folder  # a fresh folder: generation is measured, not reused
        profile = get_profile(profile_name, overrides)
        model_name = task.default_model
        start = time.perf_counter()
        root = task.make_data(profile)
        generation_seconds = time.perf_counter() - start
        frames = sum(1 for path in Path(root).rglob("*")
                     if path.is_file() and IMAGE_FOLDERS & set(path.relative_to(root).parts[:-1]))
        DECODED_FRAMES.clear()
        loader = task.make_loaders(profile, root, model_name, seed=0)["train"]
        first = _samples_per_second(loader)
        later = _samples_per_second(loader)
        next_run = _samples_per_second(task.make_loaders(profile, root, model_name, seed=1)["train"])
        model = create_model(model_name, **task.model_kwargs(profile, model_name))
        trainer = Trainer(model, task.make_loss(), task.train_config(profile), progress=False,
                          metadata=task.run_metadata(profile, model_name))
        epoch = list(loader)  # one epoch's batches, repeated when it holds fewer than the steps
        batches = list(itertools.islice(itertools.cycle(epoch), train_steps + 1))
        trainer.train_step(batches[0])  # warm-up
        start, samples = time.perf_counter(), 0
        for batch in batches[1:]:
            trainer.train_step(batch)
            samples += len(batch["image"])
        train = samples / (time.perf_counter() - start)
    return {
        "task": task_name, "model": model_name, "size": task.run_metadata(profile, model_name).image_size,
        "batch": task.train_config(profile).batch_size, "workers": task.train_config(profile).num_workers,
        "generated_frames": frames, "generation_frames/s": frames / generation_seconds,
        "load_first_epoch/s": first, "load_later_epoch/s": later, "load_next_run/s": next_run,
        "train_samples/s": train, "load/train first": first / train, "load/train later": later / train,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="smoke | cpu | paper (data and training settings)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="profile overrides")
    parser.add_argument("--tasks", nargs="*", default=["xca", "oct"], choices=["xca", "oct"])
    parser.add_argument("--steps", type=int, default=5, help="timed train steps per task")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="smoke profile, 2 train steps")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    profile_name, steps = ("smoke", 2) if args.quick else (args.profile, args.steps)
    overrides = parse_overrides(args.set)
    table = pd.DataFrame([measure(task, profile_name, overrides, steps) for task in args.tasks])
    print_table(f"Data against training ({profile_name} profile, {torch.get_num_threads()} threads, "
                f"{get_device('auto').type})", table.round(2))
    if args.csv is not None:
        append_csv(table, args.csv, machine_info(get_device("auto"), args.threads))


if __name__ == "__main__":
    main()
