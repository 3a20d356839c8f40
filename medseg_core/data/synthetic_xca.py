"""Synthetic X-ray coronary angiography (XCA) sequences, written in the MOSXAV/DAVIS layout.

This module owns the generator that stands in for the (private or licence-restricted) XCA videos SVSnet was
trained on (Hao et al., "Sequential vessel segmentation via deep channel attention network", Neural Networks
2020). It builds every frame from a small physical model, one stage per function, so notebook 01 can show each:

1. :func:`sample_vessel_tree` - a left-coronary-like tree: a short thick trunk (the left main, 14-18 px wide on a
   512 x 512 frame) from an ostium in the upper part of the frame splits into two or three major vessels that fan
   out over a compact territory (about a third of the frame, not all of it); each carries many short side
   branches (log-normal lengths, most 40-150 px), which carry a few of their own. Centrelines meander (a random
   walk on the curvature, correlated over 8-15 px, pulled back towards the vessel's course), so vessels are
   tortuous without curling up. Radii taper and drop at every side branch by Murray's law
   (``r_parent**3 = r_continuing**3 + r_branch**3``); vessels end when thinner than 3 px.
2. :func:`render_vessel_thickness` - the projected lumen thickness: the chord ``2 * sqrt(r**2 - d**2)`` of each
   cylinder, averaged exactly over the pixel across the vessel, which gives sub-pixel soft edges. The major vessels
   and their branches lie at different depths (``VesselSegment.layer``): where they cross in projection their
   chords add (a darker crossing), while vessels of one layer merge at their branch points.
3. :func:`render_background` - soft tissue: low-frequency texture, a few oblique rib bands, the heart shadow,
   the diaphragm and the image intensifier's darker corners, as an attenuation (optical depth) map.
4. :func:`render_collimator` - the collimator's shutter blades: dark (or, for wedge filters, grey) regions beyond
   straight edges near the frame border, often with a bright rim; fixed to the detector, kept clear of the
   vessels and never labelled - straight dark edges a model must learn are not vessels.
5. :func:`sample_catheter` / :func:`render_catheter` - an unlabelled contrast-filled catheter of constant width
   that enters from the image border and ends at the ostium: dark, but never in the mask.
6. :func:`sample_motion` / :func:`cardiac_displacement` / :func:`respiratory_shift` - periodic non-rigid cardiac
   deformation (a smooth field scaled by a heartbeat waveform, 60-90 beats per minute) and a slow respiratory
   translation of the whole scene.
7. :class:`ContrastBolus` - contrast wash-in that travels along the tree from the ostium, and wash-out from
   0.5-2.5 s on, when the concentration decays (time constant 0.3-0.6 s) towards 15-35 % of its peak.
8. :func:`simulate_sequence` - Beer-Lambert image formation, ``counts ~ Poisson(N0 * exp(-(background +
   collimator + mu * c * chord)))``, with independent quantum noise in every frame, so temporal context
   genuinely helps.

Mask rule (one rule, every frame): a pixel is vessel when the contrast agent alone darkens it by at least
``mask_min_contrast`` (5 % by default) in the noise-free frame, i.e. ``1 - exp(-mu * c * chord) >=
mask_min_contrast``. A fully opacified vessel is therefore labelled up to its edge, while vessel parts the bolus
has not reached yet are not labelled. The bolus reaches the ostium 0.03-0.1 s before frame 0 and fills the whole
tree within the first 0.3 s (by frame 4 at 15 fps), so frame 0 (and at most the next few) show a partly filled,
smaller mask; MOSXAV-style labels on frames 0, 5, 10, ... are therefore all post-wash-in but the first. The same
rule holds during wash-out: as ``c`` falls, a pixel leaves the mask once its darkening drops below the threshold,
the thinnest vessels (shortest chords) first; with the residual 15-35 % most vessels stay labelled while their
image contrast fades to a fraction, as an annotator would still trace them. The blades and the catheter never
enter the rule (it depends on the contrast agent alone). At frame 0 the proximal trunk already darkens its
pixels by more than 15 %, so a mask can only be empty if ``mask_min_contrast`` is set above that.

Realism aimed at real angiograms (:class:`Realism`, the ``XCAConfig`` fields of
:data:`medseg_core.config.REALISM_RANGES`; all off by default, and then every pixel is as without them): a guide
wire (:func:`sample_guide_wire`: thin and radio-opaque, through the catheter into a vessel and on past where its
mask ends), sternotomy wires and clips and a vertebral column (:func:`render_chest_hardware`,
:func:`render_spine`), lung markings (:func:`render_lung_texture`: thin branching ridges), foreshortening
(:func:`foreshorten`: the tree squashed along a random direction, so vessels overlap more), the detector's
Gaussian read-out noise on top of the quantum noise (Poisson-Gaussian, :func:`xray_counts`) and its blur. None
of them is ever labelled: they are the hard negatives of real frames. Their random draws come from a stream of
their own, so a realistic run keeps the tree, motion, contrast and quantum noise of the plain run of its seed.

Morphology against real annotations (:mod:`medseg_core.data.morphology`, ``tests/test_morphology.py``): on
512 x 512 frames the labelled fully opacified masks fall inside the 5-95 % range of 30 real expert masks (vessel
fraction, median and 90th-percentile width, centreline length, branch points, tortuosity, convex-hull extent,
components) for nearly every frame; their vessel fraction (median about 6.5 %, real 7.7 %) and widths sit in the
lower half of the real ranges. On smaller frames the geometry scales down and partial-volume averaging makes thin
vessels cover more pixels than their width.

:func:`write_xca_dataset` writes ``root/{train,val,test}/JPEGImages/<video>/00000.png`` (8-bit grayscale
frames) and ``root/{train,val,test}/Annotations_Semantic/<video>/00000.png`` (vessel = 1), with train and
validation videos labelled every ``label_every``-th frame and test videos on every frame, as in MOSXAV. Reading
these folders is left to :mod:`medseg_core.data.xca`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from scipy import ndimage

from medseg_core.config import REALISM_RANGES, XCAConfig
from medseg_core.errors import ConfigError
from medseg_core.data.cache import DatasetWriter, settings_digest
from medseg_core.data.io import write_image

__all__ = [
    "VesselSegment",
    "VesselTree",
    "Catheter",
    "MotionModel",
    "ContrastBolus",
    "XCASequence",
    "sample_vessel_tree",
    "render_vessel_thickness",
    "render_background",
    "render_collimator",
    "sample_catheter",
    "render_catheter",
    "sample_motion",
    "cardiac_displacement",
    "respiratory_shift",
    "sample_contrast_bolus",
    "simulate_sequence",
    "Realism",
    "foreshorten",
    "GuideWire",
    "sample_guide_wire",
    "render_guide_wire",
    "render_chest_hardware",
    "render_spine",
    "render_lung_texture",
    "xray_counts",
    "write_xca_dataset",
    "ensure_xca_dataset",
    "generator_settings",
    "dataset_digest",
    "video_seed",
    "GENERATOR_VERSION",
    "SPLITS",
]

GENERATOR_VERSION = "2"
"""Bumped whenever a change alters the generated pixels, so cached datasets are regenerated."""

SPLITS = ("train", "val", "test")
REFERENCE_SIZE = 512
"""All geometry is sampled on a 512 x 512 reference frame and scaled to the requested frame size."""

_STEP = 1.0  # centreline sampling step while growing the tree, reference pixels
_MIN_RADIUS = 1.5  # vessels end when thinner than 3 px on the reference frame
_MIN_BRANCH_RADIUS = 2.2  # side branches start at least this thick (4.4 px wide) on the reference frame
_MAX_GENERATION = 3
_RENDER_SPACING = 0.5  # centreline points are resampled to at most this spacing (frame pixels) before rendering
_TREE_CANVAS = (-20.0, REFERENCE_SIZE + 20.0)  # vessels end once they leave this reference-pixel box

Displacement = Callable[[np.ndarray], np.ndarray]
"""Maps centreline points ``(N, 2)`` (row, col, in frame pixels) to their displacements ``(N, 2)`` in pixels."""


def _check_image_size(image_size: int) -> None:
    if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size < 32:
        raise ConfigError(
            f"image_size must be an int >= 32 pixels (frames are image_size x image_size), got {image_size!r}"
        )


# --------------------------------------------------------------------------------------------------------------
# Vessel tree
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class VesselSegment:
    """One vessel from its origin (the ostium or a branch point on its parent) to its distal end.

    Attributes:
        centreline: ``(N, 2)`` float64 points (row, col) in pixels of the tree's frame, about one reference
            pixel apart.
        radii: ``(N,)`` lumen radius in pixels at each point.
        path_length: ``(N,)`` distance from the ostium along the tree in pixels (drives the contrast arrival).
        generation: 0 for the trunk (left main), 1 for the major vessels it splits into, 2 for their side
            branches, and so on.
        parent: index of the parent segment in :attr:`VesselTree.segments`, -1 for the trunk.
        layer: depth layer (0 for the trunk and the first major vessel, 1, 2 for the others and all their side
            branches): where vessels of different layers cross in projection their chords add, within a layer
            overlapping vessels merge.
    """

    centreline: np.ndarray
    radii: np.ndarray
    path_length: np.ndarray
    generation: int
    parent: int
    layer: int = 0

    @property
    def length(self) -> float:
        """Centreline length in pixels."""
        return float(np.linalg.norm(np.diff(self.centreline, axis=0), axis=1).sum())


@dataclass(frozen=True, eq=False)
class VesselTree:
    """A coronary-like vessel tree at rest (no cardiac motion), in pixels of an ``image_size`` square frame.

    Attributes:
        segments: the vessels; ``segments[0]`` is the main vessel starting at the ostium.
        image_size: frame size the coordinates refer to.
        ostium: ``(2,)`` (row, col) where the main vessel (and the catheter tip) starts.
    """

    segments: tuple[VesselSegment, ...]
    image_size: int
    ostium: np.ndarray

    @property
    def points(self) -> np.ndarray:
        """All centreline points, ``(N, 2)``."""
        return np.concatenate([segment.centreline for segment in self.segments])

    @property
    def radii(self) -> np.ndarray:
        """All radii, ``(N,)``, in the order of :attr:`points`."""
        return np.concatenate([segment.radii for segment in self.segments])

    @property
    def path_length(self) -> np.ndarray:
        """Distance from the ostium of every point, ``(N,)``."""
        return np.concatenate([segment.path_length for segment in self.segments])

    @property
    def total_length(self) -> float:
        """Summed centreline length of all segments in pixels."""
        return sum(segment.length for segment in self.segments)

    @cached_property
    def render_samples(self) -> dict[str, np.ndarray]:
        """The centrelines at rest, resampled for rendering, concatenated: ``points`` ``(N, 2)``, ``radius``,
        ``path_length``, ``layer`` and ``weight`` ``(N,)`` (weight 0 where a vessel starts inside a parent of
        another layer, whose tube already holds the junction, so the junction is not doubly dark)."""
        parts: dict[str, list[np.ndarray]] = {"points": [], "radius": [], "path_length": [], "layer": [], "weight": []}
        for segment in self.segments:
            points, (radius, path_length) = _resample_polyline(
                segment.centreline, [segment.radii, segment.path_length], _RENDER_SPACING
            )
            weight = np.ones(len(points))
            if segment.parent >= 0 and self.segments[segment.parent].layer != segment.layer:
                weight[_inside_parent(self, segment, path_length)] = 0.0
            for name, value in zip(parts, (points, radius, path_length, np.full(len(points), segment.layer), weight)):
                parts[name].append(value)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def scaled(self, image_size: int) -> "VesselTree":
        """The same tree for a frame of ``image_size`` pixels (coordinates, radii and path lengths scaled)."""
        factor = image_size / self.image_size
        segments = tuple(
            VesselSegment(
                _rescale_points(s.centreline, factor),
                s.radii * factor,
                s.path_length * factor,
                s.generation,
                s.parent,
                s.layer,
            )
            for s in self.segments
        )
        return VesselTree(segments, image_size, _rescale_points(self.ostium, factor))


def _rescale_points(points: np.ndarray, factor: float) -> np.ndarray:
    """Pixel coordinates (pixel centres at integers) on a frame ``factor`` times larger."""
    return (points + 0.5) * factor - 0.5


@dataclass
class _GrowingVessel:
    """A vessel waiting to be grown: where it starts, where it points, how thick and how long it may get."""

    start: np.ndarray
    heading: float  # radians; direction (row, col) = (sin, cos), so pi/2 points down
    radius: float
    max_length: float
    start_path_length: float
    generation: int
    parent: int
    layer: int


def _angle_towards(heading: float, target: float) -> float:
    """Signed smallest rotation from ``heading`` to ``target`` (radians, in [-pi, pi))."""
    return (target - heading + math.pi) % (2.0 * math.pi) - math.pi


def _side_branch_length(rng: np.random.Generator, radius: float) -> float:
    """Length of a side branch of ``radius`` px: log-normal, median 45 radii (most are short, a few long)."""
    return float(np.clip(radius * 45.0 * math.exp(rng.normal(0.0, 0.7)), 20.0, 350.0))


def _grow_vessel(rng: np.random.Generator, vessel: _GrowingVessel) -> tuple[VesselSegment, list[_GrowingVessel]]:
    """Random-walk one vessel on the reference frame and schedule its side branches.

    The heading meanders: its curvature is an Ornstein-Uhlenbeck process (standard deviation 1/36-1/28 per px,
    correlated over 8-15 px, which gives the tortuosity of real coronaries) added to a slow constant bend, and it
    is pulled back towards the vessel's initial direction over about 100 px, so vessels wiggle but do not curl up.
    A vessel that leaves the frame ends just outside it (as in a real, collimated view). The radius tapers by
    10-25 % along the vessel, thins out over the distal fifth and drops at each side branch by Murray's law. The
    trunk (generation 0) only tapers: it neither thins out nor branches before its end, where
    :func:`_main_branches` splits it. Side branches leave every 12-28 px (1.5 times farther apart on side branches),
    alternating sides, 25-75 degrees off the parent, with a radius drawn uniformly between 2.2 px and 65 % of a
    major vessel's (75 % of a side branch's), so most are thin and Murray's law barely thins the major vessels, and
    log-normal lengths (:func:`_side_branch_length`).
    """
    curvature_sd = 1.0 / rng.uniform(28.0, 36.0)
    correlation = math.exp(-_STEP / rng.uniform(8.0, 15.0))
    bend = rng.uniform(-1.0, 1.0) / 500.0  # slow constant curvature, radians per px
    pull = 1.0 / 100.0  # heading relaxes towards its initial direction (plus the bend) at this rate per px
    trunk = vessel.generation == 0
    taper = vessel.radius * rng.uniform(0.1, 0.25) / vessel.max_length * (0.3 if trunk else 1.0)  # per pixel
    branch_spacing = rng.uniform(12.0, 28.0) * (1.0 + 0.5 * max(vessel.generation - 1, 0))
    next_branch = rng.uniform(0.5, 1.5) * branch_spacing
    side = float(rng.choice((-1.0, 1.0)))
    steps = int(vessel.max_length / _STEP)
    tail, end_radius = max(15.0, 0.2 * vessel.max_length), _MIN_RADIUS * rng.uniform(1.0, 1.3)
    innovations = rng.normal(0.0, curvature_sd * math.sqrt(1 - correlation**2), size=steps)

    row, col = float(vessel.start[0]), float(vessel.start[1])
    heading, preferred = vessel.heading, vessel.heading
    curvature, radius = float(rng.normal(0.0, curvature_sd)), vessel.radius
    points, radii = [(row, col)], [radius]
    children: list[_GrowingVessel] = []
    for step in range(1, steps + 1):
        curvature = correlation * curvature + innovations[step - 1]
        preferred += bend * _STEP
        heading += (curvature + pull * _angle_towards(heading, preferred)) * _STEP
        row, col = row + _STEP * math.sin(heading), col + _STEP * math.cos(heading)
        radius -= taper * _STEP
        remaining = vessel.max_length - step * _STEP
        if remaining < tail and not trunk:  # the distal end thins out instead of stopping bluntly
            radius -= (radius - end_radius) * _STEP / max(remaining, _STEP)
        if radius < _MIN_RADIUS or not (
            _TREE_CANVAS[0] < row < _TREE_CANVAS[1] and _TREE_CANVAS[0] < col < _TREE_CANVAS[1]
        ):
            break
        points.append((row, col))
        radii.append(radius)
        distance = step * _STEP
        if distance >= next_branch and 0 < vessel.generation < _MAX_GENERATION and remaining > tail:
            next_branch = distance + rng.uniform(0.5, 1.5) * branch_spacing
            largest = radius * (0.65 if vessel.generation == 1 else 0.75)
            if largest < _MIN_BRANCH_RADIUS:
                continue
            branch_radius = rng.uniform(_MIN_BRANCH_RADIUS, largest)
            side = -side if rng.random() < 0.7 else side
            angle = math.radians(rng.uniform(25.0, 75.0))
            if math.sin(heading + side * angle) < -0.5:  # branches run towards the apex, not back up the heart
                side = -side
            children.append(
                _GrowingVessel(
                    start=np.array([row, col]),
                    heading=heading + side * angle,
                    radius=branch_radius,
                    max_length=_side_branch_length(rng, branch_radius),
                    start_path_length=vessel.start_path_length + distance,
                    generation=vessel.generation + 1,
                    parent=-1,  # filled in by the caller, which knows this vessel's index
                    layer=vessel.layer,
                )
            )
            radius = (radius**3 - branch_radius**3) ** (1.0 / 3.0)  # Murray's law
            radii[-1] = radius
    centreline = np.asarray(points)
    path_length = vessel.start_path_length + _STEP * np.arange(len(points), dtype=np.float64)
    segment = VesselSegment(
        centreline, np.asarray(radii), path_length, vessel.generation, vessel.parent, vessel.layer
    )
    return segment, children


def _main_branches(rng: np.random.Generator, trunk: VesselSegment, heading: float) -> list[_GrowingVessel]:
    """The two (or, with a ramus, three) major vessels at the end of the trunk, split by Murray's law.

    They fan out 50-110 degrees from each other around a direction 20-50 degrees below the trunk's heading (the
    ramus in the middle); each lies in its own depth layer, so where they cross in projection their chords add.
    """
    count = 3 if rng.random() < 0.3 else 2
    shares = rng.dirichlet(np.full(count, 6.0))  # share of the trunk's r**3 each one takes (Murray's law)
    spread = math.radians(rng.uniform(50.0, 110.0))
    centre = heading + math.radians(rng.uniform(20.0, 50.0))
    headings = (centre - spread / 2, centre + spread / 2, centre)
    lengths = (rng.uniform(330.0, 470.0), rng.uniform(250.0, 380.0), rng.uniform(150.0, 260.0))
    start, radius = trunk.centreline[-1], float(trunk.radii[-1])
    return [
        _GrowingVessel(
            start=start.copy(),
            heading=headings[index],
            radius=radius * float(shares[index]) ** (1.0 / 3.0),
            max_length=lengths[index],
            start_path_length=float(trunk.path_length[-1]),
            generation=1,
            parent=0,
            layer=index,
        )
        for index in range(count)
    ]


def _grow_tree(rng: np.random.Generator) -> list[VesselSegment]:
    """Grow one left-coronary-like tree on the reference frame, breadth first from a short thick trunk.

    The trunk (the left main, 13-17 px wide, 30-90 px long) leaves an ostium in the upper left of the frame and
    splits into two or three major vessels that fan out down and to the right; their side branches fill a compact
    territory instead of spanning the frame. Half the trees are then mirrored left/right.
    """
    ostium = np.array([rng.uniform(0.08, 0.3), rng.uniform(0.1, 0.35)]) * REFERENCE_SIZE
    heading = math.radians(rng.uniform(-15.0, 35.0))
    trunk, _ = _grow_vessel(rng, _GrowingVessel(ostium, heading, rng.uniform(7.0, 9.0), rng.uniform(30.0, 90.0),
                                                0.0, 0, -1, 0))
    segments: list[VesselSegment] = [trunk]
    queue = _main_branches(rng, trunk, heading)
    while queue:
        vessel = queue.pop(0)
        segment, children = _grow_vessel(rng, vessel)
        index = len(segments)
        segments.append(segment)
        for child in children:
            child.parent = index
        queue.extend(children)
    if rng.random() < 0.5:  # mirror left/right so trees run either way
        mirror = np.array([1.0, -1.0]), np.array([0.0, REFERENCE_SIZE - 1.0])
        segments = [dataclasses.replace(s, centreline=s.centreline * mirror[0] + mirror[1]) for s in segments]
    return segments


def _estimated_coverage(segments: list[VesselSegment]) -> float:
    """Fraction of the reference frame covered by the vessels' footprints (sum of 2 r * step inside the frame)."""
    points = np.concatenate([s.centreline for s in segments])
    radii = np.concatenate([s.radii for s in segments])
    inside = np.all((points >= 0) & (points < REFERENCE_SIZE), axis=1)
    return float(np.sum(2.0 * radii[inside] * _STEP) / REFERENCE_SIZE**2)


