"""Start the Dask cluster a profile describes, after checking it can work.

:func:`preflight` runs every check that can fail *before* a job is submitted
(submit command on ``PATH``, queue set and known to the batch system, memory
per worker, walltime format, writable log folder); :func:`open_profile` then
starts the cluster and yields a connected :class:`distributed.Client`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mitoscale.cluster.profiles import (
    AddressProfile,
    CudaProfile,
    JobqueueProfile,
    LocalProfile,
    check_walltime,
    parse_memory,
    resolve_profile,
)
from mitoscale.errors import ClusterError, OutputError

__all__ = ["preflight", "list_queues", "open_profile", "SUBMIT_COMMAND", "LOG_LENGTH", "DASK_SETTINGS"]

log = logging.getLogger(__name__)

#: Dask's scheduler keeps its last ``distributed.admin.low-level-log-length`` messages to each
#: worker (task specs included), transitions and events: 1,000 by default, which on a screen
#: holds some 60,000 frames' task payloads (about 0.7 MB per 64-frame task, never freed until
#: pushed out).  Every scheduler mitoscale starts keeps this many; one started by hand should
#: get ``DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH`` (``deploy/slurm/dask-cluster.sbatch`` sets it).
LOG_LENGTH = 64
DASK_SETTINGS = {"distributed.admin.low-level-log-length": LOG_LENGTH}

SUBMIT_COMMAND = {"slurm": "sbatch", "pbs": "qsub", "lsf": "bsub", "sge": "qsub"}

_QUEUE_LISTERS = {
    "slurm": (["sinfo", "-h", "-o", "%R"], lambda out: out.split()),
    "pbs": (["qstat", "-Q"], lambda out: [ln.split()[0] for ln in out.splitlines()[2:] if ln.strip()]),
    "lsf": (["bqueues", "-o", "queue_name", "-noheader"], lambda out: out.split()),
    "sge": (["qconf", "-sql"], lambda out: out.split()),
}


def list_queues(kind: str) -> list[str] | None:
    """Queues (partitions) the batch system reports, or ``None`` if it cannot be asked."""
    argv, parse = _QUEUE_LISTERS[kind]
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        log.warning("could not list %s queues: %s", kind, out.stderr.strip())
        return None
    return sorted(set(parse(out.stdout)))


def _fmt_bytes(n: int) -> str:
    from dask.utils import format_bytes

    return format_bytes(n)


def preflight(profile: JobqueueProfile) -> Path:
    """Check a batch profile before anything is submitted.

    Returns
    -------
    Path
        The absolute worker-log directory (created).

    Raises
    ------
    ClusterError
        With one line naming the problem and the key to change.
    """
    name = profile.kind
    submit = SUBMIT_COMMAND[name]
    if shutil.which(submit) is None:
        raise ClusterError(
            f"cluster profile {name}: '{submit}' not found on PATH; run on a {name} login node "
            "(or choose another profile with --cluster)")
    check_walltime(profile)
    queues = list_queues(name) if profile.check_queue else None
    if not profile.queue:
        known = f" (this cluster has: {', '.join(queues)})" if queues else ""
        raise ClusterError(
            f"cluster profile {name}: no queue set; add 'queue: NAME' to the profile or pass "
            f"--cluster-opt queue=NAME{known}")
    if queues is not None and profile.queue not in queues:
        raise ClusterError(
            f"cluster profile {name}: queue {profile.queue!r} does not exist "
            f"(this cluster has: {', '.join(queues) or 'none'})")
    if profile.processes > profile.cores:
        raise ClusterError(
            f"cluster profile {name}: processes={profile.processes} exceeds cores={profile.cores}; "
            "every worker process needs at least one core")
    per_worker = profile.worker_memory_bytes()
    need = parse_memory(profile.min_worker_memory)
    if per_worker < need:
        raise ClusterError(
            f"cluster profile {name}: memory={profile.memory} over processes={profile.processes} "
            f"gives each worker {_fmt_bytes(per_worker)}, below the {_fmt_bytes(need)} a "
            "mitoscale worker needs; raise 'memory' or lower 'processes'")
    if profile.adaptive() and (profile.adaptive_minimum or 0) > profile.adaptive_maximum:
        raise ClusterError(
            f"cluster profile {name}: adaptive_minimum={profile.adaptive_minimum} exceeds "
            f"adaptive_maximum={profile.adaptive_maximum}")
    logs = Path(profile.log_directory).expanduser().absolute()
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"worker log folder {logs} cannot be created: {exc.strerror}") from None
    return logs


def _jobqueue_cluster(profile: JobqueueProfile, logs: Path):
    import dask_jobqueue

    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster,
           "lsf": dask_jobqueue.LSFCluster, "sge": dask_jobqueue.SGECluster}[profile.kind]
    kwargs: dict[str, Any] = dict(
        cores=profile.cores,
        processes=profile.processes,
        memory=profile.memory,
        walltime=profile.walltime,
        queue=profile.queue,
        job_extra_directives=list(profile.job_extra_directives),
        job_script_prologue=list(profile.job_script_prologue),
        local_directory=profile.local_directory,
        log_directory=str(logs),
        interface=profile.interface,
        python=profile.python or sys.executable,
        death_timeout=profile.death_timeout,
        job_name="mitoscale-worker",
        scheduler_options={"dashboard_address": profile.dashboard_address}
        if profile.dashboard_address else {},
    )
    if profile.account:
        kwargs["account" if profile.kind in ("slurm", "pbs") else "project"] = profile.account
    if profile.resource_spec and profile.kind in ("pbs", "sge"):
        kwargs["resource_spec"] = profile.resource_spec
    return cls(**kwargs)


def _cuda_cluster(profile: CudaProfile):
    try:
        from dask_cuda import LocalCUDACluster
        from dask_cuda.utils import get_n_gpus
    except ImportError as exc:
        raise ClusterError(
            "cluster profile cuda needs dask-cuda: pip install 'mitoscale[gpu]' "
            f"({exc.__class__.__name__}: {exc})") from None
    try:
        n_gpus = get_n_gpus()
    except Exception:  # no driver / NVML: treat as no GPU
        n_gpus = 0
    if n_gpus == 0:
        raise ClusterError("cluster profile cuda: no NVIDIA GPU is visible on this machine; "
                           "use --cluster local, or run on a GPU node")
    return LocalCUDACluster(
        CUDA_VISIBLE_DEVICES=profile.devices,
        threads_per_worker=profile.threads_per_worker,
        memory_limit=profile.memory_limit,
        rmm_pool_size=profile.rmm_pool_size,
        dashboard_address=profile.dashboard_address,
        local_directory=profile.local_directory,
    )


#: seconds a local worker gets to exit after a run that ended normally; Dask's own 4 s is
#: too short for a worker that imported torch on a loaded machine (measured: ~6 s), and
#: it then prints "Worker process still alive after 4.0 seconds, killing"
LOCAL_WORKER_CLOSE_S = 60.0


async def _close_nannies(cluster, timeout: float) -> None:
    import asyncio

    await asyncio.gather(*(w.close(timeout=timeout) for w in list(cluster.workers.values())),
                         return_exceptions=True)


@contextlib.contextmanager
def _closing(client, cluster, patient: bool = False) -> Iterator[Any]:
    """Close the client, then the cluster; ``patient``: let local workers exit by themselves."""
    ok = False
    try:
        yield client
        ok = True
    finally:
        client.close()
        if cluster is not None:
            if patient and ok:  # after an error or interrupt Dask's quick kill is what we want
                try:
                    cluster.sync(_close_nannies, cluster, LOCAL_WORKER_CLOSE_S)
                except Exception:  # noqa: BLE001 - cluster.close below still cleans up
                    log.debug("closing local workers", exc_info=True)
            cluster.close()


@contextlib.contextmanager
def open_profile(
    profile: str | LocalProfile | AddressProfile | JobqueueProfile | CudaProfile,
    n_workers: int | None = None,
    options: list[str] | None = None,
    scheduler: str | None = None,
) -> Iterator[Any]:
    """Start (or connect to) the cluster of a profile and yield a Client.

    Parameters
    ----------
    profile : str or profile model
        A profile name/path (resolved with ``options``) or a validated profile.
    n_workers : int, optional
        Worker processes; overrides the profile's size (and turns off adaptive scaling).
    options : list of str, optional
        ``key=value`` overrides when ``profile`` is a name.
    scheduler : str, optional
        Address of a running scheduler (the ``address`` profile).

    Yields
    ------
    distributed.Client
    """
    import dask
    import distributed  # noqa: F401 - its defaults first: a setting made before would hide them on exit

    if isinstance(profile, str):
        profile = resolve_profile(profile, options)
    with dask.config.set(DASK_SETTINGS):  # read as each worker joins: held for the whole run
        yield from _open(profile, n_workers, scheduler)


def _scheduler_log_length(dask_scheduler) -> int | None:
    return dask_scheduler.transition_log.maxlen  # made from the setting when the scheduler started


def _warn_long_logs(client) -> None:
    """A scheduler started by hand with Dask's default logs holds ~1,000 task payloads per worker."""
    try:
        n = client.run_on_scheduler(_scheduler_log_length)
    except Exception:  # noqa: BLE001 - a scheduler that cannot run our function: nothing to say
        return
    if n is None or n > 4 * LOG_LENGTH:
        print(f"mitoscale: this Dask scheduler keeps its last {n} messages per worker, task payloads "
              f"included; on long runs start it with DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH="
              f"{LOG_LENGTH} to bound its memory", file=sys.stderr, flush=True)


