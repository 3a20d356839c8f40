"""Reusing finished runs across notebooks: :class:`RunSource`, the ordered sources of each model, and
:func:`reuse_or_train`; :func:`kit_architectures` for the architecture tables."""
from __future__ import annotations

from typing import Sequence

import torch.nn as nn

from ..checkpoints import load_model
from ..config import Profile
from ..models import create_model
from ..tasks import get_task
from .ablations import ECA_ABLATION, WINDOW_LENGTH_ABLATION
from .runs import RunSource, TrainedRun


def svsnet_sources(profile: Profile, seed: int = 0) -> list[RunSource]:
    """Where an SVSnet run of ``profile`` may be: notebooks 00 / 02 (one folder), the window-length ablation (when
    the profile's window length is one of its variants)."""
    task, variant = get_task("xca"), f"T{profile.xca.window_length}"
    sources = [RunSource("02_train_svsnet", "xca", profile, task.run_dir(profile, "svsnet", seed=seed), "svsnet", {}, seed)]
    if variant in WINDOW_LENGTH_ABLATION.variants:
        sources.append(WINDOW_LENGTH_ABLATION.source(profile, variant, seed))
    return sources


def deeplab_sources(profile: Profile, seed: int = 0) -> list[RunSource]:
    """Where a DeepLabV3+ run (ECA at both places) of ``profile`` may be: notebook 04, then the ECA ablation."""
    task = get_task("oct")
    return [
        RunSource("04_train_deeplabv3plus_eca", "oct", profile, task.run_dir(profile, "deeplabv3plus", seed=seed),
                  "deeplabv3plus", {}, seed),
        ECA_ABLATION.source(profile, "both", seed),
    ]


def reuse_or_train(sources: Sequence[RunSource], progress: bool = False) -> tuple[TrainedRun, RunSource]:
    """Load the first finished run among ``sources``; if none is finished, train and test the last one (resumable;
    its results then mark it finished, :meth:`RunSpec.train_and_test <medseg_core.experiments.RunSpec.train_and_test>`).

    Returns:
        The run (best weights, eval mode, its history and the loaders of its profile) and the source used.

    Raises:
        ConfigError: the first finished run was trained with other settings than its source's profile gives it
            (:meth:`RunSpec.check_finished <medseg_core.experiments.RunSpec.check_finished>`).
    """
    if not sources:
        raise ValueError("no run sources given")
    for source in sources:
        spec = source.spec
        if spec.folder.is_finished():
            spec.check_finished()
            model = load_model(spec.folder.best)
            run = TrainedRun(model, spec.folder.read_history(), spec.loaders(), spec.folder.path, spec.metadata())
            return run, source
    source = sources[-1]
    run, _ = source.spec.train_and_test(progress=progress)
    return run, source


def kit_architectures(profile: Profile) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """The kit's models with the input shapes of ``profile`` (batch one), for
    :func:`medseg_core.models.summary.architecture_table`.

    SVSnet at the profile's window length and the 2D U-Net on XCA frames; DeepLabV3+ with and without ECA and the
    parameter-matched U-Net of :data:`ECA_ABLATION` on OCT frames.
    """
    xca, oct_task = get_task("xca"), get_task("oct")
    length, xca_size, oct_size = profile.xca.window_length, profile.xca.image_size, profile.oct.image_size
    unet = ECA_ABLATION.variants["unet"]["model_kwargs"]
    return {
        f"SVSnet, T = {length}": (create_model("svsnet", **xca.model_kwargs(profile, "svsnet")),
                                  (1, 1, length, xca_size, xca_size)),
        "U-Net 2D, XCA": (create_model("unet2d", **xca.model_kwargs(profile, "unet2d")), (1, 1, xca_size, xca_size)),
        **{f"DeepLabV3+, ECA {eca}": (create_model("deeplabv3plus", **oct_task.model_kwargs(profile, "deeplabv3plus",
                                                                                              {"eca": eca})),
                                      (1, 3, oct_size, oct_size)) for eca in ("both", "none")},
        "U-Net 2D, OCT": (create_model("unet2d", **oct_task.model_kwargs(profile, "unet2d", unet)),
                          (1, 3, oct_size, oct_size)),
    }
