"""Tasks own preprocessing, run names and run metadata: one function per task serves datasets and inference."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medseg_core import get_profile, get_task
from medseg_core.data.io import write_image
from medseg_core.data.oct import OCTDataset, write_oct_mask
from medseg_core.data.xca import XCAWindowDataset, window_indices
from medseg_core.errors import ConfigError, UnknownNameError
from medseg_core.evaluation import collect_cases
from medseg_core.inference import predict_images, predict_video
from medseg_core.models import SegmentationModel
from medseg_core.viz import to_display_image


class _RecordingModel(SegmentationModel):
    """Returns zero logits and keeps the inputs it saw, so tests compare what inference prepared."""

    def __init__(self, input_kind: str, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.input_kind, self.in_channels, self.num_classes = input_kind, in_channels, num_classes
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[torch.Tensor] = []

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_shape(x)
        self.seen.append(x.clone())
        return x

    def forward_head(self, features: torch.Tensor, output_size: tuple[int, int]) -> torch.Tensor:
        return torch.zeros(features.shape[0], self.num_classes, *output_size) + self.weight


def _xca_video(root: Path, frames: int = 7, size: tuple[int, int] = (40, 52)) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(frames):
        frame = rng.integers(0, 60 + 20 * index, size=size, endpoint=True).astype(np.uint8)
        paths.append(write_image(root / "JPEGImages" / "video" / f"{index:05d}.png", frame))
        write_image(root / "Annotations_Semantic" / "video" / f"{index:05d}.png",
                    (rng.random(size) > 0.8).astype(np.uint8))
    return paths


@pytest.mark.parametrize("policy", ["centre", "past"])
def test_xca_inference_prepares_windows_exactly_as_the_dataset(tmp_path, policy):
    paths = _xca_video(tmp_path)
    profile = get_profile("smoke", {"xca.window_policy": policy, "xca.window_length": 4})
    metadata = get_task("xca").run_metadata(profile, "svsnet")
    dataset = XCAWindowDataset(tmp_path, window_length=4, window_policy=policy, image_size=metadata.image_size)
    model = _RecordingModel("window", 1, 1)
    list(predict_video(model, paths, metadata, batch_size=3))
    inference_inputs = torch.cat(model.seen)
    assert inference_inputs.shape == (len(paths), 1, 4, 64, 64)
    for index in range(len(paths)):
        torch.testing.assert_close(inference_inputs[index], dataset[index]["image"], rtol=0, atol=0)


def test_oct_inference_prepares_frames_exactly_as_the_dataset(tmp_path):
    rng = np.random.default_rng(1)
    image_path = write_image(tmp_path / "img" / "001_1_001.png", rng.integers(0, 256, (90, 90, 3), dtype=np.uint8))
    mask_path = write_oct_mask(tmp_path / "mask" / "001_1_001.tiff", np.zeros((90, 90, 4), dtype=np.uint8))
    profile = get_profile("smoke")
    metadata = get_task("oct").run_metadata(profile, "deeplabv3plus")
    pairs = pd.DataFrame({"id": ["001_1_001"], "image_path": [str(image_path)], "mask_path": [str(mask_path)]})
    dataset = OCTDataset(pairs, image_size=metadata.image_size)
    model = _RecordingModel("image", 3, 2)
    list(predict_images(model, [image_path], metadata))
    torch.testing.assert_close(model.seen[0][0], dataset[0]["image"], rtol=0, atol=0)


def test_past_policy_cases_show_the_labelled_frame(tmp_path):
    """With window_policy="past" the labelled frame is the last of the window, and overlays must draw on it."""
    _xca_video(tmp_path)
    dataset = XCAWindowDataset(tmp_path, window_length=4, window_policy="past", image_size=(40, 52))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    cases = collect_cases(_RecordingModel("window", 1, 1), loader, max_cases=5, device="cpu")
    assert window_indices(4, 7, 4, "past") == [1, 2, 3, 4]  # the labelled frame 4 is last in its window
    for index, case in enumerate(cases):
        window = dataset[index]["image"][0]
        torch.testing.assert_close(case["display"], window[3])
        if index >= 1:  # the centre frame (position T // 2) is another frame
            assert not torch.equal(case["display"], window[2])
    with pytest.raises(ValueError, match="current frame"):
        to_display_image(dataset[0]["image"])


def test_run_names_follow_one_scheme():
    profile = get_profile("smoke")
    xca, oct_task = get_task("xca"), get_task("oct")
    assert xca.run_name(profile, "svsnet", {}, 0) == "xca_svsnet_T4-centre_seed0"
    assert xca.run_name(profile, "svsnet", {"window_length": 4}, 1) == "xca_svsnet_T4-centre_seed1"
    assert xca.run_name(profile, "unet2d", {}, 0) == "xca_unet2d_T1-centre_seed0"
    assert oct_task.run_name(profile, "deeplabv3plus", {"eca": "both", "output_stride": 16, "pretrained": None}, 0) \
        == "oct_deeplabv3plus_seed0"
    assert oct_task.run_name(profile, "deeplabv3plus", {"eca": "none"}, 2) == "oct_deeplabv3plus_eca-none_seed2"
    assert oct_task.run_dir(profile, "deeplabv3plus") == profile.paths.runs / "smoke" / "oct_deeplabv3plus_seed0"


def test_task_refuses_unknown_or_unsuitable_models():
    profile = get_profile("smoke")
    with pytest.raises(ConfigError, match="svsnet.*window inputs.*'oct'"):
        get_task("oct").model_kwargs(profile, "svsnet")
    with pytest.raises(UnknownNameError, match="valid names"):
        get_task("xca").model_kwargs(profile, "no_such_model")
    with pytest.raises(UnknownNameError, match="valid tasks: xca, oct"):
        get_task("ct")
