"""PNG montage of corpus images with ground-truth instance outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mitoscale.errors import InputError
from mitoscale.io.atomic import atomic_write_bytes, check_writable

__all__ = ["outline_overlay", "write_preview"]


def _contrast(image: np.ndarray) -> np.ndarray:
    """Percentile stretch (0.5 - 99.95 %) to [0, 1]."""
    lo, hi = np.percentile(image, (0.5, 99.95))
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
    # saturated colours (random hues, full saturation and value) on the grey image
    from matplotlib.colors import hsv_to_rgb

    hues = rng.uniform(0, 1, n + 1)
    colours = hsv_to_rgb(np.stack([hues, np.ones_like(hues), np.ones_like(hues)], axis=1))
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
    h, w = root["images"].shape[1:]
    dpi, title_px, gap = 100, 22, 8
    fig_w = (2 * w + 3 * gap) / dpi
    fig_h = len(idx) * (h + title_px + gap) / dpi
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    for row, i in enumerate(idx):
        image = np.asarray(root["images"][i])
        labels = np.asarray(root["labels"][i])
        n_inst = int(root["n_instances"][i])
        sbr = float(root["sbr"][i])
        top = 1 - (row * (h + title_px + gap) + title_px) / (fig_h * dpi)
        for col, (data, title) in enumerate((
            (_contrast(image), f"image {i}: SBR {sbr:.1f}"),
            (outline_overlay(image, labels, seed=i), f"{n_inst} ground-truth instances"),
        )):
            # one screen pixel per image pixel, so outlines stay visible
            ax = fig.add_axes(((gap + col * (w + gap)) / (fig_w * dpi), top - h / (fig_h * dpi),
                               w / (fig_w * dpi), h / (fig_h * dpi)))
            ax.imshow(data, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(title, fontsize=9, pad=3)
            ax.set_axis_off()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out
