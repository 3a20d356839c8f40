"""Morphology of binary vessel masks, to judge how coronary-like synthetic XCA masks are against real ones.

This module owns the statistics of one vessel mask (:func:`vessel_morphology`), their table over many masks
(:func:`morphology_table`), the reference range of the real expert masks (:func:`reference_range`,
:func:`fraction_inside`) and the loader of those masks (:func:`load_real_xca_masks`). Definitions, all in pixels of
the mask's own frame (the real masks are 512 x 512; statistics in pixels are only comparable at equal frame size):

* ``vessel_fraction``: vessel pixels / frame pixels.
* ``median_width``, ``p90_width``: median and 90th percentile over the centreline pixels of the local width
  ``2 x (Euclidean distance to the nearest background pixel)``.
* ``centreline_length``: number of skeleton pixels (``skimage.morphology.skeletonize``).
* ``branch_points``: skeleton pixels with three or more skeleton pixels among their 8 neighbours.
* ``tortuosity``: the skeleton is cut at its branch-point pixels into segments (8-connected); for each segment of
  at least ``min_segment_length`` px, path length ``L`` (Kulpa's chain-code estimate: 0.948 per orthogonal and
  1.343 per diagonal step, within about 3 % of the true length at any orientation) over chord ``C`` (straight
  distance between its two ends); reported as the length-weighted mean of ``L / C``: about 1 (0.95-1.03) for a
  straight vessel, 1.57 for a half circle. Closed loops (no ends) are left out.
* ``hull_fraction``: area of the convex hull of the vessel pixels / frame pixels: how much of the frame the tree's
  territory spans (a frame-spanning net is near 1, a compact tree much less).
* ``components``: connected components of the vessel pixels (4-connectivity).

The first six and ``components`` follow the definitions of the README of ``data/real/xca_real_masks`` (shipped with the kit), and
reproduce the percentiles it lists.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.morphology import convex_hull_image, skeletonize

from medseg_core.config import real_data_path
from medseg_core.data.io import DataError

__all__ = [
    "STATISTICS",
    "REAL_XCA_MASKS_FILE",
    "centreline_widths",
    "vessel_morphology",
    "morphology_table",
    "reference_range",
    "fraction_inside",
    "load_real_xca_masks",
]

STATISTICS = (
    "vessel_fraction",
    "median_width",
    "p90_width",
    "centreline_length",
    "branch_points",
    "tortuosity",
    "hull_fraction",
    "components",
)
"""Names of the statistics :func:`vessel_morphology` returns, in order."""

REAL_XCA_MASKS_FILE = "svsnet_test1_gt_masks.npz"
_EIGHT_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]])
_ORTHOGONAL_STEP, _DIAGONAL_STEP = 0.948, 1.343  # Kulpa (1977) length of a chain-code step


def _segment_tortuosity(skeleton: np.ndarray, branch: np.ndarray, min_segment_length: float) -> float:
    """Length-weighted mean of path length / chord over the skeleton's segments between junctions and ends."""
    segments = skeleton & ~branch
    labels, count = ndimage.label(segments, structure=np.ones((3, 3)))
    if count == 0:
        return math.nan
    # Path length: Kulpa's chain-code estimator, 0.948 per orthogonal step and 1.343 per diagonal step (a diagonal
    # pair already joined through an orthogonal corner is not counted twice); unbiased over orientations.
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    length = np.zeros(count + 1)
    for d_row, d_col in ((0, 1), (1, 0)):
        other = padded[1 + d_row : padded.shape[0] - 1 + d_row, 1 + d_col : padded.shape[1] - 1 + d_col]
        joined = (centre > 0) & (other == centre)
        length += _ORTHOGONAL_STEP * np.bincount(centre[joined], minlength=count + 1)
    for d_col in (1, -1):
        other = padded[2:, 1 + d_col : padded.shape[1] - 1 + d_col]
        below = padded[2:, 1:-1]
        beside = padded[1:-1, 1 + d_col : padded.shape[1] - 1 + d_col]
        joined = (centre > 0) & (other == centre) & (below != centre) & (beside != centre)
        length += _DIAGONAL_STEP * np.bincount(centre[joined], minlength=count + 1)
    # Chord: distance between the segment's two ends (pixels with one neighbour in the segment).
    neighbours = ndimage.convolve(segments.astype(np.int64), _EIGHT_NEIGHBOURS, mode="constant")
    ends = segments & (neighbours == 1)
    end_labels = labels[ends]
    ends_per_segment = np.bincount(end_labels, minlength=count + 1)
    two_ended = ends_per_segment[end_labels] == 2
    order = np.argsort(end_labels[two_ended], kind="stable")
    coordinates = np.argwhere(ends)[two_ended][order].reshape(-1, 2, 2).astype(np.float64)
    segment_ids = end_labels[two_ended][order][::2]
    chord = np.linalg.norm(coordinates[:, 0] - coordinates[:, 1], axis=1)
    path = length[segment_ids]
    keep = (path >= min_segment_length) & (chord > 0)
    if not keep.any():
        return math.nan
    ratio = path[keep] / chord[keep]
    return float(np.sum(path[keep] * ratio) / np.sum(path[keep]))


