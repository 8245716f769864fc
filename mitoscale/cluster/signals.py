"""Interrupts the way a terminal and a cluster send them: one line, a clean stop, a resumable run.

``scancel``, a SLURM/PBS walltime and ``kill`` send SIGTERM; a terminal's
Ctrl-C sends SIGINT to the whole foreground process group, so the Dask
workers of a local cluster get it too.  :func:`install` (called by the
``mitoscale`` command) makes both raise :class:`Interrupted` (a
``KeyboardInterrupt``) in the main thread, once: the stage records the run
as ``interrupted`` (:class:`mitoscale.io.runfolder.RunFolder`,
:mod:`mitoscale.pipeline.state`), the cluster is closed, the command prints
one line and exits 130 (SIGINT) or 143 (SIGTERM).  From the first signal on,
library log records (Dask's reports of closed connections and of workers it
kills on the way out) are dropped: they describe the shutdown we asked for.

Workers of a local cluster ignore both signals (:func:`ignore_in_worker`,
run at worker start-up): their process group gets the terminal's signal, but
the client stops them in order, so no worker prints a traceback and no task
dies half-way through a write.
"""

from __future__ import annotations

import logging
import signal
import threading

__all__ = ["Interrupted", "install", "restore", "ignore_in_worker", "quiet_library_logs"]


class Interrupted(KeyboardInterrupt):
    """A SIGINT or SIGTERM turned into an exception; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum


def _only_ours(record: logging.LogRecord) -> bool:
    return record.name.split(".")[0] == "mitoscale"


def quiet_library_logs() -> None:
    """Drop every non-mitoscale log record from now on (the shutdown after an interrupt)."""
    import warnings

    loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for lg in loggers:  # Dask logs through its own handler on the "distributed" logger
        for handler in lg.handlers:
            if _only_ours not in handler.filters:
                handler.addFilter(_only_ours)
    warnings.filterwarnings("ignore")


def _handler(signum, frame):
    # once: a batch system often signals every process of the job, and the job script may
    # forward it again; a second signal must not cut the clean-up short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    quiet_library_logs()
    raise Interrupted(signum)


def install() -> dict:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` (main thread only; else a no-op).

    Returns the previous handlers, for :func:`restore`.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return old


def restore(old: dict) -> None:
    """Put back the handlers :func:`install` replaced (``main`` called in-process, e.g. by tests)."""
    for sig, handler in old.items():
        signal.signal(sig, handler)


def _not_cancelled(record: logging.LogRecord) -> bool:
    return "ended with CancelledError" not in record.getMessage()


def ignore_in_worker() -> None:
    """Make a local-cluster worker process ignore SIGINT and SIGTERM (its client stops it).

    Also drops the worker's report of tasks cancelled by a closing client
    ("... ended with CancelledError"): that is how an interrupted run ends.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logger = logging.getLogger("distributed.worker.state_machine")
    if _not_cancelled not in logger.filters:
        logger.addFilter(_not_cancelled)


def dask_setup(worker) -> None:
    """Worker preload hook (``LocalCluster(preload=["mitoscale.cluster.signals"])``)."""
    ignore_in_worker()
