"""Shape columns (mitoscale.shape) against hand-made masks of known length, width and branches."""

import numpy as np
import pandas as pd
import pytest
from skimage.draw import line
from skimage.measure import regionprops

from mitoscale.io.tables import (
    SCHEMA, instances_to_table, read_table, validate_table, with_shape_columns, write_table,
)
from mitoscale.shape import SHAPE_COLUMNS, shape_features, shape_of_mask

PX = 0.1  # µm


def tube(length=50, width=5, pad=6):
    m = np.zeros((width + 2 * pad, length + 2 * pad), bool)
    m[pad:pad + width, pad:pad + length] = True
    return m


def thick_polyline(points, half=2, size=90):
    """Union of (2 half + 1)-pixel squares swept along straight segments between points."""
    m = np.zeros((size, size), bool)
    for (r0, c0), (r1, c1) in zip(points[:-1], points[1:]):
        rr, cc = line(r0, c0, r1, c1)
        for dr in range(-half, half + 1):
            for dc in range(-half, half + 1):
                m[rr + dr, cc + dc] = True
    return m


def y_shape():
    centre = (45, 45)
    arms = [(10, 45), (75, 15), (75, 75)]
    m = np.zeros((90, 90), bool)
    for end in arms:
        m |= thick_polyline([centre, end])
    lengths = [np.hypot(end[0] - centre[0], end[1] - centre[1]) for end in arms]
    return m, sum(lengths)


def ring(r_in=15, r_out=20, size=60):
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    return (r >= r_in) & (r < r_out)


def test_straight_tube_length_width_and_topology():
    row = shape_of_mask(tube(50, 5), PX)
    assert row["skeleton_length_um"] == pytest.approx(50 * PX, abs=1.0 * PX)
    assert row["mean_width_um"] == pytest.approx(5 * PX, abs=0.25 * PX)
    assert (row["n_branches"], row["n_branch_points"], row["n_end_points"]) == (1, 0, 2)
    assert row["tortuosity"] == pytest.approx(1.0, abs=0.02)
    assert row["solidity"] == pytest.approx(1.0)
    props = regionprops(tube(50, 5).astype(np.uint8))[0]
    assert row["aspect_ratio"] == pytest.approx(props.axis_major_length / props.axis_minor_length)


def test_y_has_one_branch_point_three_ends_three_branches():
    m, total = y_shape()
    row = shape_of_mask(m, PX)
    assert (row["n_branches"], row["n_branch_points"], row["n_end_points"]) == (3, 1, 3)
    # arms measured from the junction centre to each drawn end, plus the end caps (2 px each)
    assert row["skeleton_length_um"] == pytest.approx((total + 3 * 2) * PX, rel=0.05)
    assert row["mean_width_um"] == pytest.approx(5 * PX, abs=1.0 * PX)
    assert np.isnan(row["tortuosity"])  # branched
    props = regionprops(m.astype(np.uint8))[0]
    assert row["solidity"] == pytest.approx(props.solidity)


def test_ring_is_one_cycle_without_ends():
    m = ring(15, 20)
    row = shape_of_mask(m, PX)
    assert (row["n_branches"], row["n_branch_points"], row["n_end_points"]) == (1, 0, 0)
    assert row["skeleton_length_um"] == pytest.approx(2 * np.pi * 17.5 * PX, rel=0.06)
    assert row["mean_width_um"] == pytest.approx(5 * PX, abs=1.5 * PX)  # curved edges read narrower
    assert np.isnan(row["tortuosity"])  # closed
    assert row["solidity"] == pytest.approx(m.sum() / (np.pi * 20**2), rel=0.05)
    assert row["aspect_ratio"] == pytest.approx(1.0, abs=0.02)


def test_bent_tube_tortuosity_is_path_over_chord():
    # an L: two perpendicular 40-px legs -> path 80, chord 40 sqrt 2 between the skeleton ends
    m = thick_polyline([(10, 10), (10, 50), (50, 50)], half=2, size=64)
    row = shape_of_mask(m, PX)
    assert (row["n_branches"], row["n_branch_points"], row["n_end_points"]) == (1, 0, 2)
    assert row["tortuosity"] == pytest.approx(80 / (40 * np.sqrt(2)), rel=0.05)


def test_batch_equals_one_at_a_time_and_crop_equals_full_mask():
    m_y, _ = y_shape()
    masks = [tube(50, 5), m_y, ring(), tube(8, 3), np.zeros((5, 5), bool), tube(30, 7)]
    batch = shape_features(masks, PX)
    single = pd.concat([shape_features([m], PX) for m in masks], ignore_index=True)
    pd.testing.assert_frame_equal(batch, single)
    assert list(batch.columns) == list(SHAPE_COLUMNS)
    assert batch.loc[4, "n_branches"] == 0 and np.isnan(batch.loc[4, "solidity"])  # the empty mask
    full = np.zeros((200, 200), bool)
    full[100:100 + m_y.shape[0], 50:50 + m_y.shape[1]] = m_y
    pd.testing.assert_frame_equal(shape_features(full, PX), shape_features([m_y], PX))


