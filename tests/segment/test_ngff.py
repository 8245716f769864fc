"""Label output checked by an independent validator (ome-zarr-models), NGFF 0.4 and 0.5,
and ``--labels-into-input`` (issue 13, section 3)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import zarr

from mitoscale.cli import main
from mitoscale.io.omezarr import write_ome_zarr_image

FAST = ["--in-process", "--set", "postprocess.min_score=0", "--set", "prompts.spacing=16",
        "--set", "decode.window=8", "--set", "prompts.max_prompts=6"]
WELLS = {"A/1": 2, "B/2": 1}


def _models(version):
    if version == "0.4":
        from ome_zarr_models import v04 as m
    else:
        from ome_zarr_models import v05 as m
    return m


def _frame(seed, shape=(48, 56)):
    rng = np.random.default_rng(seed)
    img = rng.poisson(30, shape).astype(np.uint16)
    for y, x in rng.integers(8, min(shape) - 8, (3, 2)):
        img[y - 2:y + 3, x - 4:x + 5] += 400
    return img


def _plate(root, version, blank=None):
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    fmt = FormatV04() if version == "0.4" else FormatV05()
    g = zarr.open_group(str(root), mode="w", zarr_format=2 if version == "0.4" else 3)
    write_plate_metadata(g, ["A", "B"], ["1", "2"], list(WELLS), fmt=fmt)
    for i, (well, n) in enumerate(WELLS.items()):
        write_well_metadata(g.require_group(well), [{"path": str(f)} for f in range(n)], fmt=fmt)
        for f in range(n):
            img = np.full((48, 56), 9, np.uint16) if (well, f) == blank else _frame(10 * i + f)
            write_ome_zarr_image(root / well / str(f), img, "yx", 0.08, version=version)
    return root


def _fields():
    return [f"{w}/{f}" for w, n in WELLS.items() for f in range(n)]


def _validate_labels(store, image_path, version):
    m = _models(version)
    base = f"{image_path}/labels" if image_path else "labels"
    labels = m.Labels.from_zarr(zarr.open_group(str(store / base), mode="r"))
    label = m.ImageLabel.from_zarr(zarr.open_group(str(store / base / "mitochondria"), mode="r"))
    return labels, label


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_label_output_validates(tmp_path, micro_model, version):
    plate = _plate(tmp_path / "plate.ome.zarr", version)
    out = tmp_path / "seg"
    assert main(["segment", str(plate), "--model", str(micro_model), "--out", str(out), *FAST]) == 0
    m = _models(version)
    for field in _fields():
        _validate_labels(out, field, version)
        m.Image.from_zarr(zarr.open_group(str(out / field), mode="r"))  # the segmented frame
        got = zarr.open_array(str(out / field / "0"), mode="r")[...]
        inp = zarr.open_group(str(plate / field), mode="r")
        np.testing.assert_array_equal(got, inp[next(iter(inp.array_keys()))][...])
    m.HCS.from_zarr(zarr.open_group(str(out), mode="r"))  # a segmented plate is a valid plate
    movie = write_ome_zarr_image(tmp_path / "movie.ome.zarr", np.stack([_frame(1), _frame(2)]), "tyx",
                                 0.08, version=version)
    out2 = tmp_path / "seg2"
    assert main(["segment", str(movie), "--model", str(micro_model), "--out", str(out2), *FAST]) == 0
    _, label = _validate_labels(out2, "", version)
    m.Image.from_zarr(zarr.open_group(str(out2), mode="r"))  # the output root is an image
    # frames and labels on one grid, at the input's scale
    for group in (out2, out2 / "labels" / "mitochondria"):
        attrs = dict(zarr.open_group(str(group), mode="r").attrs)
        ms = attrs.get("ome", attrs)["multiscales"][0]
        assert ms["datasets"][0]["coordinateTransformations"][0]["scale"][-2:] == [0.08, 0.08]
    if version == "0.5":  # Zarr v3 arrays name their dimensions
        arr = zarr.open_array(str(out2 / "labels" / "mitochondria" / "0"), mode="r")
        assert arr.metadata.dimension_names == ("t", "y", "x")


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_labels_into_input_keep_the_plate_valid(tmp_path, micro_model, version):
    plate = _plate(tmp_path / "plate.ome.zarr", version)
    out = tmp_path / "seg"
    assert main(["segment", str(plate), "--model", str(micro_model), "--out", str(out),
                 "--labels-into-input", *FAST]) == 0
    m = _models(version)
    m.HCS.from_zarr(zarr.open_group(str(plate), mode="r"))
    for field in _fields():
        labels, _ = _validate_labels(plate, field, version)
        assert not (plate / field / "labels" / "mitochondria-partial").exists()
        assert not (out / field).exists()  # the labels went into the input, not into OUT
    man = json.loads((out / "manifest.json").read_text())
    assert man["labels"].startswith(str(plate.resolve()))
    # the labels match the table, frame by frame
    from mitoscale.io.tables import read_table

    df = read_table(out / "instances")
    for field in _fields():
        well, f = field.rsplit("/", 1)
        lab = zarr.open_array(str(plate / field / "labels" / "mitochondria" / "0"), mode="r")[...]
        rows = df[(df["well"] == well) & (df["field"] == int(f))]
        assert set(np.unique(lab)) - {0} == set(rows["instance_id"])
    # a rerun is complete (the input's new labels/ are not a change of the input)
    assert main(["segment", str(plate), "--model", str(micro_model), "--out", str(out),
                 "--labels-into-input", *FAST]) == 0


def test_labels_into_input_are_published_only_when_every_frame_is_done(tmp_path, micro_model):
    plate = _plate(tmp_path / "plate.ome.zarr", "0.5", blank=("B/2", 0))
    out = tmp_path / "seg"
    assert main(["segment", str(plate), "--model", str(micro_model), "--out", str(out),
                 "--labels-into-input", *FAST]) == 2
    from ome_zarr_models import v05

    v05.HCS.from_zarr(zarr.open_group(str(plate), mode="r"))  # the input stays valid
    for field in _fields():
        labels = zarr.open_group(str(plate / field / "labels"), mode="r")
        assert "mitochondria" not in labels.attrs["ome"].get("labels", [])
        assert not (plate / field / "labels" / "mitochondria").exists()


def test_labels_into_input_refuses_a_read_only_store_and_files(tmp_path, micro_model, capsys):
    import tifffile

    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, _frame(0))
    assert main(["segment", str(tif), "--model", str(micro_model), "--out", str(tmp_path / "o"),
                 "--pixel-size", "0.08", "--labels-into-input", *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs an OME-Zarr store" in err[0]
    plate = _plate(tmp_path / "plate.ome.zarr", "0.5")
    ro = tmp_path / "ro.ome.zarr"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(plate), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (not root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True, capture_output=True)
        rc = main(["segment", str(ro), "--model", str(micro_model), "--out", str(tmp_path / "o2"),
                   "--labels-into-input", *FAST])
        err = capsys.readouterr().err.strip().splitlines()
    finally:
        subprocess.run(["umount", str(ro)], check=False)
    assert rc == 2
    assert len(err) == 1 and "read-only" in err[0], err
    assert not (tmp_path / "o2" / ".markers").exists()
