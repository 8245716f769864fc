"""Atomic file writes and completion markers.

A unit of work (a Zarr chunk, a Parquet part, a stage) counts as done only
when its marker exists, and the marker is written last, atomically.  Reruns
consult markers to skip finished work, so nothing is computed or written twice.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mitoscale.errors import OutputError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "check_writable",
    "MarkerSet",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    The file gets the usual ``0o666 & ~umask`` permissions (``mkstemp`` alone
    would leave it private to the owner, which breaks group-shared HPC projects).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def check_writable(path: str | Path) -> Path:
    """Ensure ``path`` (a file or directory to be created) can be written.

    Creates the parent directories and probes with a temporary file.

    Raises
    ------
    OutputError
        If the location cannot be written.
    """
    path = Path(path).absolute()
    parent = path if path.is_dir() else path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".mitoscale-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"output path is not writable: {path} ({exc.strerror or exc})") from None
    return path


class MarkerSet:
    """A directory of completion markers, one small JSON file per finished unit.

    Parameters
    ----------
    root : path
        Directory holding the markers (created on first use).

    Notes
    -----
    Markers are written with :func:`atomic_write_json`, so a marker either
    exists completely or not at all.  Concurrent writers of *different* units
    never conflict; a unit written twice (a retried task) writes the same
    content, which is harmless.
    """

    def __init__(self, root: str | Path, suffix: str = ".done"):
        self.root = Path(root)
        self.suffix = suffix

    def _path(self, unit: str | int) -> Path:
        name = f"{unit:08d}" if isinstance(unit, int) else str(unit)
        return self.root / f"{name}{self.suffix}"

    def done(self, unit: str | int) -> bool:
        return self._path(unit).exists()

    def mark(self, unit: str | int, info: dict[str, Any] | None = None) -> None:
        atomic_write_json(self._path(unit), info or {})

    def info(self, unit: str | int) -> dict[str, Any]:
        return json.loads(self._path(unit).read_text())

    def completed(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(self.suffix)] for p in self.root.glob(f"*{self.suffix}"))

    def discard(self, unit: str | int) -> None:
        """Remove one unit's marker (no error when there is none)."""
        self._path(unit).unlink(missing_ok=True)

    def clear(self) -> None:
        if self.root.is_dir():
            for p in self.root.glob(f"*{self.suffix}"):
                p.unlink()

    def remove_stale_writes(self) -> int:
        """Delete temporary files of marker writes that never finished; return how many.

        A worker killed inside :func:`atomic_write_bytes` leaves its
        ``.<name>.*.tmp`` behind (the retry writes the marker itself).  Call
        this only when no unit of the run is being written any more, i.e.
        when the run has finished.
        """
        if not self.root.is_dir():
            return 0
        stale = list(self.root.glob(f".*{self.suffix}.*.tmp"))
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)