def sample_vessel_tree(
    rng: np.random.Generator,
    image_size: int,
    *,
    coverage_range: tuple[float, float] = (0.055, 0.1),
    max_attempts: int = 40,
) -> VesselTree:
    """Sample a coronary-like vessel tree for an ``image_size`` x ``image_size`` frame.

    Trees are grown on the 512 x 512 reference frame and redrawn until their footprint covers a fraction of the
    frame inside ``coverage_range`` (real XCA annotations cover 5-12 %, median about 8 %); if no draw succeeds
    within ``max_attempts`` the closest one is kept. The result is then scaled to ``image_size``.

    Args:
        rng: random generator; the tree is a deterministic function of its state.
        image_size: frame size in pixels (at least 32).
        coverage_range: accepted (min, max) fraction of the frame covered by vessel footprints.
        max_attempts: number of trees drawn at most.

    Returns:
        A :class:`VesselTree` whose coordinates are in pixels of the requested frame.
    """
    _check_image_size(image_size)
    low, high = coverage_range
    if not 0.0 < low < high < 1.0:
        raise ValueError(f"coverage_range must satisfy 0 < min < max < 1, got {coverage_range}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    best: list[VesselSegment] = []
    best_gap = math.inf
    for _ in range(max_attempts):
        segments = _grow_tree(rng)
        coverage = _estimated_coverage(segments)
        gap = max(low - coverage, coverage - high, 0.0)
        if gap < best_gap:
            best, best_gap = segments, gap
        if gap == 0.0:
            break
    tree = VesselTree(tuple(best), REFERENCE_SIZE, best[0].centreline[0].copy())
    return tree.scaled(image_size)


# --------------------------------------------------------------------------------------------------------------
# Rendering tubes (vessels and catheter)
# --------------------------------------------------------------------------------------------------------------
def _semicircle_integral(x: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Antiderivative of the chord ``2 sqrt(r^2 - x^2)`` for ``|x| <= r`` (x is clipped to [-r, r])."""
    x = np.clip(x, -radius, radius)
    return x * np.sqrt(np.maximum(radius**2 - x**2, 0.0)) + radius**2 * np.arcsin(x / radius)


def _resample_polyline(
    points: np.ndarray, values: list[np.ndarray], spacing: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Resample a polyline ``(N, 2)`` and per-point values to at most ``spacing`` pixels between points."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    count = max(2, int(math.ceil(arc[-1] / spacing)) + 1)
    if len(points) < 2 or arc[-1] <= 0.0:
        return points, values
    new_arc = np.linspace(0.0, arc[-1], count)
    new_points = np.stack([np.interp(new_arc, arc, points[:, axis]) for axis in range(2)], axis=1)
    return new_points, [np.interp(new_arc, arc, value) for value in values]


def _render_tubes(
    centrelines: list[np.ndarray], radii: list[np.ndarray], weights: list[np.ndarray], image_size: int
) -> np.ndarray:
    """Projected thickness of tubes, each pixel averaged across the tube: ``(H, W)`` float64, pixels.

    The centrelines are resampled to :data:`_RENDER_SPACING` and stamped by :func:`_stamp_tubes`.
    """
    resampled = [
        _resample_polyline(points, [radius, weight], _RENDER_SPACING)
        for points, radius, weight in zip(centrelines, radii, weights)
        if len(points)
    ]
    if not resampled:
        return np.zeros((image_size, image_size))
    points = np.concatenate([p for p, _ in resampled])
    radius = np.concatenate([v[0] for _, v in resampled])
    weight = np.concatenate([v[1] for _, v in resampled])
    return _stamp_tubes(points, radius, weight, image_size)


def _stamp_tubes(points: np.ndarray, radius: np.ndarray, weight: np.ndarray, image_size: int) -> np.ndarray:
    """Projected thickness ``(H, W)`` of tubes sampled at points ``(N, 2)`` with radii and weights ``(N,)``.

    Every point stamps ``weight * mean over the pixel of 2 sqrt(r^2 - x^2)`` (exact 1D pixel-box integral across
    the vessel) onto the pixels around it; overlapping tubes (bifurcations, crossings) are merged by their
    maximum, so a branch point is not doubly dark. Points must lie at most :data:`_RENDER_SPACING` apart.
    """
    if len(points) == 0:
        return np.zeros((image_size, image_size))
    reach = np.ceil(radius + 1.0).astype(np.int64)  # pixels a point can touch: |d| <= r + 0.5 around it
    pad = 2 * int(reach.max(initial=1)) + 1  # points farther outside than this cannot touch the frame
    keep = np.all((points > -pad + reach[:, None]) & (points < image_size + pad - 1 - reach[:, None]), axis=1)
    keep &= weight > 0
    points, radius, weight, reach = points[keep], radius[keep], weight[keep], reach[keep]
    canvas_size = image_size + 2 * pad
    canvas = np.zeros(canvas_size * canvas_size, dtype=np.float32)
    centre_pixels = np.rint(points).astype(np.int64)
    points, radius, weight = points.astype(np.float32), radius.astype(np.float32), weight.astype(np.float32)
    for window in np.unique(reach):
        group = reach == window
        offset_rows, offset_cols = np.mgrid[-window : window + 1, -window : window + 1]
        in_disc = offset_rows**2 + offset_cols**2 <= (window + 0.5) ** 2
        offset_rows, offset_cols = offset_rows[in_disc], offset_cols[in_disc]
        rows = centre_pixels[group, :1] + offset_rows  # (n, K)
        cols = centre_pixels[group, 1:] + offset_cols
        distance = np.hypot(rows - points[group, :1], cols - points[group, 1:], dtype=np.float32)
        r = radius[group, None]
        chord = _semicircle_integral(distance + 0.5, r) - _semicircle_integral(distance - 0.5, r)
        flat = (rows + pad) * canvas_size + (cols + pad)
        np.maximum.at(canvas, flat.ravel(), (chord * weight[group, None]).ravel())
    return canvas.reshape(canvas_size, canvas_size)[pad:-pad, pad:-pad].astype(np.float64)


def _displaced(points: np.ndarray, displacement: Displacement | None) -> np.ndarray:
    if displacement is None:
        return points
    moved = np.asarray(displacement(points), dtype=np.float64)
    if moved.shape != points.shape:
        raise ValueError(
            f"displacement must map points (N, 2) to displacements (N, 2); got {moved.shape} for {points.shape}"
        )
    return points + moved


def render_vessel_thickness(
    tree: VesselTree,
    image_size: int,
    displacement: Displacement | None = None,
    concentration: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Projected lumen thickness (chord length through the vessels) of a tree, ``(H, W)`` float64 in pixels.

    Args:
        tree: the vessel tree; rendered at ``image_size`` (the tree is rescaled if it was sampled at another size).
        image_size: frame size in pixels.
        displacement: optional motion, a function from centreline points ``(N, 2)`` to displacements ``(N, 2)``
            in pixels of the ``image_size`` frame, e.g. ``functools.partial(motion.displacement, t)``.
        concentration: optional contrast concentration in [0, 1] as a function of the points' path lengths
            from the ostium ``(N,)`` (pixels), e.g. ``functools.partial(bolus.concentration, t=t)``; the
            thickness of each vessel part is multiplied by it.

    Returns:
        ``(image_size, image_size)`` map; 0 outside the vessels, up to the vessel diameter on the centreline.
    """
    _check_image_size(image_size)
    if tree.image_size != image_size:
        tree = tree.scaled(image_size)
    samples = tree.render_samples
    points = _displaced(samples["points"], displacement)
    weight = samples["weight"]
    if concentration is not None:
        weight = weight * np.asarray(concentration(samples["path_length"]), dtype=np.float64)
    return sum(
        _stamp_tubes(points[in_layer], samples["radius"][in_layer], weight[in_layer], image_size)
        for in_layer in (samples["layer"] == layer for layer in np.unique(samples["layer"]))
    )


def _inside_parent(tree: VesselTree, segment: VesselSegment, path_length: np.ndarray) -> np.ndarray:
    """True where ``path_length`` (of points on ``segment``) lies within its parent's radius of the branch point."""
    parent = tree.segments[segment.parent]
    junction = int(np.argmin(np.linalg.norm(parent.centreline - segment.centreline[0], axis=1)))
    return path_length - segment.path_length[0] < parent.radii[junction]


# --------------------------------------------------------------------------------------------------------------
# Catheter
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Catheter:
    """A guiding catheter: a tube of constant radius from outside the frame to the ostium.

    Attributes:
        centreline: ``(N, 2)`` points (row, col) in pixels of an ``image_size`` frame; the last point is the tip.
        radius: constant outer radius in pixels.
        image_size: frame size the coordinates refer to.
    """

    centreline: np.ndarray
    radius: float
    image_size: int


def sample_catheter(rng: np.random.Generator, tree: VesselTree) -> Catheter:
    """Sample a catheter entering from the frame border nearest the ostium and engaging it along the main vessel.

    The path is a cubic Bezier curve whose last control points follow the main vessel's initial direction, so the
    tip sits in the ostium; its radius is 2.4-3 px on a 512 frame (a 6F catheter, half the left main's width).
    """
    size = float(tree.image_size)
    ostium = tree.ostium
    main = tree.segments[0].centreline
    direction = main[min(len(main) - 1, max(1, len(main) // 20))] - main[0]
    direction /= max(float(np.linalg.norm(direction)), 1e-9)
    # Enter through the top border, or the side border when the ostium is closer to it.
    distances = {"top": ostium[0], "left": ostium[1], "right": size - ostium[1]}
    border = min(distances, key=distances.get) if rng.random() < 0.5 else "top"
    outside = 0.06 * size
    if border == "top":
        entry = np.array([-outside, np.clip(ostium[1] + rng.uniform(-0.25, 0.25) * size, 0.05 * size, 0.95 * size)])
        inward = np.array([1.0, 0.0])
    else:
        column = -outside if border == "left" else size + outside
        entry = np.array([np.clip(ostium[0] + rng.uniform(-0.1, 0.2) * size, 0.0, 0.6 * size), column])
        inward = np.array([0.0, 1.0 if border == "left" else -1.0])
    span = float(np.linalg.norm(ostium - entry))
    controls = np.stack(
        [
            entry,
            entry + inward * span * rng.uniform(0.3, 0.5),
            ostium - direction * span * rng.uniform(0.25, 0.45),
            ostium,
        ]
    )
    t = np.linspace(0.0, 1.0, max(16, int(span * 2)))[:, None]
    bernstein = np.concatenate([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3], axis=1)
    radius = rng.uniform(2.4, 3.0) * size / REFERENCE_SIZE
    return Catheter(bernstein @ controls, float(radius), tree.image_size)


def render_catheter(catheter: Catheter, image_size: int, displacement: Displacement | None = None) -> np.ndarray:
    """Projected thickness of the catheter, ``(H, W)`` float64 in pixels (see :func:`render_vessel_thickness`)."""
    _check_image_size(image_size)
    factor = image_size / catheter.image_size
    centreline = _displaced(_rescale_points(catheter.centreline, factor), displacement)
    radius = np.full(len(centreline), catheter.radius * factor)
    return _render_tubes([centreline], [radius], [np.ones(len(centreline))], image_size)


# --------------------------------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, size: int, correlation: float) -> np.ndarray:
    """Zero-mean, unit-variance noise ``(size, size)`` correlated over about ``correlation`` pixels (cubic zoom)."""
    coarse_size = max(4, int(math.ceil(size / correlation)) + 3)
    coarse = rng.standard_normal((coarse_size, coarse_size))
    fine = ndimage.zoom(coarse, size / (coarse_size - 3), order=3, mode="reflect")[:size, :size]
    return (fine - fine.mean()) / max(float(fine.std()), 1e-9)


def render_background(rng: np.random.Generator, image_size: int, *, margin: int = 0) -> np.ndarray:
    """Soft-tissue attenuation (optical depth, unitless) of a chest projection, ``(H + 2m, W + 2m)`` float64.

    The transmitted fraction is ``exp(-attenuation)``. Layers: a base level, the heart shadow (a broad rotated
    ellipse), the diaphragm (a dome at the bottom, present in most views), three to five curved oblique rib bands
    with denser cortical edges, low-frequency soft-tissue texture at two scales, and the image intensifier's
    darker corners. ``margin`` extra pixels on every side leave room for respiratory motion.

    Args:
        rng: random generator.
        image_size: frame size in pixels.
        margin: extra border in pixels; pixel ``(margin, margin)`` of the result is pixel ``(0, 0)`` of the frame.
    """
    _check_image_size(image_size)
    if margin < 0:
        raise ValueError(f"margin must be >= 0 pixels, got {margin}")
    size = image_size + 2 * margin
    rows, cols = (np.mgrid[0:size, 0:size].astype(np.float64) - margin + 0.5) / image_size  # frame units
    attenuation = np.full((size, size), rng.uniform(0.55, 0.8))

    # Heart shadow: a rotated ellipse with a soft edge.
    centre = np.array([rng.uniform(0.5, 0.75), rng.uniform(0.35, 0.65)])
    axes = rng.uniform(0.32, 0.5, size=2)
    angle = rng.uniform(-0.6, 0.6)
    along = (rows - centre[0]) * math.cos(angle) + (cols - centre[1]) * math.sin(angle)
    across = -(rows - centre[0]) * math.sin(angle) + (cols - centre[1]) * math.cos(angle)
    ellipse = np.sqrt((along / axes[0]) ** 2 + (across / axes[1]) ** 2)
    attenuation += rng.uniform(0.25, 0.45) / (1.0 + np.exp((ellipse - 1.0) / 0.12))

    # Diaphragm: a dome-shaped edge near the bottom, denser (liver) below it.
    if rng.random() < 0.75:
        apex_row, apex_col = rng.uniform(0.72, 0.95), rng.uniform(0.2, 0.8)
        dome = apex_row + rng.uniform(0.4, 1.0) * (cols - apex_col) ** 2
        attenuation += rng.uniform(0.25, 0.45) / (1.0 + np.exp(-(rows - dome) / 0.025))

    # Ribs: curved oblique bands, a soft plateau with denser cortical edges.
    slope, spacing = rng.uniform(0.25, 0.6) * rng.choice((-1.0, 1.0)), rng.uniform(0.17, 0.24)
    bend, first = rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.0)
    width = rng.uniform(0.06, 0.085)
    normal = 1.0 / math.sqrt(1.0 + slope**2)
    for index in range(int(rng.integers(3, 6))):
        offset = first + index * spacing + rng.uniform(-0.02, 0.02)
        distance = (rows - (offset + slope * cols + bend * (cols - 0.5) ** 2)) * normal
        plateau = 1.0 / (1.0 + np.exp((np.abs(distance) - width / 2) / 0.008))
        cortex = np.exp(-(((np.abs(distance) - width / 2) / 0.007) ** 2))
        attenuation += rng.uniform(0.05, 0.1) * (0.6 * plateau + 0.5 * cortex)

    # Soft-tissue texture (lung markings, fat, muscle) at two scales.
    attenuation += rng.uniform(0.03, 0.06) * _smooth_noise(rng, size, 0.12 * image_size)
    attenuation += rng.uniform(0.015, 0.03) * _smooth_noise(rng, size, 0.03 * image_size)

    # Image intensifier: darker corners.
    radius = np.hypot(rows - 0.5, cols - 0.5) / math.sqrt(0.5)
    attenuation += rng.uniform(0.1, 0.3) * radius**4
    return attenuation


def render_collimator(rng: np.random.Generator, tree: VesselTree, *, clearance: float = 0.06) -> np.ndarray:
    """Attenuation (optical depth) of the collimator's shutter blades, ``(H, W)`` float64, fixed to the detector.

    Each side of the frame carries a blade with probability 0.4: it covers the frame beyond a straight edge tilted
    by up to 8 degrees, 2-18 % of the frame in from the border but never closer than ``clearance`` (a fraction of
    the frame, more than cardiac and respiratory motion) to a vessel centreline, so no labelled vessel hides
    behind it. Lead blades are nearly opaque (optical depth 1.5-3), a semi-transparent wedge filter (one blade in
    four) 0.3-0.7. The edge has a 1-2 px penumbra (512 frame) and, in half the views, a bright 2-4 px rim inside
    it, the overshoot of the imaging chain's edge enhancement. Blades are not vessels: never in the mask.

    Args:
        rng: random generator.
        tree: the vessel tree the blades keep clear of; its frame size is the result's.
        clearance: smallest distance from a blade to a vessel centreline, fraction of the frame size.
    """
    size = tree.image_size
    scale = size / REFERENCE_SIZE
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    points = tree.points
    attenuation = np.zeros((size, size))
    rim = rng.uniform(0.08, 0.2) if rng.random() < 0.5 else 0.0
    for flip, axis in ((False, 0), (True, 0), (False, 1), (True, 1)):
        if rng.random() >= 0.4:
            continue
        slope = math.tan(math.radians(rng.uniform(-8.0, 8.0)))
        depth = rng.uniform(1.5, 3.0) if rng.random() < 0.75 else rng.uniform(0.3, 0.7)
        wanted = rng.uniform(0.02, 0.18) * size

        def inward(coordinates: np.ndarray, other: np.ndarray) -> np.ndarray:
            """Distance in from this side of the frame along the tilted edge normal, pixels."""
            base = (size - 1 - coordinates) if flip else coordinates
            return base + slope * (other - size / 2)

        if axis == 0:
            distance, tree_distance = inward(rows, cols), inward(points[:, 0], points[:, 1])
        else:
            distance, tree_distance = inward(cols, rows), inward(points[:, 1], points[:, 0])
        edge = min(wanted, float(tree_distance.min()) - clearance * size)
        if edge < 0.02 * size:
            continue
        penumbra = max(rng.uniform(1.0, 2.0) * scale, 0.3)
        attenuation += depth / (1.0 + np.exp(np.clip((distance - edge) / penumbra, -50.0, 50.0)))
        if rim:
            rim_width = max(rng.uniform(2.0, 4.0) * scale, 0.5)
            attenuation -= rim * np.exp(-(((distance - edge - rim_width) / rim_width) ** 2))
    return attenuation


# --------------------------------------------------------------------------------------------------------------
# Motion
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MotionModel:
    """Cardiac (periodic, non-rigid) and respiratory (slow, rigid) motion of one sequence.

    The cardiac displacement of a point ``x`` at time ``t`` is ``beat(t) * u(x)``: ``beat`` rises from 0
    (end-diastole) to 1 (end-systole) and back once per heartbeat, and ``u`` is a smooth field made of a
    contraction towards the heart centre, a twist around it and a few low-frequency cosine modes, normalised so
    that its largest displacement inside the frame is ``cardiac_amplitude``. Respiration translates everything
    by ``respiratory_amplitude * sin(2 pi t / respiratory_period_s + respiratory_phase)``.

    Attributes:
        image_size: frame size the pixel values refer to.
        cardiac_period_s: duration of one heartbeat in seconds.
        cardiac_phase: heartbeat phase at ``t = 0`` in cycles, in [0, 1).
        cardiac_amplitude: largest cardiac displacement inside the frame, pixels.
        heart_centre: ``(2,)`` (row, col) centre of contraction, pixels.
        twist: rotation around the heart centre relative to the contraction (unitless).
        mode_frequencies: ``(K, 2)`` spatial frequencies of the cosine modes, cycles per frame.
        mode_vectors: ``(K, 2)`` displacement direction and weight of each mode.
        mode_phases: ``(K,)`` phases of the modes, radians.
        field_scale: normalisation of the field so that its maximum is ``cardiac_amplitude``.
        respiratory_period_s: breathing period in seconds.
        respiratory_phase: breathing phase at ``t = 0``, radians.
        respiratory_amplitude: ``(2,)`` (row, col) largest respiratory shift, pixels.
    """

    image_size: int
    cardiac_period_s: float
    cardiac_phase: float
    cardiac_amplitude: float
    heart_centre: np.ndarray
    twist: float
    mode_frequencies: np.ndarray
    mode_vectors: np.ndarray
    mode_phases: np.ndarray
    field_scale: float
    respiratory_period_s: float
    respiratory_phase: float
    respiratory_amplitude: np.ndarray

    def beat(self, t: float) -> float:
        """Heartbeat waveform in [0, 1] at time ``t`` seconds (0 at end-diastole, 1 at end-systole)."""
        phase = (t / self.cardiac_period_s + self.cardiac_phase) % 1.0
        return 0.5 - 0.5 * math.cos(2.0 * math.pi * phase)

    def displacement(self, t: float, points: np.ndarray) -> np.ndarray:
        """Total displacement ``(N, 2)`` in pixels of points ``(N, 2)`` at rest, at time ``t`` seconds."""
        return cardiac_displacement(self, t, points) + respiratory_shift(self, t)


def _cardiac_field(motion: MotionModel, points: np.ndarray) -> np.ndarray:
    """Unnormalised cardiac field ``u`` at points ``(N, 2)``: contraction + twist + cosine modes, ``(N, 2)``."""
    relative = (points - motion.heart_centre) / motion.image_size
    twist = motion.twist * np.stack([-relative[:, 1], relative[:, 0]], axis=1)
    argument = 2.0 * math.pi * (points / motion.image_size) @ motion.mode_frequencies.T + motion.mode_phases
    return -relative + twist + np.cos(argument) @ motion.mode_vectors


def sample_motion(rng: np.random.Generator, image_size: int, *, amplitude_scale: float = 1.0) -> MotionModel:
    """Sample heart rate (60-90 bpm), a smooth non-rigid cardiac field and a breathing drift for one sequence.

    Args:
        rng: random generator.
        image_size: frame size in pixels; amplitudes are about 6-10 px (cardiac) and 3-8 px (respiratory) on a
            512 frame and scale with the frame size.
        amplitude_scale: multiplies both amplitudes (0 gives a static scene).
    """
    _check_image_size(image_size)
    if amplitude_scale < 0:
        raise ValueError(f"amplitude_scale must be >= 0, got {amplitude_scale}")
    scale = image_size / REFERENCE_SIZE
    modes = 3
    radius = rng.uniform(0.3, 1.2, size=modes)
    angle = rng.uniform(0.0, 2.0 * math.pi, size=modes)
    heart_centre = np.array([rng.uniform(0.45, 0.7), rng.uniform(0.35, 0.65)]) * image_size
    twist = float(rng.uniform(-0.5, 0.5))
    mode_frequencies = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    mode_phases = rng.uniform(0.0, 2.0 * math.pi, size=modes)
    mode_vectors = rng.normal(0.0, 0.12, size=(modes, 2))
    breathing_direction = math.radians(rng.uniform(-25.0, 25.0))  # mostly cranio-caudal (vertical)
    motion = MotionModel(
        image_size=image_size,
        cardiac_period_s=60.0 / rng.uniform(60.0, 90.0),
        cardiac_phase=float(rng.uniform(0.0, 1.0)),
        cardiac_amplitude=float(rng.uniform(6.0, 10.0) * scale * amplitude_scale),
        heart_centre=heart_centre,
        twist=twist,
        mode_frequencies=mode_frequencies,
        mode_vectors=mode_vectors,
        mode_phases=mode_phases,
        field_scale=1.0,
        respiratory_period_s=float(rng.uniform(3.0, 5.0)),
        respiratory_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        respiratory_amplitude=rng.uniform(3.0, 8.0) * scale * amplitude_scale
        * np.array([math.cos(breathing_direction), math.sin(breathing_direction)]),
    )
    grid = np.stack(np.mgrid[0:17, 0:17], axis=-1).reshape(-1, 2) / 16.0 * (image_size - 1)
    peak = float(np.linalg.norm(_cardiac_field(motion, grid), axis=1).max())
    return dataclasses.replace(motion, field_scale=1.0 / max(peak, 1e-9))


def cardiac_displacement(motion: MotionModel, t: float, points: np.ndarray) -> np.ndarray:
    """Cardiac displacement ``(N, 2)`` in pixels of points ``(N, 2)`` (row, col at rest) at time ``t`` seconds.

    Example:
        >>> rows, cols = np.mgrid[0:128:16, 0:128:16]
        >>> field = cardiac_displacement(motion, 0.3, np.stack([rows.ravel(), cols.ravel()], axis=1))
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    field = _cardiac_field(motion, points)
    return motion.beat(t) * motion.cardiac_amplitude * motion.field_scale * field


def respiratory_shift(motion: MotionModel, t: float) -> np.ndarray:
    """Respiratory translation ``(2,)`` (row, col) in pixels at time ``t`` seconds, the same for every point."""
    phase = 2.0 * math.pi * t / motion.respiratory_period_s + motion.respiratory_phase
    return motion.respiratory_amplitude * math.sin(phase)


# --------------------------------------------------------------------------------------------------------------
# Contrast
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContrastBolus:
    """Contrast wash-in and wash-out: fronts that travel from the ostium to the most distal vessel.

    At path length ``s`` from the ostium, with delay ``d = (s / longest_path) * fill_time_s``, the concentration
    rises smoothly (smoothstep) from 0 to 1 over ``rise_time_s`` seconds from ``arrival_s + d``, and from
    ``washout_s + d`` it decays exponentially (time constant ``washout_time_s``) towards ``residual`` as
    unopacified blood washes the contrast out.

    Attributes:
        arrival_s: time the contrast reaches the ostium, seconds relative to frame 0 (negative: before it).
        fill_time_s: travel time of the front from the ostium to the most distal point, seconds.
        rise_time_s: time for the local concentration to go from 0 to 1, seconds.
        longest_path: path length of the most distal vessel point, pixels of the tree's frame.
        attenuation: attenuation of fully opacified lumen per pixel of chord on the 512 reference frame.
        catheter_attenuation: attenuation per reference pixel of the contrast-filled catheter.
        washout_s: time the wash-out starts at the ostium, seconds relative to frame 0.
        washout_time_s: time constant of the wash-out, seconds.
        residual: concentration the wash-out decays towards, in [0, 1).
    """

    arrival_s: float
    fill_time_s: float
    rise_time_s: float
    longest_path: float
    attenuation: float
    catheter_attenuation: float
    washout_s: float = math.inf
    washout_time_s: float = 0.5
    residual: float = 0.0

    @property
    def opacified_s(self) -> float:
        """Time from which the whole tree is fully opacified, seconds relative to frame 0."""
        return self.arrival_s + self.fill_time_s + self.rise_time_s

    def concentration(self, path_length: np.ndarray, t: float) -> np.ndarray:
        """Concentration in [0, 1] at distances ``path_length`` (pixels, any shape) from the ostium at time ``t``."""
        delay = np.asarray(path_length, dtype=np.float64) / self.longest_path * self.fill_time_s
        progress = np.clip((t - self.arrival_s - delay) / self.rise_time_s, 0.0, 1.0)
        washed = np.maximum(t - self.washout_s - delay, 0.0) / self.washout_time_s
        return progress**2 * (3.0 - 2.0 * progress) * (self.residual + (1.0 - self.residual) * np.exp(-washed))


def sample_contrast_bolus(rng: np.random.Generator, tree: VesselTree) -> ContrastBolus:
    """Sample a bolus of ``tree``: it reaches the ostium just before frame 0, fills the tree within 0.3 s and
    washes out from 0.5-2.5 s on (time constant 0.3-0.6 s, towards 15-35 % of the full concentration)."""
    attenuation = rng.uniform(0.08, 0.11)
    return ContrastBolus(
        arrival_s=float(rng.uniform(-0.1, -0.03)),
        fill_time_s=float(rng.uniform(0.1, 0.2)),
        rise_time_s=0.1,
        longest_path=max(float(tree.path_length.max()), 1e-9),
        attenuation=float(attenuation),
        catheter_attenuation=float(attenuation * rng.uniform(0.8, 1.1)),
        washout_s=float(rng.uniform(0.5, 2.5)),
        washout_time_s=float(rng.uniform(0.3, 0.6)),
        residual=float(rng.uniform(0.15, 0.35)),
    )


# --------------------------------------------------------------------------------------------------------------
# Realism aimed at real angiograms
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Realism:
    """What :func:`simulate_sequence` adds to look like real angiograms; the default adds nothing.

    The fields are the ``XCAConfig`` fields of the same names, with their ranges in
    :data:`medseg_core.config.REALISM_RANGES`. Nothing they add is ever labelled.

    Attributes:
        guide_wire: probability that a run shows a guide wire (:func:`sample_guide_wire`).
        sternal_wires: probability of sternotomy wire loops and surgical clips (:func:`render_chest_hardware`).
        spine: probability of a vertebral column (:func:`render_spine`).
        lung_texture: optical depth of the lung markings (:func:`render_lung_texture`); 0: none.
        foreshortening: the tree keeps ``1 - U(0, foreshortening)`` of its extent along a random direction
            (:func:`foreshorten`).
        electronic_noise: sd of the detector's Gaussian read-out noise in photons per pixel (:func:`xray_counts`).
        detector_blur: sd of the detector's Gaussian blur, ``U(0, detector_blur)`` pixels of the 512 frame.
    """

    guide_wire: float = 0.0
    sternal_wires: float = 0.0
    spine: float = 0.0
    lung_texture: float = 0.0
    foreshortening: float = 0.0
    electronic_noise: float = 0.0
    detector_blur: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high) in REALISM_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"Realism.{name} must be a number in [{low:g}, {high:g}]; got {value!r}")

    @classmethod
    def from_config(cls, config: XCAConfig) -> "Realism":
        """The realism fields of a profile's ``xca`` section."""
        return cls(**{name: float(getattr(config, name)) for name in REALISM_RANGES})

    def settings(self) -> dict[str, float]:
        """The options that differ from the default, by name (empty for the default): what names a data set."""
        return {name: float(getattr(self, name)) for name in REALISM_RANGES if getattr(self, name) != 0.0}


_REALISM_STREAMS = {name: 2 + index for index, name in enumerate(REALISM_RANGES)}
"""Each option draws from its own child stream of the run's seed (0: the scene, 1: quantum noise), so switching one
on changes nothing the others draw."""


def foreshorten(tree: VesselTree, factor: float, angle: float) -> VesselTree:
    """The tree with its extent along the direction ``angle`` (radians; (row, col) = (sin, cos)) shrunk to ``factor``
    around the ostium, as a view oblique to the heart's surface projects it: vessels lie closer and cross more.
    Radii and path lengths (the 3D length the contrast travels) are kept."""
    if not 0.0 < factor <= 1.0:
        raise ValueError(f"factor must be in (0, 1], got {factor}")
    direction = np.array([math.sin(angle), math.cos(angle)])

    def squash(points: np.ndarray) -> np.ndarray:
        along = (points - tree.ostium) @ direction
        return points - np.outer(along * (1.0 - factor), direction)

    segments = tuple(dataclasses.replace(segment, centreline=squash(segment.centreline)) for segment in tree.segments)
    return VesselTree(segments, tree.image_size, tree.ostium.copy())


@dataclass(frozen=True, eq=False)
class GuideWire:
    """A guide wire: through the catheter, along the vessels to a distal branch, and on past its end.

    Attributes:
        centreline: ``(N, 2)`` points (row, col) in pixels of an ``image_size`` frame, from outside the frame to the tip.
        weight: ``(N,)`` attenuation relative to the wire's body (1), higher on the radio-opaque tip.
        radius: wire radius in pixels.
        attenuation: attenuation of the body per reference pixel of chord.
        image_size: frame size the coordinates refer to.
    """

    centreline: np.ndarray
    weight: np.ndarray
    radius: float
    attenuation: float
    image_size: int


def sample_guide_wire(rng: np.random.Generator, tree: VesselTree, catheter: Catheter) -> GuideWire:
    """A coronary guide wire (0.014", 0.36 mm: 1-1.6 px wide on a 512 frame): it leaves the catheter at the ostium,
    follows the tree to a major vessel or side branch (chosen by length) and runs 20-60 reference pixels past its
    end, where the labelled vessel has stopped; its last 30-60 reference pixels (the radio-opaque coil) attenuate
    1.5-2.5 times more. Optical depth across the body's centre about 0.3-0.6 on a 512 frame."""
    candidates = [index for index, segment in enumerate(tree.segments) if segment.generation >= 1]
    lengths = np.array([tree.segments[index].length for index in candidates])
    chosen = candidates[int(rng.choice(len(candidates), p=lengths / lengths.sum()))]
    chain = [chosen]
    while tree.segments[chain[-1]].parent >= 0:
        chain.append(tree.segments[chain[-1]].parent)
    chain.reverse()
    parts = [catheter.centreline * tree.image_size / catheter.image_size]
    for parent, child in zip(chain[:-1], chain[1:]):
        centreline = tree.segments[parent].centreline
        junction = int(np.argmin(np.linalg.norm(centreline - tree.segments[child].centreline[0], axis=1)))
        parts.append(centreline[: junction + 1])
    end = tree.segments[chosen].centreline
    parts.append(end)
    scale = tree.image_size / REFERENCE_SIZE
    heading = end[-1] - end[max(0, len(end) - 8)]
    heading /= max(float(np.linalg.norm(heading)), 1e-9)
    beyond = rng.uniform(20.0, 60.0) * scale
    parts.append(end[-1] + np.linspace(0.0, beyond, 12)[1:, None] * heading)
    centreline = np.concatenate(parts)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centreline, axis=0), axis=1))])
    tip = arc >= arc[-1] - rng.uniform(30.0, 60.0) * scale
    weight = np.where(tip, rng.uniform(1.5, 2.5), 1.0)
    return GuideWire(centreline, weight, float(rng.uniform(0.5, 0.8) * scale), float(rng.uniform(0.25, 0.45)),
                     tree.image_size)


