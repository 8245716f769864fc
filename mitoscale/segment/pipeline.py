"""Distributed segmentation of whole inputs: one Dask graph over frames x tiles.

:func:`run_segmentation` is the Python API behind ``mitoscale segment`` (and
``mitoscale run``).  For every 2D frame (per image, well, field, t and z) it
submits one *prepare* task (read, check, resample, threshold, prompts), one
task per tile (encode + decode) and one *finish* task (stitch, map back,
write).  The model is loaded once per worker by :class:`ModelPlugin`.

Output directory ``OUT``::

    OUT/                         a Zarr group (NGFF version of the input)
      labels/mitochondria/       label image for a single-image input, or
      A/1/0/labels/mitochondria  one per plate field (mirrors the input), or
      <stem>/labels/mitochondria one per TIFF/PNG file
      instances/<unit>.parquet   instance table part of each frame
      .markers/<unit>.done       written last: the frame is complete
      manifest.json              config, model checksum, versions, input, timing

A frame's part file and label plane are written atomically (part) and
idempotently (plane) before its marker, so a rerun skips finished frames and
a killed worker's frame is simply recomputed: no duplicated rows.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import mitoscale
from mitoscale.config import config_hash, dump_config
from mitoscale.errors import InputError, OutputError
from mitoscale.io.atomic import MarkerSet, atomic_write_json, check_writable
from mitoscale.io.images import Frame, ImageSource, iter_frames, open_image, require_pixel_size
from mitoscale.io.omezarr import create_label_image, label_axes, write_label_frame
from mitoscale.io.tables import write_table
from mitoscale.segment.config import SegmentConfig
from mitoscale.segment.frame import finish_frame, paint_labels, prepare_frame, run_tile
from mitoscale.segment.runtime import ModelPlugin, check_model, get_model, resolve_config, tune_malloc
from mitoscale.segment.tiling import resampled_shape, tile_grid

log = logging.getLogger(__name__)

__all__ = ["run_segmentation", "preflight", "check_paths", "FrameJob"]


@dataclass
class FrameJob:
    """Everything a worker needs for one frame (small and picklable)."""

    unit: str
    keys: dict
    data: Any  # lazy (Y, X) dask array
    pixel_size_um: float
    where: str
    label_path: str
    label_index: tuple[int, ...]
    n_tiles: int


def check_paths(input_path: Path, out: Path) -> None:
    """Refuse an output inside the input (or equal to it)."""
    inp, o = input_path.resolve(), out.resolve()
    if o == inp or inp in o.parents:
        raise OutputError(f"output {out} is inside the input {input_path}; choose another --out")


def preflight(input: str | Path, out: str | Path, model: str | Path | None = None,
              cfg: SegmentConfig | None = None):
    """Every check that needs no pixels: paths, model vs config, input metadata, pixel size.

    Returns
    -------
    cfg, sources, spec, meta, model_path
        ``cfg`` with model-dependent defaults resolved.
    """
    cfg = cfg or SegmentConfig()
    input_path, out = Path(input), Path(out)
    check_paths(input_path, out)
    model_path = model if model is not None else cfg.model.path
    _, spec, meta = get_model(model_path, cfg.model.variant, "cpu")
    check_model(spec, meta, cfg)
    cfg = resolve_config(cfg, spec)
    sources = open_image(input_path, cfg.input.pixel_size_um)
    require_pixel_size(sources)
    check_writable(out)
    return cfg, sources, spec, meta, model_path


def _read_frame(job: FrameJob) -> np.ndarray:
    try:
        return np.asarray(job.data.compute(scheduler="sync"))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - zarr/codec errors of corrupt chunks
        raise InputError(f"{job.where}: cannot read pixels ({exc.__class__.__name__}: {exc})") from None


def _prepare_task(job: FrameJob, cfg: SegmentConfig):
    image = _read_frame(job)
    return prepare_frame(image, job.pixel_size_um, cfg, where=job.where), image


def _tile_task(prepared, tile_index: int, model_path, variant, cfg: SegmentConfig):
    tune_malloc()  # also where the plugin did not run (e.g. a worker that never called setup)
    model, spec, _ = get_model(model_path, variant, cfg.model.device)
    prep, _ = prepared
    return run_tile(prep, tile_index, model, spec, cfg)


def _finish_task(prepared, tile_results, job: FrameJob, out: str, cfg: SegmentConfig) -> dict:
    t0 = time.perf_counter()
    prep, image = prepared
    cands, stats = [], {}
    for c, s in tile_results:
        cands.extend(c)
        for k, v in s.as_dict().items():
            stats[k] = stats.get(k, 0) + v
    df = finish_frame(prep, cands, image, job.keys, cfg)
    out = Path(out)
    write_table(df, out / "instances" / f"{job.unit}.parquet", locations=[job.keys])  # even with no rows
    write_label_frame(out, job.label_path, job.label_index, paint_labels(df, prep.input_shape))
    stats.update(instances=len(df), tiles=len(prep.tiles), prepare_s=prep.prepare_s,
                 finish_s=time.perf_counter() - t0)
    MarkerSet(out / ".markers").mark(job.unit, stats)
    return stats


def _jobs(sources: list[ImageSource], cfg: SegmentConfig, out: Path, ngff: str | None) -> list[FrameJob]:
    jobs = []
    for src in sources:
        lpath = create_label_image(out, src, z_mode=cfg.input.z_mode, name=cfg.output.labels_name,
                                   version=ngff)
        laxes = label_axes(src, cfg.input.z_mode)
        shape80 = resampled_shape((src.size("y"), src.size("x")), src.pixel_size_um, cfg.model.pixel_size_um)
        n_tiles = len(tile_grid(shape80, cfg.model.tile_size, cfg.model.halo,
                                  cfg.model.tile_align or 1))
        for fr in iter_frames(src, cfg.input.channel, cfg.input.z_mode):
            index = tuple(v for a, v in (("t", fr.t), ("z", fr.z)) if a in laxes)
            where = f"{src.path} (t={fr.t}, z={fr.z})"
            jobs.append(FrameJob(fr.unit, fr.keys, fr.data, float(src.pixel_size_um), where,
                                 lpath, index, n_tiles))
    return jobs


def _validate_frames(jobs: list[FrameJob], client) -> None:
    """Read every pending frame once: corrupt chunks, NaNs and constant frames fail here,
    before anything is marked complete."""
    import dask
    import dask.array as da

    checks = [(da.isfinite(j.data).all() if np.issubdtype(j.data.dtype, np.floating) else True,
               j.data.min(), j.data.max()) for j in jobs]
    try:
        if client is not None:
            results = client.gather(client.compute(checks))
        else:
            results = dask.compute(*checks, scheduler="threads")
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt chunk, unreadable file
        raise InputError(f"cannot read the input pixels ({exc.__class__.__name__}: {exc})") from None
    for j, (finite, lo, hi) in zip(jobs, results):
        if not finite:
            raise InputError(f"{j.where}: frame contains NaN or infinite values")
        if lo == hi:
            raise InputError(f"{j.where}: frame is constant (every pixel = {lo}); nothing to segment")


def _input_identity(path: Path) -> dict:
    """Path, size and a SHA-256 over the metadata files (fast identity, not a pixel hash)."""
    h = hashlib.sha256()
    total = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        st = p.stat()
        total += st.st_size
        rel = str(p.relative_to(path)) if path.is_dir() else p.name
        h.update(f"{rel}:{st.st_size}\n".encode())
        if p.name in ("zarr.json", ".zattrs", ".zarray", ".zgroup") or p.suffix in (".tif", ".tiff", ".png"):
            h.update(p.read_bytes() if p.stat().st_size < (64 << 20) else b"")
    return {"path": str(path.resolve()), "files": len(files), "bytes": total, "sha256": h.hexdigest()}


def _versions() -> dict:
    import dask
    import torch
    import zarr

    return {"mitoscale": mitoscale.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "dask": dask.__version__, "zarr": zarr.__version__,
            "numpy": np.__version__}


def run_segmentation(input: str | Path, out: str | Path, model: str | Path | None = None,
                     cfg: SegmentConfig | None = None, client=None, overwrite: bool = False,
                     progress: bool = True) -> dict:
    """Segment every frame of an input into ``out`` (instance table, labels, manifest).

    Parameters
    ----------
    input : path
        OME-Zarr image or plate, TIFF/PNG file or folder.
    out : path
        Output directory (must not lie inside the input).
    model : path, optional
        Checkpoint; defaults to ``cfg.model.path``, then the shipped model.
    cfg : SegmentConfig, optional
    client : distributed.Client, optional
        Run on this cluster; ``None`` runs in-process (no Dask cluster).
    overwrite : bool
        Discard a previous run in ``out`` made with another config or model.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        The run manifest (also written to ``out/manifest.json``).

    Raises
    ------
    InputError, OutputError, ModelError
        With a one-line message; nothing is marked complete.
    """
    from mitoscale.model.checkpoint import default_model_path, file_sha256

    t_start = time.time()
    input_path, out = Path(input), Path(out)
    cfg, sources, spec, meta, model_path = preflight(input_path, out, model, cfg)
    model_file = Path(model_path) if model_path is not None else default_model_path()
    model_sha = file_sha256(model_file)
    markers = MarkerSet(out / ".markers")
    identity = {"config_hash": config_hash(cfg), "model_sha256": model_sha}
    man_path = out / "manifest.json"
    if man_path.exists():
        import json

        old = json.loads(man_path.read_text())
        if {k: old.get(k) for k in identity} != identity:
            if not overwrite:
                raise OutputError(f"{out} holds a run with another config or model; "
                                  "use a new --out or --overwrite")
            markers.clear()
            for p in (out / "instances").glob("*.parquet"):
                p.unlink()
    ngff = None if cfg.output.ngff_version == "auto" else cfg.output.ngff_version
    jobs = _jobs(sources, cfg, out, ngff)
    pending = [j for j in jobs if not markers.done(j.unit)]
    manifest = {
        "format": "mitoscale-segment/1", **identity, "model_path": str(model_file.resolve()),
        "model_spec": spec.name, "model_meta": meta, "config": dump_config(cfg),
        "input": _input_identity(input_path), "versions": _versions(),
        "frames": len(jobs), "frames_skipped": len(jobs) - len(pending), "status": "running",
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t_start)),
    }
    atomic_write_json(man_path, manifest)
    if pending:
        _validate_frames(pending, client)
    t_work = time.time()
    if client is None:
        results = _run_local(pending, str(out), model_path, cfg, progress)
    else:
        results = _run_dask(client, pending, str(out), model_path, cfg, progress)
    markers.remove_stale_writes()  # every frame is done: a killed worker's half-written marker goes
    totals: dict[str, float] = {}
    for r in results:
        for k, v in r.items():
            totals[k] = totals.get(k, 0) + v
    n_inst = totals.get("instances", 0)
    manifest.update(
        status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        timing={"total_s": time.time() - t_start, "work_s": time.time() - t_work,
                **{k: totals[k] for k in ("prepare_s", "encoder_s", "decoder_s", "other_s", "finish_s")
                   if k in totals}},
        counts={k: int(totals.get(k, 0)) for k in ("prompts", "decoded", "accepted", "instances", "tiles")},
        decoder_prompts_per_instance=(totals.get("decoded", 0) / n_inst) if n_inst else None,
        instances="instances/",
        workers=(len(client.scheduler_info().get("workers", {})) if client is not None else 0),
        host=platform.node(), cpu_count=os.cpu_count(),
    )
    atomic_write_json(man_path, manifest)
    return manifest


def _run_local(jobs: list[FrameJob], out: str, model_path, cfg: SegmentConfig, progress: bool) -> list[dict]:
    from tqdm.auto import tqdm

    results = []
    disable = not progress or os.environ.get("MITOSCALE_NO_PROGRESS") == "1"
    for job in tqdm(jobs, desc="segment", unit="frame", disable=disable):
        prepared = _prepare_task(job, cfg)
        tiles = [_tile_task(prepared, i, model_path, cfg.model.variant, cfg) for i in range(job.n_tiles)]
        results.append(_finish_task(prepared, tiles, job, out, cfg))
    return results


def _run_dask(client, jobs: list[FrameJob], out: str, model_path, cfg: SegmentConfig,
              progress: bool) -> list[dict]:
    from mitoscale.cluster import run_futures

    mp = str(model_path) if model_path is not None else None
    run = hashlib.sha1(repr((out, config_hash(cfg), mp)).encode()).hexdigest()[:8]
    plugin = ModelPlugin(mp, cfg.model.variant, cfg.model.device)
    client.register_plugin(plugin, name=f"mitoscale-model-{hashlib.sha1(repr((mp, cfg.model.variant)).encode()).hexdigest()[:10]}")
    finals = []
    for job in jobs:
        prep = client.submit(_prepare_task, job, cfg, key=f"prepare-{run}-{job.unit}", retries=3)
        tiles = [client.submit(_tile_task, prep, i, mp, cfg.model.variant, cfg,
                               key=f"tile-{run}-{job.unit}-{i}", retries=3) for i in range(job.n_tiles)]
        finals.append(client.submit(_finish_task, prep, tiles, job, out, cfg,
                                    key=f"finish-{run}-{job.unit}", retries=3))
    if not progress:
        return client.gather(finals)
    return run_futures(client, finals, desc="segment", unit="frame")
