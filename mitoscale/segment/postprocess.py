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

__all__ = ["Candidate", "largest_component", "overlap", "suppress_overlaps", "STABILITY_OFFSET"]

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
                         (self.prompt[0] + dy, self.prompt[1] + dx), self.truncated)


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
