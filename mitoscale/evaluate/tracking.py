"""Tracking metrics, computed by the field's libraries (not re-implemented here).

- motmetrics (CLEAR-MOT and identity metrics): MOTA, IDF1, ID switches, per
  frame matching of ground-truth and predicted instances by centroid distance
  in µm (``match_um``), then the identities of the matched pairs over time.
- traccuracy (Cell Tracking Challenge tools): division precision / recall / F1
  for fission (``DivisionMetrics`` with a one-frame buffer, ``PointMatcher``
  at ``match_um``).  traccuracy scores divisions only, so fusion is scored as
  the division of the time-reversed graphs: a fusion forward in time is a
  division backward in time.  traccuracy refuses graphs with merges, so in
  each direction the merges are cut (the merged node starts a new lineage),
  which leaves the divisions, the only events scored in that direction, intact.

Both tables need ``track_id`` and ``parent_track_ids`` (the columns
``mitoscale track`` writes and the synthetic movies' ground truth carries).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitoscale.errors import InputError

__all__ = ["tracking_metrics"]

_KEYS = ["image_id", "well", "field", "z"]


def _check(df: pd.DataFrame, name: str) -> None:
    missing = [c for c in ("track_id", "parent_track_ids") if c not in df]
    if missing:
        raise InputError(f"{name}: not a tracked instance table (missing {', '.join(missing)}); "
                         f"run mitoscale track first")


def _mot(gt: pd.DataFrame, pred: pd.DataFrame, match_um: float) -> dict:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    for t in sorted(set(gt["t"]) | set(pred["t"])):
        g, p = gt[gt["t"] == t], pred[pred["t"] == t]
        dist = mm.distances.norm2squared_matrix(g[["y_um", "x_um"]].to_numpy(),
                                                p[["y_um", "x_um"]].to_numpy(), max_d2=match_um**2)
        acc.update(g["track_id"].tolist(), p["track_id"].tolist(), dist, frameid=int(t))
    summary = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches", "precision",
                                                       "recall"], name="all")
    row = summary.iloc[0]
    return {"idf1": float(row["idf1"]), "mota": float(row["mota"]), "id_switches": int(row["num_switches"]),
            "detection_precision": float(row["precision"]), "detection_recall": float(row["recall"])}


def _graph(df: pd.DataFrame, reverse: bool):
    """traccuracy TrackingGraph: a node per row, edges along tracks and from parents to children."""
    import networkx as nx
    from traccuracy import TrackingGraph

    t_max = int(df["t"].max()) if len(df) else 0
    g = nx.DiGraph()
    nodes = np.arange(1, len(df) + 1)
    ts = df["t"].to_numpy().astype(int)
    for n, t, y, x in zip(nodes, ts, df["y_um"], df["x_um"]):
        g.add_node(int(n), t=int(t_max - t if reverse else t), y=float(y), x=float(x))
    order = df.assign(_node=nodes).sort_values(["track_id", "t"])
    first, last = {}, {}
    for tid, grp in order.groupby("track_id"):
        ns = grp["_node"].tolist()
        first[tid], last[tid] = ns[0], ns[-1]
        g.add_edges_from(zip(ns[:-1], ns[1:]))
    for tid, parents in order.groupby("track_id")["parent_track_ids"].first().items():
        for p in parents:
            if p in last:
                g.add_edge(last[p], first[tid])
    if reverse:
        g = g.reverse(copy=True)
    # traccuracy's division matching walks single-parent chains and refuses graphs with merges:
    # a merge (a fusion forward, a fission backward) becomes the start of a new lineage
    g.remove_edges_from([(p, n) for n in list(g.nodes) if g.in_degree(n) > 1 for p in list(g.predecessors(n))])
    return TrackingGraph(g, location_keys=("y", "x"), label_key=None)


def _division_f1(gt: pd.DataFrame, pred: pd.DataFrame, match_um: float, reverse: bool) -> dict:
    from traccuracy import run_metrics
    from traccuracy.matchers import PointMatcher
    from traccuracy.metrics import DivisionMetrics

    results, _ = run_metrics(_graph(gt, reverse), _graph(pred, reverse), PointMatcher(threshold=match_um),
                             [DivisionMetrics(max_frame_buffer=1)])
    res = results[0]["results"]
    frame = res.get("Frame Buffer 1", res.get(1, next(iter(res.values()))))
    return {"precision": float(frame["Division Precision"]), "recall": float(frame["Division Recall"]),
            "f1": float(frame["Division F1"]), "true": int(frame["Total GT Divisions"]),
            "predicted": int(frame["Total Predicted Divisions"]),
            "tp": int(frame["True Positive Divisions"])}


def tracking_metrics(gt: pd.DataFrame, pred: pd.DataFrame, match_um: float = 0.5) -> dict:
    """IDF1, MOTA, ID switches and fission / fusion precision, recall and F1.

    Parameters
    ----------
    gt, pred : pandas.DataFrame
        Tracked instance tables (ground truth and prediction); each
        timelapse (image_id, well, field, z) is scored on its own and the
        counts pooled by the libraries per timelapse.
    match_um : float
        Largest centroid distance (µm) at which a predicted instance can
        match a true one.

    Returns
    -------
    dict
        ``{"timelapses": {name: {...}}, "mean": {...}}`` with ``idf1``,
        ``mota``, ``id_switches``, ``detection_precision/recall``,
        ``fission`` and ``fusion`` (each ``precision/recall/f1/true/predicted``).
    """
    _check(gt, "ground truth")
    _check(pred, "prediction")
    out = {}
    for df in (gt, pred):
        df["y_um"] = df["centroid_y"] * df["pixel_size_um"]
        df["x_um"] = df["centroid_x"] * df["pixel_size_um"]
    for key, g in gt.groupby(_KEYS, sort=True):
        p = pred.merge(pd.DataFrame([key], columns=_KEYS), on=_KEYS)
        name = "/".join(str(k) for k in key if str(k) != "")
        res = _mot(g, p, match_um)
        res["fission"] = _division_f1(g, p, match_um, reverse=False)
        res["fusion"] = _division_f1(g, p, match_um, reverse=True)
        out[name] = res
    flat = list(out.values())
    mean = {k: float(np.mean([r[k] for r in flat])) for k in ("idf1", "mota", "id_switches")}
    for ev in ("fission", "fusion"):  # pooled over timelapses: 2 TP / (true + predicted)
        tp, true, pred_n = (sum(r[ev][k] for r in flat) for k in ("tp", "true", "predicted"))
        mean[f"{ev}_f1"] = 2 * tp / (true + pred_n) if true + pred_n else float("nan")
        mean[f"{ev}_true"] = true
    return {"timelapses": out, "mean": mean}
