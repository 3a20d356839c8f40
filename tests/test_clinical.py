"""Clinical read-outs (medseg_core.clinical) on constructed masks with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from medseg_core.clinical import (lipid_arc_degrees, min_cap_thickness, polar_lipid_arc_degrees,
                                  vessel_diameter_profile)

SIZE = 201
CENTRE = (SIZE - 1) / 2


def _polar_grid(centre: tuple[float, float] = (CENTRE, CENTRE)) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[:SIZE, :SIZE]
    radius = np.hypot(rows - centre[0], cols - centre[1])
    angle = np.degrees(np.mod(np.arctan2(rows - centre[0], cols - centre[1]), 2 * np.pi))
    return radius, angle


def _sector(start: float, stop: float, inner: float = 40, outer: float = 90,
            centre: tuple[float, float] = (CENTRE, CENTRE)) -> np.ndarray:
    radius, angle = _polar_grid(centre)
    in_angle = (angle >= start) & (angle < stop) if start < stop else (angle >= start) | (angle < stop)
    return in_angle & (radius >= inner) & (radius < outer)


def test_polar_arc_counts_alines_with_lipid_also_across_zero():
    polar = np.zeros((360, 20), bool)
    polar[:30, 5:] = polar[-60:, 3:] = True  # one pool across 0 degrees: 90 A-lines
    assert polar_lipid_arc_degrees(polar) == pytest.approx(90.0)
    assert polar_lipid_arc_degrees(np.zeros((504, 8))) == 0.0


def test_a_90_degree_sector_gives_90():
    assert lipid_arc_degrees(_sector(10, 100)) == pytest.approx(90.0, abs=1.5)


def test_an_arc_across_zero_is_its_extent_not_360_minus_it():
    assert lipid_arc_degrees(_sector(330, 30)) == pytest.approx(60.0, abs=1.5)


def test_two_pools_count_their_angles_only():
    # each of the 4 ends adds at most half a pixel at the inner radius 40: 4 x 0.5 / 40 rad = 2.9 degrees
    assert lipid_arc_degrees(_sector(0, 40) | _sector(180, 230)) == pytest.approx(90.0, abs=3.0)


def test_the_centre_defaults_to_the_lumen_centroid():
    centre = (CENTRE + 20, CENTRE - 15)
    radius, _ = _polar_grid(centre)
    lipid = _sector(200, 290, centre=centre)
    assert lipid_arc_degrees(lipid, lumen_mask=radius < 20) == pytest.approx(90.0, abs=1.5)
    assert abs(lipid_arc_degrees(lipid) - 90.0) > 3  # measured around the image centre it is another arc


def test_no_lipid_gives_zero_arc_and_nan_cap():
    empty = np.zeros((SIZE, SIZE), bool)
    radius, _ = _polar_grid()
    assert lipid_arc_degrees(empty) == 0.0
    assert math.isnan(min_cap_thickness(empty, radius < 20, pixel_mm=0.01))


def test_cap_of_a_ring_of_known_thickness():
    radius, _ = _polar_grid()
    lumen = radius < 30
    lipid = _sector(0, 120, inner=42, outer=70) | _sector(200, 260, inner=37, outer=70)  # caps of 12 and 7 px
    assert min_cap_thickness(lipid, lumen, pixel_mm=0.01) == pytest.approx(0.07, abs=0.01)
    assert min_cap_thickness(_sector(0, 120, inner=42, outer=70), lumen, pixel_mm=0.01) == pytest.approx(0.12, abs=0.01)


def test_cap_rejects_bad_input():
    radius, _ = _polar_grid()
    with pytest.raises(ValueError, match="shape"):
        min_cap_thickness(radius < 50, np.ones((5, 5)), pixel_mm=0.01)
    with pytest.raises(ValueError, match="empty"):
        min_cap_thickness(radius < 50, np.zeros((SIZE, SIZE)), pixel_mm=0.01)
    with pytest.raises(ValueError, match="pixel_mm"):
        min_cap_thickness(radius < 50, radius < 20, pixel_mm=0)


def test_a_bar_of_width_6_has_diameter_6():
    bar = np.zeros((40, 120), bool)
    bar[17:23, 10:110] = True
    diameters, summary = vessel_diameter_profile(bar)
    assert summary["median"] == pytest.approx(6.0)
    assert summary["p5"] <= summary["median"] <= summary["p95"]
    assert summary["centreline_px"] == diameters.size > 80


def test_a_narrowing_shows_in_the_profile():
    bar = np.zeros((40, 120), bool)
    bar[14:26, 10:110] = True
    bar[14:18, 55:65] = bar[22:26, 55:65] = False  # a stenosis: 12 px narrowed to 4 px
    diameters, summary = vessel_diameter_profile(bar)
    assert summary["median"] == pytest.approx(12.0)
    assert diameters.min() == pytest.approx(4.0)


def test_empty_vessel_mask_gives_nan_summary():
    diameters, summary = vessel_diameter_profile(np.zeros((32, 32)))
    assert diameters.size == 0 and math.isnan(summary["median"])


def test_read_outs_agree_with_a_synthetic_oct_frame():
    from medseg_core.data import synthetic_oct as sim

    size = 375
    params = sim.sample_frame_params(np.random.default_rng(4), lipid=True, calcium=False)  # a 255 µm cap
    frame = sim.render_frame(params, np.random.default_rng(0), size=size)
    lumen, lipid = (frame.mask[..., sim.OCT_CLASSES.index(name)] > 0 for name in ("lumen", "lipid_core"))
    pixel_mm = 2 * sim.FOV_RADIUS_MM / size
    assert lipid_arc_degrees(lipid) == pytest.approx(math.degrees(params.lipid.arc_width), abs=1.0)
    # the generator thins the cap to 0.8 of its thickness at the sector ends; rays from the catheter (image) centre
    thinnest = 0.8 * params.lipid.cap_thickness
    measured = min_cap_thickness(lipid, lumen, pixel_mm, centre=((size - 1) / 2, (size - 1) / 2))
    assert measured == pytest.approx(thinnest, abs=pixel_mm)  # the drawn 255 µm lies 3 pixels away
