"""Synthetic acquisitions for the pipeline: an OME-Zarr timelapse and an HCS plate.

They stand in for microscope data in the demo: every frame/field comes from
the physics simulator (:func:`mitoscale.simulate.render.simulate_image`) with
a condition's overrides, so the analysis has a known answer (e.g. a
``fragmented`` condition with short mitochondria has more dots than
``control``).  Ground truth is written next to them as instance tables.

Layout in ``RUN_DIR/samples``::

    timelapse.ome.zarr        NGFF 0.5 image, axes (t, y, x): independent simulated frames
    movie.ome.zarr            NGFF 0.5 image, axes (t, y, x), time step in its metadata: a
                              timelapse with known tracks, fission and fusion (samples.movie,
                              mitoscale.track.synthetic); one unit ("movie")
    movie_conditions.csv      image_id,condition
    truth_events/movie.parquet  the movie's true fission/fusion events
    plate.ome.zarr            NGFF 0.5 HCS plate: row = condition, columns 1..n, fields 0..m-1
    plate_conditions.csv      well,condition
    timelapse_conditions.csv  image_id,condition
    truth/<unit>.parquet      simulated instances of each frame/field (the movie's with
                              track_id and parent_track_ids)
    .markers/<unit>.done      one per finished frame/field

Unit ``i`` is simulated with ``(seed, i)`` only, so any worker, in any order,
after any interruption, writes the same pixels.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitoscale.io.atomic import MarkerSet, atomic_write_text
from mitoscale.pipeline.config import SamplesSection, overrides_list

__all__ = ["SampleUnit", "plan_samples", "prepare_samples", "write_samples", "sample_inputs"]


@dataclass(frozen=True)
class SampleUnit:
    """One frame (timelapse) or field (plate) to simulate."""

    index: int           # simulator index: the unit's pixels depend on (seed, index) only
    store: str           # "timelapse", "plate" or "movie"
    image: str           # path of the NGFF image group inside the store
    t: int | None        # frame of the timelapse, None for a plate field
    well: str
    field: int
    condition: str

    @property
    def name(self) -> str:
        if self.store == "timelapse":
            return f"timelapse-t{self.t:04d}"
        if self.store == "movie":
            return "movie"
        return f"plate-{self.well.replace('/', '')}-f{self.field}"


def _wells(cfg: SamplesSection) -> list[tuple[str, str, str]]:
    """(row, column, condition) of every well: one plate row per condition."""
    return [(chr(ord("A") + r), str(c + 1), cond.name)
            for r, cond in enumerate(cfg.conditions) for c in range(cfg.wells_per_condition)]


def plan_samples(cfg: SamplesSection) -> list[SampleUnit]:
    """Every unit of the samples stage, in a fixed order."""
    units: list[SampleUnit] = []
    tl_cond = cfg.timelapse_condition or cfg.conditions[0].name
    for t in range(cfg.timelapse_frames):
        units.append(SampleUnit(len(units), "timelapse", "", t, "", 0, tl_cond))
    for row, col, cond in _wells(cfg):
        for f in range(cfg.fields_per_well):
            units.append(SampleUnit(len(units), "plate", f"{row}/{col}/{f}", None,
                                    f"{row}/{col}", f, cond))
    if cfg.movie.frames:
        units.append(SampleUnit(len(units), "movie", "", None, "", 0, tl_cond))
    return units


def _condition_configs(cfg: SamplesSection) -> dict[str, dict]:
    from mitoscale.config import dump_config
    from mitoscale.simulate.config import load_simulate_config

    return {c.name: dump_config(load_simulate_config(cfg.config, overrides_list(c.set)))
            for c in cfg.conditions}


def prepare_samples(cfg: SamplesSection, out: str | Path) -> Path:
    """Create the (empty) stores and condition tables; idempotent."""
    import numpy as np
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    from mitoscale.io.omezarr import write_ome_zarr_image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n, px = cfg.image_px, cfg.pixel_size_um
    zeros = np.zeros((n, n), np.uint16)
    tl = out / "timelapse.ome.zarr"
    if cfg.timelapse_frames and not (tl / "zarr.json").exists():
        tmp_tl = out / f".timelapse-{uuid.uuid4().hex[:8]}.ome.zarr"
        write_ome_zarr_image(tmp_tl, np.zeros((cfg.timelapse_frames, n, n), np.uint16), "tyx", px,
                             version="0.5", chunks=(1, n, n))
        _set_time_step(tmp_tl, cfg.timelapse_interval_s)
        tmp_tl.rename(tl)
    tl_cond = cfg.timelapse_condition or cfg.conditions[0].name
    atomic_write_text(out / "timelapse_conditions.csv", f"image_id,condition\ntimelapse,{tl_cond}\n")
    wells = _wells(cfg)
    plate = out / "plate.ome.zarr"
    if wells and not (plate / "zarr.json").exists():
        fmt = FormatV05()
        tmp = out / f".plate-{uuid.uuid4().hex[:8]}.ome.zarr"
        g = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        rows = sorted({r for r, _, _ in wells})
        cols = sorted({c for _, c, _ in wells}, key=int)
        write_plate_metadata(g, rows, cols, [f"{r}/{c}" for r, c, _ in wells], fmt=fmt,
                             name="mitoscale synthetic plate")
        for r, c, _ in wells:
            write_well_metadata(g.require_group(f"{r}/{c}"),
                                [{"path": str(f)} for f in range(cfg.fields_per_well)], fmt=fmt)
            for f in range(cfg.fields_per_well):
                write_ome_zarr_image(tmp / r / c / str(f), zeros, "yx", px, version="0.5")
        tmp.rename(plate)  # the plate appears complete or not at all
    lines = ["well,condition", *[f"{r}/{c},{cond}" for r, c, cond in wells]]
    atomic_write_text(out / "plate_conditions.csv", "\n".join(lines) + "\n")
    atomic_write_text(out / "movie_conditions.csv", f"image_id,condition\nmovie,{tl_cond}\n")
    return out


def _set_time_step(image: Path, seconds: float) -> None:
    """Record the time step of an NGFF 0.5 image's first (t) axis: scale and unit "second"."""
    import zarr

    group = zarr.open_group(str(image), mode="a")
    ome = group.attrs.asdict()["ome"]
    ms = ome["multiscales"][0]
    ms["axes"][0]["unit"] = "second"
    for ds in ms["datasets"]:
        ds["coordinateTransformations"][0]["scale"][0] = float(seconds)
    group.attrs["ome"] = ome


