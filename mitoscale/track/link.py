"""Tracking kernel: one timelapse's instance table -> tracks, fission and fusion.

Linking, gap closing, splitting (fission) and merging (fusion) are solved by
laptrack's LAP tracker (Jaqaman et al. 2008); this module only defines the
costs, from mask overlap and centroid distance in µm, and turns laptrack's
tree into mitoscale's columns and event table.

Costs (``d``: centroid distance in µm after drift correction, ``D``:
``max_distance_um``, ``w``: ``overlap_weight``)
- link t -> t+1: ``(d / D)^2 + w (1 - IoU)``, only where ``d <= D``;
- gap closing over ``k`` frames: the same with ``D sqrt(k)`` (diffusive motion);
- fission parent -> child, fusion parent -> child: ``(d / De)^2 + w (1 - cover)``,
  where ``cover`` is the fraction of the smaller side (the fission child, the
  fusion parent) inside the other mask, only where ``cover >= event_min_cover``
  and ``d <= De`` (``event_max_distance_um``).

Track semantics (those of the Cell Tracking Challenge and laptrack): a track
is a run of one object without events; at a fission the parent track ends and
two child tracks start (``parent_track_ids = [parent]``); at a fusion the two
parent tracks end and one child track starts (``parent_track_ids = [a, b]``).
A track that skips missing frames (gap closing) keeps its id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mitoscale.errors import InputError
from mitoscale.io.tables import decode_mask
from mitoscale.track.config import TrackConfig

__all__ = ["TrackResult", "track_timelapse", "estimate_drift"]


@dataclass
class TrackResult:
    """Rows of the input with ``track_id``/``parent_track_ids``, and the event table."""

    instances: pd.DataFrame
    events: pd.DataFrame
    drift_px: np.ndarray  # (n_frames, 2) cumulative (dy, dx) of each frame against the first


EVENT_COLUMNS = ["event", "t", "parent_track_ids", "child_track_ids", "y", "x", "y_um", "x_um"]


def estimate_drift(df: pd.DataFrame, frames: list[int], shape: tuple[int, int],
                   max_step_px: float = np.inf) -> np.ndarray:
    """Cumulative stage drift (dy, dx) in pixels of each frame against the first.

    Phase correlation (``skimage.registration.phase_cross_correlation``, 0.1 px)
    of the union of the masks of consecutive frames.  A step is kept only if it
    is at most ``max_step_px`` long and overlaps the two frames' masks at least
    as well as no shift does (so frames that differ in content, e.g. objects
    missing, cannot produce a spurious jump); otherwise, and for frames
    without instances, the step is 0.
    """
    from skimage.registration import phase_cross_correlation

    def union(t):
        img = np.zeros(shape, dtype=np.float32)
        for r in df[df["t"] == t].itertuples(index=False):
            img[r.bbox_y0:r.bbox_y1, r.bbox_x0:r.bbox_x1] += decode_mask(
                (r.bbox_y0, r.bbox_x0, r.bbox_y1, r.bbox_x1), r.mask)
        return img

    drift = np.zeros((len(frames), 2))
    prev = union(frames[0]) if frames else None
    for k in range(1, len(frames)):
        cur = union(frames[k])
        step = np.zeros(2)
        if prev.any() and cur.any():
            shift, _, _ = phase_cross_correlation(prev, cur, upsample_factor=10, normalization=None)
            cand = -np.asarray(shift, dtype=float)  # cur is prev moved by -shift
            back = np.roll(cur, tuple(-np.rint(cand).astype(int)), axis=(0, 1))
            if np.hypot(*cand) <= max_step_px and (prev * back).sum() >= (prev * cur).sum():
                step = cand
        drift[k] = drift[k - 1] + step
        prev = cur
    return drift


class _Costs:
    """Overlap-and-distance costs of every candidate pair, for laptrack's callable metrics.

    Candidates (pairs within reach, found with a KD-tree per pair of frames) are
    costed once up front; the metrics laptrack calls per pair are dictionary
    look-ups.  Rows are sorted by time, so the earlier row of a pair has the
    smaller index.
    """

    def __init__(self, df: pd.DataFrame, frame_of: np.ndarray, drift: np.ndarray, yx_um: np.ndarray,
                 cfg: TrackConfig):
        from scipy.spatial import cKDTree

        self.frame = frame_of
        self.box = df[["bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"]].to_numpy(np.int64)
        self.masks = [decode_mask(b, m) for b, m in zip(self.box, df["mask"])]
        self.area = df["area_px"].to_numpy(np.float64)
        self.drift = np.rint(drift).astype(np.int64)
        self.cfg = cfg
        self.costs: dict[str, dict[tuple[int, int], float]] = {"link": {}, "split": {}, "merge": {}}
        n_frames = int(frame_of.max()) + 1 if len(frame_of) else 0
        rows = [np.flatnonzero(frame_of == f) for f in range(n_frames)]
        trees = [cKDTree(yx_um[r]) if len(r) else None for r in rows]
        for f in range(n_frames):
            for k in range(1, cfg.gap_frames + 2):
                g = f + k
                if g >= n_frames or trees[f] is None or trees[g] is None:
                    continue
                reach = max(cfg.max_distance_um * np.sqrt(k), cfg.event_max_distance_um if k == 1 else 0)
                for i, near in enumerate(trees[f].query_ball_tree(trees[g], reach)):
                    for j in near:
                        self._cost_pair(int(rows[f][i]), int(rows[g][j]), k, yx_um)

    def _cost_pair(self, a: int, b: int, k: int, yx_um: np.ndarray) -> None:
        cfg = self.cfg
        d = float(np.hypot(*(yx_um[a] - yx_um[b])))
        inter = self.intersection(a, b)
        limit = cfg.max_distance_um * np.sqrt(k)
        if d <= limit:
            iou = inter / (self.area[a] + self.area[b] - inter)
            self.costs["link"][(a, b)] = (d / limit) ** 2 + cfg.overlap_weight * (1.0 - iou)
        if k == 1 and d <= cfg.event_max_distance_um:
            for kind, small in (("split", b), ("merge", a)):
                cover = inter / self.area[small]
                if cover >= cfg.event_min_cover:
                    self.costs[kind][(a, b)] = ((d / cfg.event_max_distance_um) ** 2
                                                + cfg.overlap_weight * (1.0 - cover))

    def intersection(self, a: int, b: int) -> float:
        """Pixels of ``a``'s mask and ``b``'s, ``b`` moved back by the drift between their frames."""
        sy, sx = self.drift[self.frame[b]] - self.drift[self.frame[a]]
        ay0, ax0, ay1, ax1 = self.box[a]
        by0, bx0, by1, bx1 = self.box[b] - (sy, sx, sy, sx)
        y0, y1, x0, x1 = max(ay0, by0), min(ay1, by1), max(ax0, bx0), min(ax1, bx1)
        if y0 >= y1 or x0 >= x1:
            return 0.0
        ma = self.masks[a][y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0]
        mb = self.masks[b][y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        return float(np.count_nonzero(ma & mb))

    def _get(self, kind: str, u, v) -> float:
        a, b = int(u[0]), int(v[0])
        return self.costs[kind].get((a, b) if a < b else (b, a), np.inf)

    def link(self, u, v) -> float:
        return self._get("link", u, v)

    def split(self, u, v) -> float:  # parent (earlier) -> fission child (later, the smaller)
        return self._get("split", u, v)

    def merge(self, u, v) -> float:  # fusion parent (earlier, the smaller) -> child (later)
        return self._get("merge", u, v)


def _pixel_size(df: pd.DataFrame) -> float:
    sizes = np.unique(df["pixel_size_um"].to_numpy())
    if sizes.size != 1 and not np.allclose(sizes, sizes[0], rtol=1e-6):
        raise InputError(f"frames with different pixel sizes in one timelapse: {sorted(sizes.tolist())} µm")
    return float(sizes[0])


def track_timelapse(df: pd.DataFrame, cfg: TrackConfig | None = None,
                    frames: list[int] | None = None) -> TrackResult:
    """Track the instances of one timelapse (one image_id, well, field and z).

    Parameters
    ----------
    df : pandas.DataFrame
        Instance table rows of every frame of the timelapse.
    cfg : TrackConfig
    frames : list of int, optional
        Every time point of the timelapse, those without instances included
        (default: the ``t`` values of ``df``).

    Returns
    -------
    TrackResult
        ``instances``: ``df`` sorted by (t, instance_id) with ``track_id``
        (int64, 1-based) and ``parent_track_ids`` (list of int); ``events``:
        one row per fission/fusion (:data:`EVENT_COLUMNS`).
    """
    from laptrack import LapTrack

    cfg = cfg or TrackConfig()
    df = df.sort_values(["t", "instance_id"]).reset_index(drop=True)
    frames = sorted(set(frames if frames is not None else []) | set(df["t"].astype(int)))
    if len(df) == 0:
        out = df.assign(track_id=pd.Series(dtype="int64"), parent_track_ids=pd.Series(dtype=object))
        return TrackResult(out, pd.DataFrame(columns=EVENT_COLUMNS), np.zeros((len(frames), 2)))
    px = _pixel_size(df)
    shape = (int(df["image_height"].max()), int(df["image_width"].max()))
    index_of = {t: k for k, t in enumerate(frames)}
    frame_of = df["t"].map(index_of).to_numpy(np.int64)
    drift = (estimate_drift(df, frames, shape, cfg.max_distance_um / px)
             if cfg.drift_correction and len(frames) > 1 else np.zeros((len(frames), 2)))
    yx_um = np.c_[df["centroid_y"].to_numpy() - drift[frame_of, 0],
                  df["centroid_x"].to_numpy() - drift[frame_of, 1]] * px
    costs = _Costs(df, frame_of, drift, yx_um, cfg)
    cut = 1.0 + cfg.overlap_weight + 1e-9
    lt = LapTrack(
        metric=costs.link, cutoff=cut,
        gap_closing_metric=costs.link, gap_closing_cutoff=cut if cfg.gap_frames else False,
        gap_closing_max_frame_count=cfg.gap_frames + 1,
        splitting_metric=costs.split, splitting_cutoff=cut if cfg.events else False,
        merging_metric=costs.merge, merging_cutoff=cut if cfg.events else False,
    )
    rows = [np.flatnonzero(frame_of == f).astype(np.float64)[:, None] for f in range(len(frames))]
    tree = lt.predict([r if len(r) else np.zeros((0, 1)) for r in rows])
    track_id, parents, splits, merges = _tree_to_tracks(tree, rows, len(df))
    out = df.copy()
    out["track_id"] = track_id
    out["parent_track_ids"] = [sorted(parents.get(int(t), [])) for t in track_id]
    events = _events(out, splits, merges, px)
    return TrackResult(out, events, drift)


def _tree_to_tracks(tree, rows: list[np.ndarray], n: int):
    """laptrack's (frame, index) DiGraph -> 1-based track id per row, parents, split/merge pairs.

    A track starts at a node without exactly one predecessor, or whose
    predecessor has several successors (a fission); it continues while the
    node has exactly one successor with exactly one predecessor.  (laptrack's
    own ``tree_to_dataframe`` does the same through pandas row assignments,
    about 1 s per 300-instance frame under pandas 3.)
    """
    row_of = {node: int(rows[node[0]][node[1], 0]) for node in tree.nodes}
    track_id = np.zeros(n, dtype=np.int64)
    of_node: dict = {}
    parents: dict[int, list[int]] = {}
    splits, merges = [], []
    next_id = 1
    for node in sorted(tree.nodes):
        pred = list(tree.predecessors(node))
        if len(pred) == 1 and tree.out_degree(pred[0]) == 1:
            of_node[node] = of_node[pred[0]]
        else:
            of_node[node] = next_id
            next_id += 1
            ps = sorted({of_node[p] for p in pred})
            if ps:
                parents[of_node[node]] = ps
                pairs = [(p, of_node[node]) for p in ps]
                (merges if len(pred) > 1 else splits).extend(pairs)
        track_id[row_of[node]] = of_node[node]
    cols = ["parent_track_id", "child_track_id"]
    return track_id, parents, pd.DataFrame(splits, columns=cols), pd.DataFrame(merges, columns=cols)


def _events(df: pd.DataFrame, split_df: pd.DataFrame, merge_df: pd.DataFrame, px: float) -> pd.DataFrame:
    """Fission: parent's last position; fusion: child's first position (pixels and µm)."""
    first = df.sort_values("t").groupby("track_id").head(1).set_index("track_id")
    last = df.sort_values("t").groupby("track_id").tail(1).set_index("track_id")
    rows = []
    for kind, table, key in (("fission", split_df, "parent_track_id"), ("fusion", merge_df, "child_track_id")):
        if table is None or len(table) == 0:
            continue
        for k, grp in table.groupby(key):
            ps = sorted({int(v) for v in grp["parent_track_id"]})
            cs = sorted({int(v) for v in grp["child_track_id"]})
            at = last.loc[ps[0]] if kind == "fission" else first.loc[cs[0]]
            t = int(min(first.loc[c, "t"] for c in cs))
            rows.append([kind, t, ps, cs, float(at["centroid_y"]), float(at["centroid_x"]),
                         float(at["centroid_y"]) * px, float(at["centroid_x"]) * px])
    return pd.DataFrame(rows, columns=EVENT_COLUMNS).sort_values(["t", "event"]).reset_index(drop=True) \
        if rows else pd.DataFrame(columns=EVENT_COLUMNS)
