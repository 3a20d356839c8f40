"""Lever study for the ``real-oct`` recipe: each configuration trained on the real pullback, VALIDATION scores only.

Every configuration (:data:`CONFIGS`) is the ``real-oct`` recipe (``medseg_core.config.RECIPES``) with a few
overrides, trained with :func:`medseg_core.experiments.train` on the 122 real frames of one pullback (the kit's
sample + the optional pullback, linked by :func:`medseg_core.data.oct.real_pullback_folder`). Each trained run is
scored on the validation block only (frames 001-031), without and with flip TTA, three ways: the plain rule
(p > 0.5), the false-alarm rule fitted on all validation frames (:func:`medseg_core.evaluation.fit_false_alarm_rule`,
in-sample: optimistic) and the same rule fitted leave-one-frame-out (each frame scored by a rule fitted on the
others: what the selection reads). Reported: plaque-frame Dice (mean over validation frames with lipid), false
alarms (validation frames without lipid with any predicted lipid), minutes of training and validation. Polar
configurations are scored in the Cartesian frame. The test block is never scored by a study run: the recipe's rule
is "best validation wins, the test block is scored once after the choice" (``--score-test-once``, which refuses a
second scoring of a configuration). Scores come from ONE patient: not patient-independent. Docs: docs/real_oct.md.

    OMP_NUM_THREADS=1 MEDSEG_OCT_PULLBACK=/path/to/oct_zenodo_pullback \\
        python benchmarks/real_oct_levers.py --configs recipe unet --seeds 0 1 2      # float32
    python benchmarks/real_oct_levers.py --configs recipe --seeds 0 --bf16             # bfloat16 autocast
    python benchmarks/real_oct_levers.py --table-only --ensemble recipe unet           # + seed-ensemble rows
    python benchmarks/real_oct_levers.py --score-test-once recipe --seeds 0 1 2 --tta  # AFTER the choice, once
    python benchmarks/real_oct_levers.py --list                                         # the configurations

Rows are appended to ``--csv`` (one per configuration, seed, TTA and scoring; a finished run is read again, not
retrained), so a study can be run in pieces; ``--table-only`` prints every row so far and the per-configuration
summary (:func:`summary`).
"""
from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from medseg_core.config import get_profile, real_data_path
from medseg_core.data.oct import oct_dataloaders, real_pullback_folder
from medseg_core.data.synthetic_oct import scan_convert
from medseg_core.evaluation import FalseAlarmRule, fit_false_alarm_rule, foreground_probabilities, score_frames
from medseg_core.experiments import train

CONFIGS: dict[str, dict[str, Any]] = {
    # name: {"overrides": dotted keys on top of the recipe, "model": registered model (default DeepLabV3+)}
    "recipe": {"overrides": {}},  # the real-oct recipe as committed
    "unet": {"overrides": {}, "model": "unet2d"},
    "size256": {"overrides": {"oct.image_size": 256}},
    "classweight": {"overrides": {"oct.class_weights": (1.0, 3.0)}},
    "polar": {"overrides": {"oct.polar": True}},  # the recipe's rotation=180 is then a theta roll
}
"""The configurations of the study, by name."""

DEFAULT_CSV = Path(__file__).parent / "results" / "real_oct_levers.csv"
TABLE_COLUMNS = ["config", "seed", "precision", "tta", "scoring", "val_plaque_dice", "val_plaque_frames",
                 "val_false_alarms", "val_empty_frames", "rule", "best_epoch", "minutes"]


def links_folder(pullback: Path | None) -> Path:
    """The flat folder of links to the 122 real frames (sample + pullback), made once under the kit's runs."""
    from medseg_core.config import Paths

    sources = [real_data_path("oct_zenodo_sample"), pullback or real_data_path("oct_zenodo_pullback")]
    return real_pullback_folder(Paths().runs / "real_oct_levers" / "data", sources)


