"""The instance table: one row per mitochondrion, shared by every stage.

The simulator's ground truth, ``mitoscale segment``, every baseline,
``mitoscale evaluate`` and ``mitoscale analyze`` all read and write this one
Parquet schema, so methods are compared and analysed alike.

Masks are stored exactly, overlaps included: each row holds its own
bounding-box crop of the boolean mask, bit-packed (``np.packbits``, C order,
big bit order) in the binary column ``mask``.  :func:`table_to_masks` rebuilds
every mask bit for bit.

Columns
-------
image_id : str
    Identifies the source image (file stem, corpus index, plate path).
well : str
    Plate well such as ``"B/3"``; ``""`` outside plates.
field, t, z : int
    Field of view, time point and z plane (0 when the axis is absent;
    ``z = -1`` for a z max-projection).
instance_id : int
    1-based, unique within one location (image_id, well, field, t, z).
pixel_size_um : float
    Pixel size of the grid the mask lives on.
image_height, image_width : int
    Shape of that grid.
bbox_y0, bbox_x0, bbox_y1, bbox_x1 : int
    Half-open bounding box of the mask.
mask : bytes
    Bit-packed bbox crop.
area_px, area_um2 : int, float
centroid_y, centroid_x : float
    In pixels of the grid.
major_axis_length, minor_axis_length : float
    In pixels (scikit-image ``regionprops`` definition).
mean_intensity : float
    Mean of the source image over the mask (NaN when no image is given).
score : float
    Predicted IoU / confidence (NaN for ground truth).
skeleton_length_um, n_branches, n_branch_points, n_end_points, mean_width_um, tortuosity, aspect_ratio, solidity
    Shape columns (:data:`mitoscale.shape.SHAPE_COLUMNS`; semantics in
    :mod:`mitoscale.shape`), written by :func:`instances_to_table`, hence by
    the simulator's ground truth, ``segment`` and every baseline.  Optional on
    reading: older tables without them still load, and
    :func:`with_shape_columns` computes them from the masks.

Other columns (method-specific records such as simulated length) may follow.

Processed locations
-------------------
A location with no instance has no row, so rows alone cannot tell an image
that was processed and found empty from one never processed.  A writer that
knows which locations it covered passes them to :func:`write_table`
(``locations=``); they are stored as JSON in the Parquet file's key-value
schema metadata under :data:`LOCATIONS_METADATA_KEY`, and
:func:`read_locations` returns them (plus the locations of the rows).  Files
without that metadata (older tables) report the locations of their rows only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mitoscale.errors import InputError
from mitoscale.io.atomic import atomic_write_bytes
from mitoscale.shape import SHAPE_COLUMNS, shape_features

__all__ = [
    "LOCATION_KEYS",
    "LOCATIONS_METADATA_KEY",
    "SCHEMA",
    "OPTIONAL_SCHEMA",
    "encode_mask",
    "decode_mask",
    "mask_properties",
    "instances_to_table",
    "table_to_masks",
    "iter_locations",
    "validate_table",
    "write_table",
    "read_table",
    "read_locations",
    "empty_table",
    "with_shape_columns",
]

LOCATION_KEYS = ["image_id", "well", "field", "t", "z"]

LOCATIONS_METADATA_KEY = b"mitoscale.locations"
"""Parquet schema-metadata key of a part's processed locations: JSON
``{"keys": LOCATION_KEYS, "locations": [[image_id, well, field, t, z], ...]}``."""

SCHEMA: dict[str, str] = {
    "image_id": "string",
    "well": "string",
    "field": "int32",
    "t": "int32",
    "z": "int32",
    "instance_id": "int64",
    "pixel_size_um": "float64",
    "image_height": "int32",
    "image_width": "int32",
    "bbox_y0": "int32",
    "bbox_x0": "int32",
    "bbox_y1": "int32",
    "bbox_x1": "int32",
    "mask": "bytes",
    "area_px": "int64",
    "area_um2": "float64",
    "centroid_y": "float64",
    "centroid_x": "float64",
    "major_axis_length": "float64",
    "minor_axis_length": "float64",
    "mean_intensity": "float64",
    "score": "float64",
}

OPTIONAL_SCHEMA: dict[str, str] = {**SHAPE_COLUMNS, "track_id": "int64", "parent_track_ids": "list[int64]"}
"""Columns coerced to these dtypes when present, but not required (older tables lack them).
``track_id`` / ``parent_track_ids`` are written by ``mitoscale track`` (docs/track.md)."""


def encode_mask(mask: np.ndarray) -> tuple[tuple[int, int, int, int], bytes]:
    """Bit-pack the bounding-box crop of a 2D boolean mask.

    Returns
    -------
    bbox : (y0, x0, y1, x1)
        Half-open bounding box; ``(0, 0, 0, 0)`` for an empty mask.
    blob : bytes
        ``np.packbits`` of the crop in C order.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, 0, 0), b""
    cols = np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (int(y0), int(x0), int(y1), int(x1)), np.packbits(mask[y0:y1, x0:x1]).tobytes()


