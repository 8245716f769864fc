"""Intensity normalisation shared by training and inference.

Training and inference must see identically normalised inputs, so both call
:func:`normalize_intensity` then :func:`to_sam_input`.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["normalize_intensity", "to_sam_input"]


def normalize_intensity(img: np.ndarray, low: float = 0.5, high: float = 99.8) -> np.ndarray:
    """Percentile-stretch a 2D image to float32 in [0, 1].

    Parameters
    ----------
    img : (H, W) array
    low, high : float
        Percentiles mapped to 0 and 1; values outside are clipped.
    """
    img = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(img, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros_like(img)
    return np.clip((img - lo) / (hi - lo), 0.0, 1.0)


def to_sam_input(norm: np.ndarray | torch.Tensor, img_size: int) -> torch.Tensor:
    """(H, W) [0, 1] image -> (3, img_size, img_size) tensor ready for ``sam.image_encoder``.

    Replicates the grey channel to RGB at SAM's 0-255 scale, applies SAM's
    pixel mean/std and zero-pads bottom/right (as ``Sam.preprocess``).
    H and W must be <= img_size.
    """
    x = torch.as_tensor(norm, dtype=torch.float32)
    h, w = x.shape[-2:]
    if h > img_size or w > img_size:
        raise ValueError(f"image {h}x{w} larger than model input {img_size}")
    x = (x * 255.0).expand(3, h, w)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    x = (x - mean) / std
    return torch.nn.functional.pad(x, (0, img_size - w, 0, img_size - h))
