"""Broad-preset geometry: mitochondria laid out on a whole field.

Objects are drawn for the whole field (not per 128 px crop), so long tubes
run across it.  Four kinds:

- ``tube``: one Bezier tube (as the paper preset's, with more control
  points for long ones), tip-to-tip length from a long-tailed distribution;
- ``dot``: a round or ovoid body (a capsule whose length is at most 1.8x its
  width; length = width is a sphere);
- ``network``: tubes joined at junctions (Y and T shapes), grown as a tree of
  edges that share their end nodes, so the lumen runs through every junction;
- haze: tubes far out of focus, which give light but no ground truth.

Ground-truth rule: a *network* (tubes meeting at a junction) is **one**
instance; two tubes that cross or touch without a junction are **two**
instances, and their masks overlap where they cross.  Crossing tubes are laid
across an earlier tube at a different height (the sum of their radii plus
``crossing_gap_nm`` apart), as real tubules pass over one another.

Layout: an elliptical nucleus-shaped exclusion zone (with probability
``nucleus_probability``), objects clustered around it at an exponential
distance from its edge; no object centre lies inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mitoscale.simulate.config_broad import BroadGeometry, BroadIntensity
from mitoscale.simulate.geometry import Tube, _bernstein, _scale_to_arc, bezier

__all__ = ["FieldObject", "FieldLayout", "sample_field"]


@dataclass
class FieldObject:
    """One instance: its tubes (one, or several for a network) and what was drawn."""

    kind: str  # tube | dot | network
    tubes: list[Tube]
    length_nm: float  # tip to tip for a tube/dot; summed edge arc + width for a network
    width_nm: float
    brightness: float
    z_nm: float


@dataclass
class FieldLayout:
    """Everything drawn for one field."""

    objects: list[FieldObject]
    haze: list[Tube]
    haze_defocus_nm: np.ndarray
    nucleus: tuple[float, float, float, float, float] | None  # cx, cy, a, b, angle
    texture: tuple[np.ndarray, ...] = field(default=())


def _log_uniform(rng, lo, hi, n=None):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


class _Curves:
    """Control points of many tubes, drawn one by one and scaled to their arc lengths in batches.

    :func:`_scale_to_arc` (Newton on the exact arc length) costs ~0.1 ms a call
    whatever the batch size, so the curves of a field are drawn first (every
    random number in the same order as one by one) and scaled together, one
    call per control-point count; a curve needed early (the tube a crossing
    tube is laid across) is scaled on its own when asked for.
    """

    def __init__(self):
        self.pending: dict[int, tuple] = {}  # id(cp) -> (cp, shape_xy, z, arc, centre)

    def draw(self, rng, length, width, bend, direction, centre, z_mean, z_jitter, z_range) -> np.ndarray:
        """Control points (n, 3) of a tube of tip-to-tip ``length`` centred at ``centre`` (filled later)."""
        arc = max(length - width, 0.0)
        n = int(np.clip(3 + arc // 2500, 3, 8)) if arc > 0 else 2
        u = np.linspace(-0.5, 0.5, n)
        lat = np.zeros(n)
        if n > 2:
            lat[1:-1] = rng.uniform(-bend, bend, n - 2)
        c, s = np.cos(direction), np.sin(direction)
        shape_xy = np.stack([u * c - lat * s, u * s + lat * c], axis=1)
        z = np.clip(z_mean + rng.uniform(-z_jitter, z_jitter, n), *z_range)
        cp = np.empty((n, 3))
        self.pending[id(cp)] = (cp, shape_xy, z, arc, np.asarray(centre, dtype=float))
        return cp

    def resolve(self, cp: np.ndarray) -> np.ndarray:
        """Scale one pending curve now (no-op when it is done)."""
        item = self.pending.pop(id(cp), None)
        if item is not None:
            self._fill([item])
        return cp

    def finish(self) -> None:
        """Scale every pending curve, one :func:`_scale_to_arc` call per control-point count."""
        items = list(self.pending.values())
        self.pending.clear()
        for n in sorted({it[1].shape[0] for it in items}):
            self._fill([it for it in items if it[1].shape[0] == n])

    @staticmethod
    def _fill(items) -> None:
        shape_xy = np.stack([it[1] for it in items])
        z = np.stack([it[2] for it in items])
        arc = np.array([it[3] for it in items])
        live = arc > 0
        scale = np.zeros(len(items))
        if live.any():
            scale[live], z[live] = _scale_to_arc(shape_xy[live], z[live], arc[live])
        xy = shape_xy * scale[:, None, None]
        xy = xy - xy.mean(axis=1, keepdims=True) + np.stack([it[4] for it in items])[:, None, :]
        for k, it in enumerate(items):
            it[0][:, :2] = xy[k]
            it[0][:, 2] = z[k]


def _tube(cp, width, length, brightness) -> Tube:
    return Tube(control_points=cp, width_nm=float(width), length_nm=float(length),
                brightness=float(brightness), crop_row=-1, crop_col=-1)


def _network(rng, g: BroadGeometry, width, centre, z_mean, brightness) -> FieldObject:
    """A tree of edges grown from one node; each new edge leaves a node of degree < 3."""
    n_edges = int(rng.integers(g.network_edges[0], g.network_edges[1] + 1))
    nodes = [np.array([0.0, 0.0, z_mean])]
    heading = [rng.uniform(0, 2 * np.pi)]  # direction of the last edge into each node
    degree = [0]
    edges = []
    for _ in range(n_edges):
        free = [i for i, d in enumerate(degree) if d < 3]
        i = int(rng.choice(free))
        if degree[i] == 0:
            ang = heading[i]
        elif degree[i] == 1:  # continue with a turn: a V, later a Y
            ang = heading[i] + rng.choice([-1, 1]) * rng.uniform(np.radians(20), np.radians(75))
        else:  # a side branch: a T or a Y
            ang = heading[i] + rng.choice([-1, 1]) * rng.uniform(np.radians(60), np.radians(120))
        length = float(g.branch_length.sample(rng, 1)[0])
        end = nodes[i] + np.array([np.cos(ang) * length, np.sin(ang) * length,
                                   rng.uniform(-g.z_jitter_nm, g.z_jitter_nm) * 0.5])
        end[2] = np.clip(end[2], *g.z_range_nm)
        mid = 0.5 * (nodes[i] + end)
        off = rng.uniform(-0.15, 0.15) * length
        mid[:2] += off * np.array([-np.sin(ang), np.cos(ang)])
        edges.append(np.stack([nodes[i], mid, end]))
        nodes.append(end)
        heading.append(ang)
        degree.append(1)
        degree[i] += 1
    shift = np.array([centre[0], centre[1], 0.0]) - np.mean([e[:, :] for e in edges], axis=(0, 1)) * [1, 1, 0]
    tubes, total = [], 0.0
    cps = np.stack(edges) + shift  # (E, 3, 3)
    pts = np.einsum("sn,enc->esc", _bernstein(3, 33), cps)
    arcs = np.sqrt((np.diff(pts, axis=1) ** 2).sum(axis=2)).sum(axis=1)
    for cp, arc in zip(cps, arcs.tolist()):
        w = width * rng.uniform(0.85, 1.15)
        tubes.append(_tube(cp, w, arc + w, brightness))
        total += arc
    return FieldObject("network", tubes, total + width, width, brightness, z_mean)


def _position(rng, nucleus, scale, extent) -> np.ndarray:
    """An object centre: clustered around the nucleus (outside it), else uniform."""
    if nucleus is None or rng.uniform() < 0.15:
        while True:
            p = rng.uniform(0, extent, 2)
            if nucleus is None or not _in_nucleus(p, nucleus):
                return p
    cx, cy, a, b, phi = nucleus
    t = rng.uniform(0, 2 * np.pi)
    edge = np.array([a * np.cos(t), b * np.sin(t)])
    d = rng.exponential(scale)
    r = np.hypot(*edge)
    local = edge * (1 + d / max(r, 1e-9))
    c, s = np.cos(phi), np.sin(phi)
    return np.array([cx + c * local[0] - s * local[1], cy + s * local[0] + c * local[1]])


def _in_nucleus(p, nucleus) -> bool:
    cx, cy, a, b, phi = nucleus
    c, s = np.cos(phi), np.sin(phi)
    dx, dy = p[0] - cx, p[1] - cy
    u, v = c * dx + s * dy, -s * dx + c * dy
    return (u / a) ** 2 + (v / b) ** 2 < 1


def sample_field(rng: np.random.Generator, g: BroadGeometry, it: BroadIntensity,
                 extent_nm: float, focal_span_nm: float) -> FieldLayout:
    """Draw every object of one square field of side ``extent_nm``.

    Heights are in simulation z: the focal slices span ``[0, focal_span_nm]``.
    """
    nucleus = None
    if rng.uniform() < g.nucleus_probability:
        a, b = np.sort(rng.uniform(*g.nucleus_semi_axes_nm, 2))[::-1]
        nucleus = (*rng.uniform(0.15, 0.85, 2) * extent_nm, a, b, rng.uniform(0, np.pi))
    scale = rng.uniform(*g.cluster_scale_nm)
    n = int(round(_log_uniform(rng, *g.objects_per_image)))
    f_dot = rng.uniform(*g.dot_fraction)
    f_net = rng.uniform(*g.network_fraction)
    kinds = rng.choice(3, size=n, p=[1 - f_dot - f_net, f_dot, f_net])
    objects: list[FieldObject] = []
    curves = _Curves()
    tubes_so_far: list[FieldObject] = []
    for kind in kinds:
        bright = float(np.exp(rng.normal(0.0, it.brightness_sigma)))
        if rng.uniform() < it.dim_fraction:
            bright *= rng.uniform(*it.dim_factor)
        centre = _position(rng, nucleus, scale, extent_nm)
        z_mean = rng.uniform(*g.z_range_nm)
        direction = rng.uniform(0, 2 * np.pi)
        if kind == 1:
            width = rng.uniform(*g.dot_diameter_nm)
            length = width * rng.uniform(*g.dot_aspect)
            cp = curves.draw(rng, length, width, 0.0, direction, centre, z_mean, 0.0, g.z_range_nm)
            objects.append(FieldObject("dot", [_tube(cp, width, length, bright)], length, width, bright, z_mean))
            continue
        width = float(_log_uniform(rng, *g.width_nm))
        if kind == 2:
            objects.append(_network(rng, g, width, centre, z_mean, bright))
            continue
        length = float(g.tube_length.sample(rng, 1)[0])
        width = min(width, length)
        bend = rng.uniform(*g.bend)
        jitter, z_lim = g.z_jitter_nm, g.z_range_nm
        if tubes_so_far and rng.uniform() < g.crossing_rate:
            # lay it across an earlier tube, above or below it, nearly straight and level
            other = tubes_so_far[int(rng.integers(len(tubes_so_far)))].tubes[0]
            pts = bezier(curves.resolve(other.control_points), 33)
            k = int(rng.integers(6, 27))
            tangent = np.arctan2(*(pts[k + 1, :2] - pts[k - 1, :2])[::-1])
            direction = tangent + rng.choice([-1, 1]) * rng.uniform(np.radians(35), np.radians(90))
            gap = other.radius_nm + width / 2 + g.crossing_gap_nm
            options = [z for z in (pts[k, 2] - gap, pts[k, 2] + gap) if g.z_range_nm[0] <= z <= g.z_range_nm[1]]
            z_mean = float(rng.choice(options)) if options else float(np.clip(pts[k, 2] + gap, *g.z_range_nm))
            centre = pts[k, :2]
            bend, jitter, z_lim = min(bend, 0.1), 0.0, (z_mean, z_mean)
        cp = curves.draw(rng, length, width, bend, direction, centre, z_mean, jitter, z_lim)
        objects.append(FieldObject("tube", [_tube(cp, width, length, bright)], length, width, bright,
                                   np.nan))  # z_nm: the mean control-point height, once scaled
        tubes_so_far.append(objects[-1])
    # out-of-focus haze: no ground truth (see docs/simulate.md)
    n_haze = int(rng.integers(g.haze_objects[0], g.haze_objects[1] + 1))
    haze, defocus = [], np.empty(n_haze)
    for j in range(n_haze):
        length = float(g.tube_length.sample(rng, 1)[0])
        width = min(float(_log_uniform(rng, *g.width_nm)), length)
        defocus[j] = rng.uniform(*g.haze_defocus_nm)
        cp = curves.draw(rng, length, width, rng.uniform(*g.bend), rng.uniform(0, 2 * np.pi),
                         _position(rng, nucleus, scale, extent_nm), 0.0, 0.0, (0.0, 0.0))
        haze.append(_tube(cp, width, length, float(np.exp(rng.normal(0.0, it.brightness_sigma)))))
    curves.finish()
    for ob in objects:
        if ob.kind == "tube":
            ob.z_nm = float(ob.tubes[0].control_points[:, 2].mean())
    # nucleoid-like modulation along every object: a few random plane waves
    n_obj, k = len(objects), 3
    period = rng.uniform(*it.nucleoid_period_nm, (n_obj, k))
    theta = rng.uniform(0, 2 * np.pi, (n_obj, k))
    texture = (rng.uniform(*it.nucleoid_amplitude, n_obj), 2 * np.pi / period * np.cos(theta),
               2 * np.pi / period * np.sin(theta), rng.uniform(0, 2 * np.pi, (n_obj, k)))
    return FieldLayout(objects=objects, haze=haze, haze_defocus_nm=defocus, nucleus=nucleus, texture=texture)
