"""Write the synthetic corpus (``corpus.zarr``, Zarr v3) with Dask.

Layout (see ``docs/DESIGN.md``)::

    corpus.zarr/
      zarr.json                 attrs["mitoscale"]: format, version, seed, n_images,
                                pixel_size_um, config, config_hash, images_per_chunk
      images        (N, H, W)    uint16 photons, chunks (B, H, W)
      labels        (N, L, H, W) uint16 layered labels, chunks (B, 1, H, W)
      n_instances   (N,)         int32
      sbr           (N,)         float32, the drawn signal-to-background ratio
      background    (N,)         float32, expected background photons per pixel
      instances/part-XXXXX.parquet   instance table of chunk XXXXX
      .markers/XXXXXXXX.done     chunk XXXXX is complete

One Dask task simulates and writes one chunk of ``B`` images, writes its
Parquet part, and only then its marker.  Reruns skip chunks with a marker,
so an interrupted job resumes where it stopped, and a chunk is never
written twice into the table (each part has a fixed name and is replaced
atomically).  Image ``i`` depends only on ``(seed, i)``, so the result is
bit-identical whatever the number of workers.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from mitoscale import __version__
from mitoscale.cluster.worker import tune_malloc
from mitoscale.config import config_hash, dump_config
from mitoscale.errors import InputError, OutputError
from mitoscale.io.atomic import MarkerSet, check_writable
from mitoscale.simulate.config import SimulateConfig

__all__ = ["FORMAT", "prepare_store", "write_corpus", "read_instances", "open_corpus", "chunk_ranges"]

FORMAT = "mitoscale-corpus/1"


def chunk_ranges(n_images: int, chunk: int) -> list[tuple[int, int]]:
    """Half-open image ranges of each chunk."""
    return [(i, min(i + chunk, n_images)) for i in range(0, n_images, chunk)]


def _identity(cfg: SimulateConfig, seed: int, n_images: int, chunk: int) -> dict[str, Any]:
    c = cfg.corpus
    return {
        "format": FORMAT,
        "version": __version__,
        "seed": int(seed),
        "n_images": int(n_images),
        "pixel_size_um": c.pixel_size_nm / 1000.0,
        "image_shape": [c.image_px, c.image_px],
        "images_per_chunk": int(chunk),
        "config": dump_config(cfg),
        "config_hash": config_hash(cfg),
    }


def prepare_store(out: str | Path, cfg: SimulateConfig, seed: int, n_images: int,
                  chunk_images: int | None = None) -> Path:
    """Create the corpus store, or check that an existing one matches these settings.

    Raises
    ------
    InputError
        For ``n_images <= 0`` or a non-positive chunk size.
    OutputError
        For an unwritable path, a path that is not a corpus, or a corpus
        written with another config, seed, size or chunking.
    """
    import zarr

    if int(n_images) <= 0:
        raise InputError(f"--n-images must be positive, got {n_images}")
    chunk = int(cfg.corpus.images_per_chunk if chunk_images is None else chunk_images)
    if chunk <= 0:
        raise InputError(f"images per chunk must be positive, got {chunk}")
    out = Path(out).absolute()
    ident = _identity(cfg, seed, int(n_images), chunk)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):  # an empty directory is fine
        try:
            root, attrs = open_corpus(out, mode="r+")
        except InputError:
            raise OutputError(f"{out} exists and is not a mitoscale corpus; choose a new --out") from None
        for key, what in (("config_hash", "config"), ("seed", "seed"), ("n_images", "number of images"),
                          ("images_per_chunk", "chunking")):
            if attrs.get(key) != ident[key]:
                raise OutputError(
                    f"{out} was written with a different {what} ({attrs.get(key)} vs {ident[key]}); "
                    "use the same settings to resume, or a new --out")
    else:
        check_writable(out)
        # the identity goes in first, so an interrupted creation is resumable
        root = zarr.open_group(str(out), mode="w", zarr_format=3, attributes={"mitoscale": ident})
    _ensure_arrays(root, cfg, int(n_images), chunk)
    (out / "instances").mkdir(exist_ok=True)
    return out


def _ensure_arrays(root, cfg: SimulateConfig, n_images: int, chunk: int) -> None:
    """Create whichever corpus arrays are missing."""
    from zarr.codecs import BloscCodec, BloscShuffle

    h = w = cfg.corpus.image_px
    layers = cfg.corpus.max_label_layers
    # zstd level 1 on byte-shuffled uint16: better ratio than bit-shuffle + level 3 here, 2x faster
    compressors = [BloscCodec(cname="zstd", clevel=1, shuffle=BloscShuffle.shuffle)]
    specs = {
        "images": dict(shape=(n_images, h, w), chunks=(chunk, h, w), dtype="uint16",
                       compressors=compressors, dimension_names=["image", "y", "x"]),
        "labels": dict(shape=(n_images, layers, h, w), chunks=(chunk, 1, h, w), dtype="uint16",
                       compressors=compressors, dimension_names=["image", "layer", "y", "x"]),
        "n_instances": dict(shape=(n_images,), chunks=(chunk,), dtype="int32", dimension_names=["image"]),
        "sbr": dict(shape=(n_images,), chunks=(chunk,), dtype="float32", dimension_names=["image"]),
        "background": dict(shape=(n_images,), chunks=(chunk,), dtype="float32", dimension_names=["image"]),
    }
    for name, spec in specs.items():
        if name not in root:  # a member lookup: no listing of the non-Zarr folders
            root.create_array(name, fill_value=0, **spec)


def open_corpus(path: str | Path, mode: str = "r"):
    """Open a corpus (read-only by default); returns ``(zarr.Group, attrs dict)``.

    Raises
    ------
    InputError
        If ``path`` is not a mitoscale corpus.
    """
    import zarr

    path = Path(path)
    try:
        root = zarr.open_group(str(path), mode=mode)
    except Exception as exc:  # zarr raises several types for a missing/invalid store
        raise InputError(f"{path}: not a Zarr store ({exc.__class__.__name__})") from None
    attrs = root.attrs.get("mitoscale")
    if not isinstance(attrs, dict) or attrs.get("format") != FORMAT:
        raise InputError(f"{path}: not a mitoscale corpus (missing attrs 'mitoscale')")
    return root, dict(attrs)


def _write_chunk(out: str, cfg_data: dict, seed: int, k: int, start: int, stop: int) -> dict:
    """Simulate images ``start:stop`` and write them as chunk ``k`` (runs on a worker)."""
    import zarr
    import pandas as pd

    from mitoscale.io.tables import write_table
    from mitoscale.simulate.render import image_id, simulate_image

    tune_malloc()
    t0 = time.perf_counter()
    cfg = SimulateConfig.model_validate(cfg_data)
    sims = [simulate_image(cfg, seed, i) for i in range(start, stop)]
    t1 = time.perf_counter()
    root = zarr.open_group(out, mode="r+")
    # every chunk written here holds data (an image, or a layer some image of the chunk uses):
    # skip Zarr's all-fill-value test, which compares through an int64 copy (~10 ms a chunk)
    images, labels = (root[k].with_config({"write_empty_chunks": True}) for k in ("images", "labels"))
    n_layers = max(s.labels.shape[0] for s in sims)
    h, w = sims[0].image.shape
    images[start:stop] = np.stack([s.image for s in sims])
    # one label layer (one Zarr chunk) at a time: a (B, H, W) buffer stays in the heap that
    # tune_malloc keeps, where the whole (B, L, H, W) stack was mmapped and page-faulted anew
    # per chunk (half the write time); layers no image of the chunk uses stay at the fill value
    layer = np.empty((len(sims), h, w), dtype=np.uint16)
    for li in range(n_layers):
        for j, s in enumerate(sims):
            if li < s.labels.shape[0]:
                layer[j] = s.labels[li]
            else:
                layer[j] = 0
        labels[start:stop, li] = layer
    root["n_instances"][start:stop] = np.array([len(s.table) for s in sims], dtype=np.int32)
    root["sbr"][start:stop] = np.array([s.sbr for s in sims], dtype=np.float32)
    root["background"][start:stop] = np.array([s.background for s in sims], dtype=np.float32)
    table = pd.concat([s.table for s in sims], ignore_index=True)
    # record every image of the chunk, also one without instances (see io.tables.read_locations)
    locations = [dict(image_id=image_id(i), well="", field=0, t=0, z=-1) for i in range(start, stop)]
    write_table(table, Path(out) / "instances" / f"part-{k:05d}.parquet", locations=locations)
    t2 = time.perf_counter()
    info = {"images": [start, stop], "instances": int(len(table)),
            "simulate_s": round(t1 - t0, 3), "write_s": round(t2 - t1, 3)}
    MarkerSet(Path(out) / ".markers").mark(k, info)
    return info


def write_corpus(
    cfg: SimulateConfig,
    out: str | Path,
    n_images: int,
    *,
    seed: int = 0,
    client: Any = None,
    chunk_images: int | None = None,
) -> dict[str, Any]:
    """Simulate ``n_images`` images and write them to a Zarr v3 corpus.

    Parameters
    ----------
    cfg : SimulateConfig
    out : path
        The ``corpus.zarr`` directory (created, or resumed if it exists with
        the same config, seed, size and chunking).
    n_images : int
    seed : int
    client : distributed.Client, optional
        Runs the chunks on this client's cluster; ``None`` runs them in this
        process (small corpora, tests).
    chunk_images : int, optional
        Images per chunk and task (default ``cfg.corpus.images_per_chunk``).

    Returns
    -------
    dict
        ``chunks`` (total), ``computed`` (chunks written this run),
        ``skipped`` (chunks already done), ``images`` and ``instances``
        (written this run), ``seconds``.

    Raises
    ------
    InputError
        For ``n_images <= 0``.
    OutputError
        For an unwritable path or a store written with other settings.
    """
    out = prepare_store(out, cfg, seed, n_images, chunk_images)
    chunk = int(cfg.corpus.images_per_chunk if chunk_images is None else chunk_images)
    markers = MarkerSet(out / ".markers")
    ranges = chunk_ranges(int(n_images), chunk)
    todo = [(k, a, b) for k, (a, b) in enumerate(ranges) if not markers.done(k)]
    cfg_data = dump_config(cfg)
    t0 = time.perf_counter()
    if client is None:
        infos = [_write_chunk(str(out), cfg_data, seed, k, a, b) for k, a, b in todo]
    else:
        from mitoscale.cluster import run_futures

        run = uuid.uuid4().hex[:8]
        futures = [client.submit(_write_chunk, str(out), cfg_data, seed, k, a, b,
                                 key=f"simulate-chunk-{k:05d}-{run}", retries=1)
                   for k, a, b in todo]
        infos = run_futures(client, futures, desc="simulate", unit="chunk")
    markers.remove_stale_writes()  # every chunk is done: a killed worker's half-written marker goes
    return {
        "chunks": len(ranges),
        "computed": len(todo),
        "skipped": len(ranges) - len(todo),
        "images": int(sum(b - a for _, a, b in todo)),
        "instances": int(sum(i["instances"] for i in infos)),
        "seconds": time.perf_counter() - t0,
    }


def read_instances(corpus_path: str | Path, index: int) -> list[np.ndarray]:
    """Every instance mask of image ``index``, exactly, overlaps included.

    Returns
    -------
    list of (H, W) bool arrays
        Ordered by instance id (1..n).
    """
    root, attrs = open_corpus(corpus_path)
    n_total = attrs["n_images"]
    if not 0 <= int(index) < n_total:
        raise InputError(f"image index {index} out of range 0..{n_total - 1}")
    n = int(root["n_instances"][index])
    labels = np.asarray(root["labels"][index])
    masks: list[np.ndarray | None] = [None] * n
    for layer in labels:
        for i in np.unique(layer):
            if i:
                masks[int(i) - 1] = layer == i
    if any(m is None for m in masks):
        raise InputError(f"{corpus_path}: image {index} is incomplete (was its chunk written?)")
    return masks
