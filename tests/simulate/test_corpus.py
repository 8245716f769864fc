"""The corpus writer: real Zarr v3 stores, a real LocalCluster, the real CLI."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from mitoscale.cli import main
from mitoscale.config import dump_config
from mitoscale.io.tables import read_table, table_to_masks
from mitoscale.simulate import open_corpus, read_instances, simulate_image, write_corpus

N = 6


def _contents(path):
    root = zarr.open_group(str(path), mode="r")
    table = read_table(Path(path) / "instances").drop(columns=["control_points_nm"])
    table = table.sort_values(["image_id", "instance_id"]).reset_index(drop=True)
    return ({k: np.asarray(root[k][:]) for k in ("images", "labels", "n_instances", "sbr", "background")},
            table)


def _assert_same(a, b):
    arrays_a, table_a = a
    arrays_b, table_b = b
    for k in arrays_a:
        assert np.array_equal(arrays_a[k], arrays_b[k]), k
    pd.testing.assert_frame_equal(table_a, table_b)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, small_cfg):
    """N images written in this process, 4 images per chunk."""
    out = tmp_path_factory.mktemp("ref") / "corpus.zarr"
    res = write_corpus(small_cfg, out, N, seed=3, chunk_images=4)
    assert res == {**res, "chunks": 2, "computed": 2, "skipped": 0}
    return out


def test_layout_and_attributes(reference, small_cfg):
    root, attrs = open_corpus(reference)
    assert attrs["format"] == "mitoscale-corpus/1" and attrs["seed"] == 3 and attrs["n_images"] == N
    assert attrs["config"] == dump_config(small_cfg) and attrs["version"]
    assert attrs["pixel_size_um"] == 0.08
    assert root["images"].shape == (N, 256, 256) and root["images"].dtype == np.uint16
    assert root["labels"].shape == (N, small_cfg.corpus.max_label_layers, 256, 256)
    assert root["images"].chunks == (4, 256, 256) and root["labels"].chunks == (4, 1, 256, 256)
    assert sorted(p.name for p in (reference / "instances").iterdir()) == ["part-00000.parquet",
                                                                          "part-00001.parquet"]
    assert sorted(p.name for p in (reference / ".markers").iterdir()) == ["00000000.done", "00000001.done"]
    # the store holds exactly what simulate_image gives
    s = simulate_image(small_cfg, 3, 5)
    assert np.array_equal(root["images"][5], s.image)
    assert int(root["n_instances"][5]) == len(s.table)
    # every image is a recorded location of the ground-truth table, with or without instances
    from mitoscale.io.tables import read_locations

    locs = read_locations(reference / "instances")
    assert list(locs["image_id"]) == [f"{i:08d}" for i in range(N)] and set(locs["z"]) == {-1}


def test_overlapping_instances_round_trip(reference):
    table = read_table(reference / "instances")
    n_overlap = 0
    for i in range(N):
        rows = table[table.image_id == f"{i:08d}"]
        from_table = table_to_masks(rows)
        from_labels = read_instances(reference, i)
        assert len(from_labels) == len(rows)
        for a, b in zip(from_labels, from_table):
            assert np.array_equal(a, b)
        n_overlap += int((from_table.sum(axis=0) > 1).sum())
    assert n_overlap > 0


def test_bit_identical_across_worker_counts_and_chunking(tmp_path, reference, small_cfg, local_client):
    from distributed import Client, LocalCluster

    two = tmp_path / "two.zarr"
    write_corpus(small_cfg, two, N, seed=3, chunk_images=4, client=local_client)
    _assert_same(_contents(reference), _contents(two))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        one = tmp_path / "one.zarr"
        write_corpus(small_cfg, one, N, seed=3, chunk_images=4, client=client)
    _assert_same(_contents(reference), _contents(one))
    # another chunking gives the same images and table
    rechunked = tmp_path / "rechunked.zarr"
    write_corpus(small_cfg, rechunked, N, seed=3, chunk_images=1, client=local_client)
    _assert_same(_contents(reference), _contents(rechunked))


def test_resume_recomputes_only_missing_chunks(tmp_path, reference, small_cfg, local_client):
    out = tmp_path / "c.zarr"
    write_corpus(small_cfg, out, N, seed=3, chunk_images=1, client=local_client)
    # simulate a run that died inside chunks 2 and 4: data torn, markers absent
    root = zarr.open_group(str(out), mode="r+")
    for k in (2, 4):
        root["images"][k] = 0
        (out / ".markers" / f"{k:08d}.done").unlink()
        (out / "instances" / f"part-{k:05d}.parquet").unlink()
    before = {p: p.stat().st_mtime_ns for p in (out / ".markers").iterdir()}
    res = write_corpus(small_cfg, out, N, seed=3, chunk_images=1, client=local_client)
    assert (res["computed"], res["skipped"]) == (2, N - 2)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished chunks untouched
    _assert_same(_contents(reference), _contents(out))


def _cli(*args):
    return [sys.executable, "-m", "mitoscale", *args]


@pytest.mark.slow
def test_resume_after_killed_cli_run(tmp_path, reference):
    out = tmp_path / "killed.zarr"
    args = ["simulate", "--n-images", str(N), "--out", str(out), "--seed", "3", "--chunk-images", "1",
            "--set", "corpus.crops_per_side=2", "--workers", "1"]
    env = {**os.environ, "MITOSCALE_NO_PROGRESS": "1"}
    proc = subprocess.Popen(_cli(*args), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    markers = out / ".markers"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if markers.is_dir() and len(list(markers.glob("*.done"))) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail("the run finished before it could be killed")
            time.sleep(0.05)
        else:
            pytest.fail("no chunk finished in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run: client, scheduler, workers
        proc.wait()
    done = len(list(markers.glob("*.done")))
    assert 2 <= done < N
    rerun = subprocess.run(_cli(*args), env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N} chunks ({done} already done, {N - done} written" in rerun.stderr
    _assert_same(_contents(reference), _contents(out))


def _run_cli(capsys, *args):
    rc = main(list(args))
    err = capsys.readouterr().err.strip()
    return rc, err


@pytest.mark.parametrize("override,needle", [
    ("geometry.width_nm=[-100,300]", "width_nm"),
    ("geometry.length_nm=[2500,500]", "min 2500.0 > max 500.0"),
    ("geometry.colour=red", "unknown key 'geometry.colour'"),
])
def test_bad_config_values(tmp_path, capsys, override, needle):
    out = tmp_path / "x.zarr"
    rc, err = _run_cli(capsys, "simulate", "--n-images", "2", "--out", str(out), "--set", override)
    assert rc == 2 and "\n" not in err and err.startswith("mitoscale simulate: error:") and needle in err
    assert not out.exists()


def test_unknown_key_in_config_file(tmp_path, capsys):
    cfg = tmp_path / "sim.yaml"
    cfg.write_text("geometry:\n  count_per_crop: [4, 16]\n  wobble: 3\n")
    rc, err = _run_cli(capsys, "simulate", "--config", str(cfg), "--n-images", "2", "--out", str(tmp_path / "x"))
    assert rc == 2 and "\n" not in err and "unknown key 'geometry.wobble'" in err


@pytest.mark.parametrize("n", ["0", "-3"])
def test_non_positive_n(tmp_path, capsys, n):
    rc, err = _run_cli(capsys, "simulate", "--n-images", n, "--out", str(tmp_path / "x.zarr"))
    assert rc == 2 and "\n" not in err and "--n-images must be positive" in err
    assert not (tmp_path / "x.zarr").exists()
    rc, err = _run_cli(capsys, "simulate", "--n-images", "2", "--chunk-images", n, "--out", str(tmp_path / "y.zarr"))
    assert rc == 2 and "\n" not in err and "per chunk must be positive" in err
    assert not (tmp_path / "y.zarr").exists()


def test_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    rc, err = _run_cli(capsys, "simulate", "--n-images", "2", "--out", str(blocker / "corpus.zarr"))
    assert rc == 2 and "\n" not in err and "not writable" in err


def test_existing_store_with_other_config_is_refused(tmp_path, capsys, reference):
    import shutil

    out = tmp_path / "c.zarr"
    shutil.copytree(reference, out)
    markers_before = sorted(p.name for p in (out / ".markers").iterdir())
    rc, err = _run_cli(capsys, "simulate", "--n-images", str(N), "--out", str(out), "--seed", "3",
                       "--chunk-images", "4", "--set", "corpus.crops_per_side=2",
                       "--set", "imaging.sbr=[3,4]")
    assert rc == 2 and "\n" not in err and "different config" in err
    rc, err = _run_cli(capsys, "simulate", "--n-images", str(N), "--out", str(out), "--seed", "4",
                       "--chunk-images", "4", "--set", "corpus.crops_per_side=2")
    assert rc == 2 and "different seed" in err
    assert sorted(p.name for p in (out / ".markers").iterdir()) == markers_before
    # a directory that is not a corpus
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    rc, err = _run_cli(capsys, "simulate", "--n-images", "2", "--out", str(other))
    assert rc == 2 and "not a mitoscale corpus" in err


def test_console_script_exit_code(tmp_path):
    """The installed `mitoscale` entry point prints one line and exits non-zero."""
    script = Path(sys.executable).with_name("mitoscale")
    cmd = [str(script)] if script.exists() else _cli()
    r = subprocess.run(cmd + ["simulate", "--n-images", "0", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "error" in r.stderr


def test_preview_png(tmp_path, reference, capsys):
    out = tmp_path / "montage.png"
    rc, err = _run_cli(capsys, "simulate", "preview", str(reference), "--out", str(out), "--n", "2")
    assert rc == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    w, h = Image.open(out).size
    assert w >= 2 * 256 and h >= 2 * 256  # one screen pixel per image pixel
    rc, err = _run_cli(capsys, "simulate", "preview", str(tmp_path / "nope.zarr"), "--out", str(out))
    assert rc == 2 and ("not a Zarr store" in err or "not a mitoscale corpus" in err)


def test_help_everywhere(capsys):
    for args in (["simulate", "--help"], ["simulate", "preview", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 0
        assert "usage:" in capsys.readouterr().out


def test_cli_on_a_running_scheduler(tmp_path, capsys, reference, local_client):
    """`--scheduler tcp://...` runs the job on an existing cluster."""
    out = tmp_path / "sched.zarr"
    rc, err = _run_cli(capsys, "simulate", "--n-images", str(N), "--out", str(out), "--seed", "3",
                       "--chunk-images", "4", "--set", "corpus.crops_per_side=2",
                       "--scheduler", local_client.scheduler.address)
    assert rc == 0, err
    assert "2 chunks (0 already done, 2 written" in err
    _assert_same(_contents(reference), _contents(out))


def test_interrupted_store_creation_resumes(tmp_path, reference, small_cfg):
    """A store killed while its arrays were being created is completed on the next run."""
    import shutil

    from mitoscale.simulate.corpus import prepare_store

    out = tmp_path / "c.zarr"
    prepare_store(out, small_cfg, 3, N, 4)
    for name in ("labels", "sbr", "background"):
        shutil.rmtree(out / name)
    res = write_corpus(small_cfg, out, N, seed=3, chunk_images=4)
    assert res["computed"] == 2
    _assert_same(_contents(reference), _contents(out))
