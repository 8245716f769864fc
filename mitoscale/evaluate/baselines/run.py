"""Run a baseline over any input (OME-Zarr, TIFF/PNG) and write instance tables.

Output layout (read back with :func:`mitoscale.io.tables.read_table`); the
folder follows the run-folder contract of :mod:`mitoscale.io.runfolder`, as
``mitoscale segment`` does (identity incl. the input's content, refusal of
an output inside the input, the one frame check, per-frame failures)::

    OUT/
      manifest.json             method, its config, the input identity, status, counts
      instances/<frame>.parquet one instance table per 2D frame (its location recorded even when empty)
      .markers/<frame>.done     written last; reruns skip finished frames
      .failed/<frame>.json      frames that failed (retried by a rerun); failed.json lists them

Frames are independent Dask tasks, so a run scales from a laptop to a
cluster and resumes after an interruption.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitoscale.config import StrictModel, config_hash, dump_config
from mitoscale.errors import InputError
from mitoscale.io.atomic import MarkerSet, check_writable
from mitoscale.io.runfolder import (RunFolder, check_frame, check_output_location, gather_units,
                                    guard_unit, input_identity, read_pixels, run_units_locally)

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


def _process_frame(name: str, cfg: StrictModel, data: Any, keys: dict, pixel_size_um: float,
                   part: str, markers_root: str, unit: str, where: str = "") -> dict:
    return guard_unit(unit, _segment_and_write, name, cfg, data, keys, pixel_size_um, part,
                      markers_root, unit, where or unit)


def _segment_and_write(name, cfg, data, keys, pixel_size_um, part, markers_root, unit, where) -> dict:
    from mitoscale.evaluate.baselines.common import labels_to_table
    from mitoscale.io.tables import write_table

    image = read_pixels(data, where)
    check_frame(image, where)  # the same check as `mitoscale segment`
    t0 = time.perf_counter()
    labels = segment_frame_with(name, image, pixel_size_um, cfg)
    seconds = time.perf_counter() - t0
    table = labels_to_table(labels, image=image, pixel_size_um=pixel_size_um, **keys)
    write_table(table, part, locations=[keys])  # records the frame even when it has no instance
    info = dict(n_instances=int(len(table)), seconds=seconds, shape=list(image.shape))
    MarkerSet(markers_root).mark(unit, info)
    return info


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
    markers = folder.markers
    plan = BaselinePlan(name=name, cfg=cfg, out=out, folder=folder,
                        manifest=dict(method=name, config=dump_config(cfg), input=identity["input"],
                                      channel=channel, z_mode=z_mode, pixel_size_um=pixel_size_um))
    for src in sources:
        for frame in iter_frames(src, channel=channel, z_mode=z_mode):
            plan.n_frames += 1
            plan.units.append(frame.unit)
            if markers.done(frame.unit):
                plan.n_done_before += 1
                continue
            where = f"{src.path} (t={frame.t}, z={frame.z})"
            plan.jobs.append((frame.data, frame.keys, float(src.pixel_size_um),
                              str(folder.part_path(frame.unit)), str(markers.root), frame.unit, where))
    return plan


def execute_plan(plan: BaselinePlan, client: Any = None, progress: bool = True) -> dict:
    """Segment the planned frames, as Dask tasks when ``client`` is given.

    Raises
    ------
    UnitFailures
        Some frames failed (their reasons in ``OUT/failed.json``); the others are complete.
    """
    desc = f"baseline {plan.name}"
    with plan.folder.running(plan.units, **plan.manifest):
        if client is None:
            results = run_units_locally(
                {job[5]: (lambda job=job: _process_frame(plan.name, plan.cfg, *job)) for job in plan.jobs},
                desc, "frame", progress)
        else:
            futures = {job[5]: client.submit(_process_frame, plan.name, plan.cfg, *job, pure=False,
                                             key=f"baseline-{plan.name}-{job[5]}-{uuid.uuid4().hex[:8]}")
                       for job in plan.jobs}
            results = gather_units(client, futures, desc, "frame", progress)
        new = [r for r in results.values() if isinstance(r, dict)]
        totals = plan.folder.totals()
        plan.folder.finish(results, unit_name="frame")
    return dict(out=str(plan.out), n_frames=plan.n_frames, n_done_before=plan.n_done_before,
                n_instances=sum(r["n_instances"] for r in new),
                n_instances_total=int(totals.get("n_instances", 0)),
                seconds=sum(r["seconds"] for r in new))


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
    return execute_plan(plan, client)
