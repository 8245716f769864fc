"""Instance tables as a partitioned Parquet dataset: one file per well (or image), row groups per frame.

Layout inside a run folder ``OUT``::

    instances/image=<id>/plate_well=<A%2F1>/part-0.parquet   plates: one file per well
    instances/image=<id>/part-0.parquet                      other inputs: one file per image
    .staging/<partition>/<batch>.parquet                     results of finished tasks, not yet merged

Directory names are hive-style ``key=value`` with URI-encoded values; the
keys differ from the table's own columns (``image_id``, ``well``), so a
reader that discovers hive partitions (``pandas.read_parquet(dir)``,
``pyarrow.dataset``) adds columns instead of clashing with them.  Files and
directories whose names start with ``.`` are invisible to every reader
(:func:`mitoscale.io.tables.read_table` and pyarrow's dataset discovery).

Writing: each task writes its frames' rows to one staged file
(:func:`stage_rows`, atomic).  When every frame of a partition is resolved,
:func:`compact_partition` merges the partition's file with its staged files
into a new file, one row group per frame, written under a hidden temporary
name and renamed into place, then removes the staged files.  A reader sees
the old file or the new one, never a half-written one; a frame present in
both (a frame recomputed after a kill) keeps only its newest rows, so a
rerun never duplicates.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mitoscale.io.tables import LOCATION_KEYS, LOCATIONS_METADATA_KEY, _locations_frame, parquet_options, write_table

__all__ = ["STAGING", "PART_NAME", "partition_of", "partition_file", "stage_rows", "compact_partition",
           "staged_partitions"]

STAGING = ".staging"
PART_NAME = "part-0.parquet"


def partition_of(keys: dict) -> str:
    """The partition (relative directory) of a frame's location keys: its well, or its image."""
    part = f"image={quote(str(keys['image_id']), safe='')}"
    if keys.get("well"):
        part += f"/plate_well={quote(str(keys['well']), safe='')}"
    return part


def partition_file(out: str | Path, partition: str) -> Path:
    return Path(out) / "instances" / partition / PART_NAME


def stage_rows(out: str | Path, partition: str, name: str, frames: list[tuple[dict, pd.DataFrame]]) -> Path:
    """Write the rows of some frames of one partition to one staged file (atomic).

    ``frames``: ``(keys, table)`` per frame; frames without rows are recorded
    as processed locations (see :func:`mitoscale.io.tables.write_table`).
    """
    path = Path(out) / STAGING / partition / f"{name}.parquet"
    tables = [df for _, df in frames if len(df)]
    df = pd.concat(tables, ignore_index=True) if tables else frames[0][1]
    write_table(df, path, locations=[k for k, _ in frames])
    return path


def staged_partitions(out: str | Path) -> list[str]:
    """Partitions with staged files not yet merged (a run killed before it merged them)."""
    root = Path(out) / STAGING
    if not root.is_dir():
        return []
    return sorted({p.parent.relative_to(root).as_posix() for p in root.rglob("*.parquet")})


def _locations(schema: pa.Schema) -> pd.DataFrame:
    meta = schema.metadata or {}
    if LOCATIONS_METADATA_KEY not in meta:
        return pd.DataFrame(columns=LOCATION_KEYS)
    return pd.DataFrame(json.loads(meta[LOCATIONS_METADATA_KEY])["locations"], columns=LOCATION_KEYS)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(len(table), f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _as_keys(rows) -> list[tuple]:
    """Location rows ``(image_id, well, field, t, z)`` as comparable tuples."""
    return [(str(a), str(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]


def _key_tuples(table: pa.Table) -> list[tuple]:
    return _as_keys(zip(*(table.column(k).to_pylist() for k in LOCATION_KEYS)))


def _frame_runs(table: pa.Table) -> list[tuple[tuple, int, int]]:
    """``(location, start, stop)`` of each run of one frame's rows in ``table``, in file order."""
    if not len(table):
        return []
    codes = [table.column(k).to_numpy(zero_copy_only=False) for k in LOCATION_KEYS]
    change = np.zeros(len(table), bool)
    change[0] = True
    for c in codes:
        change[1:] |= c[1:] != c[:-1]
    starts = np.flatnonzero(change)
    stops = np.r_[starts[1:], len(table)]
    keys = _key_tuples(table.take(pa.array(starts)))
    return list(zip(keys, starts.tolist(), stops.tolist()))


def compact_partition(out: str | Path, partition: str) -> dict:
    """Merge a partition's file with its staged files into one file, a row group per frame.

    Idempotent and safe to rerun after a kill at any point.  Memory holds
    one source file at a time.

    Returns
    -------
    dict
        ``partition``, ``frames`` (locations in the file), ``rows``, ``merged`` (staged files), ``seconds``.
    """
    import time

    t0 = time.perf_counter()
    out = Path(out)
    target = partition_file(out, partition)
    staged = sorted((out / STAGING / partition).glob("*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not staged:
        return {"partition": partition, "frames": None, "rows": None, "merged": 0, "seconds": 0.0}
    sources = ([target] if target.is_file() else []) + staged
    schemas = [pq.read_schema(p) for p in sources]
    # the newest source of every location wins (a frame recomputed after a kill)
    owner: dict[tuple, int] = {}
    for i, (p, s) in enumerate(zip(sources, schemas)):
        keys = {k for k, _, _ in _frame_runs(pq.read_table(p, columns=LOCATION_KEYS))}
        keys |= set(_as_keys(_locations(s).itertuples(index=False)))
        for k in keys:
            owner[k] = i
    locs = _locations_frame(pd.DataFrame(list(owner), columns=LOCATION_KEYS))
    schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    payload = json.dumps({"keys": LOCATION_KEYS, "locations": locs.to_numpy().tolist()},
                         separators=(",", ":"), default=int)
    schema = schema.with_metadata({LOCATIONS_METADATA_KEY: payload.encode()})
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    rows = 0
    try:
        with pq.ParquetWriter(tmp, schema, **parquet_options(schema)) as writer:
            for i, p in enumerate(sources):
                table = _conform(pq.read_table(p), schema)  # once per source, then zero-copy slices
                runs = _frame_runs(table)
                if len({k for k, _, _ in runs}) < len(runs):  # a frame's rows apart: group them (stable)
                    table = table.sort_by([(k, "ascending") for k in LOCATION_KEYS])
                    runs = _frame_runs(table)
                for k, a, b in sorted(r for r in runs if owner[r[0]] == i):  # a row group per frame
                    writer.write_table(table.slice(a, b - a), row_group_size=b - a)
                    rows += b - a
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for p in staged:
        p.unlink(missing_ok=True)
    try:  # the partition's staging folder, now empty (another task may stage into it again)
        (out / STAGING / partition).rmdir()
    except OSError:
        pass
    return {"partition": partition, "frames": len(locs), "rows": rows, "merged": len(staged),
            "seconds": time.perf_counter() - t0}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
