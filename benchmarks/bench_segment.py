"""Benchmarks of ``mitoscale segment`` (issue 4 and the inference-speed half of issue 7).

Parts (``--parts``, default all):

speed      one 1024x1024 frame at 80 nm, end to end in-process: wall time, encoder and
           decoder time, overhead above encoder + decoder, peak RSS (in a fresh process)
windows    decoding against local embedding windows vs the whole map: time per prompt,
           precision / recall / mean Dice on the simulated ground truth
prompting  skipping prompts on already-covered pixels: decoder prompts per instance, recall
amg        segment-anything's SamAutomaticMaskGenerator (32x32 grid per tile), same model,
           same image (512x512 at 80 nm): time, precision, recall
dask       the same job on a LocalCluster with 1 and 2 single-threaded workers
real       the case-study images (one per condition): time, instances, overlay PNGs
tiling     issue 4's tiling invariance: six 65 nm frames (seeds 7 and 8, frames 0-2; the
           test's frames) as one 256 px tile and as 4 overlapping 192 px tiles, pairs at
           Dice >= 0.9; and the model's own shift stability: the same prompts decoded in
           two full tiles 64 px apart (window-aligned, no padding)
floor      FLOPs of the encoder per tile and the decoder per prompt, and this CPU's
           measured matmul throughput: the arithmetic floor of the timings

Usage::

    nice .venv/bin/python benchmarks/bench_segment.py --out benchmarks/segment_results.json
    .venv/bin/python benchmarks/bench_segment.py --parts speed,amg --model my.safetensors

Images are simulated with ``mitoscale.simulate.simulate_image`` (seed 123), so the
ground truth is exact.  Numbers measured while other jobs share the CPU are noisy;
the JSON records the load average before and after every part.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEED = 123


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def simulate(shape, pixel_nm=80.0, index=0):
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    s = simulate_image(load_simulate_config(None), SEED, index, pixel_size_nm=pixel_nm, shape=shape)
    gt = s.table.copy()
    gt["image_id"], gt["z"] = "image", 0  # one 2D frame, as segment_frame keys it
    return s.image, gt


def score(df, gt):
    from mitoscale.evaluate.metrics import evaluate_tables

    if len(df) == 0:
        return {"precision": float("nan"), "recall": 0.0, "mean_dice": 0.0}
    _, summary = evaluate_tables(df, gt)
    return {k: summary[k] for k in ("precision", "recall", "mean_dice") if k in summary}


def load(model):
    from mitoscale.segment.runtime import get_model

    return get_model(model, None, "cpu")


def run_frame(image, model, cfg, repeats=1):
    from mitoscale.segment.frame import segment_frame

    sam, spec, _ = model
    best = None
    for _ in range(repeats):
        st = {}
        t0 = time.perf_counter()
        df = segment_frame(image, 0.08, sam, spec, cfg, stats=st)
        st["wall_s"] = time.perf_counter() - t0
        if best is None or st["wall_s"] < best[1]["wall_s"]:
            best = (df, st)
    return best


PRESETS = {"default (maxima+grid)": {}, "fast (maxima)": {"prompts.sampling": "maxima"}}


def config(over):
    from mitoscale.segment.config import SegmentConfig

    cfg = SegmentConfig()
    for key, value in over.items():
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, value)
    return cfg


def part_speed(args, model):
    return {name: speed(args, model, config(over)) for name, over in PRESETS.items()}


def speed(args, model, cfg):
    image, gt = simulate((1024, 1024))
    run_frame(image[:256, :256], model, cfg)  # warm-up
    df, st = run_frame(image, model, cfg, repeats=args.repeats)
    enc_dec = st["encoder_s"] + st["decoder_s"]
    res = {"frame": "1024x1024 @ 80 nm", "instances": len(df), "gt_instances": len(gt),
           **{k: round(v, 4) if isinstance(v, float) else v for k, v in st.items()},
           "overhead_vs_encoder_plus_decoder": round(st["wall_s"] / enc_dec - 1, 4),
           "decoder_prompts_per_instance": round(st["decoded"] / max(len(df), 1), 3),
           **score(df, gt)}
    # peak memory of the segmentation job alone in a fresh process (python, torch, model,
    # frame, segmentation; the simulator that made the frame runs in this process instead)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "frame.npy", image)
        (Path(tmp) / "cfg.json").write_text(cfg.model_dump_json())
        code = ("import resource,sys,numpy as np;sys.path.insert(0,'benchmarks');import bench_segment as b;"
                "from mitoscale.segment.config import SegmentConfig;"
                f"m=b.load({args.model!r});im=np.load({str(Path(tmp) / 'frame.npy')!r});"
                f"c=SegmentConfig.model_validate_json(open({str(Path(tmp) / 'cfg.json')!r}).read());"
                "b.run_frame(im,m,c);"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res["peak_rss_mb"] = round(int(out.stdout.strip().splitlines()[-1]) / 1024, 1)
    return res


def part_windows(args, model):
    from mitoscale.segment.config import SegmentConfig

    image, gt = simulate((512, 512), index=1)
    rows = []
    for window in (None, 16, 8):
        cfg = SegmentConfig()
        cfg.decode.window = window
        df, st = run_frame(image, model, cfg)
        rows.append({"window_cells": window or "full map", "wall_s": round(st["wall_s"], 3),
                     "decoder_s": round(st["decoder_s"], 3), "decoded": st["decoded"],
                     "ms_per_prompt": round(1000 * st["decoder_s"] / max(st["decoded"], 1), 2),
                     "instances": len(df), **score(df, gt)})
    return rows


def part_prompting(args, model):
    image, gt = simulate((512, 512), index=2)
    rows = []
    for name, over in [("dense grid (6 px), every prompt decoded",
                        {"prompts.sampling": "grid", "prompts.spacing": 6, "prompts.skip_covered": False}),
                       ("dense grid (6 px), skip covered", {"prompts.sampling": "grid", "prompts.spacing": 6}),
                       ("maxima+grid, skip covered (default)", {}),
                       ("maxima, skip covered (fast)", {"prompts.sampling": "maxima"})]:
        df, st = run_frame(image, model, config(over))
        rows.append({"prompting": name, "prompts": st["prompts"], "decoded": st["decoded"],
                     "instances": len(df),
                     "decoder_prompts_per_instance": round(st["decoded"] / max(len(df), 1), 2),
                     "wall_s": round(st["wall_s"], 3), **score(df, gt)})
    return rows


def amg_masks(image, model, tile=None, points_per_side=32):
    """SamAutomaticMaskGenerator on non-overlapping model-sized tiles of a normalised frame.

    Returns every mask it generates with its own filters disabled, as
    ``(y0, x0, mask, predicted_iou, stability_score)`` in frame coordinates, so
    that its thresholds can be applied afterwards without running it again.
    """
    from segment_anything import SamAutomaticMaskGenerator

    from mitoscale.model import normalize_intensity

    sam, spec, _ = model
    tile = tile or spec.img_size
    gen = SamAutomaticMaskGenerator(sam, points_per_side=points_per_side, points_per_batch=64,
                                    pred_iou_thresh=0.0, stability_score_thresh=0.0)
    norm = normalize_intensity(image)
    out = []
    for y in range(0, image.shape[0], tile):
        for x in range(0, image.shape[1], tile):
            rgb = np.repeat((norm[y:y + tile, x:x + tile] * 255).astype(np.uint8)[..., None], 3, -1)
            for m in gen.generate(rgb):
                out.append((y, x, m["segmentation"], m["predicted_iou"], m["stability_score"]))
    return out


def amg_table(masks, shape, pred_iou_thresh, stability_thresh, cleanup=False, max_overlap=0.5):
    """AMG masks above its thresholds as an instance table, optionally after the paper's clean-up.

    ``cleanup`` applies mitoscale's post-processing to AMG's masks: largest
    component, at least 10 px, overlap suppression at ``max_overlap`` by score.
    """
    from mitoscale.io.tables import instances_to_table
    from mitoscale.segment.postprocess import Candidate, largest_component, suppress_overlaps

    sel = [m for m in masks if m[3] >= pred_iou_thresh and m[4] >= stability_thresh]
    if cleanup:
        cands = []
        for y, x, m, iou, _ in sel:
            m = largest_component(m)
            if m.sum() < 10:
                continue
            r, c = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            crop = m[r[0]:r[-1] + 1, c[0]:c[-1] + 1]
            cands.append(Candidate(y + r[0], x + c[0], crop, crop.astype(np.float16), float(iou)))
        kept = suppress_overlaps(cands, max_overlap)
        crops, offsets, scores = [c.mask for c in kept], [(c.y0, c.x0) for c in kept], [c.score for c in kept]
    else:
        crops, offsets, scores = [m[2] for m in sel], [(m[0], m[1]) for m in sel], [m[3] for m in sel]
    return instances_to_table(crops, offsets=offsets, shape=shape, image_id="image",
                              pixel_size_um=0.08, scores=scores)


THOROUGH = "configs/segment_thorough.yaml"


def part_amg(args, model):
    """Ours (default and thorough presets) vs SamAutomaticMaskGenerator, pooled over images."""
    import pandas as pd
    import torch

    from mitoscale.config import load_config
    from mitoscale.segment.config import SegmentConfig

    presets = {"mitoscale default": SegmentConfig(),
               "mitoscale thorough": load_config(THOROUGH, SegmentConfig)}
    cut = presets["mitoscale default"].postprocess.min_score
    amg_rows = {f"AMG raw, pred_iou >= {cut}": (cut, 0.0, False),
                "AMG raw, SAM defaults (0.88, 0.95)": (0.88, 0.95, False),
                f"AMG + paper clean-up, pred_iou >= {cut}": (cut, 0.0, True),
                "AMG + paper clean-up, pred_iou >= 0.5": (0.5, 0.0, True)}
    tables = {k: [] for k in [*presets, *amg_rows]}
    secs = {k: 0.0 for k in tables}
    gts, decoded = [], {k: 0 for k in presets}
    for n, index in enumerate(args.amg_images):
        image, gt = simulate((512, 512), index=index)
        gt["image_id"] = f"image{n}"
        gts.append(gt)
        for name, cfg in presets.items():
            df, st = run_frame(image, model, cfg)
            df["image_id"] = f"image{n}"
            tables[name].append(df)
            secs[name] += st["wall_s"]
            decoded[name] += st["decoded"]
        t0 = time.perf_counter()
        with torch.inference_mode():
            masks = amg_masks(image, model)
        t_amg = time.perf_counter() - t0
        for name, (iou_t, stab_t, clean) in amg_rows.items():
            t1 = time.perf_counter()
            df = amg_table(masks, image.shape, iou_t, stab_t, cleanup=clean)
            df["image_id"] = f"image{n}"
            tables[name].append(df)
            secs[name] += t_amg + (time.perf_counter() - t1)
    gt = pd.concat(gts, ignore_index=True)
    rows = {}
    for name, parts in tables.items():
        df = pd.concat(parts, ignore_index=True)
        rows[name] = {"wall_s": round(secs[name], 2), "instances": len(df), **score(df, gt)}
        if name in decoded:
            rows[name]["decoded"] = decoded[name]
    return {"images": f"{len(gts)} x 512x512 @ 80 nm (indices {list(args.amg_images)}), "
                      f"{len(gt)} ground-truth instances; AMG: 32x32 points per 256 px tile",
            "rows": rows}


def part_dask(args, model):
    from distributed import Client, LocalCluster

    from mitoscale.io.omezarr import write_ome_zarr_image
    from mitoscale.segment.config import SegmentConfig
    from mitoscale.segment.pipeline import run_segmentation

    frames = np.stack([simulate((512, 512), index=10 + i)[0] for i in range(args.dask_frames)])
    tmp = Path(tempfile.mkdtemp(prefix="bench-seg-"))
    path = write_ome_zarr_image(tmp / "movie.ome.zarr", frames, "tyx", 0.08)
    res = {"input": f"{len(frames)} frames of 512x512 @ 80 nm"}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          host="127.0.0.1") as cluster, Client(cluster) as client:
            run_segmentation(path, tmp / f"warm{n}", model=args.model, cfg=SegmentConfig(),
                             client=client, progress=False)  # starts workers, loads the model
            t0 = time.perf_counter()
            man = run_segmentation(path, tmp / f"out{n}", model=args.model, cfg=SegmentConfig(),
                                   client=client, progress=False)
            res[f"workers_{n}_s"] = round(time.perf_counter() - t0, 3)
            res[f"workers_{n}_instances"] = man["counts"]["instances"]
    res["speedup_2_vs_1"] = round(res["workers_1_s"] / res["workers_2_s"], 3)
    return res


def part_floor(args, model):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mitoscale.segment.decode import decode_points, encode_tile

    sam, spec, _ = model
    tile = np.random.default_rng(0).random((spec.img_size,) * 2).astype(np.float32)
    with FlopCounterMode(display=False) as fc:
        emb = encode_tile(sam, spec, tile)
    enc_flops = fc.get_total_flops()
    res = {"encoder_gflop_per_tile": round(enc_flops / 1e9, 3)}
    pts = np.array([[spec.img_size // 2, spec.img_size // 2]] * 16)
    for window in (None, 16, 8):
        with FlopCounterMode(display=False) as fc:
            decode_points(sam, spec, emb, pts, window=window)
        res[f"decoder_mflop_per_prompt_window_{window or 'full'}"] = round(fc.get_total_flops() / 16 / 1e6, 2)
    a = torch.randn(1024, 1024)
    torch.mm(a, a)
    t0 = time.perf_counter()
    for _ in range(20):
        torch.mm(a, a)
    res["matmul_gflops_measured"] = round(20 * 2 * 1024 ** 3 / (time.perf_counter() - t0) / 1e9, 1)
    res["torch_threads"] = torch.get_num_threads()
    return res


CASE_STUDY = Path("/work/shared/data/h9c2_case_study")


def overlay(image, table, path, title=""):
    """Contours of every instance (random colours) over the contrast-stretched image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from skimage.segmentation import find_boundaries

    from mitoscale.io.tables import table_to_masks
    from mitoscale.model import normalize_intensity

    rgb = np.repeat(normalize_intensity(image)[..., None], 3, -1)
    rng = np.random.default_rng(0)
    for m in table_to_masks(table) if len(table) else []:
        rgb[find_boundaries(m, mode="inner")] = rng.uniform(0.3, 1.0, 3) * np.array([1.0, 0.6, 0.2])
    # zoom on the 256 x 256 window with the most instance centroids
    cy, cx = table["centroid_y"].to_numpy(), table["centroid_x"].to_numpy()
    h, w = image.shape
    best = max(((y, x) for y in range(0, max(h - 255, 1), 64) for x in range(0, max(w - 255, 1), 64)),
               key=lambda p: ((cy >= p[0]) & (cy < p[0] + 256) & (cx >= p[1]) & (cx < p[1] + 256)).sum())
    zy, zx = best
    fig, ax = plt.subplots(1, 3, figsize=(18, 6.3))
    ax[0].imshow(rgb)
    ax[0].add_patch(plt.Rectangle((zx, zy), 256, 256, fill=False, color="cyan", lw=1.5))
    ax[1].imshow(normalize_intensity(image)[zy:zy + 256, zx:zx + 256], cmap="gray")
    ax[2].imshow(rgb[zy:zy + 256, zx:zx + 256])
    for a in ax:
        a.set_axis_off()
    ax[0].set_title(f"{title}: {len(table)} instances")
    ax[1].set_title("zoom (cyan box), input")
    ax[2].set_title("zoom, instance outlines")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def part_real(args, model):
    """The shipped model on one case-study image per condition (0.08 µm/px assumed)."""
    import imageio.v3 as iio

    from mitoscale.segment.config import SegmentConfig

    out_dir = Path(args.overlays)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in ("normoxia", "hypoxia", "hypoxia_ADM"):
        f = sorted(CASE_STUDY.glob(f"{name}_m*.png"))[0]
        image = np.asarray(iio.imread(f), dtype=np.float32)
        df, st = run_frame(image, model, SegmentConfig())
        png = out_dir / f"segment_{f.stem}.png"
        overlay(image, df, png, title=f.name)
        rows.append({"image": f.name, "instances": len(df), "wall_s": round(st["wall_s"], 2),
                     "decoded": st["decoded"], "median_area_um2": round(float(df["area_um2"].median()), 3)
                     if len(df) else None, "overlay": str(png)})
    return rows


