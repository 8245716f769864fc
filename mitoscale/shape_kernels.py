"""Compiled per-skeleton-pixel measurements for :mod:`mitoscale.shape`.

:func:`skeleton_pixels` gives, at the skeleton pixels only, what the shape
columns read from two whole-mosaic passes: the Euclidean distance to the
nearest background pixel centre (``scipy.ndimage.distance_transform_edt``,
minus 1/2) and whether the pixel has any 8-neighbour on the skeleton.  The
distance is the exact minimum over the background, found by growing square
rings until no closer pixel can remain, and computed as scipy computes it
(the square root of an exact integer sum in float64), so it is bit for bit
scipy's value (``tests/simulate/test_shape_kernels.py``).  The skeleton is a
few percent of the mosaic, so this costs a fraction of the full transforms.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["skeleton_pixels"]


def skeleton_pixels(canvas: np.ndarray, skel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the mask edge and isolation of every skeleton pixel.

    Parameters
    ----------
    canvas : (H, W) bool
        The masks; at least one background pixel.
    skel : (H, W) bool
        Their skeleton (a subset of ``canvas``).

    Returns
    -------
    half : (H, W) float64
        At skeleton pixels ``EDT - 1/2`` (EDT: distance from the pixel centre to
        the nearest background pixel centre of ``canvas``), 0 elsewhere.
    lone : (H, W) bool
        Skeleton pixels with no skeleton pixel among their 8 neighbours.
    """
    return _compile()(np.ascontiguousarray(canvas, dtype=np.bool_), np.ascontiguousarray(skel, dtype=np.bool_))


@functools.cache  # compiled on first use, once per process
def _compile():
    import numba

    @numba.njit(cache=True, nogil=True)
    def nearest_background(canvas, y, x):  # pragma: no cover - compiled
        h, w = canvas.shape
        best = -1
        r = 1
        while best < 0 or r * r < best:  # every pixel on ring r is at least r away
            if r > h + w:
                break
            for dy in range(-r, r + 1):
                yy = y + dy
                if yy < 0 or yy >= h:
                    continue
                edge = dy == -r or dy == r
                step = 1 if edge else 2 * r
                for dx in range(-r, r + 1, step):
                    xx = x + dx
                    if 0 <= xx < w and not canvas[yy, xx]:
                        d2 = dy * dy + dx * dx
                        if best < 0 or d2 < best:
                            best = d2
            r += 1
        return best

    @numba.njit(cache=True, nogil=True)
    def kernel(canvas, skel):  # pragma: no cover - compiled
        h, w = skel.shape
        half = np.zeros((h, w), np.float64)
        lone = np.zeros((h, w), np.bool_)
        for y in range(h):
            for x in range(w):
                if not skel[y, x]:
                    continue
                n = 0
                for yy in range(max(y - 1, 0), min(y + 2, h)):
                    for xx in range(max(x - 1, 0), min(x + 2, w)):
                        if skel[yy, xx]:
                            n += 1
                lone[y, x] = n == 1  # itself only
                half[y, x] = np.sqrt(np.float64(nearest_background(canvas, y, x))) - 0.5
        return half, lone

    return kernel
