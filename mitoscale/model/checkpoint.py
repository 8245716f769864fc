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

__all__ = ["save_model", "load_model", "default_model_path", "file_sha256", "check_architecture",
           "weights_architecture"]

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


def _read_model_json(jpath: Path) -> tuple[ModelSpec, dict]:
    """The spec and meta of a model JSON, with one-line errors for anything malformed."""
    try:
        info = json.loads(jpath.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{jpath}: model config is not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("spec"), dict):
        raise ModelError(f"{jpath}: model config has no 'spec' (the architecture); "
                         "was it written by mitoscale's save_model?")
    try:
        spec = ModelSpec.from_dict(info["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{jpath}: invalid model 'spec' ({exc.__class__.__name__}: {exc})") from None
    meta = info.get("meta", {})
    return spec, meta if isinstance(meta, dict) else {}


def weights_architecture(state: dict[str, torch.Tensor]) -> dict[str, int]:
    """Encoder width, depth, heads, patch and input size read from the weight shapes."""
    prefix = "image_encoder."
    try:
        proj = state[prefix + "patch_embed.proj.weight"]
        pos = state[prefix + "pos_embed"]
    except KeyError:
        return {}
    blocks = {k.split(".")[2] for k in state if k.startswith(prefix + "blocks.")}
    arch = {"encoder_embed_dim": int(proj.shape[0]), "patch_size": int(proj.shape[2]),
            "img_size": int(pos.shape[1]) * int(proj.shape[2]), "encoder_depth": len(blocks)}
    rel = state.get(prefix + "blocks.0.attn.rel_pos_h")
    if rel is not None and rel.shape[1]:
        arch["encoder_num_heads"] = int(proj.shape[0]) // int(rel.shape[1])
    return arch


def _describe(arch: dict[str, Any]) -> str:
    return (f"{arch.get('encoder_depth')} blocks x {arch.get('encoder_embed_dim')} wide, "
            f"{arch.get('img_size')} px input, patch {arch.get('patch_size')}")


def check_architecture(path: Path, spec: ModelSpec, state: dict[str, torch.Tensor]) -> None:
    """Refuse a checkpoint whose named architecture is not what its weights are.

    The weights decide: their shapes give the encoder's width, depth, heads,
    patch and input size.  A JSON that names a known architecture
    (``vit_b``...) must describe it exactly and match the weights, so a
    renamed config cannot make a small model pass as another.
    """
    from mitoscale.model.spec import MODEL_SPECS

    arch = weights_architecture(state)
    fields = spec.to_dict()
    wrong = {k: (fields.get(k), v) for k, v in arch.items() if fields.get(k) != v}
    known = MODEL_SPECS.get(spec.name)
    if not wrong and (known is None or known == spec):
        return
    fits = [n for n, s in MODEL_SPECS.items()
            if all(s.to_dict().get(k) == v for k, v in arch.items())]
    what = f"its weights are {_describe(arch)}" + (f" (the {fits[0]!r} architecture)" if fits else "")
    raise ModelError(f"{path}: the model config names the {spec.name!r} architecture but {what}; "
                     "the checkpoint's .json does not belong to these weights")


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
        spec, meta = _read_model_json(jpath)
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
    check_architecture(path, spec, state)
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
