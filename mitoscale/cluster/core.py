"""Open a Dask client for a profile, print the dashboard, track progress."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any


__all__ = ["add_cluster_args", "client_from_args", "get_client", "run_futures"]


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--cluster``, ``--scheduler``, ``--workers`` and ``--cluster-opt`` options."""
    g = parser.add_argument_group("dask cluster")
    g.add_argument("--cluster", default=None, metavar="PROFILE",
                   help="cluster profile: local (default), address, slurm, pbs, lsf, sge, cuda, "
                        "a profile name from configs/cluster, or a path to a profile YAML")
    g.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="connect to a running Dask scheduler (tcp://host:port) instead")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="number of worker processes (local: one per core by default; "
                        "batch profiles: the profile's 'workers')")
    g.add_argument("--cluster-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="override one profile setting, e.g. --cluster-opt walltime=02:00:00")


@contextlib.contextmanager
def client_from_args(args: argparse.Namespace) -> Iterator[Any]:
    with get_client(profile=args.cluster or "local", scheduler=args.scheduler,
                    n_workers=args.workers, options=args.cluster_opt) as client:
        yield client


def _print_dashboard(client: Any, stream=None) -> None:
    # resolve sys.stderr at call time: a default bound at import time may be a closed capture stream
    link = getattr(client, "dashboard_link", None)
    if link:
        print(f"Dask dashboard: {link}", file=stream or sys.stderr, flush=True)


@contextlib.contextmanager
def get_client(
    profile: str = "local",
    scheduler: str | None = None,
    n_workers: int | None = None,
    options: list[str] | None = None,
) -> Iterator[Any]:
    """Open a Dask client on a cluster profile and print the dashboard link.

    Parameters
    ----------
    profile : str or profile model
        ``local`` (a LocalCluster sized to the machine), ``address``,
        ``slurm``/``pbs``/``lsf``/``sge``, ``cuda``, another profile name
        found in ``configs/cluster`` or the path of a profile YAML (see
        :mod:`mitoscale.cluster.profiles`).
    scheduler : str, optional
        Address of a running scheduler; overrides ``profile``.
    n_workers : int, optional
        Worker count (default: the profile's; local: one single-threaded
        worker per core).
    options : list of str
        ``key=value`` overrides of the profile.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ClusterError
        Unknown profile, or a profile that cannot work (checked before any
        job is submitted).
    """
    from mitoscale.cluster.launch import open_profile

    with open_profile(profile, n_workers=n_workers, options=options or [],
                      scheduler=scheduler) as client:
        _print_dashboard(client)
        yield client


def run_futures(client: Any, futures: Iterable[Any], desc: str = "", unit: str = "task",
                errors: str = "raise", progress: bool = True) -> list[Any]:
    """Wait for futures with a tqdm progress bar; return results in input order.

    With ``errors="raise"`` a failed future re-raises its exception (after
    Dask's own retries); with ``errors="return"`` its exception is returned
    in its place and the others go on.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = list(futures)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    with tqdm(total=len(futures), desc=desc, unit=unit, file=sys.stderr,
              disable=not progress or os.environ.get("MITOSCALE_NO_PROGRESS") == "1") as bar:
        for fut in as_completed(futures):
            if errors == "return" and fut.status == "error":
                results[index[fut.key]] = fut.exception()
            else:
                results[index[fut.key]] = fut.result()
            bar.update(1)
    return results
