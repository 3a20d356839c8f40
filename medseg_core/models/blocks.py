"""Building blocks shared by the kit's models, written once for 2D and 3D.

Owns the layers more than one architecture (or more than one level of an architecture) uses:

* :class:`ConvNormAct` - convolution -> batch norm -> ReLU, with TensorFlow/Keras-style ``"same"`` padding
  (extra row/column/frame at the end for even kernels or strides), so Keras architectures port exactly.
* :class:`SeparableConvNormAct` - depthwise-separable convolution (a per-channel convolution, then a 1x1 one)
  -> batch norm -> ReLU, as in Xception (Chollet, CVPR 2017) and DeepLabV3+ (Chen et al., ECCV 2018).
* :class:`ResidualBlock` - conv-BN-ReLU-conv-BN plus the input, then ReLU (He et al., CVPR 2016).
* :class:`LocalContrastNorm` - a parameter-free input layer: each frame minus its local mean over its local
  standard deviation (Gaussian windows), so a model sees no absolute grey levels and no slow background.
* Attention blocks, each keeping its last weights in ``last_weights`` (detached, shape ``(B, C)``):

  - :class:`ECA` - efficient channel attention (Wang et al., "ECA-Net", CVPR 2020, arXiv 1910.03151).
  - :class:`GlobalMaxChannelAttention` - the encoder channel attention of SVSnet (Hao et al., Neural
    Networks 2020, arXiv 2102.05229): global max pool -> C->C -> ReLU -> C->C -> sigmoid -> scale.
  - :class:`SkipChannelAttention` - SVSnet's decoder block that weights a skip connection by the channel
    statistics of the skip and the upsampled decoder feature together.

Dimension is chosen MONAI-style with a ``spatial_dims`` argument (2 or 3) rather than near-copies of each
class. The attention blocks pool over all spatial axes first, so they work for any dimension unchanged; their
"1x1(x1) convolutions" act on a pooled ``(B, C)`` vector, which is exactly a linear layer.
Architecture-specific blocks (SVSnet's encoder level, the ASPP of DeepLabV3+) live in their model files.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "conv_type",
    "norm_type",
    "dropout_type",
    "to_tuple",
    "same_padding",
    "ConvNormAct",
    "SeparableConvNormAct",
    "ResidualBlock",
    "LocalContrastNorm",
    "AttentionModule",
    "ECA",
    "eca_kernel_size",
    "GlobalMaxChannelAttention",
    "SkipChannelAttention",
    "collect_attention_weights",
]

_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_NORM: dict[int, type[nn.Module]] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_DROPOUT: dict[int, type[nn.Module]] = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}


def _check_spatial_dims(spatial_dims: int) -> None:
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 1, 2 or 3; got {spatial_dims!r}")


def conv_type(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv1d``/``nn.Conv2d``/``nn.Conv3d`` for ``spatial_dims`` 1/2/3."""
    _check_spatial_dims(spatial_dims)
    return _CONV[spatial_dims]


def norm_type(spatial_dims: int) -> type[nn.Module]:
    """``nn.BatchNorm1d``/``2d``/``3d`` for ``spatial_dims`` 1/2/3."""
    _check_spatial_dims(spatial_dims)
    return _NORM[spatial_dims]


def dropout_type(spatial_dims: int) -> type[nn.Module]:
    """Channel-wise ("spatial") dropout, ``nn.Dropout1d``/``2d``/``3d``, for ``spatial_dims`` 1/2/3."""
    _check_spatial_dims(spatial_dims)
    return _DROPOUT[spatial_dims]


