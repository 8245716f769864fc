"""Safe checkpoints: safetensors weights plus a small JSON model config.

Loading never unpickles code: our own checkpoints are safetensors, and
official SAM ``.pth`` files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from mitoscale.errors import ModelError
from mitoscale.io.atomic import atomic_write_bytes, atomic_write_json
from mitoscale.model.build import build_sam
from mitoscale.model.spec import ModelSpec, get_spec

__all__ = ["save_model", "load_model", "default_model_path", "file_sha256"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def default_model_path() -> Path:
    """The model shipped with the package (``mitoscale/weights/mitoscale-small.safetensors``)."""
    return WEIGHTS_DIR / "mitoscale-small.safetensors"


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _json_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_model(path: str | Path, model: torch.nn.Module, spec: ModelSpec,
               meta: dict[str, Any] | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write ``PATH.safetensors`` (weights) and ``PATH.json`` (spec + meta), atomically.

    Parameters
    ----------
    dtype : torch dtype, optional
        Store floating-point tensors in this dtype (e.g. ``torch.float16`` to
        halve a shipped file); :func:`load_model` casts them back to the
        model's float32 parameters.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    atomic_write_bytes(path, save(state))
    atomic_write_json(_json_path(path), {"format": "mitoscale-model/1", "spec": spec.to_dict(),
                                         "meta": meta or {}})
    return path


def load_model(path: str | Path | None = None, variant: str | None = None,
               device: str | torch.device = "cpu") -> tuple[torch.nn.Module, ModelSpec, dict]:
    """Load a SAM model safely.

    Parameters
    ----------
    path : path, optional
        Our ``.safetensors`` checkpoint (with its ``.json`` beside it), or an
        official SAM ``.pth`` (then ``variant`` names vit_b/vit_l/vit_h).
        ``None`` loads the shipped default model.
    variant : str, optional
        Expected architecture; a mismatch is an error.
    device : torch device

    Returns
    -------
    model, spec, meta

    Raises
    ------
    ModelError
        Missing file, wrong keys or shapes, or architecture mismatch.
    """
    path = Path(path) if path is not None else default_model_path()
    if not path.exists():
        raise ModelError(f"model checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        jpath = _json_path(path)
        if not jpath.exists():
            raise ModelError(f"{path}: missing model config {jpath.name} beside the weights")
        info = json.loads(jpath.read_text())
        spec = ModelSpec.from_dict(info["spec"])
        meta = info.get("meta", {})
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{path}: unreadable safetensors file ({exc})") from None
    elif path.suffix in (".pth", ".pt"):
        if variant is None:
            raise ModelError(f"{path}: an official SAM checkpoint needs the model variant (vit_b/vit_l/vit_h)")
        spec, meta = get_spec(variant), {"source": "official"}
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises many types here
            raise ModelError(f"{path}: cannot load safely with weights_only=True ({exc})") from None
    else:
        raise ModelError(f"{path}: unknown checkpoint format (expected .safetensors or .pth)")
    if variant is not None and spec.name != variant:
        raise ModelError(f"{path}: checkpoint is a {spec.name!r} model but the config asks for {variant!r}")
    model = build_sam(spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(f"{path}: weights do not match the {spec.name!r} architecture "
                         f"({first[0] if first else exc} ...)") from None
    return model.to(device).eval(), spec, meta
