"""The experimental unit of the statistics: aggregate frames to replicates before any CI.

A 6-frame movie is one replicate, not six; the fields of a well share its
cells, medium and treatment.  Treating every frame or field as independent
(pseudo-replication) shrinks the confidence intervals without any new
biological evidence.  ``analyze`` therefore averages the per-image
(per-location) values within each *unit* first, and takes means and
bootstrap CIs over units, resampling units within a condition:

``image``
    every 2D frame (location) is a unit: the behaviour before issue 13,
    right only for independent snapshots.
``field``
    one plate field (or one image file / store) with all its time points
    and z planes.
``series``
    one acquisition: the same grouping as ``field`` (a movie is one
    series, and so is each field of a plate), named for timelapses.
``well``
    one plate well with all its fields and time points.
``auto`` (the default)
    ``well`` for plates, ``series`` for timelapses and z stacks, ``image``
    for single frames.

Within a unit, counts are the mean per frame and fractions the mean of the
frames' fractions (frames without instances have none and are skipped).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.errors import InputError

__all__ = ["REPLICATES", "resolve_replicate", "replicate_units", "aggregate_units", "unit_word"]

REPLICATES = ("auto", "image", "field", "series", "well")

_KEYS = {"image": ["image_id", "well", "field", "t", "z"], "field": ["image_id", "well", "field"],
         "series": ["image_id", "well", "field"], "well": ["image_id", "well"]}


def unit_word(unit: str, n: int = 2) -> str:
    """``"well"``/``"wells"``, ``"series"``/``"series"``... for labels."""
    return unit if n == 1 or unit == "series" else f"{unit}s"


def resolve_replicate(per_image: pd.DataFrame, replicate: str = "auto") -> str:
    """The unit ``auto`` stands for with these images (see the module docstring)."""
    if replicate not in REPLICATES:
        raise InputError(f"replicate must be one of {', '.join(REPLICATES)}, got {replicate!r}")
    if replicate != "auto":
        return replicate
    if (per_image["well"].astype(str) != "").any():
        return "well"
    if per_image.groupby(_KEYS["series"]).size().max() > 1:
        return "series"
    return "image"


def replicate_units(per_image: pd.DataFrame, replicate: str) -> pd.Series:
    """Unit label of every row of ``per_image`` (a readable name of its unit)."""
    keys = _KEYS[replicate]
    parts = per_image[keys].astype(str)
    label = parts["image_id"].copy()
    for col in keys[1:]:
        if parts[col].nunique() > 1 or (col == "well" and (parts[col] != "").any()):
            label = label + f" {col[0] if col != 'well' else ''}" + parts[col]
    return label.str.replace("  ", " ").rename("unit")


def aggregate_units(values: dict[str, np.ndarray], units: np.ndarray, conditions: np.ndarray,
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Average per-image values within each unit.

    Parameters
    ----------
    values : dict of (n_images, k) arrays
        NaN rows (images without instances, for fractions) are skipped.
    units, conditions : (n_images,) arrays
        Unit label and condition of each image.

    Returns
    -------
    names, unit_condition, unit_values, images_per_unit
        Units in first-appearance order; ``unit_values[v]`` is (n_units, k).

    Raises
    ------
    InputError
        When one unit's images belong to different conditions.
    """
    names = np.asarray(list(dict.fromkeys(units.tolist())), dtype=object)
    index = {u: i for i, u in enumerate(names)}
    inv = np.array([index[u] for u in units.tolist()], dtype=np.int64)
    unit_cond = np.empty(len(names), dtype=object)
    for u, i in index.items():
        conds = set(conditions[inv == i].tolist())
        if len(conds) > 1:
            raise InputError(f"replicate {u!r} spans conditions {sorted(conds)}; choose a finer "
                             "'replicate' (field, series or image) or fix the conditions file")
        unit_cond[i] = conds.pop()
    out = {}
    for v, arr in values.items():
        arr = np.asarray(arr, dtype=float)
        ok = ~np.isnan(arr).any(axis=1)
        sums = np.zeros((len(names), arr.shape[1]))
        np.add.at(sums, inv[ok], arr[ok])
        n = np.bincount(inv[ok], minlength=len(names)).astype(float)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[v] = np.where(n > 0, sums / n, np.nan)
    return names, unit_cond, out, np.bincount(inv, minlength=len(names))
