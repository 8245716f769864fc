"""Random mitochondrion geometry: thick tubes along 3D Bezier curves.

A mitochondrion is the set of points within ``width / 2`` of a Bezier
centreline (a capsule-like tube: round cross-section, hemispherical caps).
Its *length* is measured tip to tip along the curve, caps included:
``length = arc_length(centreline) + width``; a tube whose length equals its
width is a sphere (a "dot").

Coordinates are in nm: ``x`` along image columns, ``y`` along rows (origin
at the top-left corner of pixel (0, 0)), ``z`` up from the simulation's
``z = 0`` plane (``optics.z0_depth_nm`` above the coverslip).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import comb

from mitoscale.simulate.config import GeometryConfig

__all__ = ["Tube", "bezier", "arc_length", "sample_crop_tubes"]

_ARC_SAMPLES = 65


@dataclass(frozen=True)
class Tube:
    """One simulated mitochondrion."""

    control_points: np.ndarray  # (n, 3) nm, x y z
    width_nm: float
    length_nm: float  # tip to tip, caps included
    brightness: float
    crop_row: int
    crop_col: int

    @property
    def radius_nm(self) -> float:
        return self.width_nm / 2

    @property
    def z_nm(self) -> float:
        """Mean z of the centreline."""
        return float(bezier(self.control_points, _ARC_SAMPLES)[:, 2].mean())


@lru_cache(maxsize=64)
def _bernstein(n_ctrl: int, n_samples: int) -> np.ndarray:
    """Bernstein basis matrix (n_samples, n_ctrl), cached and read-only."""
    t = np.linspace(0.0, 1.0, n_samples)[:, None]
    k = np.arange(n_ctrl)[None, :]
    deg = n_ctrl - 1
    out = comb(deg, k) * t**k * (1 - t) ** (deg - k)
    out.setflags(write=False)
    return out


def bezier(control_points: np.ndarray, n_samples: int) -> np.ndarray:
    """Points of a Bezier curve at ``n_samples`` evenly spaced parameters, (n_samples, 3)."""
    cp = np.asarray(control_points, dtype=float)
    return _bernstein(len(cp), n_samples) @ cp


def arc_length(control_points: np.ndarray, n_samples: int = _ARC_SAMPLES) -> float:
    """Arc length of a Bezier curve (polyline of ``n_samples`` points)."""
    pts = bezier(control_points, n_samples)
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def _one_tube(rng: np.random.Generator, g: GeometryConfig, centre_xy: np.ndarray,
              crop_row: int, crop_col: int) -> Tube:
    width = rng.uniform(*g.width_nm)
    length = max(rng.uniform(*g.length_nm), width)
    arc = length - width
    n = int(rng.integers(g.control_points[0], g.control_points[1] + 1))
    brightness = rng.uniform(*g.brightness)

    # unit-chord shape along x with lateral bends of the inner control points
    u = np.linspace(-0.5, 0.5, n)
    lateral = np.zeros(n)
    lateral[1:-1] = rng.uniform(-g.bend, g.bend, n - 2)
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    shape_xy = np.stack([u * c - lateral * s, u * s + lateral * c], axis=1)

    z_lo, z_hi = g.z_range_nm
    z_mean = rng.uniform(z_lo, z_hi)
    dz = rng.uniform(-g.z_jitter_nm, g.z_jitter_nm, n)
    z = np.clip(z_mean + dz, z_lo, z_hi)

    # arc(s) = sum_i sqrt(s^2 |dxy_i|^2 + dz_i^2) over the sampled curve, s = xy scale
    basis = _bernstein(n, _ARC_SAMPLES)
    a = (np.diff(basis @ shape_xy, axis=0) ** 2).sum(axis=1)
    dzs = np.diff(basis @ z)
    z_only = float(np.abs(dzs).sum())
    if z_only > arc:  # the z profile alone must not be longer than the target
        f = arc / z_only
        z = z.mean() + (z - z.mean()) * f
        dzs = dzs * f
    b = dzs**2
    # Newton from the z-free scale: arc(s) is convex and increasing, so the
    # iterates decrease monotonically to the root
    scale = arc / max(float(np.sqrt(a).sum()), 1e-12)
    for _ in range(50):
        root = np.sqrt(scale * scale * a + b)
        err = float(root.sum()) - arc
        if err <= 1e-6 * max(arc, 1.0) or scale <= 0:
            break
        scale -= err / float((scale * a / np.maximum(root, 1e-12)).sum())
    cp = np.column_stack([shape_xy * max(scale, 0.0), z])

    # place: random centre, then shift so every control point is within the extent
    e = g.xy_extent_nm
    offset = rng.uniform(-e, e, 2)
    xy = cp[:, :2] + offset
    shift = np.clip(xy, -e, e) - xy
    # a curve spans less than 2e, so one shift per axis brings it inside
    xy += np.where(shift.max(axis=0) > 0, shift.max(axis=0), shift.min(axis=0))
    cp[:, :2] = xy + centre_xy
    return Tube(control_points=cp, width_nm=float(width), length_nm=float(length),
                brightness=float(brightness), crop_row=crop_row, crop_col=crop_col)


def sample_crop_tubes(rng: np.random.Generator, g: GeometryConfig, centre_xy: tuple[float, float],
                      crop_row: int, crop_col: int) -> list[Tube]:
    """Draw the mitochondria of one crop.

    Parameters
    ----------
    rng : numpy.random.Generator
        The crop's own generator (see :func:`mitoscale.simulate.render.crop_rng`).
    g : GeometryConfig
    centre_xy : (x, y)
        Crop centre in image coordinates, nm.
    crop_row, crop_col : int

    Returns
    -------
    list of Tube
    """
    count = int(rng.integers(g.count_per_crop[0], g.count_per_crop[1] + 1))
    centre = np.asarray(centre_xy, dtype=float)
    return [_one_tube(rng, g, centre, crop_row, crop_col) for _ in range(count)]
