"""Segment one tile: encode once, decode prompts in chunks, accept masks as they come.

Smarter prompting: prompts are visited brightest first, in rounds.  A round
takes up to ``chunk`` prompts that are more than ``round_spacing`` px apart
(so one batch rarely holds two prompts on the same mitochondrion); after each
round the accepted masks (eroded by ``cover_erosion`` px) mark the pixels they
cover, and later prompts on covered pixels are not decoded at all.  A
mitochondrion is thus typically decoded from one or two prompts instead of
from every grid point that falls on it.  Masks that reach the edge of their
decoding window are decoded again in a window twice as large.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mitoscale.segment.config import SegmentConfig
from mitoscale.segment.decode import autocast, decode_points, encode_tile, use_bf16
from mitoscale.segment.postprocess import Candidate, largest_component

__all__ = ["TileStats", "segment_tile", "masks_from_decoded", "spread_selection"]

_NEG = np.float16(-20.0)


@dataclass
class TileStats:
    """Counters and timings of one tile (summed over tiles by the caller)."""

    prompts: int = 0  # prompts assigned to the tile
    decoded: int = 0  # decoder calls' prompts (including window enlargements)
    accepted: int = 0
    encoder_s: float = 0.0
    decoder_s: float = 0.0
    other_s: float = 0.0

    def add(self, other: "TileStats") -> "TileStats":
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))
        return self

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def spread_selection(points: np.ndarray, k: int, min_dist: float) -> np.ndarray:
    """Indices of up to ``k`` points, in order, each more than ``min_dist`` from those before.

    Points closer than ``min_dist`` to a selected one likely lie on the same
    mitochondrion; they wait for the next round, by which time the accepted
    mask usually covers them and they are never decoded.
    """
    if min_dist <= 0:
        return np.arange(min(k, len(points)))
    sel: list[int] = []
    d2 = float(min_dist) ** 2
    chosen = np.empty((0, 2))
    for i, p in enumerate(points):
        if len(sel) and (((chosen - p) ** 2).sum(1) <= d2).any():
            continue
        sel.append(i)
        chosen = points[sel].astype(float)
        if len(sel) == k:
            break
    return np.asarray(sel, dtype=np.int64)


def masks_from_decoded(dec, i: int, shape: tuple[int, int], min_area: int,
                       keep_largest: bool) -> tuple[Candidate | None, bool]:
    """Turn decoded prompt ``i`` into a :class:`Candidate` in tile coordinates.

    Returns ``(candidate or None, touches_inner_window_edge)``.
    """
    lg = dec.logits[i].numpy()
    y0, x0 = int(dec.y0[i]), int(dec.x0[i])
    h, w = min(lg.shape[0], shape[0] - y0), min(lg.shape[1], shape[1] - x0)
    lg = lg[:h, :w]
    m = lg > 0
    if not m.any():
        return None, False
    if keep_largest:
        m = largest_component(m)
    rows = np.flatnonzero(m.any(1))
    cols = np.flatnonzero(m.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # a window side inside the map (and inside the tile) that the mask reaches
    size = dec.logits.shape[1]
    top, left, bottom, right = dec.inner_edges[i]
    touches = bool((top and r0 == 0) or (left and c0 == 0)
                   or (bottom and h == size and r1 == size)
                   or (right and w == size and c1 == size))
    area = int(m[r0:r1, c0:c1].sum())
    if area < min_area:
        return None, touches
    # one-pixel margin keeps the logit ramp for resampling to the input grid
    R0, R1, C0, C1 = max(r0 - 1, 0), min(r1 + 1, h), max(c0 - 1, 0), min(c1 + 1, w)
    crop_m = m[R0:R1, C0:C1]
    crop_l = lg[R0:R1, C0:C1].astype(np.float16)
    from scipy.ndimage import binary_dilation

    off = ~binary_dilation(crop_m)  # other components must not come back when resampled
    crop_l[off] = np.minimum(crop_l[off], _NEG)
    return Candidate(y0 + R0, x0 + C0, crop_m, crop_l, float(dec.scores[i])), touches


def segment_tile(model, spec, tile: np.ndarray, points: np.ndarray,
                 cfg: SegmentConfig | None = None,
                 inner_sides: tuple[bool, bool, bool, bool] = (False, False, False, False),
                 ) -> tuple[list[Candidate], TileStats]:
    """Candidates of one normalised tile from its prompts (tile coordinates, priority order).

    Parameters
    ----------
    model, spec : SAM model and its ModelSpec
    tile : (h, w) float32 in [0, 1]
    points : (N, 2) int array of (y, x)
    cfg : SegmentConfig
    inner_sides : (top, left, bottom, right) bools
        Tile sides that are not the frame border; masks reaching them are
        flagged ``truncated``.

    Returns
    -------
    candidates : list of Candidate (tile coordinates), each with a prompt
    stats : TileStats
    """
    cfg = cfg or SegmentConfig()
    stats = TileStats(prompts=len(points))
    if len(points) == 0:  # nothing to decode: the embedding is not needed
        return [], stats
    t0 = time.perf_counter()
    bf16 = use_bf16(cfg.model.bf16, next(model.parameters()).device.type)
    emb = encode_tile(model, spec, tile, bf16=bf16)
    stats.encoder_s = time.perf_counter() - t0
    # one autocast context for all the tile's decoder calls: the bf16 copies of the decoder's
    # weights are made once per tile instead of once per call (same values)
    with autocast(bf16):
        cands = _decode_prompts(model, spec, emb, tile, points, cfg, inner_sides, bf16, stats)
    stats.accepted = len(cands)
    return cands, stats


def _decode_prompts(model, spec, emb, tile, points, cfg, inner_sides, bf16, stats) -> list[Candidate]:
    """The decoding rounds of :func:`segment_tile` (coverage, window enlargement, acceptance)."""
    eh = emb.shape[-1]
    pc, dc = cfg.prompts, cfg.decode
    max_w = eh if dc.max_window is None else min(dc.max_window, eh)
    first_w = None if dc.window is None else min(dc.window, eh)
    covered = np.zeros(tile.shape, dtype=bool)
    erode = None
    if pc.cover_erosion > 0:
        from scipy.ndimage import binary_erosion

        erode = lambda m: binary_erosion(m, iterations=pc.cover_erosion)  # noqa: E731
    cands: list[Candidate] = []
    queue = [(np.asarray(points, dtype=np.int64), first_w)]
    while queue:
        pts, win = queue.pop(0)
        retry = []
        while len(pts):
            if pc.skip_covered:
                pts = pts[~covered[pts[:, 0], pts[:, 1]]]
                if len(pts) == 0:
                    break
            take = spread_selection(pts, dc.chunk, pc.round_spacing if pc.skip_covered else 0)
            chunk, pts = pts[take], np.delete(pts, take, axis=0)
            t1 = time.perf_counter()
            dec = decode_points(model, spec, emb, chunk, window=win, multimask=dc.multimask, bf16=bf16,
                                keep_all=dc.keep_all_masks)
            t2 = time.perf_counter()
            stats.decoder_s += t2 - t1
            stats.decoded += len(chunk)
            for p in range(len(chunk)):
                found, again = [], False
                for i in np.flatnonzero(dec.prompt == p):  # 1 mask, or 3 with keep_all_masks
                    if dec.scores[i] < cfg.postprocess.min_score:
                        continue
                    cand, touches = masks_from_decoded(dec, i, tile.shape, cfg.postprocess.min_area,
                                                       cfg.postprocess.largest_component)
                    again |= touches and win is not None and win < max_w
                    if cand is not None:
                        found.append(cand)
                if again:  # a mask reaches the window edge: decode the prompt in a larger window
                    retry.append(chunk[p])
                    continue
                for cand in found:
                    cand.prompt = (int(chunk[p, 0]), int(chunk[p, 1]))
                    y0, x0, y1, x1 = cand.bbox
                    cand.truncated = bool((inner_sides[0] and y0 == 0) or (inner_sides[1] and x0 == 0)
                                          or (inner_sides[2] and y1 >= tile.shape[0])
                                          or (inner_sides[3] and x1 >= tile.shape[1]))
                    cands.append(cand)
                    if pc.skip_covered:
                        m = erode(cand.mask) if erode is not None else cand.mask
                        covered[y0:y1, x0:x1] |= m
            stats.other_s += time.perf_counter() - t2
        if retry:
            queue.append((np.array(retry, dtype=np.int64), min(2 * win, max_w)))
    return cands
