"""Cluster profiles: validated settings for every place a Dask cluster can run.

A profile is a small YAML file with a ``kind`` and the settings of that kind:

``local``
    A :class:`distributed.LocalCluster` sized to the machine.
``address``
    An already running scheduler.
``slurm``, ``pbs``, ``lsf``, ``sge``
    Batch-submitted workers through dask-jobqueue.
``cuda``
    dask-cuda's ``LocalCUDACluster``, one worker per GPU (``gpu`` extra).

``--cluster NAME`` finds ``NAME.yaml`` in, in order: the directories of
``$MITOSCALE_CLUSTER_PATH`` (``:``-separated), ``./configs/cluster``,
``~/.config/mitoscale/cluster`` and the ``configs/cluster`` shipped next to
the package; a NAME that is one of the kinds above and has no file uses that
kind's defaults.  ``--cluster path/to/profile.yaml`` reads that file.
Single keys are overridden with ``--cluster-opt key=value``.

Examples
--------
>>> p = resolve_profile("slurm", ["queue=gpu", "memory=16GiB"])
>>> p.kind, p.queue, p.worker_memory_bytes() // 2**30
('slurm', 'gpu', 16)
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import Field, PositiveInt, field_validator

from mitoscale.config import StrictModel, apply_overrides, load_yaml, validate
from mitoscale.errors import ClusterError

__all__ = [
    "KINDS",
    "JOBQUEUE_KINDS",
    "LocalProfile",
    "AddressProfile",
    "JobqueueProfile",
    "CudaProfile",
    "Profile",
    "profile_search_path",
    "find_profile_file",
    "available_profiles",
    "resolve_profile",
    "parse_memory",
]

JOBQUEUE_KINDS = ("slurm", "pbs", "lsf", "sge")
KINDS = ("local", "address", *JOBQUEUE_KINDS, "cuda")

#: the memory one Dask worker needs to import torch, hold a small SAM and a
#: few 512x512 tiles (peak RSS measured ~1.3 GiB, see docs/hpc.md), rounded up
DEFAULT_MIN_WORKER_MEMORY = "2GiB"

_DASHBOARD_LOCAL = "127.0.0.1:8787"


def parse_memory(text: str | int) -> int:
    """Bytes in a memory string (``"8GiB"``, ``"500MB"``, ``"4G"``) or an int.

    Raises
    ------
    ValueError
        For a string that is not a memory size.
    """
    from dask.utils import parse_bytes

    if isinstance(text, int):
        return text
    try:
        return int(parse_bytes(str(text)))
    except (ValueError, TypeError):
        raise ValueError(f"not a memory size: {text!r} (use e.g. 8GiB, 500MB)") from None


def _check_memory(value: str) -> str:
    parse_memory(value)
    return value


class LocalProfile(StrictModel):
    """A LocalCluster on this machine (the default)."""

    kind: Literal["local"] = "local"
    n_workers: PositiveInt | None = Field(
        None, description="worker processes; default one per core (at most 8)")
    threads_per_worker: PositiveInt = 1
    memory_limit: str = Field("auto", description="per worker; 'auto' splits the machine's memory")
    dashboard_address: str | None = Field(
        _DASHBOARD_LOCAL, description="host:port of the dashboard; 127.0.0.1 keeps it private")
    host: str = "127.0.0.1"
    local_directory: str | None = None

    def default_workers(self) -> int:
        return self.n_workers or max(1, min(os.cpu_count() or 1, 8))


class AddressProfile(StrictModel):
    """Connect to a scheduler that is already running."""

    kind: Literal["address"] = "address"
    address: str | None = Field(None, description="tcp://host:port (or --scheduler)")
    scheduler_file: str | None = Field(
        None, description="JSON file written by `dask scheduler --scheduler-file` (batch jobs)")
    timeout: str = "20s"


_WALLTIME = {
    # slurm accepts [D-]HH:MM:SS (and more); pbs/sge HH:MM:SS; lsf [HH:]MM
    "slurm": re.compile(r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$"),
    "pbs": re.compile(r"^\d{1,4}:\d{2}:\d{2}$"),
    "sge": re.compile(r"^\d{1,4}:\d{2}:\d{2}$"),
    "lsf": re.compile(r"^(\d{1,4}:)?\d{1,4}$"),
}
_WALLTIME_EXAMPLE = {"slurm": "02:00:00", "pbs": "02:00:00", "sge": "02:00:00", "lsf": "02:00"}


class JobqueueProfile(StrictModel):
    """Workers submitted as batch jobs through dask-jobqueue.

    One job runs ``processes`` worker processes on ``cores`` cores with
    ``memory`` in total; each worker therefore gets ``memory / processes``.
    """

    kind: Literal["slurm", "pbs", "lsf", "sge"]
    queue: str | None = Field(None, description="partition (SLURM) or queue; required")
    account: str | None = Field(None, description="account/project to charge")
    cores: PositiveInt = Field(1, description="cores per job")
    processes: PositiveInt = Field(1, description="worker processes per job")
    memory: str = Field("8GiB", description="memory per job")
    walltime: str = Field("01:00:00", description="per job; LSF uses HH:MM")
    job_extra_directives: list[str] = Field(
        default_factory=list, description="extra #SBATCH/#PBS/#BSUB/#$ lines, e.g. --gres=gpu:1")
    job_script_prologue: list[str] = Field(
        default_factory=list, description="shell lines run before the worker (module load, ...)")
    resource_spec: str | None = Field(None, description="PBS -l / SGE -l resource string")
    local_directory: str | None = Field(
        None, description="fast node-local scratch for spilling, e.g. $TMPDIR")
    log_directory: str = Field(
        "mitoscale-logs/dask-workers", description="worker job stdout/stderr (made absolute)")
    interface: str | None = Field(None, description="network interface, e.g. ib0 (lo in tests)")
    python: str | None = Field(None, description="python on the compute nodes; default: this one")
    death_timeout: PositiveInt = 120
    workers: PositiveInt = Field(1, description="worker processes to start (fixed size)")
    adaptive_minimum: int | None = Field(None, ge=0, description="adaptive: fewest workers")
    adaptive_maximum: PositiveInt | None = Field(None, description="adaptive: most workers")
    dashboard_address: str | None = _DASHBOARD_LOCAL
    min_worker_memory: str = Field(
        DEFAULT_MIN_WORKER_MEMORY, description="refuse profiles that give a worker less")
    check_queue: bool = Field(True, description="ask the batch system that the queue exists")
    start_timeout: float | None = Field(
        None, description="seconds to wait for the first worker (default: wait for the queue)")

    _check_mem = field_validator("memory", "min_worker_memory")(_check_memory)

    def worker_memory_bytes(self) -> int:
        return parse_memory(self.memory) // self.processes

    def adaptive(self) -> bool:
        return self.adaptive_maximum is not None


class CudaProfile(StrictModel):
    """dask-cuda's LocalCUDACluster: one worker per visible GPU."""

    kind: Literal["cuda"] = "cuda"
    devices: str | None = Field(None, description="CUDA_VISIBLE_DEVICES, e.g. '0,1'; default all")
    threads_per_worker: PositiveInt = 1
    memory_limit: str = "auto"
    rmm_pool_size: str | None = None
    dashboard_address: str | None = _DASHBOARD_LOCAL
    local_directory: str | None = None