def render_guide_wire(wire: GuideWire, image_size: int, displacement: Displacement | None = None) -> np.ndarray:
    """Projected thickness of the wire times its relative attenuation, ``(H, W)`` float64 in pixels."""
    factor = image_size / wire.image_size
    centreline = _displaced(_rescale_points(wire.centreline, factor), displacement)
    return _render_tubes([centreline], [np.full(len(centreline), wire.radius * factor)], [wire.weight], image_size)


def render_chest_hardware(rng: np.random.Generator, image_size: int, *, margin: int = 0) -> np.ndarray:
    """Attenuation of sternotomy wires and surgical clips (after bypass surgery), ``(H + 2m, W + 2m)`` float64.

    Four to seven twisted steel loops (ellipses 20-40 x 6-12 reference pixels, wire 2-3 px thick, each with its
    twisted knot) stacked 55-85 reference pixels apart down a near-vertical line in the middle of the frame, and
    up to four clips (bars 8-16 px long) anywhere; nearly opaque (0.5-0.9 per reference pixel of chord). They
    are fixed to the chest: the caller moves them with respiration, with the background.
    """
    _check_image_size(image_size)
    scale = image_size / REFERENCE_SIZE
    centrelines: list[np.ndarray] = []
    radii: list[float] = []
    column, row = rng.uniform(0.35, 0.65) * REFERENCE_SIZE, rng.uniform(-0.1, 0.15) * REFERENCE_SIZE
    slope, spacing = rng.uniform(-0.2, 0.2), rng.uniform(55.0, 85.0)
    for index in range(int(rng.integers(4, 8))):
        centre = np.array([row + index * spacing, column + slope * index * spacing]) + rng.uniform(-5.0, 5.0, 2)
        half_width, half_height, tilt = rng.uniform(10.0, 20.0), rng.uniform(3.0, 6.0), rng.uniform(-0.3, 0.3)
        angle = np.linspace(0.0, 2.0 * math.pi, 64)
        loop = np.stack([half_height * np.sin(angle), half_width * np.cos(angle)], axis=1)
        side = rng.choice((-1.0, 1.0))
        knot = np.stack([np.linspace(0.0, rng.uniform(4.0, 9.0), 6), np.full(6, side * half_width)], axis=1)
        rotation = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
        for shape in (loop, knot):
            centrelines.append(centre + shape @ rotation.T)
            radii.append(rng.uniform(1.0, 1.5))
    for _ in range(int(rng.integers(0, 5))):
        centre, angle, length = rng.uniform(0.1, 0.9, 2) * REFERENCE_SIZE, rng.uniform(0, math.pi), rng.uniform(8, 16)
        steps = np.linspace(-length / 2, length / 2, 8)[:, None]
        centrelines.append(centre + steps * np.array([math.sin(angle), math.cos(angle)]))
        radii.append(rng.uniform(1.0, 1.5))
    size = image_size + 2 * margin
    points = [_rescale_points(line, scale) + margin for line in centrelines]
    thickness = _render_tubes(points, [np.full(len(p), r * scale) for p, r in zip(points, radii)],
                              [np.ones(len(p)) for p in points], size)
    return rng.uniform(0.5, 0.9) * thickness / scale


