"""A real 2-process gloo DDP run through ``mitoscale train --nproc-per-node 2``."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mitoscale.train.distributed import dist_info
from mitoscale.train.launch import torchrun_argv


def test_dist_info_from_torchrun_and_slurm():
    assert dist_info({}).world == 1
    info = dist_info({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (info.rank, info.world, info.local_rank) == (3, 8, 1)
    info = dist_info({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"})
    assert (info.rank, info.world, info.local_rank, info.is_main) == (5, 8, 1, False)
    assert dist_info({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).world == 1


def test_torchrun_arguments():
    argv = torchrun_argv("c.yaml", "out", ["steps=3"], True, 4)
    assert "--standalone" in argv and "--nproc-per-node=4" in argv and argv[-1] == "--resume"
    argv = torchrun_argv("c.yaml", "out", [], False, 2, nnodes=3, node_rank=1, rdzv_endpoint="n1:29400")
    assert "--nnodes=3" in argv and "--node-rank=1" in argv and "--rdzv-endpoint=n1:29400" in argv
    from mitoscale.errors import ConfigError

    with pytest.raises(ConfigError, match="rdzv-endpoint"):
        torchrun_argv("c.yaml", "out", [], False, 2, nnodes=2)


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path, tiny_corpus, make_config):
    cfg = make_config(tiny_corpus, steps=20, checkpoint_every=100, batch_size=1,
                      **{"model.decoder_window": 8, "data.points_per_image": 8,
                         "optim.lr": 0.005, "optim.warmup_steps": 3})
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "mitoscale", "train", "--config", cfg, "--out", str(out),
                        "--nproc-per-node", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    done = json.loads((out / "DONE").read_text())
    assert done["step"] == 20
    shas = done["rank_weight_sha256"]
    assert len(shas) == 2 and shas[0] == shas[1]  # both ranks hold identical weights
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    rows = list(csv.DictReader((out / "logs" / "train.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 21))  # rank 0 alone logged
    loss = np.array([float(r["loss"]) for r in rows])
    assert loss[-5:].mean() < loss[:5].mean() - 0.01, loss
    assert (out / "model.safetensors").exists()
