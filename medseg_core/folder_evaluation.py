"""Score a checkpoint, or a classical filter, on a labelled angiography folder: ``medseg evaluate``.

:func:`evaluate_folder` reads any layout of :mod:`medseg_core.data.public` (detected, or named), prepares frames as
the checkpoint's run metadata says (window, input size: the preprocessing of training), runs
:func:`medseg_core.evaluation.evaluate` (the notebooks' code) with masks at the data set's **own resolution** (logits
resized to them, as ``medseg predict`` writes its masks), and writes into a new output folder:

* ``frames.csv``: one row per frame (Dice, IoU, precision, recall, specificity, HD95, clDice, pixel counts, run);
* ``runs.csv``: per-run (video) means and frame counts;
* ``summary.csv``: every metric on the frames with vessels, mean of run means with its interval over runs
  (:func:`medseg_core.stats.summarize`), and ``foreground.csv``: Dice/clDice on frames with vessels and false
  alarms on frames without (:func:`medseg_core.stats.foreground_split`);
* ``overlays/{best,median,worst}_<id>.png``: truth (lime) and prediction (magenta) on the frame, by Dice;
* ``evaluation.json``: what was scored and how (data layout, split, single-frame windows, threshold, the fit of
  a classical filter, the data set's own challenge metric where it has one).

The folder is written under a temporary name beside ``output`` and renamed when complete; an existing non-empty
``output`` is never touched. ``checkpoint`` may also name a classical filter ("tophat", "frangi",
:mod:`medseg_core.models.classical`): its threshold is fitted on the data set's validation split, else its
training split; a data set with neither (XCAD, one folder of runs) is scored by two-fold cross-fitting over runs
(fit on one half, score the other), which the metadata says.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from .checkpoints import load_run
from .data.io import image_size, write_image
from .data.public import XCAFrames, XCAFramesDataset, read_xca_frames
from .errors import ConfigError
from .evaluation import collect_cases, evaluate, select_cases
from .models import create_model
from .models.classical import CLASSICAL_MODELS, fit_threshold
from .stats import foreground_split, summarize
from .viz import overlay

__all__ = ["FolderEvaluation", "evaluate_folder", "OUTPUT_FILES"]

OUTPUT_FILES = ("frames.csv", "runs.csv", "summary.csv", "foreground.csv", "evaluation.json", "overlays")
CHALLENGE_METRICS = {
    "arcade-syntax": "ARCADE challenge: per-image F1 (Dice) averaged over all test images",
    "arcade-stenosis": "ARCADE challenge: per-image F1 (Dice) averaged over all test images",
}


@dataclass
class FolderEvaluation:
    """What :func:`evaluate_folder` computed and wrote (``output`` is the finished folder)."""

    frames: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame
    foreground: pd.DataFrame
    metadata: dict[str, Any]
    output: Path


@dataclass
class _Part:
    """A model and the frames it scores (one part, or two for cross-fitting)."""

    model: torch.nn.Module
    data: XCAFrames


def _run_of(case_id: str) -> str:
    return case_id.split("/", 1)[0]


def _runs(data: XCAFrames, runs: set[str]) -> XCAFrames:
    """The frames of ``runs`` only."""
    return replace(data, frames=data.frames[data.frames["video"].isin(runs)].reset_index(drop=True))


def _batch_size(data: XCAFrames, batch_size: int) -> int:
    """``batch_size`` when all masks share one size (read from file headers), else 1 (masks cannot be stacked)."""
    labelled = data.labelled
    sizes = {image_size(mask if mask else image) for mask, image in zip(labelled["mask"], labelled["image"])}
    return batch_size if len(sizes) == 1 else 1


def _loader(data: XCAFrames, settings: dict[str, Any], batch_size: int, native_masks: bool = True) -> DataLoader:
    dataset = XCAFramesDataset(data, window_length=settings["window_length"], window_policy=settings["window_policy"],
                               time_axis=settings["input_kind"] == "window", image_size=settings["image_size"],
                               native_masks=native_masks)
    return DataLoader(dataset, batch_size=_batch_size(data, batch_size), shuffle=False)


def _evaluation_split(data: XCAFrames, split: str | None) -> tuple[XCAFrames, str]:
    if split == "all" or (split is None and "test" not in data.splits):
        return data, "all"
    return data.select(split or "test"), split or "test"


def _classical_parts(name: str, data: XCAFrames, scored: XCAFrames, scored_split: str, settings: dict[str, Any],
                     batch_size: int, device: str) -> tuple[list[_Part], dict[str, Any]]:
    """Fitted filter(s) and how they were fitted: on val, else train, else two-fold cross-fitting over runs."""
    fit_split = next((split for split in ("val", "train") if split in data.splits and split != scored_split), None)
    model = create_model(name, window_length=1)
    if fit_split is not None:
        threshold = fit_threshold(model, _loader(data.select(fit_split), settings, batch_size, False), device=device)
        return [_Part(model, scored)], {"fitted_on": f"the {fit_split} split", "threshold": threshold}
    runs = sorted(scored.frames["video"].unique())
    if len(runs) < 2:
        raise ConfigError(f"{name} needs frames to fit its threshold on: {data.root} has no train or val split and "
                          f"only one run, so it cannot be cross-fitted; add a train/ or val/ split")
    halves = [set(runs[0::2]), set(runs[1::2])]
    parts, thresholds = [], []
    for fit_runs, score_runs in (halves, halves[::-1]):
        half = copy.deepcopy(model)
        thresholds.append(fit_threshold(half, _loader(_runs(scored, fit_runs), settings, batch_size, False),
                                        device=device))
        parts.append(_Part(half, _runs(scored, score_runs)))
    return parts, {"fitted_on": "two-fold cross-fitting over runs (no train or val split): each half of the runs "
                                "is scored with the threshold fitted on the other half", "threshold": thresholds}


def _write_overlays(folder: Path, picks: pd.DataFrame, parts: list[_Part], settings: dict[str, Any],
                    threshold: float, device: str) -> list[str]:
    names = []
    for _, pick in picks.iterrows():
        part = next(p for p in parts if pick["id"] in set(p.data.frames["id"]))
        single = _runs(part.data, {_run_of(pick["id"])})
        case = collect_cases(part.model, _loader(single, settings, 1), [pick["id"]], device=device)[0]
        truth = case["truth"]
        frame = case["display"].float().reshape(-1, *case["display"].shape[-2:])[:1]  # (1, h, w): the gray frame
        display = F.interpolate(frame[None], size=tuple(truth.shape), mode="bilinear", align_corners=False)[0, 0]
        prediction = case["probability"][0] > threshold if case["probability"].shape[0] == 1 else \
            case["probability"].argmax(0) > 0
        name = f"{pick['rank']}_{pick['id'].replace('/', '_')}.png"
        write_image(folder / name, overlay(display, truth=truth > 0, prediction=prediction).permute(1, 2, 0).numpy())
        names.append(name)
    return names


def _check_output(output: Path) -> None:
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ConfigError(f"{output} already exists and is not empty; medseg evaluate never overwrites results: "
                          "choose a new --output")


def evaluate_folder(
    checkpoint: str | Path,
    data_dir: str | Path,
    output: str | Path,
    *,
    format: str | None = None,
    split: str | None = None,
    threshold: float = 0.5,
    batch_size: int = 8,
    device: str = "auto",
) -> FolderEvaluation:
    """Score ``checkpoint`` (an XCA run's best.pt/last.pt, or "tophat"/"frangi") on the labelled frames of ``data_dir``.

    Args:
        checkpoint: a checkpoint written by the kit's Trainer, or a classical filter's name.
        data_dir: a folder in one of the layouts of :mod:`medseg_core.data.public`.
        output: a new folder for the tables, overlays and metadata (see the module docstring).
        format: the layout (default: detected).
        split: "train", "val", "test" or "all" (default: "test" where the data set has one, else all frames).
        threshold: probability threshold of binary networks (choose it on validation; filters fit their own).
        batch_size: windows per forward pass (1 when the frames' sizes differ).

    Raises:
        ConfigError: ``output`` exists and is not empty, an OCT checkpoint, a filter without frames to fit on.
        DataError / UnknownNameError: the folder does not hold the layout, or an unknown format.
    """
    output = Path(output)
    _check_output(output)
    started = time.perf_counter()
    data = read_xca_frames(data_dir, format)
    scored, scored_split = _evaluation_split(data, split)
    name = str(checkpoint)
    if name in CLASSICAL_MODELS:
        settings = {"window_length": 1, "window_policy": "centre", "input_kind": "window", "image_size": None}
        parts, fit = _classical_parts(name, data, scored, scored_split, settings, batch_size, device)
        class_names, model_name = ("vessel",), name
    else:
        model, run = load_run(checkpoint, device)
        if run.task != "xca":
            raise ConfigError(f"{checkpoint} was trained for task {run.task!r}; medseg evaluate scores angiography "
                              "(task 'xca') checkpoints on these layouts")
        settings = {"window_length": run.window_length, "window_policy": run.window_policy,
                    "input_kind": run.input_kind, "image_size": run.image_size}
        parts, fit, class_names = [_Part(model, scored)], None, run.class_names
        model_name = model.model_spec["name"]
    frames = pd.concat([evaluate(part.model, _loader(part.data, settings, batch_size), class_names=class_names,
                                 threshold=threshold, clusters=_run_of, device=device) for part in parts],
                       ignore_index=True)
    metrics = ["dice", "iou", "precision", "recall", "specificity", "hd95", "cldice"]
    runs = frames.groupby("cluster", sort=False).agg(frames=("id", "size"), **{m: (m, "mean") for m in metrics})
    with_vessels = frames[frames["truth_pixels"] > 0]
    summary = summarize(with_vessels, metrics=metrics, cluster="cluster") if len(with_vessels) else pd.DataFrame()
    foreground = foreground_split(frames, metrics=("dice", "cldice"))
    metadata = {
        "checkpoint": name, "model": model_name, "data": data.metadata(), "split": scored_split,
        "frames_scored": int(frames["id"].nunique()), "runs_scored": int(frames["cluster"].nunique()),
        "input": {**settings, "image_size": settings["image_size"] or "the stored size"},
        "scored_at": "each mask's stored size (logits resized bilinearly, as medseg predict writes masks)",
        "threshold": threshold if fit is None else "fitted (see classical_fit)", "classical_fit": fit,
        "challenge_metric": ({"name": CHALLENGE_METRICS[data.format], "value": float(frames["dice"].mean())}
                             if data.format in CHALLENGE_METRICS else None),
        "intervals": "t-interval over run means (medseg_core.stats); single frames are runs of their own",
    }
    staging = output.with_name(f".{output.name}.incomplete-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "overlays").mkdir(parents=True)
        frames.to_csv(staging / "frames.csv", index=False)
        runs.to_csv(staging / "runs.csv")
        summary.to_csv(staging / "summary.csv")
        foreground.to_csv(staging / "foreground.csv", index=False)
        picks = select_cases(frames) if len(with_vessels) else frames.iloc[:0]
        metadata["overlays"] = _write_overlays(staging / "overlays", picks, parts, settings, threshold, device)
        metadata["seconds"] = round(time.perf_counter() - started, 1)
        (staging / "evaluation.json").write_text(json.dumps(metadata, indent=2, default=str))
        _check_output(output)  # still free: nobody wrote there meanwhile
        if output.is_dir():
            output.rmdir()
        output.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return FolderEvaluation(frames, runs, summary, foreground, metadata, output)
