"""An append-only completion log: one file records every unit of a run.

A run over a screen has hundreds of thousands of units (frames); one marker
file per unit is what parallel file systems (Lustre, GPFS) and ``ls`` handle
worst.  :class:`UnitLog` keeps them all in one JSON-lines file::

    {"unit": "plate__A-1__f0__t0__z0", "state": "done", "instances": 12, ...}
    {"unit": "plate__B-2__f0__t0__z0", "state": "failed", "reason": "frame is constant ..."}

* **One writer.** Only the process that drives the run (the Dask client)
  appends; workers never touch the log.  A unit is logged *after* its
  results are on disk, so a logged unit is always complete.
* **The last record of a unit wins**: a failed unit that succeeds on a rerun
  gets a ``done`` record; ``pending`` forgets a unit (it is redone).
* **Torn writes.** A process killed while appending leaves at most one
  partial last line; it is ignored on reading (that unit is redone) and a
  newline is written before the next append, so it never corrupts a record.
* **Older folders.** Units recorded the older way, one file per unit
  (``.markers/<unit>.done``, ``.failed/<unit>.json``), are read too; a log
  record of the same unit overrides them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["UnitLog", "LogView"]

DONE, FAILED, PENDING = "done", "failed", "pending"


class UnitLog:
    """The completion log of one run folder (see the module docstring).

    Parameters
    ----------
    path : path
        The log file (created on the first append).
    legacy_done, legacy_failed : path, optional
        Directories of per-unit marker files of older folders, read as well.
    """

    def __init__(self, path: str | Path, legacy_done: str | Path | None = None,
                 legacy_failed: str | Path | None = None):
        self.path = Path(path)
        self.legacy = [(Path(d), s, st) for d, s, st in
                       ((legacy_done, ".done", DONE), (legacy_failed, ".json", FAILED)) if d is not None]
        self._state: dict[str, dict[str, Any]] | None = None
        self._size = -1

    # -- reading --------------------------------------------------------------------------

    def state(self) -> dict[str, dict[str, Any]]:
        """Unit -> its last record (``state`` plus the unit's info), re-read when the file changed."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if self._state is None or size != self._size:
            self._state = self._read()
            self._size = size
        return self._state

    def _read(self) -> dict[str, dict[str, Any]]:
        state: dict[str, dict[str, Any]] = {}
        for root, suffix, st in self.legacy:
            if root.is_dir():
                for p in root.glob(f"*{suffix}"):
                    try:
                        info = json.loads(p.read_text() or "{}")
                    except (OSError, ValueError):
                        info = {}
                    state[p.name[: -len(suffix)]] = {**info, "state": st}
        if self.path.is_file():
            text = self.path.read_text(errors="replace")
            try:  # one parse of the whole log (a 100k-frame log in a fraction of a second)
                records = json.loads("[" + ",".join(ln for ln in text.split("\n") if ln.strip()) + "]")
            except ValueError:  # a torn line (a killed writer): parse line by line, skip it
                records = []
                for line in text.split("\n"):
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        continue  # that unit is redone
            for rec in records:
                unit = rec.pop("unit", None) if isinstance(rec, dict) else None
                if unit is None:
                    continue
                if rec.get("state") == PENDING:
                    state.pop(unit, None)
                else:
                    state[unit] = rec
        return state

    def units(self, state: str = DONE) -> list[str]:
        """Sorted units whose last record has ``state``."""
        return sorted(u for u, r in self.state().items() if r.get("state") == state)

    # -- writing --------------------------------------------------------------------------

    def append(self, records: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Append ``(unit, state, info)`` records in one write, flushed to disk."""
        lines = [json.dumps({"unit": u, "state": st, **(info or {})}, separators=(",", ":"), default=str)
                 for u, st, info in records]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            if fh.tell() > 0:  # a torn last line (killed writer) must not swallow the next record
                with open(self.path, "rb") as rd:
                    rd.seek(-1, os.SEEK_END)
                    if rd.read(1) != b"\n":
                        fh.write(b"\n")
            fh.write(("\n".join(lines) + "\n").encode())
            fh.flush()
            os.fsync(fh.fileno())

    def clear(self) -> None:
        """Forget every unit (``--overwrite``), older marker files included."""
        self.path.unlink(missing_ok=True)
        for root, suffix, _ in self.legacy:
            if root.is_dir():
                for p in root.glob(f"*{suffix}"):
                    p.unlink()
        self._state = None


class LogView:
    """The units of one state of a :class:`UnitLog`, with the interface of a marker set.

    ``done``, ``completed``, ``info``, ``mark``, ``discard``, ``clear``: what
    callers of the older per-file :class:`~mitoscale.io.atomic.MarkerSet` use.
    """

    def __init__(self, log: UnitLog, state: str):
        self.log = log
        self.state = state

    def done(self, unit: str) -> bool:
        return self.log.state().get(unit, {}).get("state") == self.state

    def completed(self) -> list[str]:
        return self.log.units(self.state)

    def info(self, unit: str) -> dict[str, Any]:
        rec = dict(self.log.state()[unit])
        rec.pop("state", None)
        return rec

    def mark(self, unit: str, info: dict[str, Any] | None = None) -> None:
        self.log.append([(unit, self.state, info or {})])

    def discard(self, unit: str) -> None:
        if self.done(unit):
            self.log.append([(unit, PENDING, {})])

    def clear(self) -> None:
        units = self.completed()
        if units:
            self.log.append([(u, PENDING, {}) for u in units])

    def remove_stale_writes(self) -> int:  # appends leave no temporary files
        return 0
