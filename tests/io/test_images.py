"""TIFF/PNG inputs: discovery, axes, pixel size required."""

from __future__ import annotations

import numpy as np
import pytest

from mitoscale.errors import InputError
from mitoscale.io.images import iter_frames, open_image, require_pixel_size


def test_png_folder(tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(1)
    imgs = {n: rng.integers(0, 255, (20, 24), dtype=np.uint8) for n in ("b", "a")}
    for n, im in imgs.items():
        iio.imwrite(tmp_path / f"{n}.png", im)
    (tmp_path / "notes.txt").write_text("ignored")
    sources = open_image(tmp_path, pixel_size_um=0.08)
    assert [s.image_id for s in sources] == ["a", "b"]
    for s in sources:
        (fr,) = list(iter_frames(s))
        assert fr.keys == dict(image_id=s.image_id, well="", field=0, t=0, z=0)
        np.testing.assert_array_equal(fr.data.compute(), imgs[s.image_id])


def test_folder_without_pixel_size_is_an_error(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    sources = open_image(tmp_path)
    with pytest.raises(InputError, match="pixel size is missing"):
        require_pixel_size(sources)


def test_tiff_axes(tmp_path):
    import tifffile

    data = np.arange(3 * 2 * 10 * 12, dtype=np.uint16).reshape(3, 2, 10, 12)
    tifffile.imwrite(tmp_path / "s.tif", data, metadata={"axes": "TZYX"}, imagej=True)
    (src,) = open_image(tmp_path / "s.tif", pixel_size_um=0.1)
    assert src.axes == ("t", "z", "y", "x")
    frames = list(iter_frames(src, z_mode="each"))
    assert len(frames) == 6
    np.testing.assert_array_equal(frames[3].data.compute(), data[1, 1])


def test_unsupported_and_missing(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_image(tmp_path / "nope.tif")
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(InputError, match="unsupported"):
        open_image(tmp_path / "x.jpg")
    with pytest.raises(InputError, match="no OME-Zarr"):
        open_image(tmp_path)


def test_zarr_frames_pickle_small_whatever_the_movie_length(tmp_path):
    """A frame sent to a task carries its array and index, not the graph of the whole movie."""
    import pickle

    from mitoscale.io.omezarr import write_ome_zarr_image

    sizes = {}
    for n in (5, 400):
        data = np.arange(n * 2 * 16 * 16, dtype=np.uint16).reshape(n, 2, 16, 16)
        (src,) = open_image(write_ome_zarr_image(tmp_path / f"m{n}.ome.zarr", data, "tzyx", 0.08))
        frames = list(iter_frames(src))
        sizes[n] = len(pickle.dumps(frames[-1].data))
        back = pickle.loads(pickle.dumps(frames[-1].data))
        np.testing.assert_array_equal(back.compute(), data[-1].max(axis=0))
        assert back.shape == (16, 16) and back.dtype == np.uint16
    assert sizes[400] < 4096 and abs(sizes[400] - sizes[5]) < 64, sizes
