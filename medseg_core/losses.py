"""Segmentation losses on logits: soft Dice, BCE + Dice, cross-entropy (or focal) + Dice, focal.

This module owns the training objectives of the kit. Every loss takes the model's raw logits and applies the
sigmoid/softmax itself, in float32, so it is safe under mixed precision. Two target conventions, matching the
datasets and models of the kit:

* ``mode="binary"`` (SVSnet, XCA vessels): logits ``(B, 1, H, W)``, target ``(B, 1, H, W)`` float in ``[0, 1]``.
* ``mode="multiclass"`` (DeepLabV3+, OCT plaque): logits ``(B, K, H, W)``, target ``(B, H, W)`` int64 class
  indices in ``[0, K)``.

Extra spatial axes (``(B, C, D, H, W)``) work the same way. Bad input fails early with a message that names the
expected shape and the fix: a mask stored as 0/255 raises a ``ValueError`` pointing to
:func:`medseg_core.data.io.to_label_mask`, and NaN/Inf logits raise a ``FloatingPointError``.

References:
    * Soft Dice: Milletari et al., "V-Net", 3DV 2016. SVSnet (Hao et al., Neural Networks 2020) trains with the
      *negative* soft Dice over the flattened batch with epsilon 1e-5; :class:`DiceLoss` returns ``1 - Dice``
      instead, which has the same gradient and is non-negative (``batch_dice=True, smooth=1e-5`` reproduces it).
    * Focal loss: Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.
    * The OCT reference implementation trains DeepLabV3+ with cross-entropy + soft Dice (:class:`CEDiceLoss`).

Example:
    >>> loss_fn = build_loss("ce_dice", include_background=False)
    >>> loss = loss_fn(torch.randn(2, 2, 8, 8), torch.randint(0, 2, (2, 8, 8)))
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

__all__ = ["DiceLoss", "BCEDiceLoss", "CEDiceLoss", "FocalLoss", "build_loss", "list_losses"]

LossMode = Literal["binary", "multiclass"]
_MODES = ("binary", "multiclass")
_MASK_FIX = "convert masks to class indices with medseg_core.data.io.to_label_mask(mask, num_classes)"


# ----------------------------------------------------------------------------------------------------------------
# Input checks (shared by all losses)
# ----------------------------------------------------------------------------------------------------------------
def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")


def _check_finite(logits: torch.Tensor) -> None:
    """Raise ``FloatingPointError`` if the logits hold NaN or Inf (one reduction over the tensor)."""
    if not bool(torch.isfinite(logits).all()):
        raise FloatingPointError(
            f"the logits (shape {tuple(logits.shape)}) contain NaN or Inf: training diverged or the input holds "
            "NaN. Lower the learning rate, clip gradients, or check the input normalisation and AMP settings."
        )


def _check_binary(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Validate binary-mode inputs; return the target as float32 ``(B, 1, H, W)``."""
    _check_finite(logits)
    if logits.ndim < 3 or logits.shape[1] != 1:
        raise ValueError(
            f"binary mode expects logits of shape (B, 1, H, W), got {tuple(logits.shape)}; "
            "for K-class logits (B, K, H, W) use mode='multiclass'"
        )
    if target.shape != logits.shape:
        hint = ""
        if target.shape == logits.shape[:1] + logits.shape[2:]:
            hint = "; add the channel axis with target.unsqueeze(1)"
        raise ValueError(
            f"binary mode expects a target of shape {tuple(logits.shape)} (B, 1, H, W) like the logits, "
            f"got {tuple(target.shape)}{hint}"
        )
    target = target.float()
    low, high = torch.stack(torch.aminmax(target)).tolist()
    if low < 0 or high > 1:
        raise ValueError(
            f"binary targets must lie in [0, 1], got values in [{low:g}, {high:g}]. A mask stored as 0/255 must "
            f"be converted first: {_MASK_FIX}"
        )
    return target


