"""Benchmarks of ``mitoscale track`` (issue 14).

Parts (``--parts``, default all):

gt      synthetic movies (``samples.movie`` defaults but 20 frames, 40 objects, 256² px at 80 nm,
        seeds 0..n-1) tracked from their ground-truth masks (isolates the tracker): IDF1, MOTA,
        ID switches (motmetrics), fission and fusion F1 (traccuracy), pooled over movies
model   the same movies written as OME-Zarr (``mitoscale.pipeline.samples``), segmented in
        process with the shipped model, tracked through ``run_tracking``, scored the same way
speed   one movie of ~300 instances per frame (1024² px, 300 objects), tracked on one thread:
        wall and process CPU seconds per frame (skan/laptrack imports and Numba compile excluded)

Usage::

    nice .venv/bin/python benchmarks/bench_track.py --movies 4 --out benchmarks/track_results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import pandas as pd


def _movie_cfg(seed: int, **kw):
    from mitoscale.track.config import MovieConfig

    return MovieConfig(**{"frames": 20, "objects": 40, "image_px": 256, "seed": seed, **kw})


def part_gt(n: int) -> dict:
    from mitoscale.evaluate.tracking import tracking_metrics
    from mitoscale.track.link import track_timelapse
    from mitoscale.track.synthetic import simulate_movie

    gts, preds = [], []
    for seed in range(n):
        gt = pd.concat(simulate_movie(_movie_cfg(seed)).tables, ignore_index=True).assign(image_id=f"m{seed}")
        res = track_timelapse(gt.drop(columns=["track_id", "parent_track_ids"]))
        gts.append(gt)
        preds.append(res.instances)
    m = tracking_metrics(pd.concat(gts, ignore_index=True), pd.concat(preds, ignore_index=True))
    return {"movies": n, "instances": int(sum(len(g) for g in gts)), **m["mean"],
            "per_movie": {k: {"idf1": v["idf1"], "fission": v["fission"], "fusion": v["fusion"]}
                          for k, v in m["timelapses"].items()}}


def part_model(n: int, tmp: Path) -> dict:
    from mitoscale.evaluate.tracking import tracking_metrics
    from mitoscale.io.tables import read_table
    from mitoscale.pipeline.samples import SampleUnit, _write_movie
    from mitoscale.segment.pipeline import run_segmentation
    from mitoscale.track.run import run_tracking

    out, gts, preds, seg_s = {}, [], [], 0.0
    for seed in range(n):
        root = tmp / f"m{seed}"
        _write_movie(root, SampleUnit(0, "movie", "", None, "", 0, "control"),
                     _movie_cfg(seed).model_dump(mode="json"))
        t0 = time.perf_counter()
        run_segmentation(root / "movie.ome.zarr", root / "seg", progress=False)
        seg_s += time.perf_counter() - t0
        run_tracking(root / "seg", root / "tracks")
        gts.append(read_table(root / "truth" / "movie.parquet").assign(image_id=f"m{seed}"))
        preds.append(read_table(root / "tracks" / "instances").assign(image_id=f"m{seed}"))
    m = tracking_metrics(pd.concat(gts, ignore_index=True), pd.concat(preds, ignore_index=True))
    out.update(movies=n, segment_s_per_frame=seg_s / (20 * n), true_instances=int(sum(len(g) for g in gts)),
               segmented_instances=int(sum(len(p) for p in preds)), **m["mean"])
    return out


def part_speed() -> dict:
    from threadpoolctl import threadpool_limits

    from mitoscale.track.link import track_timelapse
    from mitoscale.track.synthetic import simulate_movie

    mv = simulate_movie(_movie_cfg(5, frames=10, objects=300, image_px=1024, p_appear=3.0))
    gt = pd.concat(mv.tables, ignore_index=True).drop(columns=["track_id", "parent_track_ids"])
    with threadpool_limits(1):
        track_timelapse(gt[gt["t"] < 2])  # imports, Numba
        t0, c0 = time.perf_counter(), time.process_time()
        track_timelapse(gt)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    frames = int(gt["t"].nunique())
    return {"frames": frames, "instances_per_frame": len(gt) / frames, "wall_s_per_frame": wall / frames,
            "cpu_s_per_frame": cpu / frames}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="gt,model,speed")
    ap.add_argument("--movies", type=int, default=4)
    ap.add_argument("--model-movies", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # traccuracy warns per movie without divisions
    res: dict = {"load_average_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    parts = args.parts.split(",")
    if "gt" in parts:
        res["gt"] = part_gt(args.movies)
    if "model" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            res["model"] = part_model(args.model_movies, Path(tmp))
    if "speed" in parts:
        res["speed"] = part_speed()
    res["load_average_after"] = os.getloadavg()
    text = json.dumps(res, indent=1, default=float)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return res


if __name__ == "__main__":
    main()
