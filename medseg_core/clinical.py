"""Clinical read-outs from segmentation masks, as a cardiologist reads them: teaching measurements, not for diagnostic use.

* :func:`polar_lipid_arc_degrees`: the lipid arc of an OCT frame from its polar lipid mask (rows are A-lines).
* :func:`lipid_arc_degrees`: the same arc from a Cartesian lipid mask, around the lumen (or image) centre.
* :func:`min_cap_thickness`: the thinnest tissue between lumen and lipid along rays from the centre, in mm (the
  fibrous-cap thickness proxy: a thin-cap fibroatheroma is commonly lipid over more than 90 degrees under a cap
  thinner than 65 µm).
* :func:`vessel_diameter_profile`: the vessel diameter at every centreline pixel of an XCA mask, with its summary
  (widths from :func:`medseg_core.data.morphology.centreline_widths`, their one home).

All of them measure synthetic teaching frames or a model's predictions; none is validated against clinical
measurements. Not for diagnostic use.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from medseg_core.data.morphology import centreline_widths

__all__ = ["polar_lipid_arc_degrees", "lipid_arc_degrees", "min_cap_thickness", "vessel_diameter_profile"]

_ANGLE_BINS = 3600  # 0.1 degree: the angular resolution of the Cartesian arc
_RAY_ANGLES = 720  # rays of the cap-thickness search (0.5 degree apart)
_RAY_STEP_PX = 0.25  # radial sampling step along each ray


def _binary(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be 2D (H, W), got shape {mask.shape}")
    return mask.astype(bool)


def polar_lipid_arc_degrees(polar_mask: np.ndarray) -> float:
    """Lipid arc (degrees) of one OCT frame from its polar lipid mask. Not for diagnostic use.

    Args:
        polar_mask: ``(A, S)`` lipid mask in the polar view: rows are the ``A`` A-lines over 360 degrees, columns depth.

    Returns:
        ``360 x (A-lines holding any lipid) / A``: counting lines, not spanning first to last, so a pool across 0
        degrees (first and last rows) is measured right. 0 without lipid.
    """
    lipid_lines = _binary(polar_mask, "polar_mask").any(axis=1)
    return 360.0 * lipid_lines.sum() / len(lipid_lines)


def _centre(shape: tuple[int, int], centre: tuple[float, float] | None, lumen_mask: np.ndarray | None
            ) -> tuple[float, float]:
    """``(row, col)``: ``centre`` if given, else the lumen centroid if a lumen mask is given, else the image centre."""
    if centre is not None:
        return float(centre[0]), float(centre[1])
    if lumen_mask is not None:
        lumen = _binary(lumen_mask, "lumen_mask")
        if lumen.shape != shape:
            raise ValueError(f"lumen_mask has shape {lumen.shape}, the lipid mask {shape}")
        if not lumen.any():
            raise ValueError("lumen_mask is empty: no lumen centre to measure around")
        row, col = ndimage.center_of_mass(lumen)
        return float(row), float(col)
    return (shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0


def lipid_arc_degrees(mask: np.ndarray, centre: tuple[float, float] | None = None, *,
                      lumen_mask: np.ndarray | None = None) -> float:
    """Angular extent (degrees) of the lipid in a Cartesian OCT mask around the lumen centre. Not for diagnostic use.

    Each lipid pixel covers the angles of its width seen from the centre (``± 0.5 px / radius``); the covered angles
    are binned into 0.1-degree "A-lines" and measured by :func:`polar_lipid_arc_degrees`, so arcs across 0/360 degrees
    and several pools are counted by the angles they cover. A pixel's width adds up to ``1 / radius`` rad at the ends.

    Args:
        mask: ``(H, W)`` lipid mask, bool or {0, 1} (e.g. ``labels == lipid_index``).
        centre: ``(row, col)`` to measure around; default: the centroid of ``lumen_mask``, else the image centre
            (the catheter centre of the kit's synthetic frames).
        lumen_mask: ``(H, W)`` lumen mask, used only for the default centre.

    Returns:
        The arc in degrees, 0 without lipid.
    """
    lipid = _binary(mask, "mask")
    row0, col0 = _centre(lipid.shape, centre, lumen_mask)
    rows, cols = np.nonzero(lipid)
    radius = np.hypot(rows - row0, cols - col0)
    angle = np.mod(np.arctan2(rows - row0, cols - col0), 2.0 * np.pi)
    half_width = np.minimum(0.5 / np.maximum(radius, 1e-9), np.pi)
    bins_per_rad = _ANGLE_BINS / (2.0 * np.pi)
    first = np.floor((angle - half_width) * bins_per_rad).astype(np.int64) + _ANGLE_BINS  # in [0, 3 x bins)
    last = np.ceil((angle + half_width) * bins_per_rad).astype(np.int64) + _ANGLE_BINS
    change = np.zeros(3 * _ANGLE_BINS + 1, dtype=np.int64)
    np.add.at(change, first, 1)
    np.add.at(change, last, -1)
    covered = np.cumsum(change[:-1]).reshape(3, _ANGLE_BINS) > 0
    return polar_lipid_arc_degrees(covered.any(axis=0)[:, None])


def min_cap_thickness(lipid_mask: np.ndarray, lumen_mask: np.ndarray, pixel_mm: float,
                      centre: tuple[float, float] | None = None) -> float:
    """Minimal distance (mm) from lumen to lipid along rays from the centre: the fibrous-cap thickness proxy.

    On each of 720 rays from the centre (the lumen centroid by default) the cap is the stretch between the outermost
    lumen sample and the first lipid sample beyond it (samples every 0.25 px, nearest pixel); the read-out is its
    smallest length over the rays that meet lipid. Accurate to about one pixel. Not for diagnostic use.

    Args:
        lipid_mask: ``(H, W)`` lipid mask, bool or {0, 1}.
        lumen_mask: ``(H, W)`` lumen mask of the same frame (the kit's OCT masks: channel ``lumen``).
        pixel_mm: pixel size in mm (e.g. ``2 x FOV_RADIUS_MM / size`` for the synthetic frames).
        centre: ``(row, col)`` of the rays' origin; default: the lumen centroid.

    Returns:
        The thickness in mm; NaN when no ray meets lipid.

    Raises:
        ValueError: masks not 2D or of different shapes, an empty lumen, or ``pixel_mm <= 0``.
    """
    lipid = _binary(lipid_mask, "lipid_mask")
    lumen = _binary(lumen_mask, "lumen_mask")
    if lumen.shape != lipid.shape:
        raise ValueError(f"lumen_mask has shape {lumen.shape}, lipid_mask {lipid.shape}")
    if not pixel_mm > 0:
        raise ValueError(f"pixel_mm must be positive, got {pixel_mm}")
    if not lipid.any():
        return math.nan
    row0, col0 = _centre(lipid.shape, centre, lumen)
    angles = np.linspace(0.0, 2.0 * np.pi, _RAY_ANGLES, endpoint=False)[:, None]
    radii = np.arange(0.0, float(np.hypot(*lipid.shape)), _RAY_STEP_PX)[None, :]
    coordinates = np.stack([row0 + radii * np.sin(angles), col0 + radii * np.cos(angles)])  # (2, rays, samples)
    lipid_on_ray = ndimage.map_coordinates(lipid.astype(np.uint8), coordinates, order=0, cval=0) > 0
    lumen_on_ray = ndimage.map_coordinates(lumen.astype(np.uint8), coordinates, order=0, cval=0) > 0
    samples = radii.shape[1]
    lumen_end = np.where(lumen_on_ray.any(axis=1),
                         samples - 1 - np.argmax(lumen_on_ray[:, ::-1], axis=1), -1)  # last lumen sample per ray
    beyond = lipid_on_ray & (np.arange(samples)[None, :] > lumen_end[:, None])
    meets = beyond.any(axis=1)
    if not meets.any():
        return math.nan
    gap_samples = np.argmax(beyond, axis=1)[meets] - np.maximum(lumen_end[meets], 0)
    return float(gap_samples.min() * _RAY_STEP_PX * pixel_mm)


def vessel_diameter_profile(mask: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Vessel diameter (px) along the centreline of an XCA vessel mask, with its summary. Not for diagnostic use.

    Args:
        mask: ``(H, W)`` vessel mask, bool or {0, 1}.

    Returns:
        ``(diameters, summary)``: float ``(K,)`` diameters ``2 x distance transform`` at the ``K`` skeleton pixels
        (:func:`medseg_core.data.morphology.centreline_widths`; a bar of even width w gives w) and
        ``{"median", "p5", "p95", "centreline_px"}`` (NaN diameters for an empty mask). A narrowing shows as a dip
        of the profile below its median; pixels become mm only with a calibration (e.g. the catheter's width).
    """
    _, diameters = centreline_widths(mask)
    empty = diameters.size == 0
    summary = {
        "median": math.nan if empty else float(np.median(diameters)),
        "p5": math.nan if empty else float(np.percentile(diameters, 5)),
        "p95": math.nan if empty else float(np.percentile(diameters, 95)),
        "centreline_px": float(diameters.size),
    }
    return diameters, summary