def _check_multiclass(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Validate multiclass-mode inputs; return the target as int64 ``(B, H, W)``."""
    _check_finite(logits)
    if logits.ndim < 3 or logits.shape[1] < 2:
        raise ValueError(
            f"multiclass mode expects logits of shape (B, K, H, W) with K >= 2, got {tuple(logits.shape)}; "
            "for one-channel logits (B, 1, H, W) use mode='binary'"
        )
    num_classes = logits.shape[1]
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        hint = ""
        if target.ndim == logits.ndim and target.shape[1] == 1:
            hint = "; drop the channel axis with target.squeeze(1)"
        raise ValueError(
            f"multiclass mode expects a target of shape {expected} (B, H, W) for logits {tuple(logits.shape)}, "
            f"got {tuple(target.shape)}{hint}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(
            f"multiclass mode expects int64 class indices (B, H, W), got dtype {target.dtype}; use target.long()"
        )
    target = target.long()
    low, high = torch.stack(torch.aminmax(target)).tolist()
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"the target holds class indices in [{low}, {high}] but the logits have {num_classes} classes "
            f"(indices 0..{num_classes - 1}). A mask stored as 0/255 is the usual cause: {_MASK_FIX}"
        )
    return target


def _check_weights(weights: torch.Tensor | None, num_classes: int, name: str) -> None:
    if weights is not None and weights.numel() != num_classes:
        raise ValueError(f"{name} has {weights.numel()} entries but the logits have {num_classes} classes")


def _as_weight_buffer(values: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    return None if values is None else torch.as_tensor(values, dtype=torch.float32).flatten()


# ----------------------------------------------------------------------------------------------------------------
# Loss terms on validated inputs
# ----------------------------------------------------------------------------------------------------------------
def _soft_dice(probs: torch.Tensor, target: torch.Tensor, smooth: float, batch_dice: bool) -> torch.Tensor:
    """Soft Dice of ``(B, C, H, W)`` probabilities and targets: ``(C,)`` if ``batch_dice`` else ``(B, C)``."""
    spatial = tuple(range(2, probs.ndim))
    dims = (0, *spatial) if batch_dice else spatial
    intersection = (probs * target).sum(dims)
    denominator = probs.sum(dims) + target.sum(dims)
    return (2.0 * intersection + smooth) / (denominator + smooth)


def _binary_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float, batch_dice: bool) -> torch.Tensor:
    return 1.0 - _soft_dice(logits.float().sigmoid(), target, smooth, batch_dice).mean()


def _multiclass_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float, batch_dice: bool, include_background: bool
) -> torch.Tensor:
    probs = logits.float().softmax(dim=1)
    one_hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
    if not include_background:
        probs, one_hot = probs[:, 1:], one_hot[:, 1:]
    return 1.0 - _soft_dice(probs, one_hot, smooth, batch_dice).mean()


def _multiclass_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: torch.Tensor | None
) -> torch.Tensor:
    """Mean over pixels of ``-alpha_t (1 - p_t)^gamma log p_t`` (softmax over the class axis)."""
    log_pt = logits.float().log_softmax(dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
    loss = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    if alpha is not None:
        loss = loss * alpha[target]
    return loss.mean()


# ----------------------------------------------------------------------------------------------------------------
# Loss modules
# ----------------------------------------------------------------------------------------------------------------
class DiceLoss(nn.Module):
    """Soft Dice loss ``1 - Dice`` on logits.

    ``Dice = (2 * sum(p * y) + smooth) / (sum(p) + sum(y) + smooth)`` per class, summed over the pixels of each
    image (``batch_dice=False``) or over the whole flattened batch (``batch_dice=True``, as SVSnet), then
    averaged over images and classes. SVSnet minimises ``-Dice``; ``1 - Dice`` has the same gradient.

    Args:
        mode: ``"binary"`` (sigmoid; logits and target ``(B, 1, H, W)``, target in [0, 1]) or ``"multiclass"``
            (softmax + one-hot; logits ``(B, K, H, W)``, target ``(B, H, W)`` int64).
        smooth: added to numerator and denominator (SVSnet: 1e-5); keeps empty masks finite.
        batch_dice: sum over the batch before dividing (one Dice per class) instead of one Dice per image.
        include_background: multiclass only: also average the Dice of class 0. Ignored in binary mode, whose
            single channel is the foreground.

    Example:
        >>> DiceLoss("binary")(torch.randn(2, 1, 8, 8), torch.randint(0, 2, (2, 1, 8, 8)).float()).shape
        torch.Size([])
    """

    def __init__(
        self,
        mode: LossMode = "binary",
        smooth: float = 1e-5,
        batch_dice: bool = True,
        include_background: bool = False,
    ) -> None:
        super().__init__()
        _check_mode(mode)
        self.mode = mode
        self.smooth = smooth
        self.batch_dice = batch_dice
        self.include_background = include_background

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits ``(B, C, H, W)`` and the target of the chosen mode."""
        if self.mode == "binary":
            target = _check_binary(logits, target)
            return _binary_dice_loss(logits, target, self.smooth, self.batch_dice)
        target = _check_multiclass(logits, target)
        return _multiclass_dice_loss(logits, target, self.smooth, self.batch_dice, self.include_background)


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCEWithLogits + dice_weight * (1 - Dice)`` for binary logits ``(B, 1, H, W)``.

    Args:
        bce_weight: weight of the binary cross-entropy term.
        dice_weight: weight of the soft Dice term (see :class:`DiceLoss`).
        pos_weight: optional weight of positive pixels in the BCE term (e.g. background/vessel pixel ratio).
        smooth: Dice smoothing constant.
        batch_dice: Dice over the flattened batch (``True``) or per image.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        pos_weight: float | None = None,
        smooth: float = 1e-5,
        batch_dice: bool = True,
    ) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.batch_dice = batch_dice
        self.register_buffer("pos_weight", _as_weight_buffer(None if pos_weight is None else [pos_weight]),
                             persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits and target ``(B, 1, H, W)`` (target in [0, 1])."""
        target = _check_binary(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=self.pos_weight)
        dice = _binary_dice_loss(logits, target, self.smooth, self.batch_dice)
        return self.bce_weight * bce + self.dice_weight * dice


class CEDiceLoss(nn.Module):
    """``ce_weight * CE (or focal) + dice_weight * (1 - Dice)`` for multiclass logits ``(B, K, H, W)``.

    The OCT reference implementation's loss (cross-entropy + soft Dice). With ``focal_gamma`` set, the cross-entropy term is replaced
    by the focal loss with that gamma and ``class_weights`` as its per-class alpha.

    Args:
        class_weights: optional ``K`` per-class weights for the CE term (PyTorch's weighted mean) or the focal
            alpha.
        focal_gamma: use the focal loss with this gamma instead of cross-entropy.
        ce_weight: weight of the CE / focal term.
        dice_weight: weight of the soft Dice term (see :class:`DiceLoss`).
        smooth: Dice smoothing constant.
        batch_dice: Dice over the flattened batch (``True``) or per image.
        include_background: also average the Dice of class 0.
    """

    def __init__(
        self,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        focal_gamma: float | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1e-5,
        batch_dice: bool = True,
        include_background: bool = False,
    ) -> None:
        super().__init__()
        self.focal_gamma = focal_gamma
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.batch_dice = batch_dice
        self.include_background = include_background
        self.register_buffer("class_weights", _as_weight_buffer(class_weights), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits ``(B, K, H, W)`` and an int64 target ``(B, H, W)``."""
        target = _check_multiclass(logits, target)
        _check_weights(self.class_weights, logits.shape[1], "class_weights")
        if self.focal_gamma is None:
            first = F.cross_entropy(logits.float(), target, weight=self.class_weights)
        else:
            first = _multiclass_focal_loss(logits, target, self.focal_gamma, self.class_weights)
        dice = _multiclass_dice_loss(logits, target, self.smooth, self.batch_dice, self.include_background)
        return self.ce_weight * first + self.dice_weight * dice


class FocalLoss(nn.Module):
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over pixels (Lin et al., ICCV 2017).

    Args:
        mode: ``"binary"`` (sigmoid; :func:`torchvision.ops.sigmoid_focal_loss`) or ``"multiclass"`` (softmax).
        gamma: focusing parameter; 0 gives plain (binary) cross-entropy.
        alpha: binary: weight of positive pixels in [0, 1] (negatives get ``1 - alpha``); multiclass: ``K``
            per-class weights. ``None``: no weighting.
    """

    def __init__(
        self,
        mode: LossMode = "binary",
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check_mode(mode)
        if mode == "binary" and alpha is not None and not (isinstance(alpha, (int, float)) and 0 <= alpha <= 1):
            raise ValueError(f"binary focal loss expects alpha as one number in [0, 1] or None, got {alpha!r}")
        if mode == "multiclass" and isinstance(alpha, (int, float)):
            raise ValueError(f"multiclass focal loss expects alpha as K per-class weights or None, got {alpha!r}")
        self.mode = mode
        self.gamma = gamma
        self.binary_alpha = float(alpha) if mode == "binary" and alpha is not None else None
        class_alpha = alpha if mode == "multiclass" else None
        self.register_buffer("class_alpha", _as_weight_buffer(class_alpha), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss for logits ``(B, C, H, W)`` and the target of the chosen mode."""
        if self.mode == "binary":
            target = _check_binary(logits, target)
            alpha = -1.0 if self.binary_alpha is None else self.binary_alpha  # torchvision: alpha < 0 = unweighted
            return sigmoid_focal_loss(logits.float(), target, alpha=alpha, gamma=self.gamma, reduction="mean")
        target = _check_multiclass(logits, target)
        _check_weights(self.class_alpha, logits.shape[1], "alpha")
        return _multiclass_focal_loss(logits, target, self.gamma, self.class_alpha)


_LOSSES: dict[str, type[nn.Module]] = {
    "dice": DiceLoss,
    "bce_dice": BCEDiceLoss,
    "ce_dice": CEDiceLoss,
    "focal": FocalLoss,
}


def list_losses() -> list[str]:
    """Sorted names accepted by :func:`build_loss`."""
    return sorted(_LOSSES)


def build_loss(name: str, **kwargs) -> nn.Module:
    """Build a loss by name, e.g. ``build_loss("dice", mode="binary")``; ``kwargs`` go to its constructor.

    Raises:
        KeyError: ``name`` is unknown; the message lists the valid names.
    """
    try:
        loss_class = _LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid names: {', '.join(list_losses())}") from None
    return loss_class(**kwargs)
