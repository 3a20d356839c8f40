"""The classical baselines (black top-hat, Frangi) as models: response on a vessel, threshold fit, registry, checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medseg_core.checkpoints import load_model, save_checkpoint
from medseg_core.evaluation import evaluate
from medseg_core.models import create_model, list_models
from medseg_core.models.classical import BlackTopHat, FrangiFilter, fit_threshold, threshold_curve


def _window(line_row: int, contrast: float, size: int = 32, frames: int = 4, current: int = 2, seed: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """A window ``(1, T, H, W)`` whose current frame alone holds a dark horizontal line 2 px wide, and its mask."""
    generator = torch.Generator().manual_seed(seed)
    window = 0.8 + 0.02 * torch.randn(1, frames, size, size, generator=generator)
    window[0, current, line_row:line_row + 2, :] -= contrast
    mask = torch.zeros(1, size, size)
    mask[0, line_row:line_row + 2, :] = 1
    return window.clamp(0, 1), mask


def _loader(count: int = 6, seed: int = 0) -> DataLoader:
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        window, mask = _window(int(rng.integers(4, 26)), float(rng.uniform(0.15, 0.4)), seed=seed * 100 + index)
        cases.append({"image": window, "mask": mask, "id": f"video{index % 3}/{index:05d}", "current": 2})
    return DataLoader(cases, batch_size=4)


@pytest.mark.parametrize("name", ["tophat", "frangi"])
def test_filter_responds_on_the_dark_line_of_the_current_frame(name):
    window, mask = _window(line_row=14, contrast=0.4)
    model = create_model(name, window_length=4)
    response = model.response(window[None])[0, 0]
    on_line, off_line = response[mask[0] > 0].mean(), response[mask[0] == 0].mean()
    assert on_line > 10 * off_line
    other = create_model(name, window_length=4, window_policy="past")  # current frame = the last, without a line
    assert other.response(window[None])[0, 0][mask[0] > 0].mean() < on_line / 5


def test_logits_cross_zero_at_the_threshold():
    model = create_model("tophat", window_length=4, threshold=0.1)
    window, _ = _window(line_row=10, contrast=0.3)
    response, logits = model.response(window[None]), model(window[None])
    assert torch.equal(logits > 0, response > 0.1)
    assert logits.shape == (1, 1, 32, 32)


def test_fitted_threshold_beats_a_fixed_one_on_held_out_frames():
    model = create_model("tophat", window_length=4)
    chosen = fit_threshold(model, _loader(seed=0), device="cpu")
    assert float(model.threshold) == pytest.approx(chosen)
    curve = threshold_curve(model, _loader(seed=0), device="cpu")
    assert curve["dice"].max() == pytest.approx(curve.loc[curve["threshold"] == chosen, "dice"].item())
    fitted = evaluate(model, _loader(seed=1), class_names=["vessel"], device="cpu")["dice"].mean()
    fixed = evaluate(create_model("tophat", window_length=4, threshold=0.5), _loader(seed=1),
                     class_names=["vessel"], device="cpu")["dice"].mean()
    assert fitted > 0.8 and fitted > fixed + 0.3


def test_registry_builds_the_filters_and_lists_them_on_unknown_names():
    assert {"tophat", "frangi"} <= set(list_models())
    assert isinstance(create_model("tophat"), BlackTopHat) and isinstance(create_model("frangi"), FrangiFilter)
    assert sum(p.numel() for p in create_model("tophat").parameters()) == 0
    with pytest.raises(KeyError, match="tophat") as error:
        create_model("top-hat")
    assert "frangi" in str(error.value)


def test_bad_inputs_and_fits_are_refused():
    with pytest.raises(ValueError, match="window_length=4"):
        create_model("tophat", window_length=4)(torch.rand(1, 1, 2, 16, 16))
    with pytest.raises(ValueError, match="size must be an odd"):
        create_model("tophat", size=8)
    with pytest.raises(TypeError, match="threshold_sweep"):
        fit_threshold(create_model("unet2d", depth=1, base_channels=2), _loader())


def test_fitted_threshold_travels_in_the_checkpoint(tmp_path):
    model = create_model("tophat", window_length=4)
    fit_threshold(model, _loader(), device="cpu")
    path = save_checkpoint(tmp_path / "tophat.pt", {"model": model.state_dict(), "model_spec": model.model_spec})
    assert float(load_model(path, device="cpu").threshold) == pytest.approx(float(model.threshold))
