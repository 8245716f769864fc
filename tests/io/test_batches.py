"""The bounded, batched executor (issue 15) on a real LocalCluster: window, in-task checks, kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mitoscale.evaluate.baselines.run import run_baseline
from mitoscale.io.batches import auto_frames_per_task, make_batches
from mitoscale.io.omezarr import write_ome_zarr_image
from mitoscale.io.runfolder import RunFolder, UnitFailures
from mitoscale.io.tables import LOCATION_KEYS, read_locations, read_table


def _movie(path, n, side=64, seed=0, blank=()):
    rng = np.random.default_rng(seed)
    img = rng.poisson(20, (n, side, side)).astype(np.uint16)
    for t in range(n):
        for y, x in rng.integers(8, side - 8, (6, 2)):
            img[t, y - 2:y + 3, x - 4:x + 5] += 400
    for t in blank:
        img[t] = 9  # a blank field: fails the frame check inside its task
    return write_ome_zarr_image(path, img, "tyx", 0.08)


def test_auto_batches_follow_frame_size_and_workers():
    assert auto_frames_per_task(128 * 128, 20_000, 2) == 64
    assert auto_frames_per_task(1024 * 1024, 20_000, 2) == 4
    assert auto_frames_per_task(2048 * 2048, 20_000, 2) == 1
    assert auto_frames_per_task(128 * 128, 12, 2) == 2  # still 4 tasks per thread
    items = [(f"u{i}", "p0" if i < 5 else "p1", i) for i in range(8)]
    assert [b.units for b in make_batches(items, 3)] == [["u0", "u1", "u2"], ["u3", "u4"],
                                                         ["u5", "u6", "u7"]]


def test_window_bounds_the_tasks_the_scheduler_holds(tmp_path, local_client):
    inp = _movie(tmp_path / "m.ome.zarr", 60)
    seen, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            seen.append(local_client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))
            time.sleep(0.01)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    try:
        res = run_baseline("classical", inp, tmp_path / "o", client=local_client, window=3,
                           frames_per_task=1)
    finally:
        stop.set()
        th.join()
    assert res["n_frames"] == 60 and res["execution"]["max_in_flight"] == 3
    assert res["execution"]["tasks"] == 60
    # 60 frame tasks, never more than the window (+ the partition's merge) on the scheduler
    assert len(seen) > 10 and max(seen) <= 3 + 1, max(seen)
    assert len(read_locations(tmp_path / "o" / "instances")) == 60


def test_a_blank_frame_inside_a_batch_fails_alone(tmp_path, local_client):
    inp = _movie(tmp_path / "m.ome.zarr", 20, blank=(6,))
    out = tmp_path / "o"
    with pytest.raises(UnitFailures, match="1 of 20 frames failed .*constant"):
        run_baseline("classical", inp, out, client=local_client, frames_per_task=5)
    folder = RunFolder(out, "?")
    assert len(folder.markers.completed()) == 19  # its batch-mates went on
    assert [f["unit"] for f in folder.failed_units()] == ["m_____f0__t6__z0"]
    assert set(read_locations(out / "instances")["t"]) == set(range(20)) - {6}
    with pytest.raises(UnitFailures):  # a rerun retries only that frame (still blank)
        run_baseline("classical", inp, out, client=local_client, frames_per_task=5)
    man = json_status(out)
    assert man["units_skipped"] == 19 and man["units_done"] == 19


def json_status(out):
    import json

    return json.loads((out / "manifest.json").read_text())


def _start(args):
    env = {**os.environ, "MITOSCALE_NO_PROGRESS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "mitoscale", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_without_duplicates(tmp_path, sig):
    """A real kill of the whole process group mid-run; the rerun completes; nothing is duplicated."""
    inp = _movie(tmp_path / "m.ome.zarr", 160, side=160)
    ref = tmp_path / "ref"
    run_baseline("classical", inp, ref)
    out = tmp_path / "o"
    args = ["baseline", "classical", str(inp), "--out", str(out), "--workers", "1"]
    proc = _start(args)
    folder = RunFolder(out, "?")
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not folder.markers.completed():
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.02)
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done = len(RunFolder(out, "?").markers.completed())
    assert 1 <= done < 160, done
    proc = _start(args)
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    key = [*LOCATION_KEYS, "instance_id"]
    got = read_table(out / "instances")
    assert not got.duplicated(key).any()
    want = read_table(ref / "instances")
    import pandas as pd

    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  want.sort_values(key).reset_index(drop=True))
    assert len(read_locations(out / "instances")) == 160
    assert not list((out / ".staging").rglob("*.parquet")) if (out / ".staging").exists() else True
    man = json_status(out)
    assert man["status"] == "complete" and man["units_done"] == 160 and man["units_skipped"] == done


def test_a_scheduler_of_its_own_never_imports_the_stage(tmp_path):
    """Batch payloads reach the scheduler as bytes: it imports neither the stage nor torch."""
    from distributed import Client

    sf = tmp_path / "scheduler.json"
    py = [sys.executable, "-m"]
    log = open(tmp_path / "cluster.log", "wb")
    procs = [subprocess.Popen(py + ["distributed.cli.dask_scheduler", "--scheduler-file", str(sf), "--host",
                                    "127.0.0.1", "--port", "0", "--no-dashboard"], stdout=log, stderr=log)]
    try:
        deadline = time.monotonic() + 60
        while not sf.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        procs.append(subprocess.Popen(py + ["distributed.cli.dask_worker", "--scheduler-file", str(sf),
                                            "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                      stdout=log, stderr=log))
        with Client(scheduler_file=str(sf), timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            res = run_baseline("classical", _movie(tmp_path / "m.ome.zarr", 12), tmp_path / "o", client=client,
                               frames_per_task=3)
            assert res["n_frames"] == 12 and res["n_instances"] > 0
            mods = client.run_on_scheduler(lambda: sorted(m for m in sys.modules if m.split(".")[0] in (
                "mitoscale", "torch")))
        assert mods == ["mitoscale", "mitoscale.io", "mitoscale.io.remote"], mods
        assert len(read_table(tmp_path / "o" / "instances")) == res["n_instances"]
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
