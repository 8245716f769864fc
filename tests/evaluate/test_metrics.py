"""Hand-computed cases of the matching protocol (overlaps, ties, thresholds) and a dense oracle."""

import time

import numpy as np
import pytest

from mitoscale.errors import InputError
from mitoscale.evaluate.metrics import (
    SparseMasks, evaluate_image, evaluate_tables, match_instances, summarize,
)
from mitoscale.io.tables import instances_to_table


def box(shape, y0, x0, y1, x1):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


S = (12, 12)


def test_perfect_and_missed():
    a, b = box(S, 0, 0, 4, 4), box(S, 6, 6, 10, 10)
    s = evaluate_image([a], [a, b], min_size=1)
    assert (s.tp, s.fp, s.fn, s.n_pred, s.n_gt) == (1, 0, 1, 1, 2)
    assert s.precision == 1.0 and s.recall == 0.5
    assert s.mean_dice == 0.5 and s.nonzero_dice == 1.0
    assert list(s.matched_pred) == [0] and list(s.matched_gt) == [0]


def test_threshold_is_inclusive_at_exactly_half():
    gt = box(S, 0, 0, 4, 4)                      # 16 px
    half = box(S, 0, 2, 4, 6)                    # 16 px, 8 overlap -> Dice 16/32 = 0.5
    below = box(S, 1, 2, 5, 6)                   # 16 px, 6 overlap -> Dice 12/32
    assert evaluate_image([half], [gt], min_size=1).tp == 1
    s = evaluate_image([below], [gt], min_size=1)
    assert (s.tp, s.fp, s.fn) == (0, 1, 1)
    assert s.mean_dice == 0.0 and np.isnan(s.nonzero_dice)


def test_partial_dice_value():
    gt = box(S, 0, 0, 4, 4)                      # 16 px
    pred = box(S, 0, 0, 4, 3)                    # 12 px inside -> Dice 24/28
    s = evaluate_image([pred], [gt], min_size=1)
    assert s.matched_dice[0] == pytest.approx(24 / 28)
    assert s.mean_dice == pytest.approx(24 / 28)


def test_min_size_drops_small_predictions_only():
    gt = [box(S, 0, 0, 3, 3)]                    # 9 px ground truth is kept
    nine, ten = box(S, 0, 0, 3, 3), box(S, 0, 0, 2, 5)
    s9 = evaluate_image([nine], gt)              # default min_size=10: 9 px dropped
    assert (s9.n_pred, s9.n_pred_dropped, s9.tp, s9.fn) == (0, 1, 0, 1)
    assert np.isnan(s9.precision)
    s10 = evaluate_image([ten], gt)              # 10 px kept; overlap 6 -> Dice 12/19
    assert (s10.n_pred, s10.tp) == (1, 1)
    assert s10.matched_dice[0] == pytest.approx(12 / 19)


def test_overlapping_ground_truth_tie_goes_to_lower_gt_index():
    # A and B overlap in cols 2:4; P overlaps each by 12 px -> Dice 0.75 with both
    A, B, P = box(S, 0, 0, 4, 4), box(S, 0, 2, 4, 6), box(S, 0, 1, 4, 5)
    s = evaluate_image([P], [A, B], min_size=1)
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)
    assert list(s.matched_gt) == [0]
    assert s.mean_dice == pytest.approx(0.375) and s.nonzero_dice == pytest.approx(0.75)
    s = evaluate_image([P], [B, A], min_size=1)
    assert list(s.matched_gt) == [0]
    # a second prediction equal to B takes B first (Dice 1), P then takes A
    s = evaluate_image([P, B], [A, B], min_size=1)
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)
    assert dict(zip(s.matched_gt, s.matched_pred)) == {0: 0, 1: 1}
    assert s.mean_dice == pytest.approx((0.75 + 1.0) / 2)


def test_duplicate_predictions_tie_goes_to_lower_pred_index():
    g = box(S, 2, 2, 6, 6)
    s = evaluate_image([box(S, 8, 8, 12, 12), g, g.copy()], [g], min_size=1)
    assert list(s.matched_pred) == [1]
    assert (s.tp, s.fp, s.fn) == (1, 2, 0)


