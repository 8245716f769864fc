"""The morphology Dataset: per-image class counts and fractions, per-condition aggregates.

Layout
------
Dimensions ``image``, ``class`` (dot, rod), ``condition`` and ``bound``
(low, high)::

    count            (image, class)      instances of each class
    area_um2         (image, class)      summed instance area
    count_fraction   (image, class)      count / all instances of the image
    area_fraction    (image, class)      area / all instance area of the image
    image_condition  (image)             coordinate: the image's condition
    n_images         (condition)
    unit_<v>         (unit, class)       the images' values averaged within each replicate unit
    unit_condition   (unit)              coordinate: the unit's condition
    n_units          (condition)         replicates (the n of the statistics)
    total_count      (condition, class)  summed over the condition's images
    pooled_count_fraction (condition, class)  total_count / all instances
    mean_<v>         (condition, class)  mean over units, v in count, count_fraction, area_fraction
    ci_<v>           (condition, class, bound)  percentile bootstrap CI of that mean

Each replicate unit weighs equally in the means and the bootstrap resamples
units within a condition (:mod:`mitoscale.analyse.replicates`: the unit is
the well, field, series or image, ``attrs["replicate"]``); with
``replicate="image"`` every frame is its own unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from mitoscale.analyse.morphology import CLASSES

__all__ = ["build_dataset", "bootstrap_mean_ci", "dataset_to_frames"]

_MEAN_VARS = ("count", "count_fraction", "area_fraction")


def bootstrap_mean_ci(values: np.ndarray, n_boot: int, ci: float, rng: np.random.Generator) -> np.ndarray:
    """Percentile bootstrap CI of the mean along axis 0.

    Parameters
    ----------
    values : (n, k) array
        ``n`` independent samples (images) of ``k`` quantities.
    n_boot : int
    ci : float
        Confidence level, e.g. 0.95.
    rng : numpy.random.Generator

    Returns
    -------
    (k, 2) array
        Lower and upper bounds (NaN for ``n == 0``; both equal the value for ``n == 1``).
    """
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    if n == 0:
        return np.full((values.shape[1], 2), np.nan)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = values[idx].mean(axis=1)  # (n_boot, k)
    alpha = (1 - ci) / 2
    return np.quantile(means, [alpha, 1 - alpha], axis=0).T


def build_dataset(per_image: pd.DataFrame, conditions: list[str], *, n_bootstrap: int = 2000,
                  ci: float = 0.95, seed: int = 0, attrs: dict | None = None,
                  classes: tuple[str, ...] = CLASSES, replicate: str = "image") -> xr.Dataset:
    """Build the morphology Dataset.

    Parameters
    ----------
    per_image : pandas.DataFrame
        From :func:`mitoscale.analyse.morphology.per_image_summary` plus a
        ``condition`` column.
    conditions : list of str
        Conditions in display order.
    n_bootstrap, ci, seed
        Bootstrap settings.
    attrs : dict, optional
        Extra global attributes (settings, sources).
    classes : tuple of str
        The class coordinate (``mitoscale.analyse.classes``: dot/rod, or dot/rod/network).
    replicate : {"auto", "image", "field", "series", "well"}
        The experimental unit the statistics are taken over.

    Returns
    -------
    xarray.Dataset
    """
    classes = list(classes)
    count = per_image[[f"count_{c}" for c in classes]].to_numpy(dtype=np.int64)
    area = per_image[[f"area_um2_{c}" for c in classes]].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        count_frac = count / count.sum(axis=1, keepdims=True)
        area_frac = area / area.sum(axis=1, keepdims=True)
    images = per_image["image"].astype(str).to_numpy()
    ds = xr.Dataset(
        {
            "count": (("image", "class"), count),
            "area_um2": (("image", "class"), area),
            "count_fraction": (("image", "class"), count_frac),
            "area_fraction": (("image", "class"), area_frac),
            "pixel_size_um": ("image", per_image["pixel_size_um"].to_numpy(dtype=float)),
        },
        coords={
            "image": images,
            "class": classes,
            "image_condition": ("image", per_image["condition"].astype(str).to_numpy()),
            "image_id": ("image", per_image["image_id"].astype(str).to_numpy()),
            "well": ("image", per_image["well"].astype(str).to_numpy()),
        },
    )
    from mitoscale.analyse.replicates import aggregate_units, replicate_units, resolve_replicate

    replicate = resolve_replicate(per_image, replicate)
    units, unit_cond, unit_vals, _ = aggregate_units(
        {v: ds[v].to_numpy() for v in _MEAN_VARS},
        replicate_units(per_image, replicate).to_numpy(dtype=object), ds["image_condition"].to_numpy())
    n_units = np.array([(unit_cond == c).sum() for c in conditions], dtype=np.int64)
    rng = np.random.default_rng(seed)
    per_cond = {v: np.full((len(conditions), len(classes)), np.nan) for v in _MEAN_VARS}
    cis = {v: np.full((len(conditions), len(classes), 2), np.nan) for v in _MEAN_VARS}
    total = np.zeros((len(conditions), len(classes)), dtype=np.int64)
    n_images = np.zeros(len(conditions), dtype=np.int64)
    cond_of_image = ds["image_condition"].to_numpy()
    for i, cond in enumerate(conditions):
        sel = cond_of_image == cond
        n_images[i] = sel.sum()
        total[i] = count[sel].sum(axis=0)
        for v in _MEAN_VARS:
            vals = unit_vals[v][unit_cond == cond]  # statistics over replicate units
            vals = vals[~np.isnan(vals).any(axis=1)]  # units without any instance have no fractions
            if len(vals):
                per_cond[v][i] = vals.mean(axis=0)
                cis[v][i] = bootstrap_mean_ci(vals, n_bootstrap, ci, rng)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = total / total.sum(axis=1, keepdims=True)
    cond_dims = ("condition", "class")
    agg = xr.Dataset(
        {
            "n_images": ("condition", n_images),
            "n_units": ("condition", n_units),
            **{f"unit_{v}": (("unit", "class"), unit_vals[v]) for v in _MEAN_VARS},
            "total_count": (cond_dims, total),
            "pooled_count_fraction": (cond_dims, pooled),
            **{f"mean_{v}": (cond_dims, per_cond[v]) for v in _MEAN_VARS},
            **{f"ci_{v}": ((*cond_dims, "bound"), cis[v]) for v in _MEAN_VARS},
        },
        coords={"condition": list(conditions), "class": classes, "bound": ["low", "high"],
                "unit": units.astype(str), "unit_condition": ("unit", unit_cond.astype(str))},
    )
    out = xr.merge([ds, agg], compat="no_conflicts", join="outer")
    out.attrs.update(
        title="mitoscale dot/rod morphology",
        n_bootstrap=int(n_bootstrap), ci=float(ci), seed=int(seed),
        replicate=replicate,
        bootstrap=f"percentile bootstrap of the mean over replicate units ({replicate}), "
                  "resampling units within a condition",
        **(attrs or {}),
    )
    return out


def dataset_to_frames(ds: xr.Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long-form CSV-ready tables: one row per (image, class) and per (condition, class)."""
    img_vars = ["count", "area_um2", "count_fraction", "area_fraction"]
    per_image = ds[img_vars].to_dataframe().reset_index()
    meta = pd.DataFrame({
        "image": ds["image"].to_numpy(), "condition": ds["image_condition"].to_numpy(),
        "image_id": ds["image_id"].to_numpy(), "well": ds["well"].to_numpy(),
        "pixel_size_um": ds["pixel_size_um"].to_numpy(),
    })
    per_image = meta.merge(per_image[["image", "class", *img_vars]], on="image")
    per_image = per_image[["condition", "image", "image_id", "well", "class", *img_vars, "pixel_size_um"]]
    rows = []
    for cond in ds["condition"].to_numpy():
        for cls in ds["class"].to_numpy():
            sel = ds.sel(condition=cond, **{"class": cls})
            row = dict(condition=cond, **{"class": cls}, replicate=ds.attrs.get("replicate", "image"),
                       n_units=int(sel["n_units"]), n_images=int(sel["n_images"]),
                       total_count=int(sel["total_count"]),
                       pooled_count_fraction=float(sel["pooled_count_fraction"]))
            for v in _MEAN_VARS:
                row[f"mean_{v}"] = float(sel[f"mean_{v}"])
                row[f"ci_low_{v}"] = float(sel[f"ci_{v}"].sel(bound="low"))
                row[f"ci_high_{v}"] = float(sel[f"ci_{v}"].sel(bound="high"))
            rows.append(row)
    return per_image, pd.DataFrame(rows)
