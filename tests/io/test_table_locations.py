"""Processed locations recorded in instance-table Parquet metadata (empty frames included)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mitoscale.errors import InputError
from mitoscale.io.tables import (
    LOCATION_KEYS, LOCATIONS_METADATA_KEY, empty_table, instances_to_table, read_locations, read_table,
    write_table,
)


def _table(image_id: str, n: int = 2) -> pd.DataFrame:
    masks = []
    for k in range(n):
        m = np.zeros((16, 16), bool)
        m[k * 4:k * 4 + 3, 2:9] = True
        masks.append(m)
    return instances_to_table(masks, image_id=image_id, pixel_size_um=0.08)


def _loc(image_id, well="", field=0, t=0, z=0):
    return dict(image_id=image_id, well=well, field=field, t=t, z=z)


def test_written_locations_include_empty_ones_and_the_rows(tmp_path):
    parts = tmp_path / "instances"
    # rows of "a" plus an empty location "b", given as a dict
    write_table(_table("a"), parts / "p0.parquet", locations=[_loc("a"), _loc("b", t=3)])
    # a part with no instance at all, its location given as a tuple
    write_table(empty_table(), parts / "p1.parquet", locations=[("c", "B/3", 1, 0, -1)])
    # rows whose location the caller forgot to name are recorded too
    write_table(_table("e", 1), parts / "p2.parquet", locations=[_loc("f")])
    # an older table: no metadata, its rows' locations only
    write_table(_table("d", 1), parts / "p3.parquet")
    assert not list(parts.glob(".*.tmp"))  # written atomically, nothing left behind
    meta = pq.read_schema(parts / "p2.parquet").metadata
    assert json.loads(meta[LOCATIONS_METADATA_KEY])["locations"] == [["e", "", 0, 0, 0], ["f", "", 0, 0, 0]]
    assert LOCATIONS_METADATA_KEY not in (pq.read_schema(parts / "p3.parquet").metadata or {})

    assert read_locations(parts / "p1.parquet").to_dict("records") == [_loc("c", "B/3", 1, 0, -1)]
    assert len(read_table(parts / "p1.parquet")) == 0
    locs = read_locations(parts)
    assert list(locs.columns) == LOCATION_KEYS
    assert locs.to_dict("records") == [_loc("a"), _loc("b", t=3), _loc("c", "B/3", 1, 0, -1), _loc("d"),
                                       _loc("e"), _loc("f")]
    assert str(locs["t"].dtype) == "int32"
    # the rows read back exactly as without metadata
    pd.testing.assert_frame_equal(read_table(parts / "p0.parquet"), _table("a"))
    assert read_locations(parts / "p3.parquet").to_dict("records") == [_loc("d")]


def test_read_locations_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_locations(tmp_path / "nope.parquet")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(InputError, match="no Parquet files"):
        read_locations(tmp_path / "empty_dir")
    table = pa.Table.from_pandas(_table("a"), preserve_index=False)
    table = table.replace_schema_metadata({**table.schema.metadata, LOCATIONS_METADATA_KEY: b"{not json"})
    pq.write_table(table, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="malformed location metadata"):
        read_locations(tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="needs the 5 values"):
        write_table(_table("a"), tmp_path / "x.parquet", locations=[("a", "")])
