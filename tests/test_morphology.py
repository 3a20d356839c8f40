"""Vessel-mask morphology: the statistics on constructed masks, and synthetic XCA masks against 30 real ones."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medseg_core.config import real_data_path
from medseg_core.data import synthetic_xca as sx
from medseg_core.data.io import DataError
from medseg_core.data.morphology import (
    REAL_XCA_MASKS_FILE,
    STATISTICS,
    fraction_inside,
    load_real_xca_masks,
    morphology_table,
    reference_range,
    vessel_morphology,
)

REAL_MASKS = real_data_path("xca_real_masks") / REAL_XCA_MASKS_FILE
ACCEPTANCE_SEEDS = range(10)  # 10 sequences x labelled frames 5, 10, 15 (0.33-1 s) while fully opacified: 28 masks
SIZE = 256


def _bar(width: int, length: int = 160, size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    top, left = size // 2 - width // 2, (size - length) // 2
    mask[top : top + width, left : left + length] = True
    return mask


def _arc(radius: float, half_width: float, size: int = SIZE) -> np.ndarray:
    """A half ring (left half of a circle) of the given centreline radius."""
    rows, cols = np.mgrid[0:size, 0:size]
    distance = np.hypot(rows - size / 2, cols - size / 2)
    return (np.abs(distance - radius) <= half_width) & (cols < size / 2)


def test_straight_bar_has_its_width_length_and_no_branches() -> None:
    stats = vessel_morphology(_bar(width=9))
    assert stats["vessel_fraction"] == pytest.approx(9 * 160 / SIZE**2)
    assert stats["median_width"] == pytest.approx(10.0)  # 2 x distance to the nearest background pixel centre
    assert stats["p90_width"] == pytest.approx(10.0)
    assert 150 <= stats["centreline_length"] <= 160
    assert stats["branch_points"] == 0 and stats["components"] == 1
    assert stats["tortuosity"] == pytest.approx(1.0, abs=0.06)
    assert stats["hull_fraction"] == pytest.approx(stats["vessel_fraction"])  # a bar is its own convex hull


def test_width_grows_with_the_bar_and_oblique_lines_stay_straight() -> None:
    assert vessel_morphology(_bar(5))["median_width"] < vessel_morphology(_bar(13))["median_width"]
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    for angle in (0.2, 0.4, 0.7):  # radians; chain-code length estimates are worst at oblique angles
        line = np.abs((rows - 128) * math.cos(angle) - (cols - 128) * math.sin(angle)) <= 3
        line &= np.hypot(rows - 128, cols - 128) < 100
        assert vessel_morphology(line)["tortuosity"] == pytest.approx(1.0, abs=0.04)


def test_half_circle_tortuosity_is_pi_over_two_and_hull_spans_it() -> None:
    stats = vessel_morphology(_arc(radius=80, half_width=3))
    assert stats["tortuosity"] == pytest.approx(math.pi / 2, rel=0.03)
    assert stats["hull_fraction"] > 5 * stats["vessel_fraction"]


def test_t_junction_has_one_branch_point_cluster_and_crossings_two() -> None:
    horizontal = _bar(7)
    stem = np.zeros_like(horizontal)
    stem[SIZE // 2 :, SIZE // 2 - 3 : SIZE // 2 + 4] = True
    t_stats = vessel_morphology(horizontal | stem)
    assert 1 <= t_stats["branch_points"] <= 6 and t_stats["components"] == 1
    cross = horizontal | horizontal.T
    assert vessel_morphology(cross)["branch_points"] >= 1
    two = horizontal.copy()
    two[20:27, 40:200] = True
    assert vessel_morphology(two)["components"] == 2


def test_empty_mask_and_bad_shape() -> None:
    stats = vessel_morphology(np.zeros((64, 64), dtype=np.uint8))
    assert stats["vessel_fraction"] == 0 and stats["components"] == 0 and math.isnan(stats["median_width"])
    with pytest.raises(ValueError, match="2D"):
        vessel_morphology(np.zeros((2, 64, 64)))


def test_table_reference_range_and_fraction_inside() -> None:
    table = morphology_table(np.stack([_bar(5), _bar(9), _bar(13)]))
    assert list(table.columns) == list(STATISTICS) and len(table) == 3
    reference = reference_range(table)
    assert list(reference.columns) == ["p5", "median", "p95"] and list(reference.index) == list(STATISTICS)
    assert reference.loc["median_width", "median"] == table["median_width"].median()
    inside = fraction_inside(table, reference)
    assert inside["median_width"] == pytest.approx(1 / 3)  # only the middle bar lies strictly between p5 and p95
    with pytest.raises(ValueError):
        reference_range(table, 95, 5)


def test_load_real_masks_names_the_missing_file(tmp_path) -> None:
    with pytest.raises(DataError, match="MEDSEG_XCA_REAL_MASKS"):
        load_real_xca_masks(tmp_path)
    np.savez_compressed(tmp_path / REAL_XCA_MASKS_FILE, masks=np.zeros((2, 8, 8), dtype=bool))
    assert load_real_xca_masks(tmp_path).shape == (2, 8, 8)


@pytest.mark.skipif(not REAL_MASKS.is_file(), reason=f"real XCA masks not found at {REAL_MASKS}")
def test_synthetic_masks_at_512_have_real_coronary_morphology() -> None:
    """Each statistic of the labelled fully opacified synthetic masks lies in the real 5-95 % range for >= 80 %."""
    real = morphology_table(load_real_xca_masks(REAL_MASKS))
    reference = reference_range(real)
    # The README's measured percentiles (5 / 50 / 95) pin the definitions.
    np.testing.assert_allclose(reference.loc["median_width"], [4.47, 6.0, 7.21], atol=0.01)
    np.testing.assert_allclose(reference.loc["centreline_length"], [2040, 2770, 4390], rtol=0.01)
    np.testing.assert_allclose(reference.loc["branch_points"], [118, 216, 379], rtol=0.01)
    masks = []
    for seed in ACCEPTANCE_SEEDS:
        sequence = sx.simulate_sequence(seed, image_size=512, num_frames=16)
        labelled = np.arange(0, 16, 5)
        masks.extend(sequence.masks[labelled[sequence.opacified[labelled]]])
    assert len(masks) >= 25
    synthetic = morphology_table(masks)
    inside = fraction_inside(synthetic, reference)
    report = pd.DataFrame({"synthetic median": synthetic.median(), "inside": inside}).join(reference)
    assert (inside >= 0.8).all(), f"synthetic vs real morphology at 512 x 512:\n{report.round(3)}"
