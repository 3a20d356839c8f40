"""A plain 2D U-Net, the single-frame baseline next to SVSnet and DeepLabV3+.

Ronneberger, Fischer, Brox, "U-Net: Convolutional networks for biomedical image segmentation", MICCAI 2015,
arXiv 1505.04597, with the now-usual changes: "same" padding (output size = input size) and BatchNorm after
every 3x3 convolution.

Each encoder level is two 3x3 conv-BN-ReLU layers followed by 2x2 max pooling; each decoder stage is a 2x2
transposed convolution that halves the channels, concatenation with the skip, then two 3x3 conv-BN-ReLU
layers; a 1x1 convolution gives logits. At the defaults (``base_channels=36``, ``depth=4``, one input channel,
one class) it has 9,823,429 trainable parameters, close to SVSnet's 10,187,345, so comparisons are not a
matter of size.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import register_model
from .base import SegmentationModel
from .blocks import ConvNormAct

__all__ = ["UNet", "DoubleConv", "UNetUpStage", "unet2d"]


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers: ``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels of both convolutions.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ConvNormAct(2, in_channels, out_channels), ConvNormAct(2, out_channels, out_channels))


class UNetUpStage(nn.Module):
    """Decoder stage: 2x2 transposed conv (2C -> C), concatenation with the skip (C), :class:`DoubleConv` to C.

    Args:
        in_channels: Channels of the incoming decoder feature (2C).
        out_channels: Channels of the skip and of the output (C).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.convs = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``x (B, 2C, H/2, W/2)``, ``skip (B, C, H, W)`` -> ``(B, C, H, W)``."""
        return self.convs(torch.cat([skip, self.up(x)], dim=1))


class UNet(SegmentationModel):
    """2D U-Net returning logits.

    Input ``(B, in_channels, H, W)`` with H and W divisible by ``2**depth``; output ``(B, num_classes, H, W)``.

    Args:
        in_channels: Input channels (1 for angiograms, 3 for RGB OCT frames).
        num_classes: Output channels (1 for a binary sigmoid output, K for a K-class softmax).
        base_channels: Channels at full resolution; level i has ``base_channels * 2**i``.
        depth: Number of 2x downsamplings (the bottleneck sits at ``1 / 2**depth``).

    Example:
        >>> UNet(in_channels=1, num_classes=1)(torch.rand(2, 1, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 1, base_channels: int = 36, depth: int = 4) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1; got {depth}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.size_divisor = 2**depth
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            DoubleConv(in_channels if level == 0 else widths[level - 1], widths[level]) for level in range(depth)
        )
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(widths[depth - 1], widths[depth])
        self.decoder = nn.ModuleList(UNetUpStage(widths[level + 1], widths[level]) for level in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, H, W)`` -> decoder features ``(B, base_channels, H, W)``."""
        self.check_input_shape(x)
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for stage, skip in zip(self.decoder, reversed(skips)):
            x = stage(x, skip)
        return x

    def forward_head(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """``(B, base_channels, H, W)`` -> logits ``(B, num_classes, H, W)`` (features are at full resolution)."""
        return self.head(x)


@register_model
def unet2d(**kwargs) -> UNet:
    """2D U-Net baseline (about SVSnet's size at the defaults)."""
    return UNet(**kwargs)
