"""The run-folder contract shared by every stage that writes per-frame results.

``mitoscale segment``, every ``mitoscale baseline`` (and any later per-frame
stage) manage their output folder through :class:`RunFolder`::

    OUT/
      manifest.json            identity (stage, config, model, input), status, counts
      instances/<partition>/part-0.parquet   one file per well (plates) or image, a row group
                               per frame (mitoscale.io.partitions)
      units.log                append-only completion log: one line per finished or failed
                               unit, written after its results (mitoscale.io.unitlog)
      .staging/                results of finished tasks not yet merged (invisible to readers)
      failed.json              the full list of failed units of the last invocation

Older folders (one ``instances/<unit>.parquet`` and one ``.markers/<unit>.done``
per frame) still read, count and resume: their markers are part of the log.
Work is run by :func:`mitoscale.io.batches.execute_batches` (bounded window,
batched frames, the frame check inside each task).

The contract:

* **Identity.** A run is identified by its stage, config, model and *input*:
  paths, shapes and a content fingerprint (:func:`input_identity`: the file
  listing with sizes, every metadata file and a sample of chunk/file bytes;
  no full read).  Resuming into a folder whose identity differs is refused
  with one line naming what differs; ``overwrite=True`` clears it instead.
* **Location.** An output equal to or inside the input is refused
  (:func:`check_output_location`).
* **One frame check** for every method (:func:`check_frame`).
* **Per-unit failures** (a corrupt chunk, a blank well) do not sink the run:
  other units go on, failed units are recorded and never marked complete,
  the run ends with :class:`UnitFailures` (one line: how many, the first
  reason, where the list is), and a rerun retries only those units.  Errors
  that every unit would hit (a full or unwritable disk) stop the run at once.
* **Counts over the whole folder.** The manifest's ``counts`` sum every
  unit's marker, so a resumed run reports the folder, not the last invocation.
* **Interrupts.** ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM via
  :mod:`mitoscale.cluster.signals`) marks the manifest ``interrupted``; a
  rerun resumes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mitoscale.errors import InputError, MitoscaleError, OutputError
from mitoscale.io.atomic import atomic_write_json
from mitoscale.io.unitlog import DONE, FAILED, LogView, UnitLog

__all__ = [
    "RunFolder",
    "UnitFailure",
    "UnitFailures",
    "check_frame",
    "check_output_location",
    "input_identity",
    "guard_unit",
    "disk_errors",
    "gather_units",
    "run_units_locally",
]

#: files whose bytes are always part of the fingerprint (small metadata)
_METADATA = {"zarr.json", ".zattrs", ".zarray", ".zgroup", ".zmetadata"}
#: data files (chunks, image files) sampled into the fingerprint
N_SAMPLED_FILES = 16
#: bytes read from each sampled file: head, middle and tail blocks
SAMPLE_BLOCK = 64 * 1024

#: OS errors that every unit would hit: the run stops at once with one line
_DISK_ERRNOS = {errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EPERM, errno.EDQUOT}


class UnitFailures(MitoscaleError):
    """Some units of a run failed; the others are complete.  One line (see :meth:`RunFolder.finish`)."""


@dataclass
class UnitFailure:
    """The result of a unit that failed with a user-facing reason."""

    unit: str
    reason: str


# ----------------------------------------------------------------------------- checks


def check_output_location(input_path: str | Path, out: str | Path) -> None:
    """Refuse an output equal to the input or inside it (every stage calls this)."""
    inp, o = Path(input_path).resolve(), Path(out).resolve()
    if o == inp or inp in o.parents:
        raise OutputError(f"output {out} is inside the input {input_path}; choose another --out")


def check_frame(image: np.ndarray, where: str = "frame") -> None:
    """The one frame check of every method: non-empty 2D, finite, not constant.

    Raises
    ------
    InputError
        Naming ``where`` and the problem.
    """
    image = np.asarray(image)
    if image.ndim != 2 or 0 in image.shape:
        raise InputError(f"{where}: expected a non-empty 2D frame, got shape {image.shape}")
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"{where}: frame contains NaN or infinite values")
    lo, hi = image.min(), image.max()
    if lo == hi:
        raise InputError(f"{where}: frame is constant (every pixel = {lo}); nothing to segment")


def read_pixels(data: Any, where: str) -> np.ndarray:
    """Compute a lazy frame in this thread; unreadable data (corrupt chunks) is one :class:`InputError`."""
    try:
        return np.asarray(data.compute(scheduler="sync") if hasattr(data, "compute") else data)
    except MitoscaleError:
        raise
    except Exception as exc:  # noqa: BLE001 - zarr/codec/tifffile errors of corrupt data
        raise InputError(f"{where}: cannot read pixels ({exc.__class__.__name__}: {exc})") from None


# ----------------------------------------------------------------------------- identity


def _sample_hash(h, path: Path, size: int) -> None:
    with open(path, "rb") as fh:
        if size <= 3 * SAMPLE_BLOCK:
            h.update(fh.read())
            return
        for off in (0, size // 2 - SAMPLE_BLOCK // 2, size - SAMPLE_BLOCK):
            fh.seek(off)
            h.update(fh.read(SAMPLE_BLOCK))


def _files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    # labels/ groups are outputs (also ours with --labels-into-input): not the input's identity
    return sorted(p for p in path.rglob("*")
                  if p.is_file() and "labels" not in p.relative_to(path).parts)


def input_identity(path: str | Path, sources: Iterable[Any] = ()) -> dict[str, Any]:
    """Identity of an input: path, every image's shape, and a content fingerprint.

    The fingerprint needs no full read: the listing of every file with its
    size, the bytes of every metadata file, and head/middle/tail blocks of up
    to :data:`N_SAMPLED_FILES` data files (chunks or image files) spread
    evenly over the listing.  Output ``labels/`` groups are left out.

    Parameters
    ----------
    path : path
        The input (OME-Zarr store, TIFF/PNG file or folder).
    sources : iterable of ImageSource
        The opened images: their group paths, axes, shapes and pixel sizes
        become part of the identity.
    """
    path = Path(path)
    files = _files(path)
    listing = hashlib.sha256()
    content = hashlib.sha256()
    data_files, total = [], 0
    for p in files:
        size = p.stat().st_size
        total += size
        rel = p.relative_to(path).as_posix() if path.is_dir() else p.name
        listing.update(f"{rel}\0{size}\n".encode())
        if p.name in _METADATA:
            content.update(rel.encode() + b"\0" + p.read_bytes())
        else:
            data_files.append((rel, p, size))
    if data_files:
        step = max(1, len(data_files) // N_SAMPLED_FILES)
        for rel, p, size in data_files[::step][:N_SAMPLED_FILES]:
            content.update(rel.encode() + b"\0")
            _sample_hash(content, p, size)
    images = [{"name": s.group_path or s.image_id, "axes": "".join(s.axes),
               "shape": [int(n) for n in s.data.shape], "dtype": str(s.data.dtype),
               "pixel_size_um": s.pixel_size_um} for s in sources]
    return {"path": str(path.resolve()), "images": images, "files": len(files), "bytes": total,
            "listing_sha256": listing.hexdigest(), "content_sha256": content.hexdigest()}


def _differences(old: dict, new: dict) -> list[str]:
    """Human names of what differs between two identities."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "input" and isinstance(a, dict) and isinstance(b, dict):
            if a.get("path") != b.get("path") and a.get("path_from_out") != b.get("path_from_out"):
                out.append(f"input path ({a.get('path')} vs {b.get('path')})")
            if a.get("images") != b.get("images"):
                out.append("input images (names, axes, shapes or pixel sizes)")
            if (a.get("listing_sha256"), a.get("content_sha256")) != (
                    b.get("listing_sha256"), b.get("content_sha256")) and a.get("images") == b.get("images"):
                out.append("input content")
            continue
        out.append(key.replace("_", " "))
    return out


