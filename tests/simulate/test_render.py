"""One simulated image: SBR, geometry statistics, ground truth, sampling independence."""

import numpy as np
import pytest
from scipy import ndimage

from mitoscale.io.tables import table_to_masks, validate_table
from mitoscale.simulate import simulate_image
from mitoscale.simulate.render import layer_labels


@pytest.fixture(scope="module")
def sims(cfg):
    return [simulate_image(cfg, 7, i) for i in range(4)]


def _de_casteljau(cp, t):
    """Independent Bezier evaluation (repeated linear interpolation)."""
    pts = np.repeat(np.asarray(cp, float)[None], len(t), axis=0)
    t = t[:, None, None]
    while pts.shape[1] > 1:
        pts = (1 - t) * pts[:, :-1] + t * pts[:, 1:]
    return pts[:, 0]


def test_image_and_table_contract(sims):
    s = sims[0]
    assert s.image.dtype == np.uint16 and s.image.shape == (512, 512)
    assert s.labels.dtype == np.uint16 and s.labels.ndim == 3 and s.labels.shape[1:] == (512, 512)
    t = validate_table(s.table)
    for col in ("length_nm", "width_nm", "z_nm", "control_points_nm", "crop_row", "crop_col", "label_layer"):
        assert col in t
    assert (t["instance_id"] == np.arange(1, len(t) + 1)).all()
    assert (t["pixel_size_um"] == 0.08).all() and (t["z"] == -1).all()


def test_sbr_independent_estimate_in_range(cfg, sims):
    """SBR measured from the noisy image with GT masks and far background pixels only."""
    px = cfg.corpus.pixel_size_nm
    for s in sims:
        masks = table_to_masks(s.table)
        fg = masks.any(axis=0)
        # background: pixels more than 1.5 um from every mitochondrion
        far = ndimage.distance_transform_edt(~fg) * px > 1500
        bg = s.image[far].astype(float).mean()
        est = (s.image[fg].astype(float).mean() - bg) / bg
        assert cfg.imaging.sbr[0] * 0.9 <= est <= cfg.imaging.sbr[1] * 1.1
        assert est == pytest.approx(s.sbr, rel=0.03)
    # the draws are spread over the range, not constant
    assert np.ptp([s.sbr for s in sims]) > 0.3


def test_noise_is_poisson(sims):
    s = sims[0]
    far = ndimage.distance_transform_edt(~table_to_masks(s.table).any(axis=0)) > 25
    vals = s.image[far].astype(float)
    assert vals.var() / vals.mean() == pytest.approx(1.0, abs=0.1)
    assert vals.mean() == pytest.approx(s.background, rel=0.05)


def test_geometry_statistics_against_independent_measurements(cfg, sims):
    g = cfg.geometry
    crop_nm = cfg.corpus.crop_nm
    for s in sims[:2]:
        t = s.table
        counts = t.groupby(["crop_row", "crop_col"]).size()
        assert len(counts) == 16
        assert counts.between(*g.count_per_crop).all()
        assert t["width_nm"].between(*g.width_nm).all()
        assert t["length_nm"].between(*g.length_nm).all()
        masks = table_to_masks(t)
        for k, row in enumerate(t.itertuples()):
            cp = np.asarray(row.control_points_nm)
            centre = (np.array([row.crop_col, row.crop_row]) + 0.5) * crop_nm
            assert np.abs(cp[:, :2] - centre).max() <= g.xy_extent_nm + 1e-6
            assert cp[:, 2].min() >= g.z_range_nm[0] - 1e-6 and cp[:, 2].max() <= g.z_range_nm[1] + 1e-6
            # length = 3D arc length of the centreline + the two caps
            pts = _de_casteljau(cp, np.linspace(0, 1, 801))
            arc = np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()
            assert arc + row.width_nm == pytest.approx(row.length_nm, abs=2.0)
            # width from the mask: twice the largest inscribed radius, within a pixel or so
            edt = ndimage.distance_transform_edt(np.pad(masks[k], 1))
            if row.length_nm > row.width_nm + 400:  # not a dot: the body reaches full width
                assert abs(2 * edt.max() * 80 - row.width_nm) < 2.5 * 80
        # mask area vs the projected capsule area (flat approximation), in the median
        xy_arc = np.array([np.linalg.norm(np.diff(_de_casteljau(np.asarray(c)[:, :2], np.linspace(0, 1, 400)),
                                                  axis=0), axis=1).sum() for c in t["control_points_nm"]])
        expected = (xy_arc * t["width_nm"] + np.pi * t["width_nm"] ** 2 / 4) / 80.0**2
        assert np.median(t["area_px"] / expected) == pytest.approx(1.0, abs=0.08)


def test_overlapping_instances_are_kept_in_layers(sims):
    total_overlap = 0
    for s in sims:
        masks = table_to_masks(s.table)
        depth = masks.sum(axis=0)
        total_overlap += int((depth > 1).sum())
        # every instance is exactly (labels[layer] == id), overlaps included
        for k, row in enumerate(s.table.itertuples()):
            assert np.array_equal(s.labels[row.label_layer] == row.instance_id, masks[k])
        # no instance hides another in its layer
        assert sum(int((lab > 0).sum()) for lab in s.labels) == int(depth.sum())
    assert total_overlap > 0, "expected some overlapping mitochondria in 4 images"


def test_layer_labels_respects_max_layers():
    crop = np.ones((2, 2), bool)
    masks = [((0, 0, 2, 2), crop)] * 3
    labels, layer_of = layer_labels(masks, (4, 4))
    assert labels.shape == (3, 4, 4) and layer_of == [0, 1, 2]
    from mitoscale.errors import InputError
    with pytest.raises(InputError, match="max_label_layers"):
        layer_labels(masks, (4, 4), max_layers=2)


def test_depends_only_on_seed_and_index(cfg, sims):
    again = simulate_image(cfg, 7, 1)
    assert np.array_equal(again.image, sims[1].image)
    assert np.array_equal(again.labels, sims[1].labels)
    assert not np.array_equal(sims[0].image, sims[1].image)
    assert not np.array_equal(simulate_image(cfg, 8, 1).image, sims[1].image)


def test_other_pixel_size_and_shape_same_physical_objects(cfg, sims):
    """65 nm sampling of a 300 x 200 field: same crop-(0, 0) objects, areas in um^2 agree."""
    s65 = simulate_image(cfg, 7, 0, pixel_size_nm=65.0, shape=(300, 200))
    assert s65.image.shape == (300, 200) and s65.labels.shape[1:] == (300, 200)
    t80, t65 = sims[0].table, s65.table
    assert (t65["pixel_size_um"] == 0.065).all()
    a = t80[(t80.crop_row == 0) & (t80.crop_col == 0)]
    b = t65[(t65.crop_row == 0) & (t65.crop_col == 0)]
    # the 19.5 x 13 um field holds crop (0, 0) (10.24 um square) whole
    assert len(a) == len(b)
    for ra, rb in zip(a.itertuples(), b.itertuples()):
        assert np.allclose(ra.control_points_nm, rb.control_points_nm)
        assert rb.area_um2 == pytest.approx(ra.area_um2, rel=0.2, abs=0.02)
    # a field that is not a whole number of crops: crops cut by the border are clipped
    assert set(zip(t65.crop_row, t65.crop_col)) <= {(r, c) for r in range(2) for c in range(2)}
    rng_bg = np.array(cfg.imaging.background_photons) * (65 / 80) ** 2
    assert rng_bg[0] <= s65.background <= rng_bg[1]
