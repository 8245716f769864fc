"""Compare mitoscale's model with the classical and Nellie baselines on held-out synthetic data.

The held-out split uses a seed the training corpus never uses and a
different pixel size (65 nm instead of 80 nm), so our model's resampling is
exercised.  Each image covers the same physical field as a training image
(512 px at 80 nm = 40.96 µm -> 630 px at 65 nm).  Every method runs
in-process on the same images; seconds per image time the segmentation call
alone (image in memory -> instance table), on the threads given.

Usage::

    .venv/bin/python benchmarks/compare_methods.py                      # all methods, 16 images
    .venv/bin/python benchmarks/compare_methods.py --methods classical --n-images 4
    .venv/bin/python benchmarks/compare_methods.py --model path/to/ckpt.safetensors

The result table goes to stdout, to ``--json`` if given, and replaces the
block between ``<!-- compare_methods:begin -->`` and
``<!-- compare_methods:end -->`` in ``--results`` (default
benchmarks/RESULTS_evaluate.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

BEGIN, END = "<!-- compare_methods:begin -->", "<!-- compare_methods:end -->"
ALL_METHODS = ("mitoscale", "classical", "nellie")


def held_out_split(n_images: int, seed: int, pixel_size_nm: float, shape: int, sim_config: str | None):
    """Yield ``(image, gt_table)`` for the held-out synthetic images."""
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    cfg = load_simulate_config(sim_config)
    for i in range(n_images):
        s = simulate_image(cfg, seed, i, pixel_size_nm=pixel_size_nm, shape=(shape, shape))
        yield s.image, s.table


def make_segmenter(method: str, args):
    """A callable ``(image, pixel_size_um, keys) -> instance table`` for ``method``, or a reason string."""
    if method == "mitoscale":
        try:
            from mitoscale.config import load_config
            from mitoscale.model import load_model
            from mitoscale.segment.config import SegmentConfig
            from mitoscale.segment.frame import segment_frame
        except ImportError as exc:
            return f"segment stage not importable ({exc})"
        from mitoscale.errors import MitoscaleError

        try:
            model, spec, meta = load_model(args.model)
        except MitoscaleError as exc:
            return f"model not available ({exc})"
        model.eval()
        cfg = load_config(args.segment_config, SegmentConfig) if args.segment_config else SegmentConfig()
        make_segmenter.info["mitoscale"] = f"{spec.name} ({args.model or 'shipped default'})"

        def run(image, px, keys):
            import torch

            with torch.inference_mode():
                return segment_frame(image, px, model, spec, cfg, keys=keys)
        return run

    from mitoscale.evaluate.baselines import nellie_available
    from mitoscale.evaluate.baselines.common import labels_to_table
    from mitoscale.evaluate.baselines.run import load_baseline_config, segment_frame_with

    if method == "nellie" and not nellie_available():
        return "nellie extra not installed (pip install 'mitoscale[nellie]')"
    bcfg = load_baseline_config(method)

    def run(image, px, keys):
        labels = segment_frame_with(method, image, px, bcfg)
        return labels_to_table(labels, image=image, pixel_size_um=px, **keys)
    return run


make_segmenter.info = {}


def compare(args) -> pd.DataFrame:
    from mitoscale.evaluate.metrics import evaluate_tables
    from mitoscale.io.tables import LOCATION_KEYS

    px_um = args.pixel_size_nm / 1000.0
    t0 = time.perf_counter()
    data = list(held_out_split(args.n_images, args.seed, args.pixel_size_nm, args.shape, args.sim_config))
    print(f"simulated {len(data)} held-out images in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    gt = pd.concat([t for _, t in data], ignore_index=True)
    rows = []
    for method in args.methods:
        seg = make_segmenter(method, args)
        if isinstance(seg, str):
            print(f"{method}: skipped, {seg}", file=sys.stderr)
            rows.append(dict(method=method, note=seg))
            continue
        preds, secs = [], []
        seg(data[0][0], px_um, dict(image_id="warmup"))  # first call pays imports / model warm-up
        for image, table in data:
            keys = {k: table[k].iloc[0] for k in LOCATION_KEYS}
            t1 = time.perf_counter()
            preds.append(seg(image, px_um, keys))
            secs.append(time.perf_counter() - t1)
        pred = pd.concat(preds, ignore_index=True)
        _, s = evaluate_tables(pred, gt)
        rows.append(dict(method=method, precision=s["precision"], recall=s["recall"], mean_dice=s["mean_dice"],
                         nonzero_dice=s["nonzero_dice"], n_pred=s["n_pred"], n_gt=s["n_gt"], tp=s["tp"],
                         s_per_image=float(np.mean(secs)), note=make_segmenter.info.get(method, "")))
        print(f"{method}: done, {np.mean(secs):.2f} s/image", file=sys.stderr)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, args) -> str:
    lines = [
        BEGIN,
        f"Held-out synthetic split: {args.n_images} images, seed {args.seed}, {args.shape}x{args.shape} px at "
        f"{args.pixel_size_nm:g} nm (the training corpus: 80 nm).  Protocol: predictions < 10 px dropped, "
        "match at Dice >= 0.5, greedy by descending Dice.  "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `.venv/bin/python benchmarks/compare_methods.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        "| method | precision | recall | mean Dice | non-zero Dice | predicted | ground truth | s/image | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.to_dict("records"):
        if pd.isna(r.get("n_pred", np.nan)):
            lines.append(f"| {r['method']} | - | - | - | - | - | - | - | {r.get('note', '')} |")
            continue
        lines.append(
            f"| {r['method']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['mean_dice']:.3f} | "
            f"{r['nonzero_dice']:.3f} | {int(r['n_pred'])} | {int(r['n_gt'])} | {r['s_per_image']:.2f} | "
            f"{r.get('note', '') or ''} |")
    lines.append(END)
    return "\n".join(lines)


def write_results(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else "# Evaluation benchmarks\n\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## Methods side by side (benchmarks/compare_methods.py)\n\n" + block + "\n"
    path.write_text(text)


def bench_metric(repeats: int = 5) -> str:
    """Time the matching protocol on ~200 x 200 instances of a 1024 x 1024 image.

    Ground truth: the instances of a simulated 1024 x 1024 image at 80 nm
    (tubes, overlaps included); predictions: the same masks shifted by one
    pixel, plus 10% spurious ones.  Times the table path (decode bit-packed
    crops + bbox-pruned matching) and the dense (n, H, W) stack path.
    """
    from mitoscale.evaluate.metrics import SparseMasks, evaluate_image, evaluate_tables
    from mitoscale.io.tables import instances_to_table, table_to_masks
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    cfg = load_simulate_config(None)
    gts = []
    for i in range(2):  # enough instances for ~200 per image
        gts.append(simulate_image(cfg, 99, i, shape=(1024, 1024)).table)
    gt = gts[0]
    masks = table_to_masks(gt)
    shifted = np.roll(masks, 1, axis=2)
    extra = table_to_masks(gts[1])[: len(gt) // 10]
    pred = instances_to_table(list(shifted) + list(extra), image_id=gt["image_id"].iloc[0], pixel_size_um=0.08,
                              z=-1)
    t_table, t_dense, t_sparse = [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _, s = evaluate_tables(pred, gt)
        t_table.append(time.perf_counter() - t0)
        dense_pred = np.concatenate([shifted, extra])
        t0 = time.perf_counter()
        evaluate_image(dense_pred, masks)
        t_dense.append(time.perf_counter() - t0)
        sp, sg = SparseMasks.from_table(pred), SparseMasks.from_table(gt)
        t0 = time.perf_counter()
        evaluate_image(sp, sg)
        t_sparse.append(time.perf_counter() - t0)
    n_pairs_all = len(pred) * len(gt)
    from mitoscale.evaluate.metrics import pairwise_intersections

    pi, _, _ = pairwise_intersections(SparseMasks.from_table(pred), SparseMasks.from_table(gt))
    return (
        f"{len(pred)} predictions x {len(gt)} ground-truth instances on 1024 x 1024 "
        f"(TP {s['tp']}, mean Dice {s['mean_dice']:.3f}); {pi.size} overlapping pairs of {n_pairs_all} "
        f"possible.  Best of {repeats}: tables (decode + match) {min(t_table) * 1e3:.1f} ms; "
        f"sparse masks (match only) {min(t_sparse) * 1e3:.1f} ms; dense (n, H, W) stacks "
        f"(bbox extraction + match) {min(t_dense) * 1e3:.0f} ms."
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated subset of "
                                                                    + ", ".join(ALL_METHODS))
    p.add_argument("--n-images", type=int, default=16)
    p.add_argument("--seed", type=int, default=20260917, help="held-out seed (never used for training)")
    p.add_argument("--pixel-size-nm", type=float, default=65.0)
    p.add_argument("--shape", type=int, default=630, help="image edge in px (630 at 65 nm ~ 512 at 80 nm)")
    p.add_argument("--sim-config", default=None, help="simulate config (default: package defaults)")
    p.add_argument("--model", default=None, help="checkpoint for our model (default: the shipped model)")
    p.add_argument("--segment-config", default=None, help="segment YAML (default: SegmentConfig defaults)")
    p.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    p.add_argument("--results", default=str(Path(__file__).with_name("RESULTS_evaluate.md")),
                   help="markdown file whose compare_methods block is replaced ('' to skip)")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--bench-metric", action="store_true",
                   help="only time the matching protocol on ~200 x 200 instances at 1024 x 1024")
    args = p.parse_args(argv)
    if args.bench_metric:
        print(bench_metric())
        return 0
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.methods if m not in ALL_METHODS]
    if bad:
        p.error(f"unknown method(s): {', '.join(bad)}")
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    df = compare(args)
    block = to_markdown(df, args)
    print(block)
    if args.results:
        write_results(Path(args.results), block)
    if args.json:
        Path(args.json).write_text(json.dumps(df.to_dict("records"), indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
