"""The resolved settings of a training run, as a readable file: ``config.json`` in every run folder.

:class:`medseg_core.experiments.RunSpec` (``medseg train``, the notebooks, the grids) makes the record
(:func:`run_record`) and the :class:`~medseg_core.training.Trainer` writes it atomically into the run folder
(:meth:`RunFolder.write_config <medseg_core.run_folder.RunFolder.write_config>`) when a fit starts, after a resume was checked (a refused resume leaves the file as it was), and stores it in every
checkpoint (``run_config``). It holds:

* ``task``, ``profile`` (the name asked for), ``recipe`` and ``overrides`` (the ``--set`` values, decoded): how the
  run was asked for;
* ``settings``: the whole profile after the recipe and the overrides (every section, every field; not ``paths``,
  which belong to the machine), so the run does not depend on the kit's defaults staying as they were;
* ``model`` (name, the arguments given, and all constructor arguments as the task resolved them), ``seed``,
  ``data`` (the folder given, absolute; None: the profile's synthetic data, named in ``synthetic_data``),
  ``data_id`` (:func:`~medseg_core.files.folder_fingerprint`), ``init_from`` (the starting checkpoint and its
  digest) and the versions of the kit and of torch.

``medseg train --config runs/.../config.json`` trains that run again (:func:`read_run_config`,
:func:`profile_from_record`): the same task, model, seed, data and every setting.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping

from .config import Profile, get_profile, list_profiles
from .errors import ConfigError, KitError
from .run_folder import CONFIG_FILE

__all__ = ["RECORD_FORMAT", "profile_settings", "run_record", "read_run_config", "profile_from_record"]

RECORD_FORMAT = "medseg-kit run settings, version 1"
_MACHINE_FIELDS = ("paths",)  # Profile fields that belong to the machine, not to the run


def profile_settings(profile: Profile) -> dict[str, Any]:
    """Every field of ``profile`` but :data:`_MACHINE_FIELDS`, as JSON values (tuples as lists)."""
    settings = {key: value for key, value in profile.to_dict().items() if key not in _MACHINE_FIELDS}
    return json.loads(json.dumps(settings))


def _version(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def run_record(task: str, profile: Profile, *, model_name: str, model_args: Mapping[str, Any],
               model_kwargs: Mapping[str, Any], seed: int, data: str | Path | None, synthetic_data: str | None,
               data_id: str | None, init_from: Mapping[str, str] | None,
               origin: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of one run (see the module's description), as JSON values.

    Args:
        origin: how the run was asked for: ``{"profile": name, "recipe": name or None, "overrides": {...}}``
            (``medseg train``); None: ``profile.name``, no recipe, no overrides (a notebook's own profile).
    """
    origin = origin or {}
    record = {
        "format": RECORD_FORMAT,
        "medseg_kit": _version("medseg-kit"),
        "torch": _version("torch"),
        "task": task,
        "profile": origin.get("profile", profile.name),
        "recipe": origin.get("recipe"),
        "overrides": dict(origin.get("overrides") or {}),
        "model": {"name": model_name, "args": dict(model_args), "kwargs": dict(model_kwargs)},
        "seed": seed,
        "data": None if data is None else str(Path(data).resolve()),
        "synthetic_data": synthetic_data,
        "data_id": data_id,
        "init_from": None if init_from is None else dict(init_from),
        "settings": profile_settings(profile),
    }
    return json.loads(json.dumps(record, default=str))


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The record in a ``config.json`` a run wrote.

    Raises:
        ConfigError: the file is missing, not JSON, or not a run record of this kit (named, with what is wrong).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file (the {CONFIG_FILE} of a run folder)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"--config {path} cannot be read as JSON: {error}") from error
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ConfigError(f"--config {path} is not a run's {CONFIG_FILE} (its format is not {RECORD_FORMAT!r})")
    missing = [key for key in ("task", "profile", "model", "seed", "data", "init_from", "settings")
               if key not in record]
    if missing:
        raise ConfigError(f"--config {path} lacks {', '.join(missing)}: restore the file from its run folder")
    return record


def profile_from_record(record: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                        source: str | Path = "--config") -> Profile:
    """The profile of a run record: its base profile with every recorded setting applied, then ``overrides``.

    Raises:
        ConfigError: a recorded setting the kit does not know or refuses (a record of another kit version), or an
            override that does not apply; the message names ``source``.
    """
    try:  # the base only fills fields a record of an older kit lacks: every recorded field is applied
        profile = get_profile(record["profile"] if record["profile"] in list_profiles() else "cpu")
        sections = {field.name for field in dataclasses.fields(profile)
                    if dataclasses.is_dataclass(getattr(profile, field.name))}
        flat: dict[str, Any] = {}
        for key, value in record["settings"].items():
            if key in sections:
                flat.update({f"{key}.{leaf}": item for leaf, item in value.items()})
            else:
                flat[key] = value
        profile = profile.override(flat, none_keeps=False)
    except KitError as error:
        raise ConfigError(f"{source}: its settings do not apply to this version of the kit ({error})") from error
    return profile.override(overrides, none_keeps=False)
