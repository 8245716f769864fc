"""Task payloads the scheduler holds as bytes: it never unpickles, or imports, what a task runs.

Dask's scheduler unpickles every task it is sent.  For a frame batch that
means importing the stage's modules (``mitoscale.segment`` brings torch:
about 1 GB on the scheduler) and holding the batch's objects while the task
waits.  :func:`pack` pickles the call on the client; the scheduler sees one
``bytes`` argument and a reference to :func:`run_pickled`, whose module
imports nothing but :mod:`pickle`; the worker unpickles and runs the call.
"""

from __future__ import annotations

import pickle
from typing import Any

__all__ = ["pack", "run_pickled"]


def pack(fn: Any, *args: Any) -> bytes:
    """``fn(*args)`` as bytes (cloudpickle: functions defined in ``__main__`` travel too)."""
    import cloudpickle

    return cloudpickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)


def run_pickled(payload: bytes) -> Any:
    """Run a call made by :func:`pack` (in the worker)."""
    fn, args = pickle.loads(payload)
    return fn(*args)
