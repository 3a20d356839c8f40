"""Plots draw what they are given: checked through the data in the returned matplotlib figures."""
from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from medseg_core.provenance import save_figure  # noqa: E402
from medseg_core.viz import (  # noqa: E402
    plot_attention_weights,
    plot_case_scores,
    plot_class_channels,
    plot_confusion,
    plot_mask_grid,
    plot_patient_split,
    plot_polar_frame,
    plot_scan_conversion,
    plot_transfer_curve,
    to_display_image,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _frame(height: int = 16, width: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------ existing helpers
def test_to_display_image_undoes_imagenet_normalisation():
    rgb = torch.rand(3, 8, 8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    shown = to_display_image((rgb - mean) / std, imagenet_normalised=True)
    assert torch.allclose(shown.float(), (rgb * 255).round(), atol=1.0)


def test_save_figure_writes_png(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_figure(fig, "line", tmp_path / "figures")
    assert path == tmp_path / "figures" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ OCT frames
def test_class_channels_one_panel_per_class_with_its_share_of_the_frame():
    channels = np.zeros((20, 20, 4), dtype=np.uint8)
    channels[:10, :10, 0] = 255  # lumen: a quarter of the frame
    channels[:2, :, 2] = 255  # lipid core: a tenth
    fig = plot_class_channels(_frame(20, 20), channels)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "image"
    assert titles[1] == "lumen: 25.0 % of frame"
    assert titles[3] == "lipid core: 10.0 % of frame"
    assert titles[4] == "vasa vasorum: 0.0 % of frame"


def test_class_channels_shows_the_stored_frame_unchanged_and_colours_only_masked_pixels():
    image = _frame(12, 12)
    channels = np.zeros((12, 12, 4), dtype=bool)
    channels[3:6, 3:6, 2] = True
    fig = plot_class_channels(image, channels)
    np.testing.assert_array_equal(fig.axes[0].get_images()[0].get_array(), image)
    lipid_panel = np.asarray(fig.axes[3].get_images()[0].get_array())
    changed = (lipid_panel != image).any(axis=-1)
    assert changed[3:6, 3:6].all() and changed.sum() <= 9


def test_class_channels_rejects_planar_or_mismatched_masks():
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        plot_class_channels(_frame(8, 8), np.zeros((4, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        plot_class_channels(_frame(8, 8), np.zeros((8, 8, 3), dtype=np.uint8))


def test_mask_grid_draws_each_mask_only_on_its_pixels_and_names_it_in_the_legend():
    images = [_frame(seed=0), torch.rand(3, 16, 16)]
    mask = np.zeros((16, 16), dtype=np.int64)
    mask[4:8, 4:8] = 1
    fig = plot_mask_grid(images, [mask, None], ["with mask", "without"], label="lipid core")
    drawn = np.asarray(fig.axes[0].get_images()[0].get_array())
    changed = (drawn != images[0]).any(axis=-1)
    assert changed[4:8, 4:8].all() and changed.sum() == 16
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["lipid core"]
    assert [ax.get_title() for ax in fig.axes[:2]] == ["with mask", "without"]


def test_mask_grid_without_masks_has_no_legend_and_checks_its_inputs():
    assert not plot_mask_grid([_frame()]).legends
    with pytest.raises(ValueError, match="one mask"):
        plot_mask_grid([_frame(), _frame()], [None])
    with pytest.raises(ValueError, match="mask 0"):
        plot_mask_grid([_frame()], [np.zeros((8, 8))])
    with pytest.raises(ValueError, match="no images"):
        plot_mask_grid([])


# ------------------------------------------------------------------------------------------------ polar domain
def _polar(num_alines: int = 36, num_samples: int = 20, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    labels = np.zeros((num_alines, num_samples), dtype=np.uint8)
    labels[:, :5] = 1
    labels[:9, 8:12] = 3
    calcium = np.zeros_like(labels, dtype=bool)
    calcium[20:24, 10:14] = True
    radius = (np.arange(num_samples) + 0.5) * 3.0 / num_samples
    return SimpleNamespace(display=rng.random((num_alines, num_samples)).astype(np.float32), labels=labels,
                           calcium=calcium, radius_mm=radius)


def test_polar_frame_profiles_average_neighbouring_alines():
    polar, reference = _polar(seed=0), _polar(seed=1)
    fig = plot_polar_frame(polar, {"lipid": 90.0, "wrap": 0.0}, reference=reference, average_lines=3)
    image_ax, label_ax, profile_ax = fig.axes[:3]
    lines = profile_ax.get_lines()
    assert len(lines) == 4  # two A-lines, each with its reference
    np.testing.assert_allclose(lines[0].get_ydata(), polar.display[8:11].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(lines[1].get_ydata(), reference.display[8:11].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(lines[2].get_ydata(), polar.display[[35, 0, 1]].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(lines[0].get_xdata(), polar.radius_mm)
    assert "calcium (not labelled)" in [t.get_text() for t in label_ax.get_legend().get_texts()]
    assert "mm" in image_ax.get_xlabel()


def test_polar_frame_label_image_colours_classes_and_calcium_apart():
    polar = _polar()
    fig = plot_polar_frame(polar)
    label_rgb = np.asarray(fig.axes[1].get_images()[0].get_array())
    lumen, lipid, calcium, tissue = label_rgb[0, 0], label_rgb[0, 9], label_rgb[21, 11], label_rgb[30, 15]
    colours = {tuple(np.round(c, 4)) for c in (lumen, lipid, calcium, tissue)}
    assert len(colours) == 4


def test_polar_frame_rejects_bad_inputs():
    polar = _polar()
    with pytest.raises(ValueError, match="odd"):
        plot_polar_frame(polar, {"a": 10.0}, average_lines=4)
    with pytest.raises(ValueError, match="reference"):
        plot_polar_frame(polar, {"a": 10.0}, reference=_polar(num_alines=18))
    broken = SimpleNamespace(**{**vars(polar), "labels": polar.labels[:, :5]})
    with pytest.raises(ValueError, match=r"\(A, S\)"):
        plot_polar_frame(broken)


def test_scan_conversion_marks_the_same_aline_as_a_row_and_a_ray():
    fig = plot_scan_conversion(np.zeros((36, 10)), np.zeros((20, 20)), np.zeros((20, 20, 3), np.uint8),
                               fov_radius_mm=3.0, angle=90.0)
    polar_ax, grey_ax, colour_ax = fig.axes[:3]
    assert polar_ax.get_lines()[0].get_ydata()[0] == pytest.approx(90.0)
    for ax in (grey_ax, colour_ax):
        ray = ax.get_lines()[0]
        np.testing.assert_allclose(ray.get_xdata(), [0.0, 0.0], atol=1e-9)
        np.testing.assert_allclose(ray.get_ydata(), [0.0, 3.0])  # 90 degrees clockwise: straight down (6 o'clock)
        assert ax.get_ylim()[0] > ax.get_ylim()[1]  # y grows downwards, like image rows
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        plot_scan_conversion(np.zeros((36, 10)), np.zeros((20, 20)), np.zeros((20, 20)), fov_radius_mm=3.0)


# ------------------------------------------------------------------------------------------------ splits, results
def test_patient_split_plots_every_frame_once_with_its_split():
    pairs = pd.DataFrame({"patient": ["001"] * 3 + ["002"] * 2 + ["003"] * 2, "frame": [1, 4, 7, 1, 4, None, None]})
    splits = {"train": pairs.iloc[:3], "val": pairs.iloc[3:5], "test": pairs.iloc[5:]}
    fig = plot_patient_split(splits)
    ax = fig.axes[0]
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(points) == len(pairs)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "val", "test"]
    with pytest.raises(ValueError, match="frame"):
        plot_patient_split({"train": pairs[["patient"]]})


def test_case_scores_sorts_cases_and_draws_the_mean():
    results = pd.DataFrame({"id": ["a", "b", "c", "d"], "dice": [0.2, 0.9, np.nan, 0.5],
                            "patient": ["p1", "p1", "p2", "p2"]})
    fig = plot_case_scores(results, "dice", group="patient")
    ax = fig.axes[0]
    bars = sorted((bar for bar in ax.patches if bar.get_height() > 0), key=lambda bar: bar.get_x())
    heights = [bar.get_height() for bar in bars]
    assert heights == [0.9, 0.5, 0.2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["b", "d", "a"]
    mean_line = [line for line in ax.get_lines() if line.get_linestyle() == "--"][0]
    assert mean_line.get_ydata()[0] == pytest.approx(np.mean([0.2, 0.9, 0.5]))
    assert any("undefined dice" in text.get_text() for text in ax.texts)


def test_case_scores_needs_one_row_per_case_and_its_columns():
    twice = pd.DataFrame({"id": ["a", "a"], "dice": [0.1, 0.2]})
    with pytest.raises(ValueError, match="several rows per case"):
        plot_case_scores(twice)
    with pytest.raises(ValueError, match="lack columns"):
        plot_case_scores(twice.drop(columns="dice"))
    with pytest.raises(ValueError, match="no case"):
        plot_case_scores(pd.DataFrame({"id": ["a"], "dice": [np.nan]}))


def test_confusion_shows_row_percentages_and_counts():
    confusion = np.array([[90, 10], [5, 15]])
    fig = plot_confusion(confusion, ["background", "lipid_core"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["90.0 %\n(90 px)", "10.0 %\n(10 px)", "25.0 %\n(5 px)", "75.0 %\n(15 px)"]
    with pytest.raises(ValueError, match="K = len"):
        plot_confusion(confusion, ["background"])


def test_attention_weights_plot_batch_mean_and_named_groups():
    weights = {"aspp.attention": torch.rand(3, 10), "low_level_attention": torch.rand(3, 4)}
    fig = plot_attention_weights(weights, {"aspp.attention": ["a", "b"]})
    aspp_ax, low_ax = fig.axes[:2]
    np.testing.assert_allclose(aspp_ax.get_lines()[0].get_ydata(), weights["aspp.attention"].mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(low_ax.get_lines()[0].get_ydata(), weights["low_level_attention"].mean(0).numpy(),
                               rtol=1e-6)
    assert [t.get_text() for t in aspp_ax.texts] == ["a", "b"]
    assert "10 channels" in aspp_ax.get_title()


def test_attention_weights_explain_what_is_wrong():
    with pytest.raises(ValueError, match="forward pass"):
        plot_attention_weights({})
    with pytest.raises(ValueError, match="not divisible"):
        plot_attention_weights({"aspp": torch.rand(2, 10)}, {"aspp": ["a", "b", "c"]})
    with pytest.raises(ValueError, match=r"\(B, C\)"):
        plot_attention_weights({"aspp": torch.rand(10)})


# ------------------------------------------------------------------------------------------------ transfer curve
def _transfer_results(seeds: int) -> pd.DataFrame:
    """Two starts x three n x seeds x two frames; a seed's mean Dice is 0.1 * log2(n) (+0.2 synthetic) + 0.01 * seed."""
    rows = [{"start": start, "train_frames": n, "seed": seed, "id": frame,
             "dice": 0.1 * np.log2(n) + (0.2 if start == "synthetic" else 0.0) + 0.01 * seed + (0.05 if frame == "b"
                                                                                               else -0.05)}
            for start in ("scratch", "synthetic") for n in (2, 4, 8) for seed in range(seeds) for frame in ("a", "b")]
    return pd.DataFrame(rows)


def test_transfer_curve_draws_seed_means_their_mean_and_a_band_only_from_five_seeds():
    results = _transfer_results(5)
    fig = plot_transfer_curve(results, "dice", reference=0.05, reference_label="no fine-tuning")
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    scratch = lines["scratch: mean over seeds"]
    np.testing.assert_array_equal(scratch.get_xdata(), [2, 4, 8])
    np.testing.assert_allclose(scratch.get_ydata(), [0.1 * k + 0.02 for k in (1, 2, 3)])  # mean of seeds 0..4
    assert lines["no fine-tuning"].get_ydata()[0] == pytest.approx(0.05)
    dots = [c for c in ax.collections if c.get_label() == "synthetic: one seed"][0]
    assert len(dots.get_offsets()) == 3 * 5  # one dot per n and seed, not per frame
    assert sorted(np.unique(np.round(dots.get_offsets()[:, 1], 6)))[:2] == pytest.approx([0.3, 0.31])
    assert {c.get_label() for c in ax.collections} >= {"scratch: 95 % CI over seeds", "synthetic: 95 % CI over seeds"}
    assert ax.get_xscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == ["2", "4", "8"]


def test_transfer_curve_with_few_seeds_shows_the_seeds_and_no_band():
    fig = plot_transfer_curve(_transfer_results(3))
    labels = {c.get_label() for c in fig.axes[0].collections}
    assert not any("CI" in label for label in labels)
    assert "3 seeds" in fig.axes[0].get_title()
