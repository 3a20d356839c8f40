"""``medseg``: the kit's command line (``medseg --help``).

Subcommands are thin: each parses arguments and calls one library function, so everything the CLI does is
also one call away in a notebook. A user error (:class:`medseg_core.errors.KitError`: an unknown name, a bad
value, unusable data) is printed as one line, ``medseg: error: ...``, with exit code 2, as argparse does for
its own errors; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "parse_overrides"]


def parse_overrides(items: Sequence[str]) -> dict[str, object]:
    """``["svsnet.epochs=3", "xca.image_size=128"]`` -> dict with JSON-decoded values (strings as-is)."""
    from .errors import ConfigError

    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set and --model-arg expect KEY=VALUE, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from .notebooks import NotebookError, run_notebooks

    try:
        table = run_notebooks(args.profile, args.output_dir, only=args.only, figures_dir=args.figures_dir)
    except NotebookError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table.to_string(index=False))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from .config import get_profile, list_profiles

    if args.name:
        print(json.dumps(get_profile(args.name).to_dict(), indent=2))
    else:
        print("\n".join(list_profiles()))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """Train; under ``torchrun`` every process runs this, and rank 0 alone deletes, evaluates and prints."""
    from .runtime import cleanup_distributed, init_distributed

    init_distributed()
    try:
        return _train(args)
    finally:
        cleanup_distributed()


def _run_request(args: argparse.Namespace) -> tuple[Any, Any, str, dict[str, object], int, Path | None,
                                                    Path | None, dict[str, object]]:
    """What ``medseg train`` trains: ``(task, profile, model name, model arguments, seed, data, init checkpoint,
    origin)`` from the options, or from a run's ``config.json`` (``--config``) with ``--set`` on top."""
    from .config import get_profile
    from .errors import ConfigError
    from .files import file_digest, folder_fingerprint
    from .run_config import profile_from_record, read_run_config
    from .tasks import get_task

    overrides = parse_overrides(args.set)
    if args.config is None:
        task = get_task(args.task or "xca")
        if args.format is not None:
            if task.name != "xca" or args.data is None:
                raise ConfigError("--format names the layout of --data for --task xca (medseg_core.data.public)")
            overrides["xca.data_format"] = args.format
        profile = get_profile(args.profile or "cpu", overrides, recipe=args.recipe, none_keeps=False)
        origin = {"profile": args.profile or "cpu", "recipe": args.recipe, "overrides": overrides}
        return (task, profile, task.model_for(profile, args.model), parse_overrides(args.model_arg),
                0 if args.seed is None else args.seed, args.data, args.init_from, origin)
    fixed = [option for option, value in (("--task", args.task), ("--model", args.model), ("--profile", args.profile),
                                          ("--recipe", args.recipe), ("--format", args.format), ("--seed", args.seed),
                                          ("--init-from", args.init_from), ("--model-arg", args.model_arg or None))
             if value is not None]
    if fixed:
        raise ConfigError(f"--config {args.config} holds the run's task, model, profile, recipe, seed and starting "
                          f"weights, which {', '.join(fixed)} would change: --set changes settings on top of it, "
                          "--data and --out say where the data and the new run are")
    record = read_run_config(args.config)
    task, profile = get_task(record["task"]), profile_from_record(record, overrides, f"--config {args.config}")
    data = args.data if args.data is not None else (Path(record["data"]) if record["data"] else None)
    if args.data is None and data is not None and not data.is_dir():
        raise ConfigError(f"--config {args.config}: the run's data folder {data} is not here; pass --data with the "
                          "folder where it is now")
    if data is not None and record.get("data_id") and folder_fingerprint(data) != record["data_id"]:
        warnings.warn(f"the data in {data} differs from the data the run of {args.config} was trained on (files "
                      "added, removed or resized): the new run trains on other data", UserWarning, stacklevel=2)
    init = record["init_from"]
    init_from = Path(init["path"]) if init else None
    if init_from is not None and (not init_from.is_file() or file_digest(init_from) != init["sha256"]):
        raise ConfigError(f"--config {args.config}: the run started from the weights of {init_from}, which "
                          f"{'is no longer there' if not init_from.is_file() else 'has changed since'}; restore "
                          "that checkpoint to train the run again")
    origin = {"profile": record["profile"], "recipe": record.get("recipe"),
              "overrides": {**(record.get("overrides") or {}), **overrides}}
    return (task, profile, record["model"]["name"], dict(record["model"]["args"]), int(record["seed"]), data,
            init_from, origin)


