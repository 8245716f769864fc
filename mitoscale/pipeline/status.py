"""``mitoscale status RUN_DIR``: which stages and units are complete, failed or pending."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mitoscale.errors import InputError
from mitoscale.pipeline.config import PipelineConfig
from mitoscale.pipeline.stages import STAGES, stage_keys
from mitoscale.pipeline.state import RunState

__all__ = ["StageStatus", "run_status", "format_status"]


@dataclass
class StageStatus:
    """One row of ``mitoscale status``."""

    stage: str
    state: str           # complete | running | interrupted | failed | stale | pending | disabled
    done: int | None
    total: int | None
    unit: str
    key: str | None
    detail: str


def run_status(run_dir: str | Path, cfg: PipelineConfig | None = None) -> list[StageStatus]:
    """Status of every stage of a run directory.

    Parameters
    ----------
    run_dir : path
    cfg : PipelineConfig, optional
        Compare against this config (stages whose key it changes show as
        ``stale``); default: the config of the last ``mitoscale run`` here.

    Raises
    ------
    InputError
        When ``run_dir`` holds no pipeline run.
    """
    run_dir = Path(run_dir).absolute()
    state = RunState(run_dir)
    saved = state.saved_config()
    if saved is None:
        raise InputError(f"{run_dir} holds no mitoscale run (no .pipeline/config.json)")
    if cfg is None:
        cfg = PipelineConfig.model_validate(saved["config"])
        keys = saved["keys"]
    else:
        keys = stage_keys(cfg, run_dir)
    active = state.active()
    rows = []
    for st in STAGES:
        if st.name not in keys:
            rows.append(StageStatus(st.name, "disabled", None, None, "", None, ""))
            continue
        rec = state.record(st.name) or {}
        key = keys[st.name]
        try:
            done, total, unit = st.units(cfg, run_dir)
        except Exception as exc:  # progress is best effort; never hide the stage state
            done, total, unit = None, None, f"({exc.__class__.__name__})"
        if not rec:
            st_state, detail = "pending", ""
        elif rec.get("key") != key:
            st_state, detail = "stale", f"config changed since it ran ({rec.get('key')})"
        else:
            st_state = rec.get("state", "?")
            detail = {
                "complete": f"finished {rec.get('finished', '?')}"
                            + (f" in {rec['seconds']:.0f} s" if "seconds" in rec else ""),
                "running": f"started {rec.get('started', '?')} on {rec.get('host', '?')}"
                           + (f" (SLURM job {rec['slurm_job_id']})" if rec.get("slurm_job_id") else "")
                           + ("" if active else "; no run holds the directory: it was killed, "
                              "rerun to resume"),
                "interrupted": f"stopped {rec.get('stopped', '?')}: rerun to resume",
                "failed": f"{rec.get('error', '')}",
            }.get(st_state, "")
        rows.append(StageStatus(st.name, st_state, done, total, unit, key, detail))
    return rows


def format_status(rows: list[StageStatus], run_dir: str | Path) -> str:
    lines = [f"run {Path(run_dir).absolute()}",
             f"{'stage':<10}{'state':<13}{'units':>18}  detail"]
    for r in rows:
        units = f"{r.done}/{r.total} {r.unit}" if r.total is not None else r.unit
        lines.append(f"{r.stage:<10}{r.state:<13}{units:>18}  {r.detail}")
    return "\n".join(lines)
