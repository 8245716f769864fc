"""The training loop end to end on a micro model: bad input, logs, checkpoints, kill + resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mitoscale.config import load_config
from mitoscale.errors import ConfigError, InputError, ModelError, OutputError
from mitoscale.train.config import TrainConfig
from mitoscale.train.loop import lr_factor, run_training

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MITOSCALE_NO_PROGRESS": "1"}


@pytest.fixture
def cfg_of(make_config):
    def make(corpus, **kw) -> TrainConfig:
        return load_config(make_config(corpus, **kw), TrainConfig)

    return make


def test_lr_schedule_warmup_then_cosine():
    f = [lr_factor(s, warmup=10, total=110, min_ratio=0.1) for s in range(120)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert f[110] == pytest.approx(0.1) and f[119] == pytest.approx(0.1)
    assert f[60] == pytest.approx(0.55)


def test_bad_input_is_refused_before_work(tmp_path, tiny_corpus, cfg_of):
    with pytest.raises(ConfigError, match="K"):
        cfg_of(tiny_corpus, **{"data.points_per_image": 0})
    with pytest.raises(ConfigError, match="freeze"):
        cfg_of(tiny_corpus, **{"model.freeze": ["decoder_typo"]})
    with pytest.raises(ConfigError, match="embedding_cache"):
        cfg_of(tiny_corpus, **{"data.embedding_cache": "x.zarr"})
    with pytest.raises(InputError, match="corpus not found"):
        run_training(cfg_of(tmp_path / "none.zarr"), tmp_path / "r0")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            run_training(cfg_of(tiny_corpus, device="cuda"), tmp_path / "r1")
    with pytest.raises(ModelError, match="not found"):
        run_training(cfg_of(tiny_corpus, **{"model.checkpoint": str(tmp_path / "no.safetensors")}),
                     tmp_path / "r2")
    # a checkpoint of another architecture
    from mitoscale.model import build_sam, get_spec, save_model

    other = save_model(tmp_path / "tiny.safetensors", build_sam("mito256"), get_spec("mito256"))
    with pytest.raises(ModelError, match="asks for"):
        run_training(cfg_of(tiny_corpus, **{"model.checkpoint": str(other)}), tmp_path / "r3")
    assert not (tmp_path / "r0").exists() or not any((tmp_path / "r0").iterdir())


def test_cli_reports_one_line_error(tmp_path, tiny_corpus, make_config):
    cfg = make_config(tiny_corpus, **{"data.points_per_image": 0})
    p = subprocess.run([sys.executable, "-m", "mitoscale", "train", "--config", cfg, "--out",
                        str(tmp_path / "run")], capture_output=True, text=True, env=ENV)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "K (points_per_image) must be >= 1" in p.stderr


def test_run_writes_logs_checkpoints_and_model(tmp_path, tiny_corpus, cfg_of):
    cfg = cfg_of(tiny_corpus, steps=4, val_every=4, tensorboard=True,
               **{"model.freeze": ["image_encoder"], "model.decoder_window": 8})
    out = run_training(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert out["step"] == 4 and out["val"] is not None
    assert 0.0 <= out["val"]["mean_dice"] <= 1.0 and out["val"]["n_gt"] > 0
    rows = list(csv.DictReader((run / "logs" / "train.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert {"loss", "dice_loss", "iou_mse", "lr", "images_per_s"} <= set(rows[0])
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-00000004"
    from mitoscale.model import load_model

    model, spec, meta = load_model(run / "model.safetensors")
    assert spec.name == "micro" and meta["steps"] == 4
    # the frozen encoder did not move
    from mitoscale.model import build_sam

    torch.manual_seed(0)
    init = build_sam("micro")
    for k, v in init.image_encoder.state_dict().items():
        assert torch.equal(v, model.image_encoder.state_dict()[k])
    assert any(not torch.equal(v, model.mask_decoder.state_dict()[k])
               for k, v in init.mask_decoder.state_dict().items())
    with pytest.raises(OutputError, match="--resume"):
        run_training(cfg, run)


def _train_cmd(cfg, out, resume=False):
    cmd = [sys.executable, "-m", "mitoscale", "train", "--config", cfg, "--out", str(out)]
    return cmd + (["--resume"] if resume else [])


@pytest.mark.slow
def test_killed_run_resumes_to_identical_weights(tmp_path, tiny_corpus, make_config):
    """SIGKILL a run after its first checkpoint; the resumed run equals an uninterrupted one."""
    cfg = make_config(tiny_corpus, steps=8, checkpoint_every=2,
                       **{"model.decoder_window": 8, "data.points_per_image": 3})
    ref = tmp_path / "ref"
    subprocess.run(_train_cmd(cfg, ref), check=True, env=ENV, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(cfg, killed), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stopped_at = int(latest.read_text().strip().split("-")[1])
    assert stopped_at < 8, "the run finished before it could be killed"
    assert not (killed / "model.safetensors").exists()
    p = subprocess.run(_train_cmd(cfg, killed, resume=True), env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert f"resumed from" in p.stderr and f"(step {stopped_at})" in p.stderr
    a = load_file(str(ref / "model.safetensors"))
    b = load_file(str(killed / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    steps = [int(r["step"]) for r in csv.DictReader((killed / "logs" / "train.csv").open())]
    assert steps == list(range(1, 9))  # no duplicated rows from the killed run


def test_grad_accumulation_equals_larger_batch_and_bf16_runs(tmp_path, tiny_corpus, cfg_of):
    """2 micro-batches of 1 image give the same step as 1 batch of 2 (same samples, same mean)."""
    common = {"steps": 2, "checkpoint_every": 100, "val_every": 100, "data.val_fraction": 0.0,
              "model.decoder_window": 8, "optim.grad_clip": None}
    a = run_training(cfg_of(tiny_corpus, batch_size=2, grad_accum=1, **common), tmp_path / "a")
    b = run_training(cfg_of(tiny_corpus, batch_size=1, grad_accum=2, **common), tmp_path / "b")
    wa, wb = load_file(a["model"]), load_file(b["model"])
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)
    c = run_training(cfg_of(tiny_corpus, batch_size=2, precision="bf16", **common), tmp_path / "c")
    assert c["step"] == 2 and 0 < c["train_loss"] < 3


def test_shift_consistency_training_runs_and_logs(tmp_path, tiny_corpus, cfg_of):
    """consistency_weight > 0 trains on pairs of views and logs the consistency loss."""
    with pytest.raises(ConfigError, match="consistency_weight"):
        cfg_of(tiny_corpus, consistency_weight=1.0, **{"data.embedding_cache": "x.zarr",
                                                       "model.freeze": ["image_encoder"]})
    cfg = cfg_of(tiny_corpus, consistency_weight=1.0, consistency_shift=64,
                 **{"model.decoder_window": 8})
    out = run_training(cfg, tmp_path / "run")
    assert out["step"] == 4
    rows = list(csv.DictReader((tmp_path / "run" / "logs" / "train.csv").open()))
    cons = [float(r["consistency"]) for r in rows]
    assert len(cons) == 4 and all(0 < c < 1 for c in cons)
    assert float(rows[0]["images_per_s"]) > 0
