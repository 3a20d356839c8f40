"""The OCT intensity rule as a model: logits of band and ring, registry and task, band fit, checkpoint.

``fit_band`` is fitted here on the frames it is scored on, to test the fit itself; the kit fits it on training or
validation frames and reports test frames.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from medseg_core.checkpoints import load_model, save_checkpoint
from medseg_core.config import get_profile
from medseg_core.data.oct import OCTDataset, find_oct_pairs
from medseg_core.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from medseg_core.data.synthetic_oct import write_oct_dataset
from medseg_core.evaluation import dataset_confusion, evaluate
from medseg_core.models import create_model, list_models
from medseg_core.models.oct_rules import IntensityRule, fit_band
from medseg_core.tasks import get_task


def _normalised(grey: torch.Tensor) -> torch.Tensor:
    """Grey values ``(B, H, W)`` -> the ImageNet-normalised RGB ``(B, 3, H, W)`` an OCT loader yields."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (grey[:, None].expand(-1, 3, -1, -1) - mean) / std


@pytest.fixture(scope="module")
def synthetic_frames(tmp_path_factory) -> DataLoader:
    """12 synthetic OCT frames of 3 patients at 48 px, lipid core labelled 1, in file order (no shuffling)."""
    root = tmp_path_factory.mktemp("oct_rules")
    write_oct_dataset(root, num_patients=3, frames_per_patient=4, seed=5, size=64)
    return DataLoader(OCTDataset(find_oct_pairs(root), image_size=48), batch_size=5)


def _pooled_dice(model: IntensityRule, loader: DataLoader) -> float:
    """Pooled lipid Dice of the model's argmax labels, as the kit's evaluation computes labels."""
    confusion = dataset_confusion(model, loader, num_classes=2, device="cpu")
    return float(2 * confusion[1, 1] / (2 * confusion[1, 1] + confusion[0, 1] + confusion[1, 0]))


def test_logits_are_positive_exactly_inside_band_and_ring():
    grey = torch.full((1, 32, 32), 0.9)
    grey[:, :, :16] = 0.45  # left half in the band (0.3, 0.6), right half above it
    model = create_model("intensity", sigma=0, low=0.3, high=0.6, inner=0.2, outer=0.8)
    logits = model(_normalised(grey))
    assert logits.shape == (1, 2, 32, 32) and torch.equal(logits[:, 0], torch.zeros(1, 32, 32))
    rows, columns = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    radius = torch.hypot(rows - 15.5, columns - 15.5) / 16
    expected = (columns < 16) & (radius > 0.2) & (radius < 0.8)
    assert torch.equal(model.predict(_normalised(grey))[0], expected.long())
    assert logits[0, 1][expected].min() > 0 and logits[0, 1][~expected].max() < 0


def test_registry_and_the_oct_task_build_the_rule():
    assert "intensity" in list_models()
    kwargs = get_task("oct").model_kwargs(get_profile("smoke"), "intensity")
    assert kwargs == {"num_classes": 2, "in_channels": 3}
    model = create_model("intensity", **kwargs)
    assert isinstance(model, IntensityRule) and model.weight_free and not list(model.parameters())
    assert set(model.state_dict()) == {"low", "high", "inner", "outer"}
    assert create_model("intensity", num_classes=2)(torch.zeros(2, 3, 16, 16)).shape == (2, 2, 16, 16)


def test_fitted_band_beats_everything_and_nothing_and_scores_as_evaluated(synthetic_frames):
    model = create_model("intensity", num_classes=2)
    fit = fit_band(model, synthetic_frames, device="cpu")
    assert (float(model.low), float(model.high), float(model.inner), float(model.outer)) == pytest.approx(
        (fit.low, fit.high, fit.inner, fit.outer))
    assert fit.dice == pytest.approx(_pooled_dice(model, synthetic_frames), abs=1e-9)  # counts = argmax labels
    everything = create_model("intensity", low=-1.0, high=2.0, inner=-1.0, outer=2.0)
    nothing = create_model("intensity", low=1.5, high=2.0)
    assert _pooled_dice(nothing, synthetic_frames) == 0.0
    assert fit.dice > 1.5 * _pooled_dice(everything, synthetic_frames)
    table = evaluate(model, synthetic_frames, class_names=["lipid_core"], device="cpu")
    assert len(table) == 12 and table["predicted_pixels"].sum() > 0


def test_fit_without_the_ring_keeps_it_and_fits_the_band_inside(synthetic_frames):
    model = create_model("intensity", inner=0.3, outer=0.9)
    fit = fit_band(model, synthetic_frames, fit_ring=False, device="cpu")
    assert (fit.inner, fit.outer) == pytest.approx((0.3, 0.9))
    assert fit.dice == pytest.approx(_pooled_dice(model, synthetic_frames), abs=1e-9)


def test_bad_models_inputs_and_frames_are_refused(synthetic_frames):
    with pytest.raises(ValueError, match="num_classes must be 2"):
        create_model("intensity", num_classes=3)
    with pytest.raises(ValueError, match="low < high"):
        create_model("intensity", low=0.5, high=0.2)
    with pytest.raises(ValueError, match="3 input channel"):
        create_model("intensity")(torch.zeros(1, 1, 16, 16))
    with pytest.raises(TypeError, match="intensity"):
        fit_band(create_model("unet2d", depth=1, base_channels=2), synthetic_frames)
    no_lipid = [{"image": torch.zeros(3, 16, 16), "mask": torch.zeros(16, 16, dtype=torch.long), "id": "a"}]
    with pytest.raises(ValueError, match="no lipid"):
        fit_band(create_model("intensity"), DataLoader(no_lipid), device="cpu")


def test_fitted_band_travels_in_the_checkpoint(synthetic_frames, tmp_path):
    model = create_model("intensity", num_classes=2)
    fit_band(model, synthetic_frames, device="cpu")
    path = save_checkpoint(tmp_path / "intensity.pt", {"model": model.state_dict(), "model_spec": model.model_spec})
    loaded = load_model(path, device="cpu")
    assert torch.equal(torch.stack(list(loaded.state_dict().values())), torch.stack(list(model.state_dict().values())))
