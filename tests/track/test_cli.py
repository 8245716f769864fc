"""``mitoscale track`` end to end: a plate of timelapses on a real LocalCluster, resume, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from mitoscale.cli import main
from mitoscale.io.tables import instances_to_table, read_table, write_table
from mitoscale.track.outputs import read_parquet_dir

from .conftest import write_untracked


@pytest.fixture(scope="module")
def plate_seg(tmp_path_factory, movie):
    """Two wells of the same movie, written like a segmentation output (no time step recorded)."""
    root = tmp_path_factory.mktemp("seg") / "seg"
    write_untracked(movie, root, image_id="plate", well="A/1")
    write_untracked(movie, root, image_id="plate", well="B/1")
    return root


def test_plate_of_timelapses_on_a_cluster_then_rerun_skips(tmp_path, plate_seg, local_client, movie_truth,
                                                           capsys):
    out = tmp_path / "tracks"
    argv = ["track", str(plate_seg), "--out", str(out), "--frame-interval", "2.5",
            "--scheduler", local_client.scheduler.address]
    assert main(argv) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["timelapses"] == 2 and man["computed"] == 2
    units = sorted(p.stem for p in (out / ".markers").glob("*.done"))
    assert units == ["plate-A1-f0-z0", "plate-B1-f0-z0"]
    inst = read_table(out / "instances")
    assert len(inst) == 2 * len(movie_truth)
    assert inst["track_id"].dtype == np.int64
    assert all(isinstance(v, list) for v in inst["parent_track_ids"])
    a, b = (inst[inst.well == w].sort_values(["t", "instance_id"]) for w in ("A/1", "B/1"))
    assert a["track_id"].tolist() == b["track_id"].tolist()  # each timelapse on its own, same answer
    tracks = read_parquet_dir(out / "tracks")
    assert set(tracks.groupby("well")["track_id"].nunique()) == {a["track_id"].nunique()}
    row = tracks.iloc[0]
    assert row["n_frames"] == len(row["classes"])
    assert row["lifetime_s"] == pytest.approx((row["end_t"] - row["start_t"] + 1) * 2.5)
    events = read_parquet_dir(out / "events")
    assert set(events["event"]) == {"fission", "fusion"}
    assert (events["time_s"] == events["t"] * 2.5).all()
    for e in events[events.well == "A/1"].itertuples():  # the events agree with the track table
        for c in e.child_track_ids:
            t = tracks[(tracks.well == "A/1") & (tracks.track_id == c)].iloc[0]
            assert sorted(t["parent_track_ids"]) == sorted(e.parent_track_ids)
    csv = pd.read_csv(out / "napari" / "plate-A1-f0-z0.csv")
    assert list(csv.columns) == ["track_id", "t", "y", "x"] and len(csv) == len(movie_truth)
    marks = {p: p.stat().st_mtime_ns for p in out.rglob("*.done")}
    capsys.readouterr()

    assert main(argv) == 0  # rerun: nothing recomputed, nothing duplicated
    assert "2 already done" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.done")} == marks
    assert len(read_table(out / "instances")) == 2 * len(movie_truth)


def test_time_step_is_read_from_the_ngff_time_axis(tmp_path, movie):
    from mitoscale.io.omezarr import write_ome_zarr_image
    from mitoscale.pipeline.samples import SampleUnit, _write_movie

    samples = tmp_path / "samples"
    _write_movie(samples, SampleUnit(0, "movie", "", None, "", 0, "control"),
                 {"frames": 3, "objects": 6, "image_px": 96, "frame_interval_s": 7.5})
    seg = tmp_path / "seg"
    truth = read_table(samples / "truth" / "movie.parquet")
    write_table(truth.drop(columns=["track_id", "parent_track_ids"]), seg / "instances" / "all.parquet")
    (seg / "manifest.json").write_text(json.dumps({"input": {"path": str(samples / "movie.ome.zarr")}}))
    assert main(["track", str(seg), "--out", str(tmp_path / "tr"), "--in-process"]) == 0
    man = json.loads((tmp_path / "tr" / "manifest.json").read_text())
    assert man["frame_interval_s"] == {"movie-f0-z0": 7.5}
    # the same frames in a store without a time step: --frame-interval is required
    write_ome_zarr_image(tmp_path / "plain.ome.zarr", np.zeros((3, 96, 96), np.uint16), "tyx", 0.08)
    (seg / "manifest.json").write_text(json.dumps({"input": {"path": str(tmp_path / "plain.ome.zarr")}}))
    _assert_refused(seg, tmp_path / "tr2", [], "no time step in its metadata; pass --frame-interval")


def _assert_refused(seg, out, extra, message, capsys=None):
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["track", str(seg), "--out", str(out), "--in-process", *extra]) == 2
    text = err.getvalue().strip()
    assert message in text and len(text.splitlines()) == 1, text
    assert not (out / ".markers").exists() or not list((out / ".markers").glob("*.done"))


def _frames(tmp_path, sizes):
    seg = tmp_path / "bad"
    for t, px in enumerate(sizes):
        m = np.zeros((20, 20), bool)
        m[5:10, 5:12] = True
        write_table(instances_to_table([m], image_id="x", pixel_size_um=px, t=t),
                    seg / "instances" / f"t{t}.parquet")
    return seg


def test_bad_inputs_are_one_line_and_exit_2(tmp_path, plate_seg):
    no_time = tmp_path / "single"
    m = np.zeros((20, 20), bool)
    m[5:10, 5:12] = True
    for i in range(2):
        write_table(instances_to_table([m], image_id=f"img{i}", pixel_size_um=0.1),
                    no_time / "instances" / f"{i}.parquet")
    _assert_refused(no_time, tmp_path / "o1", ["--frame-interval", "1"], "has no time axis")
    _assert_refused(_frames(tmp_path, [0.1, 0.2]), tmp_path / "o2", ["--frame-interval", "1"],
                    "different pixel sizes")
    _assert_refused(plate_seg, tmp_path / "o3", [], "no time step in its metadata")
    _assert_refused(plate_seg, tmp_path / "o4", ["--frame-interval", "1", "--max-distance", "0"],
                    "--max-distance must be > 0")
    _assert_refused(plate_seg, tmp_path / "o5", ["--frame-interval", "1", "--max-distance", "-1"],
                    "--max-distance must be > 0")
    _assert_refused(tmp_path / "missing", tmp_path / "o6", ["--frame-interval", "1"], "not found")


def test_older_tables_without_shape_columns_are_tracked(tmp_path, movie):
    from mitoscale.shape import SHAPE_COLUMNS

    seg = tmp_path / "old"
    for t, tab in enumerate(movie.tables[:4]):
        write_table(tab.drop(columns=["track_id", "parent_track_ids", *SHAPE_COLUMNS]),
                    seg / "instances" / f"t{t}.parquet")
    assert main(["track", str(seg), "--out", str(tmp_path / "tr"), "--in-process",
                 "--frame-interval", "1"]) == 0
    assert read_table(tmp_path / "tr" / "instances")["track_id"].nunique() > 0


def test_evaluate_scores_tracks_with_the_libraries(tmp_path, plate_seg, movie_truth, capsys):
    out = tmp_path / "tracks"
    assert main(["track", str(plate_seg), "--out", str(out), "--in-process", "--frame-interval", "1"]) == 0
    gt = movie_truth.assign(image_id="plate", well="A/1")
    write_table(pd.concat([gt, gt.assign(well="B/1")], ignore_index=True), tmp_path / "gt.parquet")
    capsys.readouterr()
    assert main(["evaluate", str(out), str(tmp_path / "gt.parquet"), "--tracking",
                 "--out", str(tmp_path / "ev")]) == 0
    assert "tracking: IDF1" in capsys.readouterr().out
    res = json.loads((tmp_path / "ev" / "tracking.json").read_text())
    assert set(res["timelapses"]) == {"plate/A/1/0/0", "plate/B/1/0/0"}
    assert res["mean"]["idf1"] >= 0.95
    # an untracked table is refused in one line
    write_table(movie_truth.drop(columns=["track_id", "parent_track_ids"]), tmp_path / "plain.parquet")
    assert main(["evaluate", str(tmp_path / "plain.parquet"), str(tmp_path / "gt.parquet"), "--tracking"]) == 2
