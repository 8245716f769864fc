"""mitoscale.io.runfolder on its own: identity, refusals, failures, counts (real files)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mitoscale.errors import InputError, OutputError
from mitoscale.io.images import open_image
from mitoscale.io.omezarr import write_ome_zarr_image
from mitoscale.io.runfolder import (RunFolder, UnitFailure, UnitFailures, check_frame, input_identity,
                                    run_units_locally)


def _store(path, seed=0):
    img = np.random.default_rng(seed).integers(0, 500, (3, 32, 32)).astype(np.uint16)
    return write_ome_zarr_image(path, img, "tyx", 0.08)


def _identity(path, **over):
    return {"stage": "test", "config_hash": "c1", "model_sha256": "m1",
            "input": input_identity(path, open_image(path)), **over}


def _complete(folder, units, results=None):
    with folder.running(units):
        for u in units:
            folder.markers.mark(u, {"instances": 2})
        return folder.finish(results or {u: {"instances": 2} for u in units})


def test_identity_refusals_name_what_differs(tmp_path):
    inp = _store(tmp_path / "a.ome.zarr")
    out = tmp_path / "out"
    folder = RunFolder(out, "test")
    folder.claim(_identity(inp))
    _complete(folder, ["u0", "u1"])
    RunFolder(out, "test").claim(_identity(inp))  # the same run: resumes
    for over, word in [({"config_hash": "c2"}, "config hash"), ({"model_sha256": "m2"}, "model sha256")]:
        with pytest.raises(OutputError, match=f"another {word}; use a new --out or --overwrite"):
            RunFolder(out, "test").claim(_identity(inp, **over))
    _store(tmp_path / "a2.ome.zarr", seed=1)
    import shutil

    shutil.rmtree(inp)
    shutil.move(tmp_path / "a2.ome.zarr", inp)  # rewritten in place: same path, names and shapes
    with pytest.raises(OutputError, match="another input content"):
        RunFolder(out, "test").claim(_identity(inp))
    again = RunFolder(out, "test")
    assert again.claim(_identity(inp), overwrite=True) is True
    assert again.markers.completed() == [] and not (out / "failed.json").exists()


def test_results_without_identity_are_not_adopted(tmp_path):
    inp = _store(tmp_path / "a.ome.zarr")
    out = tmp_path / "out"
    (out / "instances").mkdir(parents=True)
    (out / "instances" / "x.parquet").write_bytes(b"")
    with pytest.raises(OutputError, match="without a run identity"):
        RunFolder(out, "test").claim(_identity(inp))


def test_identity_ignores_labels_and_reads_few_bytes(tmp_path):
    inp = _store(tmp_path / "a.ome.zarr")
    before = input_identity(inp, open_image(inp))
    (inp / "labels" / "x").mkdir(parents=True)
    (inp / "labels" / "x" / "zarr.json").write_text("{}")
    assert input_identity(inp, open_image(inp)) == before  # labels written into the input
    assert before["images"] == [{"name": "a", "axes": "tyx", "shape": [3, 32, 32], "dtype": "uint16",
                                 "pixel_size_um": 0.08}]


def test_failures_summary_retry_and_whole_folder_counts(tmp_path):
    inp = _store(tmp_path / "a.ome.zarr")
    folder = RunFolder(tmp_path / "out", "test")
    folder.claim(_identity(inp))
    units = ["u0", "u1", "u2"]

    def work(u):
        if u == "u1":
            raise InputError("frame u1 is constant")
        folder.markers.mark(u, {"instances": 5})
        return {"instances": 5}

    with pytest.raises(UnitFailures) as exc:
        with folder.running(units):
            results = run_units_locally({u: (lambda u=u: work(u)) for u in units}, "t", progress=False)
            assert isinstance(results["u1"], UnitFailure)
            folder.finish(results)
    msg = str(exc.value)
    assert msg.startswith("1 of 3 frames failed (first, u1: frame u1 is constant)") and "failed.json" in msg
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert man["status"] == "failed" and man["counts"]["instances"] == 10 and man["units_done"] == 2
    assert folder.pending(units) == ["u1"]  # a rerun retries only the failed unit
    with folder.running(units):
        man = folder.finish({"u1": _mark_done(folder)})
    assert man["status"] == "complete" and man["counts"]["instances"] == 15  # the whole folder
    assert folder.failed_units() == [] and not (tmp_path / "out" / "failed.json").exists()


def _mark_done(folder):
    folder.markers.mark("u1", {"instances": 5})
    return {"instances": 5}


def test_interrupt_marks_the_manifest(tmp_path):
    inp = _store(tmp_path / "a.ome.zarr")
    folder = RunFolder(tmp_path / "out", "test")
    folder.claim(_identity(inp))
    with pytest.raises(KeyboardInterrupt):
        with folder.running(["u0"]):
            raise KeyboardInterrupt
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["status"] == "interrupted"


@pytest.mark.parametrize("image, msg", [(np.zeros((0, 4)), "non-empty 2D"), (np.full((4, 4), 3.0), "constant"),
                                        (np.array([[0.0, np.inf], [1, 2]]), "NaN or infinite")])
def test_the_one_frame_check(image, msg):
    with pytest.raises(InputError, match=msg):
        check_frame(image, "f")
    check_frame(np.arange(4).reshape(2, 2), "f")
