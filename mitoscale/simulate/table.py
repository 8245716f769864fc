"""Vectorised instance table of one simulated image.

:func:`crops_to_table` builds exactly the table that
:func:`mitoscale.io.tables.instances_to_table` builds from tight mask crops
(same columns, dtypes and values, see ``tests/simulate/test_table.py``), but
computes the per-instance moments for all instances at once with
``np.bincount`` instead of one NumPy call chain per instance: for the ~160
instances of a corpus image this is several times faster, and the table was
a tenth of the simulator's time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


__all__ = ["crops_to_table"]


def crops_to_table(
    masks: Sequence[tuple[tuple[int, int, int, int], np.ndarray]],
    *,
    shape: tuple[int, int],
    image: np.ndarray,
    image_id: str,
    pixel_size_um: float,
    z: int = -1,
    extra: dict[str, Sequence] | None = None,
) -> pd.DataFrame:
    """Instance table (``mitoscale.io.tables`` schema) from tight, non-empty mask crops.

    Parameters
    ----------
    masks : sequence of (bbox, crop)
        Half-open ``(y0, x0, y1, x1)`` and the boolean crop, whose first and
        last rows and columns each hold a mask pixel (as made by
        :func:`mitoscale.simulate.raster.rasterise`).  Instance ids are 1..n.
    shape : (H, W)
    image : (H, W) array
        For ``mean_intensity``.
    image_id : str
    pixel_size_um : float
    z : int
        Location key (``-1``: a max projection).
    extra : dict of sequences, optional
        Additional per-instance columns.

    Returns
    -------
    pandas.DataFrame
    """
    n = len(masks)
    if n == 0:
        from mitoscale.io.tables import empty_table

        df = empty_table()
        for key in extra or {}:
            df[key] = []
        return df
    bbox = np.array([b for b, _ in masks], dtype=np.int64)  # (n, 4)
    ys, xs, ids, blobs = [], [], [], []
    for k, (_, crop) in enumerate(masks):
        yy, xx = np.nonzero(crop)
        ys.append(yy)
        xs.append(xx)
        ids.append(np.full(yy.size, k))
        blobs.append(np.packbits(crop).tobytes())
    y = np.concatenate(ys).astype(np.float64)
    x = np.concatenate(xs).astype(np.float64)
    lab = np.concatenate(ids)
    area = np.bincount(lab, minlength=n)
    # moments in crop coordinates (as mask_properties): population covariance
    cy = np.bincount(lab, y, n) / area
    cx = np.bincount(lab, x, n) / area
    dy, dx = y - cy[lab], x - cx[lab]
    syy = np.bincount(lab, dy * dy, n) / area
    sxy = np.bincount(lab, dy * dx, n) / area
    sxx = np.bincount(lab, dx * dx, n) / area
    # eigenvalues of [[syy, sxy], [sxy, sxx]] in closed form
    mean = 0.5 * (syy + sxx)
    rad = np.sqrt((0.5 * (syy - sxx)) ** 2 + sxy**2)
    major = 4 * np.sqrt(np.clip(mean + rad, 0, None))
    minor = 4 * np.sqrt(np.clip(mean - rad, 0, None))
    values = np.asarray(image)[y.astype(np.intp) + bbox[lab, 0], x.astype(np.intp) + bbox[lab, 1]]
    mean_int = np.bincount(lab, values.astype(np.float64), n) / area

    blob_col = np.empty(n, dtype=object)
    blob_col[:] = blobs

    def col(v, dtype):
        return np.asarray(v).astype(dtype, copy=False)

    data = {
        "image_id": pd.array([str(image_id)] * n, dtype=SCHEMA_STRING),
        "well": pd.array([""] * n, dtype=SCHEMA_STRING),
        "field": col(np.zeros(n), "int32"),
        "t": col(np.zeros(n), "int32"),
        "z": col(np.full(n, z), "int32"),
        "instance_id": col(np.arange(1, n + 1), "int64"),
        "pixel_size_um": col(np.full(n, pixel_size_um), "float64"),
        "image_height": col(np.full(n, shape[0]), "int32"),
        "image_width": col(np.full(n, shape[1]), "int32"),
        "bbox_y0": col(bbox[:, 0], "int32"),
        "bbox_x0": col(bbox[:, 1], "int32"),
        "bbox_y1": col(bbox[:, 2], "int32"),
        "bbox_x1": col(bbox[:, 3], "int32"),
        "mask": blob_col,
        "area_px": col(area, "int64"),
        "area_um2": area * float(pixel_size_um) ** 2,
        "centroid_y": cy + bbox[:, 0],
        "centroid_x": cx + bbox[:, 1],
        "major_axis_length": major,
        "minor_axis_length": minor,
        "mean_intensity": mean_int,
        "score": np.full(n, np.nan),
    }
    df = pd.DataFrame(data)  # columns in SCHEMA order
    for key, vals in (extra or {}).items():
        vals = list(vals)
        if len(vals) != n:
            raise ValueError(f"extra column {key!r} has {len(vals)} values for {n} masks")
        df[key] = vals
    return df


SCHEMA_STRING = pd.Series([""], dtype=str).dtype  # the dtype tables._coerce gives "string" columns
