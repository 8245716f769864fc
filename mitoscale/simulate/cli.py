"""``mitoscale simulate`` and ``mitoscale simulate preview``."""

from __future__ import annotations

import argparse
import sys

from mitoscale.cluster import add_cluster_args
from mitoscale.errors import InputError
from mitoscale.config import add_override_args

__all__ = ["register"]

_EPILOG = """presets (--preset NAME, or --config FILE):
  paper   the method's Table 1 exactly (configs/simulate.yaml; the default)
  broad   the training preset: long, curved, branched and crossing mitochondria on the whole
          field, dots, uneven labelling, out-of-focus and cell haze, optics drawn per image,
          a camera in ADU, 8-bit stretched images, 60-110 nm rendering (configs/simulate_broad.yaml)

examples:
  mitoscale simulate --config configs/simulate.yaml --n-images 10000 --out corpus.zarr
  mitoscale simulate --preset broad --n-images 10000 --out corpus_broad.zarr
  mitoscale simulate --n-images 64 --out corpus.zarr --scheduler tcp://host:8786
  mitoscale simulate preview corpus.zarr --out montage.png --n 8
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="simulate a synthetic corpus of mitochondria images (Zarr v3)",
        description="Simulate mitochondria (3D Bezier tubes), image them through a Gibson-Lanni "
                    "widefield focal scan with Poisson noise, and write images, exact instance "
                    "masks and the instance table to a Zarr v3 corpus with Dask. Rerunning the "
                    "same command resumes an interrupted run.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=None, metavar="YAML",
                   help="simulator config (default: built-in defaults = configs/simulate.yaml)")
    p.add_argument("--preset", default=None, metavar="NAME",
                   help="a shipped preset instead of --config: paper (Table 1) or broad (training)")
    add_override_args(p, "geometry.width_nm=[250,450]")
    p.add_argument("--n-images", type=int, default=None, metavar="N", help="number of 512x512 images")
    p.add_argument("--out", default=None, metavar="CORPUS", help="output corpus.zarr directory")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--chunk-images", type=int, default=None, metavar="B",
                   help="images per Zarr chunk and Dask task (default: corpus.images_per_chunk)")
    add_cluster_args(p)
    p.set_defaults(func=_run)

    sub = p.add_subparsers(dest="simulate_command", metavar="{preview}")
    pv = sub.add_parser("preview", help="PNG montage of corpus images with instance outlines",
                        description="Write a PNG montage of the first N images of a corpus, each "
                                    "shown raw and with its ground-truth instance outlines.")
    pv.add_argument("corpus", help="corpus.zarr written by `mitoscale simulate`")
    pv.add_argument("--out", required=True, metavar="PNG", help="output PNG file")
    pv.add_argument("--n", type=int, default=8, help="number of images (default 8)")
    pv.add_argument("--start", type=int, default=0, help="first image index (default 0)")
    pv.set_defaults(func=_run_preview)


def _run(args: argparse.Namespace) -> int:
    from mitoscale.cluster import client_from_args
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.corpus import write_corpus

    if args.n_images is None or args.out is None:
        raise InputError("--n-images and --out are required (see mitoscale simulate --help)")
    if args.n_images <= 0:
        raise InputError(f"--n-images must be positive, got {args.n_images}")
    cfg = load_simulate_config(args.config, args.overrides, preset=args.preset)
    # validate the output before starting a cluster
    from mitoscale.simulate.corpus import prepare_store

    prepare_store(args.out, cfg, args.seed, args.n_images, args.chunk_images)
    with client_from_args(args) as client:
        res = write_corpus(cfg, args.out, args.n_images, seed=args.seed, client=client,
                           chunk_images=args.chunk_images)
    rate = res["images"] / max(res["seconds"], 1e-9)
    print(f"{args.out}: {res['chunks']} chunks ({res['skipped']} already done, {res['computed']} written, "
          f"{res['instances']} instances) in {res['seconds']:.1f} s"
          + (f", ~{rate:.1f} images/s" if res["computed"] else ""), file=sys.stderr)
    return 0


def _run_preview(args: argparse.Namespace) -> int:
    from mitoscale.simulate.preview import write_preview

    if args.n <= 0:
        raise InputError(f"--n must be positive, got {args.n}")
    path = write_preview(args.corpus, args.out, n=args.n, start=args.start)
    print(f"wrote {path}", file=sys.stderr)
    return 0
