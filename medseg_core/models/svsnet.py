"""SVSnet: sequential vessel segmentation in X-ray coronary angiography.

Hao, Ding, Qiu, Lv, Fei, Zhu, Qin, "Sequential vessel segmentation via deep channel attention network",
Neural Networks 128:172-187 (2020), arXiv 2102.05229. Port of the official Keras 2.1.6 model
(``get_unet3D_new_4_fram_2_new`` in github.com/Binjie-Qin/SVS-net, MIT licence).

A window of T consecutive frames ``(B, 1, T, H, W)`` goes through a 3D encoder whose downsampling keeps T; at
every level a ``(T, 1, 1)`` convolution collapses the frames into a 2D skip map; a 2D decoder with channel
attention on each skip predicts the vessel mask of the labelled frame as logits ``(B, 1, H, W)``.

Layer choices that reproduce a faithful port of the official model (10,187,345 trainable parameters at T = 4;
9,138,833 at T = 1 and 9,488,337 at T = 2: only the ``(T, 1, 1)`` skip fusions depend on T):

* convolutions followed by BatchNorm have no bias (BatchNorm's shift makes it redundant; the Keras model keeps
  Keras' default bias there, 3,528 extra parameters); all other convolutions and the attention layers have one;
* the 512-channel bottleneck is the level-6 downsampling convolution itself (no extra convolution);
* each decoder stage's 2x2 convolution halves the channels, so the channel-attention block and the residual
  block work at the skip's width;
* the encoder attention of level 6 feeds that level's skip only; the downsampling path reads the
  un-attended features, as in the official code.

``checkpoint=True`` trades compute for memory: each encoder level runs under activation checkpointing
(:func:`torch.utils.checkpoint.checkpoint`, Chen et al. 2016, arXiv 1604.06174) while training, so its 3D
activations are recomputed in the backward pass instead of kept; the results are the same (dropout's random state
is replayed, BatchNorm's running statistics are updated once).

Defect of a reference implementation fixed: a looser PyTorch reimplementation created a projection ``Conv3d``
lazily inside ``forward()``, so its weights were never handed to the optimiser and stayed random. Here every layer is created
in ``__init__``; the tests check that every parameter receives a gradient after one backward pass.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..config import INPUT_NORMS
from . import register_model
from .base import SegmentationModel
from .blocks import (
    ConvNormAct,
    GlobalMaxChannelAttention,
    LocalContrastNorm,
    ResidualBlock,
    SkipChannelAttention,
    dropout_type,
)

__all__ = ["SVSNet", "SVSEncoderLevel", "SVSDecoderStage", "svsnet"]

NUM_LEVELS = 6
DROPOUT_LEVELS = (4, 5)  # 0-based: dropout before downsampling at levels 5 and 6
ATTENTION_LEVELS = (5,)  # 0-based: encoder channel attention at level 6 only


class SVSEncoderLevel(nn.Module):
    """One 3D encoder level: residual block, temporal fusion of the skip, then downsampling of H and W.

    Args:
        channels: Channels C at this level.
        out_channels: Channels after downsampling (2C in SVSnet).
        window_length: Frames T in the window; the skip fusion convolution has kernel ``(T, 1, 1)``.
        dropout: Channel-wise dropout probability before downsampling (0 disables it).
        attention: Apply :class:`GlobalMaxChannelAttention` to the features before the skip fusion.
    """

    def __init__(
        self, channels: int, out_channels: int, window_length: int, dropout: float = 0.0, attention: bool = False
    ) -> None:
        super().__init__()
        self.block = ResidualBlock(3, channels)
        self.attention = GlobalMaxChannelAttention(channels) if attention else nn.Identity()
        self.skip_fusion = nn.Conv3d(channels, channels, (window_length, 1, 1))
        self.dropout = dropout_type(3)(dropout) if dropout > 0 else nn.Identity()
        self.downsample = ConvNormAct(3, channels, out_channels, (2, 2, 2), stride=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, C, T, H, W)`` -> skip ``(B, C, H, W)`` and downsampled ``(B, C_out, T, H/2, W/2)``."""
        features = self.block(x)
        skip = self.skip_fusion(self.attention(features)).squeeze(2)
        return skip, self.downsample(self.dropout(features))


