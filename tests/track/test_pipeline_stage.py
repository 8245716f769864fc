"""The ``track`` stage of ``mitoscale run`` on the samples' movie with known tracks."""

import json

from mitoscale.cli import main
from mitoscale.pipeline.state import RunState

from tests.pipeline.conftest import tiny_pipeline, write_config


def test_movie_is_segmented_tracked_and_scored(tmp_path, micro_model, local_client, capsys):
    cfg = tiny_pipeline(micro_model)
    cfg["simulate"]["enabled"] = False
    cfg["analyze"]["enabled"] = False  # not needed here: the stage depends on segment only
    cfg["samples"].update(timelapse_frames=0, wells_per_condition=0,
                          movie={"frames": 3, "objects": 6, "image_px": 96, "seed": 3})
    path = write_config(tmp_path / "p.yaml", cfg)
    out = tmp_path / "run"
    argv = ["run", "--config", str(path), "--out", str(out), "--scheduler", local_client.scheduler.address]
    assert main(argv) == 0
    rec = RunState(out).record("track")
    assert rec["state"] == "complete"
    assert (out / "samples" / "movie.ome.zarr").is_dir()
    assert (out / "samples" / "truth_events" / "movie.parquet").is_file()
    man = json.loads((out / "tracks" / "movie" / "manifest.json").read_text())
    assert man["frame_interval_s"] == {"movie-f0-z0": 2.0}  # read from the movie's NGFF time axis
    metrics = json.loads((out / "tracks" / "movie_metrics.json").read_text())
    truth = metrics["ground_truth_masks"]["mean"]
    assert truth["idf1"] >= 0.95  # the tracker alone, on the simulator's masks
    assert 0 <= metrics["segmentation"]["mean"]["idf1"] <= 1  # the untrained micro model: any value
    assert set(rec["summary"]) == {"movie", "movie_metrics"}
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "1/1 timelapses" in capsys.readouterr().out
