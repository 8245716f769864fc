"""Ground-truth-free measures of a segmentation on real images.

Every method is measured against ONE reference foreground that none of them
produced: Otsu's threshold on the image after a Gaussian of ``sigma_um``.
From it and a method's instance table:

- ``instances_per_10um``: instances per 10 µm of the foreground's skeleton
  (a network cut into pieces scores high, one instance per tubule low);
- ``median_skeleton_um``: the median of the instances' own skeleton lengths;
- ``coverage``: the share of foreground pixels inside the union of the masks;
- ``outside``: the share of the union's pixels outside the foreground (masks
  laid on haze or background);
- ``dot_share_count`` / ``dot_share_area``: the analysis stage's dot rule
  (:func:`mitoscale.analyse.morphology.classify`).

Skeleton lengths come from skan (sum of its path lengths, pixel centre to
pixel centre, in µm): a 20 px straight line is 19 px long and a one-pixel
skeleton (a dot) is 0 µm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.io.tables import decode_mask

__all__ = ["reference_foreground", "skeleton_length_um", "instance_skeleton_lengths", "union_mask",
           "proxy_metrics", "REFERENCE_SIGMA_UM"]

REFERENCE_SIGMA_UM = 0.1
"""Gaussian σ of the reference foreground: about the widefield PSF's σ (0.21 λ / NA ≈ 0.1 µm)."""


def reference_foreground(image: np.ndarray, pixel_size_um: float,
                         sigma_um: float = REFERENCE_SIGMA_UM) -> np.ndarray:
    """Otsu's threshold on the Gaussian-smoothed image: the boolean foreground."""
    from skimage.filters import gaussian, threshold_otsu

    smooth = gaussian(np.asarray(image, dtype=np.float32), sigma=sigma_um / pixel_size_um,
                      preserve_range=True)
    if smooth.max() <= smooth.min():
        return np.zeros(smooth.shape, dtype=bool)
    return smooth > threshold_otsu(smooth)


def _path_lengths_by_pixel(skeleton: np.ndarray, pixel_size_um: float, ids: np.ndarray,
                           n: int) -> np.ndarray:
    """Sum of skan's path lengths of ``skeleton`` per value of ``ids`` at each path's first pixel."""
    import skan
    from scipy import ndimage as ndi

    out = np.zeros(n, dtype=float)
    neighbours = ndi.convolve(skeleton.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant")
    if not (skeleton & (neighbours > 1)).any():  # only isolated pixels: skan finds no path
        return out
    sk = skan.Skeleton(skeleton, spacing=pixel_size_um)
    first = sk.paths.indices[sk.paths.indptr[:-1]]
    y, x = sk.coordinates[first].astype(int).T
    np.add.at(out, ids[y, x], sk.path_lengths())
    return out


def skeleton_length_um(mask: np.ndarray, pixel_size_um: float) -> float:
    """Total skeleton length (µm) of a boolean mask (skimage skeleton, skan lengths)."""
    from skimage.morphology import skeletonize

    skel = skeletonize(np.asarray(mask, dtype=bool))
    return float(_path_lengths_by_pixel(skel, pixel_size_um, skel.astype(np.int64), 2)[1])


def instance_skeleton_lengths(table: pd.DataFrame, pixel_size_um: float | None = None,
                              width: int = 2048) -> np.ndarray:
    """Skeleton length (µm) of every row of an instance table, in row order.

    Each mask is skeletonized on its own crop; the crops are packed into one
    mosaic, 2 px apart, so that one skan call measures all of them and no two
    instances' skeletons touch (overlapping instances are measured whole).
    """
    from skimage.morphology import skeletonize

    n = len(table)
    if n == 0:
        return np.zeros(0)
    px = float(table["pixel_size_um"].iloc[0]) if pixel_size_um is None else pixel_size_um
    skels, places, y, x, row_h = [], [], 1, 1, 0
    for row in table.itertuples(index=False):
        s = skeletonize(decode_mask((row.bbox_y0, row.bbox_x0, row.bbox_y1, row.bbox_x1), row.mask))
        h, w = s.shape
        if x + w + 1 > max(width, w + 2):  # next shelf
            y, x, row_h = y + row_h + 2, 1, 0
        skels.append(s)
        places.append((y, x))
        x, row_h = x + w + 2, max(row_h, h)
    mosaic = np.zeros((y + row_h + 1, max(width, max(s.shape[1] for s in skels) + 2)), dtype=bool)
    ids = np.zeros(mosaic.shape, dtype=np.int64)
    for k, (s, (py, px_)) in enumerate(zip(skels, places)):
        mosaic[py:py + s.shape[0], px_:px_ + s.shape[1]] = s
        ids[py:py + s.shape[0], px_:px_ + s.shape[1]][s] = k + 1
    return _path_lengths_by_pixel(mosaic, px, ids, n + 1)[1:]


def union_mask(table: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Boolean union of all masks of one image's rows."""
    out = np.zeros(shape, dtype=bool)
    for row in table.itertuples(index=False):
        out[row.bbox_y0:row.bbox_y1, row.bbox_x0:row.bbox_x1] |= decode_mask(
            (row.bbox_y0, row.bbox_x0, row.bbox_y1, row.bbox_x1), row.mask)
    return out


def proxy_metrics(table: pd.DataFrame, foreground: np.ndarray, pixel_size_um: float,
                  foreground_skeleton_um: float | None = None,
                  dot_max_area_um2: float | None = None) -> dict:
    """The measures above for one image's instance table against ``foreground``.

    Also returns the raw sums (``n_instances``, ``foreground_px``, ``union_px``,
    ``covered_px``, ``outside_px``, ``dot_count``, ``area_um2``, ``dot_area_um2``,
    ``skeleton_lengths_um``) so images can be pooled.
    """
    from mitoscale.analyse.config import DOT_MAX_AREA_UM2
    from mitoscale.analyse.morphology import classify

    dot_max = DOT_MAX_AREA_UM2 if dot_max_area_um2 is None else dot_max_area_um2
    if foreground_skeleton_um is None:
        foreground_skeleton_um = skeleton_length_um(foreground, pixel_size_um)
    union = union_mask(table, foreground.shape)
    lengths = instance_skeleton_lengths(table, pixel_size_um)
    area = table["area_um2"].to_numpy(dtype=float)
    dots = classify(area, dot_max) == "dot"
    fg, un = int(foreground.sum()), int(union.sum())
    covered = int((union & foreground).sum())
    n = len(table)
    return {
        "n_instances": n,
        "foreground_px": fg, "foreground_skeleton_um": float(foreground_skeleton_um),
        "union_px": un, "covered_px": covered, "outside_px": un - covered,
        "dot_count": int(dots.sum()), "area_um2": float(area.sum()), "dot_area_um2": float(area[dots].sum()),
        "skeleton_lengths_um": lengths.tolist(),
        "instances_per_10um": 10.0 * n / foreground_skeleton_um if foreground_skeleton_um > 0 else float("nan"),
        "median_skeleton_um": float(np.median(lengths)) if n else float("nan"),
        "coverage": covered / fg if fg else float("nan"),
        "outside": (un - covered) / un if un else float("nan"),
        "dot_share_count": float(dots.mean()) if n else float("nan"),
        "dot_share_area": float(area[dots].sum() / area.sum()) if n and area.sum() > 0 else float("nan"),
    }
