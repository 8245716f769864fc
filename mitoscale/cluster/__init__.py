"""Dask cluster set-up shared by every stage.

``get_client`` opens a :class:`distributed.Client` on the chosen profile and
prints the dashboard link; ``run_futures`` shows a progress bar while work
completes.  Profiles other than ``local`` and ``address`` (SLURM, PBS, LSF,
SGE through dask-jobqueue; CUDA through dask-cuda) are added in
:mod:`mitoscale.cluster.profiles`.
"""

from mitoscale.cluster.core import (
    add_cluster_args,
    client_from_args,
    get_client,
    run_futures,
)

__all__ = ["add_cluster_args", "client_from_args", "get_client", "run_futures"]
