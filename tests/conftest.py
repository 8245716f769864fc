"""Shared pytest fixtures.

Stage-specific fixtures live in ``tests/<stage>/conftest.py`` or in the test
modules themselves; this file only holds what every stage needs.
"""

import os

import pytest

os.environ.setdefault("MITOSCALE_NO_PROGRESS", "1")


@pytest.fixture(scope="session")
def local_client():
    """A real 2-worker LocalCluster shared across the session."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, host="127.0.0.1")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
