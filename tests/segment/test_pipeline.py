"""End-to-end segmentation runs: outputs, resume, plates, bad input, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mitoscale.cli import main
from mitoscale.io.omezarr import write_ome_zarr_image
from mitoscale.io.tables import read_table, table_to_masks
from mitoscale.segment.pipeline import run_segmentation
from tests.conftest import done_units, forget_units

from .conftest import plumbing_config


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["image_id", "well", "field", "t", "z", "instance_id"]).reset_index(drop=True)


def _labels(out: Path, rel: str = "labels/mitochondria") -> np.ndarray:
    import zarr

    return zarr.open_array(str(out / rel / "0"), mode="r")[...]


def test_timelapse_end_to_end_and_resume(tmp_path, timelapse, micro_model, local_client):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    path, _ = timelapse
    cfg = plumbing_config()
    cfg.input.channel = "mito"
    out = tmp_path / "seg"
    man = run_segmentation(path, out, model=micro_model, cfg=cfg, client=local_client, progress=False)
    assert man["status"] == "complete" and man["frames"] == 2 and man["frames_skipped"] == 0
    assert man["model_sha256"] and man["input"]["content_sha256"] and man["versions"]["torch"]
    assert man["config"]["model"]["tile_size"] == 128  # resolved from the micro model
    df = read_table(out / "instances")
    assert sorted(df["t"].unique()) == [0, 1] and (df["image_id"] == "movie").all()
    assert np.allclose(df["pixel_size_um"], 0.065)
    assert (df["image_height"] == 256).all() and (df["image_width"] == 320).all()
    assert man["counts"]["instances"] == len(df) > 0
    assert man["decoder_prompts_per_instance"] == pytest.approx(man["counts"]["decoded"] / len(df))
    # the label image: each instance painted where it is not covered by a higher score
    labels = _labels(out)
    assert labels.shape == (2, 256, 320)
    for t, rows in df.groupby("t"):
        assert rows["instance_id"].is_unique
        masks = table_to_masks(rows)
        order = np.argsort(rows["score"].to_numpy(), kind="stable")
        expect = np.zeros((256, 320), np.uint32)
        for k in order:
            expect[masks[k]] = rows["instance_id"].to_numpy()[k]
        np.testing.assert_array_equal(labels[t], expect)
    # readable by the ome-zarr reader with the input's scale
    nodes = list(Reader(parse_url(str(out / "labels" / "mitochondria")))())
    node = next(n for n in nodes if any(isinstance(s, Label) for s in n.specs))
    assert node.metadata["coordinateTransformations"][0][0]["scale"][-2:] == pytest.approx([0.065, 0.065])
    # rerun: every frame skipped, identical table, no duplicated rows
    man2 = run_segmentation(path, out, model=micro_model, cfg=cfg, client=local_client, progress=False)
    assert man2["frames_skipped"] == 2
    pd.testing.assert_frame_equal(_sorted(read_table(out / "instances")), _sorted(df))


def test_in_process_small_image_and_tiles(tmp_path, micro_model):
    """An image smaller than one tile just works; in-process runs need no cluster."""
    img = np.random.default_rng(3).poisson(20, (50, 61)).astype(np.uint16)
    img[20:25, 10:40] += 200
    path = write_ome_zarr_image(tmp_path / "small.ome.zarr", img, "yx", 0.08, version="0.4")
    man = run_segmentation(path, tmp_path / "out", model=micro_model, cfg=plumbing_config(),
                           progress=False)
    assert man["counts"]["tiles"] == 1
    df = read_table(tmp_path / "out" / "instances")
    assert (df["image_height"] == 50).all()
    assert _labels(tmp_path / "out").shape == (50, 61)


def test_plate_round_trip(tmp_path, simulated_frames, micro_model, local_client):
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    root = tmp_path / "plate.ome.zarr"
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    write_plate_metadata(g, ["A", "B"], ["1"], ["A/1", "B/1"], fmt=FormatV04())
    fields = {("A/1", 0): 0, ("A/1", 1): 1, ("B/1", 0): 2}
    write_well_metadata(g.require_group("A/1"), [{"path": "0"}, {"path": "1"}], fmt=FormatV04())
    write_well_metadata(g.require_group("B/1"), [{"path": "0"}], fmt=FormatV04())
    for (well, f), i in fields.items():
        write_ome_zarr_image(root / well / str(f), simulated_frames[i][0][:200, :240], "yx", 0.065,
                             version="0.4")
    out = tmp_path / "seg"
    rc = main(["segment", str(root), "--model", str(micro_model), "--out", str(out),
               "--set", "postprocess.min_score=0", "--set", "prompts.spacing=16",
               "--set", "decode.window=8",
               "--scheduler", local_client.scheduler.address])
    assert rc == 0
    df = read_table(out / "instances")
    assert sorted({(w, f) for w, f in zip(df["well"], df["field"])}) == sorted(fields)
    for (well, f) in fields:
        lab = _labels(out, f"{well}/{f}/labels/mitochondria")
        rows = df[(df["well"] == well) & (df["field"] == f)]
        assert lab.shape == (200, 240)
        assert set(np.unique(lab)) - {0} <= set(rows["instance_id"])
        assert (zarr.open_group(str(out), mode="r")[f"{well}/{f}/labels"].attrs["labels"]
                == ["mitochondria"])


def _cli(*args) -> int:
    return main(["segment", *map(str, args), "--in-process"])


def _no_markers(out: Path) -> bool:
    return not done_units(out)


@pytest.mark.parametrize("case", ["pixel_size", "axes", "constant", "nan", "corrupt", "inside",
                                  "model"])
def test_bad_input_one_clear_error(tmp_path, micro_model, capsys, case):
    img = np.random.default_rng(0).integers(0, 500, (2, 40, 48)).astype(np.float32)
    path = tmp_path / "in.ome.zarr"
    extra = []
    out = tmp_path / "out"
    expect = {"pixel_size": "pixel size is missing", "axes": "unknown axes", "constant": "constant",
              "nan": "NaN", "corrupt": "cannot read", "inside": "inside the input",
              "model": "config asks for"}[case]
    if case == "constant":
        img[1] = 7.0
    if case == "nan":
        img[1, 3, 4] = np.nan
    write_ome_zarr_image(path, img, "tyx", None if case == "pixel_size" else 0.08, version="0.5")
    if case == "axes":
        import zarr

        g = zarr.open_group(str(path), mode="r+")
        ome = g.attrs["ome"]
        ome["multiscales"][0]["axes"][0] = {"name": "w", "type": "space"}
        g.attrs["ome"] = ome
    if case == "corrupt":
        chunk = next(p for p in (path / "s0").rglob("*") if p.is_file() and p.name != "zarr.json"
                     and "c" in p.parts[-4:])
        chunk.write_bytes(b"\x00garbage" * 3)
    if case == "inside":
        out = path / "seg"
    if case == "model":
        extra = ["--set", "model.variant=tiny"]
    rc = _cli(path, "--model", micro_model, "--out", out, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and expect in err[0], err
    if case in ("constant", "nan", "corrupt"):  # a per-frame failure: the other frame went on
        assert "1 of 2 frames failed" in err[0]
        failed = json.loads((out / "failed.json").read_text())
        assert len(failed) == 1 and failed[0]["unit"] not in done_units(out)
        assert len(done_units(out)) == 1
    else:
        assert _no_markers(out)


def _run_in_thread(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            box["error"] = exc

    th = threading.Thread(target=target)
    th.start()
    return th, box


@pytest.mark.slow
def test_killed_worker_costs_only_a_retry(tmp_path, simulated_frames, micro_model):
    from distributed import Client, LocalCluster

    frames = np.stack([f[:192, :256] for f, _ in simulated_frames] + [simulated_frames[0][0][64:, :256]])
    path = write_ome_zarr_image(tmp_path / "m.ome.zarr", frames, "tyx", 0.065)
    cfg = plumbing_config()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        ref = run_segmentation(path, tmp_path / "ref", model=micro_model, cfg=cfg, client=client,
                               progress=False)
        out = tmp_path / "killed"
        th, box = _run_in_thread(lambda: run_segmentation(path, out, model=micro_model, cfg=cfg,
                                                          client=client, progress=False))
        deadline = time.time() + 120
        while time.time() < deadline and not done_units(out):
            time.sleep(0.05)
        # kill one worker process while frames are in flight
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        assert th.is_alive(), "the run finished before a worker could be killed"
        th.join(300)
        assert "error" not in box, box.get("error")
        assert box["result"]["status"] == "complete"
        assert len(json.loads((out / "manifest.json").read_text())) > 0
    assert ref["counts"]["instances"] > 0
    a = _sorted(read_table(tmp_path / "ref" / "instances"))
    b = _sorted(read_table(out / "instances"))
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(_labels(tmp_path / "ref"), _labels(out))


def test_frame_without_instances_is_recorded_as_processed(tmp_path, micro_model):
    """A frame that yields no instance has no rows, but its part records the location, so
    ``mitoscale analyze`` counts it as an image with zero dots and rods."""
    from mitoscale.io.tables import read_locations

    noise = np.random.default_rng(5).poisson(20, (40, 48)).astype(np.uint16)  # no object at all
    path = write_ome_zarr_image(tmp_path / "empty.ome.zarr", noise, "yx", 0.08, version="0.4")
    # no mask is large enough to keep (the untrained model's masks are arbitrary); few prompts: fast
    cfg = plumbing_config(postprocess__min_area=10**6, prompts__max_prompts=4)
    out = tmp_path / "out"
    man = run_segmentation(path, out, model=micro_model, cfg=cfg, progress=False)
    assert man["status"] == "complete" and man["counts"]["instances"] == 0
    assert len(read_table(out / "instances")) == 0
    locs = read_locations(out / "instances")
    assert locs.to_dict("records") == [dict(image_id="empty", well="", field=0, t=0, z=0)]


def test_worker_failure_on_a_local_cluster_is_one_line(tmp_path, micro_model, capfd):
    """A corrupt chunk read by a Dask worker: one error line, no worker traceback, no Dask INFO."""
    img = np.random.default_rng(0).integers(0, 500, (2, 40, 48)).astype(np.float32)
    path = write_ome_zarr_image(tmp_path / "in.ome.zarr", img, "tyx", 0.08, version="0.5")
    chunk = next(p for p in (path / "s0").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage" * 3)
    rc = main(["segment", str(path), "--model", str(micro_model), "--out", str(tmp_path / "out"),
               "--workers", "1"])
    err = capfd.readouterr().err
    assert rc == 2
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("mitoscale segment: error: 1 of 2 frames failed"), err
    assert "cannot read pixels" in errors[0] and "(t=0, z=0)" in errors[0], err  # names file and frame
    assert "Compute Failed" not in err and "Traceback" not in err, err
    assert " INFO distributed" not in err, err
    assert "in_____f0__t0__z0" not in done_units(tmp_path / "out")
