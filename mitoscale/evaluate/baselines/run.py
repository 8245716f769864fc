"""Run a baseline over any input (OME-Zarr, TIFF/PNG) and write instance tables.

Output layout (read back with :func:`mitoscale.io.tables.read_table`); the
folder follows the run-folder contract of :mod:`mitoscale.io.runfolder`, as
``mitoscale segment`` does (identity incl. the input's content, refusal of
an output inside the input, the one frame check, per-frame failures)::

    OUT/
      manifest.json             method, its config, the input identity, status, counts
      instances/image=<id>[/plate_well=<w>]/part-0.parquet
                                one file per well or image, a row group per 2D frame (each frame's
                                location recorded even when empty)
      units.log                 completion log (done or failed, with the reason); reruns skip
                                finished frames and retry failed ones; failed.json lists them

Frames run in batched tasks with a bounded window (:mod:`mitoscale.io.batches`,
the executor ``mitoscale segment`` uses), so a run scales from a laptop to a
whole screen on a cluster and resumes after an interruption.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitoscale.config import StrictModel, config_hash, dump_config
from mitoscale.errors import InputError
from mitoscale.io.atomic import check_writable
from mitoscale.io.batches import Batch, auto_frames_per_task, execute_batches, make_batches, run_batch, submit_batch
from mitoscale.io.partitions import partition_of
from mitoscale.io.runfolder import RunFolder, check_frame, check_output_location, input_identity, read_pixels

__all__ = ["run_baseline", "plan_baseline", "execute_plan", "BaselinePlan", "segment_frame_with",
           "load_baseline_config"]


def load_baseline_config(name: str, path=None, overrides=None) -> StrictModel:
    """The validated config of baseline ``name`` (YAML file plus ``key=value`` overrides)."""
    from mitoscale.config import load_config
    from mitoscale.evaluate.baselines import BASELINES

    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r} (known: {', '.join(sorted(BASELINES))})")
    return load_config(path, BASELINES[name][0], overrides)


def segment_frame_with(name: str, image, pixel_size_um: float, cfg: StrictModel | None = None):
    """Run baseline ``name`` on one 2D array; returns its label image."""
    from mitoscale.evaluate.baselines import BASELINES

    if name not in BASELINES:
        raise InputError(f"unknown baseline {name!r} (known: {', '.join(sorted(BASELINES))})")
    return BASELINES[name][1](image, pixel_size_um, cfg)


def _segment_one(name, cfg, data, keys, pixel_size_um, where):
    from mitoscale.evaluate.baselines.common import labels_to_table

    t_task, cpu_task = time.perf_counter(), time.thread_time()
    image = read_pixels(data, where)
    check_frame(image, where)  # the same check as `mitoscale segment`, inside the frame's task
    t0 = time.perf_counter()
    labels = segment_frame_with(name, image, pixel_size_um, cfg)
    seconds = time.perf_counter() - t0
    table = labels_to_table(labels, image=image, pixel_size_um=pixel_size_um, **keys)
    info = dict(n_instances=int(len(table)), seconds=seconds, shape=list(image.shape),
                task_s=time.perf_counter() - t_task, task_cpu_s=time.thread_time() - cpu_task)
    return info, table


def _baseline_batch(name: str, cfg: StrictModel, batch: Batch, out: str) -> dict:
    """One task: every frame of a batch, staged together; ``{unit: info or UnitFailure}``."""
    return run_batch(batch, out, ((unit, keys, _segment_one, (name, cfg, data, keys, pixel_size_um, where or unit))
                                  for data, keys, pixel_size_um, unit, where in batch.jobs))


@dataclass
class BaselinePlan:
    """What :func:`run_baseline` will do: the frames still to segment, checked up front."""

    name: str
    cfg: StrictModel
    out: Path
    jobs: list = field(default_factory=list)
    n_frames: int = 0
    n_done_before: int = 0
    folder: RunFolder | None = None
    units: list = field(default_factory=list)
    manifest: dict = field(default_factory=dict)


def plan_baseline(
    name: str,
    input_path: str | Path,
    out: str | Path,
    *,
    cfg: StrictModel | None = None,
    pixel_size_um: float | None = None,
    channel: int | str = 0,
    z_mode: str = "max",
    overwrite: bool = False,
) -> BaselinePlan:
    """Open the input, check the output and list the unfinished frames (no segmentation yet).

    Every user error (missing input or pixel size, an output inside the
    input or holding another run) is raised here, before any cluster
    starts.  Parameters as in :func:`run_baseline`.
    """
    from mitoscale.io.images import check_channel, iter_frames, open_image, require_pixel_size

    if cfg is None:
        cfg = load_baseline_config(name)
    check_output_location(input_path, out)
    out = check_writable(Path(out))
    sources = open_image(input_path, pixel_size_um=pixel_size_um)
    require_pixel_size(sources)
    for src in sources:
        check_channel(src, channel)
    folder = RunFolder(out, f"baseline {name}")
    identity = {"stage": f"baseline {name}", "config_hash": config_hash(cfg), "channel": str(channel),
                "z_mode": z_mode, "pixel_size_um": pixel_size_um,
                "input": input_identity(input_path, sources)}
    folder.claim(identity, overwrite)
    state = folder.log.state()  # read once: a screen has hundreds of thousands of frames
    plan = BaselinePlan(name=name, cfg=cfg, out=out, folder=folder,
                        manifest=dict(method=name, config=dump_config(cfg), input=identity["input"],
                                      channel=channel, z_mode=z_mode, pixel_size_um=pixel_size_um))
    for src in sources:
        for frame in iter_frames(src, channel=channel, z_mode=z_mode):
            plan.n_frames += 1
            plan.units.append(frame.unit)
            if state.get(frame.unit, {}).get("state") == "done":
                plan.n_done_before += 1
                continue
            where = f"{src.path} (t={frame.t}, z={frame.z})"
            plan.jobs.append((frame.data, frame.keys, float(src.pixel_size_um), frame.unit, where))
    return plan


def execute_plan(plan: BaselinePlan, client: Any = None, progress: bool = True, window: int | None = None,
                 frames_per_task: int | None = None) -> dict:
    """Segment the planned frames, as batched Dask tasks when ``client`` is given.

    ``window`` (tasks in flight) and ``frames_per_task`` as in
    :func:`mitoscale.io.batches.execute_batches`; both have automatic defaults.

    Raises
    ------
    UnitFailures
        Some frames failed (their reasons in ``OUT/failed.json``); the others are complete.
    """
    desc = f"baseline {plan.name}"
    out = str(plan.out)
    with plan.folder.running(plan.units, **plan.manifest):
        threads = max(1, sum(client.nthreads().values())) if client is not None else 1
        import numpy as np

        pixels = max((int(np.prod(j[0].shape[-2:])) for j in plan.jobs), default=1)
        fpt = frames_per_task or auto_frames_per_task(pixels, len(plan.jobs), threads)
        batches = make_batches([(j[3], partition_of(j[1]), j) for j in plan.jobs], fpt)
        stats: dict = {}
        results = execute_batches(
            plan.folder, batches, client=client, window=window, progress=progress, desc=desc, stats=stats,
            submit=lambda c, b: submit_batch(c, f"baseline-{plan.name}-frames-{b.name}-{time.time_ns()}",
                                             _baseline_batch, plan.name, plan.cfg, b, out),
            run_local=lambda b: _baseline_batch(plan.name, plan.cfg, b, out))
        new = [r for r in results.values() if isinstance(r, dict)]
        totals = plan.folder.totals()
        plan.folder.finish(results, unit_name="frame", execution=dict(stats, frames_per_task=fpt))
    return dict(out=str(plan.out), n_frames=plan.n_frames, n_done_before=plan.n_done_before,
                n_instances=sum(r["n_instances"] for r in new),
                n_instances_total=int(totals.get("n_instances", 0)),
                seconds=sum(r["seconds"] for r in new), task_s=sum(r.get("task_s", 0) for r in new),
                execution=dict(stats, frames_per_task=fpt))


def run_baseline(
    name: str,
    input_path: str | Path,
    out: str | Path,
    *,
    cfg: StrictModel | None = None,
    pixel_size_um: float | None = None,
    channel: int | str = 0,
    z_mode: str = "max",
    client: Any = None,
    overwrite: bool = False,
    window: int | None = None,
    frames_per_task: int | None = None,
) -> dict:
    """Segment every 2D frame of ``input_path`` with baseline ``name``.

    Parameters
    ----------
    name : {"classical", "nellie"}
    input_path : path
        OME-Zarr image or plate, TIFF/PNG file or folder.
    out : path
        Output directory (see the module docstring).
    cfg : config model, optional
        The baseline's settings (defaults otherwise).
    pixel_size_um : float, optional
        Overrides the input's metadata; required for TIFF/PNG.
    channel, z_mode
        As in :func:`mitoscale.io.images.iter_frames`.
    client : distributed.Client, optional
        Run frames as Dask tasks; ``None`` runs them here, one by one.
    overwrite : bool
        Replace a run of another method, config or input held in ``out``.

    Returns
    -------
    dict
        ``n_frames``, ``n_done_before``, ``n_instances`` (new),
        ``n_instances_total`` (the whole folder), ``seconds`` (sum of per-frame
        kernel time) and ``out``.
    """
    plan = plan_baseline(name, input_path, out, cfg=cfg, pixel_size_um=pixel_size_um,
                         channel=channel, z_mode=z_mode, overwrite=overwrite)
    return execute_plan(plan, client, window=window, frames_per_task=frames_per_task)
