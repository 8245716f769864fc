"""Open and check a ``corpus.zarr`` written by ``mitoscale simulate``.

See the corpus layout in ``docs/DESIGN.md``: ``images`` (N, H, W) uint16,
``labels`` (N, L, H, W) layered instance labels, ``n_instances`` (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mitoscale.errors import InputError

__all__ = ["Corpus", "open_corpus", "split_indices", "instance_masks"]


@dataclass
class Corpus:
    """Lazy handles on a corpus store (nothing is read until indexed)."""

    path: Path
    images: Any  # zarr.Array (N, H, W)
    labels: Any  # zarr.Array (N, L, H, W)
    attrs: dict

    @property
    def n_images(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.images.shape[1:])

    @property
    def chunk_len(self) -> int:
        """Images per Zarr chunk along the first axis."""
        return int(self.images.chunks[0])

    @property
    def pixel_size_um(self) -> float:
        return float(self.attrs.get("pixel_size_um", 0.08))


def open_corpus(path: str | Path) -> Corpus:
    """Open a corpus store read-only and check it has images and instance masks.

    Raises
    ------
    InputError
        If the store is missing, has no ``images`` or ``labels`` array, or
        their shapes disagree.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise InputError(f"corpus not found: {path}")
    try:
        root = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises several types
        raise InputError(f"{path}: not a Zarr group ({exc.__class__.__name__})") from None
    arrays = {}
    for name in ("images", "labels"):
        try:
            arrays[name] = root[name]
        except KeyError:
            arrays[name] = None
    if arrays["images"] is None:
        raise InputError(f"{path}: corpus has no 'images' array")
    if arrays["labels"] is None:
        raise InputError(f"{path}: corpus has no masks ('labels' array); training needs instance masks")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 3 or labels.ndim != 4:
        raise InputError(f"{path}: expected images (N, H, W) and labels (N, L, H, W), "
                         f"got {images.shape} and {labels.shape}")
    if labels.shape[0] != images.shape[0] or labels.shape[2:] != images.shape[1:]:
        raise InputError(f"{path}: labels {labels.shape} do not match images {images.shape}")
    if images.shape[0] == 0:
        raise InputError(f"{path}: corpus holds no images")
    attrs = dict(root.attrs.get("mitoscale", {}) or {})
    return Corpus(path=path, images=images, labels=labels, attrs=attrs)


def split_indices(n_images: int, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation image indices: the last ``val_fraction`` is held out.

    The corpus is generated i.i.d. from ``(seed, index)``, so a contiguous tail
    is a random held-out split, and it stays fixed when the corpus grows.
    """
    n_val = int(round(n_images * val_fraction))
    if val_fraction > 0 and n_val == 0 and n_images > 1:
        n_val = 1
    n_train = n_images - n_val
    if n_train < 1:
        raise InputError(f"corpus of {n_images} images leaves nothing to train on "
                         f"with val_fraction={val_fraction}")
    return np.arange(n_train), np.arange(n_train, n_images)


def instance_masks(layers: np.ndarray) -> np.ndarray:
    """All instances of a layered label crop as a boolean stack.

    Parameters
    ----------
    layers : (L, H, W) integer array
        Layered labels; instance ``(layer, id)`` is ``layers[layer] == id``.

    Returns
    -------
    (n, H, W) bool array, one mask per (layer, id) present, empty ones dropped.
    """
    masks = []
    for layer in layers:
        ids = np.unique(layer)
        for v in ids[ids != 0]:
            masks.append(layer == v)
    if not masks:
        return np.zeros((0,) + layers.shape[1:], dtype=bool)
    return np.stack(masks)
