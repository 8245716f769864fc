"""Fixtures for the HPC tests: a real single-node SLURM, started once per session.

The daemons run from a private directory (see ``slurm_service.py``); the apt
packages come from ``deploy/ci/prepare_test_services.sh`` (run by ``make test``).
Tests that need SLURM skip with the reason when it cannot run here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .slurm_service import SingleNodeSlurm, unavailable_reason


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node SLURM (2 CPUs, partition ``debug``); ``SLURM_CONF`` exported."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    # short path: munge/slurm sockets have a ~100 character limit
    root = Path(tmp_path_factory.mktemp("slurm", numbered=True))
    service = SingleNodeSlurm(root, cpus=2, partition="debug")
    try:
        service.start()
    except (RuntimeError, OSError) as exc:
        service.stop()
        pytest.skip(f"single-node SLURM did not start: {exc}")
    old = os.environ.get("SLURM_CONF")
    os.environ.update(service.env)
    yield service
    service.stop()
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old


@pytest.fixture
def slurm_clean(slurm):
    """The session SLURM with an empty queue before and after the test."""
    slurm.cancel_all()
    yield slurm
    slurm.cancel_all()
