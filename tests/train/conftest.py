"""Tiny real corpora (written by the real simulator) and a tiny training config."""

from __future__ import annotations

import pytest
import yaml

N_IMAGES = 6


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory):
    """A 6-image corpus.zarr from ``mitoscale.simulate.write_corpus`` (2 images per chunk)."""
    from mitoscale.simulate import load_simulate_config, write_corpus

    path = tmp_path_factory.mktemp("corpus") / "corpus.zarr"
    write_corpus(load_simulate_config(None), path, N_IMAGES, seed=3, chunk_images=2)
    return path


def write_config(path, corpus, **overrides) -> str:
    """A micro-model training YAML for ``corpus`` with dotted-key overrides."""
    cfg = {
        "seed": 0,
        "model": {"variant": "micro"},
        "data": {"corpus": str(corpus), "val_fraction": 0.2, "val_max_images": 1,
                 "points_per_image": 4},
        "steps": 4, "batch_size": 2, "log_every": 1, "checkpoint_every": 2, "val_every": 100,
        "threads": 1, "tensorboard": False,
        "optim": {"lr": 1e-3, "warmup_steps": 1},
    }
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture
def make_config(tmp_path):
    """``make_config(corpus, **dotted_overrides) -> path`` of a micro training YAML."""
    counter = iter(range(1000))

    def make(corpus, **overrides):
        return write_config(tmp_path / f"train-{next(counter)}.yaml", corpus, **overrides)

    return make
