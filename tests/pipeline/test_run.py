"""``mitoscale run`` / ``mitoscale status`` end to end with real stages on a tiny config."""

from __future__ import annotations

import json

import pytest

from mitoscale.cli import main
from mitoscale.pipeline.state import RunState

from .conftest import tiny_pipeline, write_config


def _records(run_dir):
    st = RunState(run_dir)
    return {s: st.record(s) for s in ("simulate", "samples", "train", "segment", "analyze")}


def test_run_end_to_end_then_rerun_skips_everything(tmp_path, micro_model, local_client, capsys):
    cfg = write_config(tmp_path / "p.yaml", tiny_pipeline(micro_model))
    out = tmp_path / "run"
    argv = ["run", "--config", str(cfg), "--out", str(out),
            "--scheduler", local_client.scheduler.address]
    assert main(argv) == 0
    rec = _records(out)
    assert {s: (r or {}).get("state") for s, r in rec.items()} == {
        "simulate": "complete", "samples": "complete", "train": None,
        "segment": "complete", "analyze": "complete"}
    results = out / "results"
    for name in ("timelapse", "plate"):
        assert (results / name / "per_condition.csv").is_file()
        assert (results / name / "fig_a_counts.png").is_file()
    assert "## plate" in (results / "README.md").read_text()
    assert rec["segment"]["summary"]["plate"]["frames"] == 4
    marker_times = {p: p.stat().st_mtime_ns for p in out.rglob("*.done")}
    capsys.readouterr()

    assert main(argv) == 0  # rerun: nothing recomputed
    err = capsys.readouterr().err
    assert err.count("complete (key") == 4
    assert _records(out) == rec
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.done")} == marker_times

    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "simulate  complete" in status and "2/2 chunks" in status
    assert "6/6 images" in status and "6/6 frames" in status and "train     disabled" in status
