"""Study of the synthetic XCA generator's realism options (issue 24, part 5): what each one does to the masks'
morphology against the 30 real expert masks, and to SVSnet's validation Dice on plain and on realistic frames.

Two tables, printed and written as CSV under ``--out``:

1. **Morphology** (``--morphology``): the fully opacified mask of ``--runs`` simulated 512 x 512 runs (frame 5, as
   ``tests/test_morphology.py`` does) under each option that can change a mask, scored by
   :func:`medseg_core.data.morphology.vessel_morphology`: the fraction of masks inside the real masks' 5-95 %
   range per statistic, and the median vessel fraction. Options that leave every mask unchanged (wires, spine,
   lung markings, noise, blur) are checked to do so (the masks are compared) and listed as such.
2. **Training** (``--train``): for each variant (``plain``: the default data; ``xca-for-real``: the recipe of
   ``medseg_core.config.RECIPES``; the recipe without one of its parts), SVSnet is trained with the cpu profile
   on :data:`BUDGET` (float32, 128² frames, random 64² training crops) and scored (Dice, precision, recall; mean
   over frames, threshold 0.5) on the validation videos of held-out data sets of another seed (``xca.seed =
   1000``): the default generator's (``plain``), the generator with ONE option of :data:`OPTIONS` on
   (``+guide_wire``, ...: what each change does to a model's frames), and with all of them (``realistic``). What
   a change buys is the Dice on realistic frames; what it costs, the Dice on plain ones.

    OMP_NUM_THREADS=1 python benchmarks/xca_realism.py --morphology --train --out /tmp/xca_realism
    python benchmarks/xca_realism.py --list                 # the variants
    python benchmarks/xca_realism.py --train --variants plain xca-for-real --seeds 0 1

Not a test: it asserts nothing and runs minutes (about 2.5 minutes per training on a busy 2-core machine).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medseg_core.config import REALISM_RANGES, RECIPES, get_profile
from medseg_core.data.morphology import (STATISTICS, fraction_inside, load_real_xca_masks, morphology_table,
                                         reference_range)
from medseg_core.data.synthetic_xca import Realism, simulate_sequence, video_seed, write_xca_dataset
from medseg_core.data.xca import xca_dataloaders
from medseg_core.evaluation import evaluate
from medseg_core.experiments import train

# Every generator option at the value the study tries, one scoring set each; "realistic" has them all.
OPTIONS: dict[str, dict[str, Any]] = {
    "guide_wire": {"xca.guide_wire": 0.5},
    "sternal_wires": {"xca.sternal_wires": 0.3},
    "spine": {"xca.spine": 0.7},
    "lung_texture": {"xca.lung_texture": 0.08},
    "foreshortening": {"xca.foreshortening": 0.35},
    "noise_blur": {"xca.electronic_noise": 8.0, "xca.detector_blur": 2.0},
}
GENERATOR_OPTIONS = tuple(OPTIONS)
SCORING_SETS: dict[str, dict[str, Any]] = {
    "plain": {},
    **{f"+{name}": overrides for name, overrides in OPTIONS.items()},
    "realistic": {key: value for overrides in OPTIONS.values() for key, value in overrides.items()},
}
RECIPE = RECIPES["xca-for-real"]
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "xca-for-real": RECIPE,
    "xca-for-real/input_norm=none": {**RECIPE, "xca.input_norm": "none"},
    "xca-for-real/display_augment=false": {**RECIPE, "xca.display_augment": False},
    "plain+input_norm=local": {"xca.input_norm": "local"},
}
# A cpu-profile training in float32 on random 64² crops of the 128² frames (12 training videos, 40 epochs: about
# 480 steps of batch 4, a 64² step each; the cpu profile's own run is 24 epochs of whole 128² frames).
BUDGET = {"svsnet.amp": False, "xca.train_crop": 64, "svsnet.epochs": 40, "svsnet.val_every": 10,
          "svsnet.save_every": 40}
EVAL_SEED, EVAL_VIDEOS = 1000, 6


def realism_of(overrides: dict[str, Any]) -> dict[str, float]:
    """The generator's realism settings in a variant's overrides (``xca.<field>`` of Realism)."""
    return {key[4:]: float(value) for key, value in overrides.items() if key[4:] in REALISM_RANGES}


def morphology_study(runs: int) -> pd.DataFrame:
    """Fraction of masks inside the real 5-95 % range per statistic, per mask-changing option."""
    reference = reference_range(morphology_table(load_real_xca_masks()))
    rows = []
    plain = [simulate_sequence(video_seed(0, index), 512, 6).masks[5] for index in range(runs)]
    for name in ("plain", *GENERATOR_OPTIONS):
        realism = Realism(**realism_of(OPTIONS.get(name, {})))
        masks = plain if name == "plain" else [
            simulate_sequence(video_seed(0, index), 512, 6, realism=realism).masks[5] for index in range(runs)]
        if name != "plain":
            if all(np.array_equal(a, b) for a, b in zip(masks, plain)):
                rows.append({"option": name, "masks": "unchanged"})
                continue
        table = morphology_table(masks)
        inside = fraction_inside(table, reference)
        rows.append({"option": name, "masks": "changed" if name != "plain" else "-",
                     "all_inside": float(((table[list(reference.index)] >= reference.iloc[:, 0])
                                          & (table[list(reference.index)] <= reference.iloc[:, -1])).all(axis=1).mean()),
                     "median_vessel_fraction": float(table["vessel_fraction"].median()),
                     **{f"in_{statistic}": float(inside[statistic]) for statistic in STATISTICS}})
    return pd.DataFrame(rows)


def evaluation_sets(out: Path, image_size: int, frames: int) -> dict[str, Path]:
    """Validation videos of every scoring set's generator, seed :data:`EVAL_SEED` (no training video)."""
    roots = {}
    for name, overrides in SCORING_SETS.items():
        realism = realism_of(overrides)
        root = out / "eval" / f"{image_size}_{name.strip('+')}"
        write_xca_dataset(root, image_size=image_size, num_train_videos=0, num_val_videos=EVAL_VIDEOS,
                          num_test_videos=0, frames_per_video=frames, label_every=5, seed=EVAL_SEED, realism=realism)
        roots[name] = root
    return roots


