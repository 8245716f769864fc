"""The pipeline's stages: what each reads, writes, depends on, and how far it got.

Stages form a small DAG::

    simulate ──> train ──┐
    samples ─────────────┴─> segment ──> analyze
                                    └──> track   (inputs with a time axis)

A stage's *key* is the hash of its resolved configuration (stage config
files read and validated, overrides applied) and of the keys of the stages
it depends on.  Changing a config therefore changes the key of that stage and
of everything downstream of it, and of nothing else.  The cluster a stage
runs on is not part of any key: results do not depend on it.

Each stage resumes by itself from its own unit markers (corpus chunks,
sample frames, training checkpoints, segmented frames), so after a walltime
kill only missing units are computed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitoscale.config import config_hash, dump_config
from mitoscale.io.atomic import MarkerSet, atomic_write_text
from mitoscale.pipeline.config import PipelineConfig, stage_config

__all__ = ["Context", "Stage", "STAGES", "stage_keys", "segment_jobs"]

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What a running stage gets: the config, the run directory and a lazy Dask client."""

    cfg: PipelineConfig
    run_dir: Path
    client: Callable[[], Any]
    keys: dict[str, str]


@dataclass(frozen=True)
class Stage:
    """One stage: enablement, dependencies, key material, work, outputs and progress."""

    name: str
    enabled: Callable[[PipelineConfig], bool]
    deps: Callable[[PipelineConfig], list[str]]
    material: Callable[[PipelineConfig, Path], dict]
    run: Callable[[Context], dict]
    outputs: Callable[[Path], list[Path]]
    units: Callable[[PipelineConfig, Path], tuple[int, int, str]]


# -- simulate --------------------------------------------------------------------------------

def _sim_cfg(cfg: PipelineConfig):
    from mitoscale.simulate.config import SimulateConfig

    return stage_config(SimulateConfig, cfg.simulate.config, cfg.simulate.set)


def _sim_chunk(cfg: PipelineConfig) -> int:
    return int(cfg.simulate.chunk_images or _sim_cfg(cfg).corpus.images_per_chunk)


def _simulate_material(cfg: PipelineConfig, run_dir: Path) -> dict:
    s = cfg.simulate
    return {"simulate": dump_config(_sim_cfg(cfg)), "n_images": s.n_images, "seed": s.seed,
            "chunk_images": _sim_chunk(cfg)}


def _simulate_run(ctx: Context) -> dict:
    from mitoscale.simulate.corpus import write_corpus

    s = ctx.cfg.simulate
    res = write_corpus(_sim_cfg(ctx.cfg), ctx.run_dir / "corpus.zarr", s.n_images, seed=s.seed,
                       client=ctx.client(), chunk_images=_sim_chunk(ctx.cfg))
    return {k: res[k] for k in ("chunks", "computed", "skipped", "instances")}