def render_spine(rng: np.random.Generator, image_size: int, *, margin: int = 0) -> np.ndarray:
    """Attenuation of a thoracic vertebral column, ``(H + 2m, W + 2m)`` float64 (frame units as in
    :func:`render_background`).

    A near-vertical column (tilt up to 0.15) in the middle of the frame: vertebral bodies 0.18-0.24 of the frame
    wide, one every 0.15-0.2 of the frame (a 15-20 cm field of view), with denser end plates, less dense disc
    spaces between them and two ring-shaped pedicles on each; optical depth 0.12-0.25 on the bodies. It moves
    with respiration (the caller adds it to the background).
    """
    _check_image_size(image_size)
    size = image_size + 2 * margin
    rows, cols = (np.mgrid[0:size, 0:size].astype(np.float64) - margin + 0.5) / image_size
    centre, tilt = rng.uniform(0.35, 0.65), rng.uniform(-0.15, 0.15)
    half_width, pitch, phase = rng.uniform(0.09, 0.12), rng.uniform(0.15, 0.2), rng.uniform(0.0, 1.0)
    gap = pitch * rng.uniform(0.15, 0.22)
    across = (cols - centre - tilt * (rows - 0.5)) / math.sqrt(1.0 + tilt**2)
    within = np.mod(rows - phase * pitch, pitch)  # position inside the vertebra + disc period
    to_plate = np.minimum(within - gap / 2, pitch - gap / 2 - within)  # > 0 inside a body
    body = 1.0 / (1.0 + np.exp(-to_plate / 0.006)) / (1.0 + np.exp((np.abs(across) - half_width) / 0.01))
    plates = np.exp(-((to_plate / 0.006) ** 2)) / (1.0 + np.exp((np.abs(across) - half_width) / 0.01))
    pedicle_row = within - gap / 2 - 0.3 * pitch
    pedicles = sum(np.exp(-(((np.hypot(pedicle_row / 0.035, (across - side * 0.65 * half_width) / 0.022) - 1.0)
                             / 0.3) ** 2)) for side in (-1.0, 1.0))
    return rng.uniform(0.12, 0.25) * body + rng.uniform(0.05, 0.1) * (plates + pedicles)


