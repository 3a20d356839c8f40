"""Model registry: one door in (:func:`create_model`), one list of names (:func:`list_models`).

Each architecture file registers small entry points with :func:`register_model`::

    @register_model
    def svsnet(**kwargs) -> SVSNet:
        return SVSNet(**kwargs)

The entry point's return annotation names the model class, a :class:`~medseg_core.models.base.SegmentationModel`;
its facts (``input_kind``: frame window or single image) are known before a model is built, through
:func:`model_class`. Importing this package imports every architecture module so that all names are registered.
Parameters, FLOPs, latency and architecture tables are :mod:`medseg_core.models.summary`.
"""
from __future__ import annotations

import inspect
import typing
from typing import Any, Callable, Mapping

from ..errors import UnknownNameError
from .base import (SegmentationModel, flip_averaged_probabilities, logits_to_labels, logits_to_probabilities,
                   probabilities_to_labels)

__all__ = ["register_model", "create_model", "list_models", "model_class", "model_arguments", "SegmentationModel",
           "RUN_ONLY_ARGS",
           "logits_to_probabilities", "probabilities_to_labels", "logits_to_labels", "flip_averaged_probabilities"]

RUN_ONLY_ARGS = ("progress", "checkpoint")
"""Model arguments that change how a model runs (download progress bars, SVSnet's activation checkpointing), not
what it computes: run names leave them out and a resume accepts them changed."""

_MODEL_ENTRYPOINTS: dict[str, Callable[..., SegmentationModel]] = {}
_MODEL_CLASSES: dict[str, type[SegmentationModel]] = {}


def register_model(fn: Callable[..., SegmentationModel]) -> Callable[..., SegmentationModel]:
    """Register ``fn`` under its ``__name__``; its return annotation must be a :class:`SegmentationModel` class.

    Raises:
        ValueError: the name is already registered (two models may not share a name).
        TypeError: the return annotation is missing or not a :class:`SegmentationModel` subclass.
    """
    name = fn.__name__
    if name in _MODEL_ENTRYPOINTS:
        raise ValueError(f"model {name!r} is already registered by {_MODEL_ENTRYPOINTS[name].__module__}")
    returned = typing.get_type_hints(fn).get("return")
    if not (isinstance(returned, type) and issubclass(returned, SegmentationModel)):
        raise TypeError(f"model entry point {name!r} must be annotated to return a SegmentationModel subclass")
    _MODEL_ENTRYPOINTS[name] = fn
    _MODEL_CLASSES[name] = returned
    return fn


def list_models() -> list[str]:
    """Sorted names accepted by :func:`create_model`."""
    return sorted(_MODEL_ENTRYPOINTS)


def _check_name(name: str) -> None:
    if name not in _MODEL_ENTRYPOINTS:
        raise UnknownNameError(f"unknown model {name!r}; valid names: {', '.join(list_models())}")


def model_class(name: str) -> type[SegmentationModel]:
    """The class a registered name builds, for its facts (``input_kind``) before building one.

    Raises:
        UnknownNameError: (a ``KeyError``) ``name`` is not registered; the message lists the valid names.
    """
    _check_name(name)
    return _MODEL_CLASSES[name]


def model_arguments(name: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every constructor argument of a registered model that has a default, with ``kwargs`` on top: what the model
    is built with (the one place defaults are filled in). Arguments that only change how it runs
    (:data:`RUN_ONLY_ARGS`) are left out, so ``eca="both"`` given or implied is one model.

    Raises:
        UnknownNameError: (a ``KeyError``) ``name`` is not registered; the message lists the valid names.
    """
    parameters = inspect.signature(model_class(name).__init__).parameters
    defaults = {key: p.default for key, p in parameters.items() if p.default is not inspect.Parameter.empty}
    return {key: value for key, value in {**defaults, **(kwargs or {})}.items() if key not in RUN_ONLY_ARGS}


def create_model(name: str, **kwargs) -> SegmentationModel:
    """Build a registered model by name, e.g. ``create_model("svsnet", window_length=4)``.

    The name and keyword arguments are kept as ``model.model_spec`` so that
    :func:`medseg_core.checkpoints.load_model` can rebuild the model from a checkpoint.

    Raises:
        UnknownNameError: (a ``KeyError``) ``name`` is not registered; the message lists the valid names.
    """
    _check_name(name)
    model = _MODEL_ENTRYPOINTS[name](**kwargs)
    model.model_spec = {"name": name, "kwargs": dict(kwargs)}  # lets checkpoints rebuild the model
    return model


# Architecture modules register themselves on import (keep at the bottom: they import register_model).
from . import svsnet, unet, deeplabv3plus, classical, oct_rules  # noqa: E402,F401
