"""The corpus tables' compiled skeleton graph (mitoscale.skeleton_graph) equals skan's, bit for bit."""

import numpy as np
import pytest
from scipy import ndimage

from mitoscale.io.tables import decode_mask
from mitoscale.shape import SHAPE_COLUMNS, shape_features
from mitoscale.simulate import simulate_image
from mitoscale.simulate.config import load_simulate_config


def _instances():
    crops = []
    for preset, n in (("paper", 2), ("broad", 2)):
        cfg = load_simulate_config(None, preset=preset)
        for i in range(n):
            t = simulate_image(cfg, 11, i).table
            for r in t.itertuples():
                crops.append(decode_mask((r.bbox_y0, r.bbox_x0, r.bbox_y1, r.bbox_x1), r.mask))
    rng = np.random.default_rng(0)
    for _ in range(120):  # branchy blobs with holes: junction clusters, cycles, spurs
        f = ndimage.gaussian_filter(rng.random((40, 40)), rng.uniform(1, 3))
        crops.append(f > np.quantile(f, rng.uniform(0.4, 0.8)))
    return crops


def test_compiled_graph_equals_skan_on_generated_instances():
    crops = _instances()
    assert len(crops) > 400
    skan = shape_features(crops, 0.08)
    fast = shape_features(crops, 0.08, engine="compiled")
    for col in SHAPE_COLUMNS:
        np.testing.assert_array_equal(fast[col].to_numpy(), skan[col].to_numpy(), err_msg=col)
    assert (skan.n_branch_points > 1).sum() > 20 and skan.tortuosity.notna().sum() > 100


def test_corpus_tables_carry_the_graph_columns_and_engine_is_checked():
    t = simulate_image(load_simulate_config(None, preset="broad"), 11, 2).table
    for col in ("skeleton_length_um", "n_branch_points", "n_end_points"):
        assert t[col].notna().all()
    assert (t.skeleton_length_um > 0).all()
    with pytest.raises(ValueError, match="engine"):
        shape_features([np.ones((3, 3), bool)], engine="fast")
