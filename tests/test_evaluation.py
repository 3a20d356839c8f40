"""evaluate, dataset_confusion, threshold_sweep and select_cases on a model whose output is known."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from medseg_core.evaluation import dataset_confusion, evaluate, select_cases, threshold_sweep


class EchoModel(nn.Module):
    """Returns logits that reproduce the input's first channel as the foreground probability map."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x[:, :1].clamp(1e-4, 1 - 1e-4))


def _cases() -> list[dict]:
    truth = torch.zeros(3, 1, 8, 8)
    truth[0, :, :4, :4] = 1  # case a: predicted exactly
    truth[1, :, :4, :] = 1  # case b: half found
    image = truth.clone()
    image[1, :, :, 4:] = 0  # b's prediction covers the left half of its square
    image[2, :, 0, 0] = 0.9  # case c: empty truth, one false-positive pixel
    return [{"image": image[i], "mask": truth[i], "id": name} for i, name in enumerate("abc")]


def test_evaluate_rows_and_pixel_counts():
    results = evaluate(EchoModel(), DataLoader(_cases(), batch_size=2), class_names=["vessel"], device="cpu")
    by_id = results.set_index("id")
    assert by_id.loc["a", "dice"] == pytest.approx(1.0)
    assert by_id.loc["b", "dice"] == pytest.approx(2 * 16 / (16 + 32))
    assert by_id.loc["c", "dice"] == 0.0 and by_id.loc["c", "truth_pixels"] == 0
    assert by_id["predicted_pixels"].tolist() == [16, 16, 1]


def test_select_cases_can_skip_empty_truth():
    results = evaluate(EchoModel(), DataLoader(_cases(), batch_size=3), class_names=["vessel"], device="cpu")
    assert select_cases(results)["id"].tolist() == ["a", "b", "b"]  # by default only frames with foreground
    assert select_cases(results, foreground_only=False)["id"].tolist() == ["a", "b", "c"]
    assert results["hd95_failed"].tolist() == [False, False, True]  # c: truth empty, a false alarm


def test_dataset_confusion_pools_pixels():
    confusion = dataset_confusion(EchoModel(), DataLoader(_cases(), batch_size=3), num_classes=2, device="cpu")
    assert confusion.sum() == 3 * 64
    assert confusion[1, 1] == 16 + 16 and confusion[1, 0] == 16 and confusion[0, 1] == 1


def test_threshold_sweep_is_monotone_in_recall():
    sweep = threshold_sweep(EchoModel(), DataLoader(_cases(), batch_size=3), device="cpu")
    assert np.all(np.diff(sweep["recall"].to_numpy()) <= 1e-12)
    assert sweep.loc[sweep["threshold"] == 0.5, "recall"].item() == pytest.approx(32 / 48)
