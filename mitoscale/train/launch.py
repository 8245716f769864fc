"""``mitoscale train`` process launching: one process, torch's elastic launcher, or SLURM.

- ``--nproc-per-node N`` (and/or ``--nnodes M``) re-runs this training as N
  worker processes per node through ``torch.distributed.run`` (elastic,
  c10d rendezvous; ``--standalone`` on one node without an endpoint).
- Under ``srun`` with several tasks, every task already is one rank: the
  worker reads ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``
  (:func:`mitoscale.train.distributed.dist_info`) and no launcher is used.
"""

from __future__ import annotations

import os
import sys

from mitoscale.errors import ConfigError

__all__ = ["torchrun_argv", "launch_workers"]


def torchrun_argv(config: str, out: str, overrides: list[str], resume: bool, nproc_per_node: int,
                  nnodes: int = 1, node_rank: int = 0, rdzv_endpoint: str | None = None,
                  rdzv_id: str = "mitoscale-train", max_restarts: int = 0) -> list[str]:
    """Arguments for ``torch.distributed.run`` that start ``mitoscale.train.worker``."""
    if nproc_per_node < 1 or nnodes < 1:
        raise ConfigError("--nproc-per-node and --nnodes must be >= 1")
    if nnodes > 1 and not rdzv_endpoint:
        raise ConfigError("--nnodes > 1 needs --rdzv-endpoint host:port (the same on every node)")
    argv = [f"--nproc-per-node={nproc_per_node}", f"--max-restarts={max_restarts}"]
    if nnodes == 1 and not rdzv_endpoint:
        argv.append("--standalone")
    else:
        argv += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", "--rdzv-backend=c10d",
                 f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={rdzv_id}"]
    argv += ["--module", "mitoscale.train.worker", "--config", config, "--out", out]
    for item in overrides:
        argv += ["--set", item]
    if resume:
        argv.append("--resume")
    return argv


def launch_workers(argv: list[str]) -> int:
    """Run ``torch.distributed.run`` with ``argv``; return its exit status."""
    from torch.distributed import run as torchrun

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        torchrun.main(argv)
    except SystemExit as exc:  # torchrun exits on failure of a worker
        return int(exc.code or 0)
    except Exception as exc:  # noqa: BLE001 - ChildFailedError and rendezvous errors
        print(f"mitoscale train: distributed run failed: {exc.__class__.__name__}: "
              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}", file=sys.stderr)
        return 1
    return 0
