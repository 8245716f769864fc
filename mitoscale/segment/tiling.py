"""Resampling to the model pixel size and the overlapping tile grid.

Every frame is resampled to the model's pixel size (80 nm) and covered by
tiles of at most ``tile`` px whose origins lie on the encoder's patch and
attention-window grid.  Each tile owns a *core*: the cores partition the frame,
and a tile extends ``halo`` px beyond its core on every side that is not the
frame border.  A prompt is decoded in the tile whose core holds it, so it
always has at least ``halo`` px of image context around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "resampled_shape", "resample", "tile_grid", "assign_points"]


@dataclass(frozen=True)
class Tile:
    """A tile: ``(y0, x0, y1, x1)`` extent and ``core`` in frame pixels (half-open)."""

    index: int
    y0: int
    x0: int
    y1: int
    x1: int
    core: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def resampled_shape(shape: tuple[int, int], pixel_size_um: float, target_um: float) -> tuple[int, int]:
    """Shape of a ``shape`` frame at ``pixel_size_um`` resampled to ``target_um``."""
    f = pixel_size_um / target_um
    return tuple(max(1, int(round(n * f))) for n in shape)  # type: ignore[return-value]


def resample(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2D image to ``shape`` (bilinear; Gaussian anti-aliasing when shrinking).

    Pixel areas are preserved (scikit-image convention: output pixel ``i`` is
    centred at input coordinate ``(i + 0.5) * n_in / n_out - 0.5``).
    """
    image = np.asarray(image, dtype=np.float32)
    if tuple(image.shape) == tuple(shape):
        return image
    from skimage.transform import resize

    shrink = shape[0] < image.shape[0] or shape[1] < image.shape[1]
    return resize(image, shape, order=1, mode="reflect", anti_aliasing=shrink,
                  preserve_range=True).astype(np.float32)


def _axis_tiles(n: int, tile: int, halo: int, align: int = 1) -> list[tuple[int, int, int, int]]:
    """1D tiles ``(start, stop, core_start, core_stop)`` covering ``[0, n)``.

    Starts are multiples of ``align``, spread evenly from 0 to the first
    multiple at or beyond ``n - tile`` (that last tile is cut at ``n``; the
    model pads it), at most the aligned core width apart so that every core
    keeps ``halo`` px of context on both sides.
    """
    if n <= tile:
        return [(0, n, 0, n)]
    inner = tile - 2 * halo
    if inner <= 0:
        raise ValueError(f"halo {halo} leaves no core in a {tile} px tile")
    if align > inner:  # no aligned stride fits the core
        align = 1
    stride = (inner // align) * align
    last = -(-(n - tile) // align) * align
    k = 1 + -(-last // stride)
    starts = [(i * last // (k - 1)) // align * align for i in range(k)]
    out = []
    for i, s in enumerate(starts):
        c0 = 0 if i == 0 else out[-1][3]
        # cores meet in the middle of the overlap, >= halo from both tiles' edges
        c1 = n if i == k - 1 else (s + tile + starts[i + 1]) // 2
        out.append((s, min(s + tile, n), c0, c1))
    return out


def tile_grid(shape: tuple[int, int], tile: int, halo: int, align: int = 1) -> list[Tile]:
    """Overlapping tiles of at most ``tile`` px whose cores partition the frame.

    Parameters
    ----------
    shape : (H, W)
        Frame shape (model pixel size).
    tile : int
        Tile edge; frames smaller than a tile give one smaller tile.
    halo : int
        Minimum context (px) between a core and its tile's edge, except at
        the frame border.
    align : int
        Tile origins are multiples of this (px).  Aligning them to the
        encoder's patch and attention-window grid means an object seen by two
        tiles meets the same patches and windows in both, so its masks agree
        more closely (measured in benchmarks/RESULTS_segment.md).

    Returns
    -------
    list of Tile
        Row-major.
    """
    ys = _axis_tiles(int(shape[0]), tile, halo, align)
    xs = _axis_tiles(int(shape[1]), tile, halo, align)
    tiles = []
    for y0, y1, cy0, cy1 in ys:
        for x0, x1, cx0, cx1 in xs:
            tiles.append(Tile(len(tiles), y0, x0, y1, x1, (cy0, cx0, cy1, cx1)))
    return tiles


def assign_points(points: np.ndarray, tiles: list[Tile]) -> np.ndarray:
    """Index of the tile whose core holds each ``(y, x)`` point."""
    points = np.asarray(points).reshape(-1, 2)
    out = np.full(len(points), -1, dtype=np.int64)
    for t in tiles:
        cy0, cx0, cy1, cx1 = t.core
        inside = ((points[:, 0] >= cy0) & (points[:, 0] < cy1)
                  & (points[:, 1] >= cx0) & (points[:, 1] < cx1))
        out[inside] = t.index
    return out
