"""A list of corpora trains as one mixture: reads match the parts, bad mixes are refused."""

import json

import numpy as np
import pytest

from mitoscale.config import load_config
from mitoscale.errors import InputError
from mitoscale.train.config import TrainConfig
from mitoscale.train.corpus import open_corpora, open_corpus, split_indices
from mitoscale.train.loop import run_training


def _corpus(path, n, seed, **corpus_kw):
    from mitoscale.simulate import load_simulate_config, write_corpus

    cfg = load_simulate_config(None)
    cfg = cfg.model_copy(update={"corpus": cfg.corpus.model_copy(update=corpus_kw)})
    write_corpus(cfg, path, n, seed=seed, chunk_images=2)
    return path


@pytest.fixture(scope="module")
def second_corpus(tmp_path_factory):
    """3 images with 4 label layers (the tiny corpus has 8), so the mixture must pad."""
    return _corpus(tmp_path_factory.mktemp("mix") / "b.zarr", 3, seed=5, max_label_layers=4)


def test_stacked_reads_equal_the_parts(tiny_corpus, second_corpus):
    a, b = open_corpus(tiny_corpus), open_corpus(second_corpus)
    mix = open_corpora([str(tiny_corpus), str(second_corpus)])
    assert mix.n_images == a.n_images + b.n_images == mix.attrs["n_images"]
    assert [p["n_images"] for p in mix.attrs["parts"]] == [a.n_images, b.n_images]
    assert mix.labels.shape[1] == max(a.labels.shape[1], b.labels.shape[1]) == 8
    n_a = a.n_images
    np.testing.assert_array_equal(mix.images[n_a], np.asarray(b.images[0]))
    np.testing.assert_array_equal(mix.images[-1], np.asarray(b.images[-1]))
    # a slice across the boundary, labels padded with empty layers
    lab = mix.labels[n_a - 1:n_a + 2]
    np.testing.assert_array_equal(lab[0], np.asarray(a.labels[n_a - 1]))
    np.testing.assert_array_equal(lab[1:, :4], np.asarray(b.labels[0:2]))
    assert not lab[1:, 4:].any()
    # validation (the tail) comes from the last part
    _, val = split_indices(mix.n_images, 0.3)
    assert val.min() >= n_a
    with pytest.raises(IndexError):
        mix.images[mix.n_images]
    # a single path (or a one-item list) is the plain corpus
    assert open_corpora(str(tiny_corpus)).images.shape == a.images.shape
    assert open_corpora([str(tiny_corpus)]).images.shape == a.images.shape


def test_mixture_trains_and_records_its_parts(tmp_path, tiny_corpus, second_corpus, make_config):
    cfg = load_config(make_config(tiny_corpus, steps=2, val_every=2,
                                  **{"data.corpus": [str(tiny_corpus), str(second_corpus)],
                                     "data.val_fraction": 0.3}), TrainConfig)
    out = run_training(cfg, tmp_path / "run")
    assert out["step"] == 2 and out["val"]["n_gt"] > 0
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    parts = meta["meta"]["corpus"]["parts"]
    assert [p["path"] for p in parts] == [str(tiny_corpus), str(second_corpus)]


def test_bad_mixtures_are_refused(tmp_path, tiny_corpus, make_config):
    small = _corpus(tmp_path / "small.zarr", 2, seed=9, crops_per_side=2)
    with pytest.raises(InputError, match="cannot be mixed"):
        open_corpora([str(tiny_corpus), str(small)])
    with pytest.raises(InputError, match="empty list"):
        open_corpora([])
    with pytest.raises(InputError, match="not found"):
        open_corpora([str(tiny_corpus), str(tmp_path / "missing.zarr")])
    with pytest.raises(Exception, match="single data.corpus"):
        load_config(make_config(tiny_corpus, **{"data.corpus": [str(tiny_corpus), str(small)],
                                                "data.embedding_cache": "c.zarr", "model.freeze": ["image_encoder"]}),
                    TrainConfig)