def test_overlapping_predictions_each_match_at_most_once():
    # one big prediction covering two touching GT halves: Dice 2/3 with each
    A, B = box(S, 0, 0, 4, 4), box(S, 4, 0, 8, 4)
    big = box(S, 0, 0, 8, 4)
    s = evaluate_image([big], [A, B], min_size=1)
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)
    assert s.matched_dice[0] == pytest.approx(2 * 16 / 48)


def test_greedy_fallback_and_optimal_differ():
    # pairs: P0-G0 0.9, P0-G1 0.6, P1-G0 0.6
    pi, gi, d = np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.6, 0.6])
    g = match_instances(pi, gi, d, matching="greedy")
    assert list(g) == [0]
    o = match_instances(pi, gi, d, matching="optimal")
    assert sorted(o) == [1, 2]
    # greedy falls back to the next-best candidate when the best is taken
    pi, gi, d = np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([0.9, 0.8, 0.7])
    assert sorted(match_instances(pi, gi, d)) == [0, 2]
    with pytest.raises(ValueError):
        match_instances(pi, gi, d, matching="bogus")


def test_label_image_and_empty_inputs():
    lab = np.zeros(S, dtype=np.int32)
    lab[0:4, 0:4] = 3
    lab[6:10, 6:10] = 7
    s = evaluate_image(lab, lab, min_size=1)
    assert (s.tp, s.fp, s.fn) == (2, 0, 0) and s.mean_dice == 1.0
    s = evaluate_image(np.zeros((0, *S), bool), lab, min_size=1)
    assert (s.tp, s.fn) == (0, 2) and np.isnan(s.precision) and s.recall == 0
    s = evaluate_image(lab, [], min_size=1)
    assert (s.fp, s.n_gt) == (2, 0) and np.isnan(s.recall) and s.precision == 0
    with pytest.raises(ValueError):
        SparseMasks.from_masks(np.zeros(S, bool))


def _dense_oracle(pred, gt, threshold=0.5, min_size=10):
    pred = [p for p in pred if p.sum() >= min_size and p.any()]
    gt = [g for g in gt if g.any()]
    pairs = []
    for j, g in enumerate(gt):
        for i, p in enumerate(pred):
            d = 2 * (p & g).sum() / (p.sum() + g.sum())
            if d >= threshold:
                pairs.append((-d, j, i))
    used_p, used_g, dsum = set(), set(), 0.0
    for nd, j, i in sorted(pairs):
        if i not in used_p and j not in used_g:
            used_p.add(i); used_g.add(j); dsum -= nd
    return len(used_p), len(pred), len(gt), dsum


