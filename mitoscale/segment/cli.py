"""``mitoscale segment``: find every mitochondrion in an image, timelapse or plate."""

from __future__ import annotations

import argparse
import sys

from mitoscale.cluster import add_cluster_args
from mitoscale.config import add_override_args

__all__ = ["register"]

_EPILOG = """examples:
  mitoscale segment movie.ome.zarr --out movie-seg            # shipped model, local Dask cluster
  mitoscale segment plate.ome.zarr --model my.safetensors --out plate-seg --scheduler tcp://host:8786
  mitoscale segment pngs/ --pixel-size 0.08 --out pngs-seg --workers 2
  mitoscale segment stack.ome.zarr --z each --channel 1 --out seg --set decode.window=null

outputs (in --out): instances/*.parquet (one part per frame; read with
mitoscale.io.tables.read_table), labels/mitochondria (OME-Zarr label image,
mirrored per plate field; or in INPUT with --labels-into-input), manifest.json.
Rerunning resumes; finished frames are skipped. Frames that fail (a blank
field, a corrupt chunk) do not stop the others: the run ends with one line
naming them (full list in OUT/failed.json, `mitoscale status OUT`) and a
rerun retries only those. OUT holding a run of another input, config or
model is refused (--overwrite replaces it).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "segment",
        help="segment mitochondria in OME-Zarr images/plates or TIFF/PNG files with SAM",
        description="Resample every 2D frame to the model pixel size (80 nm), cut it into "
                    "overlapping tiles, prompt the SAM model with points on the Otsu foreground, "
                    "decode each prompt in a local embedding window, clean up and stitch the "
                    "masks into one instance per mitochondrion, map them back to the input grid, "
                    "and write an instance table, an OME-Zarr label image and a manifest. "
                    "One Dask graph over frames x tiles; rerunning resumes.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT",
                   help="OME-Zarr image or HCS plate (NGFF 0.4/0.5), or a TIFF/PNG file or folder")
    p.add_argument("--out", required=True, metavar="OUT", help="output directory (not inside INPUT)")
    p.add_argument("--model", default=None, metavar="CKPT",
                   help="model checkpoint (.safetensors with its .json); default: the shipped "
                        "mitoscale-small model")
    p.add_argument("--config", default=None, metavar="YAML",
                   help="segment config (default: built-in defaults = configs/segment.yaml)")
    add_override_args(p, "prompts.spacing=8")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="pixel size in µm (required for TIFF/PNG; overrides OME-Zarr metadata)")
    p.add_argument("--channel", default=None, metavar="C", help="channel index or name (default 0)")
    p.add_argument("--z", choices=["max", "each"], default=None, dest="z_mode",
                   help="z handling: max projection (default) or each plane on its own")
    p.add_argument("--overwrite", action="store_true",
                   help="discard a previous run in OUT made with another config, model or input")
    p.add_argument("--labels-into-input", action="store_true",
                   help="write the label images into INPUT's labels/ (an OME-Zarr store you own; "
                        "they appear there only when every frame is done); tables, markers and "
                        "the manifest still go to OUT")
    p.add_argument("--in-process", action="store_true",
                   help="run in this process without a Dask cluster (small inputs, debugging)")
    add_cluster_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import contextlib

    from mitoscale.cluster import client_from_args
    from mitoscale.config import load_config
    from mitoscale.segment.config import SegmentConfig
    from mitoscale.segment.pipeline import preflight, run_segmentation

    overrides = list(args.overrides)
    if args.pixel_size is not None:
        overrides.append(f"input.pixel_size_um={args.pixel_size}")
    if args.channel is not None:
        overrides.append(f"input.channel={args.channel}")
    if args.z_mode is not None:
        overrides.append(f"input.z_mode={args.z_mode}")
    cfg = load_config(args.config, SegmentConfig, overrides)
    # fail fast, before a cluster starts
    preflight(args.input, args.out, args.model, cfg, labels_into_input=args.labels_into_input)
    ctx = contextlib.nullcontext(None) if args.in_process else client_from_args(args)
    with ctx as client:
        man = run_segmentation(args.input, args.out, model=args.model, cfg=cfg, client=client,
                               overwrite=args.overwrite, labels_into_input=args.labels_into_input)
    c = man["counts"]
    ppi = man["decoder_prompts_per_instance"]
    print(f"{args.out}: {man['frames']} frames ({man['frames_skipped']} already done), "
          f"{c['instances']} instances, {c['decoded']} decoder prompts"
          + (f" ({ppi:.2f} per instance)" if ppi else "")
          + f", {man['timing']['total_s']:.1f} s", file=sys.stderr)
    return 0
