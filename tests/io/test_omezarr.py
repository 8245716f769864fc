"""OME-Zarr reading (NGFF 0.4/0.5, any axes, plates) and label-image writing."""

from __future__ import annotations

import numpy as np
import pytest

from mitoscale.errors import InputError
from mitoscale.io.images import frame_count, iter_frames, open_image
from mitoscale.io.omezarr import (
    create_label_image,
    open_ome_zarr,
    write_label_frame,
    write_ome_zarr_image,
)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("axes", ["yx", "zyx", "tyx", "cyx", "tczyx"])
def test_read_axes_and_pixel_size(tmp_path, version, axes):
    rng = np.random.default_rng(0)
    shape = {"t": 2, "c": 3, "z": 4, "y": 20, "x": 30}
    data = rng.integers(0, 1000, [shape[a] for a in axes]).astype(np.uint16)
    path = write_ome_zarr_image(tmp_path / "img.ome.zarr", data, axes, 0.065, version=version)
    (src,) = open_ome_zarr(path)
    assert src.axes == tuple(axes)
    assert src.pixel_size_um == pytest.approx(0.065)
    assert src.ngff_version == version
    assert src.image_id == "img"
    channel = 1 if "c" in axes else 0  # an image without channels has only channel 0
    frames = list(iter_frames(src, channel=channel, z_mode="each"))
    assert len(frames) == frame_count(src, "each") == shape["t"] ** ("t" in axes) * shape["z"] ** ("z" in axes)
    # the last frame is exactly the last plane of the chosen channel
    idx = tuple({"t": -1, "c": 1, "z": -1}[a] for a in axes if a in "tcz")
    np.testing.assert_array_equal(frames[-1].data.compute(), data[idx])
    proj = list(iter_frames(src, channel=channel, z_mode="max"))
    assert len(proj) == frame_count(src, "max")
    if "z" in axes:
        assert proj[0].keys["z"] == -1
        idx0 = tuple({"t": 0, "c": 1}[a] for a in axes if a in "tc")
        np.testing.assert_array_equal(proj[0].data.compute(), data[idx0].max(axis=0))
    else:
        assert proj[0].keys["z"] == 0


def test_units_are_converted_to_um(tmp_path):
    import zarr

    path = write_ome_zarr_image(tmp_path / "nm.ome.zarr", np.ones((8, 8), np.uint8), "yx", 1.0)
    g = zarr.open_group(str(path), mode="r+")
    ome = g.attrs["ome"]
    ms = ome["multiscales"][0]
    for a in ms["axes"]:
        a["unit"] = "nanometer"
    ms["datasets"][0]["coordinateTransformations"][0]["scale"] = [65.0, 65.0]
    g.attrs["ome"] = ome
    assert open_ome_zarr(path)[0].pixel_size_um == pytest.approx(0.065)


def test_missing_pixel_size_is_none_and_override_wins(tmp_path):
    path = write_ome_zarr_image(tmp_path / "a.ome.zarr", np.ones((8, 8), np.uint8), "yx", None)
    assert open_ome_zarr(path)[0].pixel_size_um is None
    assert open_image(path, pixel_size_um=0.1)[0].pixel_size_um == 0.1


def test_unknown_axes_error(tmp_path):
    import zarr

    path = write_ome_zarr_image(tmp_path / "q.ome.zarr", np.ones((2, 8, 8), np.uint8), "zyx", 0.08)
    g = zarr.open_group(str(path), mode="r+")
    ome = g.attrs["ome"]
    ome["multiscales"][0]["axes"][0] = {"name": "q", "type": "space"}
    g.attrs["ome"] = ome
    with pytest.raises(InputError, match="unknown axes"):
        open_ome_zarr(path)


