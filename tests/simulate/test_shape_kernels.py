"""The compiled skeleton-pixel distances equal scipy's distance transform bit for bit."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from mitoscale.shape import _mosaic
from mitoscale.shape_kernels import skeleton_pixels
from mitoscale.simulate import SimulateConfig, simulate_image


@pytest.mark.parametrize("index", [0, 1])
def test_skeleton_pixels_equal_scipy(index):
    s = simulate_image(SimulateConfig.model_validate({"corpus": {"crops_per_side": 2}}), 4, index)
    blobs = [np.ones((5, 9), bool), np.pad(np.ones((7, 7), bool), 1), np.eye(6, dtype=bool)]
    crops = blobs + [layer[y0:y1, x0:x1] == k for k, (layer, (y0, x0, y1, x1)) in enumerate(
        ((s.labels[r.label_layer], (r.bbox_y0, r.bbox_x0, r.bbox_y1, r.bbox_x1))
         for r in s.table.itertuples()), start=1)]
    crops = [c[np.ix_(c.any(axis=1), c.any(axis=0))] for c in crops if c.any()]
    canvas, _ = _mosaic(crops)
    skel = skeletonize(canvas)
    half, lone = skeleton_pixels(canvas, skel)
    want = ndi.distance_transform_edt(canvas) - 0.5
    np.testing.assert_array_equal(half[skel], want[skel])
    assert (half[~skel] == 0).all()
    deg8 = ndi.convolve(skel.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    np.testing.assert_array_equal(lone, skel & (deg8 == 0))


def test_skeleton_pixels_at_the_border():
    canvas = np.ones((6, 8), bool)
    canvas[5, 7] = False  # the only background pixel, in a corner
    skel = np.zeros_like(canvas)
    skel[0, 0] = skel[2, 3] = skel[2, 4] = True
    half, lone = skeleton_pixels(canvas, skel)
    want = ndi.distance_transform_edt(canvas) - 0.5
    np.testing.assert_array_equal(half[skel], want[skel])
    np.testing.assert_array_equal(lone, np.array(skel & ~np.isin(np.arange(48).reshape(6, 8), [19, 20])))