def _write_movie(out: Path, unit: SampleUnit, movie: dict) -> dict[str, Any]:
    """Simulate the movie, write it (time step in the NGFF metadata), its truth and events."""
    import pandas as pd

    from mitoscale.io.omezarr import write_ome_zarr_image
    from mitoscale.io.tables import write_table
    from mitoscale.track.config import MovieConfig
    from mitoscale.track.outputs import write_parquet
    from mitoscale.track.synthetic import simulate_movie

    cfg = MovieConfig.model_validate(movie)
    mv = simulate_movie(cfg)
    tmp = out / f".movie-{uuid.uuid4().hex[:8]}.ome.zarr"
    write_ome_zarr_image(tmp, mv.images, "tyx", cfg.pixel_size_um, version="0.5",
                         chunks=(1, cfg.image_px, cfg.image_px))
    _set_time_step(tmp, cfg.frame_interval_s)  # what `mitoscale track` reads
    target = out / "movie.ome.zarr"
    if target.exists():
        import shutil

        shutil.rmtree(target)  # a previous, unmarked attempt
    tmp.rename(target)
    table = pd.concat(mv.tables, ignore_index=True)
    table["condition"] = unit.condition
    locs = [{"image_id": "movie", "well": "", "field": 0, "t": t, "z": 0} for t in range(cfg.frames)]
    write_table(table, out / "truth" / "movie.parquet", locations=locs)
    events = mv.events.assign(image_id="movie", well="", field=0, z=0)
    write_parquet(events, out / "truth_events" / "movie.parquet")
    return {"instances": int(len(table)), "condition": unit.condition, "frames": cfg.frames,
            "events": int(len(events))}


