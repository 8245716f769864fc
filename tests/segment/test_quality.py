"""Quality with the shipped model: a simulated 65 nm timelapse scored by the evaluation
protocol, and tiling invariance (one tile vs many overlapping tiles)."""

from __future__ import annotations

import numpy as np
import pytest

from mitoscale.evaluate.metrics import evaluate_tables
from mitoscale.model.checkpoint import default_model_path
from mitoscale.segment.config import SegmentConfig
from mitoscale.segment.pipeline import run_segmentation

# Bars for this small test set (2 frames, 74 instances), below what the shipped model
# measured on it with the default config (precision 1.00/1.00, recall 0.78/0.85, mean Dice
# 0.68/0.73 per frame; deterministic on the CPU); the held-out numbers (16 images, 2,609
# instances) are in docs/MODEL_CARD.md.
MIN_PRECISION = 0.85
MIN_RECALL = 0.70
MIN_MEAN_DICE = 0.62


@pytest.fixture(scope="module")
def shipped():
    path = default_model_path()
    if not path.exists():
        pytest.skip(f"shipped model {path.name} is not in the package yet (training issue)")
    from mitoscale.segment.runtime import get_model

    return get_model(None, None, "cpu")


@pytest.mark.slow
def test_synthetic_timelapse_scores_above_bar(tmp_path, timelapse, shipped):
    from mitoscale.io.tables import read_table

    path, gt = timelapse
    cfg = SegmentConfig()
    cfg.input.channel = "mito"
    run_segmentation(path, tmp_path / "seg", cfg=cfg, progress=False)
    pred = read_table(tmp_path / "seg" / "instances")
    _, summary = evaluate_tables(pred, gt)
    assert summary["precision"] >= MIN_PRECISION, summary
    assert summary["recall"] >= MIN_RECALL, summary
    assert summary["mean_dice"] >= MIN_MEAN_DICE, summary


@pytest.fixture(scope="module")
def one_and_many(simulated_frames, shipped):
    """Six 65 nm frames, each as one 256 px tile and as 4 overlapping 192 px tiles (halo 32).

    The frames are the three of ``simulated_frames`` (seed 7) and three more of seed 8,
    the same six as benchmarks/RESULTS_segment.md's tiling-invariance measurement.
    """
    from mitoscale.segment.frame import segment_frame
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    sam, spec, _ = shipped
    cfg = load_simulate_config(None)
    frames = [img for img, _ in simulated_frames]
    frames += [simulate_image(cfg, 8, i, pixel_size_nm=65.0, shape=(256, 320)).image for i in range(3)]
    many = SegmentConfig()
    many.model.tile_size, many.model.halo = 192, 32
    out = []
    for frame in frames:
        image = frame[:, :312]  # 65 nm -> 208 x 254 px at 80 nm: one 256 px tile
        st_one, st_many = {}, {}
        a = segment_frame(image, 0.065, sam, spec, SegmentConfig(), stats=st_one)
        b = segment_frame(image, 0.065, sam, spec, many, stats=st_many)
        assert st_one["tiles"] == 1 and st_many["tiles"] == 4
        _, _, matches = evaluate_tables(b, a, return_matches=True)
        out.append((a, b, matches))
    return out


@pytest.mark.slow
def test_stitching_gives_one_instance_per_object(one_and_many):
    """Border-crossing objects become one instance: no duplicates, no halves, same objects."""
    from mitoscale.io.tables import table_to_masks

    for a, b, matches in one_and_many:
        assert len(a) >= 15  # a populated frame (broad stage 2 finds 19 on one: longer, fewer pieces)
        assert abs(len(a) - len(b)) <= 0.1 * len(a)
        assert len(matches) >= 0.85 * max(len(a), len(b))  # paired at Dice >= 0.5
        m = table_to_masks(b).reshape(len(b), -1).astype(np.int32)
        inter = m @ m.T
        area = np.diag(inter)
        ov = inter / np.minimum(area[:, None], area[None, :])
        np.fill_diagonal(ov, 0)
        assert ov.max() <= 0.5 + 0.15  # suppression bound (0.5 at 80 nm; resampling to 65 nm blurs it)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 16: the broad-preset models (no shift-consistency stage) stay below "
                   "the 95% bar: 132/161 = 82.0% of pairs at Dice >= 0.9 for broad stage 2 "
                   "(stage 1: 129/153 = 84.3%; docs/MODEL_CARD.md)")
def test_one_tile_matches_many_overlapping_tiles(one_and_many):
    """Issue 4: >= 95% of pairs at Dice >= 0.9 between one tile and many overlapping tiles.

    Counted over the six frames: pairs at Dice >= 0.9 over the larger of the two instance
    counts of each frame (an instance found by one tiling only counts as a miss).
    """
    good = sum(int((np.asarray(m["dice"]) >= 0.9).sum()) for _, _, m in one_and_many)
    total = sum(max(len(a), len(b)) for a, b, _ in one_and_many)
    assert good >= 0.95 * total, (good, total)