def part_tiling(args, model):
    from mitoscale.evaluate.metrics import evaluate_tables
    from mitoscale.segment.frame import prepare_frame, segment_frame
    from mitoscale.segment.runtime import resolve_config
    from mitoscale.segment.tile import segment_tile
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    sam, spec, _ = model
    sim = load_simulate_config(None)
    many = config({"model.tile_size": 192, "model.halo": 32})
    frames, good, total = [], 0, 0
    for seed, i in [(7, 0), (7, 1), (7, 2), (8, 0), (8, 1), (8, 2)]:
        image = simulate_image(sim, seed, i, pixel_size_nm=65.0, shape=(256, 320)).image[:, :312]
        a = segment_frame(image, 0.065, sam, spec, config({}))
        b = segment_frame(image, 0.065, sam, spec, many)
        _, _, m = evaluate_tables(b, a, return_matches=True)
        g, n = int((m["dice"] >= 0.9).sum()), max(len(a), len(b))
        frames.append({"seed": seed, "frame": i, "one_tile": len(a), "four_tiles": len(b),
                       "paired_dice_0.5": len(m), "pairs_dice_0.9": g})
        good, total = good + g, total + n
    # shift stability: the same prompts decoded in two full 256 px tiles 64 px apart
    cfg = resolve_config(config({"prompts.skip_covered": False}), spec)
    dice = []
    for seed, i in [(7, 2), (7, 0), (8, 1)]:
        prep = prepare_frame(simulate_image(sim, seed, i, pixel_size_nm=80.0, shape=(320, 320)).image,
                             0.08, cfg)
        pts = prep.prompts[((prep.prompts >= 88) & (prep.prompts < 232)).all(1)][::3]
        views = []
        for o in (0, 64):
            cands, _ = segment_tile(sam, spec, prep.image[o:o + 256, o:o + 256], pts - o, cfg)
            views.append({(c.prompt[0] + o, c.prompt[1] + o): c.shifted(o, o) for c in cands})
        for key, ca in views[0].items():
            cb = views[1].get(key)
            if cb is None:
                continue
            ma, mb = np.zeros(prep.image.shape, bool), np.zeros(prep.image.shape, bool)
            ma[ca.y0:ca.bbox[2], ca.x0:ca.bbox[3]] = ca.mask
            mb[cb.y0:cb.bbox[2], cb.x0:cb.bbox[3]] = cb.mask
            dice.append(2 * (ma & mb).sum() / (ma.sum() + mb.sum()))
    dice = np.asarray(dice)
    return {"frames": frames, "pairs_dice_0.9": good, "instances": total,
            "fraction": round(good / total, 4),
            "shift64_prompts": len(dice), "shift64_fraction_dice_0.9": round(float((dice >= 0.9).mean()), 4),
            "shift64_median_dice": round(float(np.median(dice)), 4)}


PARTS = {"floor": part_floor, "speed": part_speed, "windows": part_windows,
         "prompting": part_prompting, "amg": part_amg, "dask": part_dask, "real": part_real,
         "tiling": part_tiling}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dask-frames", type=int, default=8)
    p.add_argument("--amg-images", type=lambda v: [int(i) for i in v.split(",")], default=[3, 4],
                   help="simulated image indices of part 'amg' (default 3,4)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    p.add_argument("--overlays", default="docs/images", help="where part 'real' writes its PNGs")
    args = p.parse_args(argv)
    os.environ.setdefault("MITOSCALE_NO_PROGRESS", "1")
    model = load(args.model)
    results = {"machine": {"host": platform.node(), "cpus": os.cpu_count(),
                           "python": platform.python_version(), "processor": platform.processor()},
               "date": time.strftime("%Y-%m-%d %H:%M"), "model": model[1].name,
               "model_meta": {k: v for k, v in model[2].items() if isinstance(v, (str, int, float))}}
    for name in args.parts.split(","):
        before = _load()
        t0 = time.time()
        results[name] = PARTS[name](args, model)
        results[name + "_meta"] = {"load_before": before, "load_after": _load(),
                                   "part_s": round(time.time() - t0, 1)}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    results["self_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