def render_lung_texture(rng: np.random.Generator, image_size: int, strength: float, *, margin: int = 0) -> np.ndarray:
    """Lung markings, ``(H + 2m, W + 2m)`` float64 optical depth up to about ``strength``: thin curvilinear ridges
    (the zero crossings of smooth noise correlated over 5 % and 2 % of the frame, 1-4 px wide on a 512 frame) that
    fade in and out over the frame; thin dark lines a model must learn are not coronaries."""
    _check_image_size(image_size)
    size = image_size + 2 * margin
    ridges = sum(weight * np.exp(-((_smooth_noise(rng, size, correlation * image_size) / 0.12) ** 2))
                 for correlation, weight in ((0.05, 1.0), (0.02, 0.6)))
    fade = np.clip(0.5 + 0.5 * _smooth_noise(rng, size, 0.25 * image_size), 0.0, 1.0)
    return strength * ridges * fade


def xray_counts(expected: np.ndarray, electronic_noise: float, quantum_rng: np.random.Generator,
                electronic_rng: np.random.Generator | None = None) -> np.ndarray:
    """Detector counts with Poisson-Gaussian noise: ``Poisson(expected) + Normal(0, electronic_noise**2)``, so the
    variance is ``expected + electronic_noise**2`` (photons per pixel). Without electronic noise the counts are the
    Poisson draws alone (integers), exactly as without this option."""
    counts = quantum_rng.poisson(expected)
    if electronic_noise == 0.0:
        return counts
    if electronic_rng is None:
        raise ValueError("electronic noise needs electronic_rng")
    return counts + electronic_noise * electronic_rng.standard_normal(np.shape(expected))


