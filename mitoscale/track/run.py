"""``mitoscale track``: one Dask task per timelapse, resumable with completion markers.

Input: a segmentation output (``SEG_OUT``, with ``instances/`` parts and
``manifest.json``) or any instance table (a Parquet file or folder of parts,
e.g. the simulator's ground truth).  A *timelapse* is one (image_id, well,
field, z) with its frames ``t``; each is tracked on its own, so a plate of
timelapses is as many independent tasks.

Output ``TRACKS``::

    instances/<unit>.parquet   the instance table rows with track_id, parent_track_ids
    tracks/<unit>.parquet      one row per track (mitoscale.track.outputs)
    events/<unit>.parquet      fission and fusion events
    napari/<unit>.csv          track_id,t,y,x for napari's Tracks layer
    .markers/<unit>.done       written last: the timelapse is complete
    manifest.json              config, input, frame intervals, counts

A rerun skips timelapses whose marker exists; a killed task's outputs are
rewritten whole (atomic files), so nothing is duplicated.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mitoscale.config import dump_config
from mitoscale.errors import InputError
from mitoscale.io.atomic import MarkerSet, atomic_write_json, check_writable
from mitoscale.track.config import TrackConfig
from mitoscale.track.outputs import TRACK_KEYS

__all__ = ["plan_timelapses", "run_tracking", "unit_name", "time_steps"]

_TIME_UNITS_S = {"second": 1.0, "s": 1.0, "sec": 1.0, "millisecond": 1e-3, "ms": 1e-3,
                 "minute": 60.0, "min": 60.0, "hour": 3600.0, "h": 3600.0}


def unit_name(key: tuple) -> str:
    """File-safe unit name of a timelapse key (image_id, well, field, z)."""
    image_id, well, field, z = key
    raw = f"{image_id}{'-' + well.replace('/', '') if well else ''}-f{int(field)}-z{int(z)}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)


def _instances_path(src: Path) -> Path:
    if not src.exists():
        raise InputError(f"segmentation not found: {src}")
    return src / "instances" if (src / "instances").is_dir() else src


def plan_timelapses(src: str | Path, require_time: bool = True) -> list[dict]:
    """Every timelapse of a segmentation: key, unit name, frames, pixel sizes checked.

    Raises
    ------
    InputError
        No time axis (no location with more than one frame) when
        ``require_time``; frames of one timelapse with different pixel sizes.
    """
    import pyarrow.parquet as pq

    from mitoscale.io.tables import read_locations

    path = _instances_path(Path(src))
    locs = read_locations(path)
    cols = [*TRACK_KEYS, "t", "pixel_size_um"]
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    sizes = pd.concat([pq.read_table(f, columns=cols).to_pandas() for f in files], ignore_index=True)
    units = []
    for key, g in locs.groupby(TRACK_KEYS, sort=True):
        px = sizes.merge(g[TRACK_KEYS].drop_duplicates(), on=TRACK_KEYS)["pixel_size_um"].unique()
        if len(px) > 1 and not np.allclose(px, px[0], rtol=1e-6):
            raise InputError(f"{src}: frames of timelapse {unit_name(key)} have different pixel sizes "
                             f"({', '.join(f'{p:g}' for p in sorted(px))} µm)")
        units.append({"key": tuple(key), "name": unit_name(key), "frames": sorted(int(t) for t in g["t"])})
    timelapses = [u for u in units if len(u["frames"]) > 1]
    if require_time and not timelapses:
        raise InputError(f"{src}: the segmentation has no time axis (every image has one frame)")
    return timelapses


def time_steps(src: str | Path, units: list[dict]) -> dict[str, float | None]:
    """Frame interval (s) of each timelapse from the segmented input's NGFF time axis, or None."""
    man = Path(src) / "manifest.json"
    if not man.is_file():
        return {u["name"]: None for u in units}
    try:
        from mitoscale.io.images import open_image

        sources = open_image(json.loads(man.read_text())["input"]["path"])
    except Exception:  # noqa: BLE001 - input moved or unreadable: no metadata, ask the user
        return {u["name"]: None for u in units}
    out: dict[str, float | None] = {}
    for u in units:
        image_id, well, field, _ = u["key"]
        match = [s for s in sources if (s.well, s.field) == (well, field)
                 and (s.image_id == image_id or len(sources) == 1)]
        step = None
        if match and "t" in match[0].axes:
            unit = match[0].units.get("t")
            factor = _TIME_UNITS_S.get(str(unit).strip().lower()) if unit else None
            if factor is not None and match[0].scale.get("t", 0) > 0:
                step = float(match[0].scale["t"]) * factor
        out[u["name"]] = step
    return out


