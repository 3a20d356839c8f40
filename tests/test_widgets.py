"""The explorers: built on tiny models and data, they redraw when a control moves, and fall back to a figure."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from medseg_core import create_model, get_profile
from medseg_core.data.oct import oct_dataloaders
from medseg_core.data.synthetic_oct import ensure_oct_dataset, scan_convert
from medseg_core.data.synthetic_xca import ensure_xca_dataset
from medseg_core.data.xca import XCAWindowDataset
from medseg_core.widgets import (Explorer, attention_explorer, cartesian_to_polar, compare_explorer,
                                 front_end_attached, oct_explorer, xca_explorer)


@pytest.fixture(scope="module")
def profile():
    return get_profile("smoke")


@pytest.fixture(scope="module")
def xca_data(profile, tmp_path_factory):
    root = ensure_xca_dataset(profile.xca, tmp_path_factory.mktemp("xca"))
    return XCAWindowDataset(root / "test", window_length=4)


@pytest.fixture(scope="module")
def oct_data(profile, tmp_path_factory):
    root = ensure_oct_dataset(profile.oct, tmp_path_factory.mktemp("oct"))
    return oct_dataloaders(root, profile.oct, batch_size=2)["test"].dataset


def _svsnet(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("svsnet", window_length=4, base_channels=2).eval()


@pytest.fixture(scope="module")
def deeplab():
    torch.manual_seed(0)
    return create_model("deeplabv3plus", num_classes=2).eval()


def _moved(explorer: Explorer, control: str, value) -> tuple[bytes, str]:
    """Set a control from code; return the picture and readout from before the move."""
    before = bytes(explorer.image.value), explorer.readout.value
    explorer.controls[control].value = value
    return before


def test_xca_explorer_redraws_on_frame_and_threshold(xca_data):
    explorer = xca_explorer(_svsnet(), xca_data, interactive=True)
    assert isinstance(explorer, Explorer) and bytes(explorer.image.value).startswith(b"\x89PNG")
    assert "window frames [0, 0, 0, 1]" in explorer.readout.value  # replicate padding at the first frame
    image, readout = _moved(explorer, "frame", 5)
    assert bytes(explorer.image.value) != image and explorer.readout.value != readout
    assert "window frames [3, 4, 5, 6]" in explorer.readout.value  # centre policy: 2 before, 1 after
    image, readout = _moved(explorer, "threshold", 0.05)
    assert "threshold 0.05" in explorer.readout.value and bytes(explorer.image.value) != image


def test_xca_explorer_static_fallback_is_a_figure(xca_data):
    fig = xca_explorer(_svsnet(), xca_data, interactive=False)
    assert isinstance(fig, Figure) and "Dice" in fig.get_suptitle()
    assert len(fig.subfigs) == 3 and len(fig.subfigs[1].axes) == 4  # timeline, the T = 4 window, the overlays


def test_xca_explorer_rejects_an_unknown_video(xca_data):
    with pytest.raises(ValueError, match="not in the dataset"):
        xca_explorer(_svsnet(), xca_data, video="no_such_video", interactive=False)


def test_oct_explorer_switches_view_frame_and_threshold(oct_data, deeplab):
    explorer = oct_explorer(deeplab, oct_data, interactive=True)
    assert "Cartesian" in explorer.readout.value and "lipid_core" in explorer.readout.value
    image, _ = _moved(explorer, "view", "polar")
    assert bytes(explorer.image.value) != image and "polar" in explorer.readout.value
    image, readout = _moved(explorer, "frame", 1)
    assert explorer.readout.value != readout and bytes(explorer.image.value) != image
    fig = oct_explorer(deeplab, oct_data, interactive=False)
    assert isinstance(fig, Figure) and len(fig.axes) == 3


@pytest.mark.parametrize("kind", ["deeplab", "svsnet"])
def test_attention_explorer_shows_each_block(kind, oct_data, xca_data, deeplab):
    model, data = (deeplab, oct_data) if kind == "deeplab" else (_svsnet(), xca_data)
    explorer = attention_explorer(model, data, indices=[0, 1], interactive=True)
    blocks = explorer.controls["block"].options
    expected = {"deeplab": {"aspp.attention", "low_level_attention"}, "svsnet": {"encoder.5.attention"}}[kind]
    assert expected <= set(blocks)
    channels = {"aspp.attention": 1280, "low_level_attention": 24, "encoder.5.attention": 64}
    for block in blocks:
        explorer.controls["block"].value = block
        assert f", {block} (" in explorer.readout.value
        if block in channels:
            assert f"{channels[block]} channels" in explorer.readout.value
    explorer.controls["block"].value = blocks[0]
    image, readout = _moved(explorer, "case", 1)
    assert explorer.readout.value != readout and bytes(explorer.image.value) != image  # another input
    assert isinstance(attention_explorer(model, data, indices=[0], interactive=False), Figure)


def test_attention_explorer_needs_attention_blocks(oct_data):
    with pytest.raises(ValueError, match="no attention block"):
        attention_explorer(create_model("deeplabv3plus", num_classes=2, eca="none").eval(), oct_data,
                           interactive=False)


def test_compare_explorer_scores_two_models_and_reads_checkpoints(xca_data, tmp_path):
    second = _svsnet(seed=1)
    torch.save({"model": second.state_dict(), "model_spec": second.model_spec}, tmp_path / "best.pt")
    explorer = compare_explorer({"seed 0": _svsnet(), "seed 1": tmp_path / "best.pt"}, xca_data, interactive=True)
    assert "seed 0 Dice" in explorer.readout.value and "seed 1 Dice" in explorer.readout.value
    image, readout = _moved(explorer, "case", 4)
    assert bytes(explorer.image.value) != image and explorer.readout.value != readout
    with pytest.raises(ValueError, match="two models"):
        compare_explorer({"only": _svsnet()}, xca_data, interactive=False)


def test_cartesian_to_polar_inverts_scan_conversion():
    polar = np.zeros((360, 32))
    polar[:, 19:22] = 1.0  # a ring three depth samples thick
    polar[80:100, :] = 0.5  # a wedge around 90 degrees
    back = cartesian_to_polar(scan_convert(polar, 64), num_angles=360, num_depths=32)
    assert back.shape == (360, 32)
    assert np.abs(back[:, 4:28] - polar[:, 4:28]).mean() < 0.1
    assert back[:, 20].mean() > 0.9 and back[:, 12].mean() < 0.2


def test_cartesian_to_polar_angles_run_clockwise_from_three_oclock():
    image = np.zeros((64, 64))
    image[40:, :] = 1.0  # the bottom of the frame (6 o'clock)
    polar = cartesian_to_polar(image)
    assert polar[80:100, 20:].mean() > 0.99 and polar[260:280, 20:].mean() < 0.01
    rgb = cartesian_to_polar(np.zeros((64, 64, 3), np.uint8))
    assert rgb.shape == (360, 32, 3) and rgb.dtype == np.uint8


def test_front_end_detection(monkeypatch):
    monkeypatch.delenv("MEDSEG_WIDGETS", raising=False)
    assert front_end_attached() is False  # no kernel in a test run
    monkeypatch.setenv("MEDSEG_WIDGETS", "interactive")
    assert front_end_attached() is True


def test_static_fallback_shows_itself_as_png_in_a_notebook(xca_data):
    fig = xca_explorer(_svsnet(), xca_data, interactive=False)
    assert fig._repr_png_().startswith(b"\x89PNG")  # what IPython displays when the figure ends a cell
