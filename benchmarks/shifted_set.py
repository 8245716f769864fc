"""A shifted synthetic test set: images made with parameters outside the broad preset's training
ranges, with exact ground truth, and every method scored on them in one run (issue 16).

What is shifted, relative to ``configs/simulate_broad.yaml`` (the training preset):

- **optics**: NA 1.10 (training 1.2-1.49), specimen index 1.45 (training 1.33-1.40) and an
  immersion-index mismatch of +0.006 (training +-0.004), i.e. another Gibson-Lanni PSF, with
  stronger spherical aberration;
- **pixels**: rendered and stored at 65 nm (training: rendered at 60-110 nm, stored at 80 nm), so
  the segmenters' resampling to 80 nm is exercised;
- **one focal plane plus haze**: a single focal slice (training: 30% single plane, else max
  projections of up to 15), 60-100 far out-of-focus haze objects (training 0-60) and strong
  cell-body haze (1.5-2.0; training 0-1.5);
- **three conditions with known dot/rod mixes**, from the same physics: ``networks`` (long tubes
  and branched networks, few dots), ``intermediate``, and ``fragments`` (short fragments and
  dots).  The truth's dot share (analysis rule: area <= 1.28 µm²) orders them
  networks < intermediate < fragments.

Seeds 7001-7003 (one per condition) are never used for training (corpora use 1-99) or validation.

For every method (mitoscale models given with ``--model``, and the classical and Nellie
baselines), on the same images: precision, recall, mean and non-zero Dice at Dice >= 0.5 (the
evaluate stage's protocol), and the predicted dot share by count and by area against the truth's,
per condition; whether the conditions come out in the truth's order; the issue's targets
(precision >= 0.90, recall >= 0.85, mean Dice >= 0.75, |dot-share error| <= 0.05 by count and by
area in every condition, truth's order, better than both baselines on mean Dice, precision and
dot-share error).

Usage (from the repository root)::

    .venv/bin/python benchmarks/shifted_set.py                        # shipped model + baselines
    .venv/bin/python benchmarks/shifted_set.py --model new=shipped --model old=git:8e6885d \\
        --update BENCHMARKS.md
    .venv/bin/python benchmarks/shifted_set.py --preview docs/images/shifted_set.png   # look first

Outputs under ``--out`` (default benchmarks/shifted_set/): ``results.json`` and ``results.md``;
overlay PNGs (``shifted_<condition>.png``: truth and each method's outlines side by side) under
``--overlays`` (default docs/images); ``--update FILE`` replaces the block between
``<!-- shifted_set:begin -->`` and ``<!-- shifted_set:end -->`` in FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_fragmentation, compare_methods

BEGIN, END = "<!-- shifted_set:begin -->", "<!-- shifted_set:end -->"
BROAD = ROOT / "configs" / "simulate_broad.yaml"
PIXEL_NM = 65.0
#: optics, pixels, focal planes and haze: outside the broad preset's training ranges
SHIFT = [
    "broad.optics.numerical_aperture=[1.10, 1.10]",
    "broad.optics.ns=[1.45, 1.45]",
    "broad.optics.ni_mismatch=[0.006, 0.006]",
    "broad.optics.wavelength_nm=[600, 600]",
    "broad.optics.focal_slices=[1, 1]",
    "broad.optics.single_plane_probability=1.0",
    f"broad.optics.render_pixel_nm=[{PIXEL_NM:g}, {PIXEL_NM:g}]",
    "broad.optics.bank_size=1",
    "broad.geometry.haze_objects=[60, 100]",
    "broad.camera.cell_haze=[1.5, 2.0]",
    f"corpus.pixel_size_nm={PIXEL_NM:g}",
]
#: condition -> (seed, geometry overrides): the dot/rod mix
CONDITIONS = {
    "networks": (7001, [
        "broad.geometry.tube_length={distribution: lognormal, median_nm: 4500, sigma: 0.6, "
        "range_nm: [1500, 14000]}",
        "broad.geometry.dot_fraction=[0.02, 0.05]",
        "broad.geometry.network_fraction=[0.35, 0.5]",
        "broad.geometry.objects_per_image=[40, 120]",
    ]),
    "intermediate": (7002, [
        "broad.geometry.tube_length={distribution: lognormal, median_nm: 1800, sigma: 0.6, "
        "range_nm: [600, 8000]}",
        "broad.geometry.dot_fraction=[0.2, 0.3]",
        "broad.geometry.network_fraction=[0.05, 0.1]",
        "broad.geometry.objects_per_image=[80, 200]",
    ]),
    "fragments": (7003, [
        "broad.geometry.tube_length={distribution: lognormal, median_nm: 900, sigma: 0.4, "
        "range_nm: [400, 2500]}",
        "broad.geometry.dot_fraction=[0.55, 0.7]",
        "broad.geometry.network_fraction=[0.0, 0.0]",
        "broad.geometry.objects_per_image=[120, 300]",
    ]),
}
TARGETS = {"precision": 0.90, "recall": 0.85, "mean_dice": 0.75, "dot_share_error": 0.05}


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def condition_config(condition: str):
    from mitoscale.simulate.config import load_simulate_config

    return load_simulate_config(str(BROAD), overrides=SHIFT + CONDITIONS[condition][1])


def shifted_images(condition: str, n_images: int, shape: int):
    """Yield ``(image, ground-truth table)`` of one condition (its own seed, 65 nm pixels)."""
    from mitoscale.simulate.render import simulate_image

    cfg = condition_config(condition)
    seed = CONDITIONS[condition][0]
    for i in range(n_images):
        s = simulate_image(cfg, seed, i, pixel_size_nm=PIXEL_NM, shape=(shape, shape))
        table = s.table.assign(image_id=f"{condition}_{i:02d}")
        yield s.image.astype(np.float32), table


def dot_shares(table: pd.DataFrame, dot_max_area_um2: float) -> tuple[float, float]:
    """Dot share by count and by area (the analysis stage's rule, ``classify``)."""
    from mitoscale.analyse.morphology import classify

    if not len(table):
        return float("nan"), float("nan")
    area = table["area_um2"].to_numpy(float)
    dot = classify(area, dot_max_area_um2) == "dot"
    return float(dot.mean()), float(area[dot].sum() / area.sum())


def score(pred: pd.DataFrame, gt: pd.DataFrame, dot_max: float) -> dict:
    from mitoscale.evaluate.metrics import evaluate_tables

    _, s = evaluate_tables(pred, gt)
    count, area = dot_shares(pred, dot_max)
    return {k: float(s[k]) for k in ("precision", "recall", "mean_dice", "nonzero_dice")} | {
        "n_pred": int(s["n_pred"]), "n_gt": int(s["n_gt"]), "dot_share_count": count, "dot_share_area": area}


def targets(res: dict) -> dict:
    """PASS/FAIL of issue 16's shifted-set targets for each model."""
    conds, methods = res["conditions"], res["methods"]
    truth_order = sorted(conds, key=lambda c: res["truth"][c]["dot_share_count"])
    baselines = [m for m, i in methods.items() if i["kind"] == "baseline"]

    def err(m):
        return max(max(abs(conds[c][m]["dot_share_count"] - res["truth"][c]["dot_share_count"]),
                       abs(conds[c][m]["dot_share_area"] - res["truth"][c]["dot_share_area"])) for c in conds)

    out = {}
    for m in (m for m, i in methods.items() if i["kind"] == "model"):
        pooled = res["pooled"][m]
        order = sorted(conds, key=lambda c: conds[c][m]["dot_share_count"])
        t = {f"precision>={TARGETS['precision']}": pooled["precision"] >= TARGETS["precision"],
             f"recall>={TARGETS['recall']}": pooled["recall"] >= TARGETS["recall"],
             f"mean Dice>={TARGETS['mean_dice']}": pooled["mean_dice"] >= TARGETS["mean_dice"],
             f"dot share within {TARGETS['dot_share_error']} (count and area, every condition)":
                 err(m) <= TARGETS["dot_share_error"],
             "conditions in the truth's order": order == truth_order}
        for b in baselines:
            t[f"better than {b} (mean Dice, precision, dot-share error)"] = bool(
                pooled["mean_dice"] > res["pooled"][b]["mean_dice"]
                and pooled["precision"] > res["pooled"][b]["precision"] and err(m) < err(b))
        out[m] = {k: bool(v) for k, v in t.items()}
    res["max_dot_share_error"] = {m: err(m) for m in methods}
    return out


def to_markdown(res: dict) -> str:
    conds = list(res["conditions"])
    lines = [BEGIN, f"Shifted synthetic set (`benchmarks/shifted_set.py`): {res['n_images']} images of "
             f"{res['shape']}² px at {PIXEL_NM:g} nm per condition, seeds "
             f"{', '.join(str(CONDITIONS[c][0]) for c in conds)}; optics NA 1.10, ns 1.45, ni mismatch "
             "+0.006, one focal plane, strong haze (all outside the broad preset's training ranges). "
             f"{res['date']}; {res['machine']['cpus']} cores, torch threads {res['threads']}; load "
             f"{res['load_before']} before, {res['load_after']} after.", "",
             f"Command: `{res['command']}`", ""]
    for label, i in res["methods"].items():
        lines.append(f"- `{label}`: {i['source']}" + (f" ({i['spec']})" if i.get("spec") else ""))
    lines += ["", "Pooled over the three conditions (match at Dice >= 0.5):", "",
              "| method | precision | recall | mean Dice | non-zero Dice | predicted | truth | "
              "max dot-share error | s/image |", "|---|---|---|---|---|---|---|---|---|"]
    for m, p in res["pooled"].items():
        lines.append(f"| {m} | {p['precision']:.3f} | {p['recall']:.3f} | {p['mean_dice']:.3f} | "
                     f"{p['nonzero_dice']:.3f} | {p['n_pred']} | {p['n_gt']} | "
                     f"{res['max_dot_share_error'][m]:.3f} | {p['s_per_image']:.2f} |")
    lines += ["", "Dot share by count / by area, per condition (truth first; order = the conditions "
              "sorted by dot share by count):", "",
              "| method | " + " | ".join(conds) + " | order | mean Dice per condition |",
              "|---|" + "---|" * (len(conds) + 2)]
    tr = res["truth"]
    lines.append("| truth | " + " | ".join(f"{tr[c]['dot_share_count']:.2f} / {tr[c]['dot_share_area']:.2f}"
                                             for c in conds)
                 + f" | {' < '.join(sorted(conds, key=lambda c: tr[c]['dot_share_count']))} | - |")
    for m in res["methods"]:
        per = {c: res["conditions"][c][m] for c in conds}
        order = " < ".join(sorted(conds, key=lambda c: per[c]["dot_share_count"]))
        lines.append(f"| {m} | " + " | ".join(f"{per[c]['dot_share_count']:.2f} / {per[c]['dot_share_area']:.2f}"
                                              for c in conds)
                     + f" | {order} | " + ", ".join(f"{per[c]['mean_dice']:.2f}" for c in conds) + " |")
    lines += ["", "Targets (issue 16):", ""]
    for m, t in res["targets"].items():
        lines.append(f"- `{m}`: " + "; ".join(f"{k} {'PASS' if v else 'FAIL'}" for k, v in t.items()))
    lines.append(END)
    return "\n".join(lines)


def run(args) -> dict:
    import torch
    from real_fragmentation import make_methods, resolve_models, update_block

    from mitoscale.analyse.config import DOT_MAX_AREA_UM2
    from mitoscale.evaluate.overlay import write_method_overlays
    from mitoscale.io.tables import LOCATION_KEYS

    torch.set_num_threads(args.threads)
    px = PIXEL_NM / 1000.0
    load_before = _load()
    t0 = time.perf_counter()
    data = {c: list(shifted_images(c, args.n_images, args.shape)) for c in args.conditions}
    print(f"simulated {sum(map(len, data.values()))} images in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        models = resolve_models(args, Path(tmp))
        methods = make_methods(args, models)
        info = make_methods.info
        for seg in methods.values():
            seg(data[args.conditions[0]][0][0][:256, :256], px, dict(image_id="warmup"))
        preds = {c: {m: [] for m in methods} for c in data}
        secs = {m: [] for m in methods}
        for c, items in data.items():
            for k, (image, gt) in enumerate(items):
                keys = {key: gt[key].iloc[0] for key in LOCATION_KEYS}
                tables = {"truth": gt}
                for m, seg in methods.items():  # interleaved: load changes hit all methods alike
                    t1 = time.perf_counter()
                    table = seg(image, px, keys)
                    secs[m].append(time.perf_counter() - t1)
                    preds[c][m].append(table)
                    tables[m] = table
                    print(f"{c}[{k}] {m}: {len(table)} instances (truth {len(gt)}), {secs[m][-1]:.2f} s",
                          file=sys.stderr, flush=True)
                if args.overlays and k == 0:
                    write_method_overlays(image, tables, Path(args.overlays) / f"shifted_{c}.png",
                                          pixel_size_um=px, crop=args.overlay_crop, title=f"shifted set: {c}")
    gts = {c: pd.concat([g for _, g in items], ignore_index=True) for c, items in data.items()}
    res = {"date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
           "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()},
           "threads": args.threads, "load_before": load_before, "load_after": _load(),
           "command": "python benchmarks/shifted_set.py " + " ".join(args.argv),
           "n_images": args.n_images, "shape": args.shape, "shift": SHIFT,
           "condition_overrides": {c: CONDITIONS[c][1] for c in data}, "methods": info,
           "truth": {}, "conditions": {}, "pooled": {}}
    for c, gt in gts.items():
        count, area = dot_shares(gt, DOT_MAX_AREA_UM2)
        res["truth"][c] = {"dot_share_count": count, "dot_share_area": area, "n": len(gt)}
        res["conditions"][c] = {m: score(pd.concat(p, ignore_index=True), gt, DOT_MAX_AREA_UM2)
                                for m, p in preds[c].items()}
    all_gt = pd.concat(gts.values(), ignore_index=True)
    for m in methods:
        all_pred = pd.concat([t for c in preds for t in preds[c][m]], ignore_index=True)
        res["pooled"][m] = score(all_pred, all_gt, DOT_MAX_AREA_UM2) | {"s_per_image": float(np.mean(secs[m]))}
    res["targets"] = targets(res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    block = to_markdown(res)
    (out / "results.md").write_text(block + "\n")
    if args.update:
        update_block(Path(args.update), block, heading="## Shifted synthetic set")
    print(block)
    return res


def preview(args) -> list[Path]:
    """One image per condition with the truth's outlines (look before measuring):
    ``PREVIEW_<condition>.png`` for ``--preview PREVIEW.png``."""
    from mitoscale.evaluate.overlay import write_method_overlays

    base = Path(args.preview)
    paths = []
    for c in args.conditions:
        image, gt = next(shifted_images(c, 1, args.shape))
        paths.append(write_method_overlays(image, {"truth": gt}, base.with_name(f"{base.stem}_{c}.png"),
                                           pixel_size_um=PIXEL_NM / 1000.0, crop=args.overlay_crop,
                                           title=f"shifted set: {c}"))
        print(paths[-1])
    return paths


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", metavar="LABEL=PATH",
                   help="model to score (repeatable): PATH, 'shipped' or git:REV[:PATH]; default mitoscale=shipped")
    p.add_argument("--baselines", default="classical,nellie", help="comma-separated baselines ('' for none)")
    p.add_argument("--segment-config", default=None, help="segment YAML for the models (default: defaults)")
    p.add_argument("--conditions", default=",".join(CONDITIONS), help="comma-separated subset of conditions")
    p.add_argument("--n-images", type=int, default=4, help="images per condition")
    p.add_argument("--shape", type=int, default=630, help="image edge in px (630 at 65 nm ~ 512 at 80 nm)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "shifted_set"))
    p.add_argument("--overlays", default=str(ROOT / "docs" / "images"), help="overlay PNG folder ('' for none)")
    p.add_argument("--overlay-crop", type=int, default=384, help="edge of the overlays' crop (px)")
    p.add_argument("--update", default="", help="Markdown file whose shifted_set block is replaced")
    p.add_argument("--preview", default="", help="only write a montage of one image per condition here")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.conditions = [c for c in args.conditions.split(",") if c]
    bad = [c for c in args.conditions if c not in CONDITIONS]
    if bad:
        p.error(f"unknown condition(s): {', '.join(bad)} (known: {', '.join(CONDITIONS)})")
    return args


def main(argv=None) -> int:
    from mitoscale.errors import MitoscaleError

    args = parse_args(argv)
    try:
        preview(args) if args.preview else run(args)
    except MitoscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
