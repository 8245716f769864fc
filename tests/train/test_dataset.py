"""Prompt sampling, targets, chunk-aligned sampler and the corpus dataset."""

import numpy as np
import pytest
import torch

from mitoscale.errors import InputError
from mitoscale.train.corpus import instance_masks, open_corpus, split_indices
from mitoscale.train.dataset import (ChunkSampler, PromptDataset, collate, point_targets,
                                     sample_points, tile_origins)


def test_sample_points_only_foreground():
    fg = np.zeros((20, 20), bool)
    fg[5:8, 10:12] = True
    pts = sample_points(fg, 50, np.random.default_rng(0))
    assert pts.shape == (50, 2)
    assert fg[pts[:, 0], pts[:, 1]].all()
    with pytest.raises(ValueError):
        sample_points(fg, 0, np.random.default_rng(0))
    with pytest.raises(ValueError):
        sample_points(np.zeros((4, 4), bool), 3, np.random.default_rng(0))


def test_point_targets_overlap_gives_all_instances():
    layers = np.zeros((3, 16, 16), np.uint16)
    layers[0, 4:6, 0:16] = 1   # horizontal instance (layer 0, id 1)
    layers[0, 12:14, 0:4] = 2  # another instance in layer 0
    layers[1, 0:16, 8:10] = 1  # vertical instance crossing the first (layer 1)
    pts = np.array([[5, 9], [12, 1], [0, 8]])
    targets, valid = point_targets(layers, pts)
    assert valid.tolist() == [[True, True, False], [True, False, False], [False, True, False]]
    assert (targets[0, 0] == (layers[0] == 1)).all()
    assert (targets[0, 1] == (layers[1] == 1)).all()
    assert (targets[1, 0] == (layers[0] == 2)).all()
    assert not targets[~valid].any()
    # every target contains its point
    for k, (y, x) in enumerate(pts):
        assert targets[k, valid[k], y, x].all()


def test_tile_origins_cover_image():
    assert tile_origins(512, 512, 256) == [(0, 0), (0, 256), (256, 0), (256, 256)]
    assert tile_origins(512, 512, 1024) == [(0, 0)]
    o = tile_origins(300, 300, 128)
    assert o[-1] == (172, 172) and len(o) == 9