def _random_blobs(rng, n, shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    out = []
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        ry, rx = rng.uniform(2, 7, size=2)
        out.append(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1)
    return out


def test_bbox_pruned_equals_dense_oracle_on_random_overlapping_masks():
    rng = np.random.default_rng(42)
    for _ in range(5):
        gt = _random_blobs(rng, 25, (64, 64))
        # predictions: jittered copies of ground truth plus clutter, heavy overlaps both sides
        pred = [np.roll(g, rng.integers(-2, 3, size=2), axis=(0, 1)) for g in gt[:20]]
        pred += _random_blobs(rng, 10, (64, 64))
        s = evaluate_image(pred, gt)
        tp, n_pred, n_gt, dsum = _dense_oracle(pred, gt)
        assert (s.tp, s.n_pred, s.n_gt) == (tp, n_pred, n_gt)
        assert s.dice_sum == pytest.approx(dsum)


def test_summarize_pools_counts_and_dice():
    a, b = box(S, 0, 0, 4, 4), box(S, 6, 6, 10, 10)
    s1 = evaluate_image([a], [a, b], min_size=1)                   # tp1 fn1, dice 1
    s2 = evaluate_image([a, b, box(S, 0, 6, 3, 12)], [box(S, 0, 0, 4, 3)], min_size=1)  # tp1 fp2, dice 24/28
    out = summarize([s1, s2])
    assert (out["tp"], out["fp"], out["fn"], out["n_gt"], out["n_pred"]) == (2, 2, 1, 3, 4)
    assert out["precision"] == pytest.approx(0.5)
    assert out["recall"] == pytest.approx(2 / 3)
    assert out["mean_dice"] == pytest.approx((1 + 24 / 28) / 3)
    assert out["nonzero_dice"] == pytest.approx((1 + 24 / 28) / 2)
    assert np.isnan(summarize([])["precision"])


def test_evaluate_tables_per_location_and_errors():
    a, b = box(S, 0, 0, 4, 4), box(S, 6, 6, 10, 10)
    import pandas as pd
    gt = pd.concat([
        instances_to_table([a, b], image_id="img1", pixel_size_um=0.08),
        instances_to_table([a], image_id="img2", pixel_size_um=0.08),
    ], ignore_index=True)
    pred = pd.concat([
        instances_to_table([b, box(S, 0, 6, 4, 10)], image_id="img1", pixel_size_um=0.08, instance_ids=[5, 6]),
        instances_to_table([a], image_id="img3", pixel_size_um=0.08),
    ], ignore_index=True)
    per_image, summary, matches = evaluate_tables(pred, gt, min_size=1, return_matches=True)
    assert list(per_image["image_id"]) == ["img1", "img2", "img3"]
    assert list(per_image["tp"]) == [1, 0, 0]
    assert list(per_image["fn"]) == [1, 1, 0]
    assert list(per_image["fp"]) == [1, 0, 1]
    assert summary["tp"] == 1 and summary["n_gt"] == 3 and summary["n_pred"] == 3
    assert summary["n_locations_pred_only"] == 1 and summary["n_locations_gt_only"] == 1
    assert matches[["pred_instance_id", "gt_instance_id"]].values.tolist() == [[5, 2]]
    with pytest.raises(InputError, match="share no image"):
        evaluate_tables(pred[pred.image_id == "img3"], gt)
    # an empty prediction table is valid: every ground-truth instance is a miss
    _, s_empty = evaluate_tables(pred.iloc[:0], gt)
    assert (s_empty["tp"], s_empty["fn"], s_empty["n_images"]) == (0, 3, 2)
    other_grid = instances_to_table([box((16, 16), 0, 0, 4, 4)], image_id="img2", pixel_size_um=0.08)
    with pytest.raises(InputError, match="same grid"):
        evaluate_tables(other_grid, gt)


def test_200_by_200_instances_at_1024_is_fast():
    rng = np.random.default_rng(0)
    shape = (1024, 1024)

    def sparse(n):
        bboxes, crops = [], []
        for _ in range(n):
            h, w = rng.integers(6, 40, size=2)
            y0, x0 = rng.integers(0, 1024 - 40, size=2)
            crop = rng.random((h, w)) > 0.2
            crop[0, 0] = crop[-1, -1] = True
            bboxes.append((y0, x0, y0 + h, x0 + w))
            crops.append(crop)
        return bboxes, crops

    bb, cr = sparse(200)
    gt = SparseMasks._build(bb, cr, [c.sum() for c in cr], range(200))
    pb = [(y0 + 1, x0, y1 + 1, x1) for (y0, x0, y1, x1) in bb]
    pred = SparseMasks._build(pb, cr, [c.sum() for c in cr], range(200))
    t0 = time.perf_counter()
    s = evaluate_image(pred, gt)
    dt = time.perf_counter() - t0
    assert s.n_gt == 200 and s.tp > 150
    assert dt < 1.0, f"200x200 instances took {dt:.2f} s"
    # dense stacks at full resolution also work
    dense = np.zeros((200, *shape), bool)
    for k, ((y0, x0, y1, x1), c) in enumerate(zip(bb, cr)):
        dense[k, y0:y1, x0:x1] = c
    s2 = evaluate_image(dense, gt)
    assert (s2.tp, s2.n_pred) == (200, 200) and s2.mean_dice == 1.0
