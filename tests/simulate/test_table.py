"""The simulator's vectorised table equals the shared reference implementation."""

import numpy as np
import pandas as pd

from mitoscale.io.tables import instances_to_table, validate_table
from mitoscale.simulate import simulate_image
from mitoscale.simulate.table import crops_to_table


def _tight(full):
    rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (int(y0), int(x0), int(y1), int(x1)), full[y0:y1, x0:x1]


def test_crops_to_table_equals_instances_to_table(cfg):
    s = simulate_image(cfg, 11, 2)
    masks = []
    for row in s.table.itertuples():
        full = s.labels[row.label_layer] == row.instance_id
        masks.append(_tight(full))
    extra = {"length_nm": list(s.table["length_nm"])}
    fast = crops_to_table(masks, shape=s.image.shape, image=s.image, image_id="00000002",
                          pixel_size_um=0.08, z=-1, extra=extra)
    ref = instances_to_table([c for _, c in masks], offsets=[b[:2] for b, _ in masks], shape=s.image.shape,
                             image=s.image, image_id="00000002", pixel_size_um=0.08, z=-1, extra=extra)
    pd.testing.assert_frame_equal(fast, ref, check_exact=False, rtol=1e-10, atol=1e-10)
    pd.testing.assert_frame_equal(validate_table(fast.copy()), fast)
    # and the simulator's own table is this table
    pd.testing.assert_frame_equal(s.table[list(ref.columns)], ref, check_exact=False, rtol=1e-10, atol=1e-10)


def test_hand_computed_ellipse_axes():
    crop = np.zeros((3, 5), bool)
    crop[1, :] = True  # a 1 x 5 line: variance along x = 2, along y = 0
    crop[0, 0] = crop[2, 4] = True
    df = crops_to_table([((10, 20, 13, 25), crop)], shape=(64, 64), image=np.ones((64, 64)), image_id="a",
                        pixel_size_um=0.1)
    ref = instances_to_table([crop], offsets=[(10, 20)], shape=(64, 64), image=np.ones((64, 64)),
                             image_id="a", pixel_size_um=0.1, z=-1)
    pd.testing.assert_frame_equal(df, ref, check_exact=False, rtol=1e-12)
    assert df["area_px"].iloc[0] == 7 and df["centroid_y"].iloc[0] == 11.0
