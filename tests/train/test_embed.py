"""Embedding cache: Dask-written Zarr, identity checks, decoder-only training from it."""

import numpy as np
import pytest
import torch

from mitoscale.config import load_config
from mitoscale.errors import InputError, ModelError
from mitoscale.train.config import TrainConfig


@pytest.mark.slow
def test_embed_cache_roundtrip_and_training(tmp_path, tiny_corpus, make_config, local_client):
    from mitoscale.model import build_sam, get_spec
    from mitoscale.train.corpus import open_corpus
    from mitoscale.train.embed import encode_images, open_cache, write_embeddings
    from mitoscale.train.loop import run_training

    cfg_path = make_config(tiny_corpus, steps=2, val_every=2, **{"model.freeze": ["image_encoder"]})
    cfg = load_config(cfg_path, TrainConfig)
    cache = write_embeddings(cfg, tmp_path / "cache.zarr", client=local_client, dtype="float32")

    torch.manual_seed(cfg.seed)
    sam = build_sam("micro")
    corpus = open_corpus(tiny_corpus)
    sam_spec = get_spec("micro")
    arr = open_cache(cache, sam, sam_spec, corpus)
    assert arr.shape == (6, 16, 256, 16, 16)  # 16 tiles of 128 px per 512 px image
    direct = encode_images(sam.eval(), sam_spec, np.asarray(corpus.images[4:5]))
    np.testing.assert_allclose(arr[4:5], direct, rtol=1e-4, atol=1e-4)

    # decoder-only training reads the cache
    out = run_training(load_config(cfg_path, TrainConfig, overrides=[f"data.embedding_cache={cache}"]),
                       tmp_path / "run")
    assert out["step"] == 2 and out["val"]["n_gt"] > 0

    # another encoder (other seed) -> stale cache refused
    torch.manual_seed(123)
    with pytest.raises(ModelError, match="stale embedding cache"):
        open_cache(cache, build_sam("micro"), sam_spec, corpus)
    with pytest.raises(ModelError, match="stale embedding cache"):
        run_training(load_config(cfg_path, TrainConfig,
                                 overrides=[f"data.embedding_cache={cache}", "seed=5"]), tmp_path / "r2")
    # changed corpus images -> refused
    import shutil
    import zarr

    moved = tmp_path / "corpus_copy.zarr"
    shutil.copytree(tiny_corpus, moved)
    zarr.open_group(str(moved), mode="r+")["images"][0, 0, 0] += 1
    with pytest.raises(InputError, match="corpus images differ"):
        open_cache(cache, sam, sam_spec, open_corpus(moved))
    with pytest.raises(InputError, match="not found"):
        open_cache(tmp_path / "none.zarr", sam, sam_spec, corpus)
