"""Per-condition means of the shape columns, with bootstrap CIs (``mitoscale analyze``).

Each image's value of a shape column is the mean over its instances (images
weigh equally, as for the class shares); the condition's value is the mean
over its images, with the same percentile bootstrap (resampling images) as
the class shares.  ``tortuosity`` is defined for unbranched open objects
only: its image mean is over those, and images without any are left out.

Dataset variables (dimension ``shape`` = the shape column names)::

    image_shape_mean  (image, shape)
    mean_shape        (condition, shape)
    ci_shape          (condition, shape, bound)
    n_images_shape    (condition, shape)   images with a value

Tables without the shape columns (older tables) get them from their masks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from mitoscale.io.tables import LOCATION_KEYS
from mitoscale.shape import SHAPE_COLUMNS

__all__ = ["add_shape_means", "image_shape_means", "shape_frame"]


def image_shape_means(df: pd.DataFrame, cfg) -> pd.DataFrame:
    """Each shape column's mean over every image's instances, indexed by the location keys."""
    from mitoscale.io.tables import with_shape_columns

    df = with_shape_columns(df)  # older tables (or parts) without the columns: from their masks
    if cfg.min_area_um2 > 0:
        df = df[df["area_um2"] >= cfg.min_area_um2]
    return df.groupby(LOCATION_KEYS)[list(SHAPE_COLUMNS)].mean()  # NaN (tortuosity) skipped per image


def add_shape_means(ds: xr.Dataset, df: pd.DataFrame | None, per_image: pd.DataFrame, cfg,
                    means: pd.DataFrame | None = None) -> xr.Dataset:
    """``ds`` plus the shape variables above (``per_image``: the rows of ``ds``'s images).

    ``means``: the per-image means when already computed (:func:`image_shape_means`,
    or streamed by :func:`mitoscale.analyse.stream.scan_tables`); else from ``df``.
    """
    from mitoscale.analyse.dataset import bootstrap_mean_ci

    cols = list(SHAPE_COLUMNS)
    if means is None:
        means = image_shape_means(df, cfg)
    dtypes = {k: means.index.get_level_values(k).dtype for k in LOCATION_KEYS}
    keys = pd.MultiIndex.from_frame(per_image[LOCATION_KEYS].astype(dtypes))
    image_vals = means.reindex(keys).to_numpy(dtype=float)  # images without instances: NaN
    images = ds["image"].to_numpy()
    order = pd.Index(per_image["image"].astype(str)).get_indexer(images)
    image_vals = image_vals[order]
    conds = ds["condition"].to_numpy()
    cond_of_image = ds["image_condition"].to_numpy()
    mean = np.full((len(conds), len(cols)), np.nan)
    ci = np.full((len(conds), len(cols), 2), np.nan)
    n_img = np.zeros((len(conds), len(cols)), dtype=np.int64)
    rng = np.random.default_rng(cfg.seed + 1)
    for i, cond in enumerate(conds):
        block = image_vals[cond_of_image == cond]
        for j in range(len(cols)):
            vals = block[:, j][~np.isnan(block[:, j])]
            n_img[i, j] = len(vals)
            if len(vals):
                mean[i, j] = vals.mean()
                ci[i, j] = bootstrap_mean_ci(vals[:, None], cfg.n_bootstrap, cfg.ci, rng)[0]
    return ds.assign(
        image_shape_mean=(("image", "shape"), image_vals),
        mean_shape=(("condition", "shape"), mean),
        ci_shape=(("condition", "shape", "bound"), ci),
        n_images_shape=(("condition", "shape"), n_img),
    ).assign_coords(shape=cols)


def shape_frame(ds: xr.Dataset) -> pd.DataFrame:
    """One row per (condition, shape column): mean, CI and number of images (``per_condition_shape.csv``)."""
    rows = []
    for cond in ds["condition"].to_numpy():
        for col in ds["shape"].to_numpy():
            s = ds.sel(condition=cond, shape=col)
            lo, hi = (float(v) for v in s["ci_shape"].to_numpy())
            rows.append([str(cond), str(col), float(s["mean_shape"]), lo, hi, int(s["n_images_shape"])])
    return pd.DataFrame(rows, columns=["condition", "shape", "mean", "ci_low", "ci_high", "n_images"])