def _open(profile, n_workers, scheduler) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if isinstance(profile, AddressProfile) or scheduler:
        addr = scheduler or getattr(profile, "address", None)
        sfile = None if scheduler else getattr(profile, "scheduler_file", None)
        if not addr and not sfile:
            raise ClusterError("profile 'address' needs --scheduler tcp://host:port "
                               "(or --cluster-opt address=... / scheduler_file=...)")
        timeout = getattr(profile, "timeout", "20s")
        if sfile and not Path(sfile).is_file():
            raise ClusterError(f"scheduler file not found: {sfile}")
        try:
            client = (Client(addr, timeout=timeout) if addr
                      else Client(scheduler_file=sfile, timeout=timeout))
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach Dask scheduler at {addr or sfile}: {exc}") from None
        _warn_long_logs(client)
        with _closing(client, None) as c:
            yield c
        return

    if isinstance(profile, LocalProfile):
        cluster = LocalCluster(
            n_workers=n_workers or profile.default_workers(),
            threads_per_worker=profile.threads_per_worker,
            processes=True,
            memory_limit=profile.memory_limit,
            dashboard_address=profile.dashboard_address,
            host=profile.host,
            local_directory=profile.local_directory,
            # workers share the terminal's process group: Ctrl-C and SIGTERM are the client's to
            # handle (it stops them in order), so they ignore both
            preload=["mitoscale.cluster.signals"],
        )
        with _closing(Client(cluster), cluster, patient=True) as c:
            if not logging.getLogger("mitoscale").isEnabledFor(logging.DEBUG):  # not --verbose
                from mitoscale.cluster.worker import QuietTaskFailures

                c.register_plugin(QuietTaskFailures())  # workers share this terminal: one error line
            yield c
        return

    if isinstance(profile, CudaProfile):
        cluster = _cuda_cluster(profile)
        with _closing(Client(cluster), cluster) as c:
            yield c
        return

    logs = preflight(profile)
    cluster = _jobqueue_cluster(profile, logs)
    client = Client(cluster)
    print(f"{profile.kind} worker jobs: queue {profile.queue}, {profile.cores} core(s), "
          f"{profile.memory}, walltime {profile.walltime}; worker logs in {logs}",
          file=sys.stderr, flush=True)
    if n_workers is None and profile.adaptive():
        cluster.adapt(minimum=profile.adaptive_minimum or 0, maximum=profile.adaptive_maximum)
    else:
        cluster.scale(n=n_workers or profile.workers)
    with _closing(client, cluster) as c:
        if profile.start_timeout is not None:
            try:
                c.wait_for_workers(1, timeout=profile.start_timeout)
            except TimeoutError:
                raise ClusterError(
                    f"no {profile.kind} worker joined within {profile.start_timeout:g}s; "
                    f"check the queue and the worker logs in {logs}") from None
        yield c
