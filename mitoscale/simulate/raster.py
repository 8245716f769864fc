"""Rasterise tubes into z-sampled dye density and 2D ground-truth masks.

Ground-truth rule
-----------------
A pixel belongs to a mitochondrion when its centre lies inside the
orthogonal projection of the 3D tube onto the xy plane, i.e. within
``width / 2`` of the xy projection of the centreline (round ends included).
This is exactly the projection of the capsule-shaped tube, so a mask is what
an ideal, noise-free, infinitely sharp max projection of the object would
show; it does not depend on the optics or the noise.

Dye density
-----------
The dye fills the tube volume uniformly (matrix labelling).  Under each pixel
centre the tube occupies the z interval ``[z_lo, z_hi]`` of the union of the
capsules (cylinder + spherical ends) around the centreline's polyline
segments, computed exactly per segment: along a segment the vertical chord
top ``z(s) + sqrt(r^2 - d(s)^2)`` is maximised in closed form (at
``s0 + h sin(tilt) / L``, clamped to the segment; ``s0`` the lateral
projection, ``h`` the chord half-height at the axis, ``L`` the segment's xy
length), and likewise the bottom; the interval spans the extreme top and
bottom over all segments.  It is distributed onto object planes ``z_j``
spaced ``dz`` apart with linear-interpolation (hat) weights, integrated
exactly, so the density is continuous in z and sums to the projected
thickness.

The Bezier centreline is approximated by a polyline of 1, 4, 8, 16, 32, 64
or 128 segments of at most 150 nm where possible (the paper preset's tubes,
at most 2.3 µm of centreline, never need more than 16); the deviation from
the curve is a few nm, far below a pixel.

Objects made of several tubes
-----------------------------
A branched network (the broad preset) is several tubes with one instance:
``groups[i]`` names the object of tube ``i``.  The mask of an object is the
union of its tubes' masks, and under each pixel its dye fills the z interval
spanned by all its tubes' capsules there (a continuous lumen through the
junction, no double counting where the tubes meet).  Without ``groups``
every tube is its own object (the paper preset, unchanged).
"""

from __future__ import annotations

import numpy as np

from mitoscale.simulate.geometry import Tube, bezier
from mitoscale.simulate.raster_kernels import cover, deposit

__all__ = ["rasterise", "segment_count"]

_SEGMENT_NM = 150.0
_BUCKETS = (1, 4, 8, 16, 32, 64, 128)


def segment_count(arc_nm: float) -> int:
    """Polyline segments used for a centreline of this arc length (1, 4, ..., 128)."""
    for n in _BUCKETS:
        if arc_nm <= n * _SEGMENT_NM:
            return n
    return _BUCKETS[-1]


def _geometry(tubes: list[Tube]):
    """Polyline segments of all tubes: start (Ns, 3), step (Ns, 3), tube index (Ns,)."""
    nseg = np.array([segment_count(max(t.length_nm - t.width_nm, 0.0)) for t in tubes])
    starts, steps, owner = [], [], []
    for n in np.unique(nseg):
        members = np.flatnonzero(nseg == n)
        pts = np.stack([bezier(tubes[i].control_points, n + 1) for i in members])  # (T, n + 1, 3)
        starts.append(pts[:, :-1].reshape(-1, 3))
        steps.append(np.diff(pts, axis=1).reshape(-1, 3))
        owner.append(np.repeat(members, n))
    return np.concatenate(starts), np.concatenate(steps), np.concatenate(owner)