# --------------------------------------------------------------------------------------------------------------
# Sequence
# --------------------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class XCASequence:
    """One simulated angiography run and the layers it was made of.

    Attributes:
        frames: ``(T, H, W)`` uint8 displayed frames (vessels dark), with quantum noise.
        masks: ``(T, H, W)`` uint8 vessel masks in {0, 1} (see the module's mask rule).
        clean_frames: ``(T, H, W)`` float32 noise-free frames in [0, 1]; ``frames`` are about ``255 * clean_frames``
            plus Poisson noise.
        times: ``(T,)`` acquisition time of each frame in seconds.
        contrast_curve: ``(T,)`` mean contrast concentration over the tree's centreline in [0, 1].
        background: ``(H, W)`` soft-tissue attenuation at rest (see :func:`render_background`).
        collimator: ``(H, W)`` attenuation of the shutter blades, static (see :func:`render_collimator`).
        vessel_thickness: ``(H, W)`` chord length through the vessels at rest, pixels.
        catheter_thickness: ``(H, W)`` chord length through the catheter at rest, pixels.
        tree, catheter, motion, bolus: the sampled scene.
        photons_per_pixel: mean photon count per pixel at bright background (sets the quantum noise).
        mask_min_contrast: darkening by the contrast agent from which a pixel counts as vessel.
        fps: frame rate in frames per second.
        realism: the realism options the run was made with (:class:`Realism`); ``background`` then holds the
            static layers they add (spine, wires, lung markings).
        guide_wire: the run's guide wire, or None.
        detector_blur: sd of the detector blur in pixels of this frame (0: none).
    """

    frames: np.ndarray
    masks: np.ndarray
    clean_frames: np.ndarray
    times: np.ndarray
    contrast_curve: np.ndarray
    background: np.ndarray
    collimator: np.ndarray
    vessel_thickness: np.ndarray
    catheter_thickness: np.ndarray
    tree: VesselTree
    catheter: Catheter
    motion: MotionModel
    bolus: ContrastBolus
    photons_per_pixel: float
    mask_min_contrast: float
    fps: float
    realism: Realism = Realism()
    guide_wire: GuideWire | None = None
    detector_blur: float = 0.0

    @property
    def vessel_fraction(self) -> np.ndarray:
        """``(T,)`` fraction of each frame labelled as vessel."""
        return self.masks.reshape(len(self.masks), -1).mean(axis=1)

    @property
    def opacified(self) -> np.ndarray:
        """``(T,)`` True for frames in which the whole tree is fully opacified (after wash-in, before wash-out)."""
        return (self.times >= self.bolus.opacified_s) & (self.times < self.bolus.washout_s)


