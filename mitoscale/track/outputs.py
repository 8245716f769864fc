"""Tables of a tracked timelapse: per-track summary, events and a napari-tracks CSV.

Track table (one row per track): location keys (image_id, well, field, z),
``track_id``, ``start_t``, ``end_t`` (frame indices), ``n_frames`` (frames
with an instance; fewer than ``end_t - start_t + 1`` across gaps),
``start_s``, ``lifetime_s`` (``(end_t - start_t + 1) * frame_interval_s``),
``mean_area_um2``, ``classes`` (the class of each of its instances in time
order, the analysis' rule), ``parent_track_ids`` and ``child_track_ids``
(lists), ``n_fission``/``n_fusion`` (events the track starts or ends with).

Events table: location keys plus ``event`` (``"fission"``/``"fusion"``),
``t`` (first frame of the children), ``time_s``, ``parent_track_ids``,
``child_track_ids``, ``y``/``x`` (pixels) and ``y_um``/``x_um``.

napari CSV: ``track_id,t,y,x`` in pixels of the grid (napari's Tracks
layer; add ``scale=(frame_interval, px, px)`` in napari for physical units).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mitoscale.io.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["TRACK_KEYS", "track_table", "write_parquet", "read_parquet_dir", "napari_csv"]

TRACK_KEYS = ["image_id", "well", "field", "z"]


def track_table(inst: pd.DataFrame, events: pd.DataFrame, frame_interval_s: float,
                classes: np.ndarray) -> pd.DataFrame:
    """One row per track of one tracked timelapse (columns in the module doc)."""
    cols = [*TRACK_KEYS, "track_id", "start_t", "end_t", "n_frames", "start_s", "lifetime_s",
            "mean_area_um2", "classes", "parent_track_ids", "child_track_ids", "n_fission", "n_fusion"]
    if len(inst) == 0:
        return pd.DataFrame(columns=cols)
    inst = inst.assign(_class=classes).sort_values(["track_id", "t"])
    children: dict[int, list[int]] = {}
    for tid, parents in zip(inst["track_id"], inst["parent_track_ids"]):
        for p in parents:
            children.setdefault(int(p), [])
            if int(tid) not in children[int(p)]:
                children[int(p)].append(int(tid))
    kinds: dict[int, list[str]] = {}
    for ev in events.itertuples(index=False):
        for tid in {*ev.parent_track_ids, *ev.child_track_ids}:
            kinds.setdefault(int(tid), []).append(ev.event)
    rows = []
    for tid, g in inst.groupby("track_id", sort=True):
        first = g.iloc[0]
        start, end = int(g["t"].min()), int(g["t"].max())
        rows.append([*(first[k] for k in TRACK_KEYS), int(tid), start, end, len(g),
                     start * frame_interval_s, (end - start + 1) * frame_interval_s,
                     float(g["area_um2"].mean()), list(g["_class"]), list(first["parent_track_ids"]),
                     sorted(children.get(int(tid), [])), kinds.get(int(tid), []).count("fission"),
                     kinds.get(int(tid), []).count("fusion")])
    return pd.DataFrame(rows, columns=cols)


_LIST_INT = pa.list_(pa.int64())


def write_parquet(df: pd.DataFrame, path) -> None:
    """Atomic Parquet of a track or events table (list columns typed, even when all empty)."""
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    for col in ("parent_track_ids", "child_track_ids"):
        if col in table.column_names:
            i = table.column_names.index(col)
            table = table.set_column(i, pa.field(col, _LIST_INT), table.column(col).cast(_LIST_INT))
    if "classes" in table.column_names:
        i = table.column_names.index("classes")
        typ = pa.list_(pa.string())
        table = table.set_column(i, pa.field("classes", typ), table.column("classes").cast(typ))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def read_parquet_dir(path) -> pd.DataFrame:
    """Concatenate the ``*.parquet`` parts of a folder (sorted), list columns as Python lists."""
    from pathlib import Path

    files = sorted(Path(path).glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    df = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    for col in ("parent_track_ids", "child_track_ids", "classes"):
        if col in df:
            df[col] = [list(v) if v is not None else [] for v in df[col]]
    return df


def napari_csv(inst: pd.DataFrame, path) -> None:
    """``track_id,t,y,x`` rows sorted by track and time (napari's Tracks layer data)."""
    out = inst[["track_id", "t", "centroid_y", "centroid_x"]].rename(
        columns={"centroid_y": "y", "centroid_x": "x"}).sort_values(["track_id", "t"])
    buf = io.StringIO()
    out.to_csv(buf, index=False, float_format="%.3f")
    atomic_write_text(path, buf.getvalue())
