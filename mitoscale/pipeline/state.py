"""Stage records of a run directory: done / started / failed, keyed by config hash.

``RUN_DIR/.pipeline/<stage>.json`` holds one record per stage::

    {"stage": "segment", "key": "<hash>", "state": "complete"|"running"|"failed"|"interrupted",
     "deps": {"samples": "<hash>", ...}, "started": ..., "finished": ..., "summary": {...},
     "error": "...", "host": ..., "slurm_job_id": ...}

A stage is complete only when its record says ``complete`` *and* its key is
the key the current config gives it; records are written atomically.
A lock (``RUN_DIR/.pipeline/lock``) keeps two runs off one directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mitoscale.errors import OutputError
from mitoscale.io.atomic import atomic_write_json

__all__ = ["RunState", "now"]


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunState:
    """The ``.pipeline`` folder of a run directory."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir).absolute()
        self.root = self.run_dir / ".pipeline"

    def _path(self, stage: str) -> Path:
        return self.root / f"{stage}.json"

    def record(self, stage: str) -> dict[str, Any] | None:
        """The stage's record, or ``None``."""
        p = self._path(stage)
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def is_complete(self, stage: str, key: str) -> bool:
        rec = self.record(stage)
        return bool(rec and rec.get("state") == "complete" and rec.get("key") == key)

    def write(self, stage: str, key: str, state: str, **fields: Any) -> dict[str, Any]:
        rec = {"stage": stage, "key": key, "state": state, "host": socket.gethostname(),
               "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"), **fields}
        old = self.record(stage)
        if old and old.get("key") == key and "started" in old and "started" not in rec:
            rec["started"] = old["started"]
        atomic_write_json(self._path(stage), rec)
        return rec

    def forget(self, stage: str) -> None:
        self._path(stage).unlink(missing_ok=True)

    def save_config(self, data: dict[str, Any]) -> None:
        atomic_write_json(self.root / "config.json", data)

    def saved_config(self) -> dict[str, Any] | None:
        p = self.root / "config.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def active(self) -> bool:
        """Whether a ``mitoscale run`` holds this directory's lock right now."""
        import fcntl

        path = self.root / "lock"
        if not path.is_file():
            return False
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as exc:
                return exc.errno in (errno.EAGAIN, errno.EACCES)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return False

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the run directory (``flock``).

        Raises
        ------
        OutputError
            When another ``mitoscale run`` holds it.
        """
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "lock"
        fh = open(path, "a+")
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    fh.seek(0)
                    holder = fh.read().strip() or "another process"
                    raise OutputError(f"{self.run_dir} is in use by another mitoscale run "
                                      f"({holder}); wait for it or use another --out") from None
                if exc.errno != errno.ENOLCK:  # file systems without flock: go on unlocked
                    raise
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {now()}\n")
            fh.flush()
            yield
        finally:
            fh.close()