def _track_unit(src: str, out: str, unit: dict, cfg_data: dict, dt: float) -> dict[str, Any]:
    """Read one timelapse's rows, track, write its four outputs, then its marker (on a worker)."""
    import pyarrow.parquet as pq

    from mitoscale.analyse.classes import classify_instances
    from mitoscale.io.tables import validate_table, write_table
    from mitoscale.track.link import track_timelapse
    from mitoscale.track.outputs import napari_csv, track_table, write_parquet

    cfg = TrackConfig.model_validate(cfg_data)
    t0 = time.perf_counter()
    filters = [(k, "=", v) for k, v in zip(TRACK_KEYS, unit["key"])]
    df = validate_table(pq.read_table(src, filters=filters).to_pandas(), source=src)
    res = track_timelapse(df, cfg, frames=unit["frames"])
    inst, events = res.instances, res.events
    for k, v in zip(TRACK_KEYS, unit["key"]):
        events.insert(TRACK_KEYS.index(k), k, v)
    events.insert(len(TRACK_KEYS) + 2, "time_s", events["t"].astype(float) * dt)
    root, name = Path(out), unit["name"]
    classes = classify_instances(inst, cfg.dot_max_area_um2)
    write_table(inst, root / "instances" / f"{name}.parquet")
    write_parquet(track_table(inst, events, dt, classes), root / "tracks" / f"{name}.parquet")
    write_parquet(events, root / "events" / f"{name}.parquet")
    napari_csv(inst, root / "napari" / f"{name}.csv")
    info = {"frames": len(unit["frames"]), "instances": int(len(inst)),
            "tracks": int(inst["track_id"].nunique()) if len(inst) else 0,
            "fission": int((events["event"] == "fission").sum()),
            "fusion": int((events["event"] == "fusion").sum()),
            "frame_interval_s": dt, "seconds": time.perf_counter() - t0}
    MarkerSet(root / ".markers").mark(name, info)
    return info


def run_tracking(src: str | Path, out: str | Path, cfg: TrackConfig | None = None, client: Any = None,
                 require_time: bool = True) -> dict[str, Any]:
    """Track every timelapse of ``src`` into ``out`` (see the module doc); returns the manifest."""
    cfg = cfg or TrackConfig()
    src, out = Path(src), Path(out)
    units = plan_timelapses(src, require_time=require_time)
    steps = time_steps(src, units)
    dts = {}
    for u in units:
        dt = cfg.frame_interval_s or steps[u["name"]]
        if dt is None:
            raise InputError(f"{src}: timelapse {u['name']} has no time step in its metadata; "
                             f"pass --frame-interval SECONDS (track.set.frame_interval_s in a pipeline)")
        dts[u["name"]] = float(dt)
    check_writable(out)
    markers = MarkerSet(out / ".markers")
    todo = [u for u in units if not markers.done(u["name"])]
    inst = str(_instances_path(src))
    args = [(inst, str(out), u, dump_config(cfg), dts[u["name"]]) for u in todo]
    t0 = time.time()
    if client is None:
        for a in args:
            _track_unit(*a)
    else:
        from mitoscale.cluster import run_futures

        run = uuid.uuid4().hex[:8]
        futures = [client.submit(_track_unit, *a, key=f"track-{a[2]['name']}-{run}", retries=1) for a in args]
        run_futures(client, futures, desc="track", unit="timelapse")
    markers.remove_stale_writes()
    infos = {u["name"]: markers.info(u["name"]) for u in units}
    manifest = {"format": "mitoscale-track/1", "input": str(src.resolve()), "config": dump_config(cfg),
                "timelapses": len(units), "computed": len(todo), "skipped": len(units) - len(todo),
                "frame_interval_s": dts, "units": infos, "seconds": time.time() - t0,
                "totals": {k: int(sum(i[k] for i in infos.values()))
                           for k in ("instances", "tracks", "fission", "fusion")}}
    atomic_write_json(out / "manifest.json", manifest)
    return manifest
