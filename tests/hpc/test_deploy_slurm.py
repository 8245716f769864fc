"""deploy/slurm batch scripts on the real single-node SLURM.

- ``dask-cluster.sbatch`` runs a small ``mitoscale segment`` job end to end
  (scheduler + srun workers inside one allocation); its instance table equals
  an in-process run's.
- ``run-pipeline.sbatch`` (a driver job that submits its Dask worker as a
  second SLURM job) is cancelled mid-run (SIGTERM, as at the walltime) and
  resubmitted: no worker job is left behind, and the rerun resumes,
  recomputing only the missing units.
- ``plate-array.sbatch`` segments one input per array task and analyses the
  ones whose line names a conditions CSV.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mitoscale.io.tables import read_table
from mitoscale.pipeline.config import SamplesSection
from mitoscale.pipeline.samples import write_samples
from mitoscale.pipeline.state import RunState
from mitoscale.segment.config import SegmentConfig
from mitoscale.segment.pipeline import run_segmentation

from .helpers import slurm_profile_opts, wait_for

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SEG_SET = {"postprocess.min_score": 0.0, "prompts.spacing": 16, "decode.window": 8}


def _sbatch(slurm, *argv: str, cwd: Path, env_extra: dict | None = None) -> str:
    env = {**os.environ, **slurm.env, "MITOSCALE_VENV": str(Path(sys.executable).parent.parent),
           "MITOSCALE_DEPLOY": str(REPO / "deploy"), **(env_extra or {})}
    out = subprocess.run(["sbatch", "--parsable", *argv], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _wait_job(slurm, job: str, timeout: float = 240) -> None:
    # squeue -j lists an array job's tasks too; it prints nothing once they have all left
    wait_for(lambda: not slurm.client("squeue", "-h", "-j", job, "-o", "%i", check=False).strip(),
             timeout=timeout, interval=0.5, what=f"SLURM job {job}")


@pytest.mark.slow
def test_dask_cluster_sbatch_runs_a_segment_job_end_to_end(slurm_clean, tmp_path, micro_model):
    samples = SamplesSection(enabled=True, image_px=128, timelapse_frames=2, wells_per_condition=0)
    write_samples(samples, tmp_path / "samples")
    movie = tmp_path / "samples" / "timelapse.ome.zarr"
    sets = [a for k, v in SEG_SET.items() for a in ("--set", f"{k}={v}")]
    job = _sbatch(slurm_clean, "--ntasks=1", "--cpus-per-task=1", "--mem-per-cpu=2G",
                  "--time=00:10:00", f"--output={tmp_path}/job-%j.log",
                  str(REPO / "deploy" / "slurm" / "dask-cluster.sbatch"),
                  "segment", str(movie), "--out", str(tmp_path / "seg"), "--model", str(micro_model),
                  *sets, cwd=tmp_path)
    _wait_job(slurm_clean, job)
    log = (tmp_path / f"job-{job}.log").read_text()
    man = json.loads((tmp_path / "seg" / "manifest.json").read_text())
    assert man["status"] == "complete" and man["frames"] == 2, log
    assert man["workers"] == 1
    worker_log = (tmp_path / "mitoscale-logs" / f"job-{job}" / "worker-0.log").read_text()
    assert "Registered to:" in worker_log
    got = read_table(tmp_path / "seg" / "instances")
    cfg = SegmentConfig()
    for k, v in SEG_SET.items():
        section, key = k.split(".")
        setattr(getattr(cfg, section), key, v)
    run_segmentation(movie, tmp_path / "ref", model=micro_model, cfg=cfg, progress=False)
    ref = read_table(tmp_path / "ref" / "instances")
    keys = ["t", "instance_id"]
    pd.testing.assert_frame_equal(got.sort_values(keys).reset_index(drop=True),
                                  ref.sort_values(keys).reset_index(drop=True), check_exact=True)


def test_run_pipeline_sbatch_resumes_after_the_job_is_killed(slurm_clean, tmp_path, micro_model):
    n = 12
    cfg = {"cluster": {"profile": "local", "workers": 1, "options": {"dashboard_address": None}},
           "simulate": {"enabled": False},
           "samples": {"enabled": True, "image_px": 128, "timelapse_frames": n,
                       "wells_per_condition": 0},
           "segment": {"enabled": False}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "run"
    script = str(REPO / "deploy" / "slurm" / "run-pipeline.sbatch")
    # the driver job (1 CPU) submits its Dask worker as a second SLURM job (the other CPU)
    opts = [a for o in slurm_profile_opts(tmp_path) if not o.startswith("log_directory=")
            for a in ("--cluster-opt", o)]  # worker logs: the pipeline's default folder
    argv = ["--cpus-per-task=1", "--mem=2G", "--time=00:10:00", f"--output={tmp_path}/job-%j.log",
            script, "--cluster", "slurm", *opts]
    env = {"CONFIG": str(path), "OUT": str(out)}
    job = _sbatch(slurm_clean, *argv, cwd=tmp_path, env_extra=env)
    markers = out / "samples" / ".markers"
    wait_for(lambda: markers.is_dir() and len(list(markers.glob("*.done"))) >= 2, timeout=120,
             what="first units")
    workers = slurm_clean.client("squeue", "-h", "-n", "mitoscale-worker", "-o", "%i").split()
    assert len(workers) == 1
    slurm_clean.client("scancel", job)  # SIGTERM to the job, as at the walltime
    _wait_job(slurm_clean, job)
    _wait_job(slurm_clean, workers[0], timeout=60)  # the driver took its worker job down with it
    done = len(list(markers.glob("*.done")))
    assert 2 <= done < n
    assert RunState(out).record("samples")["state"] == "interrupted"
    log = (tmp_path / f"job-{job}.log").read_text()
    assert re.search(r"rerun the same command to resume|resubmit", log), log

    job2 = _sbatch(slurm_clean, *argv, cwd=tmp_path, env_extra=env)
    _wait_job(slurm_clean, job2)
    rec = RunState(out).record("samples")
    assert rec["state"] == "complete", (tmp_path / f"job-{job2}.log").read_text()
    assert rec["summary"] == {"units": n, "computed": n - done, "skipped": done}
    assert rec["slurm_job_id"] == job2
    # batch worker logs default to RUN_DIR/logs/workers inside a pipeline run
    logs = sorted(p.name for p in (out / "logs" / "workers").glob("*.err"))
    assert f"mitoscale-worker-{workers[0]}.err" in logs and len(logs) == 2


@pytest.mark.slow
def test_plate_array_sbatch_segments_and_analyses_one_input_per_task(slurm_clean, tmp_path,
                                                                     micro_model):
    samples = SamplesSection(enabled=True, image_px=96, timelapse_frames=1, wells_per_condition=1,
                             fields_per_well=1, conditions=[{"name": "a"}, {"name": "b"}])
    write_samples(samples, tmp_path / "samples")
    s = tmp_path / "samples"
    (tmp_path / "list.txt").write_text(
        "# input  conditions\n"
        f"{s / 'timelapse.ome.zarr'}\n"
        f"{s / 'plate.ome.zarr'}  {s / 'plate_conditions.csv'}\n")
    sets = [a for k, v in SEG_SET.items() for a in ("--set", f"{k}={v}")]
    job = _sbatch(slurm_clean, "--array=1-2", "--cpus-per-task=1", "--mem=2G", "--time=00:10:00",
                  f"--output={tmp_path}/job-%A_%a.log",
                  str(REPO / "deploy" / "slurm" / "plate-array.sbatch"),
                  "--model", str(micro_model), "--in-process", *sets, cwd=tmp_path,
                  env_extra={"LIST": str(tmp_path / "list.txt"), "OUT": str(tmp_path / "screen")})
    _wait_job(slurm_clean, job)
    logs = "\n".join(p.read_text() for p in tmp_path.glob("job-*.log"))
    for name, frames in (("timelapse", 1), ("plate", 2)):
        man = json.loads((tmp_path / "screen" / "segment" / name / "manifest.json").read_text())
        assert man["status"] == "complete" and man["frames"] == frames, logs
    assert (tmp_path / "screen" / "results" / "plate" / "per_condition.csv").is_file(), logs
    assert not (tmp_path / "screen" / "results" / "timelapse").exists()  # no conditions given