def run_config(name: str, seed: int, data: Path, amp: bool, out: Path, epochs: int | None = None
               ) -> list[dict[str, Any]]:
    """Train one configuration (or reuse its finished run) and score its best checkpoint on the validation block,
    without and with flip TTA; the validation probabilities are kept beside the run for :func:`ensemble_rows`."""
    spec = CONFIGS[name]
    overrides = {**spec["overrides"], "deeplab.amp": amp, "deeplab.epochs": epochs}  # None keeps the recipe's
    profile = get_profile("cpu", overrides, recipe="real-oct")
    precision = "bf16-autocast" if amp and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    run_dir = out / f"{name}_{precision}_seed{seed}"
    run = train("oct", profile, model_name=spec.get("model"), seed=seed, run_dir=run_dir, data_root=data,
                progress=False)
    history = run.history
    minutes = history["time_s"].sum() / 60  # training and validation, also for a finished run read again
    history.to_csv(run_dir / "history_levers.csv", index=False)
    common = {"config": name, "seed": seed, "precision": precision, "minutes": round(minutes, 2),
              "best_epoch": int(history.loc[history["val_dice"].idxmax(), "epoch"]),
              "val_dice_per_epoch": " ".join(f"{v:.3f}" for v in history["val_dice"].fillna(-1))}
    rows = []
    for tta in (False, True):  # flip test-time augmentation is a scoring choice: the same weights
        frames = foreground_probabilities(run.model, run.loaders["val"], tta=_flips(tta, profile))
        if profile.oct.polar:  # scored in the Cartesian frame, as every other configuration
            frames = cartesian_frames(frames, profile, data)
        np.savez_compressed(run_dir / f"val_probabilities{'_tta' if tta else ''}.npz", **frames)  # for --ensemble
        rows += _score_rows(frames, {**common, "tta": tta})
    return rows


def _flips(tta: bool, profile: Any) -> bool | tuple[tuple[int, ...], ...]:
    """The TTA flips of a configuration: all four in Cartesian frames, the angle mirror alone in polar ones."""
    return ((), (-2,)) if tta and profile.oct.polar else tta


def cartesian_frames(frames: dict, profile: Any, data: Path, split: str = "val") -> dict:
    """Polar validation probabilities mapped back to the Cartesian frame (:func:`scan_convert`), with the
    Cartesian truths of the same frames (a Cartesian validation loader of the same split)."""
    cartesian = oct_dataloaders(data, replace(profile.oct, polar=False, augment=False), batch_size=4,
                                split_seed=profile.oct.seed)[split]
    truths = {case_id: mask for batch in cartesian for case_id, mask in zip(batch["id"], batch["mask"].numpy())}
    side = profile.oct.image_size
    return {"id": frames["id"],
            "probability": np.stack([scan_convert(p, side, order=1) for p in frames["probability"]]),
            "truth": np.stack([truths[case_id] > 0 for case_id in frames["id"]])}


def leave_one_out_scores(probabilities: np.ndarray, truths: np.ndarray) -> pd.DataFrame:
    """Each validation frame scored by the false-alarm rule fitted on the OTHER validation frames: an honest
    estimate of what the fitted rule does on frames it was not fitted on."""
    rows = []
    for i in range(len(probabilities)):
        others = np.arange(len(probabilities)) != i
        rule = fit_false_alarm_rule(probabilities[others], truths[others])
        rows.append(score_frames(probabilities[i:i + 1], truths[i:i + 1], rule).assign(
            rule=f"p>{rule.threshold:.2f}, area>={rule.min_area}"))
    return pd.concat(rows, ignore_index=True)


