"""Every exercise's solution passes its check, and a typical wrong answer is reported wrong, with a reason."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_core.exercises import EXERCISES, KINDS, Feedback, check, list_exercises, solution
from medseg_core.notebooks import list_notebooks


def _sigmoid_then_threshold(logits, target):
    return 1 - (2 * ((logits > 0).float() * target).sum() + 1e-5) / ((logits > 0).float().sum() + target.sum() + 1e-5)


def _unpaired_effect(results):
    """synthetic seed s minus the mean of every scratch seed: the seeds are not paired."""
    means = results[results["truth_pixels"] > 0].groupby(["train_frames", "seed", "start"])["dice"].mean().unstack()
    return means["synthetic"] - means.groupby(level="train_frames")["scratch"].transform("mean")


def _mixed_gap(synthetic, real):
    gap = synthetic["dice"].mean() - real["dice"].mean()
    return gap, gap / synthetic["dice"].mean()


def _mean_absolute_change(committed, fresh, tolerance):
    """The mean absolute change per column: a single row that moved far hides among rows that did not."""
    return [c for c in committed.select_dtypes("number") if (committed[c] - fresh[c]).abs().mean() > tolerance]


def _step_without_zero_grad(model, batch, loss_fn, optimizer):
    loss = loss_fn(model(batch["image"]), batch["mask"])
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_that_discards_its_gradients(model, batch, loss_fn, optimizer):
    loss = loss_fn(model(batch["image"]), batch["mask"])
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()


def _step_in_eval_mode(model, batch, loss_fn, optimizer):
    model.eval()
    return solution("train_step")(model, batch, loss_fn, optimizer)


def _arc_from_first_to_last_line(polar_mask):
    rows = np.flatnonzero(polar_mask.any(axis=1))
    return 0.0 if len(rows) == 0 else 360.0 * (rows[-1] - rows[0] + 1) / polar_mask.shape[0]


def _verdict_from_the_patient_interval_alone(row):
    if np.isnan(row["ci_low"]):
        return "no interval"
    return "not shown" if row["ci_low"] <= 0 <= row["ci_high"] else "shown"


def _verdict_without_the_nan_rule(row):
    return "not shown" if row["ci_low"] <= 0 <= row["ci_high"] else "shown" if (
        row["seed_ci_low"] > 0 or row["seed_ci_high"] < 0) else "these models only"


WRONG_ANSWERS = {  # id: [(a typical mistake, a phrase the feedback must contain), ...]
    "hard_dice": [(lambda p, t: 2 * (p & t).sum() / max(p.sum() + t.sum(), 1), "both masks empty")],
    "empty_mask_rule": [({"dice_both_empty": 0.0, "dice_false_alarm": 0.0, "hd95_both_empty": 0.0,
                          "hd95_false_alarm": float("nan")}, "dice_both_empty")],
    "window_indices": [(lambda c, n, t, p: [min(max(c + o - (t - 1), 0), n - 1) for o in range(t)], "'centre'")],
    "temporal_fusion_shape": [((2, 8, 4, 32, 32), "you kept T = 4"), ((2, 8, 32, 32), "squeeze")],
    "soft_dice": [(_sigmoid_then_threshold, "expected")],
    "threshold_on_validation": [(lambda val, test: float(test.loc[test["dice"].idxmax(), "threshold"]),
                                 "best threshold on the test split")],
    "patient_split": [(lambda pairs, f: (pairs.drop(pairs.index[::3]), pairs.iloc[::3]),
                       "in both training and validation")],
    "label_mask": [(lambda mask: mask / 255.0, "must be integers")],
    "eca_kernel": [(lambda c: int(round(np.log2(c) / 2 + 0.5)), "for C=")],
    "ce_dice": [(lambda logits, target: torch.nn.functional.cross_entropy(logits, target), "cross-entropy alone")],
    "soft_dice_empty": [(0.0, "two numbers"), (1, "two numbers"), ((1.0, 1.0), "eps = 1"),
                        ((0.0, 0.0), "not 0")],
    "eca_block": [(lambda x, k: x * torch.sigmoid(x.mean(dim=(2, 3), keepdim=True)), "differs")],
    "aspp_field": [(lambda rates, os: [3 * os for _ in rates], "2r + 1")],
    "output_stride": [(lambda size, os: (size // 4, size // 32), "output stride")],
    "fusion_parameters": [(lambda c, t: c * c * t, "left out the C biases")],
    "svsnet_window_parameters": [(3 * 256 * 256, "parameters")],
    "moved_columns": [(lambda committed, fresh, tolerance: [c for c in committed.select_dtypes("number")
                                                           if abs((committed[c] - fresh[c]).mean()) > tolerance],
                       "largest absolute difference"),
                      (_mean_absolute_change, "largest absolute difference")],
    "uncommitted_figures": [(lambda manifest: sorted(manifest.loc[manifest["uncommitted_changes"] == "true", "file"]),
                             "'unknown'")],
    "domain_gap": [(_mixed_gap, "plaque-free frames")],
    "pretraining_effect": [(_unpaired_effect, "same n and seed")],
    "one_pixel_shift": [((0.95, 0.95), "both widths"), ((0.0, 0.9), "columns"), (0.5, "two numbers")],
    "window_span_ms": [(1000 * 4 / 15, "frame intervals"), (0.2, "seconds"), (60.0, "one frame interval")],
    "val_below_train": [("a", "same generator"), ("C", "other way round"), ("(d)", "same loss_fn"),
                        ("e", "one of")],
    "train_step": [(_step_without_zero_grad, "zero_grad"), (_step_that_discards_its_gradients, "did not change"),
                   (_step_in_eval_mode, "training mode"),
                   (lambda model, batch, loss_fn, optimizer: _step_without_zero_grad(model, batch, loss_fn,
                                                                                     optimizer) * 2, "loss.item()")],
    "lipid_arc": [(_arc_from_first_to_last_line, "across 0°"),
                  (lambda mask: float(mask.any(axis=1).sum()), "A-lines"),
                  (lambda mask: 360.0 * mask.mean(), "expected")],
    "quiet_model_dice": [(lambda results: 0.0, "empty-mask rule"),
                         (lambda results: float((results["truth_pixels"] > 0).mean()), "empty-mask rule")],
    "effect_verdict": [(_verdict_from_the_patient_interval_alone, "over seeds"),
                       (_verdict_without_the_nan_rule, "NaN"), (lambda row: "shown", "the numbers support")],
    "t1_unused_weights": [(1.0, "zero padding"), (2 / 3, "three taps"), (0.0, "three taps")],
    "seed_spread": [(lambda results, variant, metric: results.loc[results["variant"] == variant, metric].std(),
                     "spread over test frames"),
                    (lambda results, variant, metric: results[results["variant"] == variant].groupby("seed")[
                        metric].mean().std(ddof=0), "ddof=1")],
    "threshold_direction": [({"recall": "up or same", "precision": "down or same", "dice": "either"}, "precision"),
                            ({"recall": "either", "precision": "either", "dice": "either"}, "recall"),
                            ({"recall": "up or same", "precision": "either", "dice": "up or same"}, "dice"),
                            ({"recall": "up"}, "lacks")],
    "seeds_needed": [(5, "fewest seeds for an interval"), (4, "square root"), (40, "fewer suffice"),
                     (12.5, "whole number")],
    "pseudo_label_score": [("a", "another model's output"), ("(c)", "share a mistake"), ("D", "expert masks"),
                           ("e", "one of")],
    "partial_label_bias": [({"precision": "none", "recall": "none"}, "false positives"),
                           ({"precision": "low", "recall": "low"}, "not biased"), ({"precision": "low"}, "lacks"),
                           ({"precision": "down", "recall": "none"}, "one of")],
}
WRONG_CASES = [(exercise_id, index) for exercise_id, answers in WRONG_ANSWERS.items() for index in range(len(answers))]


def _stubs(exercise_id):
    """The placeholders a notebook's untouched exercise cell passes: values, or functions that return them."""
    answer = solution(exercise_id)
    if callable(answer):
        def raises(*args, **kwargs):
            raise NotImplementedError

        return [lambda *args, **kwargs: None, lambda *args, **kwargs: ..., raises, None]
    if isinstance(answer, dict):
        return [None, ..., dict.fromkeys(answer)]
    if isinstance(answer, (tuple, list)):
        return [None, ..., (None,) * len(answer)]
    return [None, ...]


