"""Synthetic timelapses with known tracks, fission and fusion (the tracker's ground truth).

Mitochondria are tubes (a centre, an orientation, a length, a width and a
bend), drawn as exact masks and rendered with a Gaussian PSF, a background
and Poisson noise.  Between frames:
- every object moves (a persistent velocity plus Brownian jitter) and turns a little;
- the whole field drifts (stage drift: a random walk shared by all objects);
- objects appear (new tracks without parents) and disappear (tracks end);
- an object may be missed for one frame (its track continues: a gap);
- a long object may divide in two (fission: the parent track ends, two child
  tracks start) and two neighbours may join (fusion: two parent tracks end,
  one child track starts, spanning both);
- the fluorophore bleaches (``bleach_per_frame``).

Each frame's instances are an instance table (``mitoscale.io.tables``) with
the true ``track_id`` and ``parent_track_ids``; the events are a table of the
tracker's events schema.  Frame ``t`` depends only on ``(seed, t)`` draws
of one generator, so a movie is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from mitoscale.io.tables import instances_to_table
from mitoscale.track.config import MovieConfig

__all__ = ["MovieConfig", "Movie", "simulate_movie"]


@dataclass
class _Seg:
    """One tube of an object, relative to the object's centre (µm, radians)."""

    dy: float
    dx: float
    angle: float
    length: float
    width: float
    bend: float


@dataclass
class _Obj:
    track: int
    y: float
    x: float
    segs: list[_Seg]
    vy: float
    vx: float

    @property
    def length(self) -> float:
        return sum(g.length for g in self.segs)

    def ends(self) -> np.ndarray:
        """End points (µm) of every segment, absolute."""
        pts = []
        for g in self.segs:
            c, s = np.cos(g.angle), np.sin(g.angle)
            for sign in (-0.5, 0.5):
                pts.append((self.y + g.dy + sign * g.length * s, self.x + g.dx + sign * g.length * c))
        return np.array(pts)


@dataclass
class Movie:
    images: np.ndarray                 # (T, H, W) uint16
    tables: list[pd.DataFrame]         # one instance table per frame, with track_id, parent_track_ids
    events: pd.DataFrame               # fission/fusion: event, t, parent_track_ids, child_track_ids, y, x, ...
    drift_px: np.ndarray               # (T, 2) true cumulative stage drift
    parents: dict[int, list[int]] = field(default_factory=dict)


def _mask(o: _Obj, px: float, offset: tuple[float, float], shape) -> tuple[tuple[int, int], np.ndarray] | None:
    """Crop (top-left, bool) of an object: pixels within width/2 of any of its bent centre lines."""
    lines = []
    for g in o.segs:
        t = np.linspace(-0.5, 0.5, 9) * g.length
        ca, sa = np.cos(g.angle), np.sin(g.angle)
        off = g.bend * (t**2 - (g.length / 2) ** 2 / 3)  # a parabola bend, normal to the axis
        lines.append(((o.y + g.dy + t * sa + off * ca) / px + offset[0],
                      (o.x + g.dx + t * ca - off * sa) / px + offset[1], g.width / 2 / px))
    r_max = max(r for _, _, r in lines)
    ally = np.concatenate([ly for ly, _, _ in lines])
    allx = np.concatenate([lx for _, lx, _ in lines])
    y0, y1 = int(np.floor(ally.min() - r_max)), int(np.ceil(ally.max() + r_max)) + 1
    x0, x1 = int(np.floor(allx.min() - r_max)), int(np.ceil(allx.max() + r_max)) + 1
    y0, x0, y1, x1 = max(y0, 0), max(x0, 0), min(y1, shape[0]), min(x1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1]
    m = np.zeros(yy.shape, bool)
    for py, pxs, r in lines:
        best = np.full(yy.shape, np.inf)
        for k in range(len(py) - 1):  # distance to each piece of the centre line
            ay, ax, by, bx = py[k], pxs[k], py[k + 1], pxs[k + 1]
            dy, dx = by - ay, bx - ax
            u = np.clip(((yy - ay) * dy + (xx - ax) * dx) / max(dy * dy + dx * dx, 1e-12), 0, 1)
            best = np.minimum(best, np.hypot(yy - ay - u * dy, xx - ax - u * dx))
        m |= best <= r
    return ((y0, x0), m) if m.any() else None


