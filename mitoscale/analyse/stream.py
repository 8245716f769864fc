"""Out-of-core summaries of instance tables: ``mitoscale analyze`` without loading the tables.

:func:`scan_tables` streams every Parquet file of the given tables (older
per-frame parts and partitioned run folders alike) in record batches,
reading only the columns the analysis needs (location keys, instance id,
pixel size, area and the shape columns; never the masks, unless a file is an
older table without shape columns, whose shapes need them).  Each batch is
reduced to per-location sums at once, so memory grows with the number of
images (locations), not with the number of instances.

It returns what :func:`mitoscale.analyse.morphology.per_image_summary` and
the shape means of :mod:`mitoscale.analyse.shape_stats` compute from a
loaded table, with the same numbers (the same per-location sums and means;
with more than :data:`BATCH_ROWS` rows in one file a location may be summed
in two parts, which can differ in the last bit of a float).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mitoscale.errors import InputError
from mitoscale.io.tables import LOCATION_KEYS, _coerce, _parquet_files, read_locations
from mitoscale.shape import SHAPE_COLUMNS

__all__ = ["BATCH_ROWS", "scan_tables", "needed_columns"]

#: rows per record batch read at once
BATCH_ROWS = 262_144

_BASE = [*LOCATION_KEYS, "instance_id", "pixel_size_um", "area_um2"]
_MASK = ["bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1", "mask"]


def needed_columns(schema: pa.Schema) -> list[str]:
    """The columns :func:`scan_tables` reads from a file of this schema (masks only for older tables)."""
    names = set(schema.names)
    missing = [c for c in _BASE if c not in names]
    if missing:
        raise InputError(f"not a mitoscale instance table, missing columns: {', '.join(missing)}")
    shape = [c for c in SHAPE_COLUMNS if c in names]
    cols = _BASE + shape
    if len(shape) < len(SHAPE_COLUMNS):  # an older table: shapes from the masks
        cols += [c for c in _MASK if c not in cols]
    return cols


def _reduce(df: pd.DataFrame, cfg, classes: tuple[str, ...]) -> pd.DataFrame:
    """Per-location partial sums of one batch (one row per location)."""
    from mitoscale.analyse.classes import classify_instances
    from mitoscale.io.tables import with_shape_columns

    if df["n_branches"].isna().any() if "n_branches" in df else True:
        df = with_shape_columns(df)
    g = df.groupby(LOCATION_KEYS, sort=False)
    part = pd.DataFrame({"pixel_size_um": g["pixel_size_um"].first(), "n_rows": g.size(),
                         "id_min": g["instance_id"].min(), "id_max": g["instance_id"].max()})
    kept = df[df["area_um2"] >= cfg.min_area_um2] if cfg.min_area_um2 > 0 else df
    cls = classify_instances(kept, cfg.dot_max_area_um2, cfg.class_rule, cfg.network_min_branch_points)
    for c in classes:
        sel = kept[cls == c].groupby(LOCATION_KEYS, sort=False)
        part[f"count_{c}"] = sel.size().reindex(part.index, fill_value=0)
        part[f"area_um2_{c}"] = sel["area_um2"].sum().reindex(part.index, fill_value=0.0)
    gk = kept.groupby(LOCATION_KEYS, sort=False)
    for c in SHAPE_COLUMNS:
        vals = kept[c].astype(float)
        part[f"sum_{c}"] = vals.groupby([kept[k] for k in LOCATION_KEYS], sort=False).sum().reindex(
            part.index, fill_value=0.0)
        part[f"n_{c}"] = gk[c].count().reindex(part.index, fill_value=0)
    return part


def scan_tables(paths: Sequence[str | Path], cfg) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Per-image class counts and areas and per-image shape means, streamed.

    Parameters
    ----------
    paths : list of path
        Instance tables: Parquet files or directories (run folders' ``instances/``).
    cfg : AnalyseConfig

    Returns
    -------
    per_image : pandas.DataFrame
        As :func:`mitoscale.analyse.morphology.per_image_summary` with
        ``locations`` = every processed location of the tables.
    shape_means : pandas.DataFrame
        Indexed by the location keys: each shape column's mean over the
        location's instances (NaN where it has none).
    n_instances : int

    Raises
    ------
    InputError
        Unreadable files, an image present in more than one table, duplicate
        instance ids.
    """
    from mitoscale.analyse.classes import classes_of_rule
    from mitoscale.analyse.morphology import image_labels

    classes = classes_of_rule(cfg.class_rule)
    parts, locs, owner = [], [], {}
    n = 0
    for k, path in enumerate(paths):
        for f in _parquet_files(Path(path)):
            try:
                pf = pq.ParquetFile(f)
                cols = needed_columns(pf.schema_arrow)
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=cols):
                    df = _coerce(batch.to_pandas())
                    px = df["pixel_size_um"]
                    if len(df) and (px.isna().any() or (px <= 0).any()):
                        raise InputError("pixel_size_um is missing or non-positive in some rows")
                    if len(df):
                        n += len(df)
                        parts.append(_reduce(df, cfg, classes))
            except (pa.ArrowInvalid, OSError) as exc:
                raise InputError(f"{f}: cannot read Parquet ({exc})") from None
            except InputError as exc:
                raise InputError(f"{f}: {exc}") from None
        for key in map(tuple, read_locations(path).to_numpy().tolist()):
            if owner.setdefault(key, k) != k:
                raise InputError(f"image {key[0]!r} appears in more than one table (duplicate instance ids)")
            locs.append(key)
    if not parts:
        raise InputError("the instance tables hold no instances")
    allp = pd.concat(parts)
    g = allp.groupby(level=list(range(len(LOCATION_KEYS))), sort=False)
    first = g[["pixel_size_um"]].first()
    sums = g.sum(numeric_only=True)
    dup = sums["n_rows"] > (g["id_max"].max() - g["id_min"].min() + 1)
    if dup.any():
        raise InputError(f"image {dup[dup].index[0][0]!r} appears in more than one table "
                         "(duplicate instance ids)")
    sums.index = sums.index.set_names(LOCATION_KEYS)
    first.index = first.index.set_names(LOCATION_KEYS)
    index = pd.MultiIndex.from_frame(_coerce(pd.DataFrame(locs, columns=LOCATION_KEYS))).union(sums.index)
    index = index.sort_values()
    out = pd.DataFrame(index=index)
    for c in classes:
        out[f"count_{c}"] = sums[f"count_{c}"].reindex(index, fill_value=0).astype(np.int64)
        out[f"area_um2_{c}"] = sums[f"area_um2_{c}"].reindex(index, fill_value=0.0).astype(float)
    out["n_instances"] = out[[f"count_{c}" for c in classes]].sum(axis=1)
    out["pixel_size_um"] = first["pixel_size_um"].reindex(index).astype(float)
    per_image = out.reset_index()
    per_image.insert(0, "image", image_labels(per_image).to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        means = pd.DataFrame({c: (sums[f"sum_{c}"] / sums[f"n_{c}"].where(sums[f"n_{c}"] > 0))
                              for c in SHAPE_COLUMNS}, index=sums.index)
    return per_image, means, n
