"""``mitoscale track SEG_OUT --out TRACKS``: follow each mitochondrion through a timelapse."""

from __future__ import annotations

import argparse
import sys

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``track`` subcommand."""
    from mitoscale.cluster import add_cluster_args
    from mitoscale.config import add_override_args

    p = subparsers.add_parser(
        "track", help="link instances through time: tracks, fission and fusion (laptrack)",
        description="Link the instances of consecutive frames of every timelapse (each image, well "
                    "and field on its own) with laptrack's LAP tracker, from mask overlap and "
                    "centroid distance in µm after drift correction, with gap closing, and detect "
                    "fission and fusion. Writes the instance table with track_id/parent_track_ids, "
                    "a track table, an events table (Parquet) and napari-tracks CSVs. One Dask task "
                    "per timelapse; rerunning resumes. See docs/track.md.")
    p.add_argument("seg_out", metavar="SEG_OUT",
                   help="segmentation output (mitoscale segment --out) or an instance table")
    p.add_argument("--out", required=True, metavar="TRACKS", help="output directory")
    p.add_argument("--config", default=None, metavar="YAML", help="track config (configs/track.yaml)")
    add_override_args(p, "gap_frames=2")
    p.add_argument("--max-distance", type=float, default=None, metavar="UM",
                   help="largest displacement between frames, µm (default 1.0)")
    p.add_argument("--frame-interval", type=float, default=None, metavar="SECONDS",
                   help="time step; required when the input's metadata has none")
    p.add_argument("--in-process", action="store_true", help="run here without a Dask cluster")
    add_cluster_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import contextlib

    from mitoscale.cluster import client_from_args
    from mitoscale.config import load_config
    from mitoscale.errors import ConfigError
    from mitoscale.track.config import TrackConfig
    from mitoscale.track.run import plan_timelapses, run_tracking

    overrides = list(args.overrides)
    if args.max_distance is not None:
        if not args.max_distance > 0:
            raise ConfigError(f"--max-distance must be > 0 µm, got {args.max_distance:g}")
        overrides.append(f"max_distance_um={args.max_distance}")
    if args.frame_interval is not None:
        if not args.frame_interval > 0:
            raise ConfigError(f"--frame-interval must be > 0 s, got {args.frame_interval:g}")
        overrides.append(f"frame_interval_s={args.frame_interval}")
    cfg = load_config(args.config, TrackConfig, overrides)
    plan_timelapses(args.seg_out)  # fail fast on bad input, before a cluster starts
    ctx = contextlib.nullcontext(None) if args.in_process else client_from_args(args)
    with ctx as client:
        man = run_tracking(args.seg_out, args.out, cfg, client=client)
    t = man["totals"]
    print(f"{args.out}: {man['timelapses']} timelapses ({man['skipped']} already done), "
          f"{t['tracks']} tracks, {t['fission']} fission and {t['fusion']} fusion events",
          file=sys.stderr)
    return 0
