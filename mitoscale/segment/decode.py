"""SAM image encoding and point decoding with local embedding windows.

SAM's mask decoder attends from the prompt tokens to every cell of the image
embedding (64 x 64 = 4096 cells) and back, once per prompt.  A mitochondrion
is at most a few µm long, so :func:`decode_points` can instead decode each
prompt against a *window* of ``window x window`` cells centred on it (16 x 16
cells = 128 px = 10 µm at 80 nm and patch 8), cutting the decoder's
attention and upscaling work by ``(64 / 16)^2 = 16``.

Positions stay exact: the window carries the matching slice of SAM's dense
positional encoding (``prompt_encoder.get_dense_pe()``), and the points keep
their tile coordinates, so every point-to-cell relation the decoder sees is
the one it would see on the full map; only far-away cells are left out.  The
predicted low-resolution mask covers the window and is placed back at the
window's offset.  Masks that touch a window edge (an object longer than the
window) are decoded again in a larger window by the caller.

The decoder's own modules (``transformer``, ``output_upscaling``, hyper-network
MLPs, IoU head, tokens) are used unchanged; only the repetition of the image
embedding per prompt is replaced by per-prompt windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mitoscale.model import to_sam_input

__all__ = ["encode_tile", "DecodedMasks", "decode_points", "use_bf16", "autocast"]


def use_bf16(setting, device: str = "cpu") -> bool:
    """Resolve the ``bf16`` setting: ``auto`` means a CPU with native bfloat16 support."""
    if device != "cpu":
        return False
    if setting == "auto":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return bool(setting)


def autocast(enabled: bool):
    """bfloat16 autocast on the CPU when ``enabled`` (else a no-op context)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def encode_tile(model, spec, tile: np.ndarray, bf16: bool = False) -> torch.Tensor:
    """Image embedding ``(1, C, E, E)`` of a normalised ``(h, w)`` tile (``h, w <= img_size``)."""
    x = to_sam_input(tile, spec.img_size)[None].to(next(model.parameters()).device)
    with autocast(bf16 and x.device.type == "cpu"):
        emb = model.image_encoder(x)
    return emb.float()


@dataclass
class DecodedMasks:
    """Decoder output for N prompts, at tile pixel resolution.

    ``logits[i]`` covers tile pixels ``[y0[i], y0[i] + S) x [x0[i], x0[i] + S)``
    with ``S = window * patch``; ``edge[i]`` marks windows that do not span
    the whole map, per side (top, left, bottom, right).
    """

    logits: torch.Tensor  # (M, S, S) float32
    scores: np.ndarray  # (M,)
    y0: np.ndarray  # (M,)
    x0: np.ndarray  # (M,)
    inner_edges: np.ndarray  # (M, 4) bool: window side is inside the map
    prompt: np.ndarray  # (M,) index of each mask's prompt (M = N, or 3N with keep_all)


def _window_origin(c: np.ndarray, window: int, size: int) -> np.ndarray:
    return np.clip(c - window // 2, 0, max(0, size - window))


@torch.inference_mode()
def decode_points(model, spec, embedding: torch.Tensor, points: np.ndarray,
                  window: int | None = 16, multimask: bool = True, bf16: bool = False,
                  keep_all: bool = False) -> DecodedMasks:
    """Decode one positive point prompt per row of ``points`` against local windows.

    Parameters
    ----------
    model : segment_anything Sam
    spec : ModelSpec
    embedding : (1, C, E, E) tensor
        From :func:`encode_tile`.
    points : (N, 2) array of (y, x)
        Tile pixel coordinates.
    window : int or None
        Window edge in embedding cells; ``None`` or ``>= E`` uses the full map
        (identical to ``Sam``'s own decoding).
    multimask : bool
        Predict SAM's three masks and keep the one with the highest predicted IoU.
    bf16 : bool
        bfloat16 autocast (CPU).
    keep_all : bool
        With ``multimask``, return all three masks of every prompt (prompt
        ``i`` gives rows ``3i .. 3i + 2``), as ``SamAutomaticMaskGenerator`` does.

    Returns
    -------
    DecodedMasks
    """
    with autocast(bf16 and embedding.device.type == "cpu"):
        return _decode(model, spec, embedding, points, window, multimask, keep_all and multimask)


def _decode(model, spec, embedding, points, window, multimask, keep_all=False) -> DecodedMasks:
    pe_full = model.prompt_encoder.get_dense_pe()  # (1, C, E, E)
    _, c, eh, ew = embedding.shape
    dev = embedding.device
    n = len(points)
    pts = np.asarray(points, dtype=np.float64).reshape(n, 2)
    patch = spec.img_size // eh
    w = eh if window is None else min(int(window), eh)
    cell = np.floor(pts / patch).astype(int)
    wy = _window_origin(cell[:, 0], w, eh)
    wx = _window_origin(cell[:, 1], w, ew)
    if w >= eh:
        src = embedding.expand(n, -1, -1, -1)
        pos = pe_full.expand(n, -1, -1, -1)
    else:
        both = torch.cat([embedding, pe_full.to(embedding.dtype)], dim=1)[0]  # (2C, E, E)
        # a stack of slices is ~10x faster than advanced indexing here
        win = torch.stack([both[:, y:y + w, x:x + w] for y, x in zip(wy.tolist(), wx.tolist())])
        src, pos = win[:, :c], win[:, c:]
    # SAM's prompt encoder: points as (x, y) in model input coordinates, label 1 = positive
    coords = torch.as_tensor(pts[:, ::-1].copy(), dtype=torch.float32, device=dev)[:, None, :]
    labels = torch.ones((n, 1), dtype=torch.int64, device=dev)
    sparse, _ = model.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
    dense = model.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
    dec = model.mask_decoder
    tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat([tokens[None].expand(n, -1, -1), sparse], dim=1)
    hs, src_out = dec.transformer(src + dense, pos.contiguous(), tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1:1 + dec.num_mask_tokens, :]
    src_out = src_out.transpose(1, 2).reshape(n, c, w, w)
    up = dec.output_upscaling(src_out)
    sel = slice(1, None) if multimask else slice(0, 1)
    hyper = torch.stack([dec.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :])
                         for i in range(dec.num_mask_tokens)], dim=1)[:, sel]
    iou = dec.iou_prediction_head(iou_token_out)[:, sel]
    b, cu, hu, wu = up.shape
    if keep_all:  # every mask of every prompt: (n, k, C') -> n * k masks
        k = hyper.shape[1]
        low = torch.bmm(hyper, up.reshape(b, cu, hu * wu)).reshape(n * k, 1, hu, wu)
        score = iou.reshape(n * k)
        prompt = np.repeat(np.arange(n), k)
    else:
        rows = torch.arange(n, device=dev)
        best = iou.argmax(dim=1)
        hyper = hyper[rows, best]  # (n, C')
        score = iou[rows, best]
        low = torch.bmm(hyper[:, None, :], up.reshape(b, cu, hu * wu)).reshape(n, 1, hu, wu)
        prompt = np.arange(n)
    wy, wx = wy[prompt], wx[prompt]
    size = w * patch
    logits = F.interpolate(low.float(), size=(size, size), mode="bilinear", align_corners=False)[:, 0].cpu()
    scores = score.float().cpu().numpy().astype(np.float64)
    inner = np.stack([wy > 0, wx > 0, wy + w < eh, wx + w < ew], axis=1)
    return DecodedMasks(logits=logits, scores=scores, y0=wy * patch, x0=wx * patch, inner_edges=inner,
                        prompt=prompt)
