"""Shared pytest fixtures.

Stage-specific fixtures live in ``tests/<stage>/conftest.py`` or in the test
modules themselves; this file only holds what every stage needs.
"""

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory) -> Path:
    """An untrained 'micro' SAM (real segment-anything modules) saved as a checkpoint.

    Its masks are meaningless but real: it exercises every code path quickly
    (segment, pipeline and SLURM tests).
    """
    import torch

    from mitoscale.model import build_sam, get_spec, save_model

    torch.manual_seed(0)
    spec = get_spec("micro")
    return save_model(tmp_path_factory.mktemp("model") / "micro.safetensors", build_sam(spec), spec,
                      {"pixel_size_um": 0.08, "note": "untrained test model"})


def done_units(out) -> list[str]:
    """The frames a run folder has logged complete (units.log, or the older .markers/)."""
    from mitoscale.io.runfolder import RunFolder

    return RunFolder(out, "?").markers.completed()


def forget_units(out, *units) -> None:
    """As after a kill before these frames were logged: the next run redoes them."""
    from mitoscale.io.runfolder import RunFolder

    for u in units:
        RunFolder(out, "?").markers.discard(u)