@contextmanager
def _frozen_batch_norm_statistics(module: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` normalise as usual but leave their running statistics unchanged.

    For the recomputation of a checkpointed forward pass, which would otherwise update them a second time.
    """
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            if tracked is not None:
                norm.num_batches_tracked.copy_(tracked)


class SVSDecoderStage(nn.Module):
    """One 2D decoder stage: nearest x2 upsampling -> 2x2 conv (halves channels) -> BN -> ReLU -> channel
    attention with the skip -> 2D residual block.

    Args:
        in_channels: Channels of the incoming decoder feature (2C).
        out_channels: Channels of the skip and of the output (C).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up_conv = ConvNormAct(2, in_channels, out_channels, 2)
        self.attention = SkipChannelAttention(out_channels)
        self.block = ResidualBlock(2, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x (B, 2C, H/2, W/2)``, ``skip (B, C, H, W)`` -> ``(B, C, H, W)``."""
        high = self.up_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return self.block(self.attention(skip, high))


class SVSNet(SegmentationModel):
    """SVSnet for vessel segmentation of the labelled frame of a T-frame X-ray angiography window.

    Input ``(B, in_channels, T, H, W)`` with ``T == window_length`` and H, W divisible by 64; output logits
    ``(B, num_classes, H, W)``.

    Args:
        window_length: Frames T per window (4 in the paper; 1 gives a single-frame model).
        in_channels: Input channels (1 for grey-level angiograms).
        num_classes: Output channels (1: vessel logits for a sigmoid/Dice loss).
        base_channels: Channels at the first level (8); level i has ``base_channels * 2**i``.
        dropout: Channel-wise dropout before downsampling at levels 5 and 6 (0.5 in the paper).
        checkpoint: Activation checkpointing of the encoder levels while training (less memory, about one more
            encoder forward pass of compute per step; see the module docstring).
        input_norm: ``"none"`` (the frames as given: SVSnet's, each divided by its maximum) or ``"local"``
            (:class:`~medseg_core.models.blocks.LocalContrastNorm` first: no absolute grey levels, for frames whose
            display differs from the training data's; the kit's ``xca.input_norm``). No parameters either way.

    Example:
        >>> model = SVSNet(window_length=4)
        >>> model(torch.rand(2, 1, 4, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    input_kind = "window"

    def __init__(
        self,
        window_length: int = 4,
        in_channels: int = 1,
        num_classes: int = 1,
        base_channels: int = 8,
        dropout: float = 0.5,
        checkpoint: bool = False,
        input_norm: str = "none",
    ) -> None:
        super().__init__()
        if window_length < 1:
            raise ValueError(f"window_length must be >= 1; got {window_length}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}; got {input_norm!r}")
        self.window_length = window_length
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.checkpoint = checkpoint
        self.size_divisor = 2**NUM_LEVELS
        widths = [base_channels * 2**level for level in range(NUM_LEVELS + 1)]  # 8 ... 256, bottleneck 512

        self.input_norm = LocalContrastNorm() if input_norm == "local" else nn.Identity()
        self.stem = nn.Conv3d(in_channels, widths[0], kernel_size=1)
        self.encoder = nn.ModuleList(
            SVSEncoderLevel(
                widths[level],
                widths[level + 1],
                window_length,
                dropout=dropout if level in DROPOUT_LEVELS else 0.0,
                attention=level in ATTENTION_LEVELS,
            )
            for level in range(NUM_LEVELS)
        )
        self.bottleneck_fusion = nn.Conv3d(widths[-1], widths[-1], (window_length, 1, 1))
        self.decoder = nn.ModuleList(
            SVSDecoderStage(widths[level + 1], widths[level]) for level in reversed(range(NUM_LEVELS))
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def expected_input(self) -> str:
        return (f"a 5D window (B, {self.in_channels}, T, H, W) with T = {self.window_length} and H, W divisible by "
                f"{self.size_divisor}")

    def check_input_shape(self, x: torch.Tensor) -> None:
        """The base checks, then the window length: T must be the ``window_length`` the model was built for."""
        super().check_input_shape(x)
        if x.shape[2] != self.window_length:
            raise ValueError(
                f"SVSNet was built for window_length={self.window_length}, shape {self.expected_input()}; got "
                f"T={x.shape[2]} in {tuple(x.shape)}. Build the model with window_length={x.shape[2]} or change the "
                "dataset's window."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, T, H, W)`` -> decoder features ``(B, base_channels, H, W)``."""
        self.check_input_shape(x)
        x = self.stem(self.input_norm(x))
        skips = []
        for level in self.encoder:
            skip, x = self._run_level(level, x)
            skips.append(skip)
        x = self.bottleneck_fusion(x).squeeze(2)  # (B, 512, H/64, W/64)
        for stage, skip in zip(self.decoder, reversed(skips)):
            x = stage(x, skip)
        return x

    def _run_level(self, level: SVSEncoderLevel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One encoder level, under activation checkpointing when ``checkpoint`` is set and gradients are on."""
        if not (self.checkpoint and self.training and torch.is_grad_enabled()):
            return level(x)
        return checkpoint(level, x, use_reentrant=False,
                          context_fn=lambda: (nullcontext(), _frozen_batch_norm_statistics(level)))

    def forward_head(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """``(B, base_channels, H, W)`` -> logits ``(B, num_classes, H, W)`` (features are at full resolution)."""
        return self.head(x)


@register_model
def svsnet(**kwargs) -> SVSNet:
    """SVSnet as in the paper (T = 4 by default; pass ``window_length`` for other windows)."""
    return SVSNet(**kwargs)
