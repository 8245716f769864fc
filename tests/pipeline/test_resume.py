"""A killed ``mitoscale run`` resumes: only missing units are recomputed, results identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from mitoscale.cli import main
from mitoscale.pipeline.config import SamplesSection
from mitoscale.pipeline.samples import write_samples
from mitoscale.pipeline.state import RunState
from mitoscale.pipeline.status import run_status

from .conftest import tiny_pipeline, write_config

N_FRAMES = 16


def _samples_only(micro_model) -> dict:
    cfg = tiny_pipeline(micro_model, samples={"timelapse_frames": N_FRAMES, "wells_per_condition": 0})
    cfg["simulate"]["enabled"] = False
    cfg["segment"]["enabled"] = False
    cfg["analyze"]["enabled"] = False
    return cfg


def _wait(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_run_resumes_with_only_missing_units(tmp_path, micro_model, local_client, sig):
    cfg = _samples_only(micro_model)
    path = write_config(tmp_path / "p.yaml", cfg)
    out = tmp_path / "run"
    markers = out / "samples" / ".markers"
    env = {**os.environ, "MITOSCALE_NO_PROGRESS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mitoscale", "run", "--config", str(path), "--out", str(out),
         "--workers", "1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        _wait(lambda: markers.is_dir() and len(list(markers.glob("*.done"))) >= 3, 120)
        os.killpg(proc.pid, sig) if sig == signal.SIGKILL else proc.send_signal(sig)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    rec = RunState(out).record("samples")
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, output
        assert "mitoscale run: stopped by SIGTERM; rerun the same command to resume" in output
        assert rec["state"] == "interrupted"
    else:
        assert proc.returncode == -signal.SIGKILL
        assert rec["state"] == "running"  # killed without a word: status says so
        rows = {r.stage: r for r in run_status(out)}
        assert rows["samples"].state == "running" and "it was killed" in rows["samples"].detail
    done_at_kill = len(list(markers.glob("*.done")))
    assert 3 <= done_at_kill < N_FRAMES

    assert main(["run", "--config", str(path), "--out", str(out),
                 "--scheduler", local_client.scheduler.address]) == 0
    summary = RunState(out).record("samples")["summary"]
    assert summary == {"units": N_FRAMES, "computed": N_FRAMES - done_at_kill,
                       "skipped": done_at_kill}

    # bit-identical to an uninterrupted in-process run
    ref = tmp_path / "ref"
    write_samples(SamplesSection.model_validate(cfg["samples"]), ref)
    import zarr

    got = zarr.open_group(str(out / "samples" / "timelapse.ome.zarr"), mode="r")
    exp = zarr.open_group(str(ref / "timelapse.ome.zarr"), mode="r")
    ds = next(iter(got.array_keys()))
    assert np.array_equal(got[ds][...], exp[ds][...])
    assert (got[ds][...].reshape(N_FRAMES, -1).max(axis=1) > 0).all()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "samples" / "truth"),
                                  pd.read_parquet(ref / "truth"), check_exact=True)
