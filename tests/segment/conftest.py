"""Fixtures of the segment tests: simulated OME-Zarr inputs (micro SAM: tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mitoscale.segment.config import SegmentConfig

PIXEL_NM = 65.0  # not the 80 nm training pixel size, so resampling is exercised


def plumbing_config(**over) -> SegmentConfig:
    """Accept every mask of the untrained model (its predicted IoU is meaningless)."""
    cfg = SegmentConfig()
    cfg.postprocess.min_score = 0.0
    cfg.prompts.spacing = 16
    cfg.decode.window = 8
    for k, v in over.items():
        section, key = k.split("__")
        setattr(getattr(cfg, section), key, v)
    return cfg


@pytest.fixture(scope="session")
def simulated_frames():
    """Three simulated 65 nm frames (image, ground-truth table) of 256 x 320 px."""
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    cfg = load_simulate_config(None)
    out = []
    for i in range(3):
        s = simulate_image(cfg, 7, i, pixel_size_nm=PIXEL_NM, shape=(256, 320))
        out.append((s.image, s.table))
    return out


@pytest.fixture(scope="session")
def timelapse(tmp_path_factory, simulated_frames):
    """NGFF 0.5 timelapse (t=2, c=2, y, x) at 65 nm and its ground-truth table."""
    from mitoscale.io.omezarr import write_ome_zarr_image

    path = tmp_path_factory.mktemp("inputs") / "movie.ome.zarr"
    frames = [img for img, _ in simulated_frames[:2]]
    data = np.stack([np.stack([f, f[::-1, ::-1]]) for f in frames])  # channel 1 = rotated decoy
    write_ome_zarr_image(path, data, "tcyx", PIXEL_NM / 1000, version="0.5",
                         channel_names=["mito", "other"])
    gts = []
    for t, (_, table) in enumerate(simulated_frames[:2]):
        gt = table.copy()
        gt["image_id"], gt["t"], gt["z"] = "movie", t, 0  # a tcyx image has no z axis
        gts.append(gt)
    return path, pd.concat(gts, ignore_index=True)
