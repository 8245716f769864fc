"""Kernels: tiling, prompts, windowed decoding, post-processing, mapping back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mitoscale.segment.postprocess import Candidate, largest_component, overlap, suppress_overlaps
from mitoscale.segment.prompts import foreground, sample_prompts
from mitoscale.segment.tiling import assign_points, resample, resampled_shape, tile_grid


@pytest.mark.parametrize("shape", [(100, 90), (256, 256), (257, 700), (1024, 1024), (208, 1000),
                                   (1250, 333)])
@pytest.mark.parametrize("halo", [0, 32])
@pytest.mark.parametrize("align", [1, 8, 64, 192])
def test_tile_cores_partition_frame_with_halo(shape, halo, align):
    tiles = tile_grid(shape, 256, halo, align)
    owner = np.full(shape, -1)
    for t in tiles:
        assert t.y1 - t.y0 <= 256 and t.x1 - t.x0 <= 256
        assert t.y0 % align == 0 and t.x0 % align == 0
        cy0, cx0, cy1, cx1 = t.core
        assert (owner[cy0:cy1, cx0:cx1] == -1).all()
        owner[cy0:cy1, cx0:cx1] = t.index
        # at least `halo` px of context beyond the core, except at the frame border
        if cy0 > 0:
            assert cy0 - t.y0 >= halo
        if cy1 < shape[0]:
            assert t.y1 - cy1 >= halo
        if cx0 > 0:
            assert cx0 - t.x0 >= halo
        if cx1 < shape[1]:
            assert t.x1 - cx1 >= halo
    assert (owner >= 0).all()
    pts = np.stack(np.nonzero(np.ones(shape, bool)), 1)[::97]
    np.testing.assert_array_equal(assign_points(pts, tiles), owner[pts[:, 0], pts[:, 1]])


def test_tile_count_and_default_alignment():
    from mitoscale.model import get_spec
    from mitoscale.segment.runtime import tile_align

    # 1024 px at 256 px tiles with a 32 px halo: stride 192 (a multiple of 64), 5 x 5 tiles
    assert len(tile_grid((1024, 1024), 256, 32, 64)) == 25
    assert [t.x0 for t in tile_grid((208, 254), 192, 32, 64)] == [0, 64, 0, 64]
    assert tile_align(get_spec("mito256"), 256, 32) == 64  # patch 8 x window 8
    assert tile_align(get_spec("vit_b"), 1024, 32) == 224  # patch 16 x window 14
    assert tile_align(get_spec("mito256"), 96, 32) == 8  # window does not fit a 32 px core
    # an alignment equal to the core width is used, not dropped
    assert tile_align(get_spec("mito256"), 128, 32) == 64
    assert [t.x0 for t in tile_grid((100, 300), 128, 32, 64)] == [0, 64, 128, 192]


def test_resample_shape_and_mean():
    img = np.random.default_rng(0).random((130, 65)).astype(np.float32)
    shape = resampled_shape(img.shape, 0.065, 0.08)
    assert shape == (106, 53)
    out = resample(img, shape)
    assert out.shape == shape
    assert abs(out.mean() - img.mean()) < 0.01


def test_prompts_are_brightest_foreground_pixel_per_cell():
    img = np.zeros((20, 20), np.float32)
    img[2, 3], img[2, 4] = 5.0, 4.0  # same 10x10 cell: only the brightest
    img[15, 12] = 9.0
    fg, thr = foreground(img)
    pts = sample_prompts(img, fg, spacing=10)
    assert pts.tolist() == [[15, 12], [2, 3]]  # brightest first
    assert sample_prompts(img, fg, 10, max_prompts=1).tolist() == [[15, 12]]


def test_maxima_prompts_one_per_peak_and_plateaus():
    from mitoscale.segment.prompts import maxima_prompts

    img = np.zeros((30, 30), np.float32)
    img[5, 5], img[5, 6] = 3.0, 2.0  # one peak with a shoulder
    img[20, 20] = 5.0
    img[25:28, 2:5] = 1.0  # plateau: no strict maximum, still one prompt
    fg = img > 0
    pts = maxima_prompts(img, fg, spacing=3)
    assert pts[:2].tolist() == [[20, 20], [5, 5]]  # brightest first
    assert len(pts) == 3 and 25 <= pts[2][0] < 28 and 2 <= pts[2][1] < 5


def _cand(y0, x0, mask, score):
    mask = np.asarray(mask, bool)
    return Candidate(y0, x0, mask, np.where(mask, 1.0, -1.0).astype(np.float16), score)


def test_overlap_definition_and_suppression():
    a = _cand(0, 0, np.ones((4, 4)), 0.9)  # 16 px
    b = _cand(2, 2, np.ones((4, 4)), 0.8)  # shares 4 px with a
    inner = _cand(1, 1, np.ones((2, 2)), 0.95)  # nested in a
    assert overlap(a, b) == pytest.approx(4 / 16)
    assert overlap(a, inner) == pytest.approx(1.0)
    kept = suppress_overlaps([a, b, inner], max_overlap=0.5)
    # inner scores higher than a and overlaps it fully: a is dropped, b stays
    assert {id(k) for k in kept} == {id(inner), id(b)}
    # whole masks beat truncated ones regardless of score
    t = _cand(0, 0, np.ones((4, 4)), 0.99)
    t.truncated = True
    assert suppress_overlaps([t, a], 0.5) == [a]
    # independent of input order
    assert {id(k) for k in suppress_overlaps([inner, b, a], 0.5)} == {id(inner), id(b)}
    # fragment rule: b (0.8) shares pixels with a better kept mask; a 0.85 bar drops it,
    # a lower bar keeps it, and a mask that touches nothing is kept whatever its score
    far = _cand(20, 20, np.ones((3, 3)), 0.3)
    assert {id(k) for k in suppress_overlaps([a, b, far], 0.5, fragment_score=0.85)} == {id(a), id(far)}
    assert {id(k) for k in suppress_overlaps([a, b, far], 0.5, fragment_score=0.6)} == {id(a), id(b), id(far)}


def test_largest_component():
    m = np.zeros((10, 10), bool)
    m[0:2, 0:2] = True
    m[5:9, 5:9] = True
    lc = largest_component(m)
    assert lc.sum() == 16 and not lc[0, 0]


def test_full_window_decoding_equals_sam():
    """window=None reproduces segment-anything's own decoder + postprocess exactly."""
    from mitoscale.model import build_sam, get_spec
    from mitoscale.segment.decode import decode_points, encode_tile

    torch.manual_seed(0)
    spec = get_spec("micro")
    sam = build_sam(spec)
    img = np.random.default_rng(0).random((spec.img_size, spec.img_size)).astype(np.float32)
    emb = encode_tile(sam, spec, img)
    pts = np.array([[10, 100], [64, 3], [120, 127]])
    dec = decode_points(sam, spec, emb, pts, window=None)
    with torch.inference_mode():
        coords = torch.tensor(pts[:, ::-1].copy(), dtype=torch.float32)[:, None]
        sparse, dense = sam.prompt_encoder(points=(coords, torch.ones(3, 1, dtype=torch.long)),
                                           boxes=None, masks=None)
        low, iou = sam.mask_decoder(emb, sam.prompt_encoder.get_dense_pe(), sparse, dense,
                                    multimask_output=True)
        best = iou.argmax(1)
        ref = sam.postprocess_masks(low, (spec.img_size,) * 2, (spec.img_size,) * 2)[torch.arange(3), best]
    torch.testing.assert_close(dec.logits, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(dec.scores, iou[torch.arange(3), best].numpy(), atol=1e-6)
    # a local window covers the matching region of the map, placed at its origin
    win = decode_points(sam, spec, emb, pts, window=8)
    assert win.logits.shape[1:] == (64, 64)
    assert (win.y0 % 8 == 0).all() and (win.y0 + 64 <= spec.img_size).all()
    assert not win.inner_edges[0, 0]  # window at the top of the map
    # keep_all: SAM's three masks per prompt, in order; the best one is what multimask keeps
    alls = decode_points(sam, spec, emb, pts, window=None, keep_all=True)
    np.testing.assert_array_equal(alls.prompt, [0, 0, 0, 1, 1, 1, 2, 2, 2])
    ref_all = sam.postprocess_masks(low, (spec.img_size,) * 2, (spec.img_size,) * 2)[:, :]
    torch.testing.assert_close(alls.logits, ref_all.reshape(9, *ref_all.shape[2:]), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(alls.scores, iou.reshape(9).numpy(), atol=1e-6)


def test_map_to_input_identity_and_scaling():
    from mitoscale.segment.frame import map_to_input

    m = np.zeros((12, 12), bool)
    m[3:9, 2:10] = True
    c = _cand(40, 50, m, 0.9)
    y0, x0, same = map_to_input(c, (200, 200), (200, 200))
    assert (y0, x0) == (40, 50) and np.array_equal(same, m)
    # to a grid twice as fine: the area grows ~4x and the box doubles
    y0, x0, fine = map_to_input(c, (200, 200), (400, 400))
    assert fine.sum() == pytest.approx(4 * m.sum(), rel=0.25)
    ys, xs = np.nonzero(fine)
    assert (y0 + ys.min()) == pytest.approx(2 * 43, abs=2)
    assert (x0 + xs.max()) == pytest.approx(2 * 60, abs=2)


def test_candidate_stability_score():
    """SAM's stability score: |logits > 1| / |logits > -1| over the candidate's crop."""
    lg = np.full((4, 5), -20.0, dtype=np.float16)
    lg[1:3, 1:4] = 3.0  # 6 px confidently inside
    lg[0, 1:4] = 0.5  # 3 px just inside: in the mask, not at +1
    lg[3, 1:4] = -0.5  # 3 px just outside: counted at -1 only
    c = Candidate(0, 0, lg > 0, lg, 0.9)
    assert c.area == 9
    assert c.stability == pytest.approx(6 / 12)
    assert c.shifted(5, 5).stability == c.stability


def test_merge_across_tiles_joins_a_tube_longer_than_a_tile_and_keeps_crossings_apart():
    from mitoscale.segment.postprocess import Candidate, merge_across_tiles, suppress_overlaps
    from mitoscale.segment.tiling import tile_grid

    tiles = tile_grid((256, 512), 256, 32, 1)  # three overlapping tiles side by side
    assert len(tiles) == 3
    a_t, m_t, b_t = tiles
    y = 120
    tube = np.zeros((256, 512), bool)
    tube[y - 3:y + 3, 20:490] = True  # 470 px long: no tile sees it whole

    def cand(region, tile, truncated, score=0.9):
        m = tube.copy()
        m[:, :region[0]] = False
        m[:, region[1]:] = False
        ys, xs = np.nonzero(m)
        y0, x0, y1, x1 = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
        crop = m[y0:y1, x0:x1]
        c = Candidate(int(y0), int(x0), crop, np.where(crop, 5.0, -5.0).astype(np.float16), score,
                      truncated=truncated)
        c.tile = tile
        return c

    left = cand((a_t.x0, a_t.x1), 0, True)
    mid = cand((m_t.x0, m_t.x1), 1, True, 0.7)
    right = cand((b_t.x0, b_t.x1), 2, True, 0.8)
    # a tube crossing the long one at right angles, seen by the right tile only
    cross = np.zeros((256, 512), bool)
    cross[60:200, 300:306] = True
    ys, xs = np.nonzero(cross)
    cc = Candidate(int(ys.min()), int(xs.min()), cross[ys.min():ys.max() + 1, xs.min():xs.max() + 1],
                   np.full((np.ptp(ys) + 1, np.ptp(xs) + 1), 5.0, np.float16), 0.85)
    cc.tile = 2
    merged = merge_across_tiles([left, mid, right, cc], tiles)
    assert len(merged) == 2
    whole = max(merged, key=lambda c: c.area)
    assert whole.area == int(tube.sum()) and whole.bbox == (y - 3, 20, y + 3, 490)
    assert not whole.truncated
    parts = (left, mid, right)
    assert whole.score == pytest.approx(sum(c.score * c.area for c in parts) / sum(c.area for c in parts))
    kept = suppress_overlaps(merged, 0.5, 0.6)
    assert len(kept) == 2  # the crossing survives: its overlap with the tube is small
    # without stitching the two halves are two instances (overlap below 0.5 of the smaller)
    assert len(suppress_overlaps([left, right], 0.5, 0.0)) == 2
