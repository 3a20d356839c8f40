"""``medseg``: the kit's command line (``medseg --help``).

Subcommands are thin: each parses arguments and calls one library function, so everything the CLI does is
also one call away in a notebook.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main"]


def _parse_overrides(items: Sequence[str]) -> dict[str, object]:
    """``["svsnet.epochs=3", "xca.image_size=128"]`` -> dict with JSON-decoded values (strings as-is)."""
    overrides: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
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


def build_parser() -> argparse.ArgumentParser:
    """The ``medseg`` argument parser."""
    parser = argparse.ArgumentParser(prog="medseg", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    notebooks = commands.add_parser("notebooks", help="run the numbered notebooks headless with papermill")
    notebooks.add_argument("--profile", default="smoke", help="smoke | cpu | paper (default: smoke)")
    notebooks.add_argument("--only", nargs="*", help="notebook numbers or names, e.g. 00 02")
    notebooks.add_argument("--output-dir", type=Path, help="executed notebooks (default outputs/notebooks/<profile>)")
    notebooks.add_argument("--figures-dir", type=Path, help="figures (default <output-dir>/figures)")
    notebooks.set_defaults(func=_cmd_notebooks)

    models = commands.add_parser("models", help="list registered models")
    models.set_defaults(func=_cmd_models)

    profiles = commands.add_parser("profiles", help="list profiles, or show one as JSON")
    profiles.add_argument("name", nargs="?")
    profiles.set_defaults(func=_cmd_profiles)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
