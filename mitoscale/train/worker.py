"""One training rank: ``python -m mitoscale.train.worker --config C --out D [--set k=v] [--resume]``.

Started by ``torch.distributed.run`` (see :mod:`mitoscale.train.launch`) or
directly by ``srun``; it reads its rank from the environment.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mitoscale.errors import MitoscaleError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mitoscale.train.worker")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from mitoscale.config import load_config
    from mitoscale.train.config import TrainConfig
    from mitoscale.train.loop import run_training

    try:
        cfg = load_config(args.config, TrainConfig, overrides=args.set)
        run_training(cfg, args.out, resume=args.resume)
    except MitoscaleError as exc:
        print(f"mitoscale train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
