"""Per-mask clean-up and overlap suppression.

Definitions
-----------
*Overlap* of two masks A and B is ``|A ∩ B| / min(|A|, |B|)``: the fraction
of the smaller mask covered by the larger.  It is 1 for duplicates and for a
mask nested inside another, and small for neighbours that merely touch or
cross.  :func:`suppress_overlaps` visits masks by descending score and keeps a
mask only if its overlap with every kept mask is at most ``max_overlap``, so
of two masks that overlap by more, the higher-scoring one survives (masks cut
off by a tile edge rank after whole ones).
Genuinely overlapping mitochondria (crossings) share few pixels and are both
kept; the instance table preserves such overlaps exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Candidate", "largest_component", "overlap", "suppress_overlaps", "merge_across_tiles",
           "STABILITY_OFFSET"]

STABILITY_OFFSET = 1.0  # logit offset of SAM's stability score (SamAutomaticMaskGenerator's default)


@dataclass
class Candidate:
    """One predicted mask, stored as a crop in frame coordinates.

    Attributes
    ----------
    y0, x0 : int
        Top-left of the crop in the frame (model pixel size).
    mask : (h, w) bool
        The mask inside the crop (largest component only).
    logits : (h, w) float16
        Decoder logits over the same crop (pixels off the kept component are
        clamped negative), used to map the mask to the input grid.
    score : float
        Predicted IoU.
    prompt : (y, x)
        The prompt that produced it (frame coordinates).
    truncated : bool
        The mask reaches a tile edge that is not the frame border (it may be
        cut off there); suppression prefers untruncated masks.
    stability : float
        SAM's stability score: IoU of the mask thresholded at logit +1 and at
        -1 (``|logits > 1| / |logits > -1|``), in [0, 1]; low for masks whose
        extent hangs on the threshold.
    """

    y0: int
    x0: int
    mask: np.ndarray
    logits: np.ndarray
    score: float
    prompt: tuple[int, int] = (0, 0)
    truncated: bool = False
    tile: int = -1  # index of the tile that decoded it (-1: unknown)
    area: int = field(init=False)

    def __post_init__(self):
        self.area = int(self.mask.sum())

    @property
    def stability(self) -> float:
        lg = self.logits
        loose = int((lg > -STABILITY_OFFSET).sum())
        return int((lg > STABILITY_OFFSET).sum()) / loose if loose else 0.0

    @property
    def bbox(self) -> tuple[int, int, int, int]:
        h, w = self.mask.shape
        return self.y0, self.x0, self.y0 + h, self.x0 + w

    def shifted(self, dy: int, dx: int) -> "Candidate":
        return Candidate(self.y0 + dy, self.x0 + dx, self.mask, self.logits, self.score,
                         (self.prompt[0] + dy, self.prompt[1] + dx), self.truncated, self.tile)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask (empty stays empty)."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if n <= 1:
        return mask.astype(bool, copy=False)
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    return lab == int(np.argmax(sizes))


def _intersection(a: Candidate, b: Candidate) -> int:
    ay0, ax0, ay1, ax1 = a.bbox
    by0, bx0, by1, bx1 = b.bbox
    y0, x0, y1, x1 = max(ay0, by0), max(ax0, bx0), min(ay1, by1), min(ax1, bx1)
    if y0 >= y1 or x0 >= x1:
        return 0
    ma = a.mask[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0]
    mb = b.mask[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
    return int(np.count_nonzero(ma & mb))


def overlap(a: Candidate, b: Candidate) -> float:
    """``|A ∩ B| / min(|A|, |B|)`` (0 when either is empty)."""
    m = min(a.area, b.area)
    return _intersection(a, b) / m if m else 0.0


def suppress_overlaps(cands: list[Candidate], max_overlap: float = 0.5,
                      fragment_score: float = 0.0) -> list[Candidate]:
    """Greedy suppression by score: drop masks overlapping a better mask by more than ``max_overlap``.

    Masks cut by a tile edge (``truncated``) rank after whole ones, so the
    neighbouring tile's whole view of a border-crossing object wins.  Ties in
    score are broken by area (larger first), then position, so the result
    does not depend on the input order.

    ``fragment_score``: a mask that shares any pixel with a better kept mask
    is also dropped if its score is below this.  Such low-confidence masks are
    mostly a second, partial reading of the better mask's object (a split
    tube), which overlaps it by less than ``max_overlap``.  0 disables the rule
    (the paper's clean-up exactly).
    """
    order = sorted(range(len(cands)),
                   key=lambda i: (cands[i].truncated, -cands[i].score, -cands[i].area,
                                  cands[i].y0, cands[i].x0))
    kept: list[Candidate] = []
    boxes = np.zeros((len(cands), 4), dtype=np.int64)
    for i in order:
        c = cands[i]
        y0, x0, y1, x1 = c.bbox
        b = boxes[:len(kept)]
        hit = np.flatnonzero((b[:, 0] < y1) & (b[:, 2] > y0) & (b[:, 1] < x1) & (b[:, 3] > x0))
        if any(overlap(c, kept[j]) > max_overlap for j in hit):
            continue
        if c.score < fragment_score and any(_intersection(c, kept[j]) > 0 for j in hit):
            continue
        boxes[len(kept)] = (y0, x0, y1, x1)
        kept.append(c)
    return kept


def _restricted(c: Candidate, box: tuple[int, int, int, int]) -> np.ndarray:
    """``c``'s mask inside ``box`` (frame coordinates), as a full-box boolean array."""
    y0, x0, y1, x1 = box
    out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    cy0, cx0, cy1, cx1 = c.bbox
    iy0, ix0, iy1, ix1 = max(y0, cy0), max(x0, cx0), min(y1, cy1), min(x1, cx1)
    if iy0 < iy1 and ix0 < ix1:
        out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = c.mask[iy0 - cy0:iy1 - cy0, ix0 - cx0:ix1 - cx0]
    return out


def _union(parts: list[Candidate]) -> Candidate:
    y0 = min(c.y0 for c in parts)
    x0 = min(c.x0 for c in parts)
    y1 = max(c.bbox[2] for c in parts)
    x1 = max(c.bbox[3] for c in parts)
    mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    logits = np.full(mask.shape, -20.0, dtype=np.float16)
    for c in parts:
        sl = (slice(c.y0 - y0, c.y0 - y0 + c.mask.shape[0]), slice(c.x0 - x0, c.x0 - x0 + c.mask.shape[1]))
        mask[sl] |= c.mask
        logits[sl] = np.maximum(logits[sl], c.logits)
    best = max(parts, key=lambda c: (c.score, c.area))
    area = sum(c.area for c in parts)
    score = sum(c.score * c.area for c in parts) / max(area, 1)  # area-weighted predicted IoU
    return Candidate(y0, x0, largest_component(mask), logits, float(score), best.prompt, False, best.tile)


def merge_across_tiles(cands: list[Candidate], tiles, min_iou: float = 0.5,
                       min_pixels: int = 10) -> list[Candidate]:
    """Stitch objects longer than a tile: join masks of neighbouring tiles that agree where both tiles see.

    A mask cut by an inner tile edge (``truncated``) is compared with every
    mask of another tile: inside the region both tiles cover, if the two
    masks' IoU is at least ``min_iou`` (and both hold ``min_pixels`` there),
    they are one object seen from two tiles, and they are replaced by their
    union (transitively, so a tube across three tiles becomes one instance).
    Masks that merely cross or touch in that region have a low IoU there and
    stay apart.  Candidates without a tile (``tile == -1``) pass unchanged.
    """
    n = len(cands)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    boxes = np.array([c.bbox for c in cands], dtype=np.int64).reshape(-1, 4)
    for i, a in enumerate(cands):
        if not a.truncated or a.tile < 0:
            continue
        ta = tiles[a.tile]
        y0, x0, y1, x1 = a.bbox
        hit = np.flatnonzero((boxes[:, 0] < y1) & (boxes[:, 2] > y0) & (boxes[:, 1] < x1) & (boxes[:, 3] > x0))
        for j in hit:
            b = cands[j]
            if b.tile < 0 or b.tile == a.tile or find(i) == find(j):
                continue
            tb = tiles[b.tile]
            box = (max(ta.y0, tb.y0), max(ta.x0, tb.x0), min(ta.y1, tb.y1), min(ta.x1, tb.x1))
            if box[0] >= box[2] or box[1] >= box[3]:
                continue
            ma, mb = _restricted(a, box), _restricted(b, box)
            na, nb = int(ma.sum()), int(mb.sum())
            if na < min_pixels or nb < min_pixels:
                continue
            inter = int(np.count_nonzero(ma & mb))
            if inter / (na + nb - inter) >= min_iou:
                parent[find(j)] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    out = []
    for members in groups.values():
        out.append(cands[members[0]] if len(members) == 1 else _union([cands[k] for k in members]))
    return out
