"""``mitoscale evaluate`` and ``mitoscale baseline``."""

from __future__ import annotations

import argparse

from mitoscale.config import add_override_args

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``evaluate`` and ``baseline`` subcommands."""
    p = subparsers.add_parser(
        "evaluate", help="match predicted to ground-truth instances (precision, recall, Dice)",
        description="Evaluate predicted instance tables against ground truth with the paper's "
                    "protocol: predictions under --min-size px are dropped; each ground-truth instance "
                    "takes its best-Dice prediction (Dice >= --threshold), each prediction matches at "
                    "most once (ties: descending Dice, then lower ground-truth, then lower prediction "
                    "index). Prints the summary and, with --out, writes per_image, matches and summary files.",
    )
    p.add_argument("pred", help="predicted instance table (Parquet file or directory of parts)")
    p.add_argument("gt", help="ground-truth instance table (a corpus.zarr works too: its instances/ parts)")
    p.add_argument("--out", default=None, help="directory for per_image, matches and summary files")
    p.add_argument("--config", default=None, help="YAML config (see configs/evaluate.yaml)")
    p.add_argument("--threshold", type=float, default=None, help="minimum Dice of a match (default 0.5)")
    p.add_argument("--min-size", type=int, default=None, help="drop predictions under this many px (default 10)")
    p.add_argument("--matching", choices=["greedy", "optimal"], default=None,
                   help="greedy (default, the paper's protocol) or optimal (max total Dice)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="per-image/matches file format")
    p.add_argument("--tracking", action="store_true",
                   help="also score tracks (both tables tracked, e.g. PRED = a `mitoscale track` output): "
                        "IDF1, MOTA, ID switches (motmetrics), fission and fusion F1 (traccuracy); "
                        "writes tracking.json with --out")
    p.add_argument("--match-um", type=float, default=0.5, metavar="UM",
                   help="tracking: largest centroid distance of a match, µm (default 0.5)")
    p.set_defaults(func=_evaluate)

    b = subparsers.add_parser(
        "baseline", help="segment with a baseline method (classical, nellie) into instance tables",
        description="Run a baseline segmenter over an OME-Zarr image/plate or a TIFF/PNG file or folder. "
                    "Writes OUT/instances/<frame>.parquet (the same table format as `mitoscale segment`) "
                    "and manifest.json, and resumes after interruption; the output folder follows the "
                    "same contract as `mitoscale segment` (refused inside the input or when it holds "
                    "another run; failed frames listed and retried by a rerun).",
    )
    b.add_argument("name", choices=["classical", "nellie"], help="baseline method")
    b.add_argument("input", help="OME-Zarr, TIFF/PNG file or folder")
    b.add_argument("--out", required=True, help="output directory")
    b.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="pixel size in µm (required for TIFF/PNG; overrides OME-Zarr metadata)")
    b.add_argument("--channel", default="0", help="channel index or name (default 0)")
    b.add_argument("--z-mode", choices=["max", "each"], default="max", help="max-project z or each plane")
    b.add_argument("--config", default=None, help="YAML settings of the method (configs/baseline_<name>.yaml)")
    b.add_argument("--overwrite", action="store_true",
                   help="replace a run of another method, config or input held in OUT")
    add_override_args(b, "threshold=li")
    from mitoscale.cluster import add_cluster_args

    add_cluster_args(b)
    b.set_defaults(func=_baseline)


def _evaluate(args: argparse.Namespace) -> int:
    from mitoscale.config import dump_config, load_config
    from mitoscale.evaluate.config import EvaluateConfig
    from mitoscale.evaluate.metrics import evaluate_tables
    from mitoscale.evaluate.report import format_summary, write_evaluation
    from mitoscale.io.atomic import check_writable
    from mitoscale.io.tables import read_table

    overrides = [f"{k}={v}" for k, v in (("threshold", args.threshold), ("min_size", args.min_size),
                                        ("matching", args.matching)) if v is not None]
    cfg = load_config(args.config, EvaluateConfig, overrides)
    if args.out:
        check_writable(args.out)
    from pathlib import Path

    pred_path = Path(args.pred) / "instances" if (Path(args.pred) / "instances").is_dir() else args.pred
    pred = read_table(pred_path)
    gt = read_table(args.gt)
    per_image, summary, matches = evaluate_tables(pred, gt, threshold=cfg.threshold, min_size=cfg.min_size,
                                                  matching=cfg.matching, return_matches=True)
    print(format_summary(summary, title=f"{args.pred} vs {args.gt}"))
    if args.out:
        write_evaluation(args.out, per_image, summary, matches, fmt=args.format,
                         meta=dict(config=dump_config(cfg), pred=str(args.pred), gt=str(args.gt)))
        print(f"wrote {args.out}/per_image.{args.format}, matches.{args.format}, summary.csv, summary.json")
    if args.tracking:
        _evaluate_tracking(pred, gt, args)
    return 0


def _evaluate_tracking(pred, gt, args: argparse.Namespace) -> None:
    import json
    from pathlib import Path

    from mitoscale.errors import ConfigError
    from mitoscale.evaluate.tracking import tracking_metrics
    from mitoscale.io.atomic import atomic_write_json

    if not args.match_um > 0:
        raise ConfigError(f"--match-um must be > 0, got {args.match_um:g}")
    res = tracking_metrics(gt, pred, match_um=args.match_um)
    m = res["mean"]
    print(f"tracking: IDF1 {m['idf1']:.3f}  MOTA {m['mota']:.3f}  ID switches {m['id_switches']:.1f}  "
          f"fission F1 {m['fission_f1']:.3f} (n={m['fission_true']})  "
          f"fusion F1 {m['fusion_f1']:.3f} (n={m['fusion_true']})")
    if args.out:
        atomic_write_json(Path(args.out) / "tracking.json", json.loads(json.dumps(res, default=float)))


def _baseline(args: argparse.Namespace) -> int:
    from mitoscale.cluster import client_from_args
    from mitoscale.evaluate.baselines.run import execute_plan, load_baseline_config, plan_baseline

    cfg = load_baseline_config(args.name, args.config, args.overrides)
    channel = int(args.channel) if args.channel.lstrip("-").isdigit() else args.channel
    plan = plan_baseline(args.name, args.input, args.out, cfg=cfg, pixel_size_um=args.pixel_size,
                         channel=channel, z_mode=args.z_mode, overwrite=args.overwrite)
    if plan.jobs:
        with client_from_args(args) as client:
            result = execute_plan(plan, client)
    else:
        result = execute_plan(plan)
    print(f"baseline {args.name}: {result['n_frames']} frame(s) "
          f"({result['n_done_before']} already done), {result['n_instances']} new instances, "
          f"{result['n_instances_total']} in all -> {result['out']}")
    return 0
