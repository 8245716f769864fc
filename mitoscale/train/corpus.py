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

__all__ = ["Corpus", "open_corpus", "open_corpora", "split_indices", "instance_masks"]


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


class _Stacked:
    """Several corpora's arrays read as one along the image axis (read-only, lazy).

    Supports what the training code uses: ``shape``, ``chunks``, ``ndim``, an
    integer index and a step-1 slice on the first axis.  Label arrays with fewer
    layers than the widest part are padded with empty (zero) layers.
    """

    def __init__(self, arrays: list):
        self.arrays = arrays
        self.starts = np.cumsum([0] + [int(a.shape[0]) for a in arrays])
        tail = tuple(max(int(a.shape[i]) for a in arrays) for i in range(1, arrays[0].ndim))
        self.shape = (int(self.starts[-1]),) + tail
        self.chunks = arrays[0].chunks
        self.ndim = arrays[0].ndim
        self.dtype = np.result_type(*[a.dtype for a in arrays])

    def _pad(self, block: np.ndarray) -> np.ndarray:
        """A block of images padded to the widest part's trailing shape (empty label layers)."""
        widths = [(0, 0)] + [(0, t - s) for s, t in zip(block.shape[1:], self.shape[1:])]
        return np.pad(block, widths) if any(w[1] for w in widths) else block

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -self.shape[0] <= i < self.shape[0]:
                raise IndexError(f"index {i} out of range for {self.shape[0]} images")
            i %= self.shape[0]
            return self[i:i + 1][0]
        if isinstance(key, slice) and key.step in (None, 1):
            lo, hi, _ = key.indices(self.shape[0])
            blocks = []
            for part, a in enumerate(self.arrays):
                a_lo, a_hi = max(lo, self.starts[part]), min(hi, self.starts[part + 1])
                if a_lo < a_hi:
                    block = np.asarray(a[a_lo - self.starts[part]:a_hi - self.starts[part]])
                    blocks.append(self._pad(block).astype(self.dtype))
            if not blocks:
                return np.zeros((0,) + self.shape[1:], dtype=self.dtype)
            return np.concatenate(blocks)
        raise TypeError(f"stacked corpus arrays take an int or a step-1 slice, not {key!r}")


def open_corpora(paths: str | Path | list) -> Corpus:
    """One corpus, or several read as one in the given order (a training mixture).

    The parts must share image shape and pixel size.  Images are numbered part
    after part, so the validation split (the *last* images, see
    :func:`split_indices`) comes from the last part, and the sampler draws
    images in proportion to each part's size.
    """
    if isinstance(paths, (str, Path)):
        return open_corpus(paths)
    parts = [open_corpus(p) for p in paths]
    if not parts:
        raise InputError("data.corpus is an empty list")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    for c in parts[1:]:
        if c.image_shape != first.image_shape:
            raise InputError(f"{c.path}: images of {c.image_shape} px cannot be mixed with "
                             f"{first.path}'s {first.image_shape} px")
        if abs(c.pixel_size_um - first.pixel_size_um) > 1e-9:
            raise InputError(f"{c.path}: pixel size {c.pixel_size_um} um differs from "
                             f"{first.path}'s {first.pixel_size_um} um")
    attrs = dict(parts[-1].attrs)
    attrs["n_images"] = sum(c.n_images for c in parts)
    attrs["parts"] = [{"path": str(c.path), "n_images": c.n_images, "seed": c.attrs.get("seed"),
                       "config_hash": c.attrs.get("config_hash")} for c in parts]
    return Corpus(path=parts[-1].path, images=_Stacked([c.images for c in parts]),
                  labels=_Stacked([c.labels for c in parts]), attrs=attrs)


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
