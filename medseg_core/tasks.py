"""Tasks: everything a segmentation problem needs besides the model, in one place per task.

A :class:`Task` owns its data (synthetic by default, or a folder in the task's layout), loaders, loss, the
model arguments it implies (input channels, classes, window length), its training settings, its
**preprocessing** (the function both the datasets and inference call, from :mod:`medseg_core.data.preprocess`),
the **run metadata** stored in every checkpoint and the **run names**. Two tasks are built in:

* ``"xca"``: SVSnet's vessel segmentation on angiography windows (binary, soft Dice loss). Window models
  (``input_kind == "window"``, SVSnet) see ``profile.xca.window_length`` frames; image models (the 2D U-Net) see
  the labelled frame alone (T = 1).
* ``"oct"``: lipid-core segmentation on RGB OCT frames (background + ``profile.oct.classes``, CE + Dice loss).

Run names follow one scheme, ``<task>_<model>[_T<T>-<policy>][_<argument>-<value>...]_seed<seed>``, where
only model arguments that differ from the model's defaults and from what the task implies appear, so the same
settings always map to the same folder (``runs/<profile>/<name>``), whoever trains them.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import torch.nn as nn
from torch.utils.data import DataLoader

from .checkpoints import RunMetadata
from .config import Profile, TrainConfig
from .data.preprocess import preprocess_oct, preprocess_xca
from .errors import ConfigError, UnknownNameError
from .losses import CEDiceLoss, DiceLoss
from .models import RUN_ONLY_ARGS, create_model, model_arguments, model_class

if TYPE_CHECKING:
    from .data.public import XCAFrames

__all__ = ["Task", "XCATask", "OCTTask", "TASKS", "get_task", "list_tasks"]


@dataclass(frozen=True)
class Task:
    """Base of the tasks; subclasses fill in the data-specific methods."""

    name: str
    default_model: str
    input_kinds: tuple[str, ...]  # model input kinds this task can feed
    preprocess: Callable[..., dict[str, Any]]

    # ------------------------------------------------------------------------------------- data and model
    def model_for(self, profile: Profile, model_name: str | None = None) -> str:
        """The model a run trains: ``model_name``, else the profile's choice for this task (``oct.model``, set by a
        recipe), else :attr:`default_model`."""
        return model_name or getattr(getattr(profile, self.name), "model", None) or self.default_model

    def data_dir(self, profile: Profile) -> Path:
        """This profile's synthetic dataset folder: ``data/synthetic/<task>_<profile>-<digest>``.

        The digest (8 hex digits, the generator's ``dataset_digest``) covers the generator's settings and version
        only, so an override of a generator field (``xca.seed``, ``oct.num_patients``, ...) gets its own folder and
        never rewrites another run's data, while loader settings (``xca.window_length``, ``oct.image_size``) share
        one.
        """
        return profile.paths.data / "synthetic" / f"{self.name}_{profile.name}-{self.generator_digest(profile)}"

    def generator_digest(self, profile: Profile) -> str:
        """Digest of the settings the synthetic generator reads (see :meth:`data_dir`)."""
        raise NotImplementedError

    def make_data(self, profile: Profile, overwrite: bool = False) -> Path:
        """The profile's synthetic dataset folder (generated on first use; ``overwrite`` rewrites its own files)."""
        raise NotImplementedError

    def make_loaders(self, profile: Profile, root: Path, model_name: str, seed: int) -> dict[str, DataLoader]:
        """``{"train", "val", "test"}`` loaders for ``model_name`` on data in ``root``."""
        raise NotImplementedError

    def make_loss(self, profile: Profile | None = None) -> nn.Module:
        """The task's loss (with the profile's settings where the task has any)."""
        raise NotImplementedError

    def train_config(self, profile: Profile) -> TrainConfig:
        """The profile's optimisation settings for this task."""
        raise NotImplementedError

    def task_model_kwargs(self, profile: Profile, model_name: str) -> dict[str, Any]:
        """Constructor arguments the task implies for ``model_name`` (channels, classes, window length)."""
        raise NotImplementedError

    def run_metadata(self, profile: Profile, model_name: str, data_root: Path | None = None) -> RunMetadata:
        """What the checkpoint records about input preparation, for data in ``data_root`` (None: the profile's
        synthetic data)."""
        raise NotImplementedError

    def case_cluster(self, case_id: str) -> str:
        """The cluster a test case belongs to (its video or patient): the unit statistics resample."""
        raise NotImplementedError

    def test_clusters(self, profile: Profile) -> int:
        """How many test videos or patients the profile's synthetic data hold (to size a design before running)."""
        raise NotImplementedError

    def check_model(self, model_name: str) -> None:
        """Raise before any work when ``model_name`` is unknown or cannot take this task's input."""
        kind = model_class(model_name).input_kind
        if kind not in self.input_kinds:
            raise ConfigError(f"model {model_name!r} takes {kind} inputs, which task {self.name!r} does not provide "
                              f"(it feeds {', '.join(self.input_kinds)} models, e.g. {self.default_model!r})")

    def model_kwargs(self, profile: Profile, model_name: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The task's arguments for ``model_name`` with ``extra`` (user arguments) on top.

        Raises:
            ConfigError: a user argument the model does not take, or not of its default's type.
        """
        self.check_model(model_name)
        _check_model_args(model_name, extra or {})
        return {**self.task_model_kwargs(profile, model_name), **(extra or {})}

    def check_model_args(self, profile: Profile, model_name: str, extra: Mapping[str, Any] | None = None) -> None:
        """:meth:`model_kwargs`, then build the model once (without ``pretrained`` weights) so that arguments it
        refuses, e.g. out of range, and input sizes it cannot take fail as user errors before any work
        (``medseg train``).

        Raises:
            ConfigError: naming the user's arguments and the model's reason.
        """
        kwargs = self.model_kwargs(profile, model_name, extra)
        try:
            model = create_model(model_name, **{key: value for key, value in kwargs.items() if key != "pretrained"})
        except (TypeError, ValueError, RuntimeError) as error:
            given = " ".join(f"{key}={value}" for key, value in (extra or {}).items()) or "its default arguments"
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ConfigError(f"cannot build {model_name} with {given}: {reason}") from error
        for key, size in self.input_sizes(profile).items():
            if size % model.size_divisor:
                raise ConfigError(f"{key} {size} does not fit {model_name}, whose inputs are {model.expected_input()}: "
                                  f"use a multiple of {model.size_divisor}")

    def input_sizes(self, profile: Profile) -> dict[str, int]:
        """The sides of the inputs the model sees in training, by profile key (checked by :meth:`check_model_args`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ run names
    def window_tag(self, profile: Profile, model_name: str) -> str:
        """The part of a run name that describes the input (XCA: ``_T4-centre``); empty for OCT."""
        return ""

    def run_name(self, profile: Profile, model_name: str | None = None, model_kwargs: Mapping[str, Any] | None = None,
                 seed: int = 0) -> str:
        """One run's folder name, e.g. ``xca_svsnet_T4-centre_seed0`` or ``oct_deeplabv3plus_eca-none_seed1``."""
        model_name = self.model_for(profile, model_name)
        built = model_arguments(model_name, self.task_model_kwargs(profile, model_name))  # what no argument changes
        tags = [f"{key}-{Path(str(value)).stem if isinstance(value, (str, Path)) and '/' in str(value) else value}"
                for key, value in sorted((model_kwargs or {}).items())
                if key not in RUN_ONLY_ARGS and value != built.get(key, inspect.Parameter.empty)]
        return "_".join([f"{self.name}_{model_name}{self.window_tag(profile, model_name)}", *tags, f"seed{seed}"])

    def run_dir(self, profile: Profile, model_name: str | None = None, model_kwargs: Mapping[str, Any] | None = None,
                seed: int = 0) -> Path:
        """``runs/<profile>/<run name>`` (see :meth:`run_name`)."""
        return profile.run_dir(self.run_name(profile, model_name, model_kwargs, seed))


class XCATask(Task):
    """SVSnet's vessel segmentation on X-ray angiography windows (MOSXAV layout)."""

    def _profile_for(self, profile: Profile, model_name: str) -> Profile:
        """Window models see the profile's window; image models the labelled frame alone (T = 1)."""
        if model_class(model_name).input_kind == "window":
            return profile
        return profile.override({"xca.window_length": 1})

    def make_data(self, profile: Profile, overwrite: bool = False) -> Path:
        from .data.synthetic_xca import ensure_xca_dataset

        return ensure_xca_dataset(profile.xca, self.data_dir(profile), overwrite=overwrite)

    def generator_digest(self, profile: Profile) -> str:
        from .data.synthetic_xca import dataset_digest

        return dataset_digest(profile.xca)

    def read_frames(self, profile: Profile, root: Path) -> XCAFrames | None:
        """The frames of ``root`` as :mod:`medseg_core.data.public` reads them (layout ``xca.data_format``, else
        detected), or None for the kit's own layout with ``train/`` and ``test/`` split folders (synthetic data,
        MOSXAV), which :func:`~medseg_core.data.xca.xca_dataloaders` reads.

        Raises:
            DataError / UnknownNameError: no known layout in ``root``, or an unknown ``xca.data_format``.
        """
        from .data.public import detect_format, read_xca_frames
        from .data.xca import FRAMES_DIR

        name = profile.xca.data_format or detect_format(root)
        if name == "mosxav" and all((Path(root) / split / FRAMES_DIR).is_dir() for split in ("train", "test")):
            return None
        return read_xca_frames(root, name)

    def make_loaders(self, profile: Profile, root: Path, model_name: str, seed: int) -> dict[str, DataLoader]:
        """Loaders of the kit's layout (:func:`~medseg_core.data.xca.xca_dataloaders`), or of any layout of
        :mod:`medseg_core.data.public` (:func:`~medseg_core.data.public.xca_frames_dataloaders`: released splits,
        else cut by run with ``xca.seed``; single frames repeated in every window)."""
        from .data.public import xca_frames_dataloaders
        from .data.xca import xca_dataloaders

        profile = self._profile_for(profile, model_name)
        time_axis = model_class(model_name).input_kind == "window"
        frames = self.read_frames(profile, root)
        if frames is None:
            return xca_dataloaders(root, profile.xca, profile.svsnet.batch_size, num_workers=profile.svsnet.num_workers,
                                   seed=seed, time_axis=time_axis, val_fraction=profile.xca.val_fraction)
        return xca_frames_dataloaders(frames, profile.xca, profile.svsnet.batch_size,
                                      num_workers=profile.svsnet.num_workers, seed=seed, time_axis=time_axis)

    def make_loss(self, profile: Profile | None = None) -> nn.Module:
        return DiceLoss(mode="binary")

    def train_config(self, profile: Profile) -> TrainConfig:
        return profile.svsnet

    def task_model_kwargs(self, profile: Profile, model_name: str) -> dict[str, Any]:
        """Window length (window models) or one channel and class (image models); ``input_norm`` when
        ``xca.input_norm`` is not "none" (ConfigError for a model without that argument)."""
        if model_class(model_name).input_kind == "window":
            kwargs: dict[str, Any] = {"window_length": profile.xca.window_length}
        else:
            kwargs = {"in_channels": 1, "num_classes": 1}
        if profile.xca.input_norm != "none":
            if "input_norm" not in inspect.signature(model_class(model_name).__init__).parameters:
                raise ConfigError(f"xca.input_norm={profile.xca.input_norm!r} needs a model with an input_norm "
                                  f"argument (svsnet); {model_name} has none: set xca.input_norm=none")
            kwargs["input_norm"] = profile.xca.input_norm
        return kwargs

    def run_metadata(self, profile: Profile, model_name: str, data_root: Path | None = None) -> RunMetadata:
        """Frame size, window and class; ``single_frame`` when every video of ``data_root`` is one frame."""
        from .data.public import read_xca_frames

        xca = self._profile_for(profile, model_name).xca
        single_frame = False
        if data_root is not None:
            frames = self.read_frames(profile, Path(data_root))
            single_frame = (frames if frames is not None else read_xca_frames(data_root, "mosxav")).single_frame
        return RunMetadata(task="xca", image_size=xca.image_size, class_names=("vessel",),
                           input_kind=model_class(model_name).input_kind, window_length=xca.window_length,
                           window_policy=xca.window_policy, single_frame=single_frame)

    def input_sizes(self, profile: Profile) -> dict[str, int]:
        sizes = {"xca.image_size": profile.xca.image_size, "xca.train_crop": profile.xca.train_crop}
        return {key: size for key, size in sizes.items() if size is not None}

    def case_cluster(self, case_id: str) -> str:
        """``"<video>/<frame>"`` -> the video."""
        return case_id.split("/", 1)[0]

    def test_clusters(self, profile: Profile) -> int:
        return profile.xca.num_test_videos

    def window_tag(self, profile: Profile, model_name: str) -> str:
        xca = self._profile_for(profile, model_name).xca
        return f"_T{xca.window_length}-{xca.window_policy}"


class OCTTask(Task):
    """Lipid-core segmentation on RGB IVOCT frames (the Zenodo dataset's layout)."""

    def make_data(self, profile: Profile, overwrite: bool = False) -> Path:
        from .data.synthetic_oct import ensure_oct_dataset

        return ensure_oct_dataset(profile.oct, self.data_dir(profile), overwrite=overwrite)

    def generator_digest(self, profile: Profile) -> str:
        from .data.synthetic_oct import dataset_digest

        return dataset_digest(profile.oct)

    def make_loaders(self, profile: Profile, root: Path, model_name: str, seed: int) -> dict[str, DataLoader]:
        from .data.oct import oct_dataloaders

        return oct_dataloaders(root, profile.oct, profile.deeplab.batch_size, num_workers=profile.deeplab.num_workers,
                               seed=seed, split_seed=profile.oct.seed)  # one patient split for every seed

    def make_loss(self, profile: Profile | None = None) -> nn.Module:
        weights = None if profile is None else profile.oct.class_weights
        if weights is not None and (len(weights) != 1 + len(profile.oct.classes) or min(weights) <= 0):
            raise ConfigError(f"oct.class_weights needs one positive weight for background and each of "
                              f"{', '.join(profile.oct.classes)} ({1 + len(profile.oct.classes)}); got {weights!r}")
        return CEDiceLoss(class_weights=weights)

    def train_config(self, profile: Profile) -> TrainConfig:
        return profile.deeplab

    def task_model_kwargs(self, profile: Profile, model_name: str) -> dict[str, Any]:
        parameters = inspect.signature(model_class(model_name).__init__).parameters
        kwargs: dict[str, Any] = {"num_classes": 1 + len(profile.oct.classes)}
        if "in_channels" in parameters:
            kwargs["in_channels"] = 3
        if "atrous_rates" in parameters and profile.oct.scale_atrous_rates:
            from .models.deeplabv3plus import scaled_atrous_rates

            kwargs["atrous_rates"] = scaled_atrous_rates(profile.oct.image_size)
        return kwargs

    def input_sizes(self, profile: Profile) -> dict[str, int]:
        return {"oct.image_size": profile.oct.image_size}

    def case_cluster(self, case_id: str) -> str:
        """``"<patient>_<pullback>_<frame>"`` (the dataset's names) -> the patient; other names are their own."""
        from .data.oct import OCT_NAME_PATTERN

        match = OCT_NAME_PATTERN.match(case_id)
        return match["patient"] if match else case_id

    def test_clusters(self, profile: Profile) -> int:
        """Synthetic pullbacks are one patient each; the flat layout holds ``oct.test_fraction`` of them out."""
        from .data.oct import held_out_patients

        return held_out_patients(profile.oct.num_patients, profile.oct.test_fraction)

    def run_metadata(self, profile: Profile, model_name: str, data_root: Path | None = None) -> RunMetadata:
        return RunMetadata(task="oct", image_size=profile.oct.image_size, class_names=tuple(profile.oct.classes),
                           input_kind="image")


_PLAIN_TYPES: dict[type, Callable[[Any], bool]] = {
    bool: lambda value: isinstance(value, bool),
    int: lambda value: isinstance(value, int) and not isinstance(value, bool),
    float: lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    str: lambda value: isinstance(value, str),
}


def _check_model_args(model_name: str, args: Mapping[str, Any]) -> None:
    """Refuse arguments ``model_name``'s constructor does not take, and values of another type than a plain default
    (bool, int, float, str); the message lists the valid names."""
    parameters = dict(inspect.signature(model_class(model_name).__init__).parameters)
    parameters.pop("self", None)
    named = [name for name, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    unknown = [key for key in args if key not in named]
    if unknown and len(named) == len(parameters):  # no **kwargs to take them
        raise ConfigError(f"unknown model argument{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(key) for key in unknown)} for {model_name}; valid: {', '.join(named)}")
    for key, value in args.items():
        default = parameters[key].default if key in parameters else None
        fits = _PLAIN_TYPES.get(type(default))
        if fits is not None and not fits(value):
            raise ConfigError(f"model argument {key} of {model_name} must be {type(default).__name__} (default "
                              f"{default!r}); got {value!r}")


TASKS: dict[str, Task] = {task.name: task for task in (  # the one list of task names
    XCATask(name="xca", default_model="svsnet", input_kinds=("window", "image"), preprocess=preprocess_xca),
    OCTTask(name="oct", default_model="deeplabv3plus", input_kinds=("image",), preprocess=preprocess_oct),
)}


def list_tasks() -> list[str]:
    """Names accepted by :func:`get_task`."""
    return list(TASKS)


def get_task(name: str | Task) -> Task:
    """A built-in task by name (a :class:`Task` is returned as it is).

    Raises:
        UnknownNameError: (a ``KeyError``) the message lists the valid names.
    """
    if isinstance(name, Task):
        return name
    if name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[name]