def _seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.SeedSequence(int(seed))
    raise ConfigError(f"seed must be a non-negative int or a numpy.random.SeedSequence, got {seed!r}")


def _child(sequence: np.random.SeedSequence, index: int) -> np.random.Generator:
    """Generator for a named stream of ``sequence`` (stateless, unlike ``SeedSequence.spawn``)."""
    return np.random.default_rng(np.random.SeedSequence(sequence.entropy, spawn_key=(*sequence.spawn_key, index)))


def simulate_sequence(
    seed: int | np.random.SeedSequence,
    image_size: int = 128,
    num_frames: int = 20,
    fps: float = 15.0,
    *,
    mask_min_contrast: float = 0.05,
    photons_per_pixel: float | None = None,
    motion_scale: float = 1.0,
    realism: Realism | None = None,
) -> XCASequence:
    """Simulate one XCA run: a moving, contrast-filling vessel tree over a breathing chest, with quantum noise.

    Image formation per frame ``t`` (Beer-Lambert): ``transmission = exp(-(background + collimator + mu_c *
    catheter + mu * c(s, t) * chord))`` with the chords in reference (512-frame) pixels, ``counts ~ Poisson(photons *
    transmission / reference)``, displayed linearly so that bright lung reads about 210 of 255. Vessels and catheter
    move with cardiac + respiratory motion (their centrelines are displaced and re-rendered every frame, so the
    mask matches the vessels exactly); the background moves with respiration only and the collimator not at all.

    Geometry, motion and contrast come from one random stream and noise from another, so the first frames do
    not depend on ``num_frames``.

    Args:
        seed: non-negative int or ``numpy.random.SeedSequence``; equal seeds give identical sequences.
        image_size: frame size in pixels (at least 32).
        num_frames: number of frames T.
        fps: frame rate; real XCA runs at 7.5-30 fps, MOSXAV's at about 15.
        mask_min_contrast: darkening by the contrast agent (fraction of the local intensity) from which a pixel
            is labelled vessel.
        photons_per_pixel: mean photon count per pixel at bright background (its 99th percentile), which sets
            the quantum noise; ``None`` draws 300-1200.
        motion_scale: multiplies cardiac and respiratory amplitudes (0 gives a static scene).
        realism: what to add to look like real angiograms (:class:`Realism`; None or the default adds nothing and
            leaves every pixel as without it). Its options draw from streams of their own.

    Returns:
        An :class:`XCASequence` with frames ``(T, H, W)`` uint8 and masks ``(T, H, W)`` uint8 in {0, 1}.

    Example:
        >>> sequence = simulate_sequence(seed=0, image_size=128, num_frames=20)
        >>> sequence.frames.shape, sequence.masks.max()
        ((20, 128, 128), 1)
    """
    _check_image_size(image_size)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not 0.0 < mask_min_contrast < 1.0:
        raise ValueError(f"mask_min_contrast must be in (0, 1), got {mask_min_contrast}")
    if photons_per_pixel is not None and photons_per_pixel <= 0:
        raise ValueError(f"photons_per_pixel must be > 0 or None, got {photons_per_pixel}")
    seed_sequence = _seed_sequence(seed)
    rng, noise_rng = _child(seed_sequence, 0), _child(seed_sequence, 1)
    realism = realism or Realism()
    streams = {name: _child(seed_sequence, index) for name, index in _REALISM_STREAMS.items()}

    def present(name: str) -> bool:
        """Whether this run shows the option ``name`` (drawn only when it is switched on)."""
        return getattr(realism, name) > 0.0 and bool(streams[name].random() < getattr(realism, name))

    tree = sample_vessel_tree(rng, image_size)
    if realism.foreshortening > 0.0:
        stream = streams["foreshortening"]
        tree = foreshorten(tree, 1.0 - stream.uniform(0.0, realism.foreshortening), stream.uniform(0.0, math.pi))
    catheter = sample_catheter(rng, tree)
    wire = sample_guide_wire(streams["guide_wire"], tree, catheter) if present("guide_wire") else None
    motion = sample_motion(rng, image_size, amplitude_scale=motion_scale)
    bolus = sample_contrast_bolus(rng, tree)
    margin = int(math.ceil(float(np.abs(motion.respiratory_amplitude).max()))) + 2
    background_canvas = render_background(rng, image_size, margin=margin)
    if present("spine"):
        background_canvas = background_canvas + render_spine(streams["spine"], image_size, margin=margin)
    if present("sternal_wires"):
        background_canvas = background_canvas + render_chest_hardware(streams["sternal_wires"], image_size,
                                                                       margin=margin)
    if realism.lung_texture > 0.0:
        background_canvas = background_canvas + render_lung_texture(streams["lung_texture"], image_size,
                                                                    realism.lung_texture, margin=margin)
    collimator = render_collimator(rng, tree)
    photons = float(photons_per_pixel if photons_per_pixel is not None else rng.uniform(300.0, 1200.0))
    blur = streams["detector_blur"].uniform(0.0, realism.detector_blur) * image_size / REFERENCE_SIZE

    crop = (slice(margin, margin + image_size), slice(margin, margin + image_size))
    background = background_canvas[crop]
    reference_transmission = float(np.percentile(np.exp(-background), 99.0))
    display_white = 210.0 / 255.0
    to_reference = REFERENCE_SIZE / image_size  # chords in reference pixels, so contrast does not depend on size
    depth_threshold = -math.log(1.0 - mask_min_contrast)

    times = np.arange(num_frames, dtype=np.float64) / fps
    frames = np.empty((num_frames, image_size, image_size), dtype=np.uint8)
    masks = np.empty_like(frames)
    clean_frames = np.empty((num_frames, image_size, image_size), dtype=np.float32)
    contrast_curve = np.empty(num_frames)
    for index, t in enumerate(times):
        move, fill = partial(motion.displacement, t), partial(bolus.concentration, t=t)
        iodine_depth = bolus.attenuation * to_reference * render_vessel_thickness(tree, image_size, move, fill)
        catheter_depth = bolus.catheter_attenuation * to_reference * render_catheter(catheter, image_size, move)
        if wire is not None:
            catheter_depth = catheter_depth + wire.attenuation * to_reference * render_guide_wire(wire, image_size, move)
        tissue_depth = ndimage.shift(background_canvas, respiratory_shift(motion, t), order=1, mode="nearest")[crop]
        transmission = np.exp(-(tissue_depth + collimator + catheter_depth + iodine_depth)) / reference_transmission
        if blur > 0.0:
            transmission = ndimage.gaussian_filter(transmission, blur, mode="nearest")
        counts = xray_counts(photons * transmission, realism.electronic_noise, noise_rng, streams["electronic_noise"])
        clean_frames[index] = np.clip(display_white * transmission, 0.0, 1.0)
        frames[index] = np.clip(np.rint(255.0 * display_white * counts / photons), 0, 255)
        masks[index] = iodine_depth >= depth_threshold
        contrast_curve[index] = float(np.mean(fill(tree.path_length)))

    return XCASequence(
        frames=frames,
        masks=masks,
        clean_frames=clean_frames,
        times=times,
        contrast_curve=contrast_curve,
        background=background.copy(),
        collimator=collimator,
        vessel_thickness=render_vessel_thickness(tree, image_size),
        catheter_thickness=render_catheter(catheter, image_size),
        tree=tree,
        catheter=catheter,
        motion=motion,
        bolus=bolus,
        photons_per_pixel=photons,
        mask_min_contrast=mask_min_contrast,
        fps=fps,
        realism=realism,
        guide_wire=wire,
        detector_blur=float(blur),
    )


