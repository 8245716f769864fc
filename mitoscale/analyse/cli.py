"""``mitoscale analyze``: per-condition dot/rod morphology."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze", help="per-condition dot/rod morphology from instance tables (xarray, CSV, figures)",
        description="Classify every instance as dot (area <= threshold in µm²) or rod, count and "
                    "measure each class per image, aggregate per condition with bootstrap CIs, and "
                    "write morphology.nc, per_image.csv, per_condition.csv and three figures "
                    "(counts, proportion of counts, proportion of area) as PNG and PDF.",
    )
    p.add_argument("tables", nargs="+", help="instance tables (Parquet files or directories of parts)")
    p.add_argument("--conditions", required=True,
                   help="CSV with a 'condition' column and an image column (image_id/image/file) or 'well'")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", default=None, help="YAML config (see configs/analyse.yaml)")
    p.add_argument("--dot-max-area", type=float, default=None, metavar="UM2",
                   help="dot/rod boundary in µm² (default 1.28 = 200 px at 80 nm)")
    p.add_argument("--tracks", action="append", default=[], metavar="TRACKS",
                   help="mitoscale track output (repeatable): adds fission/fusion rates and track "
                        "lifetimes per condition")
    p.add_argument("--classes", choices=["dot_rod", "dot_rod_network"], default=None,
                   help="class rule: dot/rod by area (default) or dot/rod/network (network = branched)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting")
    p.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from mitoscale.analyse.config import AnalyseConfig
    from mitoscale.analyse.run import analyse_paths, format_summary, write_outputs
    from mitoscale.config import load_config
    from mitoscale.io.atomic import check_writable

    overrides = list(args.set)
    if args.dot_max_area is not None:
        overrides.append(f"dot_max_area_um2={args.dot_max_area}")
    if args.classes is not None:
        overrides.append(f"class_rule={args.classes}")
    cfg = load_config(args.config, AnalyseConfig, overrides)
    check_writable(args.out)
    # streamed: only the columns it needs, memory bounded by the number of images (not instances)
    ds = analyse_paths(args.tables, args.conditions, cfg, attrs=dict(tables=" ".join(map(str, args.tables))),
                       tracks=args.tracks or None)
    paths = write_outputs(ds, args.out)
    print(format_summary(ds))
    print(f"wrote {len(paths)} files to {args.out} (morphology.nc, CSVs, fig_a/b/c .png/.pdf)")
    return 0
