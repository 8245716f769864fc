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

Skeleton lengths are the instance table's ``skeleton_length_um`` (the shape
kernel :mod:`mitoscale.shape`: skan's path lengths plus, at each end point,
its distance to the mask edge, so a straight tube measures its full length);
the foreground's skeleton is measured by the same kernel, as one mask in
many pieces.  Tables without the shape columns get them from their masks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.io.tables import decode_mask

__all__ = ["reference_foreground", "skeleton_length_um", "union_mask",
           "proxy_metrics", "REFERENCE_SIGMA_UM"]

REFERENCE_SIGMA_UM = 0.1
"""Gaussian σ of the reference foreground: about the widefield PSF's σ (0.21 λ / NA ≈ 0.1 µm)."""


def reference_foreground(image: np.ndarray, pixel_size_um: float,
                         sigma_um: float = REFERENCE_SIGMA_UM, background_um: float = 0.0) -> np.ndarray:
    """Otsu's threshold on the Gaussian-smoothed image: the boolean foreground.

    ``background_um > 0`` first subtracts a Gaussian of that σ (a variant for images whose
    diffuse cell haze Otsu would take for foreground; the issue's reference is 0).
    """
    from skimage.filters import gaussian, threshold_otsu

    image = np.asarray(image, dtype=np.float32)
    smooth = gaussian(image, sigma=sigma_um / pixel_size_um, preserve_range=True)
    if background_um > 0:
        smooth = smooth - gaussian(image, sigma=background_um / pixel_size_um, preserve_range=True)
    if smooth.max() <= smooth.min():
        return np.zeros(smooth.shape, dtype=bool)
    return smooth > threshold_otsu(smooth)


def skeleton_length_um(mask: np.ndarray, pixel_size_um: float) -> float:
    """Total skeleton length (µm) of a boolean mask in any number of pieces.

    The instance table's ``skeleton_length_um`` definition (:mod:`mitoscale.shape`: skan path
    lengths plus each end point's distance to the mask edge), so the foreground and the
    instances are measured alike.
    """
    from mitoscale.shape import shape_features

    return float(shape_features([np.asarray(mask, dtype=bool)], pixel_size_um)["skeleton_length_um"].iloc[0])


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
    from mitoscale.io.tables import with_shape_columns

    dot_max = DOT_MAX_AREA_UM2 if dot_max_area_um2 is None else dot_max_area_um2
    if foreground_skeleton_um is None:
        foreground_skeleton_um = skeleton_length_um(foreground, pixel_size_um)
    n = len(table)
    union = union_mask(table, foreground.shape)
    lengths = with_shape_columns(table)["skeleton_length_um"].to_numpy(dtype=float) if n else np.zeros(0)
    area = table["area_um2"].to_numpy(dtype=float)
    dots = classify(area, dot_max) == "dot"
    fg, un = int(foreground.sum()), int(union.sum())
    covered = int((union & foreground).sum())
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
