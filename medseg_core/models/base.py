"""What every segmentation model of the kit is: the base class and the one logits -> probabilities/labels rule.

Modelled on segmentation_models_pytorch's ``SegmentationModel``: a model declares its facts as attributes
(``input_kind``: a window of frames ``(B, C, T, H, W)`` or a single image ``(B, C, H, W)``; ``in_channels``;
``num_classes``; ``size_divisor``), checks its input with a hint on how to fix it (pad sizes included), splits
``forward`` into ``forward_features`` and ``forward_head``, exposes its attention weights and predicts labels.
Training, evaluation, inference and plots all turn logits into probabilities and labels with
:func:`logits_to_probabilities` / :func:`logits_to_labels`, so there is one rule: one output channel is a
sigmoid vessel/foreground probability thresholded at ``threshold``; K channels are a softmax and the argmax.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

from .blocks import collect_attention_weights

__all__ = ["INPUT_KINDS", "SegmentationModel", "logits_to_probabilities", "probabilities_to_labels",
           "logits_to_labels", "flip_averaged_probabilities"]

INPUT_KINDS = ("image", "window")


def logits_to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` -> sigmoid ``(B, 1, H, W)``; ``(B, K, H, W)`` -> softmax over K ``(B, K, H, W)``."""
    logits = logits.float()
    return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


def probabilities_to_labels(probabilities: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Label maps ``(B, H, W)`` int64 from probabilities ``(B, K, H, W)``: ``p > threshold`` for K = 1, else argmax."""
    if probabilities.shape[1] == 1:
        return (probabilities[:, 0] > threshold).long()
    return probabilities.argmax(dim=1)


FLIPS = ((), (-1,), (-2,), (-2, -1))
"""The flips (dims of ``(..., H, W)``) of :func:`flip_averaged_probabilities`: none, horizontal, vertical, both."""


def flip_averaged_probabilities(model: nn.Module, inputs: torch.Tensor,
                                flips: tuple[tuple[int, ...], ...] = FLIPS) -> torch.Tensor:
    """Test-time augmentation: :func:`logits_to_probabilities` of ``inputs`` ``(B, C, H, W)`` (or a window
    ``(B, C, T, H, W)``), averaged over ``flips`` (each prediction flipped back first). Returns ``(B, K, H, W)``
    float32. Flips keep a Cartesian IVOCT frame a valid frame (the catheter stays in the centre); in the polar view
    (rows = angles) only ``((), (-2,))`` does (a depth flip would put the catheter outside). Call under
    ``torch.no_grad``."""
    total = None
    for dims in flips:
        flipped = inputs.flip(dims) if dims else inputs
        probabilities = logits_to_probabilities(model(flipped))
        probabilities = probabilities.flip(dims) if dims else probabilities
        total = probabilities if total is None else total + probabilities
    return total / len(flips)


def logits_to_labels(logits: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Label maps ``(B, H, W)`` int64 from logits ``(B, K, H, W)`` (the same rule as :func:`probabilities_to_labels`)."""
    return probabilities_to_labels(logits_to_probabilities(logits), threshold)


class SegmentationModel(nn.Module):
    """Base of the kit's models: input check, ``forward_features`` / ``forward_head``, attention, ``predict``.

    Subclasses set ``input_kind`` (class attribute), and ``in_channels``, ``num_classes`` and ``size_divisor``
    in ``__init__``, implement ``forward_features(x)`` (calling :meth:`check_input_shape` first) and
    ``forward_head(features, output_size)``, and may extend :meth:`check_input_shape` for model-specific rules.
    """

    input_kind: ClassVar[str] = "image"
    # Weight-free baselines (classical filters, intensity rules) are not trained: ``fit(loader)`` sets their few
    # numbers (thresholds) on training or validation frames; :func:`medseg_core.experiments.train` calls it instead
    # of the Trainer.
    weight_free: ClassVar[bool] = False
    in_channels: int
    num_classes: int
    size_divisor: int = 1

    def fit(self, loader: "DataLoader") -> dict[str, float]:
        """Weight-free models: fit their numbers on ``loader`` (training or validation frames, never test) and
        return them by name. Networks are trained, not fitted."""
        raise TypeError(f"{type(self).__name__} is trained, not fitted (only weight-free baselines have fit)")

    def expected_input(self) -> str:
        """The accepted input shape in words, e.g. ``(B, 1, T, H, W) with H, W divisible by 64``."""
        axes = "T, H, W" if self.input_kind == "window" else "H, W"
        divisible = f" with H, W divisible by {self.size_divisor}" if self.size_divisor > 1 else ""
        return f"(B, {self.in_channels}, {axes}){divisible}"

    def check_input_shape(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the expected shape and the fix when ``x`` does not fit this model."""
        name, shape = type(self).__name__, tuple(x.shape)
        ndim = 5 if self.input_kind == "window" else 4
        if x.ndim != ndim:
            hint = ""
            if x.ndim == ndim - 1:
                hint = " Add the channel axis with x.unsqueeze(1)." if ndim == 5 else " Add the batch axis with x.unsqueeze(0)."
            raise ValueError(f"{name} expects {self.expected_input()}; got shape {shape}.{hint}")
        if shape[1] != self.in_channels:
            raise ValueError(f"{name} expects {self.in_channels} input channel(s), {self.expected_input()}; got {shape}")
        height, width = shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            padded = [-(-side // self.size_divisor) * self.size_divisor for side in (height, width)]
            raise ValueError(
                f"{name} expects {self.expected_input()}; got {shape}. Pad or resize the input to "
                f"{(*shape[:-2], *padded)} (e.g. torch.nn.functional.pad, then crop the output)."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> decoder features (model-specific shape)."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """Decoder features -> logits ``(B, num_classes, *output_size)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> logits ``(B, num_classes, H, W)`` at the input's spatial size."""
        return self.forward_head(self.forward_features(x), tuple(x.shape[-2:]))

    def attention_weights(self) -> dict[str, torch.Tensor]:
        """Last channel weights ``(B, C)`` of every attention block, by module name (empty before a forward)."""
        return collect_attention_weights(self)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
        """Label maps ``(B, H, W)`` int64 in eval mode (the model is left in eval mode), by :func:`logits_to_labels`."""
        self.eval()
        return logits_to_labels(self(x), threshold)