def decode_mask(bbox: Sequence[int], blob: bytes) -> np.ndarray:
    """Inverse of :func:`encode_mask`: the boolean bbox crop."""
    y0, x0, y1, x1 = (int(v) for v in bbox)
    h, w = y1 - y0, x1 - x0
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), dtype=bool)
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=h * w)
    return bits.reshape(h, w).astype(bool)


def mask_properties(crop: np.ndarray, offset: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """Area, centroid and ellipse axes of one boolean mask crop.

    Axis lengths follow scikit-image's ``regionprops`` (4 * sqrt of the
    eigenvalues of the normalised second central moments); the same kernel
    as :func:`instances_to_table` (:func:`_crop_moments`), for one crop.
    """
    crop = np.asarray(crop, dtype=bool)
    if not crop.any():
        return dict(area_px=0, centroid_y=np.nan, centroid_x=np.nan,
                    major_axis_length=0.0, minor_axis_length=0.0)
    m = _crop_moments([crop], np.array([offset], dtype=np.int64), None)
    return dict(area_px=int(m["area_px"][0]), **{k: float(m[k][0]) for k in
                ("centroid_y", "centroid_x", "major_axis_length", "minor_axis_length")})


def empty_table() -> pd.DataFrame:
    """A zero-row table with the schema's columns (and the shape columns) and dtypes."""
    return _coerce(pd.DataFrame({c: [] for c in [*SCHEMA, *SHAPE_COLUMNS]}))


def _coerce(df: pd.DataFrame) -> pd.DataFrame:
    for col, dtype in {**SCHEMA, **OPTIONAL_SCHEMA}.items():
        if col not in df:
            continue
        if dtype == "bytes":
            df[col] = df[col].astype(object)
        elif dtype == "list[int64]":  # rows of parts without the column (NaN) get []
            df[col] = pd.Series([[int(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else []
                                 for v in df[col]], index=df.index, dtype=object)
        elif dtype == "string":
            df[col] = df[col].astype(str)
        elif col in OPTIONAL_SCHEMA and dtype.startswith("int") and df[col].isna().any():
            df[col] = df[col].astype(dtype.capitalize())  # nullable: parts without the column
        else:
            df[col] = df[col].astype(dtype)
    return df


def _crop_moments(crops: list[np.ndarray], origins: np.ndarray, image: np.ndarray | None) -> dict:
    """Area, centroid, ellipse axes and mean intensity of many crops at once.

    Population covariance and scikit-image's ``4 * sqrt(eigenvalue)`` axes,
    computed for all crops together with ``np.bincount`` instead of one NumPy
    call chain per crop.  ``origins`` are the crops' top-left pixels.
    """
    n = len(crops)
    ys, xs, lab = [], [], []
    for k, crop in enumerate(crops):
        yy, xx = np.nonzero(crop)
        ys.append(yy)
        xs.append(xx)
        lab.append(np.full(yy.size, k))
    y = np.concatenate(ys).astype(np.float64)
    x = np.concatenate(xs).astype(np.float64)
    lab = np.concatenate(lab)
    area = np.bincount(lab, minlength=n)
    cy = np.bincount(lab, y, n) / area
    cx = np.bincount(lab, x, n) / area
    dy, dx = y - cy[lab], x - cx[lab]
    syy = np.bincount(lab, dy * dy, n) / area
    sxy = np.bincount(lab, dy * dx, n) / area
    sxx = np.bincount(lab, dx * dx, n) / area
    # eigenvalues of [[syy, sxy], [sxy, sxx]] in closed form
    mid = 0.5 * (syy + sxx)
    rad = np.sqrt((0.5 * (syy - sxx)) ** 2 + sxy**2)
    out = dict(area_px=area, centroid_y=cy + origins[:, 0], centroid_x=cx + origins[:, 1],
               major_axis_length=4 * np.sqrt(np.clip(mid + rad, 0, None)),
               minor_axis_length=4 * np.sqrt(np.clip(mid - rad, 0, None)),
               mean_intensity=np.full(n, np.nan))
    if image is not None:
        values = np.asarray(image)[y.astype(np.intp) + origins[lab, 0], x.astype(np.intp) + origins[lab, 1]]
        out["mean_intensity"] = np.bincount(lab, values.astype(np.float64), n) / area
    return out


def instances_to_table(
    masks: Iterable[np.ndarray],
    *,
    image_id: str,
    pixel_size_um: float,
    image: np.ndarray | None = None,
    scores: Sequence[float] | None = None,
    instance_ids: Sequence[int] | None = None,
    well: str = "",
    field: int = 0,
    t: int = 0,
    z: int = 0,
    extra: dict[str, Sequence] | None = None,
    offsets: Sequence[tuple[int, int]] | None = None,
    shape: tuple[int, int] | None = None,
    shape_engine: str = "skan",
) -> pd.DataFrame:
    """Build the instance table of one 2D image from full-size boolean masks.

    Parameters
    ----------
    masks : iterable of (H, W) bool arrays
        One per instance; they may overlap.  Empty masks are dropped (and so
        are their ``scores``/``extra`` entries).
    image_id : str
    pixel_size_um : float
    image : (H, W) array, optional
        Source intensities for ``mean_intensity``.
    scores : sequence of float, optional
    instance_ids : sequence of int, optional
        Defaults to 1..n in order.
    well, field, t, z : location keys
    extra : dict of sequences, optional
        Additional per-instance columns.
    offsets : sequence of (y, x), optional
        When given, each mask is a crop whose top-left pixel sits at this
        offset in an image of ``shape`` (saves building full-size masks).
    shape : (H, W), optional
        Image shape; required with ``offsets``.
    shape_engine : {"skan", "compiled"}
        Skeleton-graph engine of the shape columns
        (:func:`mitoscale.shape.shape_features`; equal results).

    Returns
    -------
    pandas.DataFrame
        Per-instance moments are computed for all masks at once
        (:func:`mask_properties` is the same kernel for one crop), and so
        are the shape columns (:func:`mitoscale.shape.shape_features`).
    """
    masks = list(masks)
    n = len(masks)
    if offsets is not None and shape is None:
        raise ValueError("shape is required with offsets")
    keep, crops, boxes, blobs = [], [], [], []
    height, width = shape if shape is not None else (None, None)
    for i, m in enumerate(masks):
        m = np.asarray(m, dtype=bool)
        bbox, blob = encode_mask(m)
        if bbox[2] == bbox[0]:
            continue
        if height is None:
            height, width = m.shape
        oy, ox = (int(offsets[i][0]), int(offsets[i][1])) if offsets is not None else (0, 0)
        keep.append(i)
        crops.append(m[bbox[0]:bbox[2], bbox[1]:bbox[3]])
        boxes.append((bbox[0] + oy, bbox[1] + ox, bbox[2] + oy, bbox[3] + ox))
        blobs.append(blob)
    k = len(keep)
    if k:
        box = np.asarray(boxes, dtype=np.int64)
        props = _crop_moments(crops, box[:, :2], image)
        blob_col = np.empty(k, dtype=object)
        blob_col[:] = blobs
        ids = (np.asarray(instance_ids)[keep] if instance_ids is not None else np.arange(1, k + 1))
        shape_cols = shape_features(crops, pixel_size_um, engine=shape_engine, tight=True,
                                    axes=(props["major_axis_length"], props["minor_axis_length"]))
        more = {col: shape_cols[col].to_numpy() for col in SHAPE_COLUMNS}
        for key, values in (extra or {}).items():
            values = _checked(key, values, n)
            more[key] = [values[i] for i in keep]
        df = _typed_frame({
            "image_id": [str(image_id)] * k, "well": [str(well)] * k,
            "field": np.full(k, int(field)), "t": np.full(k, int(t)), "z": np.full(k, int(z)),
            "instance_id": ids, "pixel_size_um": np.full(k, float(pixel_size_um)),
            "image_height": np.full(k, int(height)), "image_width": np.full(k, int(width)),
            "bbox_y0": box[:, 0], "bbox_x0": box[:, 1], "bbox_y1": box[:, 2], "bbox_x1": box[:, 3],
            "mask": blob_col, "area_px": props["area_px"],
            "area_um2": props["area_px"] * float(pixel_size_um) ** 2,
            "centroid_y": props["centroid_y"], "centroid_x": props["centroid_x"],
            "major_axis_length": props["major_axis_length"],
            "minor_axis_length": props["minor_axis_length"],
            "mean_intensity": props["mean_intensity"],
            "score": (np.asarray(scores, dtype=np.float64)[keep] if scores is not None
                      else np.full(k, np.nan)),
        }, more)  # one frame: a column inserted at a time costs ~0.3 ms each
    else:
        df = empty_table()
        for key, values in (extra or {}).items():
            df[key] = _checked(key, values, n)[:0]
    return df


def _checked(key: str, values: Sequence, n: int) -> list:
    values = list(values)
    if len(values) != n:
        raise ValueError(f"extra column {key!r} has {len(values)} values for {n} masks")
    return values


_STRING_DTYPE = pd.Series([""], dtype=str).dtype  # what _coerce makes of "string" columns


def _typed_frame(columns: dict, more: dict | None = None) -> pd.DataFrame:
    """A DataFrame of the SCHEMA columns built directly in their dtypes (what _coerce gives),
    then the ``more`` columns as given."""
    data = {}
    for col, dtype in SCHEMA.items():
        v = columns[col]
        if dtype == "string":
            data[col] = pd.array(v, dtype=_STRING_DTYPE)
        elif dtype == "bytes":
            data[col] = v
        else:
            data[col] = np.asarray(v).astype(dtype, copy=False)
    data.update(more or {})
    return pd.DataFrame(data)


def with_shape_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The table with the shape columns, computed from the masks where a table lacks them.

    Rows without shape values (an older table, or the older parts of a folder
    read together with newer ones: ``n_branches`` missing) get them from their
    exact masks, per pixel size; rows that have them keep them.
    """
    df = df.copy()
    if all(c in df.columns for c in SHAPE_COLUMNS):
        todo = np.flatnonzero(df["n_branches"].isna().to_numpy())
    else:
        todo = np.arange(len(df))
    if len(todo) == 0:
        return df
    shape = pd.DataFrame(np.nan, index=df.index, columns=list(SHAPE_COLUMNS))
    for c in SHAPE_COLUMNS:
        if c in df:
            shape[c] = df[c].astype(float)
    sizes = df["pixel_size_um"].to_numpy()
    for size in np.unique(sizes[todo]):
        rows = todo[sizes[todo] == size]
        crops = [decode_mask((r.bbox_y0, r.bbox_x0, r.bbox_y1, r.bbox_x1), r.mask)
                 for r in df.iloc[rows].itertuples(index=False)]
        shape.iloc[rows] = shape_features(crops, float(size)).to_numpy(dtype=float)
    for col, dtype in SHAPE_COLUMNS.items():
        df[col] = shape[col].astype(dtype).to_numpy()
    return df


def table_to_masks(df: pd.DataFrame, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Rebuild the (n, H, W) boolean mask stack of one image's rows, in row order."""
    if shape is None:
        if len(df) == 0:
            raise ValueError("shape is required for an empty table")
        shape = (int(df["image_height"].iloc[0]), int(df["image_width"].iloc[0]))
    out = np.zeros((len(df), *shape), dtype=bool)
    for k, row in enumerate(df.itertuples(index=False)):
        y0, x0, y1, x1 = row.bbox_y0, row.bbox_x0, row.bbox_y1, row.bbox_x1
        out[k, y0:y1, x0:x1] = decode_mask((y0, x0, y1, x1), row.mask)
    return out


def iter_locations(df: pd.DataFrame) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """Yield ``(key, rows)`` per 2D location (image_id, well, field, t, z), sorted."""
    if len(df) == 0:
        return
    for key, rows in df.groupby(LOCATION_KEYS, sort=True):
        yield key, rows


def validate_table(df: pd.DataFrame, source: str = "table") -> pd.DataFrame:
    """Check columns and dtypes; return the table coerced to the schema.

    Raises
    ------
    InputError
        Naming the missing or malformed columns, or a missing pixel size.
    """
    missing = [c for c in SCHEMA if c not in df.columns]
    if missing:
        raise InputError(f"{source}: not a mitoscale instance table, missing columns: {', '.join(missing)}")
    if len(df) and (df["pixel_size_um"].isna().any() or (df["pixel_size_um"] <= 0).any()):
        raise InputError(f"{source}: pixel_size_um is missing or non-positive in some rows")
    try:
        df = _coerce(df.copy())
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: column has the wrong type ({exc})") from None
    return df


def _locations_frame(locations) -> pd.DataFrame:
    """Locations (mappings, tuples or a DataFrame) -> unique, sorted DataFrame of LOCATION_KEYS."""
    if isinstance(locations, pd.DataFrame):
        df = locations[LOCATION_KEYS].copy()
    else:
        rows = [[loc[k] for k in LOCATION_KEYS] if isinstance(loc, dict) else list(loc) for loc in locations]
        if any(len(r) != len(LOCATION_KEYS) for r in rows):
            raise ValueError(f"a location needs the {len(LOCATION_KEYS)} values {LOCATION_KEYS}")
        df = pd.DataFrame(rows, columns=LOCATION_KEYS)
    df = _coerce(df)
    return df.drop_duplicates().sort_values(LOCATION_KEYS).reset_index(drop=True)


def parquet_options(schema: pa.Schema) -> dict:
    """Writer options of every mitoscale table (one small row group per frame stays cheap).

    The masks (the bulk of the bytes) are zstd-compressed, the other columns
    snappy; strings are dictionary-encoded and only the location keys carry
    statistics (what readers filter frames by).  Against zstd, dictionaries
    and statistics on every column, a 500-frame well writes 3x faster
    (0.43 against 1.32 ms per row group) and is smaller (1.8 against 3.3 MB).
    """
    names = schema.names
    return dict(compression={n: "zstd" if n == "mask" else "snappy" for n in names},
                use_dictionary=[f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)],
                write_statistics=[k for k in LOCATION_KEYS if k in names])


def write_table(df: pd.DataFrame, path: str | Path, locations=None) -> None:
    """Write a table to Parquet atomically (temporary file, then rename).

    Parameters
    ----------
    df : pandas.DataFrame
        Instance table (validated and coerced to the schema).
    path : path
        Destination ``.parquet`` file.
    locations : iterable of dict or tuple, or DataFrame, optional
        The locations (``image_id, well, field, t, z``) this table covers,
        including those without any instance.  Stored with the rows' own
        locations in the schema metadata (see :func:`read_locations`);
        ``None`` records nothing, as older tables.
    """
    df = validate_table(df)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    for col in [c for c, d in OPTIONAL_SCHEMA.items() if d == "list[int64]" and c in table.column_names]:
        i = table.column_names.index(col)
        table = table.set_column(i, pa.field(col, pa.list_(pa.int64())), table.column(col).cast(pa.list_(pa.int64())))
    if locations is not None:
        locs = _locations_frame(pd.concat([_locations_frame(locations), df[LOCATION_KEYS]], ignore_index=True))
        payload = json.dumps({"keys": LOCATION_KEYS, "locations": locs.to_numpy().tolist()},
                             separators=(",", ":"), default=int)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               LOCATIONS_METADATA_KEY: payload.encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **parquet_options(table.schema))
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():  # hidden files and folders (staged results, temporary files) are not part of it
        files = sorted(f for f in path.rglob("*.parquet")
                       if not any(p.startswith((".", "_")) for p in f.relative_to(path).parts))
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"instance table not found: {path}")
    if not files:
        raise InputError(f"no Parquet files in {path}")
    return files


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one Parquet file or a directory of ``*.parquet`` parts, validated.

    Parts are concatenated in sorted path order: the per-frame parts of older
    run folders and the partitioned files (``image=.../plate_well=.../part-0.parquet``,
    :mod:`mitoscale.io.partitions`) alike.  Names starting with ``.`` or
    ``_`` are skipped.
    """
    path = Path(path)
    files = _parquet_files(path)
    frames = []
    for f in files:
        try:
            frames.append(pq.read_table(f).to_pandas())
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"{f}: cannot read Parquet ({exc})") from None
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return validate_table(df, source=str(path))


def read_locations(path: str | Path) -> pd.DataFrame:
    """The locations a table file (or directory of parts) covers, empty ones included.

    Parameters
    ----------
    path : path
        One Parquet file or a directory of ``*.parquet`` parts.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LOCATION_KEYS`, one row per location, sorted: the
        union over parts of the locations recorded by :func:`write_table`
        and those of the rows.  A part without recorded locations (an older
        table) contributes the locations of its rows only.

    Raises
    ------
    InputError
        Missing path, no Parquet files, an unreadable file or malformed
        location metadata.
    """
    path = Path(path)
    frames = []
    for f in _parquet_files(path):
        try:
            meta = pq.read_schema(f).metadata or {}
            rows = pq.read_table(f, columns=LOCATION_KEYS).to_pandas()
        except (pa.ArrowInvalid, OSError, KeyError) as exc:
            raise InputError(f"{f}: cannot read the location columns ({exc})") from None
        frames.append(rows)
        if LOCATIONS_METADATA_KEY in meta:
            try:
                rec = json.loads(meta[LOCATIONS_METADATA_KEY])
                if rec["keys"] != LOCATION_KEYS:
                    raise ValueError(f"keys {rec['keys']} are not {LOCATION_KEYS}")
                frames.append(pd.DataFrame(rec["locations"], columns=LOCATION_KEYS))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{f}: malformed location metadata ({exc})") from None
    return _locations_frame(pd.concat(frames, ignore_index=True))
