"""Prompted training samples read lazily from the corpus.

A sample is one model-input tile of one corpus image with K foreground point
prompts.  For every point the *targets* are all instances whose mask contains
it (one per label layer at most, since overlapping instances live in
different layers); the Dice-min loss later picks the best of them.

Reading is chunk-aligned: the dataset decodes whole Zarr chunks and keeps the
last one, and :class:`ChunkSampler` visits the images chunk by chunk, so every
chunk is decoded once per epoch and nothing is copied to per-image files.

Randomness (crop, augmentation, points) comes from
``default_rng(SeedSequence([seed, epoch, index]))``: a sample depends only on
those three numbers, so resumed and distributed runs see the same data.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mitoscale.model import normalize_intensity, to_sam_input
from mitoscale.train.corpus import Corpus

__all__ = [
    "tile_origins",
    "sample_points",
    "point_targets",
    "PromptDataset",
    "ChunkSampler",
    "collate",
]


def tile_origins(height: int, width: int, size: int) -> list[tuple[int, int]]:
    """Top-left corners of the fixed tiles that cover an image (used by the embedding cache).

    Tiles are ``size`` wide, start at 0 and step by ``size``; the last row and
    column are shifted back to end at the border.  An image smaller than a tile
    is one tile at (0, 0) (padded bottom/right, as SAM pads).
    """
    def axis(n: int) -> list[int]:
        if n <= size:
            return [0]
        starts = list(range(0, n - size + 1, size))
        if starts[-1] + size < n:
            starts.append(n - size)
        return starts

    return [(y, x) for y in axis(height) for x in axis(width)]


def sample_points(foreground: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``k`` foreground pixels uniformly (with replacement only if fewer exist).

    Parameters
    ----------
    foreground : (H, W) bool array
    k : int
        Number of points, >= 1.
    rng : numpy Generator

    Returns
    -------
    (k, 2) int64 array of (y, x) pixel indices.

    Raises
    ------
    ValueError
        If ``k < 1`` or the foreground is empty.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    flat = np.flatnonzero(foreground)
    if flat.size == 0:
        raise ValueError("no foreground pixel to sample a point from")
    pick = rng.choice(flat, size=k, replace=flat.size < k)
    return np.stack(np.unravel_index(pick, foreground.shape), axis=1).astype(np.int64)


def point_targets(layers: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of all instances under each point.

    Parameters
    ----------
    layers : (L, H, W) integer array
        Layered labels of the tile.
    points : (K, 2) array of (y, x)

    Returns
    -------
    targets : (K, L, H, W) bool array
        ``targets[k, l]`` is the instance of layer ``l`` under point ``k``
        (all False where that layer is background at the point).
    valid : (K, L) bool array
        Which ``targets[k, l]`` are real instances.
    """
    ids = layers[:, points[:, 0], points[:, 1]].T  # (K, L)
    valid = ids != 0
    targets = (layers[None] == ids[:, :, None, None]) & valid[:, :, None, None]
    return targets, valid


def _prompted(layers: np.ndarray, fg: np.ndarray, k: int, rng: np.random.Generator):
    """``k`` points on ``fg`` and their targets among ``layers`` (empty trailing layers dropped).

    Returns ``(points (k, 2) as (y, x), layers used n, targets, valid)``.
    """
    pts = sample_points(fg, k, rng)
    used = np.flatnonzero((layers != 0).reshape(layers.shape[0], -1).any(axis=1))
    n = int(used[-1]) + 1
    targets, valid = point_targets(layers[:n], pts)
    return pts, n, targets, valid


def _xy(points: np.ndarray) -> torch.Tensor:
    """(y, x) pixel points as SAM's float (x, y) tensor."""
    return torch.from_numpy(points[:, ::-1].astype(np.float32).copy())


