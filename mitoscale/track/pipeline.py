"""The ``track`` stage of ``mitoscale run``: every segmented input with a time axis.

``RUN_DIR/tracks/<input>/`` holds :func:`mitoscale.track.run.run_tracking`'s
output for each segmented input that has timelapses (inputs without a time
axis, such as a plate of single frames, are skipped).  For the synthetic
movie (``samples.movie``) the stage also tracks the simulator's
ground-truth masks (``tracks/movie_truth``) and scores both against the
true tracks and events (``tracks/movie_metrics.json``): the ground-truth
input isolates the tracker, the segmented input measures the whole chain.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mitoscale.io.atomic import MarkerSet, atomic_write_json

__all__ = ["track_config", "track_stage", "track_progress"]

log = logging.getLogger(__name__)


def track_config(cfg):
    from mitoscale.pipeline.config import stage_config
    from mitoscale.track.config import TrackConfig

    return stage_config(TrackConfig, cfg.track.config, cfg.track.set)


def track_stage(cfg, run_dir: Path, jobs: list[dict], client) -> dict[str, Any]:
    """Track every segmented input that has timelapses; score the synthetic movie."""
    from mitoscale.track.run import plan_timelapses, run_tracking

    tcfg = track_config(cfg)
    summary: dict[str, Any] = {}
    for job in jobs:
        seg = run_dir / "segment" / job["name"]
        if not plan_timelapses(seg, require_time=False):
            continue
        man = run_tracking(seg, run_dir / "tracks" / job["name"], tcfg, client=client(), require_time=False)
        summary[job["name"]] = man["totals"]
    truth = run_dir / "samples" / "truth" / "movie.parquet"
    if "movie" in summary and truth.is_file():
        summary["movie_metrics"] = _score_movie(cfg, run_dir, truth, tcfg, client)
    return summary


def _score_movie(cfg, run_dir: Path, truth: Path, tcfg, client) -> dict:
    from mitoscale.evaluate.tracking import tracking_metrics
    from mitoscale.io.tables import read_table
    from mitoscale.track.run import run_tracking

    dt = cfg.samples.movie.frame_interval_s
    run_tracking(truth, run_dir / "tracks" / "movie_truth",
                 tcfg.model_copy(update={"frame_interval_s": tcfg.frame_interval_s or dt}), client=client())
    gt = read_table(truth)
    metrics = {name: tracking_metrics(gt.copy(), read_table(run_dir / "tracks" / sub / "instances"))
               for name, sub in (("ground_truth_masks", "movie_truth"), ("segmentation", "movie"))}
    atomic_write_json(run_dir / "tracks" / "movie_metrics.json", metrics)
    return {k: v["mean"] for k, v in metrics.items()}


def track_progress(run_dir: Path, jobs: list[dict]) -> tuple[int, int, str]:
    """(done, total, "timelapses") over the inputs tracked so far."""
    import json

    done = total = 0
    for job in jobs:
        out = run_dir / "tracks" / job["name"]
        done += len(MarkerSet(out / ".markers").completed())
        man = out / "manifest.json"
        total += json.loads(man.read_text())["timelapses"] if man.is_file() else 0
    return done, total, "timelapses"
