"""Compiled inner loops of :func:`mitoscale.simulate.raster.rasterise`.

Two kernels, each one pass with no (pixel, segment) temporaries:

- :func:`cover`: for every polyline segment and every pixel of its window,
  whether the pixel centre lies within the radius of the segment, and (for
  the density) the top and bottom of the segment's capsule above and below
  it, combined per object window pixel (any inside, highest top, lowest
  bottom);
- :func:`deposit`: the exact hat-function (linear-interpolation) weights of
  each inside pixel's z interval on the object planes, added to the density.

Every value is computed with the same floating-point operations, in the
same order, as the NumPy formulation documented in :mod:`~mitoscale.simulate.raster`
(no fused multiply-add, no fast-math), and the density is accumulated in
float32 in the same pixel-major, plane-ascending order as ``np.add.at`` did,
so the results are bit for bit those of that formulation
(``tests/simulate/test_raster_kernels.py`` checks it against the NumPy
reference).  Compiled with ``cache=True``: no JIT cost per worker process
after the first.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["cover", "deposit"]


def cover(a, step, r_seg, k_ds, seg_obj, seg_win, obj_win, tstart, pixel_size_nm, n_pix, with_z):
    """Inside flags and z interval of every object window pixel.

    Parameters
    ----------
    a, step : (Ns, 3) float64
        Segment starts and steps (nm).
    r_seg : (Ns,) float64
        Radius of each segment's tube.
    k_ds : (Ns,) float64
        ``1 / (L sqrt(L^2 + step_z^2))`` per segment (``L`` its xy length; 1e30 when ``L = 0``).
    seg_obj : (Ns,) int64
        Object of each segment.
    seg_win : (Ns, 4) int64
        Window ``(y0, x0, height, width)`` of each segment.
    obj_win : (n_obj, 4) int64
        Window ``(y0, x0, height, width)`` of each object.
    tstart : (n_obj,) int64
        Offset of each object's window in the flat pixel arrays.
    pixel_size_nm : float
    n_pix : int
        Total pixels of the object windows.
    with_z : bool
        Also compute the z interval (else ``z_lo``/``z_hi`` stay at +-inf).

    Returns
    -------
    inside : (n_pix,) bool
    z_lo, z_hi : (n_pix,) float64
    """
    return _compile()[0](a, step, r_seg, k_ds, seg_obj, seg_win, obj_win, tstart,
                         float(pixel_size_nm), int(n_pix), bool(with_z))


def deposit(dens, z_lo, z_hi, amount, flat_xy, plane_z, dz):
    """Add each pixel's hat weights, times ``amount``, to ``dens`` (in place).

    Parameters
    ----------
    dens : (P * GH * GW,) float32
        The flat density planes.
    z_lo, z_hi : (n,) float64
        Each inside pixel's z interval.
    amount : (n,) float64
        Dye per nm of thickness (``dz`` x brightness x texture).
    flat_xy : (n,) int64
        Each pixel's flat index within one plane.
    plane_z : (P,) float64
    dz : float
    """
    _compile()[1](dens, z_lo, z_hi, amount, flat_xy, plane_z, float(dz))


@functools.cache  # compiled on first use, once per process
def _compile():
    import numba

    @numba.njit(cache=True, nogil=True)
    def clip01(v):  # pragma: no cover - compiled
        return min(max(v, 0.0), 1.0)

    @numba.njit(cache=True, nogil=True)
    def cover_kernel(a, step, r_seg, k_ds, seg_obj, seg_win, obj_win, tstart, p, n_pix,
                     with_z):  # pragma: no cover - compiled
        inside = np.zeros(n_pix, np.bool_)
        z_lo = np.full(n_pix, np.inf)
        z_hi = np.full(n_pix, -np.inf)
        for s in range(a.shape[0]):
            ax, ay, az = a[s, 0], a[s, 1], a[s, 2]
            sx, sy, sz = step[s, 0], step[s, 1], step[s, 2]
            l2 = sx * sx + sy * sy
            inv = 1.0 / max(l2, 1e-300) if l2 > 0 else 0.0
            r2 = r_seg[s] * r_seg[s]
            o = seg_obj[s]
            oy, ox, ow = obj_win[o, 0], obj_win[o, 1], obj_win[o, 3]
            base = tstart[o]
            y0, x0, hh, ww = seg_win[s, 0], seg_win[s, 1], seg_win[s, 2], seg_win[s, 3]
            for row in range(y0, y0 + hh):
                dy = (row + 0.5) * p - ay
                for col in range(x0, x0 + ww):
                    dx = (col + 0.5) * p - ax
                    s0 = (dx * sx + dy * sy) * inv
                    h2 = r2 - (dx * dx + dy * dy - s0 * s0 * l2)
                    c = clip01(s0) - s0
                    if h2 - c * c * l2 < 0:
                        continue
                    key = base + (row - oy) * ow + (col - ox)
                    inside[key] = True
                    if not with_z:
                        continue
                    ds = np.sqrt(max(h2, 0.0)) * sz * k_ds[s]
                    s_hi = clip01(s0 + ds)
                    s_lo = clip01(s0 - ds)
                    e = s_hi - s0
                    top = az + s_hi * sz + np.sqrt(max(h2 - e * e * l2, 0.0))
                    e = s_lo - s0
                    bottom = az + s_lo * sz - np.sqrt(max(h2 - e * e * l2, 0.0))
                    if top > z_hi[key]:
                        z_hi[key] = top
                    if bottom < z_lo[key]:
                        z_lo[key] = bottom
        return inside, z_lo, z_hi

    @numba.njit(cache=True, nogil=True)
    def hat_cdf(u):  # pragma: no cover - compiled
        u = min(max(u, -1.0), 1.0)
        if u <= 0:
            t = u + 1
            return 0.5 * (t * t)
        t = 1 - u
        return 1.0 - 0.5 * (t * t)

    @numba.njit(cache=True, nogil=True)
    def deposit_kernel(dens, z_lo, z_hi, amount, flat_xy, plane_z, dz):  # pragma: no cover - compiled
        n_planes = plane_z.shape[0]
        plane_px = dens.shape[0] // n_planes
        z0 = plane_z[0]
        for i in range(z_lo.shape[0]):
            zl, zh = z_lo[i], z_hi[i]
            j0 = min(max(np.int64(np.floor((zl - z0) / dz)) - 1, 0), n_planes - 1)
            j1 = min(max(np.int64(np.ceil((zh - z0) / dz)) + 1, 0), n_planes - 1)
            for j in range(j0, j1 + 1):
                pz = plane_z[j]
                w = (hat_cdf((zh - pz) / dz) - hat_cdf((zl - pz) / dz)) * amount[i]
                if w > 0:
                    dens[j * plane_px + flat_xy[i]] += np.float32(w)

    return cover_kernel, deposit_kernel
