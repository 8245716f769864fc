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

__all__ = ["Tube", "bezier", "arc_length", "sample_tubes", "sample_crop_tubes"]

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
        """Mean height of the centreline (over the curve parameter), nm."""
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


def _scale_to_arc(shape_xy: np.ndarray, z: np.ndarray, arc: np.ndarray):
    """Scale the xy shapes so that each 3D curve has the target arc length.

    Parameters
    ----------
    shape_xy : (T, n, 2) control-point shapes; z : (T, n) heights; arc : (T,)

    Returns
    -------
    scale : (T,) xy scale factors; z : (T, n) heights, flattened where the z
    profile alone would be longer than the target.
    """
    basis = _bernstein(shape_xy.shape[1], _ARC_SAMPLES)
    a = (np.diff(np.einsum("sn,tnc->tsc", basis, shape_xy), axis=1) ** 2).sum(axis=2)  # (T, S)
    dzs = np.diff(z @ basis.T, axis=1)
    z_only = np.abs(dzs).sum(axis=1)
    f = np.where(z_only > arc, arc / np.maximum(z_only, 1e-300), 1.0)
    zm = z.mean(axis=1, keepdims=True)
    z = zm + (z - zm) * f[:, None]
    b = (dzs * f[:, None]) ** 2
    # arc(s) = sum_i sqrt(s^2 a_i + b_i) is convex and increasing in s: Newton
    # from the z-free scale (to the right of the root) decreases monotonically
    scale = arc / np.maximum(np.sqrt(a).sum(axis=1), 1e-12)
    for _ in range(50):
        root = np.sqrt(scale[:, None] ** 2 * a + b)
        err = root.sum(axis=1) - arc
        active = (err > 1e-6 * np.maximum(arc, 1.0)) & (scale > 0)
        if not active.any():
            break
        slope = (scale[:, None] * a / np.maximum(root, 1e-12)).sum(axis=1)
        scale = np.where(active, scale - err / np.maximum(slope, 1e-300), scale)
    return np.maximum(scale, 0.0), z


def _draw_crop(rng: np.random.Generator, g: GeometryConfig) -> dict[str, np.ndarray]:
    """All random numbers of one crop, drawn in a fixed order."""
    count = int(rng.integers(g.count_per_crop[0], g.count_per_crop[1] + 1))
    n_max = g.control_points[1]
    width = rng.uniform(*g.width_nm, count)
    return dict(
        width=width,
        length=np.maximum(rng.uniform(*g.length_nm, count), width),
        n_ctrl=rng.integers(g.control_points[0], n_max + 1, count),
        brightness=rng.uniform(*g.brightness, count),
        theta=rng.uniform(0, 2 * np.pi, count),
        z_mean=rng.uniform(*g.z_range_nm, count),
        lateral=rng.uniform(-g.bend, g.bend, (count, n_max)),
        jitter=rng.uniform(-g.z_jitter_nm, g.z_jitter_nm, (count, n_max)),
        offset=rng.uniform(-g.xy_extent_nm, g.xy_extent_nm, (count, 2)),
    )


def sample_tubes(crops: list[tuple[np.random.Generator, tuple[float, float], int, int]],
                 g: GeometryConfig) -> list[Tube]:
    """Draw the mitochondria of several crops (vectorised over all of them).

    Each tube: width and tip-to-tip length uniform in their ranges (length at
    least the width), ``n`` control points evenly spaced along a random
    in-plane direction with the inner ones offset sideways by up to
    ``bend`` x chord, heights ``z_mean +- z_jitter`` clipped to the z range,
    the shape scaled so that the 3D arc length is ``length - width``, then
    placed at a random offset and shifted so every control point lies within
    ``xy_extent_nm`` of the crop centre (so does the curve: a Bezier curve
    lies in the convex hull of its control points).

    Parameters
    ----------
    crops : list of (rng, (x, y) centre in nm, row, col)
        One entry per crop, each with its own generator (see
        :func:`mitoscale.simulate.render.crop_rng`): a crop's tubes depend
        only on its generator.
    g : GeometryConfig

    Returns
    -------
    list of Tube
        Crop by crop, in draw order.
    """
    draws = [_draw_crop(rng, g) for rng, _, _, _ in crops]
    counts = [len(d["width"]) for d in draws]
    cat = {k: np.concatenate([d[k] for d in draws]) for k in draws[0]} if draws else {}
    if not draws or not sum(counts):
        return []
    centre = np.repeat(np.array([c for _, c, _, _ in crops], dtype=float), counts, axis=0)
    rows = np.repeat([r for _, _, r, _ in crops], counts)
    cols = np.repeat([c for _, _, _, c in crops], counts)
    e = g.xy_extent_nm
    total = len(centre)
    controls: list[np.ndarray] = [None] * total  # type: ignore[list-item]
    for n in np.unique(cat["n_ctrl"]):
        sel = np.flatnonzero(cat["n_ctrl"] == n)
        u = np.linspace(-0.5, 0.5, n)[None, :]
        lat = np.zeros((len(sel), n))
        lat[:, 1:-1] = cat["lateral"][sel, : n - 2]
        c, s = np.cos(cat["theta"][sel])[:, None], np.sin(cat["theta"][sel])[:, None]
        shape_xy = np.stack([u * c - lat * s, u * s + lat * c], axis=2)  # (t, n, 2)
        z = np.clip(cat["z_mean"][sel, None] + cat["jitter"][sel, :n], *g.z_range_nm)
        scale, z = _scale_to_arc(shape_xy, z, cat["length"][sel] - cat["width"][sel])
        xy = shape_xy * scale[:, None, None] + cat["offset"][sel, None, :]
        # shift inside the extent: a curve spans less than 2 e, so one shift per axis does it
        shift = np.clip(xy, -e, e) - xy
        smax, smin = shift.max(axis=1), shift.min(axis=1)
        xy += np.where(smax > 0, smax, smin)[:, None, :] + centre[sel, None, :]
        cp = np.concatenate([xy, z[:, :, None]], axis=2)
        for j, i in enumerate(sel):
            controls[i] = cp[j]
    return [Tube(control_points=controls[i], width_nm=float(cat["width"][i]),
                 length_nm=float(cat["length"][i]), brightness=float(cat["brightness"][i]),
                 crop_row=int(rows[i]), crop_col=int(cols[i]))
            for i in range(total)]


def sample_crop_tubes(rng: np.random.Generator, g: GeometryConfig, centre_xy: tuple[float, float],
                      crop_row: int, crop_col: int) -> list[Tube]:
    """Draw the mitochondria of one crop (see :func:`sample_tubes`)."""
    return sample_tubes([(rng, centre_xy, crop_row, crop_col)], g)
