"""Partitioned instance tables and the completion log (issue 15): real Parquet files, real folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mitoscale.io.atomic import MarkerSet
from mitoscale.io.omezarr import write_ome_zarr_image
from mitoscale.io.partitions import STAGING, compact_partition, partition_file, partition_of, stage_rows
from mitoscale.io.tables import LOCATION_KEYS, empty_table, instances_to_table, read_locations, read_table
from mitoscale.io.unitlog import UnitLog


def _frame_table(keys, n, seed):
    rng = np.random.default_rng(seed)
    crops = [np.ones((rng.integers(2, 9), rng.integers(2, 9)), bool) for _ in range(n)]
    offsets = [(int(rng.integers(0, 50)), int(rng.integers(0, 50))) for _ in range(n)]
    return instances_to_table(crops, offsets=offsets, shape=(64, 64), pixel_size_um=0.08, **keys)


def _keys(t, well="B/3"):
    return dict(image_id="plate", well=well, field=0, t=t, z=0)


def test_partition_names_do_not_clash_with_columns(tmp_path):
    assert partition_of(_keys(0)) == "image=plate/plate_well=B%2F3"
    assert partition_of(_keys(0, well="")) == "image=plate"
    stage_rows(tmp_path, partition_of(_keys(0)), "b0", [(_keys(0), _frame_table(_keys(0), 3, 0))])
    compact_partition(tmp_path, partition_of(_keys(0)))
    # a hive-discovering reader adds the partition keys as columns; it does not clash with `well`
    df = pd.read_parquet(tmp_path / "instances")
    assert set(df["well"]) == {"B/3"} and len(df) == 3


def test_compaction_one_file_row_group_per_frame_newest_wins_hidden_staging(tmp_path):
    part = partition_of(_keys(0))
    frames = {t: _frame_table(_keys(t), n, t) for t, n in enumerate([3, 0, 5, 2])}
    stage_rows(tmp_path, part, "b0", [(_keys(t), frames[t]) for t in (0, 1)])
    stage_rows(tmp_path, part, "b1", [(_keys(t), frames[t]) for t in (2, 3)])
    # staged results are invisible to readers until merged
    assert not list((tmp_path / "instances").rglob("*.parquet")) if (tmp_path / "instances").exists() else True
    res = compact_partition(tmp_path, part)
    assert res["seconds"] > 0 and {k: v for k, v in res.items() if k != "seconds"} == {
        "partition": part, "frames": 4, "rows": 10, "merged": 2}
    f = partition_file(tmp_path, part)
    assert f.name == "part-0.parquet" and not list((tmp_path / STAGING).rglob("*.parquet"))
    assert pq.ParquetFile(f).metadata.num_row_groups == 3  # frames with rows; the empty one is metadata
    assert len(read_locations(tmp_path / "instances")) == 4  # the empty frame is a processed location
    # a frame recomputed after a kill is staged again: the merge keeps only its newest rows
    stage_rows(tmp_path, part, "b2", [(_keys(2), frames[2].iloc[:1])])
    compact_partition(tmp_path, part)
    df = read_table(tmp_path / "instances")
    assert len(df) == 3 + 1 + 2 and not df.duplicated([*LOCATION_KEYS, "instance_id"]).any()
    assert len(list((tmp_path / "instances").rglob("*"))) == 3  # image=, plate_well=, one file


def test_unit_log_last_record_wins_and_survives_a_torn_line(tmp_path):
    log = UnitLog(tmp_path / "units.log")
    log.append([("a", "failed", {"reason": "x"}), ("b", "done", {"instances": 2})])
    log.append([("a", "done", {"instances": 1})])
    with open(tmp_path / "units.log", "ab") as fh:  # a writer killed mid-line
        fh.write(b'{"unit": "c", "state": "do')
    assert UnitLog(tmp_path / "units.log").units("done") == ["a", "b"]
    log.append([("d", "done", {})])  # the torn line does not swallow the next record
    assert UnitLog(tmp_path / "units.log").units("done") == ["a", "b", "d"]


def _movie(path, n=12, side=64, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.poisson(20, (n, side, side)).astype(np.uint16)
    for t in range(n):
        for y, x in rng.integers(8, side - 8, (5, 2)):
            img[t, y - 2:y + 3, x - 4:x + 5] += 400
    return write_ome_zarr_image(path, img, "tyx", 0.08)


def test_old_layout_folder_reads_counts_and_resumes_without_duplicates(tmp_path):
    """A folder written the older way (a part and a marker file per frame) still loads and resumes."""
    from mitoscale.evaluate.baselines.run import run_baseline
    from mitoscale.io.runfolder import RunFolder
    from mitoscale.pipeline.status import folder_status

    inp = _movie(tmp_path / "m.ome.zarr")
    ref = tmp_path / "ref"
    run_baseline("classical", inp, ref)
    out = tmp_path / "old"
    run_baseline("classical", inp, out)
    # rewrite it in the older layout: instances/<unit>.parquet and .markers/<unit>.done per frame
    df = read_table(out / "instances")
    log = UnitLog(out / "units.log").state()
    import shutil

    shutil.rmtree(out / "instances")
    (out / "units.log").unlink()
    from mitoscale.io.tables import write_table

    def t_of(unit):
        return int(unit.split("__t")[1].split("__")[0])

    for unit, rec in sorted(log.items(), key=lambda kv: t_of(kv[0]))[:-3]:  # the last 3: never done
        t = t_of(unit)
        rows = df[df["t"] == t]
        keys = dict(image_id="m", well="", field=0, t=t, z=0)
        write_table(rows if len(rows) else empty_table(), out / "instances" / f"{unit}.parquet",
                    locations=[keys])
        MarkerSet(out / ".markers").mark(unit, {k: v for k, v in rec.items() if k != "state"})
    assert len(read_table(out / "instances")) == len(df[df["t"] < 9])
    assert folder_status(out)["done"] == 9
    again = run_baseline("classical", inp, out)
    assert again["n_done_before"] == 9 and again["n_frames"] == 12
    both = read_table(out / "instances")
    assert not both.duplicated([*LOCATION_KEYS, "instance_id"]).any()
    key = [*LOCATION_KEYS, "instance_id"]
    pd.testing.assert_frame_equal(both.sort_values(key).reset_index(drop=True),
                                  read_table(ref / "instances").sort_values(key).reset_index(drop=True))
    assert len(RunFolder(out, "?").markers.completed()) == 12
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["counts"]["n_instances"] == len(both)


@pytest.mark.parametrize("frames_per_task", [1, 4])
def test_files_per_partition_do_not_grow_with_frames(tmp_path, frames_per_task):
    from mitoscale.evaluate.baselines.run import run_baseline

    counts = []
    for n in (4, 16):
        inp = _movie(tmp_path / f"in{n}" / "m.ome.zarr", n=n)
        out = tmp_path / f"o{n}-{frames_per_task}"
        run_baseline("classical", inp, out, frames_per_task=frames_per_task)
        counts.append(sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()))
        assert len(read_locations(out / "instances")) == n
    assert counts[0] == counts[1] == ["instances/image=m/part-0.parquet", "manifest.json", "units.log"]


def test_a_frame_whose_rows_lie_apart_is_still_one_row_group(tmp_path):
    """Rows of one frame split across a staged file (not as stage_rows writes it) are grouped."""
    from mitoscale.io.tables import write_table

    part = partition_of(_keys(0))
    a, b = _frame_table(_keys(0), 3, 0), _frame_table(_keys(1), 2, 1)
    mixed = pd.concat([a.iloc[:2], b, a.iloc[2:]], ignore_index=True)
    write_table(mixed, tmp_path / STAGING / part / "x.parquet", locations=[_keys(0), _keys(1)])
    compact_partition(tmp_path, part)
    f = pq.ParquetFile(partition_file(tmp_path, part))
    assert f.num_row_groups == 2
    got = [f.read_row_group(i).to_pandas() for i in range(2)]
    assert [set(g["t"]) for g in got] == [{0}, {1}] and [len(g) for g in got] == [3, 2]
    # rows of a frame keep their order; the location keys carry statistics (readers skip frames)
    assert got[0]["instance_id"].tolist() == a["instance_id"].tolist()
    stats = f.metadata.row_group(1).column(LOCATION_KEYS.index("t")).statistics
    assert stats is not None and stats.min == stats.max == 1