def _simulate_units(cfg: PipelineConfig, run_dir: Path) -> tuple[int, int, str]:
    n = -(-cfg.simulate.n_images // _sim_chunk(cfg))
    return len(MarkerSet(run_dir / "corpus.zarr" / ".markers").completed()), n, "chunks"


# -- samples ---------------------------------------------------------------------------------

def _samples_material(cfg: PipelineConfig, run_dir: Path) -> dict:
    from mitoscale.pipeline.samples import _condition_configs

    return {"samples": dump_config(cfg.samples), "conditions": _condition_configs(cfg.samples)}


def _samples_run(ctx: Context) -> dict:
    from mitoscale.pipeline.samples import write_samples

    return write_samples(ctx.cfg.samples, ctx.run_dir / "samples", client=ctx.client())


def _samples_units(cfg: PipelineConfig, run_dir: Path) -> tuple[int, int, str]:
    from mitoscale.pipeline.samples import plan_samples

    done = len(MarkerSet(run_dir / "samples" / ".markers").completed())
    return done, len(plan_samples(cfg.samples)), "images"


# -- train -----------------------------------------------------------------------------------

def _train_cfg(cfg: PipelineConfig, run_dir: Path):
    from mitoscale.train.config import TrainConfig

    extra = [f"data.corpus={run_dir / 'corpus.zarr'}"] if cfg.simulate.enabled else []
    return stage_config(TrainConfig, cfg.train.config, cfg.train.set, extra)


def _train_material(cfg: PipelineConfig, run_dir: Path) -> dict:
    tcfg = dump_config(_train_cfg(cfg, run_dir))
    tcfg["data"]["corpus"] = "<simulate stage>" if cfg.simulate.enabled else tcfg["data"]["corpus"]
    return {"train": tcfg}


def _train_run(ctx: Context) -> dict:
    from mitoscale.train.loop import run_training

    res = run_training(_train_cfg(ctx.cfg, ctx.run_dir), ctx.run_dir / "train", resume=True)
    return {"step": res.get("step"), "model": str(res.get("model")), "val": res.get("val")}


def _train_units(cfg: PipelineConfig, run_dir: Path) -> tuple[int, int, str]:
    from mitoscale.train.state import latest_checkpoint

    import json

    ck = run_dir / "train" / "checkpoints"
    latest = latest_checkpoint(ck) if ck.is_dir() else None
    step = 0
    if latest is not None:
        meta = json.loads((Path(latest) / "model.json").read_text()).get("meta", {})
        step = int(meta.get("step", 0))
    steps = _train_cfg(cfg, run_dir).steps
    if (run_dir / "train" / "model.safetensors").exists():
        step = steps
    return step, steps, "steps"


# -- segment ---------------------------------------------------------------------------------

def segment_jobs(cfg: PipelineConfig, run_dir: Path) -> list[dict]:
    """Every input the segment stage processes: name, path, conditions, overrides."""
    from mitoscale.pipeline.samples import sample_inputs

    jobs = []
    if cfg.samples.enabled:
        jobs += [{"name": n, "path": str(p), "conditions": str(c), "set": {},
                  "truth": str(run_dir / "samples" / "truth")}
                 for n, p, c in sample_inputs(cfg.samples, run_dir / "samples")]
    jobs += [{"name": i.name, "path": i.path, "conditions": i.conditions, "set": i.set}
             for i in cfg.segment.inputs]
    names = [j["name"] for j in jobs]
    if len(set(names)) != len(names):
        from mitoscale.errors import ConfigError

        raise ConfigError(f"segment input names must be unique, got {names}")
    return jobs


def _seg_cfg(cfg: PipelineConfig, job: dict):
    from mitoscale.segment.config import SegmentConfig

    return stage_config(SegmentConfig, cfg.segment.config, {**cfg.segment.set, **job["set"]})


def _model_path(cfg: PipelineConfig, run_dir: Path) -> Path:
    from mitoscale.model.checkpoint import default_model_path

    if cfg.train.enabled:
        return run_dir / "train" / "model.safetensors"
    return Path(cfg.segment.model) if cfg.segment.model else default_model_path()


def _segment_material(cfg: PipelineConfig, run_dir: Path) -> dict:
    from mitoscale.errors import ModelError
    from mitoscale.model.checkpoint import file_sha256

    if cfg.train.enabled:
        model = "<train stage>"
    else:
        path = _model_path(cfg, run_dir)
        if not path.is_file():
            raise ModelError(f"model checkpoint not found: {path}")
        model = file_sha256(path)
    return {"model": model, "inputs": {j["name"]: _input_key(cfg, run_dir, j, model)
                                       for j in segment_jobs(cfg, run_dir)}}


def _input_key(cfg: PipelineConfig, run_dir: Path, job: dict, model: str) -> str:
    path = Path(job["path"])
    if path.is_relative_to(run_dir):  # samples: keyed by place in the run, so a run dir can move
        path = Path("$RUN_DIR") / path.relative_to(run_dir)
    return config_hash({"config": dump_config(_seg_cfg(cfg, job)), "path": str(path),
                        "model": model})


def _segment_run(ctx: Context) -> dict:
    from mitoscale.segment.pipeline import preflight, run_segmentation

    cfg, run_dir = ctx.cfg, ctx.run_dir
    model = _model_path(cfg, run_dir)
    material = _segment_material(cfg, run_dir)
    jobs = segment_jobs(cfg, run_dir)
    for job in jobs:  # every input checked before any work
        preflight(job["path"], run_dir / "segment" / job["name"], model, _seg_cfg(cfg, job))
    summary = {}
    for job in jobs:
        out = run_dir / "segment" / job["name"]
        # an input's result changes with its settings, the model (train key) and, for
        # synthetic inputs, the images (samples key); other inputs' changes leave it alone
        upstream = {"train": ctx.keys.get("train")}
        if job.get("truth"):
            upstream["samples"] = ctx.keys.get("samples")
        key = config_hash({"input": material["inputs"][job["name"]], "upstream": upstream})
        key_file = out / "pipeline_key.txt"
        if key_file.is_file() and key_file.read_text().strip() != key:
            log.info("segment %s: config or model changed, recomputing it", job["name"])
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(key_file, key + "\n")
        man = run_segmentation(job["path"], out, model=model, cfg=_seg_cfg(cfg, job),
                               client=ctx.client())
        summary[job["name"]] = {"frames": man["frames"], "skipped": man["frames_skipped"],
                                "instances": man.get("counts", {}).get("instances")}
    return summary


def _segment_units(cfg: PipelineConfig, run_dir: Path) -> tuple[int, int, str]:
    import json

    done = total = 0
    for job in segment_jobs(cfg, run_dir):
        out = run_dir / "segment" / job["name"]
        from mitoscale.io.runfolder import RunFolder

        done += len(RunFolder(out, "segment").markers.completed())
        man = out / "manifest.json"
        total += json.loads(man.read_text())["frames"] if man.is_file() else 0
    return done, total, "frames"


# -- analyze ---------------------------------------------------------------------------------

def _analyse_cfg(cfg: PipelineConfig):
    from mitoscale.analyse.config import AnalyseConfig

    return stage_config(AnalyseConfig, cfg.analyze.config, cfg.analyze.set)


def _analyze_material(cfg: PipelineConfig, run_dir: Path) -> dict:
    return {"analyse": dump_config(_analyse_cfg(cfg)),
            "inputs": [j["name"] for j in segment_jobs(cfg, run_dir) if j["conditions"]]}


def _analyze_run(ctx: Context) -> dict:
    from mitoscale.analyse.run import analyse_paths, analyse_tables, format_summary, write_outputs

    acfg = _analyse_cfg(ctx.cfg)
    results = ctx.run_dir / "results"
    summary, report = {}, ["# mitoscale results", ""]
    for job in segment_jobs(ctx.cfg, ctx.run_dir):
        if not job["conditions"]:
            continue
        parts = [ctx.run_dir / "segment" / job["name"] / "instances"]
        # streamed (a screen's tables need not fit in memory); frames without instances count as 0
        ds = analyse_paths(parts, job["conditions"], acfg, attrs={"input": job["name"]})
        n_inst = int(ds.attrs["n_instances"])
        paths = write_outputs(ds, results / job["name"], suptitle=job["name"])
        summary[job["name"]] = {"instances": n_inst, "files": len(paths)}
        report += [f"## {job['name']}", "", f"input: `{job['path']}`  ", f"instances: {n_inst}", "",
                   "segmented:", "", "```", format_summary(ds), "```", ""]
        if job.get("truth"):  # synthetic input: the same analysis of the simulator's ground truth
            from mitoscale.io.tables import read_table

            truth = read_table(job["truth"])
            truth = truth[truth["image_id"] == job["name"]].reset_index(drop=True)
            tds = analyse_tables(truth, job["conditions"], acfg,
                                 attrs={"input": f"{job['name']} ground truth"})
            write_outputs(tds, results / f"{job['name']}_truth", suptitle=f"{job['name']} (truth)")
            report += ["ground truth (simulator), the answer the segmentation should give:", "",
                       "```", format_summary(tds), "```", ""]
        report += [*[f"![{p.stem}]({job['name']}/{p.name})" for p in paths.values()
                     if p.suffix == ".png"], ""]
    atomic_write_text(results / "README.md", "\n".join(report))
    return summary


def _analyze_units(cfg: PipelineConfig, run_dir: Path) -> tuple[int, int, str]:
    names = [j["name"] for j in segment_jobs(cfg, run_dir) if j["conditions"]]
    done = sum((run_dir / "results" / n / "per_condition.csv").is_file() for n in names)
    return done, len(names), "inputs"


# -- track -----------------------------------------------------------------------------------

def _track_material(cfg: PipelineConfig, run_dir: Path) -> dict:
    from mitoscale.track.pipeline import track_config

    return {"track": dump_config(track_config(cfg)),
            "inputs": [j["name"] for j in segment_jobs(cfg, run_dir)]}


def _track_run(ctx: Context) -> dict:
    from mitoscale.track.pipeline import track_stage

    return track_stage(ctx.cfg, ctx.run_dir, segment_jobs(ctx.cfg, ctx.run_dir), ctx.client)


def _track_units(cfg: PipelineConfig, run_dir: Path) -> tuple[int, int, str]:
    from mitoscale.track.pipeline import track_progress

    return track_progress(run_dir, segment_jobs(cfg, run_dir))


def _segment_on(c: PipelineConfig) -> bool:
    return c.segment.enabled and (c.samples.enabled or bool(c.segment.inputs))


STAGES: list[Stage] = [
    Stage("simulate", lambda c: c.simulate.enabled, lambda c: [], _simulate_material,
          _simulate_run, lambda r: [r / "corpus.zarr"], _simulate_units),
    Stage("samples", lambda c: c.samples.enabled, lambda c: [], _samples_material,
          _samples_run, lambda r: [r / "samples"], _samples_units),
    Stage("train", lambda c: c.train.enabled,
          lambda c: ["simulate"] if c.simulate.enabled else [], _train_material,
          _train_run, lambda r: [r / "train"], _train_units),
    Stage("segment", _segment_on,
          lambda c: [d for d, on in (("samples", c.samples.enabled), ("train", c.train.enabled)) if on],
          _segment_material, _segment_run,
          lambda r: [],  # per-input keys: only inputs whose key changed are recomputed
          _segment_units),
    Stage("analyze", lambda c: c.analyze.enabled and _segment_on(c), lambda c: ["segment"],
          _analyze_material, _analyze_run, lambda r: [r / "results"], _analyze_units),
    Stage("track", lambda c: c.track.enabled and _segment_on(c), lambda c: ["segment"],
          _track_material, _track_run, lambda r: [r / "tracks"], _track_units),
]


def stage_keys(cfg: PipelineConfig, run_dir: Path) -> dict[str, str]:
    """Key of every enabled stage (validates every stage config on the way)."""
    keys: dict[str, str] = {}
    for st in STAGES:
        if not st.enabled(cfg):
            continue
        deps = {d: keys[d] for d in st.deps(cfg)}
        keys[st.name] = config_hash({"stage": st.name, "material": st.material(cfg, run_dir),
                                     "deps": deps})
    return keys
