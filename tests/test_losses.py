"""Tests for medseg_core.losses: cross-checks against MONAI, hand-derived identities, errors, optimisation."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medseg_core.losses import BCEDiceLoss, CEDiceLoss, DiceLoss, FocalLoss, build_loss, list_losses

monai_losses = pytest.importorskip("monai.losses")

SMOOTH = 1e-5


def _binary_batch(seed: int = 0, shape: tuple[int, ...] = (3, 1, 16, 16)) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator)
    target = (torch.rand(shape, generator=generator) > 0.7).float()
    return logits, target


def _multiclass_batch(seed: int = 0, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, classes, 16, 16, generator=generator)
    target = torch.randint(0, classes, (3, 16, 16), generator=generator)
    return logits, target


# ---------------------------------------------------------------------------------------------------------------
# Cross-checks against MONAI
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_dice", [True, False])
def test_binary_dice_matches_monai(batch_dice: bool) -> None:
    logits, target = _binary_batch()
    reference = monai_losses.DiceLoss(sigmoid=True, batch=batch_dice, smooth_nr=SMOOTH, smooth_dr=SMOOTH)
    ours = DiceLoss("binary", smooth=SMOOTH, batch_dice=batch_dice)
    torch.testing.assert_close(ours(logits, target), reference(logits, target))


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch_dice", [True, False])
def test_multiclass_dice_matches_monai(include_background: bool, batch_dice: bool) -> None:
    logits, target = _multiclass_batch()
    reference = monai_losses.DiceLoss(
        softmax=True, to_onehot_y=True, include_background=include_background, batch=batch_dice,
        smooth_nr=SMOOTH, smooth_dr=SMOOTH,
    )
    ours = DiceLoss("multiclass", smooth=SMOOTH, batch_dice=batch_dice, include_background=include_background)
    torch.testing.assert_close(ours(logits, target), reference(logits, target.unsqueeze(1)))


def test_ce_dice_matches_monai_dice_ce() -> None:
    logits, target = _multiclass_batch(seed=1)
    reference = monai_losses.DiceCELoss(
        softmax=True, to_onehot_y=True, include_background=False, batch=True,
        smooth_nr=SMOOTH, smooth_dr=SMOOTH, lambda_dice=0.7, lambda_ce=1.3,
    )
    ours = CEDiceLoss(ce_weight=1.3, dice_weight=0.7, include_background=False, batch_dice=True)
    torch.testing.assert_close(ours(logits, target), reference(logits, target.unsqueeze(1)))


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_binary_focal_matches_monai(alpha: float | None) -> None:
    logits, target = _binary_batch(seed=2)
    reference = monai_losses.FocalLoss(use_softmax=False, gamma=2.0, alpha=alpha, reduction="mean")
    torch.testing.assert_close(FocalLoss("binary", gamma=2.0, alpha=alpha)(logits, target), reference(logits, target))


def test_multiclass_focal_matches_monai() -> None:
    # MONAI's "mean" also divides by the number of classes; summing its per-class map gives the per-pixel loss.
    logits, target = _multiclass_batch(seed=3)
    alpha = [0.2, 0.3, 0.5]
    reference = monai_losses.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0, alpha=alpha, reduction="none")
    expected = reference(logits, target.unsqueeze(1)).sum(dim=1).mean()
    torch.testing.assert_close(FocalLoss("multiclass", gamma=2.0, alpha=alpha)(logits, target), expected)


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    logits, target = _multiclass_batch(seed=4)
    torch.testing.assert_close(FocalLoss("multiclass", gamma=0.0)(logits, target), F.cross_entropy(logits, target))
    binary_logits, binary_target = _binary_batch(seed=4)
    torch.testing.assert_close(
        FocalLoss("binary", gamma=0.0)(binary_logits, binary_target),
        F.binary_cross_entropy_with_logits(binary_logits, binary_target),
    )


def test_bce_dice_is_weighted_sum_of_bce_and_monai_dice() -> None:
    logits, target = _binary_batch(seed=5)
    monai_dice = monai_losses.DiceLoss(sigmoid=True, batch=True, smooth_nr=SMOOTH, smooth_dr=SMOOTH)
    expected = 0.3 * F.binary_cross_entropy_with_logits(logits, target) + 0.7 * monai_dice(logits, target)
    torch.testing.assert_close(BCEDiceLoss(bce_weight=0.3, dice_weight=0.7)(logits, target), expected)


def test_ce_dice_focal_variant_combines_focal_and_dice() -> None:
    logits, target = _multiclass_batch(seed=6)
    weights = [0.5, 1.0, 2.0]
    expected = FocalLoss("multiclass", gamma=1.5, alpha=weights)(logits, target) + DiceLoss("multiclass")(
        logits, target
    )
    torch.testing.assert_close(CEDiceLoss(class_weights=weights, focal_gamma=1.5)(logits, target), expected)


def test_ce_dice_class_weights_weight_the_cross_entropy() -> None:
    logits, target = _multiclass_batch(seed=7)
    weights = torch.tensor([0.2, 1.0, 3.0])
    loss = CEDiceLoss(class_weights=weights, dice_weight=0.0)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, weight=weights))
    assert not torch.isclose(loss, CEDiceLoss(dice_weight=0.0)(logits, target))


# ---------------------------------------------------------------------------------------------------------------
# Hand-checkable properties
# ---------------------------------------------------------------------------------------------------------------
def test_svsnet_negative_dice_has_the_same_gradient() -> None:
    logits, target = _binary_batch(seed=8)
    ours_input = logits.clone().requires_grad_(True)
    DiceLoss("binary", smooth=1e-5, batch_dice=True)(ours_input, target).backward()
    official_input = logits.clone().requires_grad_(True)
    probs = official_input.sigmoid()  # SVSnet (Keras): -(2 sum(y p) + eps) / (sum(y) + sum(p) + eps), flat batch
    (-(2 * (probs * target).sum() + 1e-5) / (target.sum() + probs.sum() + 1e-5)).backward()
    torch.testing.assert_close(ours_input.grad, official_input.grad)


def test_dice_loss_near_zero_for_confident_correct_and_near_one_for_inverted() -> None:
    _, target = _binary_batch(seed=9)
    confident = 30.0 * (2 * target - 1)
    assert DiceLoss("binary")(confident, target) < 1e-4
    assert DiceLoss("binary")(-confident, target) > 1 - 1e-4


def test_empty_target_with_empty_prediction_gives_zero_dice_loss() -> None:
    target = torch.zeros(2, 1, 8, 8)
    assert DiceLoss("binary")(torch.full_like(target, -30.0), target) < 1e-3


def test_integer_and_bool_binary_targets_are_accepted() -> None:
    logits, target = _binary_batch(seed=10)
    expected = DiceLoss("binary")(logits, target)
    torch.testing.assert_close(DiceLoss("binary")(logits, target.long()), expected)
    torch.testing.assert_close(DiceLoss("binary")(logits, target.bool()), expected)


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------
def test_binary_target_stored_as_0_255_raises_with_fix() -> None:
    logits, target = _binary_batch()
    with pytest.raises(ValueError, match="to_label_mask"):
        BCEDiceLoss()(logits, target * 255)


def test_multiclass_target_with_255_raises_with_fix() -> None:
    logits, target = _multiclass_batch(classes=2)
    with pytest.raises(ValueError, match=r"\[0, 255\].*to_label_mask"):
        CEDiceLoss()(logits, target * 255)


@pytest.mark.parametrize(
    ("loss", "logits_shape", "target_shape", "target_dtype", "message"),
    [
        (DiceLoss("binary"), (2, 1, 8, 8), (2, 8, 8), torch.float32, "unsqueeze"),
        (DiceLoss("binary"), (2, 3, 8, 8), (2, 3, 8, 8), torch.float32, "multiclass"),
        (DiceLoss("multiclass"), (2, 3, 8, 8), (2, 1, 8, 8), torch.long, "squeeze"),
        (CEDiceLoss(), (2, 3, 8, 8), (2, 8, 4), torch.long, r"\(2, 8, 8\)"),
        (CEDiceLoss(), (2, 1, 8, 8), (2, 8, 8), torch.long, "binary"),
    ],
)
def test_shape_errors_name_the_expected_shape(
    loss: torch.nn.Module,
    logits_shape: tuple[int, ...],
    target_shape: tuple[int, ...],
    target_dtype: torch.dtype,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        loss(torch.zeros(logits_shape), torch.zeros(target_shape, dtype=target_dtype))


def test_float_multiclass_target_raises() -> None:
    logits, target = _multiclass_batch()
    with pytest.raises(ValueError, match="long"):
        DiceLoss("multiclass")(logits, target.float())


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_logits_raise_floating_point_error(bad_value: float) -> None:
    logits, target = _binary_batch()
    logits[0, 0, 3, 3] = bad_value
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        BCEDiceLoss()(logits, target)


def test_wrong_number_of_class_weights_raises() -> None:
    logits, target = _multiclass_batch(classes=3)
    with pytest.raises(ValueError, match="2 entries.*3 classes"):
        CEDiceLoss(class_weights=[1.0, 2.0])(logits, target)


def test_invalid_mode_and_alpha_raise() -> None:
    with pytest.raises(ValueError, match="mode"):
        DiceLoss("softmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss("binary", alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="per-class"):
        FocalLoss("multiclass", alpha=0.25)


def test_build_loss_unknown_name_lists_valid_names() -> None:
    with pytest.raises(KeyError, match="bce_dice.*ce_dice.*dice.*focal"):
        build_loss("tversky")
    assert isinstance(build_loss("dice", mode="multiclass"), DiceLoss)


# ---------------------------------------------------------------------------------------------------------------
# Optimisation
# ---------------------------------------------------------------------------------------------------------------
_OPTIMISATION_CASES = [
    ("dice", {"mode": "binary"}, "binary"),
    ("dice", {"mode": "multiclass"}, "multiclass"),
    ("bce_dice", {}, "binary"),
    ("ce_dice", {}, "multiclass"),
    ("ce_dice", {"focal_gamma": 2.0, "class_weights": [0.5, 1.0, 1.0]}, "multiclass"),
    ("focal", {"mode": "binary", "alpha": 0.75}, "binary"),
    ("focal", {"mode": "multiclass"}, "multiclass"),
]


def test_every_registered_loss_is_covered_by_the_optimisation_test() -> None:
    assert {name for name, _, _ in _OPTIMISATION_CASES} == set(list_losses())


@pytest.mark.parametrize(("name", "kwargs", "mode"), _OPTIMISATION_CASES)
def test_gradient_flows_and_loss_decreases(name: str, kwargs: dict, mode: str) -> None:
    loss_fn = build_loss(name, **kwargs)
    if mode == "binary":
        _, target = _binary_batch(seed=11, shape=(2, 1, 8, 8))
        logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    else:
        _, target = _multiclass_batch(seed=11)
        logits = torch.zeros(3, 3, 16, 16, requires_grad=True)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    losses = []
    for _ in range(15):
        optimiser.zero_grad()
        loss = loss_fn(logits, target)
        loss.backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    predicted = (logits > 0).float() if mode == "binary" else logits.argmax(dim=1)
    assert (predicted == target).float().mean() > 0.99
