"""SIGTERM and Ctrl-C the way a cluster and a terminal send them: to the whole process group.

Every Dask stage: `segment`, `baseline` (and `mitoscale run`, in tests/pipeline/test_resume.py).
One line, exit 143 / 130, the manifest says `interrupted`, and a rerun resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mitoscale.io.omezarr import write_ome_zarr_image
from tests.conftest import done_units, forget_units

NOISE = ("Traceback", "CommClosedError", "KeyboardInterrupt", "still alive", "CancelledError",
         "Task exception")


def _wait(pred, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"finished before the signal: {proc.communicate()[0]}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def _start(args):
    env = {**os.environ, "MITOSCALE_NO_PROGRESS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "mitoscale", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _signal_group(proc, sig, out):
    try:
        _wait(lambda: len(done_units(out)) >= 1, 180, proc)
        os.killpg(proc.pid, sig)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return output


def _stage_lines(output: str, stage: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith(f"mitoscale {stage}:")]


def _movie(root, n, side):
    rng = np.random.default_rng(3)
    img = rng.poisson(30, (n, side, side)).astype(np.uint16)
    for t in range(len(img)):
        for y, x in rng.integers(10, side - 10, (6, 2)):
            img[t, y - 2:y + 3, x - 5:x + 6] += 300
    return write_ome_zarr_image(root / "m.ome.zarr", img, "tyx", 0.08)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    return _movie(tmp_path_factory.mktemp("movie"), 12, 96)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_segment_signal_to_the_process_group(tmp_path, micro_model, movie, sig, code):
    out = tmp_path / "seg"
    args = ["segment", str(movie), "--model", str(micro_model), "--out", str(out), "--workers", "1",
            "--set", "postprocess.min_score=0", "--set", "prompts.spacing=8",
            "--cluster-opt", "dashboard_address=null"]
    proc = _start(args)
    output = _signal_group(proc, sig, out)
    assert proc.returncode == code, output
    assert _stage_lines(output, "segment") == [
        f"mitoscale segment: {'stopped by SIGTERM' if sig == signal.SIGTERM else 'interrupted (SIGINT)'}; "
        "rerun the same command to resume"], output
    assert not any(n in output for n in NOISE), output
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "interrupted"
    done = len(done_units(out))
    assert 1 <= done < 12
    if sig == signal.SIGINT:
        return  # resuming is the same after either signal: checked once, after SIGTERM
    # a rerun resumes: finished frames are skipped; a clean shutdown prints no Dask noise
    proc = _start(args)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert not any(n in output for n in NOISE), output
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["frames_skipped"] >= done


def test_baseline_sigterm_to_the_process_group(tmp_path):
    out = tmp_path / "b"
    movie = _movie(tmp_path, 40, 512)  # ~0.2 s a frame: long enough to be interrupted
    args = ["baseline", "classical", str(movie), "--out", str(out),
            "--workers", "1", "--cluster-opt", "dashboard_address=null"]
    proc = _start(args)
    output = _signal_group(proc, signal.SIGTERM, out)
    assert proc.returncode == 143, output
    assert _stage_lines(output, "baseline") == [
        "mitoscale baseline: stopped by SIGTERM; rerun the same command to resume"], output
    assert not any(n in output for n in NOISE), output
    assert json.loads((out / "manifest.json").read_text())["status"] == "interrupted"
