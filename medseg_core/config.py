"""Run profiles, in one place: ``smoke`` (CI, seconds), ``cpu`` (a laptop, minutes), ``paper`` (a GPU, the papers' settings).

A profile is a tree of dataclasses. Notebooks and the CLI take one by name and override single fields with
dotted keys, so a papermill ``parameters`` cell can change anything without editing code::

    cfg = get_profile("cpu", {"svsnet.epochs": 3, "xca.window_length": 2})

Folders come from environment variables with defaults inside the repository (``MEDSEG_DATA``,
``MEDSEG_RUNS``, ``MEDSEG_FIGURES``), as MONAI and nnU-Net do.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "TrainConfig",
    "XCAConfig",
    "OCTConfig",
    "AblationConfig",
    "Paths",
    "Profile",
    "PROFILES",
    "get_profile",
    "list_profiles",
    "REPO_ROOT",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class TrainConfig:
    """Optimisation settings for one model; read by :class:`medseg_core.training.Trainer`."""

    epochs: int = 10
    batch_size: int = 4
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd" | "rmsprop"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    scheduler: str = "none"  # "none" | "cosine" | "plateau" | "inverse_time"
    lr_decay: float = 0.0  # "inverse_time": lr_t = lr / (1 + lr_decay * iteration), Keras' ``decay``
    plateau_patience: int = 5
    grad_clip: float | None = 1.0  # max gradient norm; None disables clipping
    amp: bool = True  # mixed precision, used only on CUDA
    monitor: str = "val_loss"  # history column that picks the best checkpoint
    monitor_mode: str = "min"  # "min" or "max"
    early_stopping_patience: int | None = None  # epochs without improvement before stopping
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"


@dataclass
class XCAConfig:
    """Synthetic X-ray angiography sequences and the SVSnet window dataset."""

    image_size: int = 128  # frames are image_size x image_size; SVSnet needs a multiple of 64
    num_train_videos: int = 8
    num_val_videos: int = 2
    num_test_videos: int = 2
    frames_per_video: int = 20
    label_every: int = 5  # training/validation videos are labelled every n-th frame, as in MOSXAV
    window_length: int = 4  # T frames per window
    window_policy: str = "centre"  # "centre" (2 before, 1 after for T = 4) or "past"
    augment: bool = True
    seed: int = 0


@dataclass
class OCTConfig:
    """Synthetic (or real) IVOCT frames and the DeepLabV3+ dataset."""

    image_size: int = 256  # frames are resized to image_size x image_size for training
    num_patients: int = 10
    frames_per_patient: int = 8
    classes: tuple[str, ...] = ("lipid_core",)  # foreground classes kept, in order; background is class 0
    val_fraction: float = 0.2  # grouped by patient, never by frame
    test_fraction: float = 0.2  # flat layouts: patients held out for testing (fold layouts use the fold's test split)
    augment: bool = True
    seed: int = 0


@dataclass
class AblationConfig:
    """Budget of the ablation grids (notebooks 05 and 06, and what notebook 07 recomputes when they are missing).

    Every variant and seed of a grid gets the same budget: the profile with ``overrides`` applied (dotted keys,
    as in :meth:`Profile.override`), e.g. smaller frames and fewer epochs than the training notebooks so that
    variants x seeds fit the profile's time. See :meth:`Profile.ablation_profile`.
    """

    seeds: tuple[int, ...] = (0,)
    overrides: dict[str, Any] = field(default_factory=dict)
    latency_repeats: int = 5  # timed forward passes per model in architecture tables (median reported)


@dataclass
class Paths:
    """Where data, runs and figures go; environment variables override the in-repository defaults."""

    data: Path = field(default_factory=lambda: Path(os.environ.get("MEDSEG_DATA", REPO_ROOT / "data")))
    runs: Path = field(default_factory=lambda: Path(os.environ.get("MEDSEG_RUNS", REPO_ROOT / "runs")))
    figures: Path = field(default_factory=lambda: Path(os.environ.get("MEDSEG_FIGURES", REPO_ROOT / "figures")))


@dataclass
class Profile:
    """Everything a notebook or CLI run needs to know, for one profile."""

    name: str
    xca: XCAConfig
    oct: OCTConfig
    svsnet: TrainConfig
    deeplab: TrainConfig
    ablation: AblationConfig = field(default_factory=AblationConfig)
    paths: Paths = field(default_factory=Paths)

    def override(self, overrides: Mapping[str, Any] | None = None) -> "Profile":
        """Return a copy with dotted keys replaced, e.g. ``{"svsnet.epochs": 3}``; ``None`` values are ignored.

        Raises:
            KeyError: a key does not name a field; the message lists the valid fields of that section.
        """
        profile = _deep_copy(self)
        for key, value in (overrides or {}).items():
            if value is None:
                continue
            *parents, leaf = key.split(".")
            target: Any = profile
            for part in parents:
                _check_field(target, part, key)
                target = getattr(target, part)
            _check_field(target, leaf, key)
            current = getattr(target, leaf)
            if isinstance(current, tuple) and isinstance(value, list):
                value = tuple(value)
            elif isinstance(current, Path):
                value = Path(value)
            setattr(target, leaf, value)
        return profile

    def ablation_profile(self) -> "Profile":
        """The profile every ablation run uses: this one with ``ablation.overrides`` applied.

        With overrides it is named ``<name>_ablation``, so its synthetic data and runs get their own folders
        (``data/synthetic/xca_cpu_ablation``, ``runs/cpu_ablation/...``) and never replace the training
        notebooks' data; without overrides (``paper``) it is this profile.
        """
        if not self.ablation.overrides:
            return self.override()
        return self.override({**self.ablation.overrides, "name": f"{self.name}_ablation"})

    def data_dir(self, dataset: str) -> Path:
        """Folder of a generated dataset for this profile, e.g. ``data/synthetic/xca_smoke``."""
        return self.paths.data / "synthetic" / f"{dataset}_{self.name}"

    def run_dir(self, experiment: str) -> Path:
        """Folder of one experiment's checkpoints and histories, e.g. ``runs/cpu/svsnet``."""
        return self.paths.runs / self.name / experiment

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (paths as strings), for logs and manifests."""
        return dataclasses.asdict(self, dict_factory=lambda items: {k: str(v) if isinstance(v, Path) else v for k, v in items})


def _check_field(obj: Any, name: str, key: str) -> None:
    names = [f.name for f in dataclasses.fields(obj)]
    if name not in names:
        raise KeyError(f"unknown profile field {key!r}: {type(obj).__name__} has {', '.join(names)}")


def _deep_copy(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _deep_copy(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj


def _smoke() -> Profile:
    return Profile(
        name="smoke",
        xca=XCAConfig(image_size=64, num_train_videos=2, num_val_videos=1, num_test_videos=1, frames_per_video=10),
        oct=OCTConfig(image_size=64, num_patients=4, frames_per_patient=3),
        svsnet=TrainConfig(epochs=1, batch_size=2, optimizer="adam", lr=1e-3),
        deeplab=TrainConfig(epochs=1, batch_size=4, optimizer="adam", lr=1e-3, monitor="val_dice", monitor_mode="max"),
        ablation=AblationConfig(
            seeds=(0,),
            overrides={"xca.num_train_videos": 1, "xca.frames_per_video": 7, "oct.image_size": 32},
            latency_repeats=1,
        ),
    )


def _cpu() -> Profile:
    return Profile(
        name="cpu",
        xca=XCAConfig(image_size=128, num_train_videos=12, num_val_videos=2, num_test_videos=3, frames_per_video=20),
        oct=OCTConfig(image_size=128, num_patients=12, frames_per_patient=10),
        svsnet=TrainConfig(epochs=24, batch_size=4, optimizer="adam", lr=2e-3, scheduler="cosine"),
        deeplab=TrainConfig(
            epochs=20, batch_size=8, optimizer="adam", lr=1e-3, scheduler="cosine", monitor="val_dice", monitor_mode="max"
        ),
        # Ablation budget, measured on 2 cores (2026-11-25): notebook 06 (7 variants x 3 seeds, 28-43 s per run)
        # took 730 s; notebook 05 (5 x 3; 55-66 s per DeepLabV3+ run, 76-78 s per U-Net run) took 959 s.
        # DeepLabV3+ from scratch starts finding plaque after about 70 steps.
        ablation=AblationConfig(seeds=(0, 1, 2), overrides={
            "xca.image_size": 64, "xca.num_train_videos": 8, "xca.num_val_videos": 2, "xca.num_test_videos": 2,
            "svsnet.epochs": 20,
            "oct.num_patients": 8, "oct.frames_per_patient": 8, "deeplab.epochs": 12, "deeplab.batch_size": 4,
            "deeplab.lr": 2e-3,
        }, latency_repeats=5),
    )


def _paper() -> Profile:
    return Profile(
        name="paper",
        xca=XCAConfig(image_size=512, num_train_videos=30, num_val_videos=6, num_test_videos=12, frames_per_video=40),
        oct=OCTConfig(image_size=256, num_patients=60, frames_per_patient=20),
        # SVSnet (Hao et al. 2020): SGD 0.01, momentum 0.9, Nesterov, Keras decay=1e-6 per iteration, 601 epochs, batch 4.
        svsnet=TrainConfig(
            epochs=601, batch_size=4, optimizer="sgd", lr=0.01, momentum=0.9, nesterov=True,
            scheduler="inverse_time", lr_decay=1e-6, grad_clip=None, amp=False,
        ),
        # OCT seed: RMSprop 1e-5 (wd 1e-6, momentum 0.9), ReduceLROnPlateau on val Dice (patience 5), AMP, clip 1.0.
        deeplab=TrainConfig(
            epochs=100, batch_size=32, optimizer="rmsprop", lr=1e-5, momentum=0.9, weight_decay=1e-6,
            scheduler="plateau", plateau_patience=5, grad_clip=1.0, amp=True, monitor="val_dice", monitor_mode="max",
        ),
        ablation=AblationConfig(seeds=(0, 1, 2, 3, 4), latency_repeats=10),
    )


PROFILES = {"smoke": _smoke, "cpu": _cpu, "paper": _paper}


def list_profiles() -> list[str]:
    """Names accepted by :func:`get_profile`."""
    return list(PROFILES)


def get_profile(name: str = "cpu", overrides: Mapping[str, Any] | None = None) -> Profile:
    """A fresh :class:`Profile` by name, with dotted-key ``overrides`` applied (``None`` values ignored)."""
    try:
        profile = PROFILES[name]()
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}") from None
    return profile.override(overrides)