def test_lengths_scale_with_pixel_size_counts_do_not():
    a, b = shape_features([tube()], 0.08), shape_features([tube()], 0.16)
    for col in ("skeleton_length_um", "mean_width_um"):
        assert b[col].iloc[0] == pytest.approx(2 * a[col].iloc[0])
    for col in ("n_branches", "n_branch_points", "n_end_points", "tortuosity", "aspect_ratio", "solidity"):
        assert b[col].iloc[0] == a[col].iloc[0]


def test_fragmented_mask_sums_its_pieces():
    two = tube(50, 5)
    two[:, 30:34] = False  # cut into two tubes
    row = shape_of_mask(two, PX)
    assert (row["n_branches"], row["n_end_points"]) == (2, 4)
    assert np.isnan(row["tortuosity"])


def test_table_writes_shape_columns_and_older_tables_still_load(tmp_path):
    m_y, _ = y_shape()
    masks = [np.pad(tube(50, 5), ((0, 73), (0, 28))), m_y, np.pad(ring(), ((0, 30), (0, 30)))]
    df = instances_to_table(masks, image_id="a", pixel_size_um=PX)
    assert [c for c in SHAPE_COLUMNS if c not in df.columns] == []
    ref = shape_features(masks, PX)
    pd.testing.assert_frame_equal(df[list(SHAPE_COLUMNS)].reset_index(drop=True), ref)
    assert df["aspect_ratio"].to_numpy() == pytest.approx(
        (df["major_axis_length"] / df["minor_axis_length"]).to_numpy())
    write_table(df, tmp_path / "new.parquet")
    back = read_table(tmp_path / "new.parquet")
    for col, dtype in SHAPE_COLUMNS.items():
        assert str(back[col].dtype) == dtype
    # an older table: the shape columns absent; it loads and gets them back from the masks
    old = df.drop(columns=list(SHAPE_COLUMNS))
    write_table(old, tmp_path / "old.parquet")
    loaded = read_table(tmp_path / "old.parquet")
    assert set(loaded.columns) == set(SCHEMA)
    restored = with_shape_columns(loaded)
    pd.testing.assert_frame_equal(restored[list(SHAPE_COLUMNS)], back[list(SHAPE_COLUMNS)])
    assert validate_table(restored) is not None


def test_with_shape_columns_uses_each_rows_pixel_size():
    a = instances_to_table([tube()], image_id="a", pixel_size_um=0.08)
    b = instances_to_table([tube()], image_id="b", pixel_size_um=0.16)
    both = pd.concat([a, b], ignore_index=True)
    restored = with_shape_columns(both.drop(columns=list(SHAPE_COLUMNS)))
    assert restored["skeleton_length_um"].iloc[1] == pytest.approx(2 * restored["skeleton_length_um"].iloc[0])
    pd.testing.assert_frame_equal(restored[list(SHAPE_COLUMNS)], both[list(SHAPE_COLUMNS)])


def test_a_folder_mixing_older_and_newer_parts_loads(tmp_path):
    new = instances_to_table([tube()], image_id="new", pixel_size_um=PX)
    old = instances_to_table([tube()], image_id="old", pixel_size_um=PX).drop(columns=list(SHAPE_COLUMNS))
    write_table(new, tmp_path / "parts" / "a.parquet")
    write_table(old, tmp_path / "parts" / "b.parquet")
    both = read_table(tmp_path / "parts")
    assert with_shape_columns(both)["n_end_points"].tolist() == [2, 2]  # the old rows filled in
    assert both.loc[both.image_id == "new", "n_end_points"].tolist() == [2]
    assert both.loc[both.image_id == "old", "n_end_points"].isna().all()  # unknown, not 0
    filled = with_shape_columns(both.drop(columns=list(SHAPE_COLUMNS)))
    assert filled["n_end_points"].tolist() == [2, 2]


def test_solidity_convex_area_equals_scikit_image_convex_hull():
    from skimage.morphology import convex_hull_image

    from mitoscale.shape import _convex_area

    rng = np.random.default_rng(3)
    masks = [rng.random(rng.integers(1, 45, 2)) < rng.uniform(0.03, 0.9) for _ in range(400)]
    masks += [tube(), thick_polyline([(10, 10), (60, 40), (20, 80)]), np.ones((1, 1), bool)]
    masks = [m for m in masks if m.any()]
    assert [_convex_area(m) for m in masks] == [int(convex_hull_image(m).sum()) for m in masks]
    sol = shape_features(masks, PX)["solidity"].to_numpy()
    ref = [regionprops(m.astype(np.uint8))[0].solidity for m in masks]
    assert np.array_equal(sol, ref)
