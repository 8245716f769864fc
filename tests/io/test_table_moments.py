"""The table builder's moments against scikit-image and hand calculation; the simulator uses it."""

import numpy as np
import pandas as pd
import pytest

from mitoscale.io.tables import instances_to_table, mask_properties, validate_table


def _tight(full):
    rows, cols = np.flatnonzero(full.any(axis=1)), np.flatnonzero(full.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return (int(y0), int(x0)), full[y0:y1, x0:x1]


def test_moments_equal_regionprops_and_the_single_crop_function():
    from skimage.measure import regionprops

    rng = np.random.default_rng(3)
    image = rng.random((60, 70))
    masks = []
    for _ in range(25):  # random overlapping blobs of varied shape, one empty
        m = np.zeros((60, 70), bool)
        y, x = rng.integers(0, 50, 2)
        m[y:y + rng.integers(1, 10), x:x + rng.integers(1, 15)] = True
        m &= rng.random(m.shape) > 0.2
        masks.append(m)
    masks.append(np.zeros((60, 70), bool))
    scores = rng.random(len(masks))
    df = instances_to_table(masks, image=image, image_id="a", pixel_size_um=0.1, scores=scores,
                            extra={"tag": list(range(len(masks)))})
    kept = [i for i, m in enumerate(masks) if m.any()]
    assert list(df["tag"]) == kept and len(df) == len(kept)
    np.testing.assert_allclose(df["score"], scores[kept])
    for row, i in zip(df.itertuples(), kept):
        (oy, ox), crop = _tight(masks[i])
        ref = mask_properties(crop, offset=(oy, ox))
        for key, value in ref.items():
            assert getattr(row, key) == pytest.approx(value, rel=1e-10, abs=1e-10), key
        assert row.mean_intensity == pytest.approx(image[masks[i]].mean(), rel=1e-12)
        rp = regionprops(masks[i].astype(np.uint8))[0]  # an independent implementation
        assert row.area_px == rp.area
        assert (row.centroid_y, row.centroid_x) == pytest.approx(rp.centroid, rel=1e-12)
        assert row.major_axis_length == pytest.approx(rp.axis_major_length, rel=1e-9, abs=1e-9)
        assert row.minor_axis_length == pytest.approx(rp.axis_minor_length, rel=1e-9, abs=1e-9)
    pd.testing.assert_frame_equal(validate_table(df.copy()), df)


def test_crops_with_offsets_equal_full_masks():
    rng = np.random.default_rng(4)
    full = [rng.random((40, 50)) > 0.97 for _ in range(6)]
    image = rng.random((40, 50))
    a = instances_to_table(full, image=image, image_id="a", pixel_size_um=0.1, z=-1)
    tight = [_tight(m) for m in full]
    b = instances_to_table([c for _, c in tight], offsets=[o for o, _ in tight], shape=(40, 50),
                           image=image, image_id="a", pixel_size_um=0.1, z=-1)
    pd.testing.assert_frame_equal(a, b)


def test_hand_computed_ellipse_axes():
    crop = np.zeros((3, 5), bool)
    crop[1, :] = True  # a 1 x 5 line plus two corners
    crop[0, 0] = crop[2, 4] = True
    df = instances_to_table([crop], offsets=[(10, 20)], shape=(64, 64), image=np.ones((64, 64)),
                            image_id="a", pixel_size_um=0.1)
    assert df["area_px"].iloc[0] == 7 and df["centroid_y"].iloc[0] == 11.0
    assert df["centroid_x"].iloc[0] == 22.0 and df["area_um2"].iloc[0] == pytest.approx(0.07)
    # population covariance: syy = 2/7, sxx = 18/7, sxy = 4/7 (by hand)
    syy, sxx, sxy = 2 / 7, 18 / 7, 4 / 7
    mid, rad = (syy + sxx) / 2, np.sqrt(((syy - sxx) / 2) ** 2 + sxy**2)
    assert df["major_axis_length"].iloc[0] == pytest.approx(4 * np.sqrt(mid + rad))
    assert df["minor_axis_length"].iloc[0] == pytest.approx(4 * np.sqrt(mid - rad))


def test_simulated_table_is_the_shared_builder():
    from mitoscale.simulate import SimulateConfig, simulate_image

    s = simulate_image(SimulateConfig(), 11, 2)
    masks = [s.labels[r.label_layer] == r.instance_id for r in s.table.itertuples()]
    ref = instances_to_table(masks, image=s.image, image_id="00000002", pixel_size_um=0.08, z=-1)
    pd.testing.assert_frame_equal(s.table[list(ref.columns)], ref, check_exact=False, rtol=1e-10, atol=1e-10)