def test_every_exercise_has_a_wrong_answer_here():
    assert set(WRONG_ANSWERS) == set(EXERCISES)
    assert all(WRONG_ANSWERS.values())


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_solution_passes(exercise_id):
    feedback = check(exercise_id, solution(exercise_id))
    assert isinstance(feedback, Feedback) and feedback.passed, feedback.message
    assert feedback.message.startswith("✓ ") and repr(feedback) == feedback.message


@pytest.mark.parametrize("exercise_id, index", WRONG_CASES, ids=[f"{i}-{n}" for i, n in WRONG_CASES])
def test_wrong_answer_is_reported_wrong_with_a_reason(exercise_id, index):
    answer, phrase = WRONG_ANSWERS[exercise_id][index]
    feedback = check(exercise_id, answer)
    assert not feedback and feedback.answered and feedback.message.startswith("✗ "), feedback.message
    assert phrase in feedback.message


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_untouched_stub_is_not_answered_yet(exercise_id):
    for stub in _stubs(exercise_id):
        feedback = check(exercise_id, stub)
        assert not feedback and not feedback.answered, feedback.message
        assert feedback.message.startswith("○ not answered yet") and f"solution('{exercise_id}')" in feedback.message


def test_a_function_that_returns_none_for_some_inputs_is_wrong_not_unanswered():
    feedback = check("eca_kernel", lambda channels: 3 if channels < 64 else None)
    assert not feedback and feedback.answered and "every path" in feedback.message