def test_chunk_sampler_chunk_aligned_ranks_and_resume():
    units = np.arange(40)
    s0 = ChunkSampler(units, units_per_chunk=8, seed=1, rank=0, world=2)
    s1 = ChunkSampler(units, units_per_chunk=8, seed=1, rank=1, world=2)
    o0, o1 = s0.epoch_order(0), s1.epoch_order(0)
    assert set(o0).isdisjoint(o1) and len(o0) == len(o1) == 20
    full = ChunkSampler(units, 8, seed=1).epoch_order(0)
    # chunks are visited contiguously: chunk id changes exactly 4 times in 5 chunks
    assert np.count_nonzero(np.diff(full // 8)) == 4
    it = iter(ChunkSampler(units, 8, seed=1, rank=0, world=2))
    first = [next(it) for _ in range(50)]  # crosses into epochs 1 and 2
    resumed = iter(ChunkSampler(units, 8, seed=1, rank=0, world=2, start=13))
    assert [next(resumed) for _ in range(37)] == first[13:]
    assert first[20][1] == 1  # second epoch
    assert [u for u, _ in first[:20]] != [u for u, _ in first[20:40]]  # reshuffled


def test_dataset_on_real_corpus(tiny_corpus):
    corpus = open_corpus(tiny_corpus)
    assert corpus.n_images == 6 and corpus.chunk_len == 2
    ds = PromptDataset(corpus, img_size=128, points_per_image=5, seed=0)
    s = ds[(3, 0)]
    assert s["image"].shape == (3, 128, 128)
    assert s["points"].shape == (5, 2)
    k, t, h, w = s["targets"].shape
    assert (k, h, w) == (5, 128, 128) and s["valid"].shape == (5, t)
    # each point lies inside every valid target; every point has at least one target
    assert s["valid"].any(dim=1).all()
    for i, (x, y) in enumerate(s["points"].long().tolist()):
        assert s["targets"][i, s["valid"][i], y, x].all()
    again = ds[(3, 0)]
    assert torch.equal(again["points"], s["points"]) and torch.equal(again["image"], s["image"])
    other = ds[(3, 1)]
    assert not torch.equal(other["points"], s["points"])
    batch = collate([ds[(0, 0)], ds[(1, 0)]])
    assert batch["image"].shape == (2, 3, 128, 128)
    assert batch["targets"].shape[:2] == (2, 5)


def test_targets_match_corpus_instances(tiny_corpus):
    import zarr

    corpus = open_corpus(tiny_corpus)
    n_inst = zarr.open_group(str(tiny_corpus), mode="r")["n_instances"]
    for i in range(corpus.n_images):
        assert len(instance_masks(np.asarray(corpus.labels[i]))) == int(n_inst[i])


def test_split_and_bad_corpus(tmp_path, tiny_corpus):
    tr, va = split_indices(100, 0.05)
    assert len(va) == 5 and va[0] == 95 and len(tr) == 95
    with pytest.raises(InputError, match="nothing to train"):
        split_indices(2, 0.9)
    with pytest.raises(InputError, match="not found"):
        open_corpus(tmp_path / "nope.zarr")
    import zarr
    root = zarr.open_group(str(tmp_path / "nomasks.zarr"), mode="w")
    root.create_array("images", shape=(2, 64, 64), dtype="uint16")
    with pytest.raises(InputError, match="no masks"):
        open_corpus(tmp_path / "nomasks.zarr")


def test_pair_views_show_the_same_objects_shift_apart(tiny_corpus):
    """Shift-consistency samples: B is A's image moved by ``shift``, with the same points/targets."""
    corpus = open_corpus(tiny_corpus)
    ds = PromptDataset(corpus, img_size=128, points_per_image=6, seed=1, augment=False,
                       pair_shift=64)
    seen = set()
    for i in range(corpus.n_images):
        s = ds[(i, 0)]
        dy, dx = (int(v) for v in s["shift"])
        assert (dy, dx) != (0, 0) and {abs(dy), abs(dx)} <= {0, 64}
        seen.add((dy, dx))
        # points (x, y) lie in both views, B's are A's minus the shift
        pa, pb = s["points"].numpy(), s["points_b"].numpy()
        np.testing.assert_array_equal(pa - pb, np.broadcast_to([dx, dy], pa.shape))
        assert (pa >= 0).all() and (pa < 128).all() and (pb >= 0).all() and (pb < 128).all()
        # targets: the same instances, moved by the shift, in the overlap
        ta, tb = s["targets"].numpy(), s["targets_b"].numpy()
        ya, yb = slice(max(0, dy), 128 + min(0, dy)), slice(max(0, -dy), 128 + min(0, -dy))
        xa, xb = slice(max(0, dx), 128 + min(0, dx)), slice(max(0, -dx), 128 + min(0, -dx))
        np.testing.assert_array_equal(ta[..., ya, xa], tb[..., yb, xb])
        assert ta[np.arange(len(pa)), :, pa[:, 1].astype(int), pa[:, 0].astype(int)].any(axis=1).all()
        # images: A's overlap region equals B's, as read from the corpus
        ia, ib = s["image"].numpy(), s["image_b"].numpy()
        np.testing.assert_array_equal(ia[:, ya, xa], ib[:, yb, xb])
        assert ia[0].std() > 0 and not np.array_equal(ia, ib)
    assert len(seen) >= 2
    batch = collate([ds[(0, 0)], ds[(1, 0)]])
    assert batch["image_b"].shape == (2, 3, 128, 128) and batch["shift"].shape == (2, 2)
    assert batch["targets_b"].shape == batch["targets"].shape
    with pytest.raises(ValueError, match="pair_shift"):
        PromptDataset(corpus, img_size=256, points_per_image=2, pair_shift=300)
