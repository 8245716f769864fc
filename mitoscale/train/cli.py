"""``mitoscale train`` and ``mitoscale train embed``."""

from __future__ import annotations

import argparse

from mitoscale.config import add_override_args

__all__ = ["register"]

EPILOG = """examples:
  mitoscale train --config configs/train.yaml --out runs/small
  mitoscale train --config configs/train.yaml --out runs/small --resume
  mitoscale train --config configs/train.yaml --out runs/ddp --nproc-per-node 4
  mitoscale train --config configs/train.yaml --out runs/mn --nproc-per-node 4 \\
      --nnodes 2 --node-rank 0 --rdzv-endpoint node01:29400
  mitoscale train embed --config configs/train_cached.yaml --out cache.zarr
  mitoscale train export runs/small/model.safetensors --out my-model.safetensors
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="fine-tune or train SAM on a synthetic corpus (DDP-ready)",
        description="Train a SAM-architecture model on a corpus written by `mitoscale simulate`: "
                    "K foreground point prompts per image, Dice-min loss, AdamW + cosine, "
                    "checkpoints every N steps (--resume continues), CSV + TensorBoard logs. "
                    "With --nproc-per-node/--nnodes it runs under torch.distributed.run (gloo on "
                    "CPU, NCCL on GPU); under srun each SLURM task is one rank.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=False, help="training YAML (see configs/train.yaml)")
    p.add_argument("--out", required=False, help="run directory (checkpoints, logs, final model)")
    add_override_args(p, "steps=500 --set data.corpus=c.zarr")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoints/latest (model, optimiser, schedule, step, RNG)")
    g = p.add_argument_group("distributed (torch.distributed.run)")
    g.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="worker processes on this node (GPUs per node on a GPU machine)")
    g.add_argument("--nnodes", type=int, default=1, metavar="M", help="number of nodes")
    g.add_argument("--node-rank", type=int, default=0, metavar="R", help="this node's rank")
    g.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                   help="rendezvous address shared by all nodes (needed with --nnodes > 1)")
    p.set_defaults(func=_train)

    sub = p.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    e = sub.add_parser(
        "embed", help="precompute image embeddings of a corpus for decoder-only training",
        description="Encode every tile of every corpus image with the config's (frozen) image "
                    "encoder in a Dask graph and write the embeddings to a Zarr store. The store "
                    "records the model identity and the corpus checksum; training with "
                    "data.embedding_cache refuses a cache that does not match.")
    e.add_argument("--config", required=True, help="training YAML (model + data.corpus)")
    e.add_argument("--out", required=True, help="embedding store to write (e.g. cache.zarr)")
    add_override_args(e, "data.corpus=c.zarr")
    e.add_argument("--dtype", choices=["float16", "float32"], default="float16",
                   help="storage dtype of the embeddings (default float16)")
    e.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads per Dask task (one task per corpus chunk; default 1)")
    from mitoscale.cluster import add_cluster_args

    add_cluster_args(e)
    e.set_defaults(func=_embed)

    x = sub.add_parser(
        "export", help="copy a trained model to a shipped weights file (float16 by default)",
        description="Write a run's model (or a checkpoint's model.safetensors) as a standalone "
                    "model file: safetensors weights plus the JSON model config, optionally in "
                    "float16 to halve its size. `mitoscale segment --model FILE` loads it; the "
                    "package's default model is mitoscale/weights/mitoscale-small.safetensors.")
    x.add_argument("model", help="source model.safetensors")
    x.add_argument("--out", required=True, help="destination .safetensors")
    x.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    x.add_argument("--meta", default=None, metavar="JSON",
                   help="JSON file whose mapping is merged into the model's metadata")
    x.set_defaults(func=_export)


def _train(args) -> int:
    from mitoscale.config import load_config
    from mitoscale.errors import ConfigError
    from mitoscale.train.config import TrainConfig

    if not args.config or not args.out:
        raise ConfigError("mitoscale train needs --config and --out")
    cfg = load_config(args.config, TrainConfig, overrides=args.overrides)
    if args.nproc_per_node > 1 or args.nnodes > 1:
        from mitoscale.train.launch import launch_workers, torchrun_argv
        from mitoscale.train.loop import preflight

        preflight(cfg, args.out, args.resume)  # bad input fails here, before any worker starts
        argv = torchrun_argv(args.config, args.out, args.overrides, args.resume, args.nproc_per_node,
                             args.nnodes, args.node_rank, args.rdzv_endpoint)
        return launch_workers(argv)
    from mitoscale.train.loop import run_training

    result = run_training(cfg, args.out, resume=args.resume)
    val = result["val"]
    msg = f"trained {result['step']} steps -> {result['model']}"
    if val:
        msg += (f" (validation: precision {val['precision']:.3f}, recall {val['recall']:.3f}, "
                f"mean Dice {val['mean_dice']:.3f})")
    print(msg)
    return 0


def _embed(args) -> int:
    from mitoscale.cluster import client_from_args
    from mitoscale.config import load_config
    from mitoscale.train.config import TrainConfig
    from mitoscale.train.embed import write_embeddings

    cfg = load_config(args.config, TrainConfig, overrides=args.overrides)
    with client_from_args(args) as client:
        path = write_embeddings(cfg, args.out, client=client, dtype=args.dtype, threads=args.threads)
    print(f"embeddings written to {path}")
    return 0


def _export(args) -> int:
    import json
    from pathlib import Path

    from mitoscale.errors import InputError
    from mitoscale.train.export import export_model

    meta = None
    if args.meta:
        try:
            meta = json.loads(Path(args.meta).read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"--meta {args.meta}: not a readable JSON file ({exc})") from None
    path = export_model(args.model, args.out, dtype=args.dtype, meta=meta)
    print(f"model written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
