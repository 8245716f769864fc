"""Distributed segmentation of whole inputs: bounded, batched tasks over frames.

:func:`run_segmentation` is the Python API behind ``mitoscale segment`` (and
``mitoscale run``).  Every 2D frame (per image, well, field, t and z) is a
unit; frames of one well (or image) are grouped into tasks
(:mod:`mitoscale.io.batches`): a task reads, checks, prepares, runs every
tile, stitches and writes its frames.  At most a window of tasks (4 per
worker thread) is in flight, so a whole screen never becomes one graph.  When
there are too few frames to fill the workers (a few large images), each frame
is split into one *prepare* task, one task per tile and one *finish* task
instead.  The model is loaded once per worker by :class:`ModelPlugin`.

Output directory ``OUT``::

    OUT/                         a Zarr group (NGFF version of the input)
      labels/mitochondria/       label image for a single-image input, or
      A/1/0/labels/mitochondria  one per plate field (mirrors the input), or
      <stem>/labels/mitochondria one per TIFF/PNG file
      instances/image=<id>[/plate_well=<w>]/part-0.parquet
                                 instance table: one file per well or image, a row group per frame
      units.log                  completion log: a frame is logged once its rows and labels are written
      manifest.json              config, model checksum, versions, input, timing

A frame's label plane is written idempotently and its rows atomically to a
staged file before it is logged; a partition's staged files are merged into
its one file when its frames are resolved (:mod:`mitoscale.io.partitions`).
A rerun skips logged frames and a killed worker's task is simply
recomputed: no duplicated rows.
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
from mitoscale.io.atomic import check_writable
from mitoscale.io.batches import (Batch, auto_frames_per_task, execute_batches, make_batches, run_batch,
                                  submit_batch)
from mitoscale.io.images import (ImageSource, check_channel, check_pixel_sizes, iter_frames, open_image,
                                 require_pixel_size)
from mitoscale.io.omezarr import (check_labels_target, copy_plate_layout, create_frame_image,
                                  create_label_image, label_axes, publish_labels, remove_label_images,
                                  staging_name, write_label_frame)
from mitoscale.io.partitions import partition_of, stage_rows
from mitoscale.io.runfolder import (RunFolder, UnitFailure, check_output_location, disk_errors,
                                    guard_unit, input_identity, read_pixels)
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
    label_root: str | None = None  # the store holding label_path (default: the output)
    image_path: str | None = None  # the output's image of the segmented frames (None: labels in input)


def check_paths(input_path: Path, out: Path) -> None:
    """Refuse an output inside the input (or equal to it)."""
    check_output_location(input_path, out)


def preflight(input: str | Path, out: str | Path, model: str | Path | None = None,
              cfg: SegmentConfig | None = None, labels_into_input: bool = False):
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
    check_pixel_sizes(sources, cfg.model.pixel_size_um, cfg.input.max_resample)
    for src in sources:
        check_channel(src, cfg.input.channel)
    check_writable(out)
    if labels_into_input:
        check_labels_target(input_path, sources)
    return cfg, sources, spec, meta, model_path


def _prepare_task(job: FrameJob, cfg: SegmentConfig):
    def work():
        image = read_pixels(job.data, job.where)
        return prepare_frame(image, job.pixel_size_um, cfg, where=job.where), image

    return guard_unit(job.unit, work)


def _tile_task(prepared, tile_index: int, model_path, variant, cfg: SegmentConfig):
    if isinstance(prepared, UnitFailure):
        return prepared
    tune_malloc()  # also where the plugin did not run (e.g. a worker that never called setup)
    model, spec, _ = get_model(model_path, variant, cfg.model.device)
    prep, _ = prepared
    return run_tile(prep, tile_index, model, spec, cfg)


def _finish_task(prepared, tile_results, job: FrameJob, out: str, cfg: SegmentConfig, partition: str,
                 name: str) -> dict:
    """The last task of a frame split into tiles: stitch, write, stage; ``{unit: info}``."""
    if isinstance(prepared, UnitFailure):
        return {job.unit: prepared}
    res = guard_unit(job.unit, _finish, prepared, tile_results, job, out, cfg)
    if isinstance(res, UnitFailure):
        return {job.unit: res}
    stats, df = res
    with disk_errors(f"the results of {job.unit}"):
        stage_rows(out, partition, name, [(job.keys, df)])
    return {job.unit: stats}


def _finish(prepared, tile_results, job: FrameJob, out: str, cfg: SegmentConfig):
    t0 = time.perf_counter()
    prep, image = prepared
    cands, stats = [], {}
    for c, s in tile_results:
        cands.extend(c)
        for k, v in s.as_dict().items():
            stats[k] = stats.get(k, 0) + v
    df = finish_frame(prep, cands, image, job.keys, cfg)
    out = Path(out)
    write_label_frame(job.label_root or out, job.label_path, job.label_index,
                      paint_labels(df, prep.input_shape))
    if job.image_path is not None:  # the frame itself, so OUT is a valid image with its labels
        write_label_frame(out, job.image_path, job.label_index, np.asarray(image))
    stats.update(instances=len(df), tiles=len(prep.tiles), prepare_s=prep.prepare_s,
                 finish_s=time.perf_counter() - t0)
    return stats, df


def _segment_one(job: FrameJob, out: str, model_path, cfg: SegmentConfig):
    """One frame in this task: read, check, prepare, every tile, finish."""
    t0 = time.perf_counter()
    image = read_pixels(job.data, job.where)
    prepared = prepare_frame(image, job.pixel_size_um, cfg, where=job.where), image  # checks the frame
    model, spec, _ = get_model(model_path, cfg.model.variant, cfg.model.device)
    tiles = [run_tile(prepared[0], i, model, spec, cfg) for i in range(len(prepared[0].tiles))]
    stats, df = _finish(prepared, tiles, job, out, cfg)
    stats["task_s"] = time.perf_counter() - t0
    return stats, df


def _segment_batch(batch: Batch, out: str, model_path, cfg: SegmentConfig) -> dict:
    """One task: every frame of a batch (one partition), staged together; ``{unit: info or UnitFailure}``."""
    tune_malloc()
    return run_batch(batch, out, ((job.unit, job.keys, _segment_one, (job, out, model_path, cfg))
                                  for job in batch.jobs))


def _jobs(sources: list[ImageSource], cfg: SegmentConfig, label_root: Path, ngff: str | None,
          label_name: str, out: Path, input_path: Path) -> list[FrameJob]:
    jobs = []
    into_out = Path(label_root) == Path(out)
    if into_out and sources and sources[0].well:  # a plate: OUT becomes a plate too
        copy_plate_layout(input_path, out, ngff)
    for src in sources:
        lpath = create_label_image(label_root, src, z_mode=cfg.input.z_mode, name=label_name,
                                   version=ngff, listed=label_name == cfg.output.labels_name)
        ipath = create_frame_image(out, src, z_mode=cfg.input.z_mode, version=ngff) if into_out else None
        laxes = label_axes(src, cfg.input.z_mode)
        shape80 = resampled_shape((src.size("y"), src.size("x")), src.pixel_size_um, cfg.model.pixel_size_um)
        n_tiles = len(tile_grid(shape80, cfg.model.tile_size, cfg.model.halo,
                                  cfg.model.tile_align or 1))
        for fr in iter_frames(src, cfg.input.channel, cfg.input.z_mode):
            index = tuple(v for a, v in (("t", fr.t), ("z", fr.z)) if a in laxes)
            where = f"{src.path} (t={fr.t}, z={fr.z})"
            jobs.append(FrameJob(fr.unit, fr.keys, fr.data, float(src.pixel_size_um), where,
                                 lpath, index, n_tiles, str(label_root), ipath))
    return jobs


def _versions() -> dict:
    import dask
    import torch
    import zarr

    return {"mitoscale": mitoscale.__version__, "python": platform.python_version(),
            "torch": torch.__version__, "dask": dask.__version__, "zarr": zarr.__version__,
            "numpy": np.__version__}


def run_segmentation(input: str | Path, out: str | Path, model: str | Path | None = None,
                     cfg: SegmentConfig | None = None, client=None, overwrite: bool = False,
                     progress: bool = True, labels_into_input: bool = False, window: int | None = None,
                     frames_per_task: int | None = None) -> dict:
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
    labels_into_input : bool
        Write the label images into the input store's ``labels/`` (you must
        own it) instead of into ``out``; they appear there, listed, only when
        every frame is done.
    window : int, optional
        Tasks in flight at once (default: 4 per worker thread).
    frames_per_task : int, optional
        Frames per task (default :func:`~mitoscale.io.batches.auto_frames_per_task`).
        Neither changes the results, so neither is part of the run's identity.

    Returns
    -------
    dict
        The run manifest (also written to ``out/manifest.json``).

    Raises
    ------
    InputError, OutputError, ModelError
        With a one-line message; nothing is marked complete.
    UnitFailures
        Some frames failed (a blank field, a corrupt chunk): the others are
        complete; one line names the count, the first reason and the list.
    """
    from mitoscale.model.checkpoint import default_model_path, file_sha256

    input_path, out = Path(input), Path(out)
    cfg, sources, spec, meta, model_path = preflight(input_path, out, model, cfg, labels_into_input)
    model_file = Path(model_path) if model_path is not None else default_model_path()
    model_sha = file_sha256(model_file)
    folder = RunFolder(out, "segment")
    identity = {"stage": "segment", "config_hash": config_hash(cfg), "model_sha256": model_sha,
                "labels_into_input": labels_into_input,
                "input": input_identity(input_path, sources)}
    if folder.claim(identity, overwrite):
        remove_label_images(out, sources, cfg.output.labels_name)
    ngff = None if cfg.output.ngff_version == "auto" else cfg.output.ngff_version
    # labels into the input go to a staging name first and are renamed into place (and listed)
    # only when every frame is done, so the input never lists half-written labels
    label_root = input_path if labels_into_input else out
    label_name = staging_name(cfg.output.labels_name) if labels_into_input else cfg.output.labels_name
    with disk_errors(label_root):
        jobs = _jobs(sources, cfg, label_root, ngff, label_name, out, input_path)
    pending = set(folder.pending([j.unit for j in jobs]))
    pending_jobs = [j for j in jobs if j.unit in pending]
    fields = {
        "config_hash": identity["config_hash"], "model_sha256": model_sha,
        "model_path": str(model_file.resolve()), "model_spec": spec.name, "model_meta": meta,
        "config": dump_config(cfg), "input": identity["input"], "versions": _versions(),
        "frames": len(jobs), "frames_skipped": len(jobs) - len(pending_jobs),
        "labels": str((label_root / (jobs[0].label_path if jobs else "")).resolve()) if jobs else None,
    }
    with folder.running([j.unit for j in jobs], **fields):
        t_work, exec_stats = time.time(), {}
        results = _execute(folder, client, pending_jobs, str(out), model_path, cfg, progress,
                           window, frames_per_task, exec_stats)
        totals = folder.totals()  # every frame of the folder, not only this invocation's
        n_inst = totals.get("instances", 0)
        extra = dict(
            timing={"total_s": time.time() - folder._t0, "work_s": time.time() - t_work,
                    **{k: v for k, v in _sum_results(results).items()
                       if k in ("prepare_s", "encoder_s", "decoder_s", "other_s", "finish_s")}},
            counts={k: int(totals.get(k, 0)) for k in ("prompts", "decoded", "accepted", "instances",
                                                        "tiles")},
            decoder_prompts_per_instance=(totals.get("decoded", 0) / n_inst) if n_inst else None,
            instances="instances/",
            workers=(len(client.scheduler_info().get("workers", {})) if client is not None else 0),
            execution=exec_stats,
            host=platform.node(), cpu_count=os.cpu_count(),
        )
        failed = any(isinstance(r, UnitFailure) for r in results.values()) or folder.failures.completed()
        if labels_into_input and not failed and len(folder.markers.completed()) >= len(jobs):
            publish_labels(input_path, sources, label_name, cfg.output.labels_name)
        manifest = folder.finish(results, unit_name="frame", **extra)
    manifest["counts"] = extra["counts"]
    return manifest