def training_study(out: Path, variants: list[str], seeds: list[int]) -> pd.DataFrame:
    rows = []
    for variant in variants:
        for seed in seeds:
            folder = variant.replace("/", "_").replace("=", "-").replace("+", "_")
            profile = get_profile("cpu", {**BUDGET, **VARIANTS[variant], "paths.data": str(out / "data"),
                                          "paths.runs": str(out / "runs"), "name": f"realism_{folder}"})
            roots = evaluation_sets(out, profile.xca.image_size, profile.xca.frames_per_video)
            start = time.perf_counter()
            run = train("xca", profile, seed=seed, run_dir=out / "runs" / f"{folder}_seed{seed}", progress=False)
            minutes = (time.perf_counter() - start) / 60
            for scoring, root in roots.items():
                loader = xca_dataloaders(root, profile.xca, batch_size=4, splits=("val",))["val"]
                scores = evaluate(run.model, loader, metrics=("dice", "precision", "recall"))
                rows.append({"variant": variant, "seed": seed, "scored_on": scoring,
                             **{metric: float(scores[metric].mean()) for metric in ("dice", "precision", "recall")},
                             "frames": len(scores), "train_minutes": round(minutes, 2)})
            print(pd.DataFrame(rows[-len(roots):]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--morphology", action="store_true", help="the morphology table")
    parser.add_argument("--runs", type=int, default=30, help="simulated 512² runs per option (morphology)")
    parser.add_argument("--train", action="store_true", help="the training table")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/xca_realism"))
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    args = parser.parse_args()
    if args.list:
        for name, overrides in VARIANTS.items():
            print(f"{name:18s} {overrides}")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; training budget {BUDGET}", flush=True)
    if args.morphology:
        table = morphology_study(args.runs)
        table.to_csv(args.out / "morphology.csv", index=False)
        print(table.to_string(index=False, float_format="%.3f"), flush=True)
    if args.train:
        table = training_study(args.out, args.variants, args.seeds)
        path = args.out / "training.csv"
        table.to_csv(path, mode="a", header=not path.exists(), index=False)
        for metric in ("dice", "precision"):
            wide = table.pivot_table(index="scored_on", columns=["variant", "seed"], values=metric, sort=False)
            print(f"\n{metric}\n" + wide.to_string(float_format="%.3f"))


if __name__ == "__main__":
    main()
