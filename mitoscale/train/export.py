"""Export a trained checkpoint as a shipped model (``mitoscale train export``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mitoscale.model import load_model, save_model

__all__ = ["export_model"]


def export_model(src: str | Path, dst: str | Path, dtype: str = "float16",
                 meta: dict[str, Any] | None = None) -> Path:
    """Copy a model checkpoint to ``dst`` (``.safetensors`` + ``.json``), optionally in float16.

    Parameters
    ----------
    src : path
        ``model.safetensors`` of a run, or a checkpoint's ``model.safetensors``.
    dst : path
        Destination weights file.
    dtype : {"float16", "float32"}
    meta : dict, optional
        Merged into the source's metadata (e.g. held-out metrics).

    Returns
    -------
    Path of the written weights.
    """
    model, spec, src_meta = load_model(src)
    merged = {**src_meta, **(meta or {}), "exported_from": str(Path(src).name), "dtype": dtype}
    json.dumps(merged)  # fail early on non-JSON metadata
    return save_model(dst, model, spec, meta=merged, dtype=getattr(torch, dtype))
