"""Helpers shared by the HPC tests."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd


def slurm_profile_opts(tmp_path: Path, **extra) -> list[str]:
    """``--cluster-opt`` values that fit the 2-CPU test node (1 core, 2 GiB per job)."""
    opts = {
        "queue": "debug", "cores": 1, "processes": 1, "memory": "2GiB",
        "walltime": "00:10:00", "interface": "lo", "dashboard_address": "127.0.0.1:0",
        "log_directory": str(tmp_path / "worker-logs"), "start_timeout": 120,
        "death_timeout": 30,
    }
    opts.update(extra)
    return [f"{k}={v}" for k, v in opts.items()]


def cluster_opt_args(opts: list[str]) -> list[str]:
    """``["--cluster-opt", "k=v", ...]`` for a CLI call."""
    return [a for o in opts for a in ("--cluster-opt", o)]


def assert_same_corpus(a: Path, b: Path) -> None:
    """Two corpora hold bit-identical arrays and instance tables."""
    import zarr

    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    for name in ("images", "labels", "n_instances", "sbr", "background"):
        xa, xb = ga[name][...], gb[name][...]
        assert xa.dtype == xb.dtype and xa.shape == xb.shape, name
        assert np.array_equal(xa, xb), f"{name} differs"
    ta = pd.read_parquet(Path(a) / "instances").reset_index(drop=True)
    tb = pd.read_parquet(Path(b) / "instances").reset_index(drop=True)
    pd.testing.assert_frame_equal(ta, tb, check_exact=True)
    assert sorted(p.name for p in (Path(a) / ".markers").iterdir()) == \
        sorted(p.name for p in (Path(b) / ".markers").iterdir())


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