def _score_rows(frames: dict, common: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the plain rule (p > 0.5, the argmax of two classes), the false-alarm rule fitted on all validation
    frames (in-sample) and the same rule fitted leave-one-frame-out (each frame scored by a rule it did not fit)."""
    probabilities, truths = frames["probability"], frames["truth"]
    rule = fit_false_alarm_rule(probabilities, truths)
    scorings = {"p>0.5": (score_frames(probabilities, truths), "p>0.50, area>=1"),
                "fitted rule (in-sample)": (score_frames(probabilities, truths, rule),
                                            f"p>{rule.threshold:.2f}, area>={rule.min_area}"),
                "fitted rule (leave-one-out)": (leave_one_out_scores(probabilities, truths), "refitted per frame")}
    rows = []
    for scoring, (scores, described) in scorings.items():
        plaque = scores[scores["truth_pixels"] > 0]
        empty = scores[scores["truth_pixels"] == 0]
        rows.append({**common, "scoring": scoring, "val_plaque_dice": round(float(plaque["dice"].mean()), 3),
                     "val_plaque_frames": len(plaque), "val_false_alarms": int((empty["predicted_pixels"] > 0).sum()),
                     "val_empty_frames": len(empty), "rule": described})
    return rows


def ensemble_rows(name: str, out: Path, precision: str) -> list[dict[str, Any]]:
    """Rows for the mean validation probability of every trained seed of configuration ``name``."""
    rows = []
    for tta in (False, True):
        files = sorted(out.glob(f"{name}_{precision}_seed*/val_probabilities{'_tta' if tta else ''}.npz"))
        if len(files) < 2:
            raise SystemExit(f"--ensemble {name}: {len(files)} trained seeds in {out}; train at least two first")
        loaded = [np.load(path) for path in files]
        frames = {"probability": np.mean([f["probability"] for f in loaded], axis=0), "truth": loaded[0]["truth"]}
        seeds = "+".join(path.parent.name.rsplit("seed", 1)[1] for path in files)
        rows += _score_rows(frames, {"config": f"{name} ensemble", "seed": seeds, "precision": precision,
                                     "tta": tta, "minutes": np.nan, "best_epoch": np.nan, "val_dice_per_epoch": ""})
    return rows


def score_test_block_once(name: str, seeds: list[int], tta: bool, data: Path, amp: bool, out: Path,
                          csv: Path, epochs: int | None = None) -> pd.DataFrame:
    """The chosen configuration on the DEVELOPMENT test block (frames 110-133), once: each trained seed, and with
    several seeds their averaged probabilities (the seed ensemble), each with the false-alarm rule fitted on that
    model's validation frames only, then applied to the test frames. Refuses a second scoring of the same
    configuration (``csv`` remembers)."""
    if csv.exists() and (pd.read_csv(csv)["config"] == name).any():
        raise SystemExit(f"{name} was already scored on the test block ({csv}): the rule is one scoring, after the "
                         "choice")
    spec, models = CONFIGS[name], {}
    precision = "bf16-autocast" if amp and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    for seed in seeds:  # finished runs are read again, not retrained
        profile = get_profile("cpu", {**spec["overrides"], "deeplab.amp": amp, "deeplab.epochs": epochs},
                              recipe="real-oct")
        run = train("oct", profile, model_name=spec.get("model"), seed=seed,
                    run_dir=out / f"{name}_{precision}_seed{seed}", data_root=data, progress=False)
        models[str(seed)] = {}
        for split in ("val", "test"):
            predicted = foreground_probabilities(run.model, run.loaders[split], tta=_flips(tta, profile))
            models[str(seed)][split] = (cartesian_frames(predicted, profile, data, split) if profile.oct.polar
                                        else predicted)
    if len(seeds) > 1:
        models["+".join(map(str, seeds)) + " (ensemble)"] = {
            split: {"probability": np.mean([m[split]["probability"] for m in list(models.values())], axis=0),
                    "truth": models[str(seeds[0])][split]["truth"], "id": models[str(seeds[0])][split]["id"]}
            for split in ("val", "test")}
    rows = []
    for label, frames in models.items():
        rule = fit_false_alarm_rule(frames["val"]["probability"], frames["val"]["truth"])
        for scoring, params in (("p>0.5", FalseAlarmRule()), ("rule fitted on validation", rule)):
            scores = score_frames(frames["test"]["probability"], frames["test"]["truth"], params,
                                  ids=frames["test"]["id"])
            plaque, empty = scores[scores["truth_pixels"] > 0], scores[scores["truth_pixels"] == 0]
            rows.append({"config": name, "seed": label, "precision": precision, "tta": tta, "scoring": scoring,
                         "rule": f"p>{params.threshold:.2f}, area>={params.min_area}",
                         "test_plaque_dice": round(float(plaque["dice"].mean()), 3),
                         "test_plaque_dice_median": round(float(plaque["dice"].median()), 3),
                         "test_plaque_frames": len(plaque),
                         "test_false_alarms": int((empty["predicted_pixels"] > 0).sum()),
                         "test_empty_frames": len(empty), "machine": _machine()})
    table = pd.DataFrame(rows)
    table.to_csv(csv, mode="a", header=not csv.exists(), index=False)
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, precision and TTA: each scoring's plaque-frame Dice and false alarms as the mean
    over seeds with the per-seed values, and the minutes per run (the table the selection rule reads)."""
    table = table.drop_duplicates(["config", "seed", "precision", "tta", "scoring"], keep="last")
    table = table.sort_values("seed", key=lambda seeds: seeds.astype(str), kind="stable")
    rows = []
    for (config, precision, tta), group in table.groupby(["config", "precision", "tta"], sort=False):
        row = {"config": config, "precision": precision, "tta": tta,
               "seeds": " ".join(str(s) for s in group["seed"].unique())}
        for scoring, short in (("p>0.5", "plain"), ("fitted rule (leave-one-out)", "rule LOO")):
            picked = group[group["scoring"] == scoring]
            row[f"Dice {short}"] = f"{picked['val_plaque_dice'].mean():.3f} ({' '.join(f'{v:.2f}' for v in picked['val_plaque_dice'])})"
            row[f"false alarms {short}"] = " ".join(f"{v}/{e}" for v, e in zip(picked["val_false_alarms"],
                                                                               picked["val_empty_frames"]))
        row["minutes"] = " ".join(f"{m:.1f}" for m in group.drop_duplicates("seed")["minutes"] if m == m)
        rows.append(row)
    order = {name: i for i, name in enumerate(CONFIGS)}
    rows.sort(key=lambda row: (order.get(row["config"].split()[0], len(order)), row["config"],
                               row["precision"] != "float32", row["tta"]))
    return pd.DataFrame(rows)


def _machine() -> str:
    """The CPU model (from /proc/cpuinfo where there is one), native bf16 or not, and torch's threads."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.exists() else []
    bf16 = "native bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "no native bf16"
    return f"{names[0] if names else platform.machine()}, {bf16}, {torch.get_num_threads()} thread(s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["recipe"], help=f"of {', '.join(CONFIGS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (the profile's default where the CPU "
                                                            "has native bf16); default float32")
    parser.add_argument("--pullback", type=Path, default=None, help="the 111-frame pullback folder (default: "
                                                                     "$MEDSEG_OCT_PULLBACK)")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--runs", type=Path, default=None, help="run folders (default runs/real_oct_levers)")
    parser.add_argument("--ensemble", nargs="+", default=[], help="configurations whose trained seeds' validation "
                                                                   "probabilities are averaged into one more row")
    parser.add_argument("--score-test-once", metavar="CONFIG", default=None,
                        help="AFTER the choice: score CONFIG's trained --seeds (averaged) on the development test "
                             "block, the false-alarm rule fitted on validation; once per configuration")
    parser.add_argument("--tta", action="store_true", help="with --score-test-once: flip TTA")
    parser.add_argument("--test-csv", type=Path, default=DEFAULT_CSV.with_name("real_oct_test_block.csv"))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (a smoke run)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in CONFIGS.items():
            print(f"{name}: {spec}")
        return 0
    unknown = [name for name in args.configs if name not in CONFIGS]
    if unknown:
        print(f"unknown configuration(s) {unknown}; valid: {', '.join(CONFIGS)}", file=sys.stderr)
        return 2
    from medseg_core.config import Paths

    out = args.runs or Paths().runs / "real_oct_levers"
    precision = "bf16-autocast" if args.bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    def write(rows: list[dict[str, Any]]) -> None:  # each run's rows as soon as they exist
        table = pd.DataFrame(rows).assign(machine=_machine(), torch=torch.__version__)
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        if args.csv.exists():  # the columns in the file's order
            table = table.reindex(columns=pd.read_csv(args.csv, nrows=0).columns)
        table.to_csv(args.csv, mode="a", header=not args.csv.exists(), index=False)

    if args.score_test_once:
        if args.score_test_once not in CONFIGS:
            print(f"unknown configuration {args.score_test_once!r}; valid: {', '.join(CONFIGS)}", file=sys.stderr)
            return 2
        table = score_test_block_once(args.score_test_once, args.seeds, args.tta, links_folder(args.pullback),
                                      args.bf16, out, args.test_csv, args.epochs)
        print("DEVELOPMENT test block (frames 110-133, looked at while the recipe was first developed; one patient):")
        print(table.drop(columns="machine").to_string(index=False))
        return 0
    if not args.table_only:
        data = links_folder(args.pullback)
        for name in args.configs:
            for seed in args.seeds:
                write(run_config(name, seed, data, args.bf16, out, args.epochs))
    for name in args.ensemble:
        write(ensemble_rows(name, out, precision))
    if args.csv.exists():
        table = pd.read_csv(args.csv)
        print("\nVALIDATION block only (frames 001-031, one patient: not patient-independent):")
        print(table[TABLE_COLUMNS].to_string(index=False))
        print("\nPer configuration (mean over seeds, each seed in brackets):")
        print(summary(table).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