# ----------------------------------------------------------------------------- the folder


class RunFolder:
    """The output folder of one per-frame stage run (see the module docstring).

    Parameters
    ----------
    out : path
        The output folder.
    stage : str
        Stage name (``"segment"``, ``"baseline classical"``...), written to the
        manifest as ``format = mitoscale-<stage>/1``.
    """

    def __init__(self, out: str | Path, stage: str):
        self.out = Path(out)
        self.stage = stage
        self.log = UnitLog(self.out / "units.log", legacy_done=self.out / ".markers",
                           legacy_failed=self.out / ".failed")
        self.markers = LogView(self.log, DONE)      # the units complete
        self.failures = LogView(self.log, FAILED)   # the units that failed (retried by a rerun)
        self.manifest_path = self.out / "manifest.json"
        self.manifest: dict[str, Any] = {}

    # -- identity ---------------------------------------------------------------------------

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            raise OutputError(f"{self.manifest_path}: unreadable run manifest; "
                              "use a new --out or --overwrite") from None

    def claim(self, identity: dict[str, Any], overwrite: bool = False) -> bool:
        """Take the folder for a run of ``identity``; refuse one holding another run.

        ``identity`` is any JSON-able dict (stage, config, model, ``input``
        from :func:`input_identity`).  A folder holding units of another
        identity is refused with one line naming the difference, unless
        ``overwrite``, which removes the old units first.

        Returns
        -------
        bool
            Whether old units were removed (the stage removes its other outputs then).
        """
        identity = json.loads(json.dumps(identity, default=str))
        inp = identity.get("input")
        if isinstance(inp, dict) and "path" in inp:  # a run folder moved with its input still matches
            inp["path_from_out"] = os.path.relpath(inp["path"], self.out.resolve())
        old = self.read_manifest()
        has_units = bool(self.log.state() or next((self.out / "instances").rglob("*.parquet"), None)
                         or (self.out / ".staging").is_dir())
        if old is not None or has_units:
            old_id = (old or {}).get("identity")
            diffs = ["identity"] if old_id is None else _differences(old_id, identity)
            if diffs:
                if not overwrite:
                    what = ("results without a run identity (an older mitoscale or another tool)"
                            if old_id is None else
                            f"a {(old or {}).get('stage', 'previous')} run with another {', '.join(diffs)}")
                    raise OutputError(f"{self.out} holds {what}; use a new --out or --overwrite")
                self.clear()
                self.identity = identity
                return True
        self.identity = identity
        return False

    def clear(self) -> None:
        """Remove every unit's result, marker and failure record (``--overwrite``)."""
        import shutil

        from mitoscale.io.partitions import STAGING

        self.log.clear()
        for d in ("instances", STAGING):
            if (self.out / d).is_dir():
                shutil.rmtree(self.out / d)
        (self.out / "failed.json").unlink(missing_ok=True)

    # -- units ------------------------------------------------------------------------------

    def pending(self, units: Iterable[str]) -> list[str]:
        """The units not complete (failed units included: a rerun retries them)."""
        state = self.log.state()
        return [u for u in units if state.get(u, {}).get("state") != DONE]

    def part_path(self, unit: str) -> Path:
        """Where the older layout kept a unit's part (one file per frame; read, no longer written)."""
        return self.out / "instances" / f"{unit}.parquet"

    def record(self, results: dict[str, Any]) -> None:
        """Append the outcome of finished units to the log (their results are on disk already)."""
        self.log.append([(u, FAILED, {"reason": r.reason, "when": _now()}) if isinstance(r, UnitFailure)
                         else (u, DONE, r if isinstance(r, dict) else {}) for u, r in results.items()])

    def totals(self) -> dict[str, float]:
        """Sum of every numeric field over the completed units of the whole folder."""
        totals: dict[str, float] = {}
        for rec in self.log.state().values():
            if rec.get("state") != DONE:
                continue
            for k, v in rec.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    totals[k] = totals.get(k, 0) + v
        return totals

    def failed_units(self) -> list[dict[str, Any]]:
        """Every failed unit recorded in the folder: ``{"unit", "reason"}``."""
        return [{"unit": u, "reason": "?", **{k: v for k, v in r.items() if k != "state"}}
                for u, r in sorted(self.log.state().items()) if r.get("state") == FAILED]

    # -- a run ------------------------------------------------------------------------------

    def _write(self, **fields: Any) -> None:
        self.manifest.update(fields)
        with disk_errors(self.manifest_path):
            atomic_write_json(self.manifest_path, self.manifest)

    def _write_after_error(self, **fields: Any) -> None:
        try:  # best effort: the disk may be what failed; never hide the original error
            self._write(**fields)
        except (OSError, MitoscaleError):
            pass

    @contextlib.contextmanager
    def running(self, units: list[str], **fields: Any) -> Iterator[RunFolder]:
        """Write the manifest as ``running`` for a run over ``units``; record how it ended.

        Inside, call :meth:`finish` with the results.  A ``KeyboardInterrupt``
        (Ctrl-C, SIGTERM) marks the manifest ``interrupted``, another
        error ``failed``; both re-raise.
        """
        self.out.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()
        pending = self.pending(units)
        self.manifest = {"format": f"mitoscale-{self.stage.split()[0]}/1", "stage": self.stage,
                         "identity": self.identity, **fields, "units": len(units),
                         "units_skipped": len(units) - len(pending), "status": "running",
                         "started": _now(self._t0)}
        self._write()
        try:
            with disk_errors(self.out):
                yield self
        except KeyboardInterrupt:
            self._write_after_error(status="interrupted", stopped=_now(), **self._counts())
            raise
        except UnitFailures:
            raise
        except BaseException as exc:
            self._write_after_error(status="failed", stopped=_now(),
                                    error=str(exc) if isinstance(exc, MitoscaleError)
                                    else f"{exc.__class__.__name__}: {exc}", **self._counts())
            raise

    def _counts(self) -> dict[str, Any]:
        return {"counts": {k: (int(v) if float(v).is_integer() else v)
                           for k, v in self.totals().items()},
                "units_done": len(self.markers.completed())}

    def finish(self, results: dict[str, Any], unit_name: str = "frame", **fields: Any) -> dict[str, Any]:
        """Record the outcome of the run's pending units and write the final manifest.

        Parameters
        ----------
        results : dict
            Unit -> its result (the marker info) or a :class:`UnitFailure`.
        unit_name : str
            What a unit is, for the summary line (``"frame"``).

        Raises
        ------
        UnitFailures
            When any unit failed: one line with the count, the first reason
            and where the full list is.  The manifest says ``failed``.
        """
        state = self.log.state()  # results not yet logged (a caller without execute_batches)
        self.record({u: r for u, r in results.items() if isinstance(r, UnitFailure)
                     and state.get(u, {}).get("state") != FAILED})
        (self.out / ".markers").is_dir() and _remove_stale(self.out / ".markers")
        listing = self.out / "failed.json"
        all_failed = self.failed_units()
        if all_failed:
            atomic_write_json(listing, all_failed)
        else:
            listing.unlink(missing_ok=True)
        self._write(status="failed" if all_failed else "complete", finished=_now(),
                    seconds=round(time.time() - self._t0, 3), failed=len(all_failed),
                    **{**self._counts(), **fields})
        if all_failed:
            first = all_failed[0]
            n = len(all_failed)
            raise UnitFailures(
                f"{n} of {self.manifest['units']} {unit_name}s failed (first, {first['unit']}: "
                f"{first['reason']}); list in {listing}; the others are complete, rerun to retry "
                f"only the failed {unit_name}{'s' if n > 1 else ''}")
        return self.manifest


