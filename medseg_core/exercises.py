"""Checked exercises for the notebooks: write a function (or give a value), get one line of feedback at once.

Each exercise has an id, the notebook it belongs to, a task, a check and a solution. In a notebook::

    from medseg_core.exercises import check

    def my_kernel_size(channels: int) -> int:
        ...

    check("eca_kernel", my_kernel_size)   # "✓ ..." or "✗ for C=64 you returned 5, expected 3 (...)"

:func:`check` calls the learner's function on several inputs and compares with the kit's own code (the
losses, metrics, blocks and data functions the notebooks use), so the exercises follow the library when it
changes. :func:`solution` returns the worked answer, which the tests run through every check.
:func:`list_exercises` says which exercises belong to which notebook.

A stub the learner has not touched (the notebook's placeholder: ``None``, ``...``, a function that returns one of
them or raises ``NotImplementedError``) is "not answered yet", not a wrong answer.
"""
from __future__ import annotations

import copy
import inspect
import math
import random
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoints import RunMetadata
from .clinical import polar_lipid_arc_degrees
from .config import TrainConfig
from .data import synthetic_oct as sim
from .data.io import to_label_mask
from .data.oct import OCT_CLASSES, patient_split
from .data.synthetic_xca import simulate_sequence
from .data.xca import window_indices
from .losses import CEDiceLoss, DiceLoss
from .metrics import dice, hd95, precision, recall
from .models import create_model
from .models.summary import count_parameters
from .models.blocks import ECA, eca_kernel_size
from .models.deeplabv3plus import mobilenet_v2_backbone
from .training import Trainer, build_optimizer

__all__ = ["Feedback", "Exercise", "EXERCISES", "KINDS", "check", "solution", "list_exercises"]


@dataclass(frozen=True)
class Feedback:
    """The result of a check: ``passed``, a one-line ``message`` (shown as the cell's output) and whether the
    learner gave an answer at all (``answered`` is False for an untouched stub)."""

    passed: bool
    message: str
    answered: bool = True

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message


def _right(message: str) -> Feedback:
    return Feedback(True, f"✓ {message}")


def _wrong(message: str) -> Feedback:
    return Feedback(False, f"✗ {message}")


def _not_answered(exercise_id: str) -> Feedback:
    return Feedback(False, f"○ not answered yet: replace the placeholder (None or ...) in the cell with your answer "
                           f"and run it again; solution({exercise_id!r}) shows a worked answer once you have tried.",
                    answered=False)


class _NotAnswered(Exception):
    """The answer is still the notebook's placeholder."""


class _PartlyAnswered(Exception):
    """The learner's function returned a placeholder for some inputs after real answers for others."""


def _is_placeholder(value: Any) -> bool:
    """None, ``...``, or a non-empty dict, list or tuple of nothing but placeholders (a stub's fill-in values)."""
    if value is None or value is Ellipsis:
        return True
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else None
    return items is not None and len(items) > 0 and all(_is_placeholder(item) for item in items)


