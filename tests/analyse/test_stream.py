"""`analyze` streams the tables: the same numbers as the pandas path, and no mask column read (issue 15)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
import xarray as xr

from mitoscale.analyse.config import AnalyseConfig
from mitoscale.analyse.run import analyse_paths, analyse_tables, load_locations, load_tables
from mitoscale.errors import InputError
from mitoscale.io.partitions import compact_partition, partition_of, stage_rows
from mitoscale.io.tables import empty_table, instances_to_table, read_table, write_table
from mitoscale.shape import SHAPE_COLUMNS


def _table(keys, rng):
    n = int(rng.integers(0, 12))
    crops = []
    for _ in range(n):
        h, w = int(rng.integers(2, 30)), int(rng.integers(2, 30))
        c = rng.random((h, w)) < 0.7
        c[h // 2, :] = True
        c[:, w // 2] = True  # connected, some branched
        crops.append(c)
    offsets = [(int(rng.integers(0, 90)), int(rng.integers(0, 90))) for _ in range(n)]
    return instances_to_table(crops, offsets=offsets, shape=(128, 128), pixel_size_um=0.08, **keys)


@pytest.fixture
def screen(tmp_path):
    """A plate run folder (partitioned, empty frames included) and an older table without shape columns."""
    rng = np.random.default_rng(7)
    out = tmp_path / "seg"
    for w, well in enumerate(["A/1", "A/2", "B/1", "B/2"]):
        keys = [dict(image_id="plate", well=well, field=f, t=t, z=0) for f in range(2) for t in range(3)]
        frames = [(k, _table(k, rng)) for k in keys]
        frames[0] = (keys[0], empty_table())  # processed, no instance
        part = partition_of(keys[0])
        stage_rows(out, part, "b0", frames[:4])
        stage_rows(out, part, "b1", frames[4:])
        compact_partition(out, part)
    old = _table(dict(image_id="plate", well="C/1", field=0, t=0, z=0), rng)
    write_table(old.drop(columns=list(SHAPE_COLUMNS)), tmp_path / "old" / "C-1.parquet")
    cond = tmp_path / "c.csv"
    cond.write_text("well,condition\nA/1,ctrl\nA/2,ctrl\nB/1,drug\nB/2,drug\nC/1,drug\n")
    return [out / "instances", tmp_path / "old"], cond


@pytest.mark.parametrize("over", [{}, {"min_area_um2": 0.3}, {"class_rule": "dot_rod_network"},
                                  {"replicate": "image"}])
def test_streamed_analysis_equals_the_pandas_path(screen, over):
    paths, cond = screen
    cfg = AnalyseConfig(n_bootstrap=300, **over)
    ref = analyse_tables(load_tables(paths), cond, cfg, locations=load_locations(paths))
    got = analyse_paths(paths, cond, cfg)
    assert int(got["n_images"].sum()) == 4 * 6 + 1
    xr.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert got["count"].dtype == ref["count"].dtype


def test_streamed_analysis_reads_no_mask_column(screen):
    paths, cond = screen
    cfg = AnalyseConfig(n_bootstrap=200)
    ref = analyse_paths(paths, cond, cfg)
    for f in paths[0].rglob("*.parquet"):  # the masks gone from the partitioned files
        t = pq.read_table(f)
        pq.write_table(t.drop(["mask"]), f)
    with pytest.raises(InputError, match="missing columns: mask"):
        read_table(paths[0])
    xr.testing.assert_allclose(analyse_paths(paths, cond, cfg), ref, rtol=1e-12, atol=0)


def test_streamed_analysis_refuses_an_image_in_two_tables(screen, tmp_path):
    paths, cond = screen
    with pytest.raises(InputError, match="appears in more than one table"):
        analyse_paths([paths[0], paths[0]], cond, AnalyseConfig(n_bootstrap=100))
