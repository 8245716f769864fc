"""A real SLURMCluster through the mitoscale ``slurm`` profile."""

from __future__ import annotations

import os

import pytest

from .helpers import slurm_profile_opts
from mitoscale.cluster import get_client

pytestmark = pytest.mark.slurm


def test_slurm_profile_workers_run_inside_slurm_jobs(slurm_clean, tmp_path):
    with get_client("slurm", n_workers=2, options=slurm_profile_opts(tmp_path)) as client:
        client.wait_for_workers(2, timeout=120)
        queue = slurm_clean.client("squeue", "-h", "-o", "%i %j %T").splitlines()
        # os.getenv is importable on the workers (test-module functions are not)
        job_ids = client.gather(client.map(os.getenv, ["SLURM_JOB_ID"] * 8, pure=False))
    running = {ln.split()[0] for ln in queue if ln.endswith("mitoscale-worker RUNNING")}
    assert len(running) == 2
    assert set(job_ids) <= running and None not in job_ids
    logs = sorted(p.name for p in (tmp_path / "worker-logs").iterdir())
    assert any(n.endswith(".err") for n in logs), "worker logs go to log_directory"