def simulate_movie(cfg: MovieConfig) -> Movie:
    """Simulate ``cfg.frames`` frames; see the module doc."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 14]))
    px, n = cfg.pixel_size_um, cfg.image_px
    size = n * px
    next_id = [1]
    parents: dict[int, list[int]] = {}

    def new(y=None, x=None, angle=None, length=None, width=None) -> _Obj:
        tid = next_id[0]
        next_id[0] += 1
        speed = cfg.speed_um * rng.uniform(0.5, 1.5)
        direction = rng.uniform(0, 2 * np.pi)
        seg = _Seg(0.0, 0.0, rng.uniform(0, np.pi) if angle is None else angle,
                   rng.uniform(*cfg.length_um) if length is None else length,
                   rng.uniform(*cfg.width_um) if width is None else width, rng.uniform(-0.15, 0.15))
        return _Obj(tid, rng.uniform(1, size - 1) if y is None else y,
                    rng.uniform(1, size - 1) if x is None else x, [seg],
                    speed * np.sin(direction), speed * np.cos(direction))

    objs = [new() for _ in range(cfg.objects)]
    drift = np.zeros((cfg.frames, 2))
    images, tables, events = [], [], []
    min_split = 2 * cfg.length_um[0]
    for t in range(cfg.frames):
        if t:
            drift[t] = drift[t - 1] + rng.normal(0, cfg.drift_um, 2) / px
            objs = _step(objs, cfg, rng, size, t, new, parents, events, min_split)
        seen = [o for o in objs if rng.random() >= cfg.p_miss or t == 0]
        crops = [(o, _mask(o, px, tuple(drift[t]), (n, n))) for o in seen]
        crops = [(o, c) for o, c in crops if c is not None]
        density = np.zeros((n, n), np.float32)
        for _, ((y0, x0), m) in crops:
            density[y0:y0 + m.shape[0], x0:x0 + m.shape[1]] += m
        blurred = gaussian_filter(density, cfg.psf_sigma_um / px)
        fg = blurred[density > 0].mean() if (density > 0).any() else 1.0
        signal = cfg.sbr * cfg.background_photons / max(fg, 1e-6) * (1 - cfg.bleach_per_frame) ** t
        image = rng.poisson(cfg.background_photons + signal * blurred).astype(np.uint16)
        images.append(image)
        table = instances_to_table(
            [m for _, (_, m) in crops], offsets=[o for _, (o, _) in crops], shape=(n, n), image=image,
            image_id="movie", pixel_size_um=px, t=t,
            extra={"track_id": [o.track for o, _ in crops],
                   "parent_track_ids": [parents.get(o.track, []) for o, _ in crops]})
        tables.append(table)
    ev = pd.DataFrame(events, columns=["event", "t", "parent_track_ids", "child_track_ids", "y_um", "x_um"])
    return Movie(np.stack(images) if images else np.zeros((0, n, n), np.uint16), tables, ev, drift, parents)


def _step(objs, cfg, rng, size, t, new, parents, events, min_split):
    """Move every object, then fission, fusion, disappearance and appearance."""
    out = []
    for o in objs:
        if rng.random() < cfg.p_disappear:
            continue
        o.y += o.vy + rng.normal(0, cfg.jitter_um)
        o.x += o.vx + rng.normal(0, cfg.jitter_um)
        turn = rng.normal(0, 0.05)  # the whole object turns about its centre
        c, s_ = np.cos(turn), np.sin(turn)
        for g in o.segs:
            g.dy, g.dx = c * g.dy + s_ * g.dx, -s_ * g.dy + c * g.dx
            g.angle -= turn
        if not 0.5 < o.y < size - 0.5:
            o.vy = -o.vy
        if not 0.5 < o.x < size - 0.5:
            o.vx = -o.vx
        if len(o.segs) == 1 and o.length >= min_split and rng.random() < cfg.p_fission:
            out += _fission(o, new, parents, events, t)
            continue
        out.append(o)
    fused: set[int] = set()  # tracks in a fusion this frame (parents and children)
    gone: set[int] = set()   # the fused parents
    for a in list(out):
        if a.track in fused or rng.random() >= cfg.p_fusion:
            continue
        best, best_d = None, np.inf
        for b in out:
            if b is a or b.track in fused:
                continue
            d = np.min(np.hypot(*(a.ends()[:, None, :] - b.ends()[None, :, :]).transpose(2, 0, 1)))
            if d < 0.6 and d < best_d:  # an end of one within 0.6 µm of an end of the other
                best, best_d = b, d
        if best is None:
            continue
        c = _fusion(a, best, new)
        parents[c.track] = sorted([a.track, best.track])
        events.append(["fusion", t, parents[c.track], [c.track], c.y, c.x])
        fused |= {a.track, best.track, c.track}
        gone |= {a.track, best.track}
        out.append(c)
    out = [o for o in out if o.track not in gone]
    for _ in range(rng.poisson(cfg.p_appear)):
        out.append(new())
    return out


def _fission(o: _Obj, new, parents, events, t) -> list[_Obj]:
    """Cut a one-tube object in two halves along its axis, a small gap apart, moving apart."""
    g = o.segs[0]
    gap = 0.15
    half = (o.length - gap) / 2
    ca, sa = np.cos(g.angle), np.sin(g.angle)
    kids = []
    for sign in (-1, 1):
        shift = sign * (half + gap) / 2
        k = new(o.y + g.dy + shift * sa, o.x + g.dx + shift * ca, g.angle, half, g.width)
        k.segs[0].bend = g.bend / 2
        k.vy, k.vx = o.vy + sign * 0.05 * sa, o.vx + sign * 0.05 * ca
        parents[k.track] = [o.track]
        kids.append(k)
    events.append(["fission", t, [o.track], [k.track for k in kids], o.y, o.x])
    return kids


def _fusion(a: _Obj, b: _Obj, new) -> _Obj:
    """The union of two objects joined by a bridge between their closest ends (a network)."""
    ea, eb = a.ends(), b.ends()
    d = np.hypot(*(ea[:, None, :] - eb[None, :, :]).transpose(2, 0, 1))
    i, j = np.unravel_index(np.argmin(d), d.shape)
    wa = a.length / (a.length + b.length)
    cy, cx = wa * a.y + (1 - wa) * b.y, wa * a.x + (1 - wa) * b.x
    c = new(cy, cx)
    segs = [_Seg(o.y + g.dy - cy, o.x + g.dx - cx, g.angle, g.length, g.width, g.bend)
            for o in (a, b) for g in o.segs]
    (py, px_), (qy, qx) = ea[i], eb[j]
    if d[i, j] > 0.05:
        width = min(g.width for g in segs)
        segs.append(_Seg((py + qy) / 2 - cy, (px_ + qx) / 2 - cx, np.arctan2(qy - py, qx - px_),
                         float(d[i, j]) + width, width, 0.0))
    c.segs = segs
    c.vy, c.vx = wa * a.vy + (1 - wa) * b.vy, wa * a.vx + (1 - wa) * b.vx
    return c
