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
centre the tube occupies a z interval: for the body, centred on the
centreline's z at the nearest projected point, with half-length
``sqrt(r^2 - d^2) / cos(tilt)`` (exact for a straight inclined cylinder,
``d`` the lateral distance); for the caps, the sphere chord
``sqrt(r^2 - d^2)``.  That interval is distributed onto object planes
``z_j`` spaced ``dz`` apart with linear-interpolation (hat) weights,
integrated exactly, so the density is continuous in z and sums to the true
projected thickness.
"""

from __future__ import annotations

import math

import numpy as np

from mitoscale.simulate.geometry import Tube, bezier

__all__ = ["rasterise", "segment_count"]

_SEGMENT_NM = 125.0
_MAX_SEGMENTS = 24


def segment_count(arc_nm: float) -> int:
    """Polyline segments used for a centreline of this arc length."""
    return int(min(_MAX_SEGMENTS, max(2, math.ceil(arc_nm / _SEGMENT_NM))))


def _hat_cdf(u: np.ndarray) -> np.ndarray:
    """Integral of the unit hat function (support [-1, 1]) from -inf to ``u``."""
    u = np.clip(u, -1.0, 1.0)
    return np.where(u <= 0, 0.5 * (u + 1) ** 2, 1.0 - 0.5 * (1 - u) ** 2)


def _nearest_on_polyline(px: np.ndarray, py: np.ndarray, pts: np.ndarray):
    """Nearest point of a 2D-projected polyline for every query point.

    Returns squared lateral distance, z of the centreline there, cos of the
    segment's tilt and whether the nearest point is a curve end (cap).
    """
    a = pts[:-1]
    seg = pts[1:] - a  # (S, 3)
    sxy2 = seg[:, 0] ** 2 + seg[:, 1] ** 2
    dx = px[:, None] - a[None, :, 0]
    dy = py[:, None] - a[None, :, 1]
    t = (dx * seg[None, :, 0] + dy * seg[None, :, 1]) / np.maximum(sxy2, 1e-12)[None, :]
    np.clip(t, 0.0, 1.0, out=t)
    ex = dx - t * seg[None, :, 0]
    ey = dy - t * seg[None, :, 1]
    d2 = ex * ex + ey * ey
    k = np.argmin(d2, axis=1)
    rows = np.arange(len(k))
    tk = t[rows, k]
    zc = a[k, 2] + tk * seg[k, 2]
    seg_len = np.sqrt(sxy2 + seg[:, 2] ** 2)
    cos_tilt = np.where(seg_len > 0, np.sqrt(sxy2) / np.maximum(seg_len, 1e-12), 1.0)[k]
    cap = ((k == 0) & (tk <= 0.0)) | ((k == len(seg) - 1) & (tk >= 1.0))
    return d2[rows, k], zc, cos_tilt, cap


def rasterise(
    tubes: list[Tube],
    shape: tuple[int, int],
    pixel_size_nm: float,
    plane_z_nm: np.ndarray,
    margin_px: int,
):
    """Dye density on object planes and the ground-truth mask of every tube.

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

    Returns
    -------
    density : (P, H + 2 m, W + 2 m) float32
        Dye amount per pixel and plane (nm of tube thickness x brightness);
        image pixel (i, j) is density pixel (i + m, j + m).
    masks : list of (bbox, crop) or None
        Per tube, the half-open bbox ``(y0, x0, y1, x1)`` in image pixels and
        the boolean crop; ``None`` when no pixel centre of the image lies in
        the tube.
    """
    h, w = shape
    m = int(margin_px)
    plane_z = np.asarray(plane_z_nm, dtype=np.float64)
    dz = float(plane_z[1] - plane_z[0]) if len(plane_z) > 1 else 1.0
    density = np.zeros((len(plane_z), h + 2 * m, w + 2 * m), dtype=np.float32)
    masks = []
    p = float(pixel_size_nm)
    for tube in tubes:
        r = tube.radius_nm
        arc = max(tube.length_nm - tube.width_nm, 0.0)
        pts = bezier(tube.control_points, segment_count(arc) + 1)
        if arc == 0.0:
            pts = pts[:2]
        # window of density pixels (in image pixel indices, may be negative)
        x0 = max(int(math.floor((pts[:, 0].min() - r) / p - 0.5)), -m)
        x1 = min(int(math.ceil((pts[:, 0].max() + r) / p + 0.5)) + 1, w + m)
        y0 = max(int(math.floor((pts[:, 1].min() - r) / p - 0.5)), -m)
        y1 = min(int(math.ceil((pts[:, 1].max() + r) / p + 0.5)) + 1, h + m)
        if x1 <= x0 or y1 <= y0:
            masks.append(None)
            continue
        cols = (np.arange(x0, x1) + 0.5) * p
        rows = (np.arange(y0, y1) + 0.5) * p
        py, px = np.meshgrid(rows, cols, indexing="ij")
        d2, zc, cos_tilt, cap = _nearest_on_polyline(px.ravel(), py.ravel(), pts)
        inside = d2 <= r * r
        half = np.sqrt(np.maximum(r * r - d2, 0.0))
        half = np.where(cap, half, half / cos_tilt)
        lo, hi = zc - half, zc + half
        # planes this tube can reach
        j0 = max(int(math.floor((lo[inside].min() - plane_z[0]) / dz)) - 1, 0) if inside.any() else 0
        j1 = min(int(math.ceil((hi[inside].max() - plane_z[0]) / dz)) + 2, len(plane_z)) if inside.any() else 0
        win = (slice(y0 + m, y1 + m), slice(x0 + m, x1 + m))
        for j in range(j0, j1):
            wgt = dz * (_hat_cdf((hi - plane_z[j]) / dz) - _hat_cdf((lo - plane_z[j]) / dz))
            wgt *= inside * tube.brightness
            density[j][win] += wgt.reshape(y1 - y0, x1 - x0).astype(np.float32)
        # ground truth restricted to the image
        inside = inside.reshape(y1 - y0, x1 - x0)
        iy0, iy1 = max(y0, 0), min(y1, h)
        ix0, ix1 = max(x0, 0), min(x1, w)
        crop = inside[iy0 - y0: iy1 - y0, ix0 - x0: ix1 - x0] if iy1 > iy0 and ix1 > ix0 else None
        if crop is None or not crop.any():
            masks.append(None)
            continue
        ys, xs = np.nonzero(crop.any(axis=1))[0], np.nonzero(crop.any(axis=0))[0]
        by0, bx0 = iy0 + ys[0], ix0 + xs[0]
        crop = crop[ys[0]: ys[-1] + 1, xs[0]: xs[-1] + 1]
        masks.append(((by0, bx0, by0 + crop.shape[0], bx0 + crop.shape[1]), crop))
    return density, masks
