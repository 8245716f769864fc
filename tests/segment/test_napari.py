"""The output opens in napari (napari-ome-zarr, a real viewer on headless Qt): labels at the input's
scale, and lined up with the input when both are opened in one viewer (issue 13, section 3).

Qt's ``offscreen`` platform has no OpenGL context, which napari's vispy canvas needs, so the viewer
runs on the ``xcb`` platform against a private virtual X display (Xvfb, installed with the SLURM
services by deploy/ci/prepare_test_services.sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from mitoscale.cli import main
from mitoscale.io.omezarr import write_ome_zarr_image

pytest.importorskip("napari_ome_zarr")

FAST = ["--in-process", "--set", "postprocess.min_score=0", "--set", "prompts.spacing=16",
        "--set", "decode.window=8", "--set", "prompts.max_prompts=6"]
PIXEL_UM = 0.065  # not the model's 80 nm: segment resamples, the labels must come back at 65 nm


@pytest.fixture(scope="module")
def napari():
    """napari on a private Xvfb display, torn down after the module."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (deploy/ci/prepare_test_services.sh installs it as root)")
    display = f":{90 + os.getpid() % 900}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = f"/tmp/.X11-unix/X{display[1:]}"
    for _ in range(100):
        if os.path.exists(lock) or proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.skip(f"Xvfb could not start on {display}")
    old = {k: os.environ.get(k) for k in ("DISPLAY", "QT_QPA_PLATFORM")}
    os.environ.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    try:
        import napari as mod

        yield mod
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        proc.terminate()
        proc.wait(10)


def _frame(shape=(64, 72)):
    rng = np.random.default_rng(3)
    img = rng.poisson(30, shape).astype(np.uint16)
    for y, x in ((12, 14), (40, 30), (28, 55)):
        img[y - 2:y + 3, x - 6:x + 7] += 500
    return img


def _layers(viewer, kind):
    return [layer for layer in viewer.layers if type(layer).__name__ == kind]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_output_opens_in_napari_at_the_input_scale(napari, tmp_path, micro_model, version):
    img = _frame()
    src = write_ome_zarr_image(tmp_path / "in.ome.zarr", img, "yx", PIXEL_UM, version=version)
    out = tmp_path / "seg"
    assert main(["segment", str(src), "--model", str(micro_model), "--out", str(out), *FAST]) == 0

    viewer = napari.Viewer(show=False)
    try:
        viewer.open(str(out), plugin="napari-ome-zarr")
        labels = _layers(viewer, "Labels")
        assert len(labels) == 1, [type(la).__name__ for la in viewer.layers]
        lab = labels[0]
        np.testing.assert_allclose(lab.scale[-2:], [PIXEL_UM, PIXEL_UM])
        data = np.asarray(lab.data[0] if lab.multiscale else lab.data)
        assert data.shape[-2:] == img.shape
        assert data.max() > 0  # the segmented blobs, not an empty layer

        # the input, opened with the output's labels beside it, lines up in world coordinates
        viewer.layers.clear()
        viewer.open(str(src), plugin="napari-ome-zarr")
        viewer.open(str(out / "labels" / "mitochondria"), plugin="napari-ome-zarr")
        # (the reader also shows a label image as an image layer; the input is the one from src)
        (image,) = [la for la in _layers(viewer, "Image") if la.source.path == str(src)]
        (lab2,) = _layers(viewer, "Labels")
        np.testing.assert_allclose(image.scale[-2:], lab2.scale[-2:])
        np.testing.assert_allclose(image.translate[-2:], lab2.translate[-2:])
        np.testing.assert_allclose(image.extent.world, lab2.extent.world)
        # a bright blob in the image is labelled at the same world position
        world = np.array([40, 30]) * PIXEL_UM
        ldata = np.asarray(lab2.data[0] if lab2.multiscale else lab2.data)
        y, x = np.round(lab2.world_to_data(world)[-2:]).astype(int)
        assert ldata[..., y, x].max() > 0
    finally:
        viewer.close()
