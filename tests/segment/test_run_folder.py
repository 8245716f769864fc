"""The run-folder contract (mitoscale.io.runfolder) as `segment` and `baseline` live it.

Real stores, real model (micro SAM), the real CLI; each test fails on the code before issue 13.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mitoscale.cli import main
from mitoscale.io.omezarr import write_ome_zarr_image
from mitoscale.io.tables import read_locations, read_table
from tests.conftest import done_units, forget_units

FAST = ["--set", "postprocess.min_score=0", "--set", "prompts.spacing=16", "--set", "decode.window=8",
        "--set", "prompts.max_prompts=6"]


def _frames(n: int, seed: int = 0, shape=(48, 56)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.poisson(30, (n, *shape)).astype(np.uint16)
    for t in range(n):  # a few bright blobs per frame
        for y, x in rng.integers(8, min(shape) - 8, (3, 2)):
            img[t, y - 2:y + 3, x - 4:x + 5] += 400
    return img


def _segment(inp, out, model, *extra) -> int:
    return main(["segment", str(inp), "--model", str(model), "--out", str(out), "--in-process",
                 *FAST, *extra])


def _err_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if ln.strip() and "frame/s" not in ln]


def test_another_input_into_the_same_out_is_refused_naming_what_differs(tmp_path, micro_model, capsys):
    a = write_ome_zarr_image(tmp_path / "a" / "img.ome.zarr", _frames(2, 0), "tyx", 0.08)
    b = write_ome_zarr_image(tmp_path / "b" / "img.ome.zarr", _frames(2, 1), "tyx", 0.08)  # same name
    out = tmp_path / "out"
    assert _segment(a, out, micro_model) == 0
    rows_a = read_table(out / "instances")
    capsys.readouterr()
    # same file name and shape, other pixels: the fingerprint tells them apart
    assert _segment(b, out, micro_model) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "input path" in err[0] and "--overwrite" in err[0], err
    b2 = tmp_path / "a2" / "img.ome.zarr"
    import shutil

    shutil.copytree(b, b2)
    shutil.rmtree(a)
    shutil.move(b2, a)  # B's pixels at A's path: only the content differs
    assert _segment(a, out, micro_model) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "another input content" in err[0], err
    # the folder still holds A's results, untouched
    assert len(read_table(out / "instances")) == len(rows_a)
    assert _segment(a, out, micro_model, "--overwrite") == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "complete" and man["frames_skipped"] == 0
    assert man["counts"]["instances"] == len(read_table(out / "instances"))


def test_a_moved_run_folder_with_its_input_still_resumes(tmp_path, micro_model):
    root = tmp_path / "project"
    inp = write_ome_zarr_image(root / "img.ome.zarr", _frames(2), "tyx", 0.08)
    assert _segment(inp, root / "seg", micro_model) == 0
    moved = tmp_path / "moved"
    root.rename(moved)
    assert _segment(moved / "img.ome.zarr", moved / "seg", micro_model) == 0
    assert json.loads((moved / "seg" / "manifest.json").read_text())["frames_skipped"] == 2


def test_blank_frame_fails_alone_is_listed_and_only_it_is_retried(tmp_path, micro_model, capsys):
    img = _frames(3)
    img[1] = 7  # a blank field
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", img, "tyx", 0.08)
    out = tmp_path / "out"
    assert _segment(inp, out, micro_model) == 2
    err = _err_lines(capsys)
    assert len(err) == 1, err
    assert "1 of 3 frames failed" in err[0] and "constant" in err[0] and "failed.json" in err[0]
    done = done_units(out)
    assert done == ["m_____f0__t0__z0", "m_____f0__t2__z0"]  # the others went on
    failed = json.loads((out / "failed.json").read_text())
    assert [f["unit"] for f in failed] == ["m_____f0__t1__z0"]
    man = json.loads((out / "manifest.json").read_text())
    assert man["status"] == "failed" and man["failed"] == 1
    assert {(r["t"]) for r in read_locations(out / "instances").to_dict("records")} == {0, 2}
    # `mitoscale status` lists it
    assert main(["status", str(out)]) == 1
    text = capsys.readouterr().out
    assert "m_____f0__t1__z0" in text and "constant" in text and "2/3 frames complete" in text
    # a rerun retries only the failed frame
    assert _segment(inp, out, micro_model) == 2
    capsys.readouterr()
    man = json.loads((out / "manifest.json").read_text())
    assert man["frames_skipped"] == 2 and man["units_done"] == 2


def test_manifest_counts_the_whole_folder_after_a_resume(tmp_path, micro_model):
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(3), "tyx", 0.08)
    out = tmp_path / "out"
    assert _segment(inp, out, micro_model) == 0
    # as after a kill before one frame was logged: it is redone, and its rows are not duplicated
    forget_units(out, "m_____f0__t1__z0")
    assert _segment(inp, out, micro_model) == 0
    man = json.loads((out / "manifest.json").read_text())
    assert man["frames_skipped"] == 2
    assert man["counts"]["instances"] == len(read_table(out / "instances")) > 0


@pytest.mark.parametrize("case", ["nan", "constant"])
def test_baseline_applies_the_same_frame_check(tmp_path, capsys, case):
    img = _frames(2).astype(np.float32)
    if case == "nan":
        img[1, 3, 4] = np.nan
    else:
        img[1] = 5.0
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", img, "tyx", 0.08)
    out = tmp_path / "b"
    assert main(["baseline", "classical", str(inp), "--out", str(out), "--workers", "1"]) == 2
    err = [ln for ln in _err_lines(capsys) if "error" in ln]
    assert len(err) == 1 and "1 of 2 frames failed" in err[0]
    assert ("NaN" if case == "nan" else "constant") in err[0]
    assert done_units(out) == ["m_____f0__t0__z0"]
    # analyze sees only the good frame: the bad one is not an image "without mitochondria"
    assert set(read_locations(out / "instances")["t"]) == {0}


def test_baseline_refuses_an_output_inside_its_input(tmp_path, capsys):
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(1), "tyx", 0.08)
    before = sorted(p.relative_to(inp) for p in inp.rglob("*"))
    for out in (inp, inp / "seg"):
        assert main(["baseline", "classical", str(inp), "--out", str(out)]) == 2
        err = _err_lines(capsys)
        assert len(err) == 1 and "inside the input" in err[0]
    assert sorted(p.relative_to(inp) for p in inp.rglob("*")) == before


def test_baseline_refuses_another_input_and_corrupt_chunks_are_one_line(tmp_path, capsys):
    a = write_ome_zarr_image(tmp_path / "a.ome.zarr", _frames(2, 0), "tyx", 0.08)
    out = tmp_path / "b"
    assert main(["baseline", "classical", str(a), "--out", str(out)]) == 0
    capsys.readouterr()
    chunk = next(p for p in sorted((a / "s0").rglob("*")) if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage" * 3)
    assert main(["baseline", "classical", str(a), "--out", str(out)]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "input content" in err[0], err
    assert main(["baseline", "classical", str(a), "--out", str(tmp_path / "c")]) == 2
    err = [ln for ln in _err_lines(capsys) if "error" in ln]
    assert len(err) == 1 and "cannot read pixels" in err[0] and "t=0" in err[0] and str(a) in err[0], err
    assert "Traceback" not in "\n".join(err)


def test_labels_name_with_a_path_separator_is_refused(tmp_path, micro_model, capsys):
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(1), "tyx", 0.08)
    for name in ("../../x", "a/b", ".."):
        assert _segment(inp, tmp_path / "o", micro_model, "--set", f"output.labels_name={name}") == 2
        err = _err_lines(capsys)
        assert len(err) == 1 and "labels_name" in err[0]
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()


@pytest.mark.parametrize("value", ["4", "-1"])
def test_max_window_below_window_is_refused(tmp_path, micro_model, capsys, value):
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(1), "tyx", 0.08)
    assert _segment(inp, tmp_path / "o", micro_model, "--set", f"decode.max_window={value}") == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "max_window" in err[0]


def test_channel_on_an_image_without_channels_is_refused(tmp_path, micro_model, capsys):
    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(1), "tyx", 0.08)
    assert _segment(inp, tmp_path / "o", micro_model, "--channel", "3") == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "no channel axis" in err[0]
    assert main(["baseline", "classical", str(inp), "--out", str(tmp_path / "b"), "--channel", "3"]) == 2
    assert "no channel axis" in _err_lines(capsys)[0]


@pytest.mark.parametrize("case", ["not_json", "no_spec", "renamed"])
def test_bad_model_json_is_one_line(tmp_path, micro_model, capsys, case):
    import shutil

    model = tmp_path / "m.safetensors"
    shutil.copy(micro_model, model)
    spec = json.loads(Path(micro_model).with_suffix(".json").read_text())
    text = {"not_json": "{this is not json",
            "no_spec": json.dumps({"format": "mitoscale-model/1", "meta": {}}),
            "renamed": json.dumps({**spec, "spec": {**spec["spec"], "name": "vit_b"}})}[case]
    model.with_suffix(".json").write_text(text)
    inp = write_ome_zarr_image(tmp_path / "i.ome.zarr", _frames(1), "tyx", 0.08)
    assert main(["segment", str(inp), "--model", str(model), "--out", str(tmp_path / "o"),
                 "--in-process", "--set", "model.variant=vit_b"]) == 2
    err = _err_lines(capsys)
    expect = {"not_json": "not valid JSON", "no_spec": "no 'spec'",
              "renamed": "names the 'vit_b' architecture but its weights are"}[case]
    assert len(err) == 1 and expect in err[0], err
    if case == "renamed":
        assert "'micro'" in err[0]
    assert not (tmp_path / "o" / "manifest.json").exists()


def _mount_tmpfs(path: Path, size: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_disk_that_fills_mid_run_is_one_line(tmp_path, micro_model, capsys):
    """A real full file system (a 64 KiB tmpfs; needs root to mount, skipped otherwise)."""
    import subprocess

    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(6, shape=(96, 96)), "tyx", 0.08)
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        rc = _segment(inp, disk / "out", micro_model)
        err = _err_lines(capsys)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    assert rc == 2
    assert len(err) == 1 and "No space left on device" in err[0], err


def test_a_disk_that_becomes_unwritable_mid_run_is_one_line(tmp_path, micro_model):
    """A real file system remounted read-only while `segment` writes to it (EROFS), as when a
    scratch quota locks a folder: one line, exit 2, the run not marked complete, and once the
    disk is writable again a rerun completes without duplicating a frame."""
    import subprocess
    import sys
    import time

    inp = write_ome_zarr_image(tmp_path / "m.ome.zarr", _frames(16, shape=(96, 96)), "tyx", 0.08)
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "64m"):
        pytest.skip("cannot mount a tmpfs here (not root)")
    out = disk / "out"
    labels = out / "labels" / "mitochondria" / "0"
    cmd = [sys.executable, "-m", "mitoscale", "segment", str(inp), "--model", str(micro_model),
           "--out", str(out), "--in-process", *FAST]

    def first_frame_written() -> bool:  # a label chunk of a frame (not metadata): results are coming
        return labels.exists() and any(p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs")
                                       for p in labels.rglob("*"))
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not first_frame_written():
            time.sleep(0.01)
        assert proc.poll() is None, "segment ended before the disk could be locked; make the input larger"
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, capture_output=True)
        _, stderr = proc.communicate(timeout=120)
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True, capture_output=True)
        err = [ln for ln in stderr.splitlines() if ln.strip() and "frame/s" not in ln]
        assert proc.returncode == 2, stderr
        assert len(err) == 1 and "Read-only file system" in err[0], err
        assert "Traceback" not in stderr
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["status"] != "complete"
        logged = done_units(out)  # what was logged before the remount stays valid
        assert main(["segment", str(inp), "--model", str(micro_model), "--out", str(out),
                     "--in-process", *FAST]) == 0
        full = read_table(out / "instances")
        assert not full.duplicated(["t", "instance_id"]).any()
        assert sorted(full["t"].unique()) == list(range(16))
        assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
        assert set(logged) <= set(done_units(out))
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
