"""Long objects with the shipped model (issue 16): a tube longer than a tile crosses tile
borders and must come back as one instance; two tubes crossing come back as two."""

from __future__ import annotations

import numpy as np
import pytest

from mitoscale.model.checkpoint import default_model_path
from mitoscale.segment.config import SegmentConfig
from mitoscale.segment.frame import segment_frame

C = 256 * 80.0  # nm: the centre of a 512 px frame at 80 nm


@pytest.fixture(scope="module")
def shipped():
    if not default_model_path().exists():
        pytest.skip("shipped model not in the package")
    from mitoscale.segment.runtime import get_model

    return get_model(None, None, "cpu")


def _scene(objects, seed=0):
    """A broad-preset rendering of hand-placed tubes (one focal plane, 80 nm, no haze)."""
    from mitoscale.simulate.broad import BankEntry, render_layout
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.field import FieldLayout
    from mitoscale.simulate.psf import Optics

    cfg = load_simulate_config(None, preset="broad", overrides=[
        "broad.camera.cell_haze=[0,0]", "broad.camera.illumination_falloff=[0,0]",
        "broad.camera.eight_bit_probability=0", "broad.camera.sbr=[5,5]"])
    entry = BankEntry(Optics(na=1.4, wavelength_nm=600.0, ns=1.36), 80.0, (250.0,))
    layout = FieldLayout(objects=objects, haze=[], haze_defocus_nm=np.zeros(0), nucleus=None)
    rng = np.random.default_rng
    return render_layout(cfg, layout, entry, rng(seed), rng(seed + 1), 0, 80.0, (512, 512))


def _tube(x0, y0, x1, y1, z=250.0, width=400.0):
    from mitoscale.simulate.field import FieldObject, _tube

    cp = np.array([[x0, y0, z], [(x0 + x1) / 2, (y0 + y1) / 2 + 600.0, z], [x1, y1, z]])
    arc = float(np.hypot(x1 - x0, y1 - y0))
    t = _tube(cp, width, arc + width, 1.0)
    return FieldObject("tube", [t], arc + width, width, 1.0, z)


def _instances_on(table, mask, min_share=0.5):
    from mitoscale.io.tables import decode_mask

    hits = []
    for row in table.itertuples(index=False):
        m = np.zeros(mask.shape, bool)
        m[row.bbox_y0:row.bbox_y1, row.bbox_x0:row.bbox_x1] = decode_mask(
            (row.bbox_y0, row.bbox_x0, row.bbox_y1, row.bbox_x1), row.mask)
        if (m & mask).sum() >= min_share * m.sum():
            hits.append(m)
    return hits


@pytest.mark.slow
def test_a_12um_tube_across_tile_borders_is_one_instance(shipped):
    model, spec, _ = shipped
    s = _scene([_tube(C - 6000, C - 1500, C + 6000, C + 500)])  # ~12.3 um, across 3 tiles
    truth = (s.labels == 1).any(axis=0)
    table = segment_frame(s.image, 0.08, model, spec, SegmentConfig())
    hits = _instances_on(table, truth)
    assert len(hits) == 1, len(hits)
    m = hits[0]
    dice = 2 * (m & truth).sum() / (m.sum() + truth.sum())
    assert dice >= 0.7, dice


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 16 not met: the shipped model returns pieces of each tube at a "
                   "crossing (Dice 0.45-0.62 per piece), not two whole overlapping instances")
def test_two_crossing_tubes_are_two_whole_overlapping_instances(shipped):
    model, spec, _ = shipped
    a = _tube(C - 5000, C, C + 5000, C)
    b = _tube(C, C - 5000, C, C + 5000, z=950.0)
    s = _scene([a, b])
    table = segment_frame(s.image, 0.08, model, spec, SegmentConfig())
    for k in (1, 2):
        truth = (s.labels == k).any(axis=0)
        hits = _instances_on(table, truth)
        assert len(hits) == 1
        m = hits[0]
        assert 2 * (m & truth).sum() / (m.sum() + truth.sum()) >= 0.7