def _remove_stale(root: Path) -> None:
    from mitoscale.io.atomic import MarkerSet

    MarkerSet(root).remove_stale_writes()


def _now(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


# ----------------------------------------------------------------------------- executing units


@contextlib.contextmanager
def disk_errors(where: str | Path) -> Iterator[None]:
    """Turn a full or unwritable disk (ENOSPC, EACCES, EROFS, EDQUOT) into one :class:`OutputError`."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _DISK_ERRNOS:
            raise OutputError(f"cannot write {exc.filename or where}: "
                              f"{exc.strerror or os.strerror(exc.errno)}") from None
        raise


def guard_unit(unit: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one unit's work: a user-facing error becomes a :class:`UnitFailure` result.

    Disk errors (:func:`disk_errors`) are raised as :class:`OutputError`,
    which stops the run; other exceptions propagate (Dask retries them).
    """
    try:
        with disk_errors(f"the results of {unit}"):
            return fn(*args, **kwargs)
    except OutputError:
        raise
    except MitoscaleError as exc:
        return UnitFailure(unit, str(exc))


def _as_result(unit: str, value: Any) -> Any:
    if isinstance(value, OutputError):
        raise value
    if isinstance(value, MitoscaleError):
        return UnitFailure(unit, str(value))
    if isinstance(value, BaseException):
        return UnitFailure(unit, f"{value.__class__.__name__}: {value}")
    return value


def gather_units(client: Any, futures: dict[str, Any], desc: str, unit: str = "frame",
                 progress: bool = True) -> dict[str, Any]:
    """Wait for one future per unit; failed futures become :class:`UnitFailure` results.

    An :class:`OutputError` (disk full or unwritable) cancels the rest and is raised.
    """
    from mitoscale.cluster import run_futures

    units = list(futures)
    try:
        values = run_futures(client, [futures[u] for u in units], desc=desc, unit=unit,
                             errors="return", progress=progress)
        return {u: _as_result(u, v) for u, v in zip(units, values)}
    except KeyboardInterrupt:  # the cluster is closed next; cancelling first only adds worker noise
        raise
    except BaseException:
        client.cancel(list(futures.values()))
        raise


def run_units_locally(work: dict[str, Callable[[], Any]], desc: str, unit: str = "frame",
                      progress: bool = True) -> dict[str, Any]:
    """Run each unit's callable here, in order; failures as in :func:`gather_units`."""
    from tqdm.auto import tqdm

    results = {}
    disable = not progress or os.environ.get("MITOSCALE_NO_PROGRESS") == "1"
    for u in tqdm(list(work), desc=desc, unit=unit, disable=disable):
        try:
            results[u] = work[u]()
        except OutputError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unit's failure does not sink the run
            results[u] = _as_result(u, exc)
    return results
