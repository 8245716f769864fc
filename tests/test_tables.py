import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops

from mitoscale.errors import InputError
from mitoscale.io.tables import (
    decode_mask, encode_mask, instances_to_table, read_table, table_to_masks, write_table,
)


def _disk(shape, cy, cx, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_encode_decode_roundtrip_random():
    rng = np.random.default_rng(0)
    for _ in range(20):
        m = rng.random((37, 53)) > 0.7
        bbox, blob = encode_mask(m)
        out = np.zeros_like(m)
        y0, x0, y1, x1 = bbox
        out[y0:y1, x0:x1] = decode_mask(bbox, blob)
        np.testing.assert_array_equal(out, m)


def test_overlapping_masks_roundtrip_through_parquet(tmp_path):
    shape = (64, 80)
    a = _disk(shape, 30, 30, 12)
    b = _disk(shape, 35, 40, 10)  # overlaps a
    assert (a & b).any()
    img = np.random.default_rng(1).random(shape)
    df = instances_to_table([a, b], image_id="x", pixel_size_um=0.08, image=img, scores=[0.9, 0.8])
    write_table(df, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    masks = table_to_masks(back)
    np.testing.assert_array_equal(masks[0], a)
    np.testing.assert_array_equal(masks[1], b)
    # properties agree with scikit-image's independent regionprops
    for row, m in zip(back.itertuples(), [a, b]):
        rp = regionprops(m.astype(np.uint8))[0]
        assert row.area_px == rp.area
        assert row.centroid_y == pytest.approx(rp.centroid[0])
        assert row.major_axis_length == pytest.approx(rp.axis_major_length)
        assert row.minor_axis_length == pytest.approx(rp.axis_minor_length)
        assert row.mean_intensity == pytest.approx(img[m].mean())
        assert row.area_um2 == pytest.approx(rp.area * 0.0064)


def test_schema_errors(tmp_path):
    bad = pd.DataFrame({"image_id": ["a"]})
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="missing columns"):
        read_table(tmp_path / "bad.parquet")
    df = instances_to_table([_disk((20, 20), 10, 10, 4)], image_id="a", pixel_size_um=0.08)
    df["pixel_size_um"] = np.nan
    with pytest.raises(InputError, match="pixel_size_um"):
        write_table(df, tmp_path / "x.parquet")


def test_atomic_write_uses_umask_permissions(tmp_path):
    import os
    from mitoscale.io.atomic import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644
