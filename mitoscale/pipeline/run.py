"""``mitoscale run``: every enabled stage in order, skipping what is complete.

Resuming is the default: rerunning the same command after a crash, a
``scancel`` or a walltime kill skips complete stages (their record carries
the current key) and, inside the interrupted stage, every finished unit.
A stage whose key changed has its outputs removed and is recomputed; so is
everything downstream of it, and nothing upstream.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from mitoscale.config import dump_config
from mitoscale.errors import MitoscaleError
from mitoscale.io.atomic import check_writable
from mitoscale.pipeline.config import ClusterSection, PipelineConfig, overrides_list
from mitoscale.pipeline.stages import STAGES, Context, stage_keys
from mitoscale.pipeline.state import RunState, now

__all__ = ["run_pipeline", "LazyClient"]

log = logging.getLogger(__name__)


class LazyClient:
    """Start the run's Dask cluster the first time a stage asks for it; reuse it after."""

    def __init__(self, cluster: ClusterSection, run_dir: Path):
        self.cluster, self.run_dir = cluster, run_dir
        self._stack = contextlib.ExitStack()
        self._client = None

    def profile(self):
        """The validated profile; batch worker logs default to ``RUN_DIR/logs/workers``."""
        from mitoscale.cluster.profiles import JobqueueProfile, resolve_profile

        opts = overrides_list(self.cluster.options)
        prof = resolve_profile(self.cluster.profile, opts)
        if isinstance(prof, JobqueueProfile) and "log_directory" not in self.cluster.options:
            prof.log_directory = str(self.run_dir / "logs" / "workers")
        return prof

    def check(self) -> None:
        """Every check that can fail before a job is submitted (batch profiles: queue, memory...)."""
        from mitoscale.cluster.launch import preflight
        from mitoscale.cluster.profiles import JobqueueProfile

        prof = self.profile()
        if isinstance(prof, JobqueueProfile) and not self.cluster.scheduler:
            preflight(prof)

    def __call__(self):
        if self._client is None:
            from mitoscale.cluster import get_client

            self._client = self._stack.enter_context(get_client(
                self.profile(), scheduler=self.cluster.scheduler, n_workers=self.cluster.workers))
        return self._client

    def close(self) -> None:
        self._stack.close()
        self._client = None


def _say(msg: str) -> None:
    print(f"[mitoscale run] {msg}", file=sys.stderr, flush=True)


def run_pipeline(cfg: PipelineConfig, run_dir: str | Path,
                 only: list[str] | None = None) -> dict[str, Any]:
    """Run every enabled stage of ``cfg`` into ``run_dir``; resume what is there.

    Parameters
    ----------
    cfg : PipelineConfig
    run_dir : path
        Output folder of the whole run (created).
    only : list of str, optional
        Run only these stages (their upstream must be complete).

    Returns
    -------
    dict
        Per stage: ``state`` (``complete``, ``skipped``, ``disabled``) and the summary.

    Raises
    ------
    MitoscaleError
        Bad configs (every stage config is validated before any work starts),
        an unusable run directory or cluster profile, or a stage's own error;
        the failing stage is recorded as ``failed``.
    """
    run_dir = check_writable(Path(run_dir))
    state = RunState(run_dir)
    keys = stage_keys(cfg, run_dir)  # validates every stage config first
    client = LazyClient(cfg.cluster, run_dir)
    dask_stages = [n for n in ("simulate", "samples", "segment")
                   if n in keys and not state.is_complete(n, keys[n])]
    if dask_stages:
        client.check()  # a bad cluster profile fails here, before any stage (or job) starts
    if only:
        unknown = sorted(set(only) - {s.name for s in STAGES})
        if unknown:
            raise MitoscaleError(f"unknown stage(s) {', '.join(unknown)}; "
                                 f"stages: {', '.join(s.name for s in STAGES)}")
    report: dict[str, Any] = {}
    with state.lock():
        state.save_config({"config": dump_config(cfg), "keys": keys, "saved": now()})
        try:
            for st in STAGES:
                if st.name not in keys:
                    report[st.name] = {"state": "disabled"}
                    continue
                key = keys[st.name]
                if only and st.name not in only:
                    report[st.name] = {"state": "not selected"}
                    continue
                for dep in st.deps(cfg):
                    if not state.is_complete(dep, keys[dep]):
                        raise MitoscaleError(f"stage {st.name} needs stage {dep}, which is not "
                                             "complete; run it first")
                if state.is_complete(st.name, key):
                    _say(f"{st.name}: complete (key {key}), skipped")
                    report[st.name] = {"state": "skipped", **state.record(st.name)}
                    continue
                report[st.name] = _run_stage(st, key, keys, cfg, run_dir, state, client)
        finally:
            client.close()
    return report


def _run_stage(st, key, keys, cfg, run_dir, state, client) -> dict[str, Any]:
    rec = state.record(st.name)
    if rec and rec.get("key") != key:
        _say(f"{st.name}: configuration changed ({rec.get('key')} -> {key}); "
             "removing its old outputs")
        for p in st.outputs(run_dir):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        state.forget(st.name)
    elif rec:
        _say(f"{st.name}: resuming ({rec.get('state')} since {rec.get('started', '?')})")
    else:
        _say(f"{st.name}: starting")
    deps = {d: keys[d] for d in st.deps(cfg)}
    state.write(st.name, key, "running", started=now(), deps=deps)
    t0 = time.perf_counter()
    try:
        summary = st.run(Context(cfg, run_dir, client, keys))
    except KeyboardInterrupt:
        state.write(st.name, key, "interrupted", deps=deps, stopped=now(),
                    error="interrupted (signal); rerun the same command to resume")
        raise
    except MitoscaleError as exc:
        state.write(st.name, key, "failed", deps=deps, stopped=now(), error=str(exc))
        raise
    except Exception as exc:
        state.write(st.name, key, "failed", deps=deps, stopped=now(),
                    error=f"{exc.__class__.__name__}: {exc}")
        raise
    seconds = round(time.perf_counter() - t0, 1)
    rec = state.write(st.name, key, "complete", deps=deps, finished=now(), seconds=seconds,
                      summary=summary)
    _say(f"{st.name}: complete in {seconds:.1f} s")
    return rec
