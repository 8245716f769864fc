"""PNG montage of corpus images with ground-truth instance outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mitoscale.errors import InputError
from mitoscale.io.atomic import atomic_write_bytes, check_writable

__all__ = ["outline_overlay", "write_preview"]


def _contrast(image: np.ndarray) -> np.ndarray:
    """Percentile stretch (0.5 - 99.8 %) to [0, 1]."""
    lo, hi = np.percentile(image, (0.5, 99.8))
    return np.clip((image.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)


def outline_overlay(image: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """RGB float image with each instance's outline in its own colour.

    Parameters
    ----------
    image : (H, W)
    labels : (L, H, W) layered labels
        Overlapping instances live in different layers, so every outline is
        drawn, including those inside other instances.
    """
    from skimage.segmentation import find_boundaries

    gray = _contrast(image)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    rng = np.random.default_rng(seed)
    n = int(labels.max()) if labels.size else 0
    colours = rng.uniform(0.35, 1.0, size=(n + 1, 3))
    colours[:, rng.integers(0, 3, n + 1)] *= 0.3  # saturate a bit
    for layer in labels:
        if not layer.any():
            continue
        edge = find_boundaries(layer, mode="inner") & (layer > 0)
        rgb[edge] = colours[layer[edge]]
    return rgb


def write_preview(corpus: str | Path, out: str | Path, n: int = 8, start: int = 0) -> Path:
    """Write a montage: for each image, the raw image and its outlines side by side.

    Parameters
    ----------
    corpus : path
        ``corpus.zarr`` written by :func:`~mitoscale.simulate.write_corpus`.
    out : path
        PNG file.
    n : int
        Number of images.
    start : int
        Index of the first image.

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    from mitoscale.io.atomic import MarkerSet
    from mitoscale.simulate.corpus import open_corpus

    root, attrs = open_corpus(corpus)
    out = Path(out)
    check_writable(out)
    total = attrs["n_images"]
    chunk = attrs["images_per_chunk"]
    markers = MarkerSet(Path(corpus) / ".markers")
    idx = [i for i in range(start, total) if markers.done(i // chunk)][:n]
    if not idx:
        raise InputError(f"{corpus}: no finished images from index {start}")
    fig, axes = plt.subplots(len(idx), 2, figsize=(8, 4 * len(idx)), squeeze=False)
    for row, i in enumerate(idx):
        image = np.asarray(root["images"][i])
        labels = np.asarray(root["labels"][i])
        n_inst = int(root["n_instances"][i])
        sbr = float(root["sbr"][i])
        axes[row, 0].imshow(_contrast(image), cmap="gray", interpolation="nearest")
        axes[row, 0].set_title(f"image {i}  (SBR {sbr:.1f})", fontsize=9)
        axes[row, 1].imshow(outline_overlay(image, labels, seed=i), interpolation="nearest")
        axes[row, 1].set_title(f"{n_inst} instances", fontsize=9)
        for ax in axes[row]:
            ax.set_axis_off()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
