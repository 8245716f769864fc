"""The per-frame kernel: prepare -> tiles -> stitch -> instance table.

:func:`segment_frame` runs everything for one 2D frame in-process (used by
benchmarks and baselines comparisons); the Dask pipeline calls the same three
steps as separate tasks: :func:`prepare_frame` once per frame,
:func:`run_tile` once per tile, :func:`finish_frame` once per frame.

Stitching
---------
Prompts are sampled once per frame and each is decoded in exactly one tile
(the one whose core holds it, see :mod:`mitoscale.segment.tiling`).  All
candidates of all tiles are then moved to frame coordinates.  Masks cut by an
inner tile edge are joined with the masks of neighbouring tiles that agree
with them where both tiles see (IoU >= ``postprocess.stitch_iou`` in the
tiles' common region, :func:`~mitoscale.segment.postprocess.merge_across_tiles`),
so an object longer than a tile comes back as one instance; then everything
goes through one overlap suppression (:func:`~mitoscale.segment.postprocess.suppress_overlaps`).
An object crossing a tile border is prompted from both sides, but both
decodings see the whole object (the halo), agree, and the suppression keeps
one: one instance, not two halves and not a duplicate.  One tile or many, the
same prompts reach the same suppression, so the result hardly depends on the
tiling.

Back to the input grid
----------------------
Masks are predicted at the model pixel size.  Each kept mask's logits are
resampled bilinearly to the input pixel centres (same pixel-area convention as
the forward resampling) and thresholded at 0, keeping the largest component;
at 80 nm input this is the identity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mitoscale.io.runfolder import check_frame  # the one frame check of every method
from mitoscale.io.tables import instances_to_table
from mitoscale.model import normalize_intensity
from mitoscale.segment.config import SegmentConfig
from mitoscale.segment.postprocess import Candidate, largest_component, merge_across_tiles, suppress_overlaps
from mitoscale.segment.prompts import foreground, maxima_prompts, sample_prompts, smooth
from mitoscale.segment.tile import TileStats, segment_tile
from mitoscale.segment.tiling import Tile, assign_points, resample, resampled_shape, tile_grid

__all__ = ["PreparedFrame", "check_frame", "prepare_frame", "run_tile", "finish_frame",
           "segment_frame", "map_to_input", "paint_labels"]


@dataclass
class PreparedFrame:
    """A frame resampled, normalised, thresholded and prompted, ready for its tiles."""

    image: np.ndarray  # (h, w) float32 in [0, 1] at the model pixel size
    input_shape: tuple[int, int]
    pixel_size_um: float
    threshold: float
    prompts: np.ndarray  # (N, 2) frame coords, priority order
    tiles: list[Tile]
    owner: np.ndarray  # (N,) tile index of each prompt
    prepare_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def tile_prompts(self, tile: Tile) -> np.ndarray:
        """Prompts owned by ``tile``, in tile coordinates and priority order."""
        pts = self.prompts[self.owner == tile.index]
        return pts - np.array([tile.y0, tile.x0])


def prepare_frame(image: np.ndarray, pixel_size_um: float, cfg: SegmentConfig | None = None,
                  where: str = "frame") -> PreparedFrame:
    """Resample to the model pixel size, normalise, threshold and sample prompts."""
    cfg = cfg or SegmentConfig()
    t0 = time.perf_counter()
    image = np.asarray(image)
    check_frame(image, where)
    mc = cfg.model
    shape = resampled_shape(image.shape, pixel_size_um, mc.pixel_size_um)
    norm = normalize_intensity(resample(image, shape))
    sm = smooth(norm, cfg.prompts.smooth_sigma)
    fg, thr = foreground(sm, cfg.prompts.threshold)
    pc = cfg.prompts
    if pc.sampling == "grid":
        pts = sample_prompts(sm, fg, pc.spacing, pc.max_prompts)
    else:
        pts = maxima_prompts(sm, fg, pc.spacing, pc.max_prompts)
        if pc.sampling == "maxima+grid":  # fill: grid prompts after every maximum
            grid = sample_prompts(sm, fg, pc.grid_spacing)
            pts = np.unique(np.concatenate([pts, grid]), axis=0, return_index=True)
            pts = pts[0][np.argsort(pts[1])]
            if pc.max_prompts is not None:
                pts = pts[:pc.max_prompts]
    if mc.tile_size is None:
        raise ValueError("cfg.model.tile_size must be resolved (mitoscale.segment.runtime.resolve_config)")
    tiles = tile_grid(shape, mc.tile_size, mc.halo, mc.tile_align or 1)
    owner = assign_points(pts, tiles)
    return PreparedFrame(norm, tuple(image.shape), float(pixel_size_um), thr, pts, tiles, owner,
                         prepare_s=time.perf_counter() - t0)


def run_tile(prep: PreparedFrame, tile_index: int, model, spec,
             cfg: SegmentConfig | None = None) -> tuple[list[Candidate], TileStats]:
    """Candidates (frame coordinates) of one tile of a prepared frame."""
    tile = prep.tiles[tile_index]
    img = prep.image[tile.y0:tile.y1, tile.x0:tile.x1]
    h, w = prep.image.shape
    inner = (tile.y0 > 0, tile.x0 > 0, tile.y1 < h, tile.x1 < w)
    cands, stats = segment_tile(model, spec, img, prep.tile_prompts(tile), cfg, inner)
    out = [c.shifted(tile.y0, tile.x0) for c in cands]
    for c in out:
        c.tile = tile_index
    return out, stats


def map_to_input(c: Candidate, model_shape: tuple[int, int],
                 input_shape: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
    """Resample one candidate to the input grid: ``(y0, x0, mask crop)`` or ``None`` if it vanishes."""
    if tuple(model_shape) == tuple(input_shape):
        return c.y0, c.x0, c.mask
    from scipy.ndimage import map_coordinates

    fy = model_shape[0] / input_shape[0]
    fx = model_shape[1] / input_shape[1]
    h, w = c.mask.shape
    # input pixel i is centred at model coordinate (i + 0.5) * f - 0.5
    iy0 = max(0, int(np.ceil((c.y0 - 0.5 + 0.5) / fy - 0.5)))
    iy1 = min(input_shape[0], int(np.floor((c.y0 + h - 1 + 0.5) / fy - 0.5)) + 1)
    ix0 = max(0, int(np.ceil((c.x0 - 0.5 + 0.5) / fx - 0.5)))
    ix1 = min(input_shape[1], int(np.floor((c.x0 + w - 1 + 0.5) / fx - 0.5)) + 1)
    if iy1 <= iy0 or ix1 <= ix0:
        return None
    uy = (np.arange(iy0, iy1) + 0.5) * fy - 0.5 - c.y0
    ux = (np.arange(ix0, ix1) + 0.5) * fx - 0.5 - c.x0
    gy, gx = np.meshgrid(uy, ux, indexing="ij")
    vals = map_coordinates(c.logits.astype(np.float32), [gy, gx], order=1, mode="nearest")
    m = vals > 0
    if not m.any():
        return None
    return iy0, ix0, largest_component(m)


def finish_frame(prep: PreparedFrame, candidates: list[Candidate], image: np.ndarray,
                 keys: dict, cfg: SegmentConfig | None = None) -> pd.DataFrame:
    """Suppress overlaps across tiles, map to the input grid, build the instance table.

    Parameters
    ----------
    prep : PreparedFrame
    candidates : list of Candidate
        All tiles' candidates in frame coordinates.
    image : (H, W) array
        The input frame (for ``mean_intensity``).
    keys : dict
        ``image_id``, ``well``, ``field``, ``t``, ``z``.

    Returns
    -------
    DataFrame
        Instance table (input grid), ids 1..n by descending score, plus
        ``stability`` (SAM's stability score) and ``prompt_y``/``prompt_x``
        (model grid) columns.
    """
    cfg = cfg or SegmentConfig()
    pc = cfg.postprocess
    if pc.stitch_iou is not None and len(prep.tiles) > 1:
        candidates = merge_across_tiles(candidates, prep.tiles, pc.stitch_iou, pc.min_area)
    kept = suppress_overlaps(candidates, pc.max_overlap, pc.fragment_score)
    kept.sort(key=lambda c: (-c.score, c.y0, c.x0))
    crops, offsets, scores, stab, py, px = [], [], [], [], [], []
    for c in kept:
        mapped = map_to_input(c, prep.image.shape, prep.input_shape)
        if mapped is None:
            continue
        y0, x0, m = mapped
        crops.append(m)
        offsets.append((y0, x0))
        scores.append(c.score)
        stab.append(c.stability)
        py.append(c.prompt[0])
        px.append(c.prompt[1])
    return instances_to_table(
        crops, offsets=offsets, shape=prep.input_shape, image=np.asarray(image, dtype=np.float64),
        pixel_size_um=prep.pixel_size_um, scores=scores,
        extra={"stability": stab, "prompt_y": py, "prompt_x": px},
        **keys)


def paint_labels(table: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Flatten a frame's instances to a uint32 label image; higher scores paint last (win)."""
    from mitoscale.io.tables import decode_mask

    out = np.zeros(shape, dtype=np.uint32)
    if len(table) == 0:
        return out
    order = np.argsort(table["score"].to_numpy(), kind="stable")
    for row in table.iloc[order].itertuples(index=False):
        m = decode_mask((row.bbox_y0, row.bbox_x0, row.bbox_y1, row.bbox_x1), row.mask)
        out[row.bbox_y0:row.bbox_y1, row.bbox_x0:row.bbox_x1][m] = row.instance_id
    return out


def segment_frame(image2d: np.ndarray, pixel_size_um: float, model, spec,
                  cfg: SegmentConfig | None = None, keys: dict | None = None,
                  stats: dict | None = None) -> pd.DataFrame:
    """Segment one 2D frame in-process and return its instance table.

    Parameters
    ----------
    image2d : (H, W) array
        Raw intensities at ``pixel_size_um``.
    pixel_size_um : float
    model, spec : from :func:`mitoscale.model.load_model`
    cfg : SegmentConfig, optional
    keys : dict, optional
        Location keys; defaults to ``image_id="image"`` and zeros.
    stats : dict, optional
        Filled with prompt counts and timings (encoder, decoder, total wall time, and
        ``cpu_s``, the CPU seconds of this process over all its threads).

    Returns
    -------
    DataFrame
        The instance table (``mitoscale.io.tables`` schema) on the input grid.
    """
    from mitoscale.segment.runtime import resolve_config, tune_malloc

    tune_malloc()  # as on the pipeline's workers: large temporaries reuse the heap, not fresh mmaps
    cfg = resolve_config(cfg or SegmentConfig(), spec)
    t0, c0 = time.perf_counter(), time.process_time()
    keys = {"image_id": "image", "well": "", "field": 0, "t": 0, "z": 0, **(keys or {})}
    prep = prepare_frame(image2d, pixel_size_um, cfg)
    total = TileStats()
    cands: list[Candidate] = []
    for tile in prep.tiles:
        c, s = run_tile(prep, tile.index, model, spec, cfg)
        cands.extend(c)
        total.add(s)
    df = finish_frame(prep, cands, image2d, keys, cfg)
    if stats is not None:
        stats.update(total.as_dict())
        stats.update(tiles=len(prep.tiles), instances=len(df), prepare_s=prep.prepare_s,
                     total_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0)
    return df