def _train(args: argparse.Namespace) -> int:
    import time

    from .data.cache import check_complete
    from .errors import ConfigError
    from .experiments import RunSpec
    from .run_folder import BEST_FILE, CONFIG_FILE, LAST_FILE
    from .runtime import is_main_process
    from .stats import foreground_split, summarize

    task, profile, model_name, model_kwargs, seed, data, init_from, origin = _run_request(args)
    task.check_model_args(profile, model_name, model_kwargs)  # unknown, unsuitable or unbuildable: fail before work
    if data is not None and not data.is_dir():
        raise ConfigError(f"--data {data}: no such folder")
    if data is not None:
        check_complete(data)  # before the run folder is made
        if task.name == "xca":
            task.read_frames(profile, data)  # so is a folder in no known layout
    if init_from is not None and not init_from.is_file():
        raise ConfigError(f"--init-from {init_from}: no such checkpoint (the {BEST_FILE} or {LAST_FILE} of a run)")
    spec = RunSpec.resolve(task, profile, model_name=model_name, model_args=model_kwargs, seed=seed, run_dir=args.out,
                           data_root=data, init_from=init_from)
    if args.restart:
        results = [path.name for path in spec.folder.training_files if path.exists()]
        if results and not args.overwrite:
            raise ConfigError(f"--restart would replace {', '.join(results)} in {spec.folder.path}; add --overwrite "
                              "to start again on purpose, or choose another --out")
    if is_main_process():
        with spec.folder.lock():  # in use by another training: refused now, not after generating data
            pass
    start = time.perf_counter()
    run = spec.train(resume=not args.restart, origin=origin)  # restart: under the lock
    seconds = time.perf_counter() - start
    if not is_main_process():
        return 0
    print(run.history.round(4).to_string(index=False))
    if "test" in run.loaders:
        results = run.evaluate("test")
        spec.write_results(results, run.model, seconds)
        foreground = results[results["truth_pixels"] > 0]
        print(f"\ntest metrics on the {len(foreground)} of {len(results)} cases with foreground (intervals resample "
              "whole videos or patients, none below 5):")
        if len(foreground):
            print(summarize(foreground, cluster="cluster").round(4).to_string())
        for row in foreground_split(results, metrics=()).to_dict("records"):  # the kit's false-alarm rule, per class
            if row["empty_frames"]:
                print(f"false alarms ({row['class']}): {round(row['false_alarm_rate'] * row['empty_frames'])} of the "
                      f"{row['empty_frames']} cases without foreground have predicted pixels")
    print(f"\ncheckpoints and {CONFIG_FILE} (the run's settings; medseg train --config trains it again): "
          f"{run.run_dir}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .inference import predict_folder

    table = predict_folder(args.checkpoint, args.input, args.output, threshold=args.threshold, device=args.device,
                           overwrite=args.overwrite, overlays=not args.no_overlays, batch_size=args.batch_size)
    output = args.output.resolve()  # where predict_folder wrote them
    print(table.attrs["checkpoint"])
    print(f"{len(table)} masks in {output / 'masks'}"
          + ("" if args.no_overlays else f", overlays in {output / 'overlays'}")
          + " (palette PNGs: pixel values are class indices, shown in colour; paths in predictions.csv)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_checkpoint

    written = export_checkpoint(args.checkpoint, args.output, onnx=args.onnx, overwrite=args.overwrite,
                                threshold=args.threshold)
    def size(path: Path) -> str:
        return f"{path.stat().st_size / 1e6:.1f} MB" if path.stat().st_size >= 1e5 else f"{path.stat().st_size / 1e3:.1f} kB"

    for name, path in written.items():
        print(f"{path} ({size(path)}" + (f"; the checkpoint with its resume state: {size(args.checkpoint)})"
                                         if name == "model.pt" else ")"))
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .data.oct import prepare_lipid_dataset

    manifest = prepare_lipid_dataset(args.source, args.output, image_size=args.image_size, classes=tuple(args.classes),
                                     overwrite=args.overwrite)
    print(f"{len(manifest)} frames written to {args.output} (manifest.csv)")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from .config import get_profile
    from .tasks import get_task

    profile = get_profile(args.profile, parse_overrides(args.set), none_keeps=False)
    print(get_task(args.task).make_data(profile, overwrite=args.overwrite))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .folder_evaluation import evaluate_folder

    result = evaluate_folder(args.checkpoint, args.data, args.output, format=args.format, split=args.split,
                             threshold=args.threshold, batch_size=args.batch_size, device=args.device)
    meta = result.metadata
    print(f"{meta['model']} on {meta['frames_scored']} {meta['data']['format']} frames ({meta['split']} split, "
          f"{meta['runs_scored']} runs){'; one-frame videos: windows repeat the frame' * meta['data']['single_frame']}")
    if meta["classical_fit"]:
        print(f"threshold fitted on {meta['classical_fit']['fitted_on']}: {meta['classical_fit']['threshold']}")
    if not result.summary.empty:
        print(result.summary.round(4).to_string())
    if meta["challenge_metric"]:
        print(f"{meta['challenge_metric']['name']}: {meta['challenge_metric']['value']:.4f}")
    print(f"tables, overlays and evaluation.json in {result.output}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    from .data.download import DownloadError, download_public_dataset, public_dataset

    entry = public_dataset(args.name)
    print(f"{entry.name}: {entry.url}\nlicence: {entry.licence}\ncite: {entry.citation}")
    try:
        download_public_dataset(args.name, args.dest)
    except DownloadError as error:
        print(f"medseg: error: {error}", file=sys.stderr)
        return 2
    print(f"unpacked into {args.dest}; next: {entry.next_step.format(dest=args.dest)}")
    return 0


def _cmd_cv(args: argparse.Namespace) -> int:
    from .config import get_profile
    from .cross_validation import cross_validate

    if not args.data.is_dir():
        from .errors import ConfigError

        raise ConfigError(f"--data {args.data}: no such folder")
    profile = get_profile(args.profile, parse_overrides(args.set), none_keeps=False)
    result = cross_validate(args.data, profile, task=args.task, folds=args.folds, model_name=args.model,
                            model_kwargs=parse_overrides(args.model_arg), seed=args.seed, out_dir=args.out)
    print(result.folds[["fold", "class", "foreground_frames", "dice", "empty_frames", "false_alarm_rate"]]
          .round(4).to_string(index=False))
    print(result.summary.drop(columns="published_conditions").round(4).to_string(index=False))
    for row in result.summary.to_dict("records"):
        if row["published_conditions"]:
            print(f"published {row['class']} Dice: {row['published_dice']} ({row['published_conditions']}); "
                  "other model, data and budget")
    print(f"tables and fold runs in {result.out_dir}")
    return 0


def _add_real_data_commands(commands: argparse._SubParsersAction) -> None:
    """``medseg evaluate``, ``download`` and ``cv``: scoring on, fetching and cross-validating on public data."""
    from .data.public import FORMATS
    from .run_folder import BEST_FILE, LAST_FILE

    evaluate = commands.add_parser("evaluate", help="score a checkpoint (or tophat/frangi) on a labelled folder")
    evaluate.add_argument("--checkpoint", required=True,
                          help=f"{BEST_FILE}/{LAST_FILE} of an XCA run, or tophat | frangi")
    evaluate.add_argument("--data", type=Path, required=True, help="labelled angiography folder")
    evaluate.add_argument("--format", choices=FORMATS, help="its layout (default: detected)")
    evaluate.add_argument("--output", type=Path, required=True, help="new folder for tables and overlays")
    evaluate.add_argument("--split", help="train | val | test | all (default: test if present, else all)")
    evaluate.add_argument("--threshold", type=float, default=0.5, help="probability threshold of networks")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--device", default="auto")
    evaluate.set_defaults(func=_cmd_evaluate)
    download = commands.add_parser("download", help="download a public data set whose licence allows it")
    download.add_argument("name", help="arcade")
    download.add_argument("--dest", type=Path, default=Path("data/real"), help="folder (default data/real)")
    download.set_defaults(func=_cmd_download)
    cv = commands.add_parser("cv", help="k-fold cross-validation on the OCT dataset's released patient folds")
    cv.add_argument("--task", default="oct", help="oct (the data set with released folds)")
    cv.add_argument("--data", type=Path, required=True, help="fold_k/{train,test}/{img,mask} root")
    cv.add_argument("--folds", type=int, default=5)
    cv.add_argument("--model", help="registered model (default deeplabv3plus)")
    cv.add_argument("--profile", default="cpu", help="smoke | cpu | paper (default: cpu)")
    cv.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="profile overrides")
    cv.add_argument("--model-arg", nargs="*", default=[], metavar="KEY=VALUE")
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument("--out", type=Path, help="default runs/<profile>/oct_cv_<model>_seed<seed>")
    cv.set_defaults(func=_cmd_cv)


def _cmd_check_figures(args: argparse.Namespace) -> int:
    from .provenance import compare_tables

    table = compare_tables(args.fresh, args.committed, tolerance=args.tolerance)
    moved = table[~table["within"]]
    print(f"{len(table) - len(moved)} of {len(table)} table columns within {args.tolerance} of the committed run")
    if not moved.empty:
        print(moved.to_string(index=False))
    return 1 if len(moved) else 0


def _cmd_report(args: argparse.Namespace) -> int:
    """Rewrite (or, with --check, compare) the generated blocks of markdown files from the figures' tables."""
    from .config import get_profile
    from .errors import ConfigError
    from .reports import render, stale_blocks

    figures = args.figures or get_profile("cpu").paths.figures
    stale = 0
    for path in args.files:
        if not path.is_file():
            raise ConfigError(f"no markdown file at {path}")
        text = path.read_text(encoding="utf-8")
        if args.check:
            names = stale_blocks(text, figures)
            stale += len(names)
            print(f"{path}: " + (f"stale blocks {', '.join(names)}" if names else "every generated block in step"))
        else:
            path.write_text(render(text, figures), encoding="utf-8")
            print(f"{path}: generated blocks rewritten from {figures}")
    return 1 if stale else 0


def _installed_version() -> str:
    """The installed distribution's version (``pyproject.toml``), or a note when the kit runs uninstalled."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medseg-kit")
    except PackageNotFoundError:
        return "(not installed: run `make install` or `pip install -e .`)"


def build_parser() -> argparse.ArgumentParser:
    """The ``medseg`` argument parser."""
    from .data.public import FORMATS
    from .run_folder import BEST_FILE, CONFIG_FILE, LAST_FILE

    parser = argparse.ArgumentParser(prog="medseg", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    notebooks = commands.add_parser("notebooks", help="run the numbered notebooks headless with papermill")
    notebooks.add_argument("--profile", default="smoke", help="smoke | cpu | paper (default: smoke)")
    notebooks.add_argument("--only", nargs="*", help="notebook numbers or names, e.g. 00 02")
    notebooks.add_argument("--output-dir", type=Path, help="executed notebooks (default outputs/notebooks/<profile>)")
    notebooks.add_argument("--figures-dir", type=Path, help="figures (default <output-dir>/figures)")
    notebooks.set_defaults(func=_cmd_notebooks)

    train = commands.add_parser("train", help="train a model on a task (the reference implementations' `python train.py`)")
    train.add_argument("--config", type=Path, metavar="CONFIG_JSON",
                       help=f"train a run again from the {CONFIG_FILE} in its folder (with --out; --set and --data "
                            "may change settings and data)")
    train.add_argument("--task", help="xca: SVSnet vessels (default); oct: lipid plaque")
    train.add_argument("--model", help="registered model (default: svsnet for xca, deeplabv3plus for oct, or the "
                                       "recipe's oct.model)")
    train.add_argument("--profile", help="smoke | cpu | paper (default: cpu)")
    train.add_argument("--data", type=Path, help="data in the task's layout, or for xca any layout medseg evaluate "
                                                 "reads (default: generate synthetic data)")
    train.add_argument("--format", choices=FORMATS, help="xca: the layout of --data (default: detected); sets "
                                                         "xca.data_format")
    train.add_argument("--out", type=Path, help="run folder (default runs/<profile>/<task>_<model>_seed<seed>)")
    train.add_argument("--seed", type=int, help="seeds initialisation, data order and augmentation (default 0)")
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="profile overrides, e.g. deeplab.epochs=5 oct.image_size=256")
    train.add_argument("--model-arg", nargs="*", default=[], metavar="KEY=VALUE", help="model arguments, e.g. eca=none")
    train.add_argument("--recipe", help="named settings applied before --set (medseg_core.config.RECIPES), e.g. "
                                        "real-oct: lipid core on the real pullback; real-xca: SVSnet fine-tuned on "
                                        "real angiograms (with --init-from)")
    train.add_argument("--init-from", type=Path, metavar="CHECKPOINT",
                       help=f"start from the weights of a kit checkpoint (e.g. a synthetic run's {BEST_FILE})")
    train.add_argument("--restart", action="store_true",
                       help="start the run again instead of resuming (needs --overwrite if the folder holds results)")
    train.add_argument("--overwrite", action="store_true", help="with --restart: replace the run's checkpoints")
    train.set_defaults(func=_cmd_train)

    predict = commands.add_parser("predict", help="masks and overlays for a folder, an image, a video or a DICOM cine "
                                                  "(the reference implementations' `python predict.py`)")
    predict.add_argument("--checkpoint", type=Path, required=True, help=f"{BEST_FILE} or {LAST_FILE} of a run")
    predict.add_argument("--input", type=Path, required=True,
                         help="a folder (OCT images, or XCA video folders of numbered frames), one image, a video file "
                              "(.mp4, .avi, ...) or a DICOM file (a cine)")
    predict.add_argument("--output", type=Path, required=True)
    predict.add_argument("--threshold", type=float, default=0.5, help="probability threshold of binary models")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--overwrite", action="store_true", help="replace an earlier prediction in --output")
    predict.add_argument("--no-overlays", action="store_true", help="write masks only (faster)")
    predict.add_argument("--batch-size", type=int, default=8, help="XCA windows per forward pass")
    predict.set_defaults(func=_cmd_predict)

    export = commands.add_parser("export", help="a checkpoint's weights alone (model.pt), and with --onnx an ONNX model "
                                                "with its preprocessing (preprocessing.json)")
    export.add_argument("--checkpoint", type=Path, required=True, help=f"{BEST_FILE} or {LAST_FILE} of a run")
    export.add_argument("--output", type=Path, required=True, help="folder for model.pt (model.onnx, preprocessing.json)")
    export.add_argument("--onnx", action="store_true", help="also model.onnx (checked against PyTorch with onnxruntime)")
    export.add_argument("--threshold", type=float, default=0.5, help="probability threshold recorded for binary models")
    export.add_argument("--overwrite", action="store_true", help="replace an earlier export in --output")
    export.set_defaults(func=_cmd_export)

    prepare = commands.add_parser("prepare", help="write the OCT reference implementation's lipid-only derivative with a manifest")
    prepare.add_argument("--source", type=Path, required=True, help="OCT data (fold or flat layout)")
    prepare.add_argument("--output", type=Path, required=True)
    prepare.add_argument("--image-size", type=int, default=512)
    prepare.add_argument("--classes", nargs="+", default=["lipid_core"])
    prepare.add_argument("--overwrite", action="store_true",
                         help="replace an earlier derivative with other settings (only its own files)")
    prepare.set_defaults(func=_cmd_prepare)

    generate = commands.add_parser("generate", help="write a profile's synthetic dataset and print its folder")
    generate.add_argument("task", help="xca or oct")
    generate.add_argument("--profile", default="cpu")
    generate.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    generate.add_argument("--overwrite", action="store_true",
                          help="rewrite a damaged dataset (only the files the generator wrote)")
    generate.set_defaults(func=_cmd_generate)

    check = commands.add_parser("check-figures", help="compare a fresh run's tables with the committed ones")
    check.add_argument("fresh", type=Path, help="figures folder of a fresh run (e.g. outputs/notebooks/cpu/figures)")
    check.add_argument("--committed", type=Path, help="committed manifest or folder (default: figures/)")
    check.add_argument("--tolerance", type=float, default=0.02, help="largest absolute change accepted (default 0.02)")
    check.set_defaults(func=_cmd_check_figures)

    report = commands.add_parser("report", help="rewrite the generated result blocks of markdown files from figures/")
    report.add_argument("files", type=Path, nargs="+", help="markdown files, e.g. README.md docs/results.md")
    report.add_argument("--figures", type=Path, help="folder of the tables (default: the committed figures/)")
    report.add_argument("--check", action="store_true", help="only say which blocks differ (exit 1 if any)")
    report.set_defaults(func=_cmd_report)

    _add_real_data_commands(commands)

    models = commands.add_parser("models", help="list registered models")
    models.set_defaults(func=_cmd_models)

    profiles = commands.add_parser("profiles", help="list profiles, or show one as JSON")
    profiles.add_argument("name", nargs="?")
    profiles.set_defaults(func=_cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg`` console script; user errors end as one line on stderr with exit code 2."""
    from .errors import KitError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KitError as error:
        print(f"medseg: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medseg: interrupted; the last finished epoch is saved: resume with the same command", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
