"""Embedding cache for decoder-only training (``mitoscale train embed``).

With the image encoder frozen, every epoch would recompute the same image
embeddings, and the encoder is by far the most expensive part of a step (a
ViT-B forward pass takes seconds per tile on a CPU).  This module encodes
every fixed tile of every corpus image once, in a Dask graph (one task per
corpus chunk, chunk-aligned reads and writes), into a Zarr v3 store::

    cache.zarr/
      zarr.json        attrs["mitoscale"]: format, model {spec, fingerprint},
                       input {corpus, n_images, checksum, chunk_checksums},
                       tiles (origins), img_size, complete
      embeddings       (N, T, C, E, E) float16/float32, one chunk per corpus chunk
      .markers/        one marker per finished chunk (reruns resume)

Training with ``data.embedding_cache`` refuses a cache whose model
fingerprint (spec + SHA-256 of every image-encoder tensor) or input checksum
(SHA-256 of the corpus images, chunk by chunk) differs from the run's.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mitoscale.errors import InputError, ModelError, OutputError
from mitoscale.io.atomic import MarkerSet, check_writable
from mitoscale.model import normalize_intensity, to_sam_input
from mitoscale.model.spec import ModelSpec
from mitoscale.train.corpus import Corpus, open_corpus
from mitoscale.train.dataset import tile_origins

__all__ = ["FORMAT", "encoder_fingerprint", "chunk_checksum", "corpus_checksum",
           "encode_images", "write_embeddings", "open_cache"]

FORMAT = "mitoscale-embeddings/1"


def encoder_fingerprint(sam, spec: ModelSpec) -> str:
    """SHA-256 of the architecture and every image-encoder tensor (names, shapes, values)."""
    h = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode())
    for name, t in sorted(sam.image_encoder.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def chunk_checksum(images: np.ndarray) -> str:
    """SHA-256 of a block of images (shape, dtype and bytes)."""
    images = np.ascontiguousarray(images)
    h = hashlib.sha256(f"{images.shape}:{images.dtype}".encode())
    h.update(images.tobytes())
    return h.hexdigest()


def _combine(checksums: list[str]) -> str:
    return hashlib.sha256("".join(checksums).encode()).hexdigest()


def corpus_checksum(corpus: Corpus) -> tuple[str, list[str]]:
    """Checksum of all corpus images, and the per-chunk checksums it combines."""
    b, n = corpus.chunk_len, corpus.n_images
    parts = [chunk_checksum(np.asarray(corpus.images[lo:min(lo + b, n)])) for lo in range(0, n, b)]
    return _combine(parts), parts


@torch.no_grad()
def encode_images(sam, spec: ModelSpec, images: np.ndarray, batch: int = 4) -> np.ndarray:
    """Embeddings of every fixed tile of each image.

    Parameters
    ----------
    sam : Sam
    spec : ModelSpec
    images : (n, H, W) array
        Raw corpus images (normalised here, once per whole image, exactly as
        the training dataset does).
    batch : int
        Tiles per encoder call.

    Returns
    -------
    (n, T, C, E, E) float32 array, T = number of :func:`tile_origins`.
    """
    n, h, w = images.shape
    s = spec.img_size
    origins = tile_origins(h, w, s)
    inputs = []
    for img in images:
        norm = normalize_intensity(img)
        inputs += [to_sam_input(norm[y:y + s, x:x + s], s) for (y, x) in origins]
    x = torch.stack(inputs)
    out = torch.cat([sam.image_encoder(x[i:i + batch]) for i in range(0, len(x), batch)])
    return out.reshape(n, len(origins), *out.shape[1:]).numpy()


def _model_for(cfg_data: dict):
    from mitoscale.train.config import TrainConfig
    from mitoscale.train.loop import _initial_model

    sam, spec = _initial_model(TrainConfig.model_validate(cfg_data))
    return sam.eval(), spec


def _embed_chunk(out: str, cfg_data: dict, fingerprint: str, k: int, lo: int, hi: int,
                 threads: int) -> dict:
    """Encode corpus images ``lo:hi`` (chunk ``k``) and write them (runs on a Dask worker)."""
    import zarr

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    sam, spec = _model_for(cfg_data)
    if encoder_fingerprint(sam, spec) != fingerprint:
        raise ModelError("the image encoder rebuilt on a worker differs from the submitting process's")
    corpus = open_corpus(cfg_data["data"]["corpus"])
    images = np.asarray(corpus.images[lo:hi])
    checksum = chunk_checksum(images)
    root = zarr.open_group(out, mode="r+")
    arr = root["embeddings"]
    root["embeddings"][lo:hi] = encode_images(sam, spec, images).astype(arr.dtype)
    info = {"images": [lo, hi], "checksum": checksum, "seconds": round(time.perf_counter() - t0, 3)}
    MarkerSet(Path(out) / ".markers").mark(k, info)
    return info


def write_embeddings(cfg, out: str | Path, client: Any = None, dtype: str = "float16",
                     threads: int = 1) -> Path:
    """Encode a corpus with the config's image encoder into an embedding cache.

    Parameters
    ----------
    cfg : TrainConfig
        ``model`` (variant, checkpoint) and ``data.corpus`` are used.
    out : path
        Zarr store to create (or resume, if it was started for the same model
        and corpus).
    client : distributed.Client, optional
        Run one task per corpus chunk on this cluster; ``None`` runs in-process.
    dtype : {"float16", "float32"}
    threads : int
        Torch threads per task on a cluster (Dask workers are single-threaded).

    Returns
    -------
    Path of the store.
    """
    import zarr

    from mitoscale.config import dump_config

    if isinstance(cfg.data.corpus, list):
        raise InputError("mitoscale train embed caches one corpus: data.corpus must be a path, not a list")
    corpus = open_corpus(cfg.data.corpus)
    cfg_data = dump_config(cfg)
    cfg_data["data"]["corpus"] = str(Path(cfg.data.corpus).absolute())
    sam, spec = _model_for(cfg_data)
    fingerprint = encoder_fingerprint(sam, spec)
    h, w = corpus.image_shape
    origins = tile_origins(h, w, spec.img_size)
    e = spec.embedding_size
    shape = (corpus.n_images, len(origins), spec.prompt_embed_dim, e, e)
    b = corpus.chunk_len
    out = Path(out).absolute()
    ident = {"format": FORMAT, "model": {"spec": spec.to_dict(), "fingerprint": fingerprint},
             "corpus": str(Path(cfg.data.corpus).absolute()), "n_images": corpus.n_images,
             "tiles": [list(o) for o in origins], "img_size": spec.img_size, "dtype": dtype}
    if (out / "zarr.json").exists():
        old = dict(zarr.open_group(str(out), mode="r").attrs.get("mitoscale", {}))
        if any(old.get(k) != ident[k] for k in ("format", "model", "n_images", "tiles", "dtype")):
            raise OutputError(f"{out} holds embeddings of another model or corpus; choose a new --out")
        root = zarr.open_group(str(out), mode="r+")
    else:
        check_writable(out)
        root = zarr.open_group(str(out), mode="w", zarr_format=3)
        root.create_array("embeddings", shape=shape, chunks=(b,) + shape[1:], dtype=dtype,
                          fill_value=0, dimension_names=["image", "tile", "channel", "y", "x"])
        root.attrs["mitoscale"] = {**ident, "complete": False}
    markers = MarkerSet(out / ".markers")
    todo = [(k, lo, min(lo + b, corpus.n_images)) for k, lo in enumerate(range(0, corpus.n_images, b))
            if not markers.done(k)]
    if client is None:
        for k, lo, hi in todo:
            _embed_chunk(str(out), cfg_data, fingerprint, k, lo, hi, 0)
    else:
        from mitoscale.cluster import run_futures

        futures = [client.submit(_embed_chunk, str(out), cfg_data, fingerprint, k, lo, hi, threads,
                                 key=f"embed-chunk-{k:05d}-{fingerprint[:8]}", pure=False)
                   for k, lo, hi in todo]
        run_futures(client, futures, desc="embed", unit="chunk")
    n_chunks = -(-corpus.n_images // b)
    parts = [markers.info(k)["checksum"] for k in range(n_chunks)]
    root.attrs["mitoscale"] = {**ident, "input": {"checksum": _combine(parts), "chunk_checksums": parts},
                               "complete": True}
    return out


def open_cache(path: str | Path, sam, spec: ModelSpec, corpus: Corpus):
    """Open an embedding cache for training, refusing a stale or foreign one.

    Returns
    -------
    zarr.Array (N, T, C, E, E)

    Raises
    ------
    InputError
        Missing or incomplete cache, or a corpus whose images changed.
    ModelError
        The cache was made by another image encoder (architecture or weights).
    """
    import zarr

    path = Path(path)
    if not (path / "zarr.json").exists():
        raise InputError(f"embedding cache not found: {path} (create it with `mitoscale train embed`)")
    root = zarr.open_group(str(path), mode="r")
    attrs = dict(root.attrs.get("mitoscale", {}))
    if attrs.get("format") != FORMAT or not attrs.get("complete"):
        raise InputError(f"{path}: not a complete embedding cache; rerun `mitoscale train embed`")
    if attrs["model"]["fingerprint"] != encoder_fingerprint(sam, spec):
        raise ModelError(f"{path}: stale embedding cache: it was made by another image encoder "
                         f"({attrs['model']['spec']['name']}); rerun `mitoscale train embed`")
    if attrs["n_images"] != corpus.n_images or attrs["input"]["checksum"] != corpus_checksum(corpus)[0]:
        raise InputError(f"{path}: stale embedding cache: the corpus images differ from those it "
                         "was made from; rerun `mitoscale train embed`")
    h, w = corpus.image_shape
    if attrs["tiles"] != [list(o) for o in tile_origins(h, w, spec.img_size)]:
        raise InputError(f"{path}: embedding cache tiles do not match the model input size")
    return root["embeddings"]
