"""Write and print evaluation results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mitoscale.io.atomic import atomic_write_json, atomic_write_text

__all__ = ["format_summary", "write_evaluation"]


def format_summary(summary: dict, title: str = "") -> str:
    """One short block of text: counts and the four metrics."""
    s = summary
    lines = [title] if title else []
    lines += [
        f"images {s['n_images']}  predictions {s['n_pred']}  ground truth {s['n_gt']}",
        f"TP {s['tp']}  FP {s['fp']}  FN {s['fn']}",
        f"precision {s['precision']:.4f}  recall {s['recall']:.4f}  F1 {s['f1']:.4f}",
        f"mean Dice {s['mean_dice']:.4f}  non-zero Dice {s['nonzero_dice']:.4f}",
    ]
    if s.get("n_locations_pred_only") or s.get("n_locations_gt_only"):
        lines.append(f"note: {s.get('n_locations_pred_only', 0)} image(s) only in predictions (all FP), "
                     f"{s.get('n_locations_gt_only', 0)} only in ground truth (all FN)")
    return "\n".join(lines)


def write_evaluation(out: str | Path, per_image: pd.DataFrame, summary: dict, matches: pd.DataFrame,
                     fmt: str = "csv", meta: dict | None = None) -> list[Path]:
    """Write ``per_image``, ``matches`` (CSV or Parquet), ``summary.csv`` and ``summary.json``."""
    import io

    from mitoscale.io.atomic import atomic_write_bytes

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in (("per_image", per_image), ("matches", matches)):
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            atomic_write_text(path, df.to_csv(index=False))
        else:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    atomic_write_text(out / "summary.csv", pd.DataFrame([summary]).to_csv(index=False))
    atomic_write_json(out / "summary.json", dict(summary, **(meta or {})))
    return [*paths, out / "summary.csv", out / "summary.json"]