def _check_2d(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D (H, W), got shape {mask.shape}")
    return mask.astype(bool)


def centreline_widths(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The skeleton of a binary vessel mask and the local width at each of its pixels (the one home of widths).

    Args:
        mask: ``(H, W)`` vessel mask, bool or {0, 1}.

    Returns:
        ``(skeleton, widths)``: bool ``(H, W)`` skeleton and float ``(K,)`` widths ``2 x (Euclidean distance to the
        nearest background pixel centre)`` at its ``K`` pixels in row-major order (a bar of even width w gives w,
        of odd width w + 1).
    """
    mask = _check_2d(mask)
    skeleton = skeletonize(mask)
    return skeleton, 2.0 * ndimage.distance_transform_edt(mask)[skeleton]


def vessel_morphology(mask: np.ndarray, *, min_segment_length: float = 10.0) -> dict[str, float]:
    """Morphology statistics of one binary vessel mask (definitions in the module docstring).

    Args:
        mask: ``(H, W)`` vessel mask, bool or {0, 1}.
        min_segment_length: skeleton segments shorter than this (pixels) do not enter the tortuosity.

    Returns:
        ``{name: value}`` for every name in :data:`STATISTICS`; widths and tortuosity are NaN for an empty mask.
    """
    mask = _check_2d(mask)
    skeleton, widths = centreline_widths(mask)
    neighbours = ndimage.convolve(skeleton.astype(np.int64), _EIGHT_NEIGHBOURS, mode="constant")
    branch = skeleton & (neighbours >= 3)
    empty = not mask.any()
    return {
        "vessel_fraction": float(mask.mean()),
        "median_width": math.nan if empty else float(np.median(widths)),
        "p90_width": math.nan if empty else float(np.percentile(widths, 90)),
        "centreline_length": float(skeleton.sum()),
        "branch_points": float(branch.sum()),
        "tortuosity": _segment_tortuosity(skeleton, branch, min_segment_length),
        "hull_fraction": 0.0 if empty else float(convex_hull_image(mask).mean()),
        "components": float(ndimage.label(mask)[1]),
    }


def morphology_table(masks: Iterable[np.ndarray] | np.ndarray) -> pd.DataFrame:
    """:func:`vessel_morphology` of every mask ``(H, W)`` in ``masks`` (e.g. an array ``(N, H, W)``), one row each."""
    return pd.DataFrame([vessel_morphology(mask) for mask in masks], columns=list(STATISTICS))


def reference_range(table: pd.DataFrame, low: float = 5.0, high: float = 95.0) -> pd.DataFrame:
    """Percentiles ``low``, 50 and ``high`` of every column of a :func:`morphology_table`: rows are statistics."""
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low} and {high}")
    quantiles = table.quantile([low / 100.0, 0.5, high / 100.0]).T
    quantiles.columns = [f"p{low:g}", "median", f"p{high:g}"]
    return quantiles


def fraction_inside(table: pd.DataFrame, reference: pd.DataFrame) -> pd.Series:
    """Fraction of the rows of ``table`` inside each statistic's ``[first, last]`` column of ``reference``.

    ``reference`` is a :func:`reference_range` (its first and last columns are the low and high percentiles).
    """
    low, high = reference.iloc[:, 0], reference.iloc[:, -1]
    columns = list(reference.index)
    inside = (table[columns] >= low) & (table[columns] <= high)
    return inside.mean()


def load_real_xca_masks(path: str | Path | None = None) -> np.ndarray:
    """The 30 real expert XCA vessel masks, bool ``(30, 512, 512)``.

    Args:
        path: the ``xca_real_masks`` folder or its ``.npz`` file; ``None`` uses
            ``medseg_core.config.real_data_path("xca_real_masks")`` (``$MEDSEG_XCA_REAL_MASKS`` overrides it).

    Raises:
        DataError: the file is missing or holds no ``masks`` array of shape (N, H, W).
    """
    path = Path(path) if path is not None else real_data_path("xca_real_masks")
    file = path / REAL_XCA_MASKS_FILE if path.suffix != ".npz" else path
    if not file.is_file():
        raise DataError(
            f"real XCA masks not found: {file}; the kit ships {REAL_XCA_MASKS_FILE} in data/real/xca_real_masks "
            "(restore it from git) or set MEDSEG_XCA_REAL_MASKS to its folder"
        )
    with np.load(file) as archive:
        if "masks" not in archive.files:
            raise DataError(f"{file} holds no 'masks' array (found: {', '.join(archive.files)})")
        masks = np.asarray(archive["masks"]).astype(bool)
    if masks.ndim != 3:
        raise DataError(f"{file}: 'masks' must have shape (N, H, W), got {masks.shape}")
    return masks
