"""Dot/rod classification and per-image counts and area fractions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.io.tables import LOCATION_KEYS

__all__ = ["CLASSES", "classify", "image_labels", "per_image_summary"]

CLASSES = ("dot", "rod")


def classify(area_um2, dot_max_area_um2: float) -> np.ndarray:
    """``"dot"`` where ``area_um2 <= dot_max_area_um2``, else ``"rod"``.

    The comparison allows a relative 1e-9 for float rounding, so an area of
    exactly the boundary (128 px at 100 nm = 1.28 µm², computed as
    1.2800000000000002) is a dot, as it is at 200 px and 80 nm.

    Examples
    --------
    >>> classify([0.5, 1.28, 1.3], 1.28).tolist()
    ['dot', 'dot', 'rod']
    """
    area = np.asarray(area_um2, dtype=float)
    return np.where(area <= dot_max_area_um2 * (1 + 1e-9), "dot", "rod")


def image_labels(df: pd.DataFrame) -> pd.Series:
    """A readable unique name per location: the image id, plus well/field/t/z where needed."""
    keys = df[LOCATION_KEYS].astype(str)
    label = keys["image_id"].copy()
    for col, prefix in (("well", " "), ("field", " f"), ("t", " t"), ("z", " z")):
        if keys[col].nunique() > 1:
            label = label + prefix + keys[col]
    return label


def per_image_summary(df: pd.DataFrame, dot_max_area_um2: float, min_area_um2: float = 0.0,
                      locations: pd.DataFrame | None = None, class_rule: str = "dot_rod",
                      network_min_branch_points: int = 1) -> pd.DataFrame:
    """Counts and areas of each class per image (location).

    Parameters
    ----------
    df : pandas.DataFrame
        Instance table (any number of locations).
    dot_max_area_um2 : float
        Dot/rod boundary.
    min_area_um2 : float
        Instances below this area are ignored.
    locations : pandas.DataFrame, optional
        Processed locations (columns ``LOCATION_KEYS``, e.g. from
        :func:`mitoscale.io.tables.read_locations`).  Those without rows get
        zero counts and areas.  Every location of ``df`` is included either
        way, also when ``min_area_um2`` removes all of its instances.

    Returns
    -------
    pandas.DataFrame
        One row per location, sorted by the location keys: the keys,
        ``image`` (a unique label), ``count_dot``, ``count_rod``,
        ``area_um2_dot``, ``area_um2_rod``, ``n_instances``,
        ``pixel_size_um`` (NaN for a location without rows).
    """
    px = df.groupby(LOCATION_KEYS)["pixel_size_um"].first()
    index = px.index
    if locations is not None and len(locations):
        extra = pd.MultiIndex.from_frame(locations[LOCATION_KEYS].astype(df[LOCATION_KEYS].dtypes.to_dict()))
        index = index.union(extra).sort_values()
    from mitoscale.analyse.classes import classes_of_rule, classify_instances

    kept = df[df["area_um2"] >= min_area_um2] if min_area_um2 > 0 else df
    cls = classify_instances(kept, dot_max_area_um2, class_rule, network_min_branch_points)
    classes = classes_of_rule(class_rule)
    work = kept[LOCATION_KEYS].assign(cls=cls, area=kept["area_um2"].to_numpy(), one=1)
    out = pd.DataFrame(index=index)
    for c in classes:
        sel = work[work["cls"] == c].groupby(LOCATION_KEYS)
        out[f"count_{c}"] = sel["one"].sum().reindex(index, fill_value=0).astype(np.int64)
        out[f"area_um2_{c}"] = sel["area"].sum().reindex(index, fill_value=0.0).astype(float)
    out["n_instances"] = out[[f"count_{c}" for c in classes]].sum(axis=1)
    out["pixel_size_um"] = px.reindex(index).astype(float)
    out = out.reset_index()
    out.insert(0, "image", image_labels(out).to_numpy())
    return out
