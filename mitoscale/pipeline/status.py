"""``mitoscale status RUN_DIR``: which stages and units are complete, failed or pending."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mitoscale.errors import InputError
from mitoscale.pipeline.config import PipelineConfig
from mitoscale.pipeline.stages import STAGES, stage_keys
from mitoscale.pipeline.state import RunState

__all__ = ["StageStatus", "run_status", "format_status", "folder_status", "format_folder_status",
           "is_run_folder"]


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
    failed: list[dict] = field(default_factory=list)  # failed units: {"unit", "reason", "where"}


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
        rows.append(StageStatus(st.name, st_state, done, total, unit, key, detail,
                                _failed_units(st.name, cfg, run_dir)))
    return rows


def _failed_units(stage: str, cfg: PipelineConfig, run_dir: Path) -> list[dict]:
    """Failed units of a stage that writes run folders (segment: one folder per input)."""
    from mitoscale.io.runfolder import RunFolder
    from mitoscale.pipeline.stages import segment_jobs

    if stage != "segment":
        return []
    out = []
    try:
        jobs = segment_jobs(cfg, run_dir)
    except Exception:  # noqa: BLE001 - best effort, as the unit counts
        return []
    for job in jobs:
        folder = run_dir / "segment" / job["name"]
        for f in RunFolder(folder, "segment").failed_units():
            out.append({**f, "where": str(folder)})
    return out


def is_run_folder(path: str | Path) -> bool:
    """Whether ``path`` is the output folder of one stage run (segment, baseline)."""
    import json

    man = Path(path) / "manifest.json"
    try:
        return man.is_file() and "identity" in json.loads(man.read_text())
    except (OSError, ValueError):
        return False


def folder_status(path: str | Path) -> dict:
    """Status of one stage's run folder: its manifest's status, units done, failed units."""
    from mitoscale.io.runfolder import RunFolder

    folder = RunFolder(path, "?")
    man = folder.read_manifest() or {}
    return {"stage": man.get("stage", "?"), "status": man.get("status", "?"),
            "units": man.get("units"), "done": len(folder.markers.completed()),
            "failed": folder.failed_units(), "started": man.get("started"),
            "finished": man.get("finished") or man.get("stopped")}


def format_folder_status(st: dict, path: str | Path) -> str:
    lines = [f"{st['stage']} run {Path(path).absolute()}: {st['status']}, "
             f"{st['done']}/{st['units']} frames complete, {len(st['failed'])} failed"
             + (f" (last: {st['finished']})" if st.get("finished") else "")]
    lines += _failed_lines(st["failed"])
    return "\n".join(lines)


def _failed_lines(failed: list[dict]) -> list[str]:
    if not failed:
        return []
    return ["failed units (a rerun retries only these):"] + [
        f"  {f['unit']}: {f.get('reason', '?')}" for f in failed]


def format_status(rows: list[StageStatus], run_dir: str | Path) -> str:
    lines = [f"run {Path(run_dir).absolute()}",
             f"{'stage':<10}{'state':<13}{'units':>18}  detail"]
    for r in rows:
        units = f"{r.done}/{r.total} {r.unit}" if r.total is not None else r.unit
        lines.append(f"{r.stage:<10}{r.state:<13}{units:>18}  {r.detail}")
    for r in rows:
        if r.failed:
            lines += [f"{r.stage}: " + _failed_lines(r.failed)[0]] + _failed_lines(r.failed)[1:]
    return "\n".join(lines)