def to_tuple(value: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """Repeat an int ``spatial_dims`` times, or check that a sequence has ``spatial_dims`` entries."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    value = tuple(int(v) for v in value)
    if len(value) != spatial_dims:
        raise ValueError(f"expected an int or {spatial_dims} values (one per spatial axis); got {value}")
    return value


def same_padding(
    input_size: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> list[int]:
    """TensorFlow ``"same"`` padding as an ``F.pad`` argument (last axis first, ``[before, after]`` pairs).

    The output has ``ceil(n / stride)`` samples per axis; when the total padding is odd the extra sample goes
    at the end, as in Keras (for a 2x2 kernel at stride 1: nothing before, one after).
    """
    pad: list[int] = []
    for n, k, s, d in zip(reversed(input_size), reversed(kernel_size), reversed(stride), reversed(dilation)):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        pad += [total // 2, total - total // 2]
    return pad


class ConvNormAct(nn.Module):
    """Convolution -> BatchNorm -> ReLU for 2D or 3D inputs.

    Input ``(B, C_in, *spatial)``; output ``(B, C_out, *spatial')`` with ``spatial' = ceil(spatial / stride)``
    when ``padding="same"``.

    Args:
        spatial_dims: 2 for ``(B, C, H, W)``, 3 for ``(B, C, T, H, W)``.
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size, an int or one value per axis.
        stride: Stride, an int or one value per axis.
        padding: ``"same"`` (Keras semantics, asymmetric when needed) or explicit symmetric padding.
        dilation: Dilation, an int or one value per axis.
        bias: Give the convolution a bias (redundant before BatchNorm, but Keras ports keep it to match weights).
        norm: Add BatchNorm after the convolution.
        act: Add ReLU at the end.
        groups: Convolution groups (``in_channels`` for a depthwise convolution).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = "same",
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        norm: bool = True,
        act: bool = True,
        groups: int = 1,
    ) -> None:
        super().__init__()
        self.kernel_size = to_tuple(kernel_size, spatial_dims)
        self.stride = to_tuple(stride, spatial_dims)
        self.dilation = to_tuple(dilation, spatial_dims)
        symmetric_same = all(s == 1 and k % 2 == 1 for k, s in zip(self.kernel_size, self.stride))
        # "same" that a symmetric conv padding can express is done by the conv; the rest by F.pad in forward.
        self.dynamic_same = padding == "same" and not symmetric_same
        if padding == "same":
            conv_padding: int | tuple[int, ...] = (
                0 if self.dynamic_same else tuple(d * (k - 1) // 2 for k, d in zip(self.kernel_size, self.dilation))
            )
        elif isinstance(padding, str):
            raise ValueError(f"padding must be 'same' or integers; got {padding!r}")
        else:
            conv_padding = to_tuple(padding, spatial_dims)
        self.conv = conv_type(spatial_dims)(
            in_channels,
            out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=conv_padding,
            dilation=self.dilation,
            groups=groups,
            bias=bias,
        )
        self.norm = norm_type(spatial_dims)(out_channels) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_same:
            x = F.pad(x, same_padding(x.shape[2:], self.kernel_size, self.stride, self.dilation))
        return self.act(self.norm(self.conv(x)))


class SeparableConvNormAct(nn.Module):
    """Depthwise-separable convolution -> BatchNorm -> ReLU for 2D or 3D inputs.

    A depthwise convolution (one ``kernel_size`` filter per input channel, no bias) followed by a pointwise 1x1
    convolution that mixes channels, then BatchNorm and ReLU: the "atrous separable convolution" of DeepLabV3+
    (Chen et al., ECCV 2018, arXiv 1802.02611) and ``segmentation_models_pytorch``'s ``SeparableConv2d``. It
    replaces a dense ``C_in x C_out x k^d`` kernel by ``C_in x k^d + C_in x C_out`` weights (about ``k^d`` times
    fewer parameters and FLOPs for wide layers). Same arguments and shapes as :class:`ConvNormAct`; ``bias`` goes to
    the pointwise convolution.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: str | int | Sequence[int] = "same",
        dilation: int | Sequence[int] = 1,
        bias: bool = False,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(spatial_dims, in_channels, in_channels, kernel_size, stride, padding, dilation,
                                     bias=False, norm=False, act=False, groups=in_channels)
        self.pointwise = ConvNormAct(spatial_dims, in_channels, out_channels, 1, bias=bias, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class ResidualBlock(nn.Module):
    """Two 3x3(x3) convolutions with BatchNorm and an identity shortcut: ``relu(x + bn(conv(relu(bn(conv(x))))))``.

    Shape-preserving: ``(B, C, *spatial)`` -> ``(B, C, *spatial)``.

    Args:
        spatial_dims: 2 or 3.
        channels: Input and output channels.
        kernel_size: Kernel size of both convolutions ("same" padding).
        bias: Biases on the convolutions (kept by Keras ports).
    """

    def __init__(self, spatial_dims: int, channels: int, kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(spatial_dims, channels, channels, kernel_size, bias=bias)
        self.conv2 = ConvNormAct(spatial_dims, channels, channels, kernel_size, bias=bias, act=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class AttentionModule(nn.Module):
    """Base of the attention blocks: keeps the last channel weights, detached, in ``last_weights`` ``(B, C)``."""

    last_weights: torch.Tensor | None

    def __init__(self) -> None:
        super().__init__()
        self.last_weights = None

    def _remember(self, weights: torch.Tensor) -> torch.Tensor:
        self.last_weights = weights.detach()
        return weights


def _spatial_axes(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    """ECA's adaptive kernel size: ``t = int(|(log2(C) + b) / gamma|)``, ``k = t`` if odd else ``t + 1``.

    Examples: 3 for 24 channels, 5 for 1280 channels.
    """
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(AttentionModule):
    """Efficient channel attention (Wang et al., CVPR 2020): GAP -> Conv1d across channels (k, no bias) -> sigmoid
    -> scale. Only ``k`` parameters; works for any number of spatial axes.

    Input and output ``(B, C, *spatial)``; ``last_weights`` is ``(B, C)``.

    Args:
        channels: Number of channels C; sets the kernel size unless ``kernel_size`` is given.
        kernel_size: Override the adaptive kernel size (must be odd).
        gamma: ECA's gamma (2 in the paper).
        b: ECA's b (1 in the paper).
    """

    def __init__(self, channels: int, kernel_size: int | None = None, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        self.kernel_size = eca_kernel_size(channels, gamma, b) if kernel_size is None else kernel_size
        if self.kernel_size % 2 == 0:
            raise ValueError(f"ECA kernel_size must be odd to keep C channels; got {self.kernel_size}")
        self.conv = nn.Conv1d(1, 1, self.kernel_size, padding=self.kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=_spatial_axes(x))  # (B, C)
        weights = self._remember(torch.sigmoid(self.conv(pooled.unsqueeze(1)).squeeze(1)))
        return x * weights.view(*weights.shape, *([1] * (x.ndim - 2)))


class GlobalMaxChannelAttention(AttentionModule):
    """SVSnet encoder channel attention: global max pool -> C->C -> ReLU -> C->C -> sigmoid -> scale.

    No reduction ratio (both layers keep C channels), as in the official Keras code. Input and output
    ``(B, C, *spatial)``; ``last_weights`` is ``(B, C)``.

    Args:
        channels: Number of channels C.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.amax(dim=_spatial_axes(x))  # (B, C)
        weights = self._remember(torch.sigmoid(self.fc2(F.relu(self.fc1(pooled)))))
        return x * weights.view(*weights.shape, *([1] * (x.ndim - 2)))


class SkipChannelAttention(AttentionModule):
    """SVSnet decoder channel attention on a skip ("low") and an upsampled decoder feature ("high").

    ``w = sigmoid(fc2(relu(fc1(GAP(concat[low, high])))))`` with 2C -> C -> C channels; ``out = low * w + high``.

    Args:
        channels: Channels C of each input; both inputs are ``(B, C, *spatial)``, so is the output.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2 * channels, channels)
        self.fc2 = nn.Linear(channels, channels)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        if low.shape != high.shape:
            raise ValueError(f"skip and decoder features must have the same shape; got {tuple(low.shape)} "
                             f"and {tuple(high.shape)}")
        pooled = torch.cat([low, high], dim=1).mean(dim=_spatial_axes(low))  # (B, 2C)
        weights = self._remember(torch.sigmoid(self.fc2(F.relu(self.fc1(pooled)))))
        return low * weights.view(*weights.shape, *([1] * (low.ndim - 2))) + high


def collect_attention_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{module name: last_weights (B, C)}`` for every :class:`AttentionModule` in ``model`` that has run."""
    return {
        name: module.last_weights
        for name, module in model.named_modules()
        if isinstance(module, AttentionModule) and module.last_weights is not None
    }


class LocalContrastNorm(nn.Module):
    """Local contrast normalisation of every frame: ``(x - G * x) / sqrt(G * (x - G * x)**2 + floor**2)``.

    ``G *`` is a Gaussian blur of sd ``sigma_fraction`` times the frame's longer side (reflect padding), applied to
    each ``(H, W)`` frame of a ``(B, C, H, W)`` or ``(B, C, T, H, W)`` input on its own. The output does not
    change when a frame's grey levels are scaled or shifted (up to the ``floor`` on the local sd, in input units,
    which keeps flat regions from amplifying noise), and slow background (heart shadow, diaphragm, vignetting)
    is removed. No parameters: checkpoints without it load unchanged. Computed in float32 under autocast.

    Args:
        sigma_fraction: sd of the Gaussian window, fraction of the frame's longer side (1/16: 8 px at 128).
        floor: smallest local standard deviation, input units.
    """

    def __init__(self, sigma_fraction: float = 1.0 / 16.0, floor: float = 0.01) -> None:
        super().__init__()
        if not 0.0 < sigma_fraction < 0.5 or floor <= 0.0:
            raise ValueError(f"sigma_fraction must be in (0, 0.5) and floor > 0, got {sigma_fraction}, {floor}")
        self.sigma_fraction = sigma_fraction
        self.floor = floor

    def _blur(self, frames: torch.Tensor, sigma: float) -> torch.Tensor:
        """Separable Gaussian blur of ``(N, 1, H, W)`` frames (reflect padding, the window cut to the frame).

        Not torchvision's ``gaussian_blur``: it convolves with the full 2D kernel, (2r + 1)² taps per pixel against
        2 (2r + 1) here (49² against 98 at 128², sigma 8), on every forward pass of the model.
        """
        radius = max(1, min(int(math.ceil(3.0 * sigma)), min(frames.shape[-2:]) - 1))
        offsets = torch.arange(-radius, radius + 1, dtype=frames.dtype, device=frames.device)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = kernel / kernel.sum()
        padded = F.pad(frames, (radius, radius, radius, radius), mode="reflect")
        blurred = F.conv2d(padded, kernel.view(1, 1, 1, -1))
        return F.conv2d(blurred, kernel.view(1, 1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, [T,] H, W)`` -> the same shape, float32."""
        shape = x.shape
        sigma = self.sigma_fraction * max(shape[-2:])
        with torch.autocast(device_type=x.device.type, enabled=False):
            frames = x.reshape(-1, 1, *shape[-2:]).float()
            centred = frames - self._blur(frames, sigma)
            spread = torch.sqrt(self._blur(centred**2, sigma) + self.floor**2)
            return (centred / spread).reshape(shape)
