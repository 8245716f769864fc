"""Process-group set-up for DDP: torchrun's environment or SLURM's.

``torch.distributed.run`` (what ``mitoscale train --nproc-per-node`` wraps)
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``.  Under ``srun`` (one task per GPU) those come from SLURM:
``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``; the master address
is the first host of the job (``deploy/slurm/train.sbatch`` exports it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from mitoscale.errors import ConfigError

__all__ = ["DistInfo", "dist_info", "resolve_device", "init_distributed", "cleanup_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_info(env: dict[str, str] | None = None) -> DistInfo:
    """Rank, world size and local rank from torchrun's or SLURM's environment."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return DistInfo(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
    return DistInfo()


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto``/``cpu``/``cuda`` -> a device; asking for a missing GPU is a ConfigError."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available on this machine")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    n = torch.cuda.device_count()
    return torch.device("cuda", local_rank % n)


def init_distributed(info: DistInfo, device: torch.device) -> None:
    """Join the process group (NCCL on GPU, gloo on CPU); a no-op for one process."""
    if not info.enabled or torch.distributed.is_initialized():
        return
    if "MASTER_ADDR" not in os.environ:
        raise ConfigError("distributed run without MASTER_ADDR/MASTER_PORT: launch with "
                          "`mitoscale train --nproc-per-node N` or the SLURM script")
    os.environ.setdefault("MASTER_PORT", "29500")
    os.environ["RANK"], os.environ["WORLD_SIZE"] = str(info.rank), str(info.world)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend, rank=info.rank, world_size=info.world)


def cleanup_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
