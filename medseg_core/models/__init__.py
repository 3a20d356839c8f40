"""Model registry: one door in (:func:`create_model`), one list of names (:func:`list_models`).

Each architecture file registers small entry points with :func:`register_model`::

    @register_model
    def svsnet(**kwargs) -> SVSNet:
        return SVSNet(**kwargs)

Importing this package imports every architecture module so that all names are registered.
"""
from __future__ import annotations

import warnings
from typing import Callable

import pandas as pd
import torch.nn as nn

__all__ = ["register_model", "create_model", "list_models", "count_parameters", "parameter_table"]

_MODEL_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its ``__name__``; a duplicate name warns and replaces the old entry."""
    name = fn.__name__
    if name in _MODEL_ENTRYPOINTS:
        warnings.warn(f"model {name!r} registered twice; the later definition wins", stacklevel=2)
    _MODEL_ENTRYPOINTS[name] = fn
    return fn


def list_models() -> list[str]:
    """Sorted names accepted by :func:`create_model`."""
    return sorted(_MODEL_ENTRYPOINTS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by name, e.g. ``create_model("svsnet", window_length=4)``.

    The name and keyword arguments are kept as ``model.model_spec`` so that
    :func:`medseg_core.training.load_model` can rebuild the model from a checkpoint.

    Raises:
        KeyError: ``name`` is not registered; the message lists the valid names.
    """
    try:
        entrypoint = _MODEL_ENTRYPOINTS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None
    model = entrypoint(**kwargs)
    model.model_spec = {"name": name, "kwargs": dict(kwargs)}  # lets checkpoints rebuild the model
    return model


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module) -> pd.DataFrame:
    """Trainable parameters per top-level child of ``model`` (plus a total row), as a DataFrame."""
    rows = [{"module": name, "type": type(child).__name__, "parameters": count_parameters(child)}
            for name, child in model.named_children()]
    rows.append({"module": "total", "type": type(model).__name__, "parameters": count_parameters(model)})
    return pd.DataFrame(rows)


# Architecture modules register themselves on import (keep at the bottom: they import register_model).
from . import svsnet, unet, deeplabv3plus  # noqa: E402,F401
