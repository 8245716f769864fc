"""Foreground estimation and point-prompt sampling, per frame.

The threshold is computed once on the whole (normalised, smoothed) frame, not
per tile, so that neighbouring tiles agree on what is foreground.  Prompts
are the brightest foreground pixel of every ``spacing x spacing`` cell: they
sit on mitochondrial ridges rather than on dim rims, the count scales with
the foreground area, and the result is deterministic.
"""

from __future__ import annotations

import numpy as np

__all__ = ["smooth", "foreground", "sample_prompts", "maxima_prompts"]


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smoothed float32 copy (``sigma`` in px; 0 returns the input)."""
    image = np.asarray(image, dtype=np.float32)
    if sigma <= 0:
        return image
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma, mode="reflect")


def foreground(image: np.ndarray, method: str = "otsu") -> tuple[np.ndarray, float]:
    """Binary foreground of a 2D image by a global histogram threshold.

    Parameters
    ----------
    image : (H, W) float array
    method : {"otsu", "li", "triangle", "yen"}
        scikit-image ``threshold_<method>``.

    Returns
    -------
    mask : (H, W) bool
        ``image > threshold``.
    threshold : float
    """
    from skimage import filters

    fn = getattr(filters, f"threshold_{method}")
    finite = image[np.isfinite(image)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(image.shape, bool), float("nan")
    thr = float(fn(finite))
    return image > thr, thr


def sample_prompts(image: np.ndarray, mask: np.ndarray, spacing: int,
                   max_prompts: int | None = None) -> np.ndarray:
    """One prompt per grid cell with foreground: the cell's brightest foreground pixel.

    Parameters
    ----------
    image : (H, W) float array
        Intensities used to pick the pixel (the smoothed frame).
    mask : (H, W) bool
        Foreground.
    spacing : int
        Cell edge in px.
    max_prompts : int, optional
        Keep only the brightest ones.

    Returns
    -------
    (N, 2) int64 array of ``(y, x)``, brightest first (ties by position).
    """
    h, w = mask.shape
    s = int(spacing)
    hp, wp = -(-h // s) * s, -(-w // s) * s
    vals = np.full((hp, wp), -np.inf, dtype=np.float32)
    vals[:h, :w] = np.where(mask, image, -np.inf)
    cells = vals.reshape(hp // s, s, wp // s, s).transpose(0, 2, 1, 3).reshape(hp // s, wp // s, s * s)
    best = cells.argmax(axis=-1)
    bval = np.take_along_axis(cells, best[..., None], axis=-1)[..., 0]
    cy, cx = np.nonzero(np.isfinite(bval))
    b = best[cy, cx]
    ys = cy * s + b // s
    xs = cx * s + b % s
    order = np.lexsort((xs, ys, -bval[cy, cx]))
    pts = np.stack([ys[order], xs[order]], axis=1).astype(np.int64)
    if max_prompts is not None:
        pts = pts[:max_prompts]
    return pts


def maxima_prompts(image: np.ndarray, mask: np.ndarray, spacing: int,
                   max_prompts: int | None = None) -> np.ndarray:
    """Prompts at the foreground's local intensity maxima, at least ``spacing`` px apart.

    On a blurred widefield image each mitochondrion has one or a few ridge
    maxima, so this puts prompts on objects rather than on their blur halo;
    every foreground component without a maximum (a plateau) still gets its
    brightest pixel.

    Returns
    -------
    (N, 2) int64 array of ``(y, x)``, brightest first (ties by position).
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max

    vals = np.where(mask, image, -np.inf).astype(np.float32)
    floor = float(image[mask].min()) if mask.any() else 0.0
    pts = peak_local_max(np.where(mask, image, floor), min_distance=max(1, int(spacing)),
                         labels=mask.astype(np.int32), exclude_border=False)
    lab, n = ndi.label(mask)
    if n:
        have = np.zeros(n + 1, bool)
        have[lab[pts[:, 0], pts[:, 1]]] = True
        missing = np.flatnonzero(~have[1:]) + 1
        if missing.size:
            pos = ndi.maximum_position(vals, lab, missing)
            pts = np.concatenate([pts, np.asarray(pos, dtype=np.int64).reshape(-1, 2)])
    if len(pts) == 0:
        return np.zeros((0, 2), np.int64)
    v = image[pts[:, 0], pts[:, 1]]
    order = np.lexsort((pts[:, 1], pts[:, 0], -v))
    pts = pts[order].astype(np.int64)
    return pts[:max_prompts] if max_prompts is not None else pts
