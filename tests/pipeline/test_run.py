"""``mitoscale run`` / ``mitoscale status`` end to end with real stages on a tiny config."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from mitoscale.cli import main
from mitoscale.pipeline.state import RunState

from .conftest import tiny_pipeline, write_config


def _records(run_dir):
    st = RunState(run_dir)
    return {s: st.record(s) for s in ("simulate", "samples", "train", "segment", "analyze", "track")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, micro_model, local_client):
    """A complete run of the tiny pipeline (copied by tests that change it)."""
    tmp = tmp_path_factory.mktemp("finished")
    cfg = tiny_pipeline(micro_model)
    out = tmp / "run"
    path = write_config(tmp / "p.yaml", cfg)
    assert main(["run", "--config", str(path), "--out", str(out),
                 "--scheduler", local_client.scheduler.address]) == 0
    return cfg, out


def _copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("change, rerun", [
    ({"analyze": {"set": {"n_bootstrap": 200}}}, {"analyze"}),
    ({"segment": {"set": {"postprocess.min_score": 0.0, "prompts.spacing": 24,
                          "decode.window": 8}}}, {"segment", "analyze", "track"}),
    ({"samples": {"seed": 7}}, {"samples", "segment", "analyze", "track"}),
    ({"simulate": {"n_images": 6}}, {"simulate"}),  # train is off: nothing reads the corpus
])
def test_changed_config_reruns_only_that_stage_and_downstream(
        tmp_path, micro_model, local_client, finished_run, capsys, change, rerun):
    base, src = finished_run
    out = _copy_run(src, tmp_path / "run")
    before = _records(out)
    cfg = tiny_pipeline(micro_model)
    for section, values in change.items():
        cfg[section] = {**cfg[section], **values}
    path = write_config(tmp_path / "p2.yaml", cfg)

    assert main(["status", str(out), "--config", str(path)]) == 0
    stale = {ln.split()[0] for ln in capsys.readouterr().out.splitlines() if " stale " in ln}
    assert stale == rerun

    assert main(["run", "--config", str(path), "--out", str(out),
                 "--scheduler", local_client.scheduler.address]) == 0
    after = _records(out)
    changed = {s for s in after if after[s] != before[s]}
    assert changed == rerun
    assert all(after[s]["state"] == "complete" for s in rerun)
    assert all(after[s]["key"] != before[s]["key"] for s in rerun)
    if "segment" in rerun:  # every frame segmented again, none reused from the old run
        assert all(v["skipped"] == 0 for v in after["segment"]["summary"].values())


def test_segment_recomputes_only_the_input_whose_settings_changed(
        tmp_path, micro_model, local_client, finished_run):
    _, src = finished_run
    out = _copy_run(src, tmp_path / "run")
    plate_markers = {p: p.stat().st_mtime_ns for p in (out / "segment" / "plate").rglob("*.done")}
    cfg = tiny_pipeline(micro_model)
    cfg["segment"]["inputs"] = [{"name": "extra", "path": str(out / "samples" / "timelapse.ome.zarr"),
                                 "conditions": str(out / "samples" / "timelapse_conditions.csv")}]
    path = write_config(tmp_path / "p.yaml", cfg)
    assert main(["run", "--config", str(path), "--out", str(out),
                 "--scheduler", local_client.scheduler.address]) == 0
    rec = _records(out)["segment"]["summary"]
    assert rec["plate"]["skipped"] == rec["plate"]["frames"] == 4  # untouched input: all skipped
    assert rec["extra"]["skipped"] == 0 and rec["extra"]["frames"] == 2
    assert {p: p.stat().st_mtime_ns for p in (out / "segment" / "plate").rglob("*.done")} == plate_markers
    assert (out / "results" / "extra" / "per_condition.csv").is_file()


def test_failed_stage_is_recorded_and_status_exits_nonzero(tmp_path, micro_model, capsys):
    cfg = tiny_pipeline(micro_model, samples={"enabled": False})
    cfg["simulate"]["enabled"] = False
    cfg["segment"]["inputs"] = [{"name": "gone", "path": str(tmp_path / "missing.ome.zarr")}]
    path = write_config(tmp_path / "p.yaml", cfg)
    out = tmp_path / "run"
    assert main(["run", "--config", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("mitoscale run: error:") and "missing.ome.zarr" in err
    rec = RunState(out).record("segment")
    assert rec["state"] == "failed" and "missing.ome.zarr" in rec["error"]
    assert main(["status", str(out)]) == 1
    assert "segment   failed" in capsys.readouterr().out


def test_bad_pipeline_configs_fail_before_any_work(tmp_path, micro_model, capsys):
    out = tmp_path / "run"
    cases = [
        ({"simulate": {"n_imgs": 3}}, "unknown key 'simulate.n_imgs'"),
        ({"simulate": {"set": {"geometry.width_nm": [500, 200]}}}, "width_nm"),
        ({"cluster": {"profile": "nosuch"}}, "unknown cluster profile 'nosuch'"),
        ({"segment": {"model": str(tmp_path / "none.safetensors")}}, "not found"),
    ]
    for i, (change, message) in enumerate(cases):
        cfg = tiny_pipeline(micro_model)
        for section, values in change.items():
            cfg[section] = {**cfg[section], **values}
        path = write_config(tmp_path / f"p{i}.yaml", cfg)
        assert main(["run", "--config", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("mitoscale run: error:") and message in err, err
        assert not (out / "corpus.zarr").exists() and not (out / "samples").exists()


def test_run_end_to_end_then_rerun_skips_everything(tmp_path, micro_model, local_client, capsys):
    cfg = write_config(tmp_path / "p.yaml", tiny_pipeline(micro_model))
    out = tmp_path / "run"
    argv = ["run", "--config", str(cfg), "--out", str(out),
            "--scheduler", local_client.scheduler.address]
    assert main(argv) == 0
    rec = _records(out)
    assert {s: (r or {}).get("state") for s, r in rec.items()} == {
        "simulate": "complete", "samples": "complete", "train": None,
        "segment": "complete", "analyze": "complete", "track": "complete"}
    results = out / "results"
    for name in ("timelapse", "plate", "plate_truth"):
        assert (results / name / "per_condition.csv").is_file()
        assert (results / name / "fig_a_counts.png").is_file()
    truth = pd.read_csv(results / "plate_truth" / "per_condition.csv")
    assert set(truth["condition"]) == {"control", "fragmented"}
    readme = (results / "README.md").read_text()
    assert "## plate" in readme and "ground truth (simulator)" in readme
    assert rec["segment"]["summary"]["plate"]["frames"] == 4
    assert set(rec["track"]["summary"]) == {"timelapse"}  # the plate has no time axis: not tracked
    assert (out / "tracks" / "timelapse" / ".markers" / "timelapse-f0-z0.done").is_file()
    marker_times = {p: p.stat().st_mtime_ns for p in out.rglob("*.done")}
    capsys.readouterr()

    assert main(argv) == 0  # rerun: nothing recomputed
    err = capsys.readouterr().err
    assert err.count("complete (key") == 5
    assert _records(out) == rec
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.done")} == marker_times

    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "simulate  complete" in status and "2/2 chunks" in status
    assert "6/6 images" in status and "6/6 frames" in status and "train     disabled" in status


@pytest.mark.slow
def test_train_stage_feeds_segment_and_a_train_change_reruns_downstream_only(
        tmp_path, micro_model, local_client):
    cfg = tiny_pipeline(micro_model, train={"enabled": True, "set": {
        "model.variant": "micro", "steps": 2, "batch_size": 1, "checkpoint_every": 1,
        "val_every": 100, "log_every": 1, "tensorboard": False, "device": "cpu",
        "precision": "fp32", "data.points_per_image": 4, "data.val_fraction": 0.25}})
    cfg["samples"]["wells_per_condition"] = 0
    path = write_config(tmp_path / "p.yaml", cfg)
    out = tmp_path / "run"
    argv = ["run", "--config", str(path), "--out", str(out),
            "--scheduler", local_client.scheduler.address]
    assert main(argv) == 0
    rec = _records(out)
    assert rec["train"]["state"] == "complete" and rec["train"]["summary"]["step"] == 2
    assert rec["segment"]["deps"] == {"samples": rec["samples"]["key"], "train": rec["train"]["key"]}
    man = json.loads((out / "segment" / "timelapse" / "manifest.json").read_text())
    assert man["model_path"] == str((out / "train" / "model.safetensors").resolve())

    cfg["train"]["set"]["steps"] = 3  # train changes: train, segment, analyze, track rerun
    write_config(path, cfg)
    assert main(argv) == 0
    after = _records(out)
    assert {s for s in after if after[s] != rec[s]} == {"train", "segment", "analyze", "track"}
    assert after["train"]["summary"]["step"] == 3
