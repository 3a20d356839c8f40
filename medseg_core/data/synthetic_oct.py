"""Synthetic intravascular OCT (IVOCT) frames with lipid-core labels, in the layout of the public OCT dataset.

This module owns the simulator and the writer of synthetic data; reading it back (and reading the real data)
is :mod:`medseg_core.data.oct`. A frame is simulated the way an IVOCT system acquires it, step by step, so that
a notebook can show each stage:

1. :func:`sample_pullback_params` / :func:`sample_frame_params` draw the anatomy (:class:`OCTFrameParams`):
   an irregular, eccentric lumen around the imaging catheter, a three-layer wall, a guidewire, and optionally a
   lipid pool behind a fibrous cap (labelled), a calcium plate (an unlabelled distractor) and vasa vasorum.
2. :func:`simulate_polar_frame` computes the A-lines (rows = angle, clockwise from 3 o'clock; columns = depth)
   with a single-scattering model, ``I(r) = beta(r) * exp(-2 * integral_0^r mu)``, multiplicative speckle
   and a noise floor, then log-compresses to display values in ``[0, 1]``.
3. :func:`scan_convert` maps the polar frame to a circle-cropped Cartesian image (``scipy.ndimage.map_coordinates``)
   and :func:`apply_oct_colormap` applies the orange look-up table measured from the real sample.

Tissue optics are chosen after the measurements of Xu et al., "Characterization of atherosclerosis plaques by
measuring both backscattering and attenuation coefficients in optical coherence tomography", J Biomed Opt 13:034003
(2008), and van Soest et al., J Biomed Opt 15:011105 (2010): fibrous tissue scatters strongly and attenuates little
(signal-rich), a lipid pool scatters strongly but attenuates fast (signal-poor region with a diffuse border behind
a bright fibrous cap), calcium scatters and attenuates little (signal-poor with sharp borders). They keep that
picture, not the published numbers: :func:`optics_beside_published` sets them side by side (:data:`PUBLISHED_OPTICS`).

:func:`write_oct_dataset` writes frames exactly like the dataset of Danilov et al. (Zenodo 10.5281/zenodo.14478210):
``img/{patient:03d}_{pullback}_{frame:03d}.png`` (RGB) and ``mask/<same>.tiff`` (4 channels 0/255, LZW, channel
order lumen, fibrous cap, lipid core, vasa vasorum), flat or in patient-wise folds ``fold_k/{train,test}/{img,mask}``.
Every patient's pullback has lipid in one contiguous run of frames and none in the others, as in the real sample.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from scipy.special import expit

from ..config import OCTConfig
from ..errors import ConfigError
from .cache import DatasetWriter, settings_digest
from .oct import OCT_CLASSES, write_oct_mask

__all__ = [
    "FOV_RADIUS_MM",
    "CATHETER_RADIUS_MM",
    "GUIDEWIRE_RADIUS_MM",
    "NUM_ALINES",
    "TISSUE_OPTICS",
    "PUBLISHED_OPTICS",
    "optics_beside_published",
    "LipidPool",
    "CalciumPlate",
    "VasaVasorum",
    "OCTFrameParams",
    "PolarFrame",
    "SyntheticOCTFrame",
    "sample_pullback_params",
    "sample_frame_params",
    "simulate_polar_frame",
    "scan_convert",
    "polar_transform",
    "apply_oct_colormap",
    "labels_to_channels",
    "render_frame",
    "generate_oct_frame",
    "write_oct_dataset",
    "ensure_oct_dataset",
    "generator_settings",
    "dataset_digest",
]

GENERATOR_VERSION = 1  # bump when frames change, so that cached datasets are regenerated

FOV_RADIUS_MM = 3.0  # radius of the circular field of view; sets the scale (the sample's catheter is ~65 of 375 px)
CATHETER_RADIUS_MM = 0.5  # outer radius of the catheter sheath
GUIDEWIRE_RADIUS_MM = 0.18  # a 0.014-inch coronary guidewire
NUM_ALINES = 504  # A-lines per frame of a common commercial IVOCT system
AXIAL_RESOLUTION_MM = 0.01  # sets the speckle grain along depth
DYNAMIC_RANGE_DB = (-40.0, 15.0)  # log-compressed signal range mapped to display values 0..1
NOISE_FLOOR = 2e-4  # mean detection noise, relative to the backscatter of healthy intima
_CATHETER_CLEARANCE_MM = CATHETER_RADIUS_MM + 2.0 * GUIDEWIRE_RADIUS_MM + 0.1  # lumen room around the catheter

# (backscatter, attenuation in 1/mm) per structure; backscatter is relative to healthy intima.
TISSUE_OPTICS: dict[str, tuple[float, float]] = {
    "flush": (3e-5, 0.1),  # contrast-flushed lumen with a trace of residual blood
    "catheter_fluid": (1e-3, 0.2),
    "intima": (1.0, 2.5),
    "media": (0.25, 2.5),  # smooth muscle: the dark middle band
    "adventitia": (0.7, 2.0),
    "periadventitia": (0.45, 2.0),
    "fibrous_cap": (2.5, 3.0),
    "lipid": (1.3, 8.0),  # bright near the cap, then fast decay: signal-poor with a diffuse border
    "calcium": (0.08, 2.0),  # signal-poor, sharp borders, tissue behind stays visible
    "vasa_vasorum": (0.01, 0.5),
}

# Published single-scattering coefficients (1/mm) of the structures TISSUE_OPTICS models as plaque: Xu et al., J Biomed
# Opt 13:034003 (2008), post-mortem coronary arteries matched to histology (mean, sd of backscatter and attenuation of
# "fibers", "lipid pool", "calcification"); van Soest et al., J Biomed Opt 15:011105 (2010), attenuation ranges
# (fibrous and calcific tissue about 2-5, necrotic core at least 10).
PUBLISHED_OPTICS: dict[str, dict[str, tuple[float, float]]] = {
    "fibrous_cap": {"xu_backscatter": (18.4, 6.4), "xu_attenuation": (6.4, 1.2), "van_soest_attenuation": (2.0, 5.0)},
    "lipid": {"xu_backscatter": (28.1, 8.9), "xu_attenuation": (13.7, 4.5),
              "van_soest_attenuation": (10.0, float("inf"))},
    "calcium": {"xu_backscatter": (4.9, 1.5), "xu_attenuation": (5.7, 1.4), "van_soest_attenuation": (2.0, 5.0)},
}


def optics_beside_published() -> pd.DataFrame:
    """The generator's plaque optics beside :data:`PUBLISHED_OPTICS`, one row per structure.

    Attenuation μ is compared in 1/mm (``Xu sd away``: the generator's μ minus Xu's mean, in Xu's standard
    deviations; ``within van Soest``: inside van Soest's range). The generator's backscatter β is relative, so it is
    compared as a ratio to the fibrous cap's (Xu: to the "fibers").
    """
    fibrous_beta, xu_fibrous = TISSUE_OPTICS["fibrous_cap"][0], PUBLISHED_OPTICS["fibrous_cap"]["xu_backscatter"][0]
    rows = {}
    for name, published in PUBLISHED_OPTICS.items():
        beta, mu = TISSUE_OPTICS[name]
        (xu_mu, xu_sd), (low, high) = published["xu_attenuation"], published["van_soest_attenuation"]
        rows[name] = {"μ generator": mu, "μ Xu 2008": f"{xu_mu:g} ± {xu_sd:g}", "Xu sd away": (mu - xu_mu) / xu_sd,
                      "μ van Soest 2010": f"≥ {low:g}" if high == float("inf") else f"{low:g}-{high:g}",
                      "within van Soest": bool(low <= mu <= high), "β / fibrous cap, generator": beta / fibrous_beta,
                      "β / fibres, Xu 2008": published["xu_backscatter"][0] / xu_fibrous}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("structure")


# Label ids of the polar and Cartesian label maps; 0 is unlabelled tissue or background.
_LUMEN, _CAP, _LIPID, _VASA = 1, 2, 3, 4
_LABEL_OF_CHANNEL = {"lumen": _LUMEN, "fibrous_cap": _CAP, "lipid_core": _LIPID, "vasa_vasorum": _VASA}

# Orange look-up table measured on the 11 real frames: mean (G, B) for bins of the red channel (display value * 255).
_LUT_POINTS = np.array(
    [
        (0.0, 0.0, 0.0), (10.3, 0.9, 0.3), (22.5, 1.9, 0.5), (38.9, 4.4, 1.0), (55.2, 9.8, 1.7),
        (71.1, 17.9, 2.4), (87.2, 26.8, 2.8), (103.4, 37.1, 3.3), (119.4, 48.7, 3.7), (135.5, 62.3, 4.3),
        (151.4, 78.6, 5.8), (167.3, 96.7, 9.8), (182.8, 115.1, 16.1), (197.8, 133.3, 24.3), (213.0, 152.1, 35.1),
        (230.0, 183.7, 63.0), (243.6, 213.6, 97.3), (255.0, 235.0, 125.0),
    ]
)


@dataclass(frozen=True)
class LipidPool:
    """A lipid pool behind a fibrous cap, spanning an angular sector seen from the catheter.

    Attributes:
        centre_angle: sector centre (rad, clockwise from 3 o'clock).
        arc_width: sector width (rad).
        cap_thickness: fibrous cap thickness between lumen and lipid (mm).
        depth: radial extent of the pool at the sector centre (mm); it tapers to the sector ends.
    """

    centre_angle: float
    arc_width: float
    cap_thickness: float
    depth: float


@dataclass(frozen=True)
class CalciumPlate:
    """A calcified plate: signal-poor with sharp borders, not labelled (a distractor for the lipid model).

    Attributes:
        centre_angle: sector centre (rad).
        arc_width: sector width (rad).
        depth_start: depth of its luminal border below the lumen surface (mm).
        thickness: radial thickness at the sector centre (mm).
    """

    centre_angle: float
    arc_width: float
    depth_start: float
    thickness: float


@dataclass(frozen=True)
class VasaVasorum:
    """A micro-vessel in the adventitia: a small signal-free disc (labelled ``vasa_vasorum``).

    Attributes:
        angle: direction from the catheter (rad).
        depth: depth of its centre below the lumen surface (mm).
        radius: radius (mm).
    """

    angle: float
    depth: float
    radius: float


@dataclass(frozen=True)
class OCTFrameParams:
    """Anatomy of one frame; lengths in mm, angles in rad (clockwise from 3 o'clock, as image rows go down).

    Attributes:
        lumen_radius: mean lumen radius around the lumen centre.
        lumen_offset: (x, y) of the lumen centre relative to the catheter (the catheter is off-centre in the lumen).
        lumen_shape: Fourier coefficients ``(a_2, b_2, a_3, b_3, ...)`` of ``log(radius / lumen_radius)``.
        intima_thickness, media_thickness, adventitia_thickness: mean layer thicknesses.
        wall_shape: Fourier coefficients ``(a_1, b_1, ...)`` of the relative layer thickness along the angle.
        guidewire_angle: direction of the guidewire from the catheter.
        guidewire_position: 0 = touching the catheter, 1 = touching the lumen wall.
        lipid, calcium: optional plaques; vasa_vasorum: micro-vessels.
    """

    lumen_radius: float
    lumen_offset: tuple[float, float]
    lumen_shape: tuple[float, ...]
    intima_thickness: float
    media_thickness: float
    adventitia_thickness: float
    wall_shape: tuple[float, ...]
    guidewire_angle: float
    guidewire_position: float
    lipid: LipidPool | None = None
    calcium: CalciumPlate | None = None
    vasa_vasorum: tuple[VasaVasorum, ...] = ()


@dataclass
class PolarFrame:
    """One simulated frame in the polar domain (rows = A-lines over 360 degrees, columns = depth samples).

    Attributes:
        display: ``(A, S)`` float32 log-compressed intensity in [0, 1].
        labels: ``(A, S)`` uint8 label ids (0 unlabelled, 1 lumen, 2 fibrous cap, 3 lipid core, 4 vasa vasorum).
        calcium: ``(A, S)`` bool, where the unlabelled calcium plate is (for teaching; never in the masks).
        radius_mm: ``(S,)`` radius of each depth sample from the catheter centre.
    """

    display: np.ndarray
    labels: np.ndarray
    calcium: np.ndarray
    radius_mm: np.ndarray


@dataclass
class SyntheticOCTFrame:
    """A rendered frame: ``image`` (H, W, 3) uint8; ``mask`` (H, W, 4) uint8 0/255 in :data:`OCT_CLASSES` order."""

    image: np.ndarray
    mask: np.ndarray
    polar: PolarFrame
    params: OCTFrameParams


# ----------------------------------------------------------------------------------------------------------------
# Anatomy
# ----------------------------------------------------------------------------------------------------------------


def _fourier(angles: np.ndarray, coefficients: Sequence[float], first_harmonic: int) -> np.ndarray:
    """``sum_k a_k cos(k * angle) + b_k sin(k * angle)`` for ``k = first_harmonic, ...``."""
    result = np.zeros_like(angles, dtype=np.float64)
    for index in range(len(coefficients) // 2):
        k = first_harmonic + index
        result += coefficients[2 * index] * np.cos(k * angles) + coefficients[2 * index + 1] * np.sin(k * angles)
    return result


def _random_fourier(rng: np.random.Generator, num_harmonics: int, amplitude: float, first_harmonic: int) -> np.ndarray:
    """Random Fourier coefficients whose amplitude falls as ``1 / k`` (a smooth random closed curve)."""
    ks = np.repeat(np.arange(first_harmonic, first_harmonic + num_harmonics), 2)
    return rng.normal(0.0, amplitude / ks)


def _angle_difference(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Signed difference ``a - b`` wrapped to ``(-pi, pi]``."""
    return np.angle(np.exp(1j * (np.asarray(a) - np.asarray(b))))


def _min_lumen_clearance(lumen_radius: float, offset: np.ndarray, shape: np.ndarray) -> float:
    """Smallest distance from the catheter centre to the lumen boundary (mm)."""
    phi = np.linspace(0.0, 2.0 * np.pi, 360, endpoint=False)
    rho = lumen_radius * np.exp(_fourier(phi, shape, first_harmonic=2))
    boundary = np.stack([rho * np.cos(phi), rho * np.sin(phi)], axis=1) + offset
    return float(np.hypot(boundary[:, 0], boundary[:, 1]).min())


def sample_pullback_params(
    rng: np.random.Generator,
    num_frames: int,
    *,
    lipid_frames: Sequence[bool] | None = None,
    calcium_probability: float = 0.4,
) -> list[OCTFrameParams]:
    """Draw the anatomy of ``num_frames`` frames of one pullback, changing smoothly from frame to frame.

    Args:
        rng: source of randomness (one per patient).
        num_frames: frames in the pullback.
        lipid_frames: which frames hold the lipid pool. Default: one contiguous run covering 30-70 % of the frames,
            at least one frame, and (with two frames or more) at least one frame without lipid.
        calcium_probability: chance that the pullback holds a calcium plate (in its own run of frames).

    Returns:
        One :class:`OCTFrameParams` per frame.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if lipid_frames is None:
        lipid_frames = _contiguous_run(rng, num_frames, fraction=(0.3, 0.7), at_least_one_outside=num_frames > 1)
    lipid_frames = np.asarray(lipid_frames, dtype=bool)
    if lipid_frames.shape != (num_frames,):
        raise ValueError(f"lipid_frames must have one entry per frame ({num_frames}), got shape {lipid_frames.shape}")

    position = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    phase = rng.uniform(0.3, 1.2) * np.pi * position  # how far the anatomy drifts along the pullback

    lumen_radius = rng.uniform(1.15, 1.75) * (1.0 + 0.12 * np.sin(phase + rng.uniform(0, 2 * np.pi)))
    lumen_shape_a, lumen_shape_b = (_random_fourier(rng, 4, 0.1, first_harmonic=2) for _ in range(2))
    offset_angle = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.4) * position
    offset_size = rng.uniform(0.1, 0.6) * (1.0 + 0.2 * np.sin(phase))
    wall_shape_a, wall_shape_b = (_random_fourier(rng, 5, 0.25, first_harmonic=1) for _ in range(2))
    intima, media, adventitia = rng.uniform(0.15, 0.45), rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.5)

    lipid_angle = rng.uniform(0, 2 * np.pi) + rng.normal(0, 0.25) * position
    lipid_max_width = np.deg2rad(rng.uniform(90.0, 180.0))
    cap_thickness = rng.uniform(0.08, 0.3) * (1.0 + 0.2 * np.sin(phase + rng.uniform(0, 2 * np.pi)))
    lipid_depth = rng.uniform(0.8, 1.6) * (1.0 + 0.15 * np.sin(phase + rng.uniform(0, 2 * np.pi)))
    lipid_width = lipid_max_width * _run_taper(lipid_frames)
    # The guidewire and calcium stay clear of the lipid sector so that its label is visible in the image.
    guidewire_angle = lipid_angle + rng.uniform(0.6, 1.4) * np.pi + rng.normal(0, 0.1) * position
    guidewire_position = np.clip(rng.uniform(0.0, 0.5) + rng.normal(0, 0.15) * position, 0.0, 1.0)
    calcium = _sample_calcium(rng, num_frames, lipid_angle, lipid_width, guidewire_angle, calcium_probability)

    frames = []
    for i in range(num_frames):
        lumen_shape = np.cos(phase[i]) * lumen_shape_a + np.sin(phase[i]) * lumen_shape_b
        offset = offset_size[i] * np.array([np.cos(offset_angle[i]), np.sin(offset_angle[i])])
        # Pull the catheter towards the lumen centre (and widen the lumen) until the guidewire fits beside it.
        while _min_lumen_clearance(lumen_radius[i], offset, lumen_shape) < _CATHETER_CLEARANCE_MM:
            offset *= 0.8
            lumen_radius[i] *= 1.03
        lipid = None
        if lipid_frames[i]:
            lipid = LipidPool(
                centre_angle=float(lipid_angle[i] % (2 * np.pi)),
                arc_width=float(lipid_width[i]),
                cap_thickness=float(cap_thickness[i]),
                depth=float(lipid_depth[i]),
            )
        frames.append(
            OCTFrameParams(
                lumen_radius=float(lumen_radius[i]),
                lumen_offset=(float(offset[0]), float(offset[1])),
                lumen_shape=tuple(float(c) for c in lumen_shape),
                intima_thickness=float(intima),
                media_thickness=float(media),
                adventitia_thickness=float(adventitia),
                wall_shape=tuple(float(c) for c in np.cos(phase[i]) * wall_shape_a + np.sin(phase[i]) * wall_shape_b),
                guidewire_angle=float(guidewire_angle[i] % (2 * np.pi)),
                guidewire_position=float(guidewire_position[i]),
                lipid=lipid,
                calcium=calcium[i],
                vasa_vasorum=_sample_vasa_vasorum(rng, lipid, guidewire_angle[i], intima + media, adventitia),
            )
        )
    return frames


def sample_frame_params(
    rng: np.random.Generator, *, lipid: bool = True, calcium: bool | None = None
) -> OCTFrameParams:
    """Draw the anatomy of one independent frame (``calcium=None``: a plate with probability 0.4)."""
    probability = 0.4 if calcium is None else float(calcium)
    return sample_pullback_params(rng, 1, lipid_frames=[lipid], calcium_probability=probability)[0]


def _contiguous_run(
    rng: np.random.Generator, num_frames: int, fraction: tuple[float, float], at_least_one_outside: bool
) -> np.ndarray:
    """Boolean mask of one contiguous run of frames covering a random fraction of the pullback."""
    length = int(round(rng.uniform(*fraction) * num_frames))
    length = min(max(length, 1), num_frames - 1 if at_least_one_outside else num_frames)
    start = int(rng.integers(0, num_frames - length + 1))
    run = np.zeros(num_frames, dtype=bool)
    run[start : start + length] = True
    return run


def _run_taper(run: np.ndarray) -> np.ndarray:
    """Relative plaque size along a run of frames: largest in its middle, 60 % at its ends, 0 outside."""
    taper = np.zeros(run.shape, dtype=np.float64)
    indices = np.flatnonzero(run)
    if indices.size:
        # Split into contiguous runs so that each gets its own taper.
        for segment in np.split(indices, np.flatnonzero(np.diff(indices) > 1) + 1):
            u = (np.arange(segment.size) + 0.5) / segment.size
            taper[segment] = 0.6 + 0.4 * np.sin(np.pi * u)
    return taper


def _sample_calcium(
    rng: np.random.Generator,
    num_frames: int,
    lipid_angle: np.ndarray,
    lipid_width: np.ndarray,
    guidewire_angle: np.ndarray,
    probability: float,
) -> list[CalciumPlate | None]:
    """A calcium plate in a run of frames, placed where it overlaps neither the lipid sector nor the guidewire."""
    plates: list[CalciumPlate | None] = [None] * num_frames
    if rng.uniform() >= probability:
        return plates
    run = _contiguous_run(rng, num_frames, fraction=(0.3, 0.8), at_least_one_outside=False)
    max_width = np.deg2rad(rng.uniform(30.0, 90.0))
    widths = max_width * _run_taper(run)
    depth_start, thickness = rng.uniform(0.05, 0.25), rng.uniform(0.3, 0.6)
    candidates = rng.uniform(0, 2 * np.pi, size=64)
    for centre in candidates:
        lipid_gap = np.abs(_angle_difference(centre, lipid_angle)) - (lipid_width + widths) / 2
        wire_gap = np.abs(_angle_difference(centre, guidewire_angle)) - widths / 2
        if np.all(lipid_gap[run] > 0.15) and np.all(wire_gap[run] > 0.5):
            for i in np.flatnonzero(run):
                plates[i] = CalciumPlate(float(centre % (2 * np.pi)), float(widths[i]), depth_start, thickness)
            break
    return plates


def _sample_vasa_vasorum(
    rng: np.random.Generator,
    lipid: LipidPool | None,
    guidewire_angle: float,
    adventitia_start: float,
    adventitia_thickness: float,
) -> tuple[VasaVasorum, ...]:
    """Zero to two micro-vessels in the adventitia, away from the lipid pool and the guidewire shadow."""
    vessels = []
    for _ in range(rng.poisson(0.4)):
        angle = rng.uniform(0, 2 * np.pi)
        blocked = abs(_angle_difference(angle, guidewire_angle)) < 0.6
        if lipid is not None:
            blocked |= abs(_angle_difference(angle, lipid.centre_angle)) < lipid.arc_width / 2 + 0.2
        if not blocked and len(vessels) < 2:
            depth = adventitia_start + rng.uniform(0.25, 0.75) * adventitia_thickness
            vessels.append(VasaVasorum(float(angle), float(depth), float(rng.uniform(0.03, 0.07))))
    return tuple(vessels)


# ----------------------------------------------------------------------------------------------------------------
# Polar simulation
# ----------------------------------------------------------------------------------------------------------------


def _soft_step(x: np.ndarray, edge: np.ndarray | float, width: float) -> np.ndarray:
    """0 below ``edge``, 1 above, with a logistic transition ``width`` wide."""
    return expit((x - edge) / width)


def simulate_polar_frame(
    params: OCTFrameParams,
    rng: np.random.Generator,
    *,
    num_alines: int = NUM_ALINES,
    num_samples: int = 375,
) -> PolarFrame:
    """Simulate the A-lines of one frame: optics, catheter, guidewire shadow, speckle, log compression.

    Args:
        params: the anatomy (see :func:`sample_frame_params`).
        rng: source of the speckle, noise and tissue texture.
        num_alines: rows of the polar frame (angles over 360 degrees).
        num_samples: columns (depth samples from the catheter centre to the edge of the field of view).

    Returns:
        A :class:`PolarFrame` with ``(num_alines, num_samples)`` arrays.
    """
    if num_alines < 16 or num_samples < 16:
        raise ValueError(f"need at least 16 A-lines and 16 depth samples, got {num_alines} x {num_samples}")
    dr = FOV_RADIUS_MM / num_samples
    radius = (np.arange(num_samples) + 0.5) * dr  # (S,)
    theta = 2.0 * np.pi * np.arange(num_alines) / num_alines  # (A,)
    r, t = radius[None, :], theta[:, None]

    # Lumen: first exit of each A-line from the (eccentric, irregular) lumen; everything before it is lumen.
    x = r * np.cos(t) - params.lumen_offset[0]
    y = r * np.sin(t) - params.lumen_offset[1]
    rho = params.lumen_radius * np.exp(_fourier(np.arctan2(y, x), params.lumen_shape, first_harmonic=2))
    outside = (np.hypot(x, y) >= rho) & (r > CATHETER_RADIUS_MM)
    surface_index = np.where(outside.any(axis=1), outside.argmax(axis=1), num_samples)
    surface = np.append(radius, radius[-1] + dr)[surface_index] - dr / 2  # (A,)
    depth = r - surface[:, None]  # (A, S) mm below the lumen surface, negative inside the lumen
    in_tissue = depth >= 0

    # Layered wall: intima / media / adventitia / periadventitial tissue, thicknesses varying with the angle.
    wall_scale = np.exp(_fourier(theta, params.wall_shape, first_harmonic=1))[:, None]
    edge_media = params.intima_thickness * wall_scale
    edge_adventitia = edge_media + params.media_thickness * np.sqrt(wall_scale)
    edge_periadventitia = edge_adventitia + params.adventitia_thickness * wall_scale
    layers = [("intima", 0.0, 0.0), ("media", edge_media, 0.012), ("adventitia", edge_adventitia, 0.012),
              ("periadventitia", edge_periadventitia, 0.06)]
    backscatter = np.zeros_like(depth)
    attenuation = np.zeros_like(depth)
    previous_beta = previous_mu = 0.0
    for name, edge, width in layers:
        beta, mu = TISSUE_OPTICS[name]
        step = np.ones_like(depth) if width == 0.0 else _soft_step(depth, edge, width)
        backscatter += (beta - previous_beta) * step
        attenuation += (mu - previous_mu) * step
        previous_beta, previous_mu = beta, mu
    texture = ndimage.gaussian_filter(rng.normal(size=depth.shape), sigma=(2.0, 0.06 / dr), mode="wrap")
    backscatter *= np.exp(0.35 * texture / max(texture.std(), 1e-6))  # heterogeneous tissue

    labels = np.where(in_tissue, 0, _LUMEN).astype(np.uint8)
    if params.lipid is not None:
        _add_lipid_pool(params.lipid, theta, depth, backscatter, attenuation, labels)
    calcium = np.zeros(depth.shape, dtype=bool)
    if params.calcium is not None:
        calcium = _calcium_region(params.calcium, theta, depth)
        backscatter[calcium], attenuation[calcium] = TISSUE_OPTICS["calcium"]
    for vessel in params.vasa_vasorum:
        _add_vasa_vasorum(vessel, theta, radius, surface, backscatter, attenuation, labels)

    # Lumen, catheter fluid and sheath.
    flush_beta, flush_mu = TISSUE_OPTICS["flush"]
    fluid_beta, fluid_mu = TISSUE_OPTICS["catheter_fluid"]
    in_catheter = np.broadcast_to(r < CATHETER_RADIUS_MM, depth.shape)
    lumen_beta = np.where(in_catheter, fluid_beta, flush_beta)
    backscatter = np.where(in_tissue, backscatter, lumen_beta)
    attenuation = np.where(in_tissue, attenuation, np.where(in_catheter, fluid_mu, flush_mu))
    backscatter = backscatter + _catheter_reflections(radius)[None, :]

    # Single scattering with round-trip attenuation; the guidewire reflects and casts a signal-free shadow.
    transmission = np.exp(-2.0 * np.cumsum(attenuation, axis=1) * dr)
    signal = backscatter * transmission
    signal = _add_guidewire(params, theta, radius, surface, signal)

    speckle = _speckle(rng, signal.shape, grain=(0.5, max(AXIAL_RESOLUTION_MM / dr, 0.5)))
    noise = NOISE_FLOOR * rng.gamma(4.0, 0.25, size=signal.shape)  # detection noise, averaged over a few samples
    decibels = 10.0 * np.log10(signal * speckle + noise)
    low, high = DYNAMIC_RANGE_DB
    display = np.clip((decibels - low) / (high - low), 0.0, 1.0).astype(np.float32)
    return PolarFrame(display=display, labels=labels, calcium=calcium, radius_mm=radius)


def _speckle(rng: np.random.Generator, shape: tuple[int, int], grain: tuple[float, float]) -> np.ndarray:
    """Fully developed speckle with mean 1: squared magnitude of random phasors blurred by the point-spread function."""
    real, imaginary = (ndimage.gaussian_filter(rng.normal(size=shape), sigma=grain, mode="wrap") for _ in range(2))
    intensity = real**2 + imaginary**2
    return intensity / intensity.mean()


def _sector_weight(theta: np.ndarray, centre: float, width: float, edge: float) -> np.ndarray:
    """``(A, 1)`` soft membership of each A-line in a sector; ``edge`` is the angular width of the soft border."""
    inside = width / 2 - np.abs(_angle_difference(theta, centre))
    return expit(inside / edge)[:, None]


def _add_lipid_pool(
    lipid: LipidPool,
    theta: np.ndarray,
    depth: np.ndarray,
    backscatter: np.ndarray,
    attenuation: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Blend a bright fibrous cap and a highly attenuating lipid pool into the optics; label both (in place)."""
    offset = _angle_difference(theta, lipid.centre_angle)[:, None]
    in_sector = np.abs(offset) < lipid.arc_width / 2
    profile = np.sqrt(np.clip(1.0 - (2.0 * offset / lipid.arc_width) ** 2, 0.0, 1.0))  # rounded sector ends
    cap_end = lipid.cap_thickness * (0.8 + 0.2 * profile)
    lipid_end = cap_end + lipid.depth * np.maximum(profile, 0.25)
    sector = _sector_weight(theta, lipid.centre_angle, lipid.arc_width, edge=0.05)
    cap_weight = sector * _soft_step(depth, 0.0, 0.005) * (1.0 - _soft_step(depth, cap_end, 0.02))
    lipid_weight = sector * _soft_step(depth, cap_end, 0.03) * (1.0 - _soft_step(depth, lipid_end, 0.08))
    for weight, name in ((cap_weight, "fibrous_cap"), (lipid_weight, "lipid")):
        beta, mu = TISSUE_OPTICS[name]
        backscatter += weight * (beta - backscatter)
        attenuation += weight * (mu - attenuation)
    labels[in_sector & (depth >= 0) & (depth < cap_end)] = _CAP
    labels[in_sector & (depth >= cap_end) & (depth < lipid_end)] = _LIPID


def _calcium_region(calcium: CalciumPlate, theta: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``(A, S)`` bool: a crescent with sharp borders inside the wall."""
    offset = _angle_difference(theta, calcium.centre_angle)[:, None]
    profile = np.sqrt(np.clip(1.0 - (2.0 * offset / calcium.arc_width) ** 2, 0.0, 1.0))
    inner = calcium.depth_start + 0.5 * calcium.thickness * (1.0 - profile)
    outer = calcium.depth_start + calcium.thickness * (0.5 + 0.5 * profile)
    return (profile > 0) & (depth >= inner) & (depth < outer)


def _add_vasa_vasorum(
    vessel: VasaVasorum,
    theta: np.ndarray,
    radius: np.ndarray,
    surface: np.ndarray,
    backscatter: np.ndarray,
    attenuation: np.ndarray,
    labels: np.ndarray,
) -> None:
    """Carve a small signal-free disc into the wall and label it (in place)."""
    index = int(np.argmin(np.abs(_angle_difference(theta, vessel.angle))))
    centre_radius = surface[index] + vessel.depth
    cx, cy = centre_radius * np.cos(vessel.angle), centre_radius * np.sin(vessel.angle)
    x = radius[None, :] * np.cos(theta)[:, None]
    y = radius[None, :] * np.sin(theta)[:, None]
    inside = np.hypot(x - cx, y - cy) < vessel.radius
    backscatter[inside], attenuation[inside] = TISSUE_OPTICS["vasa_vasorum"]
    labels[inside & (labels == 0)] = _VASA


def _catheter_reflections(radius: np.ndarray) -> np.ndarray:
    """``(S,)`` backscatter of the catheter optics and sheath: thin bright concentric rings near the centre."""
    width = max(0.008, float(radius[1] - radius[0]))  # never thinner than a depth sample
    rings = np.zeros_like(radius)
    for ring_radius, strength in ((0.12, 0.01), (0.22, 0.008), (0.33, 0.02), (0.46, 0.06), (CATHETER_RADIUS_MM, 0.15)):
        rings += strength * 0.008 / width * np.exp(-0.5 * ((radius - ring_radius) / width) ** 2)
    rings[radius < 0.04] = 0.0  # the fibre itself: no signal at the very centre
    return rings


def _add_guidewire(
    params: OCTFrameParams, theta: np.ndarray, radius: np.ndarray, surface: np.ndarray, signal: np.ndarray
) -> np.ndarray:
    """Bright reflection off the guidewire's front surface, and no signal at all behind it (its shadow)."""
    index = int(np.argmin(np.abs(_angle_difference(theta, params.guidewire_angle))))
    inner = CATHETER_RADIUS_MM + GUIDEWIRE_RADIUS_MM + 0.02
    outer = max(surface[index] - GUIDEWIRE_RADIUS_MM - 0.02, inner)
    distance = inner + params.guidewire_position * (outer - inner)
    lateral = distance * np.sin(_angle_difference(theta, params.guidewire_angle))
    hit = (np.abs(lateral) < GUIDEWIRE_RADIUS_MM) & (np.cos(_angle_difference(theta, params.guidewire_angle)) > 0)
    front = distance * np.cos(_angle_difference(theta, params.guidewire_angle)) - np.sqrt(
        np.clip(GUIDEWIRE_RADIUS_MM**2 - lateral**2, 0.0, None)
    )
    front = np.where(hit, front, np.inf)[:, None]  # (A, 1)
    reflection = 3.0 * np.exp(-0.5 * ((radius[None, :] - front - 0.03) / 0.025) ** 2)
    shadow = _soft_step(radius[None, :], front + 0.06, 0.01)
    return (signal + reflection) * (1.0 - shadow)


# ----------------------------------------------------------------------------------------------------------------
# Scan conversion and colour
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _polar_coordinates(size: int, num_alines: int, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """For each Cartesian pixel: its fractional (A-line, sample) index ``(2, size, size)``, and the FOV weight."""
    centre = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    radius_px = np.hypot(y - centre, x - centre)
    angle = np.mod(np.arctan2(y - centre, x - centre), 2.0 * np.pi)
    rows = angle / (2.0 * np.pi) * num_alines
    columns = radius_px / (size / 2.0) * num_samples - 0.5
    fov = np.clip(size / 2.0 - radius_px, 0.0, 1.0)  # circle crop with a one-pixel anti-aliased edge
    return np.stack([rows, columns]).astype(np.float32), fov.astype(np.float32)


def scan_convert(polar: np.ndarray, size: int, *, order: int = 1) -> np.ndarray:
    """Map a polar frame ``(A, S)`` (rows = angle clockwise from 3 o'clock, columns = depth) to ``(size, size)``.

    The last column reaches the edge of the circular field of view; pixels outside it are 0. Use ``order=0``
    for label maps (nearest neighbour) and ``order=1`` for intensities (bilinear).
    """
    if polar.ndim != 2:
        raise ValueError(f"polar frame must be (A, S), got shape {polar.shape}")
    coordinates, fov = _polar_coordinates(size, polar.shape[0], polar.shape[1])
    wrapped = np.concatenate([polar, polar[:1]], axis=0)  # row A is row 0 again: interpolate across 360 degrees
    cartesian = ndimage.map_coordinates(wrapped, coordinates, order=order, mode="nearest", prefilter=False)
    if order == 0:
        return np.where(fov > 0.5, cartesian, 0).astype(polar.dtype)
    return (cartesian * fov).astype(polar.dtype)


@lru_cache(maxsize=8)
def _cartesian_coordinates(size: tuple[int, int], num_alines: int, num_samples: int) -> np.ndarray:
    """For each polar pixel (A-line, sample): its fractional Cartesian (row, column) ``(2, A, S)``, the inverse of
    :func:`_polar_coordinates` (sample ``s`` at radius ``(s + 0.5) / S`` of the inscribed circle)."""
    height, width = size
    angle = np.arange(num_alines, dtype=np.float64)[:, None] / num_alines * 2.0 * np.pi
    radius_px = (np.arange(num_samples, dtype=np.float64)[None, :] + 0.5) / num_samples * (min(height, width) / 2.0)
    rows = (height - 1) / 2.0 + radius_px * np.sin(angle)
    columns = (width - 1) / 2.0 + radius_px * np.cos(angle)
    return np.stack([rows, columns]).astype(np.float32)


def polar_transform(cartesian: np.ndarray, num_alines: int, num_samples: int, *, order: int = 1) -> np.ndarray:
    """The inverse of :func:`scan_convert`: a Cartesian frame ``(H, W)`` or ``(H, W, C)`` with the catheter in its
    centre -> polar ``(A, S)`` or ``(A, S, C)`` (rows = angle clockwise from 3 o'clock, columns = depth out to the
    inscribed circle). ``order=0`` for label maps (nearest neighbour), ``order=1`` for intensities (bilinear)."""
    cartesian = np.asarray(cartesian)
    if cartesian.ndim not in (2, 3):
        raise ValueError(f"Cartesian frame must be (H, W) or (H, W, C), got shape {cartesian.shape}")
    coordinates = _cartesian_coordinates(cartesian.shape[:2], num_alines, num_samples)
    channels = cartesian[..., None] if cartesian.ndim == 2 else cartesian
    polar = np.stack([ndimage.map_coordinates(channels[..., c], coordinates, order=order, mode="nearest",
                                              prefilter=False) for c in range(channels.shape[-1])], axis=-1)
    return (polar[..., 0] if cartesian.ndim == 2 else polar).astype(cartesian.dtype)


@lru_cache(maxsize=1)
def _colour_table() -> np.ndarray:
    levels = np.arange(256, dtype=np.float64)
    table = np.stack([levels] + [np.interp(levels, _LUT_POINTS[:, 0], _LUT_POINTS[:, c]) for c in (1, 2)], axis=1)
    return np.round(table).astype(np.uint8)


def apply_oct_colormap(display: np.ndarray) -> np.ndarray:
    """Colour display values in [0, 1] ``(H, W)`` with the sample's orange table -> ``(H, W, 3)`` uint8."""
    indices = np.round(np.clip(display, 0.0, 1.0) * 255).astype(np.uint8)
    return _colour_table()[indices]


def labels_to_channels(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` label ids -> ``(H, W, 4)`` uint8 0/255 channels in :data:`OCT_CLASSES` order (the dataset's TIFF)."""
    return np.stack([(labels == _LABEL_OF_CHANNEL[name]) for name in OCT_CLASSES], axis=-1).astype(np.uint8) * 255


def render_frame(params: OCTFrameParams, rng: np.random.Generator, size: int = 750) -> SyntheticOCTFrame:
    """Simulate ``params`` and scan-convert to a ``(size, size)`` RGB frame and its 4-channel mask."""
    if size < 32:
        raise ConfigError(f"size must be >= 32 pixels, got {size}")
    polar = simulate_polar_frame(params, rng, num_samples=max(size // 2, 64))
    image = apply_oct_colormap(scan_convert(polar.display, size, order=1))
    mask = labels_to_channels(scan_convert(polar.labels, size, order=0))
    return SyntheticOCTFrame(image=image, mask=mask, polar=polar, params=params)


def generate_oct_frame(
    seed: int, size: int = 750, *, lipid: bool = True, calcium: bool | None = None
) -> SyntheticOCTFrame:
    """One independent frame from a seed (anatomy and speckle both follow from it)."""
    rng = np.random.default_rng(seed)
    return render_frame(sample_frame_params(rng, lipid=lipid, calcium=calcium), rng, size)


# ----------------------------------------------------------------------------------------------------------------
# Dataset writer
# ----------------------------------------------------------------------------------------------------------------

_MANIFEST_FILE = "manifest.csv"
_WRITER = f"{__name__}.write_oct_dataset"


def generator_settings(config: OCTConfig) -> dict[str, int | str]:
    """The keyword arguments of :func:`write_oct_dataset` that ``config`` determines (what ``ensure`` passes)."""
    return {"num_patients": int(config.num_patients), "frames_per_patient": int(config.frames_per_patient),
            "seed": int(config.seed)}


def dataset_digest(config: OCTConfig) -> str:
    """8 hex digits naming the dataset ``config`` generates (its settings and :data:`GENERATOR_VERSION`)."""
    return settings_digest(_WRITER, GENERATOR_VERSION, _settings(**generator_settings(config)))


def _settings(*, num_patients: int, frames_per_patient: int, seed: int, size: int = 750,
              layout: str = "flat", num_folds: int = 5, frame_step: int = 3) -> dict[str, int | str | None]:
    """The recorded parameters of :func:`write_oct_dataset` (``num_folds`` only counts for the fold layout)."""
    return {"num_patients": int(num_patients), "frames_per_patient": int(frames_per_patient), "seed": int(seed),
            "size": int(size), "layout": layout, "num_folds": int(num_folds) if layout == "folds" else None,
            "frame_step": int(frame_step)}


def write_oct_dataset(
    root: str | Path,
    *,
    num_patients: int,
    frames_per_patient: int,
    seed: int,
    size: int = 750,
    layout: Literal["flat", "folds"] = "flat",
    overwrite: bool = False,
    num_folds: int = 5,
    frame_step: int = 3,
) -> pd.DataFrame:
    """Write a synthetic pullback per patient in the real dataset's layout; reuse it if already written.

    Frames are named ``{patient:03d}_1_{frame:03d}`` with frames ``1, 1 + frame_step, ...`` (the sample keeps
    every third frame). ``layout="flat"`` writes ``img/`` and ``mask/``; ``layout="folds"`` writes
    ``fold_k/{train,test}/{img,mask}`` for ``k = 1..num_folds``, each patient in exactly one test fold.
    Patient ``p`` uses random streams derived from ``(seed, p)`` only, so adding patients leaves the others unchanged.

    The folder is written through :class:`~medseg_core.data.cache.DatasetWriter`: the stamp
    ``medseg_dataset.json`` (parameters, :data:`GENERATOR_VERSION`, files with sizes and SHA-256) comes last; a
    partial output of an interrupted run is redone, and files this function did not write are never touched.

    Args:
        root: output folder. A call with the same parameters on a complete, intact dataset returns its manifest
            without writing.
        num_patients, frames_per_patient: dataset size.
        seed: base seed.
        size: frame size in pixels (750 like the real data; smaller sizes are faster for tests).
        layout: ``"flat"`` or ``"folds"``.
        overwrite: replace a complete dataset written with other parameters (or with missing or changed files);
            only the files its stamp lists are deleted.
        num_folds: folds of the ``"folds"`` layout.
        frame_step: frame-number step between written frames.

    Returns:
        The manifest (also written as ``manifest.csv``), one row per frame: ``id, patient, pullback, frame, fold``
        (its test fold, ``<NA>`` for the flat layout), ``image_path, mask_path`` (relative to ``root``; for folds,
        the copy in its test fold), ``has_lipid, has_calcium`` and ``<class>_fraction`` for each of
        :data:`OCT_CLASSES`.

    Raises:
        DataError: ``root`` holds data this function did not write, or a dataset with other parameters (or a
            damaged one) and ``overwrite`` is False.
    """
    if num_patients < 1 or num_patients > 999 or frames_per_patient < 1:
        raise ConfigError(f"need 1..999 patients and >= 1 frame each, got {num_patients} x {frames_per_patient}")
    if layout not in ("flat", "folds"):
        raise ConfigError(f"layout must be 'flat' or 'folds', got {layout!r}")
    if layout == "folds" and not 2 <= num_folds <= num_patients:
        raise ConfigError(f"num_folds must be in 2..num_patients ({num_patients}) for the folds layout, got {num_folds}")
    if seed < 0 or frame_step < 1 or size < 32:
        raise ConfigError(f"seed must be >= 0, frame_step >= 1 and size >= 32; got {seed}, {frame_step}, {size}")
    root = Path(root)
    settings = _settings(num_patients=num_patients, frames_per_patient=frames_per_patient, seed=seed, size=size,
                         layout=layout, num_folds=num_folds, frame_step=frame_step)
    outputs = ("img", "mask", _MANIFEST_FILE, *(f"fold_{k}" for k in range(1, num_folds + 1)))
    with DatasetWriter(root, writer=_WRITER, version=GENERATOR_VERSION, settings=settings,
                       outputs=outputs) as output:
        if output.reuse(overwrite):
            return pd.read_csv(root / _MANIFEST_FILE, dtype={"id": str, "patient": str}).astype({"fold": "Int64"})
        test_fold = _assign_folds(num_patients, num_folds, seed) if layout == "folds" else {}
        rows = []
        for patient in range(1, num_patients + 1):
            patient_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(patient,)))
            pullback = sample_pullback_params(patient_rng, frames_per_patient)
            for index, params in enumerate(pullback):
                frame_number = 1 + index * frame_step
                frame_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(patient, frame_number)))
                frame = render_frame(params, frame_rng, size)
                frame_id = f"{patient:03d}_1_{frame_number:03d}"
                fold = test_fold.get(patient)
                folders = [""] if fold is None else [f"fold_{fold}/test"] + [
                    f"fold_{k}/train" for k in range(1, num_folds + 1) if k != fold
                ]
                image_path, mask_path = _write_frame(frame, frame_id, folders, output)
                fractions = {
                    f"{name}_fraction": float((frame.mask[..., c] > 0).mean()) for c, name in enumerate(OCT_CLASSES)
                }
                rows.append(
                    {
                        "id": frame_id, "patient": f"{patient:03d}", "pullback": 1, "frame": frame_number,
                        "fold": fold, "image_path": image_path, "mask_path": mask_path,
                        "has_lipid": params.lipid is not None, "has_calcium": params.calcium is not None,
                        **fractions,
                    }
                )
        manifest = pd.DataFrame(rows).astype({"fold": "Int64"})
        manifest.to_csv(output.claim(_MANIFEST_FILE), index=False)
        output.finish()
    return manifest


def _assign_folds(num_patients: int, num_folds: int, seed: int) -> dict[int, int]:
    """Patient number -> its test fold (1-based), a seeded permutation split into near-equal folds."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    order = rng.permutation(np.arange(1, num_patients + 1))
    return {int(p): k + 1 for k, group in enumerate(np.array_split(order, num_folds)) for p in group}


def _write_frame(frame: SyntheticOCTFrame, frame_id: str, folders: list[str],
                 output: DatasetWriter) -> tuple[str, str]:
    """Write the PNG and TIFF into the first folder and copy them into the others; returns the first paths.

    ``folders`` are relative to the dataset root (``""`` for the root itself); paths are returned the same way.
    """
    prefix = f"{folders[0]}/" if folders[0] else ""
    image_rel, mask_rel = f"{prefix}img/{frame_id}.png", f"{prefix}mask/{frame_id}.tiff"
    image_path = output.claim(image_rel)
    Image.fromarray(frame.image).save(image_path, compress_level=1)
    mask_path = output.claim(mask_rel)
    write_oct_mask(mask_path, frame.mask)
    for folder in folders[1:]:
        for source in (image_path, mask_path):
            shutil.copyfile(source, output.claim(f"{folder}/{source.parent.name}/{source.name}"))
    return image_rel, mask_rel


def ensure_oct_dataset(config: OCTConfig, root: str | Path, *, overwrite: bool = False) -> Path:
    """Write (or reuse) the synthetic OCT dataset a profile asks for, in the real flat layout; returns ``root``.

    Frames are written at the real dataset's 750 x 750; loaders resize them to ``config.image_size``. ``root``
    is normally ``get_task("oct").data_dir(profile)``, whose name carries :func:`dataset_digest`, so other generator
    settings get another folder and never replace this one.
    """
    write_oct_dataset(root, **generator_settings(config), overwrite=overwrite)
    return Path(root)
