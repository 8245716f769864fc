"""Bounded, batched execution of a run's frames: the one executor of every per-frame stage.

``mitoscale segment`` and every ``mitoscale baseline`` run their pending
frames through :func:`execute_batches`:

* **Batches.** Frames of one partition (well, or image; see
  :mod:`mitoscale.io.partitions`) are grouped into tasks of
  ``frames_per_task`` frames (:func:`auto_frames_per_task`: small frames
  are batched so a task is worth its scheduling; large ones get a task each).
  A task reads, checks (the frame check runs *inside* the task: no pass over
  the input before the run), processes and stages its frames, and returns
  ``{unit: info or UnitFailure}``.  A killed worker costs one task's retry.
* **A window.** At most ``window`` tasks are in flight (default: 4 per
  worker thread, re-read as workers come and go), so the scheduler's task
  count and memory stay bounded whatever the size of the screen.
* **Completion** is appended to the run folder's log
  (:class:`~mitoscale.io.unitlog.UnitLog`) by this process as tasks
  finish (one append per second at most, and always when the run ends or is
  interrupted); a partition is merged into its one file
  (:func:`~mitoscale.io.partitions.compact_partition`, a task of its own)
  as soon as all its frames are resolved.  A rerun skips logged frames and
  first merges what a killed run had staged.
* **Progress**: frames done, frames per second and the time left (tqdm);
  the dashboard shows the tasks by their key prefix (``<stage>-frames``,
  ``<stage>-merge``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mitoscale.errors import OutputError
from mitoscale.io.partitions import compact_partition, stage_rows, staged_partitions
from mitoscale.io.runfolder import RunFolder, UnitFailure, _as_result, disk_errors, guard_unit

__all__ = ["Batch", "make_batches", "auto_frames_per_task", "run_batch", "execute_batches", "submit_batch",
           "WINDOW_PER_THREAD"]

#: tasks in flight per worker thread
WINDOW_PER_THREAD = 4
#: pixels a batched task aims at (small frames are grouped up to this; 4 frames of 1024²)
TASK_PIXELS = 4 * 1024 * 1024
#: the client appends finished units to the log at most this often (or every this many units)
LOG_EVERY_S = 1.0
LOG_EVERY_UNITS = 5000
MAX_FRAMES_PER_TASK = 64


@dataclass
class Batch:
    """Frames of one partition run as one task."""

    partition: str
    units: list[str]
    jobs: list[Any] = field(default_factory=list)

    @property
    def name(self) -> str:
        return hashlib.sha1("\0".join(self.units).encode()).hexdigest()[:16]


def auto_frames_per_task(frame_pixels: int, n_pending: int, n_threads: int) -> int:
    """Frames per task: up to :data:`TASK_PIXELS` pixels, yet at least 4 tasks per thread."""
    by_size = max(1, min(MAX_FRAMES_PER_TASK, TASK_PIXELS // max(1, frame_pixels)))
    by_count = max(1, -(-n_pending // (4 * max(1, n_threads))))
    return max(1, min(by_size, by_count))


def make_batches(items: Sequence[tuple[str, str, Any]], frames_per_task: int) -> list[Batch]:
    """``(unit, partition, job)`` items -> batches of consecutive frames of one partition.

    Items are grouped by partition (first-seen order), so partitions finish,
    and are merged, one after the other.
    """
    by_part: dict[str, list[tuple[str, Any]]] = {}
    for unit, part, job in items:
        by_part.setdefault(part, []).append((unit, job))
    out = []
    for part, rows in by_part.items():
        for i in range(0, len(rows), max(1, frames_per_task)):
            chunk = rows[i:i + frames_per_task]
            out.append(Batch(part, [u for u, _ in chunk], [j for _, j in chunk]))
    return out


@contextlib.contextmanager
def _flushing(flush: Callable[[], None]):
    """Write the buffered log records however the run ends (Ctrl-C and SIGTERM included)."""
    try:
        yield
    finally:
        flush()


def _failed_batch(batch: Batch, exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, OutputError):
        raise exc
    return {u: _as_result(u, exc) for u in batch.units}


def _bar(total: int, desc: str, unit: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, smoothing=0.05,
                disable=not progress or os.environ.get("MITOSCALE_NO_PROGRESS") == "1")


def _threads(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - no workers yet (a batch job still queued)
        return 1


def submit_batch(client: Any, key: str, fn: Callable, *args: Any) -> Any:
    """Submit ``fn(*args)`` as one task (3 retries) whose payload the scheduler holds as bytes.

    The scheduler then never imports the stage (torch, for ``segment``) nor
    keeps the batch's objects (see :mod:`mitoscale.io.remote`).
    """
    from mitoscale.io.remote import pack, run_pickled

    return client.submit(run_pickled, pack(fn, *args), key=key, retries=3)


def run_batch(batch: Batch, out: str, calls) -> dict:
    """The body of one batch task: run each frame, stage the good frames' rows together.

    ``calls`` yields ``(unit, keys, fn, args)``; ``fn(*args)`` returns ``(info, table)``
    and runs under :func:`~mitoscale.io.runfolder.guard_unit` (a user-facing error fails
    that frame alone).  Returns ``{unit: info or UnitFailure}``; each info gains
    ``stage_s``, its share of the one staging write.
    """
    results, frames = {}, []
    for unit, keys, fn, args in calls:
        res = guard_unit(unit, fn, *args)
        if isinstance(res, UnitFailure):
            results[unit] = res
        else:
            results[unit] = res[0]
            frames.append((keys, res[1]))  # a frame without instances is recorded as processed
    if frames:
        t0 = time.perf_counter()
        with disk_errors(f"the results of {batch.units[0]}"):
            stage_rows(out, batch.partition, batch.name, frames)
        share = (time.perf_counter() - t0) / len(frames)  # the write, shared by the batch's frames
        for r in results.values():
            if isinstance(r, dict):
                r["stage_s"] = share
    return results


def execute_batches(folder: RunFolder, batches: list[Batch], *, client: Any = None,
                    submit: Callable[[Any, Batch], Any] | None = None,
                    run_local: Callable[[Batch], dict[str, Any]] | None = None,
                    window: int | None = None, progress: bool = True, desc: str = "run",
                    unit: str = "frame", stats: dict | None = None) -> dict[str, Any]:
    """Run ``batches`` with at most ``window`` tasks in flight; log, merge, report progress.

    Parameters
    ----------
    folder : RunFolder
        Receives every unit's record as its task finishes.
    batches : list of Batch
    client : distributed.Client, optional
        ``None``: run here, batch after batch, with ``run_local``.
    submit : callable(client, batch) -> Future
        Submits one batch; the future's result is ``{unit: info or UnitFailure}``.
    run_local : callable(batch) -> dict
    window : int, optional
        Tasks in flight (default :data:`WINDOW_PER_THREAD` per worker thread).
    stats : dict, optional
        Filled with ``max_in_flight``, ``tasks``, ``merges`` and ``merge_s`` (seconds merging).

    Returns
    -------
    dict
        Unit -> info or :class:`UnitFailure` for every unit of ``batches``.
    """
    out = folder.out
    remaining = Counter(b.partition for b in batches)
    stats = stats if stats is not None else {}
    stats.update(max_in_flight=0, tasks=len(batches), merges=0, merge_s=0.0)
    early = [p for p in staged_partitions(out) if p not in remaining]  # staged by a killed run
    results: dict[str, Any] = {}
    unlogged: dict[str, Any] = {}
    last_flush = [0.0]  # the first finished task is logged at once

    def flush() -> None:
        if unlogged:
            folder.record(unlogged)
            unlogged.clear()
        last_flush[0] = time.monotonic()

    with _bar(sum(len(b.units) for b in batches), desc, unit, progress) as bar, _flushing(flush):
        def done(batch: Batch, res: dict[str, Any]) -> bool:
            # one append (and fsync) per second at most: a whole screen's completions would
            # otherwise make the client a serial gate; a kill loses at most that second's
            # records, whose frames are recomputed (and their rows replaced, not duplicated)
            unlogged.update(res)
            if len(unlogged) >= LOG_EVERY_UNITS or time.monotonic() - last_flush[0] >= LOG_EVERY_S:
                flush()
            results.update(res)
            bar.update(len(batch.units))
            n_failed = sum(isinstance(r, UnitFailure) for r in results.values())
            if n_failed:
                bar.set_postfix(failed=n_failed, refresh=False)
            remaining[batch.partition] -= 1
            return remaining[batch.partition] == 0

        if client is None:
            for p in early:
                stats["merge_s"] += compact_partition(out, p)["seconds"]
                stats["merges"] += 1
            for b in batches:
                stats["max_in_flight"] = 1
                try:
                    res = run_local(b)
                except Exception as exc:  # noqa: BLE001 - one task's failure does not sink the run
                    res = _failed_batch(b, exc)
                if done(b, res):
                    stats["merge_s"] += compact_partition(out, b.partition)["seconds"]
                    stats["merges"] += 1
            return results
        _run_dask(client, batches, submit, window, desc, out, early, done, stats)
    return results


def _run_dask(client, batches, submit, window, desc, out, early, done, stats) -> None:
    from distributed import as_completed

    queue = deque(batches)
    tasks: dict[str, Batch] = {}
    merges: set[str] = set()
    pending = as_completed()
    checked, size = 0.0, window or WINDOW_PER_THREAD

    def merge(part: str) -> None:
        f = submit_batch(client, f"{desc.replace(' ', '-')}-merge-{part}-{time.time_ns()}", compact_partition,
                         str(out), part)
        merges.add(f.key)
        pending.add(f)

    def fill() -> None:
        nonlocal checked, size
        if window is None and time.monotonic() - checked > 5:
            size, checked = WINDOW_PER_THREAD * _threads(client), time.monotonic()
        while queue and len(tasks) < size:
            b = queue.popleft()
            f = submit(client, b)
            tasks[f.key] = b
            pending.add(f)
        stats["max_in_flight"] = max(stats["max_in_flight"], len(tasks))

    try:
        for p in early:
            merge(p)
        fill()
        for fut in pending:
            if fut.key in merges:
                merges.discard(fut.key)
                stats["merge_s"] += fut.result()["seconds"]  # a merge that fails (disk) stops the run
                stats["merges"] += 1
                continue
            b = tasks.pop(fut.key)
            if fut.status == "error":
                res = _failed_batch(b, fut.exception())
            else:
                res = {u: _as_result(u, v) for u, v in fut.result().items()}
            if done(b, res):
                merge(b.partition)
            fut.release()
            fill()
    except KeyboardInterrupt:  # the cluster is closed next; cancelling first only adds worker noise
        raise
    except BaseException:
        client.cancel([f for f in pending.futures]) if hasattr(pending, "futures") else None
        raise
