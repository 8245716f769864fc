"""``mitoscale simulate --cluster slurm``: a correct corpus through SLURM-submitted workers.

The reference corpus is written in-process (no Dask); SLURM runs must match it
bit for bit, including when one of the two worker jobs is killed mid-run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mitoscale.cli import main
from mitoscale.simulate.config import load_simulate_config
from mitoscale.simulate.corpus import write_corpus

from .helpers import assert_same_corpus, cluster_opt_args, slurm_profile_opts, wait_for

pytestmark = pytest.mark.slurm

N_IMAGES = 24
SEED = 3
SIM_SET = ["corpus.crops_per_side=2"]  # 256 x 256 images: same physics, 4x cheaper


def _simulate_argv(out: Path, tmp_path: Path) -> list[str]:
    return ["simulate", "--n-images", str(N_IMAGES), "--seed", str(SEED), "--chunk-images", "1",
            "--out", str(out), *[a for s in SIM_SET for a in ("--set", s)],
            "--cluster", "slurm", "--workers", "2",
            *cluster_opt_args(slurm_profile_opts(tmp_path))]


@pytest.fixture(scope="module")
def reference_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "corpus.zarr"
    cfg = load_simulate_config(None, SIM_SET)
    write_corpus(cfg, out, N_IMAGES, seed=SEED, client=None, chunk_images=1)
    return out


def test_simulate_cli_on_slurm_matches_local_run(slurm_clean, tmp_path, reference_corpus):
    out = tmp_path / "corpus.zarr"
    submitted0 = slurm_clean.submitted_jobs()
    assert main(_simulate_argv(out, tmp_path)) == 0
    assert slurm_clean.submitted_jobs() - submitted0 == 2  # two worker jobs went through sbatch
    assert_same_corpus(reference_corpus, out)
    assert len(list((tmp_path / "worker-logs").glob("mitoscale-worker-*.err"))) == 2


def test_killing_one_of_two_worker_jobs_mid_run_still_gives_identical_corpus(
        slurm_clean, tmp_path, reference_corpus):
    out = tmp_path / "corpus.zarr"
    env = {**os.environ, "MITOSCALE_NO_PROGRESS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "mitoscale", *_simulate_argv(out, tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        markers = out / ".markers"
        wait_for(lambda: markers.is_dir() and len(list(markers.glob("*.done"))) >= 3,
                 timeout=120, what="the first finished chunks")
        running = slurm_clean.client("squeue", "-h", "-t", "RUNNING", "-n", "mitoscale-worker",
                                     "-o", "%i").split()
        assert len(running) == 2
        done_before_kill = len(list(markers.glob("*.done")))
        slurm_clean.client("scancel", running[0])
        output, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert done_before_kill < N_IMAGES, "the kill must happen mid-run"
    assert running[0] not in slurm_clean.client("squeue", "-h", "-o", "%i").split()
    killed_log = tmp_path / "worker-logs" / f"mitoscale-worker-{running[0]}.err"
    assert "CANCELLED" in killed_log.read_text()
    assert_same_corpus(reference_corpus, out)