def _write_plate(root, version="0.5"):
    import zarr
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    fmt = FormatV04() if version == "0.4" else FormatV05()
    g = zarr.open_group(str(root), mode="w", zarr_format=2 if version == "0.4" else 3)
    wells = ["A/1", "B/2"]
    write_plate_metadata(g, ["A", "B"], ["1", "2"], wells, fmt=fmt)
    data = {}
    for w in wells:
        write_well_metadata(g.require_group(w), [{"path": "0"}, {"path": "1"}], fmt=fmt)
        for f in ("0", "1"):
            img = (np.arange(24 * 28, dtype=np.uint16).reshape(24, 28) + hash((w, f)) % 97)
            write_ome_zarr_image(root / w / f, img, "yx", 0.08, version=version)
            data[(w, int(f))] = img
    return data


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_plate_every_well_and_field(tmp_path, version):
    data = _write_plate(tmp_path / "plate.ome.zarr", version)
    sources = open_image(tmp_path / "plate.ome.zarr")
    assert [(s.well, s.field) for s in sources] == sorted(data)
    for s in sources:
        assert s.image_id == "plate" and s.pixel_size_um == pytest.approx(0.08)
        np.testing.assert_array_equal(s.data.compute(), data[(s.well, s.field)])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_label_image_round_trip_with_ome_zarr_reader(tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    src_path = write_ome_zarr_image(tmp_path / "in.ome.zarr", np.ones((3, 2, 5, 16, 18), np.uint16),
                                    "tczyx", 0.065, version=version, z_step_um=0.3)
    (src,) = open_ome_zarr(src_path)
    out = tmp_path / "out"
    lpath = create_label_image(out, src, z_mode="each")
    lab = np.arange(16 * 18, dtype=np.uint32).reshape(16, 18)
    write_label_frame(out, lpath, (2, 4), lab)
    nodes = list(Reader(parse_url(str(out / lpath)))())
    label = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert label, "ome-zarr reader did not recognise an image-label"
    node = label[0]
    assert node.data[0].shape == (3, 5, 16, 18)
    np.testing.assert_array_equal(np.asarray(node.data[0][2, 4]), lab)
    assert np.asarray(node.data[0][0, 0]).max() == 0
    scale = node.metadata["coordinateTransformations"][0][0]["scale"]
    assert scale == pytest.approx([1.0, 0.3, 0.065, 0.065])
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "z", "y", "x"]
    # max projection drops z
    lpath2 = create_label_image(tmp_path / "out2", src, z_mode="max")
    import zarr

    assert zarr.open_array(str(tmp_path / "out2" / lpath2 / "0")).shape == (3, 16, 18)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_label_pyramid_levels_written_frame_by_frame(tmp_path, version):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    from mitoscale.io.omezarr import label_levels

    assert label_levels((1024, 1024)) == 3 and label_levels((255, 4000)) == 1
    assert label_levels((600, 520)) == 2
    src_path = write_ome_zarr_image(tmp_path / "in.ome.zarr", np.ones((2, 600, 520), np.uint16),
                                    "tyx", 0.08, version=version)
    (src,) = open_ome_zarr(src_path)
    out = tmp_path / "out"
    lpath = create_label_image(out, src)
    lab = np.random.default_rng(0).integers(0, 50, (600, 520)).astype(np.uint32)
    write_label_frame(out, lpath, (1,), lab)
    nodes = list(Reader(parse_url(str(out / lpath)))())
    node = next(n for n in nodes if any(isinstance(s, Label) for s in n.specs))
    assert [d.shape for d in node.data] == [(2, 600, 520), (2, 300, 260)]
    np.testing.assert_array_equal(np.asarray(node.data[0][1]), lab)
    np.testing.assert_array_equal(np.asarray(node.data[1][1]), lab[::2, ::2])  # nearest: labels stay labels
    assert np.asarray(node.data[1][0]).max() == 0
    scales = [t[0]["scale"] for t in node.metadata["coordinateTransformations"]]
    assert scales == [pytest.approx([1.0, 0.08, 0.08]), pytest.approx([1.0, 0.16, 0.16])]
    # an odd size rounds up, so every input pixel has a coarse pixel
    (src2,) = open_ome_zarr(write_ome_zarr_image(tmp_path / "odd.ome.zarr", np.ones((513, 601), np.uint16),
                                                 "yx", 0.08, version=version))
    lp2 = create_label_image(tmp_path / "out2", src2, levels=3)
    import zarr

    assert [zarr.open_array(str(tmp_path / "out2" / lp2 / str(k))).shape for k in range(3)] == \
        [(513, 601), (257, 301), (129, 151)]
