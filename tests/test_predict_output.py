"""What `medseg predict` writes is readable: palette masks, overlays with a legend, the checkpoint named, a warning
for masks that mark nearly everything, relative paths, a progress bar. Each test writes its own tiny inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medseg_core import inference
from medseg_core.checkpoints import describe_checkpoint, load_checkpoint, save_checkpoint
from medseg_core.data.io import read_label_mask, write_image
from medseg_core.viz import class_colours, label_overlay
from test_faults import _checkpoint, _predict
from test_predict_inputs import _moving_vessel, _svsnet_checkpoint


def _video(folder: Path, count: int = 5) -> Path:
    for index, frame in enumerate(_moving_vessel(count)):
        write_image(folder / f"{index:05d}.png", frame)
    return folder


def test_masks_are_palette_pngs_of_class_indices_with_relative_paths_and_legend_overlays(tmp_path, capsys):
    checkpoint, video = _svsnet_checkpoint(tmp_path), _video(tmp_path / "run")
    out = tmp_path / "out"
    assert _predict(checkpoint, video, out) == 0
    printed = capsys.readouterr().out
    assert f"checkpoint {checkpoint}: task xca, svsnet, epoch 0 of 1, no validation score recorded" in printed
    assert "palette PNGs: pixel values are class indices" in printed
    table = pd.read_csv(out / "predictions.csv")
    assert list(table["mask_path"]) == [f"masks/run/{index:05d}.png" for index in range(5)]
    assert list(table["overlay_path"]) == [f"overlays/run/{index:05d}.png" for index in range(5)]
    magenta = class_colours(["vessel"])[1]
    assert magenta == (255, 0, 255)
    for row in table.itertuples():
        with Image.open(out / row.mask_path) as mask:
            assert mask.mode == "P" and mask.getpalette()[:6] == [0, 0, 0, *magenta]
            indices, shown = np.asarray(mask), np.asarray(mask.convert("RGB"))
        assert set(np.unique(indices)) == {0, 1}, "pixels are class indices, both present"
        np.testing.assert_array_equal(read_label_mask(out / row.mask_path), indices)
        np.testing.assert_array_equal(shown[indices == 1], np.tile(magenta, ((indices == 1).sum(), 1)))
        assert row.foreground_fraction == pytest.approx(indices.mean())
        assert np.asarray(Image.open(out / row.overlay_path)).shape == (*indices.shape, 3)
    moved = tmp_path / "moved"  # the paths hold when the folder moves
    out.rename(moved)
    assert all((moved / path).is_file() for path in table["mask_path"])


def test_the_overlay_legend_names_each_class_in_its_colour():
    labels = np.zeros((96, 128), np.uint8)
    labels[60:, 60:] = 1
    labels[70:80, 10:20] = 2
    image = np.full((96, 128, 3), 90, np.uint8)
    names = ["lumen", "lipid_core"]
    picture = label_overlay(image, labels, names).permute(1, 2, 0).numpy()
    lumen, lipid = class_colours(names)[1:]
    size = max(10, round(96 / 32))
    pad, line = max(2, size // 4), size + max(2, size // 4)
    swatches = [tuple(picture[pad + row * line + size // 2, pad + size // 2]) for row in range(2)]
    assert swatches == [lumen, lipid], "a swatch per class, in label order"
    text = picture[pad:pad + 2 * line, 2 * pad + size:2 * pad + size + 60]
    assert (text.min(axis=-1) > 200).any(), "the names are written in white"
    corner = picture[90, 2]  # away from the legend: the image as it was
    assert tuple(corner) == (90, 90, 90)
    drawn = picture[85, 100].astype(int)  # lipid core pixels are tinted with its colour
    assert drawn[1] > drawn[0] and drawn[1] > 90


def test_describe_checkpoint_names_profile_epochs_and_validation_scores(tmp_path):
    state = load_checkpoint(_checkpoint(tmp_path, "oct"))
    state.update(epoch=3, config={**state["config"], "epochs": 5}, run_config={"profile": "cpu", "recipe": "real-oct"},
                 history=[{"epoch": 2.0, "val_dice": 0.1, "val_loss": 0.9},
                          {"epoch": 3.0, "train_loss": 0.5, "val_dice": 0.4321, "val_loss": 0.6543}])
    assert describe_checkpoint(state, "best.pt") == (
        "checkpoint best.pt: task oct, unet2d, profile cpu with recipe real-oct, epoch 3 of 5, validation Dice "
        "0.4321, loss 0.6543")
    state["history"][-1]["val_dice"] = float("nan")  # an epoch val_every skipped
    del state["history"][-1]["val_loss"]
    assert describe_checkpoint(state, "last.pt").endswith("epoch 3 of 5, no validation score recorded")


def test_a_model_that_marks_nearly_every_pixel_is_warned_about(tmp_path):
    checkpoint = _svsnet_checkpoint(tmp_path)
    state = load_checkpoint(checkpoint)
    state["model"]["head.bias"] = state["model"]["head.bias"] + 1000.0  # every pixel foreground
    save_checkpoint(tmp_path / "everything.pt", state)
    video = _video(tmp_path / "run", 4)
    with pytest.warns(UserWarning, match=r"marks more than 90% of the pixels as vessel in 4 of 4 frames"):
        table = inference.predict_folder(tmp_path / "everything.pt", video, tmp_path / "out", progress=False)
    assert (table["foreground_fraction"] == 1.0).all()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model that tells vessels apart is not warned about
        table = inference.predict_folder(checkpoint, video, tmp_path / "out2", progress=False)
    assert (table["foreground_fraction"] < 0.9).all()


def test_a_progress_bar_counts_every_frame(tmp_path, monkeypatch):
    bars = []

    class Recording:
        def __init__(self, iterable, **options):
            self.iterable, self.options = iterable, options
            bars.append(self)

        def __enter__(self):
            return iter(self.iterable)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(inference, "tqdm", Recording)
    frames = _video(tmp_path / "videos" / "a", 3).parent
    _video(frames / "b", 4)
    inference.predict_folder(_checkpoint(tmp_path, "xca"), frames, tmp_path / "out")
    assert len(bars) == 1 and bars[0].options["total"] == 7 and bars[0].options["disable"] is False
    inference.predict_folder(_checkpoint(tmp_path, "xca"), frames, tmp_path / "out2", progress=False)
    assert bars[1].options["disable"] is True