def _write_unit(out: str, unit: SampleUnit, sim_cfg: dict, seed: int, image_px: int,
                pixel_size_um: float) -> dict[str, Any]:
    """Simulate one unit and write its pixels and ground truth (runs on a worker)."""
    import zarr

    from mitoscale.io.tables import write_table
    from mitoscale.simulate.config import SimulateConfig
    from mitoscale.simulate.render import simulate_image

    if unit.store == "movie":
        info = _write_movie(Path(out), unit, sim_cfg)
        MarkerSet(Path(out) / ".markers").mark(unit.name, info)
        return info
    cfg = SimulateConfig.model_validate(sim_cfg)
    sim = simulate_image(cfg, seed, unit.index, pixel_size_nm=pixel_size_um * 1000.0,
                         shape=(image_px, image_px))
    root = Path(out)
    image = root / f"{unit.store}.ome.zarr" / unit.image
    attrs = zarr.open_group(str(image), mode="r").attrs.asdict()
    dataset = attrs.get("ome", attrs)["multiscales"][0]["datasets"][0]["path"]
    arr = zarr.open_array(str(image / dataset), mode="r+")
    if unit.t is not None:
        arr[unit.t] = sim.image
    else:
        arr[...] = sim.image
    loc = {"image_id": unit.store, "well": "", "field": 0, "t": 0, "z": -1}  # z -1: a projection
    if unit.t is not None:
        loc["t"] = unit.t
    else:
        loc["well"], loc["field"] = unit.well, unit.field
    table = sim.table.copy()
    for key, value in loc.items():
        table[key] = value
    table["condition"] = unit.condition
    write_table(table, root / "truth" / f"{unit.name}.parquet", locations=[loc])
    info = {"instances": int(len(table)), "condition": unit.condition}
    MarkerSet(root / ".markers").mark(unit.name, info)
    return info


def write_samples(cfg: SamplesSection, out: str | Path, client: Any = None) -> dict[str, int]:
    """Simulate every missing frame/field of the synthetic acquisitions.

    Parameters
    ----------
    cfg : SamplesSection
    out : path
        ``RUN_DIR/samples``.
    client : distributed.Client, optional
        Runs units on the cluster; ``None`` runs them here.

    Returns
    -------
    dict
        ``units``, ``computed``, ``skipped``.
    """
    out = prepare_samples(cfg, out)
    sims = _condition_configs(cfg)
    markers = MarkerSet(out / ".markers")
    units = plan_samples(cfg)
    todo = [u for u in units if not markers.done(u.name)]
    movie = cfg.movie.model_dump(mode="json")
    args = [(str(out), u, movie if u.store == "movie" else sims[u.condition], cfg.seed, cfg.image_px,
             cfg.pixel_size_um) for u in todo]
    if client is None:
        for a in args:
            _write_unit(*a)
    else:
        from mitoscale.cluster import run_futures

        run = uuid.uuid4().hex[:8]
        futures = [client.submit(_write_unit, *a, key=f"samples-{a[1].name}-{run}", retries=1)
                   for a in args]
        run_futures(client, futures, desc="samples", unit="image")
    return {"units": len(units), "computed": len(todo), "skipped": len(units) - len(todo)}


def sample_inputs(cfg: SamplesSection, out: str | Path) -> list[tuple[str, Path, Path]]:
    """``(name, image path, conditions CSV)`` of each synthetic acquisition."""
    out = Path(out)
    items = []
    if cfg.timelapse_frames:
        items.append(("timelapse", out / "timelapse.ome.zarr", out / "timelapse_conditions.csv"))
    if cfg.wells_per_condition:
        items.append(("plate", out / "plate.ome.zarr", out / "plate_conditions.csv"))
    if cfg.movie.frames:
        items.append(("movie", out / "movie.ome.zarr", out / "movie_conditions.csv"))
    return items