# --------------------------------------------------------------------------------------------------------------
# Dataset on disk
# --------------------------------------------------------------------------------------------------------------
_MANIFEST_COLUMNS = ("split", "video", "frame", "image_path", "mask_path", "has_mask", "vessel_fraction")
_WRITER = f"{__name__}.write_xca_dataset"


def video_seed(seed: int, video_index: int) -> np.random.SeedSequence:
    """Seed of video ``syn{video_index:04d}``: child ``video_index`` of ``SeedSequence(seed)``, order independent."""
    return np.random.SeedSequence(seed, spawn_key=(video_index,))


def _read_manifest(path: Path) -> pd.DataFrame:
    manifest = pd.read_csv(
        path,
        dtype={"split": str, "video": str, "frame": np.int64, "image_path": str, "mask_path": str, "has_mask": bool},
        keep_default_na=False,
        na_values={"vessel_fraction": [""]},
    )
    manifest["vessel_fraction"] = manifest["vessel_fraction"].astype(np.float64)
    return manifest


def generator_settings(config: XCAConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`write_xca_dataset` that ``config`` determines (its generator fields; the
    realism options only when some are on, so the default data keep their digest and folder)."""
    realism = Realism.from_config(config).settings()
    return {
        **({"realism": realism} if realism else {}),
        "image_size": int(config.image_size),
        "num_train_videos": int(config.num_train_videos),
        "num_val_videos": int(config.num_val_videos),
        "num_test_videos": int(config.num_test_videos),
        "frames_per_video": int(config.frames_per_video),
        "label_every": int(config.label_every),
        "seed": int(config.seed),
        "fps": 15.0,
    }


def dataset_digest(config: XCAConfig) -> str:
    """8 hex digits naming the dataset ``config`` generates (its settings and :data:`GENERATOR_VERSION`)."""
    return settings_digest(_WRITER, GENERATOR_VERSION, generator_settings(config))


def write_xca_dataset(
    root: str | Path,
    *,
    image_size: int,
    num_train_videos: int,
    num_val_videos: int,
    num_test_videos: int,
    frames_per_video: int,
    label_every: int,
    seed: int,
    fps: float = 15.0,
    realism: Mapping[str, float] | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write synthetic XCA videos in the MOSXAV/DAVIS layout and return the manifest.

    Layout: ``root/<split>/JPEGImages/<video>/00000.png`` (8-bit grayscale frames) and
    ``root/<split>/Annotations_Semantic/<video>/00000.png`` (8-bit, vessel = 1, background = 0), with
    ``<split>`` in train/val/test. Train and validation videos have masks only for frames 0, ``label_every``,
    2 * ``label_every``, ...; test videos for every frame. Videos are numbered ``syn0000``, ``syn0001``, ...
    over train, then val, then test; video ``k`` is simulated from ``SeedSequence(seed, spawn_key=(k,))``, so it
    does not depend on the others. ``root/manifest.csv`` lists every frame (split, video, frame, image_path,
    mask_path, has_mask, vessel_fraction; the fraction is empty where no mask is written).

    The folder is written through :class:`~medseg_core.data.cache.DatasetWriter`: the stamp
    ``medseg_dataset.json`` (parameters, :data:`GENERATOR_VERSION`, every file with size and SHA-256) comes last.
    The same parameters on a complete, intact dataset return its manifest without writing; a partial output of
    an interrupted run is redone; files this function did not write are never deleted or overwritten.

    Args:
        root: dataset folder; created if missing.
        image_size: frame size in pixels.
        num_train_videos, num_val_videos, num_test_videos: videos per split (at least one in total).
        frames_per_video: frames T per video.
        label_every: label period of train and validation videos (5 in MOSXAV).
        seed: dataset seed.
        fps: frame rate of the simulation.
        realism: :class:`Realism` options by name (None or empty: none; they enter the stamp only when given).
        overwrite: replace a complete dataset written with other parameters (or with missing or changed files);
            only the files its stamp lists are deleted.

    Returns:
        The manifest, one row per frame.

    Raises:
        DataError: ``root`` holds a dataset with other parameters, or a damaged one, and ``overwrite`` is False;
            or it holds split folders or a manifest this function did not write.
    """
    _check_image_size(image_size)
    counts = {"train": num_train_videos, "val": num_val_videos, "test": num_test_videos}
    if any(count < 0 for count in counts.values()) or sum(counts.values()) < 1:
        raise ConfigError(f"video counts must be >= 0 with at least one video in total, got {counts}")
    if frames_per_video < 1 or label_every < 1:
        raise ConfigError(f"frames_per_video and label_every must be >= 1, got {frames_per_video} and {label_every}")
    _seed_sequence(seed)
    options = Realism(**(realism or {}))
    root = Path(root)
    settings = {
        **({"realism": options.settings()} if options.settings() else {}),
        "image_size": int(image_size),
        "num_train_videos": int(num_train_videos),
        "num_val_videos": int(num_val_videos),
        "num_test_videos": int(num_test_videos),
        "frames_per_video": int(frames_per_video),
        "label_every": int(label_every),
        "seed": int(seed),
        "fps": float(fps),
    }
    with DatasetWriter(root, writer=_WRITER, version=GENERATOR_VERSION, settings=settings,
                       outputs=(*SPLITS, "manifest.csv")) as output:
        if output.reuse(overwrite):
            return _read_manifest(root / "manifest.csv")
        rows: list[dict[str, Any]] = []
        video_index = 0
        for split in SPLITS:
            for _ in range(counts[split]):
                video = f"syn{video_index:04d}"
                sequence = simulate_sequence(video_seed(seed, video_index), image_size, frames_per_video, fps,
                                             realism=options)
                period = label_every if split in ("train", "val") else 1
                for frame in range(frames_per_video):
                    image_path = f"{split}/JPEGImages/{video}/{frame:05d}.png"
                    write_image(output.claim(image_path), sequence.frames[frame])
                    has_mask = frame % period == 0
                    mask_path = f"{split}/Annotations_Semantic/{video}/{frame:05d}.png" if has_mask else ""
                    if has_mask:
                        write_image(output.claim(mask_path), sequence.masks[frame])
                    fraction = float(sequence.masks[frame].mean()) if has_mask else math.nan
                    values = (split, video, frame, image_path, mask_path, has_mask, fraction)
                    rows.append(dict(zip(_MANIFEST_COLUMNS, values)))
                video_index += 1
        manifest = pd.DataFrame(rows, columns=list(_MANIFEST_COLUMNS))
        manifest.to_csv(output.claim("manifest.csv"), index=False)
        output.finish()
    return _read_manifest(root / "manifest.csv")


def ensure_xca_dataset(config: XCAConfig, root: str | Path, *, overwrite: bool = False) -> Path:
    """Write (or reuse) the synthetic XCA dataset described by ``config`` in ``root`` and return ``root``.

    ``root`` is normally ``get_task("xca").data_dir(profile)``, whose name carries :func:`dataset_digest`, so other
    generator settings get another folder and never replace this one (see :func:`write_xca_dataset`).
    """
    write_xca_dataset(root, **generator_settings(config), overwrite=overwrite)
    return Path(root)