Profile = Annotated[
    Union[LocalProfile, AddressProfile, JobqueueProfile, CudaProfile],
    Field(discriminator="kind"),
]


_MODELS = {"local": LocalProfile, "address": AddressProfile, "cuda": CudaProfile,
           **{k: JobqueueProfile for k in JOBQUEUE_KINDS}}


def profile_search_path() -> list[Path]:
    """Directories searched for ``NAME.yaml``, first match wins."""
    dirs = [Path(p) for p in os.environ.get("MITOSCALE_CLUSTER_PATH", "").split(":") if p]
    dirs += [
        Path.cwd() / "configs" / "cluster",
        Path.home() / ".config" / "mitoscale" / "cluster",
        Path(__file__).resolve().parents[2] / "configs" / "cluster",
    ]
    return dirs


def find_profile_file(name: str) -> Path | None:
    """The YAML file of profile ``name``, or ``None``."""
    for d in profile_search_path():
        for ext in (".yaml", ".yml"):
            p = d / f"{name}{ext}"
            if p.is_file():
                return p
    return None


def available_profiles() -> list[str]:
    """Names ``--cluster`` accepts: the built-in kinds and every profile file found."""
    names = set(KINDS)
    for d in profile_search_path():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.y*ml"))
    return sorted(names)


def resolve_profile(name: str, options: list[str] | dict[str, Any] | None = None):
    """Validated profile for ``--cluster NAME`` (or a path) plus overrides.

    Parameters
    ----------
    name : str
        A profile name or the path of a profile YAML.
    options : list of str or dict, optional
        ``key=value`` overrides (``--cluster-opt``) or a mapping of them.

    Returns
    -------
    LocalProfile or AddressProfile or JobqueueProfile or CudaProfile

    Raises
    ------
    ClusterError
        Unknown profile name.
    ConfigError
        A profile file or override that does not validate.
    """
    looks_like_path = name.endswith((".yaml", ".yml")) or os.sep in name
    if looks_like_path:
        path: Path | None = Path(name)
        if not path.is_file():
            raise ClusterError(f"cluster profile file not found: {name}")
    else:
        path = find_profile_file(name)
    if path is not None:
        data = load_yaml(path)
        data.setdefault("kind", path.stem if path.stem in KINDS else None)
        source = str(path)
    elif name in KINDS:
        data, source = {"kind": name}, f"(built-in {name} profile)"
    else:
        raise ClusterError(
            f"unknown cluster profile {name!r}; known: {', '.join(available_profiles())} "
            "(or give the path of a profile YAML)")
    if data.get("kind") not in KINDS:
        raise ClusterError(
            f"cluster profile {source}: 'kind' must be one of {', '.join(KINDS)}, "
            f"got {data.get('kind')!r}")
    if isinstance(options, dict):
        options = [f"{k}={v}" for k, v in options.items()]
    data = apply_overrides(data, options)
    model = _MODELS[data["kind"]]
    return validate(data, model, source=f"cluster profile {source}")


def check_walltime(profile: JobqueueProfile) -> None:
    """Raise :class:`ClusterError` for a walltime the batch system would reject."""
    if not _WALLTIME[profile.kind].match(profile.walltime):
        raise ClusterError(
            f"cluster profile {profile.kind}: walltime {profile.walltime!r} is not valid for "
            f"{profile.kind} (e.g. {_WALLTIME_EXAMPLE[profile.kind]})")
