"""Resumable training checkpoints without pickle.

A checkpoint is a directory ``checkpoints/step-NNNNNNNN/`` holding

- ``model.safetensors`` + ``model.json``: the weights, loadable on their own
  with :func:`mitoscale.model.load_model`;
- ``optimizer.safetensors``: every optimiser state tensor plus the RNG states
  (torch CPU/CUDA generators as uint8 tensors);
- ``state.json``: step, optimiser param groups, scheduler state, sampler
  position, NumPy/Python RNG states and the config.

The directory is written under a temporary name and renamed, then
``checkpoints/latest`` (a text file naming it) is replaced atomically, so a
run killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mitoscale.errors import ModelError
from mitoscale.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from mitoscale.model import save_model
from mitoscale.model.spec import ModelSpec

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state", "set_rng_state"]


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Current RNG states: tensors (torch) and JSON-able parts (NumPy, Python)."""
    tensors = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.torch_cuda.{i}"] = s
    py = random.getstate()
    npst = np.random.get_state(legacy=False)
    npst = {**npst, "state": {"key": npst["state"]["key"].tolist(), "pos": int(npst["state"]["pos"])}}
    js = {"numpy": npst, "python": [py[0], list(py[1]), py[2]]}
    return tensors, js


def set_rng_state(tensors: dict[str, torch.Tensor], js: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch_cpu"])
    cuda = sorted(k for k in tensors if k.startswith("rng.torch_cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])
    npst = dict(js["numpy"])
    npst["state"] = {"key": np.asarray(npst["state"]["key"], dtype=np.uint32), "pos": npst["state"]["pos"]}
    np.random.set_state(npst)
    v, st, g = js["python"]
    random.setstate((v, tuple(st), g))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"optim.{idx}.{name}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], js: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        if not key.startswith("optim."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = val
    for key, val in js.get("scalars", {}).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    return {"state": state, "param_groups": js["param_groups"]}


def save_checkpoint(root: str | Path, step: int, model: torch.nn.Module, spec: ModelSpec,
                    optimizer: torch.optim.Optimizer, scheduler, extra: dict[str, Any],
                    keep: int = 3) -> Path:
    """Write a complete resumable checkpoint for ``step`` and point ``latest`` at it.

    Parameters
    ----------
    root : path
        The run's ``checkpoints/`` directory.
    step : int
        Optimiser steps completed.
    model : the bare SAM (not the DDP wrapper)
    spec : ModelSpec
    optimizer, scheduler : torch objects
    extra : dict
        JSON-able run state (sampler position, config, ...).
    keep : int
        Newest checkpoints to keep; older ones are deleted.
    """
    from safetensors.torch import save

    root = Path(root)
    name = f"step-{step:08d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(tmp / "model.safetensors", model, spec, meta={"step": step})
    opt_t, opt_js = _optimizer_tensors(optimizer)
    rng_t, rng_js = rng_state()
    atomic_write_bytes(tmp / "optimizer.safetensors", save({**opt_t, **rng_t}))
    atomic_write_json(tmp / "state.json", {
        "format": "mitoscale-train-state/1", "step": step, "optimizer": opt_js,
        "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"},
        "rng": rng_js, **extra,
    })
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    atomic_write_text(root / "latest", name + "\n")
    done = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in done[:-keep]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    """The checkpoint ``latest`` names, or None when the run has none."""
    root = Path(root)
    ptr = root / "latest"
    if not ptr.exists():
        return None
    path = root / ptr.read_text().strip()
    if not (path / "state.json").exists():
        raise ModelError(f"{ptr} names {path.name}, which is incomplete or missing")
    return path


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler) -> dict[str, Any]:
    """Restore model, optimiser, scheduler and RNG states in place; return ``state.json``.

    Raises
    ------
    ModelError
        If the checkpoint's architecture or optimiser layout does not match.
    """
    from safetensors.torch import load_file

    path = Path(path)
    js = json.loads((path / "state.json").read_text())
    weights = load_file(str(path / "model.safetensors"))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path}: checkpoint does not match the model "
                         f"({str(exc).splitlines()[0]})") from None
    tensors = load_file(str(path / "optimizer.safetensors"))
    try:
        optimizer.load_state_dict(_optimizer_state(tensors, js["optimizer"]))
    except (ValueError, KeyError) as exc:
        raise ModelError(f"{path}: optimiser state does not match the trainable parameters "
                         f"(different freeze setting?): {exc}") from None
    scheduler.load_state_dict({**scheduler.state_dict(), **js["scheduler"]})
    set_rng_state(tensors, js["rng"])
    return js