def rasterise(
    tubes: list[Tube],
    shape: tuple[int, int],
    pixel_size_nm: float,
    plane_z_nm: np.ndarray,
    margin_px: int,
    grid_shape: tuple[int, int] | None = None,
    *,
    groups: np.ndarray | None = None,
    brightness: np.ndarray | None = None,
    texture: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    density: bool = True,
):
    """Dye density on object planes and the ground-truth mask of every tube.

    Every polyline segment is paired with the pixels of its own small window
    (its bounding box grown by the radius); one compiled pass over those
    (pixel, segment) pairs combines the results per object pixel (any
    inside, highest top, lowest bottom) and a second one spreads each
    pixel's z interval onto the planes (:mod:`~mitoscale.simulate.raster_kernels`).

    Parameters
    ----------
    tubes : list of Tube
    shape : (H, W)
        Image shape; the density grid extends ``margin_px`` beyond every
        side so that light from objects just outside the field is kept.
    pixel_size_nm : float
    plane_z_nm : (P,) array
        Evenly spaced object-plane heights covering every tube.
    margin_px : int
    grid_shape : (GH, GW), optional
        Shape of the returned density planes, at least ``(H + 2 m, W + 2 m)``
        (e.g. the padded FFT grid, so that no copy is needed later); the
        extra rows and columns stay zero.
    groups : (T,) int array, optional
        Object index of every tube, ``0..n_objects-1`` (default: one object
        per tube).  Masks, windows and the z union are per object.
    brightness : (n_objects,) array, optional
        Dye density per object (default: each tube's ``brightness``; with
        ``groups``, that of the object's first tube).
    texture : (amplitude (O,), kx (O, K), ky (O, K), phase (O, K)), optional
        Uneven labelling: the density of object ``o`` at pixel centre
        ``(x, y)`` (nm) is multiplied by
        ``max(0, 1 + amplitude[o] / 2 * sqrt(2 / K) * sum_k sin(kx x + ky y + phase))``
        (a modulation of standard deviation amplitude / 2: about +-amplitude).
    density : bool
        ``False`` skips the density (masks only; ``density`` is then ``None``).

    Returns
    -------
    density : (P, GH, GW) float32 or None
        Dye amount per pixel and plane (nm of tube thickness x brightness);
        image pixel (i, j) is density pixel (i + m, j + m).
    masks : list of (bbox, crop) or None
        Per object, the half-open bbox ``(y0, x0, y1, x1)`` in image pixels and
        the boolean crop; ``None`` when no pixel centre of the image lies in
        the object.
    """
    h, w = shape
    m = int(margin_px)
    gh, gw = grid_shape if grid_shape is not None else (h + 2 * m, w + 2 * m)
    if gh < h + 2 * m or gw < w + 2 * m:
        raise ValueError(f"grid_shape {grid_shape} is smaller than the image plus margins")
    plane_z = np.asarray(plane_z_nm, dtype=np.float64)
    n_planes = len(plane_z)
    dz = float(plane_z[1] - plane_z[0]) if n_planes > 1 else 1.0
    if groups is None:
        groups = np.arange(len(tubes))
    groups = np.asarray(groups, dtype=np.int64)
    n_obj = int(groups.max()) + 1 if len(groups) else 0
    masks: list = [None] * n_obj
    if not tubes:
        return (np.zeros((n_planes, gh, gw), dtype=np.float32) if density else None), masks
    p = float(pixel_size_nm)
    radius = np.array([t.radius_nm for t in tubes])
    if brightness is None:
        _, first = np.unique(groups, return_index=True)
        bright = np.array([t.brightness for t in tubes])[first]
    else:
        bright = np.asarray(brightness, dtype=float)
    a, step, seg_of = _geometry(tubes)
    b = a + step
    r_seg = radius[seg_of]
    seg_tube = groups[seg_of]  # the object of each segment

    def window(lo_x, lo_y, hi_x, hi_y):
        x0 = np.maximum(np.floor(lo_x / p - 0.5).astype(np.int64), -m)
        y0 = np.maximum(np.floor(lo_y / p - 0.5).astype(np.int64), -m)
        x1 = np.minimum(np.ceil(hi_x / p + 0.5).astype(np.int64) + 1, w + m)
        y1 = np.minimum(np.ceil(hi_y / p + 0.5).astype(np.int64) + 1, h + m)
        return y0, x0, np.maximum(y1 - y0, 0), np.maximum(x1 - x0, 0)

    # one window per tube (for the masks and the pixel keys) ...
    lo = np.full((n_obj, 2), np.inf)
    hi = np.full((n_obj, 2), -np.inf)
    np.minimum.at(lo, seg_tube, np.minimum(a, b)[:, :2] - r_seg[:, None])
    np.maximum.at(hi, seg_tube, np.maximum(a, b)[:, :2] + r_seg[:, None])
    ty0, tx0, thh, tww = window(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1])
    tstart = np.cumsum(thh * tww) - thh * tww
    n_pix = int((thh * tww).sum())
    # ... and one per segment, whose pixels are tested against that segment (compiled)
    sy0, sx0, shh, sww = window(np.minimum(a[:, 0], b[:, 0]) - r_seg, np.minimum(a[:, 1], b[:, 1]) - r_seg,
                                np.maximum(a[:, 0], b[:, 0]) + r_seg, np.maximum(a[:, 1], b[:, 1]) + r_seg)
    in_win, z_lo, z_hi = cover(a, step, r_seg, _k_ds(step), seg_tube, np.stack([sy0, sx0, shh, sww], axis=1),
                               np.stack([ty0, tx0, thh, tww], axis=1), tstart, p, n_pix, density)
    pix = np.flatnonzero(in_win)
    owner = np.searchsorted(tstart, pix, side="right") - 1
    local = pix - tstart[owner]
    prow = ty0[owner] + local // tww[owner]
    pcol = tx0[owner] + local % tww[owner]

    if density:
        # exact hat-function (linear interpolation) weights on the planes within dz of each
        # pixel's interval, accumulated in float32, pixel-major and plane-ascending (compiled)
        amount = dz * bright[owner]
        if texture is not None:
            amount = amount * _texture(texture, owner, (pcol + 0.5) * p, (prow + 0.5) * p)
        dens = np.zeros((n_planes, gh, gw), dtype=np.float32)
        deposit(dens.reshape(-1), z_lo[pix], z_hi[pix], amount, (prow + m) * gw + (pcol + m), plane_z, dz)
    else:
        dens = None

    # ground truth restricted to the image: tight bbox of each tube's inside
    # pixels (pix is sorted, so each tube's pixels are one contiguous run)
    valid = (prow >= 0) & (prow < h) & (pcol >= 0) & (pcol < w)
    vo, vr, vc = owner[valid], prow[valid], pcol[valid]
    if vo.size:
        first = np.flatnonzero(np.r_[True, vo[1:] != vo[:-1]])
        tubes_with = vo[first]
        by0, by1 = np.minimum.reduceat(vr, first), np.maximum.reduceat(vr, first) + 1
        bx0, bx1 = np.minimum.reduceat(vc, first), np.maximum.reduceat(vc, first) + 1
        for i, y0, y1, x0, x1 in zip(tubes_with.tolist(), by0.tolist(), by1.tolist(), bx0.tolist(), bx1.tolist()):
            win = in_win[tstart[i]: tstart[i] + thh[i] * tww[i]].reshape(thh[i], tww[i])
            crop = win[y0 - ty0[i]: y1 - ty0[i], x0 - tx0[i]: x1 - tx0[i]]
            masks[i] = ((y0, x0, y1, x1), crop)
    return dens, masks


def _k_ds(step: np.ndarray) -> np.ndarray:
    """``1 / (L sqrt(L^2 + step_z^2))`` per segment (``L`` its xy length), 1e30 for a vertical one.

    The capsule's chord top along a segment is highest at ``s0 + h step_z k_ds``
    (see the module doc).
    """
    l2_seg = step[:, 0] ** 2 + step[:, 1] ** 2
    length3 = np.sqrt(l2_seg + step[:, 2] ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(l2_seg > 0, 1.0 / np.sqrt(l2_seg) / np.maximum(length3, 1e-300), 1e30)


def _texture(texture, owner: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Multiplicative labelling factor of each (pixel, object) pair (see :func:`rasterise`)."""
    amp, kx, ky, phase = (np.asarray(v, dtype=float) for v in texture)
    k = kx.shape[1]
    wave = np.sin(kx[owner] * x[:, None] + ky[owner] * y[:, None] + phase[owner]).sum(axis=1)
    return np.maximum(1.0 + 0.5 * amp[owner] * np.sqrt(2.0 / k) * wave, 0.0)
