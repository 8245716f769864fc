"""Run a baseline over any input (OME-Zarr, TIFF/PNG) and write instance tables.

Output layout (read back with :func:`mitoscale.io.tables.read_table`)::

    OUT/
      run.json                  method, its config and the input
      instances/<frame>.parquet one instance table per 2D frame (its location recorded even when empty)
      .markers/<frame>.done     written last; reruns skip finished frames

Frames are independent Dask tasks, so a run scales from a laptop to a
cluster and resumes after an interruption.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitoscale.config import StrictModel, dump_config
from mitoscale.errors import InputError, OutputError
from mitoscale.io.atomic import MarkerSet, atomic_write_json, check_writable

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
                   part: str, markers_root: str, unit: str) -> dict:
    import numpy as np

    from mitoscale.evaluate.baselines.common import labels_to_table
    from mitoscale.io.tables import write_table

    image = np.asarray(data.compute(scheduler="sync") if hasattr(data, "compute") else data)
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


def plan_baseline(
    name: str,
    input_path: str | Path,
    out: str | Path,
    *,
    cfg: StrictModel | None = None,
    pixel_size_um: float | None = None,
    channel: int | str = 0,
    z_mode: str = "max",
) -> BaselinePlan:
    """Open the input, check the output and list the unfinished frames (no segmentation yet).

    Every user error (missing input or pixel size, an output holding another
    run) is raised here, before any cluster starts.  Parameters as in
    :func:`run_baseline`.
    """
    from mitoscale.io.images import iter_frames, open_image, require_pixel_size

    if cfg is None:
        cfg = load_baseline_config(name)
    out = check_writable(Path(out))
    sources = open_image(input_path, pixel_size_um=pixel_size_um)
    require_pixel_size(sources)
    manifest = dict(format="mitoscale-baseline/1", method=name, config=dump_config(cfg),
                    input=str(Path(input_path).absolute()), channel=channel, z_mode=z_mode,
                    pixel_size_um=pixel_size_um)
    _check_manifest(out, manifest)
    atomic_write_json(out / "run.json", manifest)
    markers = MarkerSet(out / ".markers")
    plan = BaselinePlan(name=name, cfg=cfg, out=out)
    for src in sources:
        for frame in iter_frames(src, channel=channel, z_mode=z_mode):
            plan.n_frames += 1
            if markers.done(frame.unit):
                plan.n_done_before += 1
                continue
            plan.jobs.append((frame.data, frame.keys, float(src.pixel_size_um),
                              str(out / "instances" / f"{frame.unit}.parquet"), str(markers.root), frame.unit))
    return plan


def execute_plan(plan: BaselinePlan, client: Any = None) -> dict:
    """Segment the planned frames, as Dask tasks when ``client`` is given."""
    if client is None:
        results = [_process_frame(plan.name, plan.cfg, *job) for job in plan.jobs]
    else:
        from mitoscale.cluster import run_futures

        futures = [client.submit(_process_frame, plan.name, plan.cfg, *job, pure=False,
                                 key=f"baseline-{plan.name}-{job[-1]}-{uuid.uuid4().hex[:8]}")
                   for job in plan.jobs]
        results = run_futures(client, futures, desc=f"baseline {plan.name}", unit="frame")
    return dict(out=str(plan.out), n_frames=plan.n_frames, n_done_before=plan.n_done_before,
                n_instances=sum(r["n_instances"] for r in results),
                seconds=sum(r["seconds"] for r in results))


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

    Returns
    -------
    dict
        ``n_frames``, ``n_done_before``, ``n_instances`` (new), ``seconds``
        (sum of per-frame kernel time) and ``out``.
    """
    plan = plan_baseline(name, input_path, out, cfg=cfg, pixel_size_um=pixel_size_um,
                         channel=channel, z_mode=z_mode)
    return execute_plan(plan, client)


def _check_manifest(out: Path, manifest: dict) -> None:
    """Refuse to resume into an output written by another method, config or input."""
    import json

    path = out / "run.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise OutputError(f"{path}: unreadable run manifest; choose a new --out") from None
    for key in ("method", "config", "input", "channel", "z_mode", "pixel_size_um"):
        if old.get(key) != json.loads(json.dumps(manifest[key])):
            raise OutputError(f"{out} holds a run with a different {key}; choose a new --out or delete it")