def _sum_results(results: dict) -> dict[str, float]:
    totals: dict[str, float] = {}
    for r in results.values():
        if isinstance(r, dict):
            for k, v in r.items():
                totals[k] = totals.get(k, 0) + v
    return totals


def _execute(folder: RunFolder, client, jobs: list[FrameJob], out: str, model_path, cfg: SegmentConfig,
             progress: bool, window: int | None, frames_per_task: int | None, stats: dict) -> dict:
    mp = str(model_path) if model_path is not None else None
    threads = 1
    if client is not None:
        plugin = ModelPlugin(mp, cfg.model.variant, cfg.model.device)
        client.register_plugin(plugin, name=f"mitoscale-model-{hashlib.sha1(repr((mp, cfg.model.variant)).encode()).hexdigest()[:10]}")
        threads = max(1, sum(client.nthreads().values()))
    pixels = max((int(np.prod(j.data.shape)) for j in jobs), default=1)
    # a few frames of many tiles (large images): a task per tile keeps every worker busy
    split = client is not None and len(jobs) < 2 * threads and any(j.n_tiles > 1 for j in jobs)
    fpt = 1 if split else (frames_per_task or auto_frames_per_task(pixels, len(jobs), threads))
    batches = make_batches([(j.unit, partition_of(j.keys), j) for j in jobs], fpt)
    stats.update(frames_per_task=fpt, tile_tasks=split)
    run = hashlib.sha1(repr((out, config_hash(cfg), mp)).encode()).hexdigest()[:8]

    def submit(client, b: Batch):
        if not split:
            return submit_batch(client, f"segment-frames-{run}-{b.name}", _segment_batch, b, out, mp, cfg)
        job = b.jobs[0]
        prep = client.submit(_prepare_task, job, cfg, key=f"prepare-{run}-{job.unit}", retries=3)
        tiles = [client.submit(_tile_task, prep, i, mp, cfg.model.variant, cfg,
                               key=f"tile-{run}-{job.unit}-{i}", retries=3) for i in range(job.n_tiles)]
        return client.submit(_finish_task, prep, tiles, job, out, cfg, b.partition, b.name,
                             key=f"segment-frames-{run}-{b.name}", retries=3)

    return execute_batches(folder, batches, client=client, submit=submit,
                           run_local=lambda b: _segment_batch(b, out, model_path, cfg),
                           window=window, progress=progress, desc="segment", unit="frame", stats=stats)