class _LearnerFunction:
    """The learner's function as the checks call it: a stub's placeholder result (or ``NotImplementedError``)
    stops the check as "not answered yet" instead of failing somewhere inside it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.answered = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.function(*args, **kwargs)
        except NotImplementedError:
            raise _NotAnswered from None
        if _is_placeholder(result):
            raise _PartlyAnswered if self.answered else _NotAnswered
        self.answered = True
        return result


KINDS = ("write", "predict", "interpret")
"""Exercise kinds: write code from a formula; predict a result before running it; interpret a result."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: ``check(answer) -> Feedback``; ``solution`` is an answer that passes; ``kind`` one of
    :data:`KINDS`."""

    id: str
    notebook: str
    task: str
    check: Callable[[Any], Feedback]
    solution: Any
    kind: str = "write"


EXERCISES: dict[str, Exercise] = {}


def _exercise(exercise_id: str, notebook: str, task: str, solution: Any, kind: str = "write") -> Callable:
    if kind not in KINDS:
        raise ValueError(f"unknown exercise kind {kind!r}; valid: {', '.join(KINDS)}")

    def register(check_fn: Callable[[Any], Feedback]) -> Callable[[Any], Feedback]:
        EXERCISES[exercise_id] = Exercise(exercise_id, notebook, task, check_fn, solution, kind)
        return check_fn

    return register


def _get(exercise_id: str) -> Exercise:
    try:
        return EXERCISES[exercise_id]
    except KeyError:
        raise KeyError(f"unknown exercise {exercise_id!r}; valid ids: {', '.join(EXERCISES)}") from None


def check(exercise_id: str, answer: Any) -> Feedback:
    """Check ``answer`` (a function or a value, as the task says) for an exercise; never raises for a wrong or
    crashing answer: the feedback says what went wrong."""
    exercise = _get(exercise_id)
    if _is_placeholder(answer):
        return _not_answered(exercise_id)
    try:
        return exercise.check(_LearnerFunction(answer) if callable(answer) else answer)
    except _NotAnswered:
        return _not_answered(exercise_id)
    except _PartlyAnswered:
        return _wrong("your function returned None for some inputs: does every path through it end in a return?")
    except Exception as error:  # the learner's code may raise anything; report it as feedback
        return _wrong(f"your answer raised {type(error).__name__}: {error}")


def solution(exercise_id: str) -> Any:
    """The worked answer of an exercise (a function or a value); ``check(id, solution(id))`` passes."""
    return _get(exercise_id).solution


def list_exercises(notebook: str | None = None) -> pd.DataFrame:
    """``id``, ``notebook``, ``kind`` and ``task`` of every exercise (of one notebook: ``"04"`` or its full name)."""
    rows = [{"id": e.id, "notebook": e.notebook, "kind": e.kind, "task": e.task} for e in EXERCISES.values()]
    table = pd.DataFrame(rows)
    return table if notebook is None else table[table["notebook"].str.startswith(str(notebook)[:2])]


def _close(a: Any, b: Any, tolerance: float = 1e-5) -> bool:
    a, b = float(a), float(b)
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tolerance


# ---------------------------------------------------------------------------------------------- 00 quickstart
def _hard_dice(pred: np.ndarray, target: np.ndarray) -> float:
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    total = pred.sum() + target.sum()
    return 1.0 if total == 0 else float(2.0 * (pred & target).sum() / total)


def _mask_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    empty, blob = np.zeros((16, 16), bool), np.zeros((16, 16), bool)
    blob[4:10, 5:12] = True
    return {"two random masks": (rng.random((16, 16)) > 0.6, rng.random((16, 16)) > 0.5),
            "a perfect prediction": (blob, blob), "both masks empty": (empty, empty),
            "a false alarm on an empty frame": (blob, empty), "a missed object": (empty, blob)}


@_exercise("hard_dice", "00_quickstart", "Write dice(pred, target) -> float for boolean masks (H, W), with the "
           "kit's empty-mask rule.", _hard_dice)
def _check_hard_dice(fn: Callable[[np.ndarray, np.ndarray], float]) -> Feedback:
    for name, (pred, target) in _mask_cases().items():
        got, expected = fn(pred.copy(), target.copy()), dice(pred, target)
        if not _close(got, expected):
            hint = (" Both empty is a correct 'nothing there': the kit scores it 1 (2TP / (2TP + FP + FN) alone is "
                    "0 / 0)." if name == "both masks empty" else " Dice = 2TP / (2TP + FP + FN).")
            return _wrong(f"for {name} you returned {got}, expected {expected}.{hint}")
    return _right("Dice matches medseg_core.metrics.dice, empty masks included.")


_EMPTY_RULE = {"dice_both_empty": 1.0, "dice_false_alarm": 0.0, "hd95_both_empty": 0.0,
               "hd95_false_alarm": float("nan")}
_EMPTY_RULE_WHY = {
    "dice_both_empty": "a frame with nothing to find, and nothing predicted, is a perfect answer",
    "dice_false_alarm": "every predicted pixel is a false positive and there is no true positive",
    "hd95_both_empty": "two empty boundaries are at distance 0 from each other",
    "hd95_false_alarm": "there is no boundary to measure a distance to, so it is undefined (NaN; summarize leaves "
                        "it out of the mean and counts it in n_missing)",
}


@_exercise("empty_mask_rule", "00_quickstart", "Give a dict with the kit's dice and hd95 for both masks empty and "
           f"for a false alarm on an empty frame; keys {list(_EMPTY_RULE)}.", _EMPTY_RULE)
def _check_empty_mask_rule(answer: dict[str, float]) -> Feedback:
    cases = _mask_cases()
    measured = {
        "dice_both_empty": dice(*cases["both masks empty"]), "dice_false_alarm": dice(*cases["a false alarm on an "
                                                                                             "empty frame"]),
        "hd95_both_empty": hd95(*cases["both masks empty"]), "hd95_false_alarm": hd95(*cases["a false alarm on an "
                                                                                             "empty frame"]),
    }
    missing = [key for key in measured if key not in answer]
    if missing:
        return _wrong(f"your dict lacks {missing}; give all of {list(measured)}")
    for key, expected in measured.items():
        if not _close(answer[key], expected):
            return _wrong(f"{key}: you said {answer[key]}, the kit gives {expected}: {_EMPTY_RULE_WHY[key]}.")
    return _right("that is the empty-mask rule of medseg_core.metrics (see the glossary: empty-mask rule).")


_BAR_WIDTHS = (2, 20)  # pixels: a thin vessel, and a structure the size of a small plaque


def _shifted_bar_dice(width: int, length: int = 32) -> float:
    """Dice of a bar ``width`` pixels wide against the same bar moved one pixel sideways (the kit's ``dice``)."""
    truth = np.zeros((length, width + 8), bool)
    truth[:, 4:4 + width] = True
    return dice(np.roll(truth, 1, axis=1), truth)


@_exercise("one_pixel_shift", "00_quickstart", "Predict before you compute: a prediction is the ground truth moved "
           f"one pixel sideways. What is its Dice for a long vessel {_BAR_WIDTHS[0]} pixels wide, and for a long "
           f"structure {_BAR_WIDTHS[1]} pixels wide? Give two numbers.",
           tuple((width - 1) / width for width in _BAR_WIDTHS), kind="predict")
def _check_one_pixel_shift(answer: Sequence[float]) -> Feedback:
    expected = [_shifted_bar_dice(width) for width in _BAR_WIDTHS]
    if isinstance(answer, (int, float)) or len(answer) != 2:
        return _wrong(f"give two numbers, the Dice for width {_BAR_WIDTHS[0]} and for width {_BAR_WIDTHS[1]}; you "
                      f"gave {answer!r}")
    got = [float(value) for value in answer]
    if all(_close(g, e, 0.01) for g, e in zip(got, expected)):
        return _right(f"{expected[0]:.2f} and {expected[1]:.2f}: the same one-pixel border error halves the Dice of "
                      "a thin vessel and costs a wide structure 5 %. A vessel Dice and a plaque Dice are not on one "
                      "scale, which is why notebook 02 adds clDice and HD95 for vessels.")
    if _close(got[0], got[1], 1e-6):
        return _wrong(f"you gave both widths the Dice {got[0]}: the error is one pixel at each border in both, but "
                      "count how many of the bar's columns still overlap after the shift")
    width, guess = next((w, g) for w, g, e in zip(_BAR_WIDTHS, got, expected) if not _close(g, e, 0.01))
    return _wrong(f"for width {width} you said {guess}: after a one-pixel shift {width - 1} of the {width} columns "
                  "still overlap; Dice = 2 |P ∩ G| / (|P| + |G|).")


# ---------------------------------------------------------------------------------------------- 01 XCA sequences
def _window_indices(center: int, num_frames: int, window_length: int, policy: str = "centre") -> list[int]:
    before = window_length // 2 if policy == "centre" else window_length - 1
    return [min(max(center + offset - before, 0), num_frames - 1) for offset in range(window_length)]


@_exercise("window_indices", "01_xca_sequences", "Write window_indices(center, num_frames, window_length, policy) "
           "-> list of frame indices for the 'centre' and 'past' policies, repeating the first/last frame at the "
           "ends.", _window_indices)
def _check_window_indices(fn: Callable[[int, int, int, str], Sequence[int]]) -> Feedback:
    for policy in ("centre", "past"):
        for num_frames in (1, 3, 10):
            for window_length in (1, 2, 3, 4, 5):
                for center in sorted({0, num_frames // 2, num_frames - 1}):
                    expected = window_indices(center, num_frames, window_length, policy)
                    got = [int(i) for i in fn(center, num_frames, window_length, policy)]
                    if got != expected:
                        before = window_length // 2 if policy == "centre" else window_length - 1
                        return _wrong(
                            f"window_indices({center}, {num_frames}, {window_length}, {policy!r}) returned {got}, "
                            f"expected {expected} ({policy}: {before} frame(s) before the current one, "
                            f"{window_length - 1 - before} after; indices outside the video repeat the first/last "
                            "frame).")
    return _right("both policies match medseg_core.data.xca.window_indices, ends of the video included.")


_FUSION_INPUT = (2, 8, 4, 32, 32)  # (B, C, T, H, W)


@_exercise("temporal_fusion_shape", "01_xca_sequences", f"What shape does nn.Conv3d(8, 8, kernel_size=(4, 1, 1)) "
           f"(no padding) return for an input of shape {_FUSION_INPUT}? Give a tuple.", (2, 8, 1, 32, 32))
def _check_temporal_fusion_shape(answer: Sequence[int]) -> Feedback:
    expected = tuple(nn.Conv3d(8, 8, (4, 1, 1))(torch.zeros(_FUSION_INPUT)).shape)
    answer = tuple(int(v) for v in answer)
    if answer == expected:
        return _right(f"{expected}: the (T, 1, 1) kernel fits once along the T = 4 frames, so time collapses to 1; "
                      "SVSnet then squeezes that axis to get a 2D skip (B, C, H, W).")
    if answer == expected[:2] + expected[3:]:
        return _wrong(f"{answer} is the skip after .squeeze(2); the convolution itself keeps a time axis of "
                      f"length 1: {expected}.")
    if len(answer) == 5 and answer[2] == _FUSION_INPUT[2]:
        return _wrong(f"you kept T = {answer[2]}: without padding a kernel of length T along time fits only once, "
                      "so the time axis becomes 1.")
    return _wrong(f"you said {answer}; B, C, H and W are kept (8 -> 8 channels, 1x1 in space); only T changes.")


_SPAN_WINDOW = 4


def _generator_fps() -> float:
    """The frame rate of the kit's synthetic XCA videos (the default of ``simulate_sequence``)."""
    return float(inspect.signature(simulate_sequence).parameters["fps"].default)


@_exercise("window_span_ms", "01_xca_sequences", f"The generator records {_generator_fps():g} frames per second, "
           f"as MOSXAV. How many milliseconds lie between the first and the last frame of a T = {_SPAN_WINDOW} "
           "window? Give a number.", round(1000.0 * (_SPAN_WINDOW - 1) / _generator_fps(), 1), kind="interpret")
def _check_window_span_ms(answer: float) -> Feedback:
    fps = _generator_fps()
    indices = window_indices(20, 40, _SPAN_WINDOW, "centre")  # a window away from the ends of a video
    expected = 1000.0 * (max(indices) - min(indices)) / fps
    got = float(answer)
    if _close(got, expected, 1.0):
        return _right(f"{expected:.0f} ms: {_SPAN_WINDOW - 1} frame intervals of {1000 / fps:.1f} ms. A heartbeat at "
                      "60-90 beats per minute lasts 670-1000 ms, so the window sees a fifth to a third of a beat: the "
                      "vessels move a little between its frames. At 7.5 fps the same T spans twice as long, at 30 fps "
                      "half: T means a time only together with the frame rate.")
    if _close(got, 1000.0 * _SPAN_WINDOW / fps, 1.0):
        return _wrong(f"{got:g} ms is {_SPAN_WINDOW} frame intervals; between the first and the last of "
                      f"{_SPAN_WINDOW} frames there are {_SPAN_WINDOW - 1}.")
    if _close(got, expected / 1000.0, 1e-3):
        return _wrong(f"{got:g} is in seconds; give milliseconds.")
    return _wrong(f"you said {got:g} ms; at {fps:g} frames per second one frame interval lasts {1000 / fps:.1f} ms.")


# ---------------------------------------------------------------------------------------------- 02 train SVSnet
def _soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * target).sum()
    return 1.0 - (2.0 * intersection + smooth) / (probabilities.sum() + target.sum() + smooth)


def _loss_cases(num_classes: int) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    cases = []
    for name, shape in (("a batch of 2", (2, 8, 8)), ("a batch of 3", (3, 16, 12))):
        logits = torch.randn(shape[0], max(num_classes, 1), *shape[1:], generator=generator) * 2
        labels = torch.randint(0, max(num_classes, 2), shape, generator=generator)
        cases.append((name, logits, labels))
    cases.append(("an empty target", torch.randn(2, max(num_classes, 1), 8, 8, generator=generator),
                  torch.zeros(2, 8, 8, dtype=torch.long)))
    return cases


@_exercise("soft_dice", "02_train_svsnet", "Write soft_dice_loss(logits, target) -> scalar tensor for binary "
           "logits and targets (B, 1, H, W): 1 - (2 sum(p y) + eps) / (sum(p) + sum(y) + eps) over the whole "
           "batch, p = sigmoid(logits), eps = 1e-5 (SVSnet's loss).", _soft_dice_loss)
def _check_soft_dice(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Feedback:
    reference = DiceLoss(mode="binary", smooth=1e-5, batch_dice=True)
    for name, logits, labels in _loss_cases(1):
        target = labels.unsqueeze(1).float()
        logits = logits.clone().requires_grad_(True)
        got = fn(logits, target)
        expected = reference(logits.detach(), target)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return _wrong(f"return one scalar tensor; for {name} you returned {type(got).__name__} "
                          f"{getattr(got, 'shape', '')}")
        if not _close(got.item(), expected.item(), 1e-4):
            return _wrong(f"for {name} your loss is {got.item():.5f}, expected {expected.item():.5f} "
                          "(sum over the whole batch before dividing; use probabilities, not thresholded masks)")
        if not got.requires_grad:
            return _wrong("your loss has no gradient: thresholding or .item()/.numpy() cut the graph; keep the "
                          "soft probabilities")
    return _right("matches medseg_core.losses.DiceLoss(mode='binary', batch_dice=True), and it is differentiable.")


def _threshold_from_validation(val_sweep: pd.DataFrame, test_sweep: pd.DataFrame) -> float:
    return float(val_sweep.loc[val_sweep["dice"].idxmax(), "threshold"])


def _sweep(best: float) -> pd.DataFrame:
    thresholds = np.round(np.linspace(0.05, 0.95, 19), 2)
    return pd.DataFrame({"threshold": thresholds, "dice": 0.8 - (thresholds - best) ** 2})


@_exercise("threshold_on_validation", "02_train_svsnet", "Write choose_threshold(val_sweep, test_sweep) -> float "
           "(sweeps as returned by medseg_core.threshold_sweep) that picks the threshold to report test scores at.",
           _threshold_from_validation)
def _check_threshold_on_validation(fn: Callable[[pd.DataFrame, pd.DataFrame], float]) -> Feedback:
    for val_best, test_best in ((0.35, 0.6), (0.7, 0.25)):
        got = float(fn(_sweep(val_best), _sweep(test_best)))
        if _close(got, test_best, 1e-6):
            return _wrong(f"you returned {got}, the best threshold on the test split: tuning on test makes the test "
                          f"score optimistic (the test set must stay unseen); take the best validation Dice "
                          f"({val_best}).")
        if not _close(got, val_best, 1e-6):
            return _wrong(f"you returned {got}; the threshold with the highest validation Dice is {val_best}.")
    return _right("the threshold is chosen on validation, so the test score stays an honest estimate.")


_LOSS_GAP_OPTIONS = {
    "a": "the validation videos happen to be easier than the training videos",
    "b": "the training loss is averaged over the epoch while the weights still improve, on augmented windows with "
         "dropout on; the validation loss uses the weights at the end of the epoch, in eval mode, on plain windows",
    "c": "the model overfits the training videos",
    "d": "the validation loss is computed with another loss function",
}
_LOSS_GAP_WHY_NOT = {
    "a": "it can happen in one split, but training and validation videos come from the same generator; look at what "
         "differs between the two measurements themselves",
    "c": "overfitting shows the other way round: the validation loss above the training loss, and rising",
    "d": "the Trainer calls the same loss_fn in train_step and in validation_step (medseg_core.training)",
}


def _choice(answer: Any, options: Sequence[str]) -> str:
    """A letter answer as 'b', 'B', 'b)' or '(b)', normalised; ValueError names the options otherwise."""
    letter = str(answer).strip().strip("()").lower()
    if letter not in options:
        raise ValueError(f"answer with one of {', '.join(repr(o) for o in options)}; you gave {answer!r}")
    return letter


@_exercise("val_below_train", "02_train_svsnet", "In the training curves the validation loss can lie below the "
           "training loss. Which explanation fits this kit? "
           + "; ".join(f"({key}) {text}" for key, text in _LOSS_GAP_OPTIONS.items()) + ". Give a letter.", "b",
           kind="interpret")
def _check_val_below_train(answer: str) -> Feedback:
    letter = _choice(answer, list(_LOSS_GAP_OPTIONS))
    if letter == "b":
        return _right("the training loss is a running mean over the epoch's batches, taken while the weights "
                      "improve, on augmented windows with SVSnet's dropout active; the validation loss is measured "
                      "after the epoch, in eval mode, on plain windows. Below the training loss is normal early on; "
                      "overfitting shows as a validation loss that rises while the training loss falls.")
    return _wrong(f"({letter}): {_LOSS_GAP_WHY_NOT[letter]}.")


def _train_step(model: nn.Module, batch: dict[str, torch.Tensor], loss_fn: Callable[[torch.Tensor, torch.Tensor],
                torch.Tensor], optimizer: torch.optim.Optimizer) -> float:
    logits = model(batch["image"])
    loss = loss_fn(logits, batch["mask"])
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss.item()


# What the Trainer's step adds for long runs (clipping, mixed precision) is off, so the bare step must match it.
_STEP_CONFIG = TrainConfig(lr=0.05, grad_clip=None, amp=False, channels_last=False, keep_freed_memory=False,
                           device="cpu", seed=0)


@contextmanager
def _random_state_restored() -> Iterator[None]:
    """Run a check without moving the notebook's random generators (the Trainer seeds them)."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@_exercise("train_step", "02_train_svsnet", "Write train_step(model, batch, loss_fn, optimizer) -> float: the one "
           "optimisation step the Trainer hides: forward pass on batch['image'], the loss against batch['mask'], "
           "backward pass, optimiser step, gradients reset; return the loss value.", _train_step)
def _check_train_step(fn: Callable[..., float]) -> Feedback:
    with _random_state_restored():
        generator = torch.Generator().manual_seed(0)
        batches = [{"image": torch.randn(2, 1, 16, 16, generator=generator),
                    "mask": (torch.rand(2, 1, 16, 16, generator=generator) > 0.7).float()} for _ in range(3)]
        torch.manual_seed(0)
        kit_model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
        learner_model, loss_fn = copy.deepcopy(kit_model), DiceLoss(mode="binary")
        trainer = Trainer(kit_model, loss_fn, _STEP_CONFIG, None, metadata=RunMetadata("xca", 16), progress=False)
        optimizer = build_optimizer(learner_model.parameters(), _STEP_CONFIG)
        kit_model.train()
        learner_model.train()
        for step, batch in enumerate(batches, start=1):
            before = [p.detach().clone() for p in learner_model.parameters()]
            kit_loss = trainer.train_step(batch)
            got = float(fn(learner_model, {key: value.clone() for key, value in batch.items()}, loss_fn, optimizer))
            if all(torch.equal(old, new) for old, new in zip(before, learner_model.parameters())):
                return _wrong(f"step {step} did not change the weights: loss.backward() computes the gradients and "
                              "optimizer.step() applies them, in that order (zero_grad between them discards them)")
            error = max((a - b).abs().max().item() for a, b in zip(kit_model.parameters(), learner_model.parameters()))
            if error > 1e-5 and step > 1:
                return _wrong(f"step 1 matches the Trainer, but after step {step} the weights differ by up to "
                              f"{error:.2g}: the previous step's gradients were still there (.backward() adds to "
                              ".grad). Call optimizer.zero_grad() once per step, before backward or after step.")
            if error > 1e-5:
                return _wrong(f"after one step your weights differ from the Trainer's by up to {error:.2g}: forward "
                              "on batch['image'] with the model in training mode, loss_fn(logits, batch['mask']), "
                              "backward, optimizer.step()")
            if not _close(got, kit_loss, 1e-5):
                return _wrong(f"step {step}: you returned {got:.5f}, the loss of that batch is {kit_loss:.5f}: "
                              "return loss.item() of the forward pass before the step")
    return _right("three steps match Trainer.train_step weight for weight. Around these five lines the Trainer adds "
                  "what long runs need: gradient clipping, mixed precision, a learning-rate schedule, a check for a "
                  "NaN loss, the epoch loop, validation and checkpoints.")


# ---------------------------------------------------------------------------------------------- 03 OCT data
def _patient_split(pairs: pd.DataFrame, val_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    return patient_split(pairs, val_fraction, seed=0)


@_exercise("patient_split", "03_oct_data", "Write split(pairs, val_fraction) -> (train, val) for a table with one "
           "row per frame (columns id, patient) so that no patient is in both parts.", _patient_split)
def _check_patient_split(fn: Callable[[pd.DataFrame, float], tuple[pd.DataFrame, pd.DataFrame]]) -> Feedback:
    pairs = pd.DataFrame({"id": [f"P{p:02d}_{f:03d}" for p in range(6) for f in range(5)],
                          "patient": [f"P{p:02d}" for p in range(6) for _ in range(5)]})
    train, val = fn(pairs.copy(), 1 / 3)
    leaked = sorted(set(train["patient"]) & set(val["patient"]))
    if leaked:
        return _wrong(f"patients {leaked} are in both training and validation: frames of one pullback are near "
                      "duplicates, so validation would reward remembering a patient. Split the patient ids first, "
                      "then take all their frames.")
    ids = list(train["id"]) + list(val["id"])
    if sorted(ids) != sorted(pairs["id"]) or len(val) == 0 or len(train) == 0:
        return _wrong(f"every frame must land in exactly one non-empty part; you kept {len(ids)} of {len(pairs)} "
                      f"frames ({len(train)} train, {len(val)} val).")
    return _right(f"{val['patient'].nunique()} of 6 patients in validation, none shared with training.")


def _label_mask(mask: np.ndarray) -> np.ndarray:
    return (np.asarray(mask) > 0).astype(np.uint8)


@_exercise("label_mask", "03_oct_data", "Write to_labels(mask) -> (H, W) integer class indices for a binary mask "
           "stored as 0/255 (or already 0/1), the most common mask mistake.", _label_mask)
def _check_label_mask(fn: Callable[[np.ndarray], np.ndarray]) -> Feedback:
    rng = np.random.default_rng(0)
    binary = (rng.random((8, 8)) > 0.5).astype(np.uint8)
    for name, mask in (("a 0/255 mask", binary * 255), ("a 0/1 mask", binary)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = to_label_mask(mask.copy(), num_classes=2)
        got = np.asarray(fn(mask.copy()))
        if not np.issubdtype(got.dtype, np.integer):
            return _wrong(f"for {name} you returned dtype {got.dtype}; class indices must be integers (losses "
                          "index classes with them)")
        if got.shape != expected.shape or not np.array_equal(got, expected):
            return _wrong(f"for {name} you returned values {np.unique(got).tolist()}, expected "
                          f"{np.unique(expected).tolist()} (0 = background, 1 = the class)")
    return _right("0/255 and 0/1 masks both become class indices 0/1, as medseg_core.data.io.to_label_mask does.")


def _polar_lipid_masks() -> list[tuple[str, np.ndarray, float]]:
    """``(name, polar lipid mask (A, S), the generator's arc in degrees)`` of simulated frames: an arc away from 0°,
    one across 0° (3 o'clock), a frame without lipid, and one with 360 A-lines instead of 504."""
    lipid_channel = OCT_CLASSES.index("lipid_core")
    params = sim.sample_frame_params(np.random.default_rng(3), lipid=True, calcium=False)
    frames = [("a lipid pool", params, sim.NUM_ALINES),
              ("a lipid pool across 0°", replace(params, lipid=replace(params.lipid, centre_angle=0.1)),
               sim.NUM_ALINES),
              ("a frame without lipid", replace(params, lipid=None), sim.NUM_ALINES),
              ("a frame of 360 A-lines", replace(params, lipid=replace(params.lipid, arc_width=2.0)), 360)]
    cases = []
    for name, frame, num_alines in frames:
        polar = sim.simulate_polar_frame(frame, np.random.default_rng(0), num_alines=num_alines, num_samples=96)
        mask = sim.labels_to_channels(polar.labels)[..., lipid_channel] > 0
        cases.append((name, mask, 0.0 if frame.lipid is None else math.degrees(frame.lipid.arc_width)))
    return cases


@_exercise("lipid_arc", "03_oct_data", "Write lipid_arc(polar_mask) -> float: the lipid arc in degrees of one "
           "frame, from its lipid mask in the polar view (A, S): rows are the A-lines over 360 degrees, columns the "
           "depth.", polar_lipid_arc_degrees, kind="interpret")
def _check_lipid_arc(fn: Callable[[np.ndarray], float]) -> Feedback:
    drawn = []
    for name, mask, generator_arc in _polar_lipid_masks():
        got, expected = float(fn(mask.copy())), polar_lipid_arc_degrees(mask)
        if not _close(got, expected, 0.5):
            rows = mask.any(axis=1)
            hint = (" A pool across 0° covers the first and the last rows: count the A-lines that hold lipid instead "
                    "of spanning the first to the last one." if rows[0] and rows[-1] else
                    f" This frame has {mask.shape[0]} A-lines: one row is 360 / {mask.shape[0]} degrees." if
                    mask.shape[0] != 360 else "")
            return _wrong(f"for {name} you returned {got:.1f}°, expected {expected:.1f}° (A-lines with any lipid "
                          f"pixel, times 360° / the number of A-lines).{hint}")
        if generator_arc:
            drawn.append(f"{expected:.0f}° (drawn: {generator_arc:.0f}°)")
    return _right(f"arcs {', '.join(drawn)}: the masks match the arcs the generator drew, to about one A-line. "
                  "Reports of OCT plaques grade lipid by its arc; a thin-cap fibroatheroma is commonly defined as "
                  "lipid over more than 90° under a cap thinner than 65 µm. medseg_core.clinical measures both on "
                  "Cartesian masks (lipid_arc_degrees, min_cap_thickness). A teaching measurement on synthetic "
                  "frames, not for diagnostic use.")


# ---------------------------------------------------------------------------------------------- 04 DeepLabV3+ / ECA
def _eca_kernel(channels: int, gamma: int = 2, b: int = 1) -> int:
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


@_exercise("eca_kernel", "04_train_deeplabv3plus_eca", "Write kernel_size(C) -> int, ECA's adaptive kernel size "
           "with gamma = 2, b = 1.", _eca_kernel)
def _check_eca_kernel(fn: Callable[[int], int]) -> Feedback:
    for channels in (16, 24, 32, 64, 96, 128, 256, 320, 512, 1280, 2048):
        got, expected = fn(channels), eca_kernel_size(channels)
        if got != expected:
            return _wrong(f"for C={channels} you returned {got}, expected {expected} (t = int(|(log2(C) + b) / "
                          "gamma|), k = t if t is odd else t + 1)")
    return _right("matches medseg_core.models.blocks.eca_kernel_size: k = 3 for the 24-channel skip, 5 for ASPP's "
                  "1280 channels.")


def _ce_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    ce = F.cross_entropy(logits, target)
    probabilities = logits.softmax(dim=1)[:, 1:]
    one_hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1)[:, 1:].float()
    axes = (0, 2, 3)
    dice_per_class = (2 * (probabilities * one_hot).sum(axes) + smooth) / (
        probabilities.sum(axes) + one_hot.sum(axes) + smooth)
    return ce + 1.0 - dice_per_class.mean()


@_exercise("ce_dice", "04_train_deeplabv3plus_eca", "Write ce_dice_loss(logits, target) -> scalar for logits "
           "(B, K, H, W) and int64 labels (B, H, W): cross-entropy + (1 - soft Dice), the Dice averaged over the "
           "foreground classes 1..K-1, each summed over the whole batch, eps = 1e-5 (the OCT reference implementation's loss).",
           _ce_dice_loss)
def _check_ce_dice(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Feedback:
    reference = CEDiceLoss()
    for num_classes in (2, 3):
        for name, logits, labels in _loss_cases(num_classes):
            labels = labels.clamp_max(num_classes - 1)
            got, expected = fn(logits.clone(), labels.clone()), reference(logits, labels)
            if not _close(float(got), expected.item(), 1e-4):
                ce = F.cross_entropy(logits, labels).item()
                return _wrong(f"K={num_classes}, {name}: you returned {float(got):.5f}, expected {expected.item():.5f} "
                              f"(cross-entropy alone is {ce:.5f}; the Dice term leaves the background class out)")
    return _right("matches medseg_core.losses.CEDiceLoss() for 2 and 3 classes.")


_EMPTY_FRAME_SIDE, _EMPTY_FRAME_PROBABILITY = 64, 0.01
_EMPTY_FRAME_SMOOTHING = (1e-5, 1.0)  # the kit's eps, and the eps = 1 many other implementations use


def _empty_frame_losses() -> tuple[float, float]:
    """Per-image soft Dice loss of the lipid class on the healthy frame, for each eps of the exercise."""
    logits = torch.full((1, 1, _EMPTY_FRAME_SIDE, _EMPTY_FRAME_SIDE), math.log(_EMPTY_FRAME_PROBABILITY / 0.99))
    return tuple(DiceLoss(mode="binary", smooth=eps, batch_dice=False)(logits, torch.zeros_like(logits)).item()
                 for eps in _EMPTY_FRAME_SMOOTHING)


def _empty_frame_solution() -> tuple[float, float]:
    summed = _EMPTY_FRAME_PROBABILITY * _EMPTY_FRAME_SIDE**2  # sum(p); sum(y) = 0 and there is no overlap
    return tuple(round(1.0 - eps / (summed + eps), 9) for eps in _EMPTY_FRAME_SMOOTHING)


@_exercise("soft_dice_empty", "04_train_deeplabv3plus_eca", f"A healthy {_EMPTY_FRAME_SIDE}x{_EMPTY_FRAME_SIDE} "
           f"frame has no lipid; the model gives lipid probability {_EMPTY_FRAME_PROBABILITY} at every pixel. What "
           "is the per-image soft Dice loss (1 - Dice) of the lipid class with the kit's eps = 1e-5, and with eps = 1 "
           "(the smoothing many other implementations use)? Give two numbers.", _empty_frame_solution())
def _check_soft_dice_empty(answer: Sequence[float]) -> Feedback:
    kit, smoothed = _empty_frame_losses()
    if isinstance(answer, (int, float)) or len(answer) != 2:
        return _wrong(f"give two numbers, (loss with eps = 1e-5, loss with eps = 1); you gave {answer!r}")
    got_kit, got_smoothed = (float(v) for v in answer)
    why = (f"compute 1 - (2 * 0 + eps) / (sum(p) + sum(y) + eps) with sum(p) = {_EMPTY_FRAME_PROBABILITY} x "
           f"{_EMPTY_FRAME_SIDE**2} and sum(y) = 0")
    if _close(got_kit, 0.0, 1e-3):
        return _wrong("not 0 with eps = 1e-5: there is no true positive, so the numerator is only eps while the "
                      "denominator holds the summed probabilities: Dice is near 0 and the loss near 1.")
    if not _close(got_kit, kit, 1e-3):
        return _wrong(f"with eps = 1e-5 you said {got_kit}; {why}.")
    if not _close(got_smoothed, smoothed, 1e-3):
        return _wrong(f"with eps = 1 you said {got_smoothed}; {why}: eps is now not small against sum(p).")
    return _right(f"{kit:.7f} and {smoothed:.4f}: soft Dice calls an almost perfect answer on an empty frame a "
                  "near-total failure, and a large eps only softens that. Cross-entropy carries the healthy frames, "
                  "and the metrics score them with the empty-mask rule.")


def _quiet_model_dice(results: pd.DataFrame) -> float:
    return float((results["truth_pixels"] == 0).mean())


def _dice_of_predicting_nothing(truth_pixels: Sequence[int]) -> float:
    """Mean Dice of an empty prediction over frames whose truth holds these pixel counts (the kit's ``dice``)."""
    size = max(truth_pixels) + 1
    scores = [dice(np.zeros((1, size), bool), np.arange(size)[None] < count) for count in truth_pixels]
    return float(np.mean(scores))


@_exercise("quiet_model_dice", "04_train_deeplabv3plus_eca", "Write quiet_dice(results) -> float: the mean Dice "
           "over all test frames of one class that a model predicting no lipid anywhere would get, from a per-frame "
           "table as medseg_core.evaluate returns it (column truth_pixels: lipid pixels in the ground truth).",
           _quiet_model_dice, kind="interpret")
def _check_quiet_model_dice(fn: Callable[[pd.DataFrame], float]) -> Feedback:
    for plaque_frames, empty_frames in ((3, 7), (8, 2), (5, 0)):
        truth = [120] * plaque_frames + [0] * empty_frames
        table = pd.DataFrame({"id": [f"001_1_{i:03d}" for i in range(len(truth))], "class": "lipid_core",
                              "truth_pixels": truth})
        got, expected = float(fn(table.copy())), _dice_of_predicting_nothing(truth)
        if not _close(got, expected, 1e-6):
            return _wrong(f"with {plaque_frames} frames with lipid and {empty_frames} without you returned {got:.3f}, "
                          f"expected {expected:.3f}: by the empty-mask rule an empty prediction scores 1 on a frame "
                          "without lipid and 0 on a frame with lipid.")
    return _right("a model that never finds lipid scores the share of lipid-free frames. Read any Dice averaged over "
                  "all frames against that floor, or score frames with lipid and false alarms on lipid-free frames "
                  "apart, as stats.foreground_split does.")


# ---------------------------------------------------------------------------------------------- 05 ECA ablation
def _eca_forward(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C)
    weights = torch.sigmoid(F.conv1d(pooled, kernel.view(1, 1, -1), padding=kernel.numel() // 2)).squeeze(1)
    return x * weights[:, :, None, None]


@_exercise("eca_block", "05_ablation_eca", "Write eca(x, kernel) -> tensor: ECA channel attention from scratch for "
           "x (B, C, H, W) and a 1D kernel (k,): global average pool, 1D convolution across channels (zero padding "
           "k // 2, no bias), sigmoid, multiply each channel by its weight.", _eca_forward)
def _check_eca_block(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Feedback:
    generator = torch.Generator().manual_seed(0)
    for channels in (24, 64, 1280):
        block = ECA(channels)
        with torch.no_grad():
            block.conv.weight.copy_(torch.randn(block.conv.weight.shape, generator=generator))
        x = torch.randn(2, channels, 5, 4, generator=generator)
        with torch.no_grad():
            got, expected = fn(x.clone(), block.conv.weight.detach().flatten().clone()), block(x)
        if tuple(got.shape) != tuple(expected.shape):
            return _wrong(f"for C={channels} your output has shape {tuple(got.shape)}, expected {tuple(x.shape)} "
                          "(ECA re-weights channels; it keeps the shape)")
        error = (got - expected).abs().max().item()
        if error > 1e-5:
            return _wrong(f"for C={channels} (k = {block.kernel_size}) your output differs from "
                          f"medseg_core.models.blocks.ECA by up to {error:.3g} with the same kernel (check the pooling "
                          "axes, the padding k // 2 across channels and the sigmoid)")
    return _right("same output as the kit's ECA block with the same weights, for C = 24, 64 and 1280.")


def _aspp_spans(rates: Sequence[int], output_stride: int) -> list[int]:
    return [(2 * rate + 1) * output_stride for rate in rates]


def _measured_span(rate: int) -> int:
    """Feature pixels a 3x3 convolution with dilation ``rate`` reads, from its response to an impulse."""
    conv = nn.Conv2d(1, 1, 3, padding=rate, dilation=rate, bias=False)
    nn.init.ones_(conv.weight)
    impulse = torch.zeros(1, 1, 4 * rate + 3, 4 * rate + 3)
    impulse[..., 2 * rate + 1, 2 * rate + 1] = 1.0
    with torch.no_grad():
        columns = torch.nonzero(conv(impulse)[0, 0].sum(0)).flatten()
    return int(columns.max() - columns.min() + 1)


@_exercise("aspp_field", "05_ablation_eca", "Write spans(rates, output_stride) -> list: how many input pixels "
           "across does each dilated 3x3 ASPP branch read (its kernel's span in feature pixels times the output "
           "stride)?", _aspp_spans)
def _check_aspp_field(fn: Callable[[Sequence[int], int], Sequence[int]]) -> Feedback:
    for rates, output_stride in (((6, 12, 18), 16), ((12, 24, 36), 8), ((1, 2, 3), 4)):
        expected = [_measured_span(rate) * output_stride for rate in rates]
        got = [int(v) for v in fn(rates, output_stride)]
        if got != expected:
            return _wrong(f"for rates {rates} at output stride {output_stride} you returned {got}, expected "
                          f"{expected}: a 3x3 kernel with dilation r spans 2r + 1 feature pixels, and each feature "
                          "pixel stands for output_stride input pixels.")
    return _right("at output stride 16 the branches read 208, 400 and 592 pixels across: more than a 256-pixel "
                  "frame, so the widest branch mostly sees padding on small inputs.")


def _feature_sizes(image_size: int, output_stride: int) -> tuple[int, int]:
    return image_size // 4, image_size // output_stride


@_exercise("output_stride", "05_ablation_eca", "Write sizes(image_size, output_stride) -> (low_level, deep): the "
           "side length of DeepLabV3+'s low-level skip feature and of the ASPP input for a square input.",
           _feature_sizes)
def _check_output_stride(fn: Callable[[int, int], tuple[int, int]]) -> Feedback:
    for output_stride in (16, 8):
        backbone = mobilenet_v2_backbone(output_stride).eval()
        for image_size in (64, 128):
            with torch.no_grad():
                low = backbone[:4](torch.zeros(1, 3, image_size, image_size))
                deep = backbone[4:](low)
            expected = (low.shape[-1], deep.shape[-1])
            got = tuple(int(v) for v in fn(image_size, output_stride))
            if got != expected:
                return _wrong(f"for a {image_size}x{image_size} input at output stride {output_stride} you returned "
                              f"{got}, the backbone gives {expected} (the skip is at stride 4, the ASPP input at the "
                              "output stride)")
    return _right("matches the MobileNetV2 backbone: output stride 8 keeps 4x as many ASPP positions as 16.")


def _effect_verdict(row: pd.Series) -> str:
    if np.isnan(row["ci_low"]):
        return "no interval"
    if row["ci_low"] <= 0 <= row["ci_high"]:
        return "not shown"
    across_seeds = (row["ci_low"] > 0 and row["seed_ci_low"] > 0) or (row["ci_high"] < 0 and row["seed_ci_high"] < 0)
    return "shown" if across_seeds else "these models only"


def _paired_designs() -> list[tuple[str, pd.DataFrame]]:
    """Paired comparisons (:func:`medseg_core.stats.paired_comparison`) of made-up ablations with every verdict:
    variant ``a`` gains 0.1 Dice in every seed, ``b`` gains 0.05 on average with a seed-to-seed spread of 0.1, ``c``
    gains nothing; designs with 6 test patients and 5 seeds, 6 patients and 3 seeds, 2 patients and 5 seeds."""
    from .stats import paired_comparison

    designs = []
    for patients, seeds in ((6, 5), (6, 3), (2, 5)):
        rng = np.random.default_rng(10 * patients + seeds)
        gains = {"none": (0.0, 0.0), "a": (0.1, 0.005), "b": (0.05, 0.1), "c": (0.0, 0.005)}
        shifts = {(variant, seed): gain + spread * rng.standard_normal()
                  for variant, (gain, spread) in gains.items() for seed in range(seeds)}
        rows = []
        for patient in range(patients):
            for frame in range(3):
                difficulty = 0.6 + 0.1 * rng.standard_normal()
                rows += [{"variant": variant, "seed": seed, "id": f"{patient:03d}_1_{frame:03d}", "cluster": patient,
                          "dice": float(np.clip(difficulty + shifts[variant, seed] + 0.02 * rng.standard_normal(),
                                                0, 1))} for variant in gains for seed in range(seeds)]
        designs.append((f"{patients} test patients and {seeds} seeds", paired_comparison(pd.DataFrame(rows), "none")))
    return designs


def _committed_eca_comparison() -> pd.DataFrame | None:
    """Notebook 05's comparison of the committed ECA ablation (Dice on plaque frames), or None without it."""
    from . import experiments
    from .stats import paired_comparison

    try:
        results = experiments.read_committed_results(experiments.ECA_ABLATION)
    except (FileNotFoundError, KeyError, ValueError):
        return None
    plaque = results[results["truth_pixels"] > 0]
    return paired_comparison(plaque, experiments.ECA_ABLATION.reference, ["dice"])


_VERDICT_WHY = {
    "no interval": "fewer test patients than an interval needs: ci_low and ci_high are NaN",
    "not shown": "the interval over test patients (ci_low to ci_high) contains 0",
    "these models only": "the interval over test patients excludes 0, but the interval over seeds (seed_ci_low to "
                         "seed_ci_high; NaN below five seeds) does not exclude 0 on the same side",
    "shown": "both intervals, over test patients and over seeds, exclude 0 on the same side",
}


@_exercise("effect_verdict", "05_ablation_eca", "Write verdict(row) -> str: what one row of a paired comparison "
           "(stats.paired_comparison, without its verdict column) supports, read from its intervals: 'shown', 'these "
           "models only', 'not shown' or 'no interval'.", _effect_verdict, kind="interpret")
def _check_effect_verdict(fn: Callable[[pd.Series], str]) -> Feedback:
    committed = _committed_eca_comparison()
    designs = _paired_designs() + ([("the committed ECA ablation", committed)] if committed is not None else [])
    for design, table in designs:
        for _, row in table.iterrows():
            got = str(fn(row.drop("verdict").copy())).strip()
            if got != row["verdict"]:
                return _wrong(
                    f"{design}, {row['variant']} vs {row['reference']}: you said {got!r}, the numbers support "
                    f"{row['verdict']!r}: {_VERDICT_WHY[row['verdict']]} (ci {row['ci_low']:+.3f} to "
                    f"{row['ci_high']:+.3f} over {row['n_clusters']} patients, seed interval {row['seed_ci_low']:+.3f} "
                    f"to {row['seed_ci_high']:+.3f} over {row['n_seeds']} seeds).")
    if committed is None:
        return _right("your verdicts match the library's on every design; the committed results are not here to "
                      "read.")
    read = "; ".join(f"{row['variant']}: {row['verdict']}" for _, row in committed.iterrows())
    return _right(f"your verdicts match the library's. The committed ECA ablation (Dice on plaque frames against "
                  f"none) reads {read}. The unit decides the claim: an interval over test patients speaks about "
                  "these trained models on new patients like these; only one over seeds says the effect survives "
                  "retraining.")


# ---------------------------------------------------------------------------------------------- 06 window length
def _fusion_parameters(channels: int, window_length: int) -> int:
    return channels * channels * window_length + channels


@_exercise("fusion_parameters", "06_ablation_window_length", "Write fusion_parameters(C, T) -> int: the trainable "
           "parameters of SVSnet's skip fusion nn.Conv3d(C, C, kernel_size=(T, 1, 1)) with a bias.",
           _fusion_parameters)
def _check_fusion_parameters(fn: Callable[[int, int], int]) -> Feedback:
    for channels, window_length in ((8, 4), (64, 1), (256, 2), (512, 8)):
        expected = count_parameters(nn.Conv3d(channels, channels, (window_length, 1, 1)))
        got = int(fn(channels, window_length))
        if got != expected:
            hint = " (you left out the C biases)" if got == expected - channels else ""
            return _wrong(f"for C={channels}, T={window_length} you returned {got}, expected {expected}: "
                          f"C x C x T weights + C biases{hint}")
    return _right("C^2 T + C: the window length enters the weights only here, so each extra frame adds C^2 per "
                  "level.")


_WINDOWS = (1, 4)


@_exercise("svsnet_window_parameters", "06_ablation_window_length", "How many more trainable parameters does "
           f"SVSnet have at T = {_WINDOWS[1]} than at T = {_WINDOWS[0]}? (Six skip fusions at 8 ... 256 channels and "
           "the 512-channel bottleneck fusion.) Give an integer.",
           sum(c * c for c in (8, 16, 32, 64, 128, 256, 512)) * (_WINDOWS[1] - _WINDOWS[0]))
def _check_svsnet_window_parameters(answer: int) -> Feedback:
    short, long = (count_parameters(create_model("svsnet", window_length=t)) for t in _WINDOWS)
    expected = long - short
    if int(answer) == expected:
        return _right(f"{expected:,} ({short:,} at T = 1, {long:,} at T = 4): about 10 % more weights, all in the "
                      "(T, 1, 1) fusions; the encoder and decoder are the same.")
    return _wrong(f"you said {int(answer):,}; the models have {short:,} and {long:,} parameters. Each fusion has "
                  "C^2 T + C parameters: the biases cancel, the weights differ by C^2 per extra frame.")


def _single_frame_gradients() -> tuple[float, int, int]:
    """SVSnet at T = 1 after one backward pass: the share of the weights of its 3x3x3 convolutions that receive a
    gradient, and the parameters of the whole model that receive none (of all)."""
    torch.manual_seed(0)  # a fixed initialisation (callers restore the random state): the measurement repeats
    model = create_model("svsnet", window_length=1).eval()  # eval: no dropout, the same taps
    model(torch.rand(1, 1, 1, 64, 64, generator=torch.Generator().manual_seed(0))).sum().backward()
    taps = [conv.weight.grad.abs().amax(dim=(0, 1, 3, 4)) > 0 for conv in model.modules()
            if isinstance(conv, nn.Conv3d) and conv.kernel_size[0] == 3]
    unused = sum(int((p.grad == 0).sum()) if p.grad is not None else p.numel() for p in model.parameters())
    return float(torch.cat(taps).float().mean()), unused, count_parameters(model)


@_exercise("t1_unused_weights", "06_ablation_window_length", "At T = 1 the window is one frame. Each 3x3x3 "
           "convolution of SVSnet's encoder pads time by one frame on each side. What fraction of such a "
           "convolution's weights ever receives a gradient? Give a number.", 1 / 3, kind="predict")
def _check_t1_unused_weights(answer: float) -> Feedback:
    with _random_state_restored():
        used, unused, total = _single_frame_gradients()
    got = float(answer)
    if _close(got, used, 0.01):
        return _right(f"{used:.2f}, measured by one backward pass: only the middle of the three time taps reads the "
                      "frame, the others read the zero padding and get no gradient, so at T = 1 SVSnet is a 2D "
                      f"network with 3x3 kernels whose (1, 1, 1) fusions are 1x1 convolutions. {unused:,} of its "
                      f"{total:,} parameters ({unused / total:.0%}) get no gradient at T = 1, so they never learn: compare "
                      "models by what they compute, not by their parameter count.")
    if _close(got, 1.0, 0.01):
        return _wrong("not all of them: with one frame, the taps before and after it read only the zero padding "
                      "along time, and a weight that multiplies zero gets a zero gradient.")
    return _wrong(f"you said {got:g}; a 3x3x3 kernel has three taps along time, and at T = 1 only the taps that land "
                  "on the one frame read anything but padding.")


# ----------------------------------------------------------------------------------- 07 reproduce figures
def _moved_columns(committed: pd.DataFrame, fresh: pd.DataFrame, tolerance: float) -> list[str]:
    numeric = committed.select_dtypes("number").columns
    return [column for column in numeric if float((committed[column] - fresh[column]).abs().max()) > tolerance]


@_exercise("moved_columns", "07_reproduce_figures", "Write moved_columns(committed, fresh, tolerance) -> list of "
           "names: the numeric columns of a committed table whose values moved by more than tolerance (absolute) in a "
           "fresh run's table with the same rows (what `medseg check-figures` does).", _moved_columns)
def _check_moved_columns(fn: Callable[[pd.DataFrame, pd.DataFrame, float], Sequence[str]]) -> Feedback:
    committed = pd.DataFrame({"variant": ["a", "b"], "dice": [0.80, 0.70], "iou": [0.60, 0.50],
                              "recall": [0.90, 0.95]})
    fresh = committed.assign(dice=[0.81, 0.64], iou=[0.59, 0.515], recall=[0.90, 0.95])
    # dice moves by 0.01 and 0.06 (mean 0.035), iou by 0.01 and 0.015: at 0.04 only the largest change flags dice
    for tolerance, expected in ((0.02, ["dice"]), (0.005, ["dice", "iou"]), (0.04, ["dice"]), (0.1, [])):
        got = sorted(fn(committed, fresh, tolerance))
        if got != expected:
            return _wrong(f"with tolerance {tolerance} you returned {got}, expected {expected}: compare each column's "
                          "largest absolute difference (a mean lets one row that moved far hide among rows that "
                          "did not, and a row that moves up and one that moves down cancel in a signed mean)")
    return _right("a rerun elsewhere moves single-run tables by about 0.01 Dice; the ablation means can move far "
                  "more, which is why their claims must rest on differences larger than the seed spread.")


def _made_with_uncommitted_code(manifest: pd.DataFrame) -> list[str]:
    return sorted(manifest.loc[manifest["uncommitted_changes"] != "false", "file"])


@_exercise("uncommitted_figures", "07_reproduce_figures", "Write uncommitted(manifest) -> sorted list of the files "
           "that cannot be traced to committed code (manifest as provenance.read_manifest returns it: column "
           "uncommitted_changes holds 'true', 'false' or 'unknown').", _made_with_uncommitted_code)
def _check_uncommitted_figures(fn: Callable[[pd.DataFrame], Sequence[str]]) -> Feedback:
    manifest = pd.DataFrame({"file": ["a.png", "b.csv", "c.png", "d.png"],
                             "uncommitted_changes": ["false", "true", "unknown", "false"]})
    got = sorted(fn(manifest))
    expected = _made_with_uncommitted_code(manifest)
    if got == ["b.csv"]:
        return _wrong("you left out c.png: 'unknown' (made outside a git checkout) cannot be traced to committed "
                      "code either")
    if got != expected:
        return _wrong(f"you returned {got}, expected {expected}: every row whose uncommitted_changes is not 'false'")
    return _right("only a figure made from a clean commit can be regenerated from the repository alone.")


def _seed_spread(results: pd.DataFrame, variant: str, metric: str) -> float:
    runs = results[results["variant"] == variant].groupby("seed")[metric].mean()
    return float(runs.std(ddof=1))


def _grid_with_seed_spread() -> pd.DataFrame:
    """Made-up per-frame results of a grid: 2 variants x 4 seeds x 2 videos of 5 frames; each seed shifts a run."""
    rng = np.random.default_rng(1)
    rows = [{"variant": variant, "seed": seed, "id": f"v{video}_{frame:03d}", "cluster": f"v{video}",
             "dice": float(np.clip(0.7 + 0.04 * seed * (variant == "T4") + 0.1 * rng.standard_normal(), 0, 1)),
             "cldice": float(np.clip(0.6 + 0.1 * rng.standard_normal(), 0, 1))}
            for variant in ("T1", "T4") for seed in range(4) for video in range(2) for frame in range(5)]
    return pd.DataFrame(rows)


@_exercise("seed_spread", "07_reproduce_figures", "Write seed_spread(results, variant, metric) -> float: how far "
           "retraining with another seed moves a result, from a grid's per-frame table (columns variant, seed, id, "
           "cluster and the metrics, as experiments.read_committed_results returns it): the standard deviation over "
           "seeds of the variant's mean over the test frames.", _seed_spread, kind="interpret")
def _check_seed_spread(fn: Callable[[pd.DataFrame, str, str], float]) -> Feedback:
    from . import experiments
    from .stats import summarize_runs

    tables = [("made-up results", _grid_with_seed_spread(), [("T4", "dice"), ("T1", "cldice")])]
    try:
        tables.append(("the committed window-length ablation",
                       experiments.read_committed_results(experiments.WINDOW_LENGTH_ABLATION),
                       [("T4", "dice"), ("T1", "cldice")]))
    except (FileNotFoundError, KeyError, ValueError):
        pass
    for name, results, questions in tables:
        for variant, metric in questions:
            rows = results[results["variant"] == variant]
            expected = float(summarize_runs(rows, by="variant", metrics=[metric], unit="seed")["std"].iloc[0])
            got = float(fn(results.copy(), variant, metric))
            if _close(got, expected, 1e-6):
                continue
            if _close(got, rows[metric].std(), 1e-6) or _close(got, rows.groupby("id")[metric].mean().std(), 1e-6):
                return _wrong(f"{name}, {variant} {metric}: {got:.4f} is the spread over test frames (some frames "
                              "are harder than others); retraining moves each seed's mean: average over the frames "
                              "per seed first, then take the spread of those means")
            return _wrong(f"{name}, {variant} {metric}: you returned {got:.4f}, expected {expected:.4f} (the sample "
                          "standard deviation, ddof=1, of the per-seed means)")
    spread = _seed_spread(tables[-1][1], "T4", "dice")
    return _right(f"retraining moves {tables[-1][0]}'s T4 Dice by about {spread:.3f} (sd over seeds). A "
                  "single-seed figure that moves by less than that after a code change says nothing about the "
                  "change; a rerun with the same seed on the same kind of machine reproduces the committed numbers "
                  "exactly, and any difference there is a change of code or library.")


# ----------------------------------------------------------------------------------- 08 explorers
_DIRECTIONS = ("up or same", "down or same", "either")


def _threshold_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """``(probabilities, truth)`` pairs: vessel pixels just below 0.5 with a few confident false alarms, confident
    vessels on a faint background, and a noisy map."""
    truth = np.zeros((16, 16), bool)
    truth[4:12, 6:9] = True
    faint_vessel = np.where(truth, 0.4, 0.0)
    faint_vessel[0, :3] = 0.8
    faint_background = np.where(truth, 0.9, 0.0)
    faint_background[12:, :] = 0.4
    noisy = np.clip(np.where(truth, 0.55, 0.35) + 0.2 * np.random.default_rng(0).standard_normal(truth.shape), 0, 1)
    return [(faint_vessel, truth), (faint_background, truth), (noisy, truth)]


def _threshold_directions(high: float = 0.5, low: float = 0.3) -> dict[str, str]:
    """How recall, precision and Dice move, over the cases, when the threshold is lowered from ``high`` to ``low``."""
    scores = {"recall": recall, "precision": precision, "dice": dice}
    moves: dict[str, set[int]] = {name: set() for name in scores}
    for probabilities, truth in _threshold_cases():
        for name, score in scores.items():
            moves[name].add(int(np.sign(score(probabilities > low, truth) - score(probabilities > high, truth))))
    return {name: "up or same" if -1 not in seen else "down or same" if 1 not in seen else "either"
            for name, seen in moves.items()}


@_exercise("threshold_direction", "08_explorers", "Predict before you move the slider: when the threshold is "
           "lowered, which way do recall, precision and Dice move? Give a dict {'recall': ..., 'precision': ..., "
           f"'dice': ...}} with values from {list(_DIRECTIONS)}.",
           {"recall": "up or same", "precision": "either", "dice": "either"}, kind="predict")
def _check_threshold_direction(answer: dict[str, str]) -> Feedback:
    observed = _threshold_directions()
    missing = [name for name in observed if name not in answer]
    if missing:
        return _wrong(f"your dict lacks {missing}; give all of {list(observed)}")
    for name, expected in observed.items():
        got = str(answer[name]).strip().lower()
        if got not in _DIRECTIONS:
            return _wrong(f"{name}: answer with one of {list(_DIRECTIONS)}; you gave {answer[name]!r}")
        if got != expected:
            why = {"recall": "a lower threshold only adds predicted pixels, so no vessel pixel found before is lost",
                   "precision": "the added pixels can be mostly vessel (precision rises) or mostly background (it "
                                "falls): on three made-up frames it goes both ways",
                   "dice": "Dice weighs the new hits against the new false alarms, so it can go both ways"}[name]
            return _wrong(f"{name}: you said {got!r}, but it is {expected!r}: {why}.")
    return _right("recall can only rise; precision and Dice depend on what the added pixels are. That is why a "
                  "threshold is a choice, made on validation data (notebook 02), never on the test set.")


# ----------------------------------------------------------------------------------- 09 synthetic to real
def _domain_gap(synthetic: pd.DataFrame, real: pd.DataFrame) -> tuple[float, float]:
    on_plaque = [table.loc[table["truth_pixels"] > 0, "dice"].mean() for table in (synthetic, real)]
    return on_plaque[0] - on_plaque[1], (on_plaque[0] - on_plaque[1]) / on_plaque[0]


def _frames(plaque_dice: Sequence[float], empty_dice: Sequence[float]) -> pd.DataFrame:
    """Per-frame scores as ``evaluate`` gives them: frames with plaque, then plaque-free frames (1 if left empty)."""
    dice_values = [*plaque_dice, *empty_dice]
    return pd.DataFrame({"id": [f"001_1_{i:03d}" for i in range(len(dice_values))], "class": "lipid_core",
                         "dice": dice_values, "truth_pixels": [50] * len(plaque_dice) + [0] * len(empty_dice),
                         "predicted_pixels": [40] * len(plaque_dice) + [0 if v == 1 else 30 for v in empty_dice]})


@_exercise("domain_gap", "09_synthetic_to_real", "Write gap(synthetic, real) -> (absolute, relative): from two "
           "per-frame tables as medseg_core.evaluate returns them (one class), the Dice on frames with plaque "
           "(truth_pixels > 0) of the synthetic test set minus that of the real test set, and that difference as a "
           "share of the synthetic Dice.", _domain_gap)
def _check_domain_gap(fn: Callable[[pd.DataFrame, pd.DataFrame], tuple[float, float]]) -> Feedback:
    from .stats import foreground_split

    cases = ((_frames([0.9, 0.8], [1, 1, 1]), _frames([0.3, 0.1], [0, 0, 1, 0])),
             (_frames([0.7, 0.6, 0.8], [1, 0]), _frames([0.5], [1, 1, 1, 1])))
    for synthetic, real in cases:
        expected_on = [float(foreground_split(t, metrics=["dice"])["dice"].iloc[0]) for t in (synthetic, real)]
        absolute, relative = (float(v) for v in fn(synthetic.copy(), real.copy()))
        mixed = synthetic["dice"].mean() - real["dice"].mean()
        if _close(absolute, mixed, 1e-6) and not _close(mixed, expected_on[0] - expected_on[1], 1e-6):
            return _wrong(f"you returned an absolute gap of {absolute:.3f}, the difference of means over all frames: "
                          "plaque-free frames score 1 or 0 by the empty-mask rule and answer another question (false "
                          "alarms); keep the frames with truth_pixels > 0")
        if not _close(absolute, expected_on[0] - expected_on[1], 1e-6):
            return _wrong(f"you returned an absolute gap of {absolute:.3f}; Dice on plaque frames is "
                          f"{expected_on[0]:.3f} (synthetic) and {expected_on[1]:.3f} (real), so the gap is "
                          f"{expected_on[0] - expected_on[1]:.3f}")
        if not _close(relative, (expected_on[0] - expected_on[1]) / expected_on[0], 1e-6):
            return _wrong(f"you returned a relative gap of {relative:.3f}; divide the gap by the synthetic score "
                          f"({expected_on[0]:.3f}): the share of the synthetic Dice lost on real frames")
    return _right("the gap on plaque frames, as stats.foreground_split reports it; false alarms on plaque-free "
                  "frames are a second, separate number.")


def _pretraining_effect(results: pd.DataFrame) -> pd.Series:
    plaque = results[results["truth_pixels"] > 0]
    means = plaque.groupby(["train_frames", "seed", "start"])["dice"].mean().unstack("start")
    return (means["synthetic"] - means["scratch"]).rename("dice_difference")


def _transfer_results() -> pd.DataFrame:
    """Fine-tuning results: 2 starts x n in (4, 16) x 3 seeds x 5 test frames (3 with plaque); a seed shifts
    both starts alike."""
    rng = np.random.default_rng(0)
    rows = []
    for n in (4, 16):
        for seed in range(3):
            shift = 0.2 * seed  # what one seed's data order does to both starts
            for start, gain in (("scratch", 0.0), ("synthetic", 0.1 if n == 4 else 0.02)):
                for frame in range(5):
                    plaque = frame < 3
                    value = min(1.0, 0.2 + 0.02 * n + shift + gain + rng.uniform(0, 0.05)) if plaque else float(
                        rng.random() < 0.5)
                    rows.append({"start": start, "train_frames": n, "seed": seed, "id": f"001_1_{frame:03d}",
                                 "dice": value, "truth_pixels": 80 if plaque else 0})
    return pd.DataFrame(rows)


@_exercise("pretraining_effect", "09_synthetic_to_real", "Write effect(results) -> pandas Series indexed by "
           "(train_frames, seed): for each n and seed, the mean Dice on frames with plaque (truth_pixels > 0) of the "
           "run that started from the synthetic model minus that of the run from scratch with the same seed "
           "(results as medseg_core.experiments.synthetic_to_real returns them, columns start, train_frames, seed, "
           "id, dice, truth_pixels).", _pretraining_effect)
def _check_pretraining_effect(fn: Callable[[pd.DataFrame], pd.Series]) -> Feedback:
    results = _transfer_results()
    expected = _pretraining_effect(results)
    got = fn(results.copy())
    got = got.squeeze(axis=1) if isinstance(got, pd.DataFrame) else pd.Series(got)
    if got.index.nlevels != 2 or set(got.index) != set(expected.index):
        return _wrong(f"your answer has index {list(got.index)[:4]}...; expected one value per (train_frames, seed), "
                      f"e.g. {list(expected.index)[:2]}")
    got = got.reindex(expected.index).astype(float)
    if np.allclose(got, expected, atol=1e-6):
        return _right("one paired difference per seed: the same seed gives both starts the same frame order and "
                      "augmentation, so the pair differs only in its starting weights.")
    all_frames = results.groupby(["train_frames", "seed", "start"])["dice"].mean().unstack("start")
    if np.allclose(got, all_frames["synthetic"] - all_frames["scratch"], atol=1e-6):
        return _wrong("you included the plaque-free frames (their Dice is 1 or 0 by the empty-mask rule); keep the "
                      "frames with truth_pixels > 0")
    n, seed = (int(v) for v in expected.index[0])
    return _wrong(f"for n = {n}, seed {seed} you returned {got.iloc[0]:.4f}, expected "
                  f"{expected.iloc[0]:.4f}: average each run over its plaque frames, then subtract the scratch run "
                  "of the same n and seed (not the mean over all scratch seeds)")


_PLANNED_SPREAD, _PLANNED_EFFECT = 0.06, 0.05  # sd of the per-seed differences; the effect to detect (Dice)


def _seeds_needed(spread: float, effect: float, alpha: float = 0.05) -> int:
    """The fewest paired seeds whose t-test detects ``effect`` with 80 % power (stats.detectable_effect_size)."""
    from .stats import detectable_effect_size

    seeds = 3
    while detectable_effect_size(seeds, alpha) * spread > effect:
        seeds += 1
    return seeds


def _seeds_needed_normal(spread: float, effect: float) -> int:
    """The normal approximation of notebook 09, (z_0.975 + z_0.8)^2 (sd / effect)^2, rounded up."""
    from scipy import stats

    return math.ceil(((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * spread / effect) ** 2)


@_exercise("seeds_needed", "09_synthetic_to_real", "Plan the next experiment: the per-seed paired differences "
           f"(synthetic - scratch) at some n have a standard deviation of {_PLANNED_SPREAD} Dice. How many paired "
           f"seeds would detect a mean effect of {_PLANNED_EFFECT} with 80 % power (two-sided, 95 % level)? Give an "
           "integer.", _seeds_needed(_PLANNED_SPREAD, _PLANNED_EFFECT), kind="interpret")
def _check_seeds_needed(answer: int) -> Feedback:
    exact, normal = (f(_PLANNED_SPREAD, _PLANNED_EFFECT) for f in (_seeds_needed, _seeds_needed_normal))
    got = float(answer)
    if got != int(got) or got < 2:
        return _wrong(f"give a whole number of seeds, at least 2 (a spread needs two), not {answer!r}")
    if min(exact, normal) <= got <= max(exact, normal):
        return _right(f"{exact} seeds with the t-test's own power (stats.detectable_effect_size; the normal "
                      f"approximation gives {normal}): an effect the size of the seed spread needs a dozen paired "
                      "runs per n. Three seeds can show only effects of several spreads, and fewer than five give no "
                      "interval at all: then claim nothing.")
    if got in (3, 5):
        return _wrong(f"{int(got)} is what the notebook runs or the fewest seeds for an interval, not what this effect "
                      "needs: with S seeds the design detects about 2.8 sd / sqrt(S)")
    if got < min(exact, normal):
        return _wrong(f"{int(got)} seeds detect only about {2.8 * _PLANNED_SPREAD / math.sqrt(got):.3f}: solve "
                      f"2.8 x {_PLANNED_SPREAD} / sqrt(S) <= {_PLANNED_EFFECT} for S (the square root makes the "
                      "number grow with the square of sd / effect)")
    return _wrong(f"{int(got)} seeds would do, but fewer suffice: solve 2.8 x {_PLANNED_SPREAD} / sqrt(S) <= "
                  f"{_PLANNED_EFFECT} for S")


# ------------------------------------------------------------------------------------------- 10 real data
_PSEUDO_LABEL_OPTIONS = {
    "a": "how accurately the model segments the vessels of these runs",
    "b": "how closely the model agrees with the U-Net, whose mistakes count as truth; how accurate it is against "
         "experts these masks cannot say",
    "c": "an upper bound of its Dice against expert masks",
    "d": "the U-Net's own accuracy",
}
_PSEUDO_LABEL_WHY_NOT = {
    "a": "pseudo-labels are another model's output: where the U-Net misses a vessel, a model that finds it is scored "
         "wrong, and where both miss it, both are scored right",
    "c": "agreement can lie above or below accuracy: two models that share a mistake agree on it, and a model better "
         "than the U-Net disagrees with it wherever the U-Net is wrong",
    "d": "the U-Net's accuracy would need expert masks of the same frames; this number compares two models",
}


@_exercise("pseudo_label_score", "10_real_data", "A model scores Dice 0.80 on real runs whose masks a U-Net made "
           "(pseudo-labels). What does 0.80 measure? "
           + "; ".join(f"({key}) {text}" for key, text in _PSEUDO_LABEL_OPTIONS.items()) + ". Give a letter.", "b",
           kind="interpret")
def _check_pseudo_label_score(answer: str) -> Feedback:
    letter = _choice(answer, list(_PSEUDO_LABEL_OPTIONS))
    if letter == "b":
        return _right("agreement with another model: a score on pseudo-labels ranks models by how much they behave "
                      "like the U-Net. Only expert masks measure accuracy, and the kit's tables say which kind of "
                      "label each score used.")
    return _wrong(f"({letter}): {_PSEUDO_LABEL_WHY_NOT[letter]}.")


_BIASES = ("low", "none", "high")


@_exercise("partial_label_bias", "10_real_data", "Predict before you score: the annotators drew the main vessels but "
           "not every small side branch. A model finds every vessel, drawn or not. Scored against these masks, which "
           "way are its precision and recall biased? Give a dict {'precision': ..., 'recall': ...} with values from "
           f"{list(_BIASES)}.", {"precision": "low", "recall": "none"}, kind="predict")
def _check_partial_label_bias(answer: dict[str, str]) -> Feedback:
    missing = [name for name in ("precision", "recall") if name not in answer]
    if missing:
        return _wrong(f"your dict lacks {missing}; give both 'precision' and 'recall'")
    given = {name: str(answer[name]).strip().lower() for name in ("precision", "recall")}
    for name, value in given.items():
        if value not in _BIASES:
            return _wrong(f"{name}: answer with one of {list(_BIASES)}; you gave {answer[name]!r}")
    if given["precision"] != "low":
        return _wrong(f"precision: you said {given['precision']!r}, but it is biased low: the undrawn branches the "
                      "model finds count as false positives, so precision = TP / (TP + FP) falls.")
    if given["recall"] != "none":
        return _wrong(f"recall: you said {given['recall']!r}, but it is not biased: recall = TP / (TP + FN) counts "
                      "only drawn vessels, and the model finds all of them; undrawn branches are neither TP nor FN.")
    return _right("partial labels bias precision low and leave recall as it is, so Dice falls too: compare recall, "
                  "and clDice on the drawn tree, before blaming the model for false positives (ARCADE's side branches).")