def test_feedback_names_the_input_and_the_expected_value():
    feedback = check("eca_kernel", lambda channels: 5)
    assert feedback.message.startswith("✗ for C=16 you returned 5, expected 3 (t = int(|(log2(C) + b) / gamma|)")


def test_a_crashing_answer_is_feedback_not_an_exception():
    feedback = check("window_indices", lambda *args: 1 / 0)
    assert not feedback and "ZeroDivisionError" in feedback.message


def test_unknown_exercise_lists_the_valid_ids():
    with pytest.raises(KeyError, match="valid ids: hard_dice"):
        check("no_such_exercise", None)


def test_exercises_belong_to_existing_notebooks():
    stems = {path.stem for path in list_notebooks()}
    table = list_exercises()
    assert set(table["notebook"]) <= stems
    assert set(list_exercises("04")["id"]) == {"eca_kernel", "ce_dice", "soft_dice_empty", "quiet_model_dice"}
    assert set(table["kind"]) <= set(KINDS)


@pytest.mark.parametrize("notebook", list_notebooks(), ids=lambda path: path.stem)
def test_every_notebook_has_a_predict_or_interpret_exercise_in_a_cell(notebook):
    """Each notebook asks at least one question about a result, and has a cell that checks each of its exercises."""
    import nbformat

    exercises = list_exercises(notebook.stem)
    assert set(exercises["kind"]) & {"predict", "interpret"}, exercises
    code = "\n".join(c.source for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    for exercise_id in exercises["id"]:
        assert f'check("{exercise_id}", ' in code, exercise_id


def test_pretraining_effect_says_when_plaque_free_frames_were_averaged_in():
    def all_frames(results):
        means = results.groupby(["train_frames", "seed", "start"])["dice"].mean().unstack()
        return means["synthetic"] - means["scratch"]

    feedback = check("pretraining_effect", all_frames)
    assert not feedback and "truth_pixels > 0" in feedback.message
