"""Improved DeepLabV3+ (MobileNetV2 + ASPP + ECA) for lipid-core plaque segmentation in coronary OCT.

DeepLabV3+: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-decoder with atrous separable convolution for semantic
image segmentation", ECCV 2018, arXiv 1802.02611. Backbone: MobileNetV2 (Sandler et al., CVPR 2018,
arXiv 1801.04381), taken from torchvision. Attention: ECA (Wang et al., CVPR 2020, arXiv 1910.03151).
Layer choices follow the reference implementation's parent repository (bubbliiiing/deeplabv3-plus-pytorch, MIT): biases on the
ASPP and decoder convolutions, dilation surgery on the backbone, dropout 0.5 / 0.1 in the decoder. With
2 classes, output stride 16 and both ECA blocks the model has 5,813,274 parameters, as the reference
implementation's.

ECA placements (``eca=``): ``"skip"`` on the 24-channel low-level feature before its 1x1 projection (the
reference implementation README's "skip connection" ECA); ``"aspp"`` on the 1280-channel ASPP concatenation before the fusion conv (in the
reference code only); ``"both"`` (the reference implementation) or ``"none"`` (plain DeepLabV3+).

``separable=True`` makes the three dilated 3x3 ASPP branches and the two 3x3 decoder convolutions depthwise
separable (:class:`~medseg_core.models.blocks.SeparableConvNormAct`: a per-channel 3x3 convolution, then a 1x1
one), the "atrous separable convolution" that Chen et al. 2018 use in ASPP and the decoder and that
``segmentation_models_pytorch``'s DeepLabV3Plus uses too. With 2 classes, output stride 16 and both ECA blocks it
has 2,713,994 parameters instead of 5,813,274 and a fifth of the forward FLOPs (2.8 instead of 13.1 GFLOPs for
one 256² image). The default, ``separable=False``, is the reference implementation's model, unchanged.

Defects of the reference implementation fixed:

* the reference implementation's ``forward()`` drew matplotlib heatmaps of the attention weights (and failed for batch > 1); here
  the attention blocks keep their weights in ``last_weights`` and :meth:`DeepLabV3Plus.attention_weights`
  returns them, and drawing is left to the plotting code;
* the reference implementation's ``train.py`` imported the model from a module name that does not exist; here the model is built
  through the registry, ``create_model("deeplabv3plus", ...)``;
* pretrained weights are loaded with an explicit :class:`WeightReport` (loaded / new / unused / mismatched
  tensors, logged and warned about), never a silent ``strict=False`` that leaves attention layers random.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

from . import register_model
from .base import SegmentationModel
from .blocks import ECA, ConvNormAct, SeparableConvNormAct

__all__ = ["DeepLabV3Plus", "ASPP", "WeightReport", "mobilenet_v2_backbone", "adapt_input_weight", "deeplabv3plus",
           "PAPER_ATROUS_RATES",
           "scaled_atrous_rates", "aspp_taps"]

logger = logging.getLogger(__name__)

ECA_PLACEMENTS = ("none", "skip", "aspp", "both")
LOW_LEVEL_BLOCKS = 4  # backbone[:4] -> 24 channels at stride 4
BACKBONE_CHANNELS = 320
LOW_LEVEL_CHANNELS = 24
# Dilation surgery: {output stride: [(first block, end block, dilation), ...]} on MobileNetV2's features.
DILATED_BLOCKS = {16: [(14, 17, 2)], 8: [(7, 14, 2), (14, 17, 4)]}
PAPER_ATROUS_RATES = (6, 12, 18)  # at output stride 16 (doubled at 8), for DeepLab's 513-pixel crops
PAPER_FEATURE_SIZE = 33  # ceil(513 / 16): the feature map those rates were chosen for


def _feature_size(image_size: int, output_stride: int) -> int:
    return -(-image_size // output_stride)


def scaled_atrous_rates(image_size: int, output_stride: int = 16) -> tuple[int, int, int]:
    """ASPP dilation rates scaled with the feature map, so that no 3x3 branch degenerates at small frames.

    DeepLab chose (6, 12, 18) at output stride 16 for a 33-pixel feature map (513-pixel crops) and doubles them at
    output stride 8, i.e. it keeps rate / feature size fixed. This keeps that ratio for
    ``ceil(image_size / output_stride)`` pixels, rounded, at least 1, increasing where the map allows, and below
    the feature size: a rate at or above it reads only padding off the centre tap, which makes the branch a 1x1
    convolution (:func:`aspp_taps`). E.g. 96 px -> (1, 2, 3), 128 px -> (1, 3, 4), 256 px -> (3, 6, 9),
    513 px -> (6, 12, 18).
    """
    size = _feature_size(image_size, output_stride)
    rates: list[int] = []
    for paper_rate in PAPER_ATROUS_RATES:
        rate = max(1, round(paper_rate * size / PAPER_FEATURE_SIZE), rates[-1] + 1 if rates else 1)
        rates.append(min(rate, max(size - 1, 1)))
    return tuple(rates)  # type: ignore[return-value]


def aspp_taps(image_size: int, output_stride: int = 16,
              atrous_rates: tuple[int, ...] | None = None) -> list[dict[str, object]]:
    """Where each dilated 3x3 ASPP branch reads, for a square ``image_size`` frame: image or zero padding.

    For every output position of the ``h x h`` feature map (``h = ceil(image_size / output_stride)``) the 9 taps
    of a 3x3 kernel with dilation ``rate`` sit at offsets ``{-rate, 0, rate}``; a tap outside the map reads
    padding. Returns one row per branch: ``rate``, ``feature_size``, ``image_taps`` (share of all taps over all
    positions that read the image; 1/9 means only the centre) and ``is_1x1`` (True when no position has an
    off-centre tap in the image: the branch computes what a 1x1 convolution computes).
    """
    size = _feature_size(image_size, output_stride)
    rates = tuple(atrous_rates) if atrous_rates is not None else tuple(r * 16 // output_stride for r in PAPER_ATROUS_RATES)
    rows = []
    positions = torch.arange(size)
    for rate in rates:
        inside_1d = torch.stack([(positions + offset >= 0) & (positions + offset < size)
                                 for offset in (-rate, 0, rate)]).float()  # (3, h): tap offset x position
        inside = inside_1d.sum(0)  # per position: taps of one axis in the image
        image_taps = float((inside[:, None] * inside[None, :]).mean() / 9)
        rows.append({"rate": rate, "feature_size": size, "image_taps": image_taps, "is_1x1": bool(inside.max() == 1)})
    return rows


def _dilate_blocks(blocks: nn.Module, dilation: int) -> None:
    """Remove the stride of ``blocks`` and dilate their 3x3 convolutions, in place (reference DeepLabV3+ recipe).

    The strided 3x3 conv gets ``dilation // 2`` (it sits where the resolution used to halve), the others
    ``dilation``; padding equals dilation so the spatial size is kept.
    """
    for module in blocks.modules():
        if not isinstance(module, nn.Conv2d):
            continue
        if module.stride == (2, 2):
            module.stride = (1, 1)
            if module.kernel_size == (3, 3):
                module.dilation = module.padding = (dilation // 2, dilation // 2)
        elif module.kernel_size == (3, 3):
            module.dilation = module.padding = (dilation, dilation)


def mobilenet_v2_backbone(output_stride: int = 16, in_channels: int = 3) -> nn.Sequential:
    """torchvision's MobileNetV2 ``features[:-1]`` (320 channels out), dilated for ``output_stride`` 8 or 16.

    ``(B, in_channels, H, W)`` -> ``(B, 320, H / output_stride, W / output_stride)``; ``[:4]`` gives the 24-channel
    low-level feature at stride 4. Weights are left at torchvision's initialisation; with ``in_channels != 3`` the
    stem convolution is rebuilt for that many channels (:func:`adapt_input_weight` adapts RGB weights to it).
    """
    if output_stride not in DILATED_BLOCKS:
        raise ValueError(f"output_stride must be 8 or 16; got {output_stride!r}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1; got {in_channels!r}")
    features = mobilenet_v2(weights=None).features[:-1]
    if in_channels != 3:
        stem = features[0][0]
        features[0][0] = nn.Conv2d(in_channels, stem.out_channels, stem.kernel_size, stem.stride, stem.padding,
                                   bias=False)
    for start, end, dilation in DILATED_BLOCKS[output_stride]:
        _dilate_blocks(features[start:end], dilation)
    return features


def adapt_input_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """RGB stem weights ``(C_out, 3, k, k)`` adapted to ``in_channels``, the rule timm uses (``adapt_input_conv``).

    One channel (grey images): the sum over R, G and B, so a grey image ``g`` copied to three channels and the
    grey image itself give the same response. Other counts: RGB repeated cyclically and scaled by ``3 /
    in_channels``, which keeps the expected activation size.
    """
    if in_channels == weight.shape[1]:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = -(-in_channels // weight.shape[1])
    return weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1 conv, three dilated 3x3 convs and image pooling, concatenated,
    optionally re-weighted by ECA, fused by a 1x1 conv.

    ``(B, C_in, h, w)`` -> ``(B, out_channels, h, w)``. Every branch is conv (with bias) -> BN -> ReLU.

    Args:
        in_channels: Backbone channels (320).
        out_channels: Channels of each branch and of the output (256).
        atrous_rates: Dilations of the 3x3 branches (6r, 12r, 18r with r = 16 / output stride).
        eca: Apply :class:`ECA` to the ``5 * out_channels`` concatenation before the fusion conv.
        dropout: Dropout after the fusion conv.
        separable: Depthwise-separable dilated 3x3 branches (:class:`SeparableConvNormAct`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        atrous_rates: tuple[int, int, int] = (6, 12, 18),
        eca: bool = False,
        dropout: float = 0.1,
        separable: bool = False,
    ) -> None:
        super().__init__()
        self.atrous_rates = tuple(atrous_rates)
        conv3x3 = SeparableConvNormAct if separable else ConvNormAct
        self.branches = nn.ModuleList(
            [ConvNormAct(2, in_channels, out_channels, 1, bias=True)]
            + [conv3x3(2, in_channels, out_channels, 3, dilation=rate, bias=True) for rate in atrous_rates]
        )
        self.image_pool = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), ConvNormAct(2, in_channels, out_channels, 1, bias=True)
        )
        concat_channels = out_channels * (len(atrous_rates) + 2)
        self.attention = ECA(concat_channels) if eca else nn.Identity()
        self.fuse = nn.Sequential(ConvNormAct(2, concat_channels, out_channels, 1, bias=True), nn.Dropout(dropout))

    @property
    def branch_names(self) -> list[str]:
        """Names of the concatenated branches, in channel order (``out_channels`` channels each)."""
        return ["1×1", *(f"3×3 rate {rate}" for rate in self.atrous_rates), "image pooling"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.image_pool(x).expand(-1, -1, *x.shape[-2:])
        return self.fuse(self.attention(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1)))


@dataclass
class WeightReport:
    """What loading pretrained weights did, by state-dict key.

    Attributes:
        source: The URL or file the weights came from.
        loaded: Model keys whose tensors were copied from the source.
        missing: Model keys the source does not have; they keep their initialisation (e.g. ECA, ASPP, decoder
            when the source is an ImageNet MobileNetV2).
        unexpected: Source keys the model has no place for (e.g. MobileNetV2's last conv and classifier).
        mismatched: Keys present in both with different shapes (e.g. a classifier for another number of
            classes); they keep their initialisation.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for logs: counts and the first few keys of each list."""

        def head(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")

        lines = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.missing:
            lines.append(f"{len(self.missing)} new (not in the source, initialised randomly): {head(self.missing)}")
        if self.unexpected:
            lines.append(f"{len(self.unexpected)} unused (no place in this model): {head(self.unexpected)}")
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} shape-mismatched (initialised randomly): {head(self.mismatched)}")
        return "; ".join(lines)


def _imagenet_state_dict(progress: bool) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet MobileNetV2 weights (cached in torch hub), with a clear error when offline."""
    weights = MobileNet_V2_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=progress, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError/HTTPError/timeouts are OSErrors; a bad hash a RuntimeError
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
        raise RuntimeError(
            f"Could not get the ImageNet MobileNetV2 weights (torchvision MobileNet_V2_Weights.IMAGENET1K_V1): "
            f"downloading {weights.url} failed with {type(error).__name__}: {error}. Either download that file on a "
            f"machine with internet access and put it at {target} (torch hub's checkpoint folder; set TORCH_HOME to "
            f"move it), or pass a local file instead: pretrained='path/to/mobilenet_v2.pth' (a state dict of a "
            f"torchvision MobileNetV2 or of this model), or pretrained=None to start from scratch."
        ) from error


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """A state dict from ``path``; also accepts checkpoints that keep it under ``"state_dict"`` or ``"model"``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights file {path} does not exist; pass pretrained=None, 'imagenet', or the path of a "
            f"saved state dict (torchvision MobileNetV2 or DeepLabV3Plus)."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper_key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(wrapper_key), Mapping):
            state = state[wrapper_key]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__}); save model.state_dict().")
    return state


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ with a MobileNetV2 backbone and optional ECA attention, returning logits.

    Input ``(B, 3, H, W)`` (ImageNet-normalised RGB); output ``(B, num_classes, H, W)``. H and W should be
    multiples of ``output_stride`` for exact feature alignment; other sizes work through interpolation.

    Args:
        num_classes: Output classes K (2 for background / lipid plaque).
        in_channels: Input channels: 3 for RGB OCT frames (the reference implementation), 1 for grey images such
            as angiograms. ImageNet or RGB weights load into another count through :func:`adapt_input_weight`.
        output_stride: 16 (seed, faster) or 8 (finer features, about 3x the compute).
        atrous_rates: dilations of the three 3x3 ASPP branches; None: the paper's (6, 12, 18) x 16 / output
            stride. Below about 400-pixel frames some of those read only padding (:func:`aspp_taps`); the
            kit's ``cpu`` and ``smoke`` profiles pass :func:`scaled_atrous_rates` of their frame size.
        eca: ECA placement: ``"none"``, ``"skip"``, ``"aspp"`` or ``"both"`` (seed).
        separable: Depthwise-separable 3x3 convolutions in ASPP and the decoder (Chen et al. 2018, smp); the
            default ``False`` is the reference implementation's dense model.
        pretrained: ``None``, ``"imagenet"`` (torchvision weights, downloaded once to torch hub), or the path
            of a state dict of a torchvision MobileNetV2 or of this model. The result is in ``weight_report``.
        progress: Show a progress bar while downloading ImageNet weights.

    Example:
        >>> model = DeepLabV3Plus(num_classes=2).eval()
        >>> model(torch.rand(1, 3, 64, 64)).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(
        self,
        num_classes: int = 2,
        in_channels: int = 3,
        output_stride: int = 16,
        atrous_rates: tuple[int, int, int] | None = None,
        eca: str = "both",
        separable: bool = False,
        pretrained: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if eca not in ECA_PLACEMENTS:
            raise ValueError(f"eca must be one of {ECA_PLACEMENTS}; got {eca!r}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.output_stride = output_stride
        self.eca = eca
        self.separable = separable
        self.backbone = mobilenet_v2_backbone(output_stride, in_channels)
        if atrous_rates is None:
            atrous_rates = tuple(rate * 16 // output_stride for rate in PAPER_ATROUS_RATES)  # type: ignore[assignment]
        self.aspp = ASPP(
            BACKBONE_CHANNELS, 256, atrous_rates=tuple(atrous_rates), eca=eca in ("aspp", "both"), separable=separable,
        )
        self.low_level_attention = ECA(LOW_LEVEL_CHANNELS) if eca in ("skip", "both") else nn.Identity()
        self.low_level_projection = ConvNormAct(2, LOW_LEVEL_CHANNELS, 48, 1, bias=True)
        conv3x3 = SeparableConvNormAct if separable else ConvNormAct
        self.decoder = nn.Sequential(
            conv3x3(2, 256 + 48, 256, 3, bias=True),
            nn.Dropout(0.5),
            conv3x3(2, 256, 256, 3, bias=True),
            nn.Dropout(0.1),
        )
        self.classifier = nn.Conv2d(256, num_classes, kernel_size=1)
        self.weight_report: WeightReport | None = None
        if pretrained is not None:
            self.load_pretrained(pretrained, progress=progress)

    def expected_input(self) -> str:
        if self.in_channels == 3:
            return "(B, 3, H, W) ImageNet-normalised RGB"
        return f"(B, {self.in_channels}, H, W)"

    def check_input_shape(self, x: torch.Tensor) -> None:
        """The base checks (with a hint for grey images), then a batch of at least 2 in training mode."""
        if x.ndim == 4 and x.shape[1] == 1 and self.in_channels == 3:
            raise ValueError(f"DeepLabV3Plus expects {self.expected_input()}; got shape {tuple(x.shape)}. Repeat a "
                             "grey image to 3 channels with x.expand(-1, 3, -1, -1).")
        super().check_input_shape(x)
        if self.training and x.shape[0] == 1:
            raise ValueError(
                "DeepLabV3Plus needs a batch of at least 2 in training mode (the ASPP image-pooling BatchNorm sees "
                "one value per channel); use batch_size >= 2 (drop_last=True) or call model.eval()."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> decoder features ``(B, 256, H/4, W/4)``."""
        self.check_input_shape(x)
        low_level = self.backbone[:LOW_LEVEL_BLOCKS](x)
        high_level = self.aspp(self.backbone[LOW_LEVEL_BLOCKS:](low_level))
        low_level = self.low_level_projection(self.low_level_attention(low_level))
        high_level = F.interpolate(high_level, size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.decoder(torch.cat([high_level, low_level], dim=1))

    def forward_head(self, x: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        """Decoder features ``(B, 256, h, w)`` -> logits ``(B, num_classes, *output_size)``."""
        return F.interpolate(self.classifier(x), size=output_size, mode="bilinear", align_corners=False)

    def attention_groups(self) -> dict[str, list[str]]:
        """Channel groups of the ECA blocks that span several branches: ``{"aspp.attention": branch names}``.

        For plots of :meth:`attention_weights` (see :func:`medseg_core.viz.plot_attention_weights`); empty when
        ASPP has no ECA.
        """
        return {"aspp.attention": self.aspp.branch_names} if isinstance(self.aspp.attention, ECA) else {}

    def load_pretrained(self, source: str | Path, progress: bool = True) -> WeightReport:
        """Copy matching tensors from ``"imagenet"`` or a state-dict file; report and log what happened.

        torchvision MobileNetV2 keys ``features.<i>...`` map to ``backbone.<i>...``; keys of this model load as
        they are. Only tensors with matching names and shapes are copied, the rest keep their initialisation
        and are listed in the returned (and stored, ``self.weight_report``) :class:`WeightReport`.

        Raises:
            RuntimeError: ``"imagenet"`` could not be downloaded (the message says where to put the file).
            FileNotFoundError: ``source`` is neither ``"imagenet"`` nor an existing file.
            ValueError: Nothing in the source matches this model.
        """
        if source == "imagenet":
            state, source_name = _imagenet_state_dict(progress), MobileNet_V2_Weights.IMAGENET1K_V1.url
        else:
            state, source_name = _read_state_dict(Path(source)), str(source)
        model_state = self.state_dict()
        report = WeightReport(source=source_name)
        matched: dict[str, torch.Tensor] = {}
        stem = "backbone.0.0.weight"  # RGB stems adapt to this model's input channels (adapt_input_weight)
        for key, tensor in state.items():
            model_key = "backbone." + key.removeprefix("features.") if key.startswith("features.") else key
            if model_key == stem and model_key in model_state and tensor.ndim == 4:
                tensor = adapt_input_weight(tensor, self.in_channels)
            if model_key not in model_state:
                report.unexpected.append(key)
            elif model_state[model_key].shape != tensor.shape:
                report.mismatched.append(model_key)
            else:
                matched[model_key] = tensor
        if not matched:
            raise ValueError(
                f"no tensor in {source_name} matches DeepLabV3Plus (first keys: {list(state)[:3]}); expected a state "
                f"dict of a torchvision MobileNetV2 ('features.*') or of DeepLabV3Plus ('backbone.*', 'aspp.*', ...)."
            )
        report.loaded = list(matched)
        report.missing = [key for key in model_state if key not in matched and key not in report.mismatched]
        self.load_state_dict({**model_state, **matched})
        self.weight_report = report
        self._log_report(report)
        return report

    @staticmethod
    def _log_report(report: WeightReport) -> None:
        """Log the report; warn when the source should have covered what it did not."""
        full_checkpoint = any(not key.startswith("backbone.") for key in report.loaded)
        backbone_missing = any(key.startswith("backbone.") for key in report.missing)
        if report.mismatched or backbone_missing or (full_checkpoint and (report.missing or report.unexpected)):
            warnings.warn(f"DeepLabV3Plus pretrained weights only partly loaded: {report.summary()}", stacklevel=3)
        else:
            logger.info("DeepLabV3Plus pretrained weights: %s", report.summary())


@register_model
def deeplabv3plus(**kwargs) -> DeepLabV3Plus:
    """DeepLabV3+ / MobileNetV2 with ECA on the skip and in ASPP (the reference implementation's model; 2 classes, output
    stride 16); ``separable=True`` for depthwise-separable ASPP and decoder convolutions."""
    return DeepLabV3Plus(**kwargs)