def _dihedral(arr: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 rotations/flips of the last two axes."""
    if code & 4:
        arr = arr[..., ::-1]
    return np.rot90(arr, k=code & 3, axes=(-2, -1))


class PromptDataset(torch.utils.data.Dataset):
    """Map-style dataset of prompted tiles.

    Parameters
    ----------
    corpus : Corpus
    img_size : int
        Model input size; tiles are ``img_size`` square.
    points_per_image : int
        K.
    seed : int
    augment : bool
        Random crops and dihedral transforms (image mode only).
    embeddings : zarr.Array, optional
        (N, T, C, E, E) cache from ``mitoscale train embed``; then samples
        carry ``embedding`` (one fixed tile, no augmentation) instead of ``image``.
    pair_shift : int
        If > 0, every sample is a *pair of views*: tile A and tile B of the
        same (augmented) image, B's origin ``(dy, dx)`` from A's with ``dy, dx``
        in ``{-pair_shift, 0, pair_shift}`` (not both 0), and the same K points,
        all in the overlap.  B's entries are ``image_b``, ``points_b``,
        ``targets_b`` and ``shift`` (``(dy, dx)`` px); the shift-consistency
        loss (:func:`mitoscale.train.loss.shift_consistency_loss`) compares
        the two views' masks.  Image mode only.

    Notes
    -----
    Keys are ``(index, epoch)`` pairs as yielded by :class:`ChunkSampler`.  In
    cache mode ``index`` enumerates (image, tile) units: ``image * T + tile``.
    """

    def __init__(self, corpus: Corpus, img_size: int, points_per_image: int, seed: int = 0,
                 augment: bool = True, embeddings=None, pair_shift: int = 0):
        if points_per_image < 1:
            raise ValueError(f"points_per_image must be >= 1, got {points_per_image}")
        self.corpus = corpus
        self.img_size = int(img_size)
        self.k = int(points_per_image)
        self.seed = int(seed)
        self.augment = bool(augment) and embeddings is None
        self.embeddings = embeddings
        self.pair_shift = int(pair_shift)
        if self.pair_shift and embeddings is not None:
            raise ValueError("pair_shift (shift consistency) needs images, not an embedding cache")
        h, w = corpus.image_shape
        if self.pair_shift and (min(h, w) - self.img_size < self.pair_shift):
            raise ValueError(f"pair_shift {self.pair_shift} px does not fit {h}x{w} corpus images "
                             f"with {self.img_size} px tiles (needs images >= tile + shift)")
        self.tiles = tile_origins(h, w, self.img_size)
        self._chunk: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def units_per_image(self) -> int:
        return len(self.tiles) if self.embeddings is not None else 1

    def __len__(self) -> int:
        return self.corpus.n_images * self.units_per_image

    def _read(self, image: int) -> tuple[np.ndarray, np.ndarray]:
        """Image and layered labels of one corpus image, through a one-chunk cache."""
        b = self.corpus.chunk_len
        c = image // b
        if self._chunk is None or self._chunk[0] != c:
            lo, hi = c * b, min((c + 1) * b, self.corpus.n_images)
            self._chunk = (c, np.asarray(self.corpus.images[lo:hi]), np.asarray(self.corpus.labels[lo:hi]))
        _, imgs, labs = self._chunk
        return imgs[image - c * b], labs[image - c * b]

    def _crop(self, arr: np.ndarray, y: int, x: int) -> np.ndarray:
        s = self.img_size
        out = arr[..., y:y + s, x:x + s]
        pad_y, pad_x = s - out.shape[-2], s - out.shape[-1]
        if pad_y or pad_x:
            out = np.pad(out, [(0, 0)] * (out.ndim - 2) + [(0, pad_y), (0, pad_x)])
        return out

    def __getitem__(self, key) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        index, epoch = int(index), int(epoch)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, index]))
        image, tile = divmod(index, self.units_per_image)
        img, lab = self._read(image)
        if self.pair_shift:
            return self._pair(img, lab, rng, image, tile, epoch)
        h, w = img.shape
        s = self.img_size
        if self.embeddings is not None:
            y, x = self.tiles[tile]
            layers = self._crop(lab, y, x)
            code = 0
        else:
            for _ in range(20):  # find a crop with foreground (nearly always the first)
                y = int(rng.integers(0, max(h - s, 0) + 1))
                x = int(rng.integers(0, max(w - s, 0) + 1))
                layers = self._crop(lab, y, x)
                if layers.any():
                    break
            code = int(rng.integers(0, 8)) if self.augment else 0
            layers = _dihedral(layers, code)
        fg = (layers != 0).any(axis=0)
        if not fg.any():  # only an image without any instance gets here
            raise ValueError(f"corpus image {image} has no instance in tile ({y}, {x})")
        pts, _, targets, valid = _prompted(layers, fg, self.k, rng)
        sample = {
            "points": _xy(pts),
            "targets": torch.from_numpy(np.ascontiguousarray(targets)),
            "valid": torch.from_numpy(valid),
            "key": torch.tensor([image, tile, epoch]),
        }
        if self.embeddings is not None:
            sample["embedding"] = torch.from_numpy(
                np.asarray(self.embeddings[image, tile], dtype=np.float32))
        else:
            norm = normalize_intensity(img)
            norm = np.ascontiguousarray(_dihedral(self._crop(norm, y, x), code))
            sample["image"] = to_sam_input(norm, s)
        return sample

    def _pair(self, img, lab, rng, image, tile, epoch) -> dict:
        """Two views of one image, ``shift`` apart, with the same points (see ``pair_shift``)."""
        s, d = self.img_size, self.pair_shift
        code = int(rng.integers(0, 8)) if self.augment else 0
        img = np.ascontiguousarray(_dihedral(normalize_intensity(img), code))
        lab = _dihedral(lab, code)
        h, w = img.shape
        for _ in range(20):  # find a pair whose overlap has foreground (nearly always the first)
            dy, dx = 0, 0
            while dy == 0 and dx == 0:
                dy, dx = (int(v) for v in rng.choice([-d, 0, d], 2))
            y = int(rng.integers(max(0, -dy), h - s - max(0, dy) + 1))
            x = int(rng.integers(max(0, -dx), w - s - max(0, dx) + 1))
            layers = lab[:, y:y + s, x:x + s]
            overlap = np.zeros((s, s), dtype=bool)
            overlap[max(0, dy):s + min(0, dy), max(0, dx):s + min(0, dx)] = True
            fg = (layers != 0).any(axis=0) & overlap
            if fg.any():
                break
        else:
            raise ValueError(f"corpus image {image} has no instance in a pair overlap")
        pts, n, targets, valid = _prompted(layers, fg, self.k, rng)
        pts_b = pts - np.array([dy, dx])
        targets_b, _ = point_targets(lab[:n, y + dy:y + dy + s, x + dx:x + dx + s], pts_b)
        return {
            "points": _xy(pts),
            "targets": torch.from_numpy(np.ascontiguousarray(targets)),
            "valid": torch.from_numpy(valid),
            "key": torch.tensor([image, tile, epoch]),
            "image": to_sam_input(img[y:y + s, x:x + s], s),
            "points_b": _xy(pts_b),
            "targets_b": torch.from_numpy(np.ascontiguousarray(targets_b)),
            "image_b": to_sam_input(img[y + dy:y + dy + s, x + dx:x + dx + s], s),
            "shift": torch.tensor([dy, dx]),
        }


def collate(samples: list[dict]) -> dict:
    """Stack samples into a batch, padding the target-layer axis with invalid targets."""
    t = max(s["valid"].shape[1] for s in samples)
    out = {}
    for key in samples[0]:
        items = [s[key] for s in samples]
        if key in ("targets", "targets_b", "valid"):
            items = [torch.nn.functional.pad(x, (0, 0, 0, 0, 0, t - x.shape[1]) if x.ndim == 4
                                             else (0, t - x.shape[1])) for x in items]
        out[key] = torch.stack(items)
    return out


class ChunkSampler(torch.utils.data.Sampler):
    """Chunk-aligned shuffling, split across distributed ranks, resumable.

    Each epoch permutes the Zarr chunks, then the units inside each chunk,
    from ``(seed, epoch)``; rank ``r`` of ``world`` takes every ``world``-th
    unit (the epoch is truncated to a multiple of ``world`` so all ranks take
    the same number of steps).  Iteration yields ``(unit, epoch)`` keys
    forever, starting at ``start`` (the number of keys this rank already
    consumed), so a resumed run continues exactly where it stopped.

    Parameters
    ----------
    units : array of int
        Unit indices to draw from (the training split).
    units_per_chunk : int
        Consecutive units that share one Zarr chunk.
    seed, rank, world : int
    start : int
        Keys to skip (this rank's position).
    """

    def __init__(self, units: np.ndarray, units_per_chunk: int, seed: int = 0,
                 rank: int = 0, world: int = 1, start: int = 0):
        self.units = np.asarray(units, dtype=np.int64)
        if self.units.size < world:
            raise ValueError(f"{self.units.size} training units cannot be split over {world} ranks")
        self.units_per_chunk = max(1, int(units_per_chunk))
        self.seed, self.rank, self.world = int(seed), int(rank), int(world)
        self.start = int(start)

    @property
    def per_epoch(self) -> int:
        """Keys each rank draws per epoch."""
        return self.units.size // self.world

    def epoch_order(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 2**31 - 1]))
        chunk_of = self.units // self.units_per_chunk
        chunks = np.unique(chunk_of)
        order = []
        for c in rng.permutation(chunks):
            members = self.units[chunk_of == c]
            order.append(rng.permutation(members))
        order = np.concatenate(order)
        n = self.per_epoch * self.world
        return order[:n][self.rank::self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.start
        while True:
            epoch, offset = divmod(pos, self.per_epoch)
            order = self.epoch_order(epoch)
            for u in order[offset:]:
                yield int(u), int(epoch)
            pos = (epoch + 1) * self.per_epoch

    def __len__(self) -> int:  # an "epoch" for progress purposes
        return self.per_epoch
