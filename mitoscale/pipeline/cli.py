"""``mitoscale run`` and ``mitoscale status``."""

from __future__ import annotations

import argparse

from mitoscale.cluster import add_cluster_args
from mitoscale.config import add_override_args

__all__ = ["register"]

_RUN_EPILOG = """examples:
  mitoscale run --config configs/demo.yaml --out demo_out
  mitoscale run --config configs/pipeline.yaml --out run1 --cluster slurm --cluster-opt queue=compute
  mitoscale run --config configs/pipeline.yaml --out run1 --set segment.set.prompts.spacing=8
  mitoscale status run1

Rerunning the same command resumes: complete stages are skipped (their config
key is unchanged), an interrupted stage continues from its finished units, and
a stage whose configuration changed is recomputed together with everything
downstream of it.  SIGTERM (a SLURM walltime or scancel) stops cleanly.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run", help="run the whole pipeline from one config (simulate, train, segment, analyze)",
        description="Run every enabled stage of a pipeline config into one output folder: "
                    "simulate a training corpus, synthesise sample acquisitions, train (or use "
                    "the shipped model), segment, and analyse. Resumes after interruptions.",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, metavar="YAML", help="pipeline config, e.g. configs/pipeline.yaml")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="output folder of the run")
    add_override_args(p, "simulate.n_images=128")
    p.add_argument("--only", action="append", default=None, metavar="STAGE",
                   help="run only this stage (repeatable); upstream stages must be complete")
    add_cluster_args(p)
    p.set_defaults(func=_run)

    s = subparsers.add_parser(
        "status", help="show which stages and units of a run are complete, failed or pending",
        description="Show each stage of a `mitoscale run` output folder: state (complete, "
                    "running, interrupted, failed, stale, pending), finished/total units, and "
                    "when, and every failed unit with its reason. With --config, stages the new "
                    "config would recompute show as stale. On the output folder of one "
                    "`mitoscale segment` or `baseline` run: its state, frames and failed frames.")
    s.add_argument("run_dir", metavar="RUN_DIR",
                   help="output folder of `mitoscale run`, or of one `segment`/`baseline` run")
    s.add_argument("--config", default=None, metavar="YAML",
                   help="compare with this pipeline config instead of the last run's")
    add_override_args(s, "simulate.n_images=128")
    s.set_defaults(func=_status)


def _run(args: argparse.Namespace) -> int:
    from mitoscale.pipeline.config import load_pipeline_config
    from mitoscale.pipeline.run import run_pipeline
    from mitoscale.pipeline.status import format_status, run_status

    cfg = load_pipeline_config(args.config, args.overrides)
    # the command line's cluster choice wins over the config's
    if args.cluster:
        cfg.cluster.profile = args.cluster
    import yaml

    for item in args.cluster_opt:
        key, _, value = item.partition("=")
        cfg.cluster.options[key.strip()] = yaml.safe_load(value) if value else None
    if args.scheduler:
        cfg.cluster.scheduler = args.scheduler
    if args.workers:
        cfg.cluster.workers = args.workers
    run_pipeline(cfg, args.out, only=args.only)
    print(format_status(run_status(args.out), args.out))
    return 0


def _status(args: argparse.Namespace) -> int:
    from mitoscale.pipeline.config import load_pipeline_config
    from mitoscale.pipeline.status import (folder_status, format_folder_status, format_status,
                                           is_run_folder, run_status)
    from mitoscale.pipeline.state import RunState

    if RunState(args.run_dir).saved_config() is None and is_run_folder(args.run_dir):
        st = folder_status(args.run_dir)
        print(format_folder_status(st, args.run_dir))
        return 1 if st["failed"] or st["status"] == "failed" else 0
    cfg = load_pipeline_config(args.config, args.overrides) if args.config else None
    rows = run_status(args.run_dir, cfg)
    print(format_status(rows, args.run_dir))
    return 1 if any(r.state == "failed" for r in rows) else 0
