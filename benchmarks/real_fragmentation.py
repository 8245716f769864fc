"""Fragmentation, coverage and spill of each method on real images without ground truth (issue 16).

Every image of ``DATA/mcc13/`` (the three PNG fields, and the raw 16-bit TIFF of one of them as
its own dataset ``mcc13_raw``) and ``DATA/h9c2_case_study/`` (22 PNGs) is segmented in the same
run by each mitoscale model given and by the classical and Nellie baselines.  Every method is
measured against ONE independent foreground, the same for all: Otsu's threshold on the image
after a Gaussian of ``--sigma-um`` (see :mod:`mitoscale.evaluate.proxies`).

Per image and pooled per dataset, for each method: instances per 10 µm of foreground skeleton,
median instance skeleton length, coverage of the foreground by the union of the masks, the share
of mask (union) pixels outside the foreground, dot share by count and by area (the analysis
stage's dot rule), and seconds per frame (the segmentation call alone, image in memory ->
instance table, methods interleaved image by image so load changes hit all alike).

Targets (issue 16), per dataset for each model, against Nellie: fewer instances per 10 µm;
coverage >= 0.6 with <= 10% of mask pixels outside the foreground; median skeleton length >=
Nellie's; faster per frame.

Usage (from the repository root)::

    nice .venv/bin/python benchmarks/real_fragmentation.py                  # shipped model + baselines
    .venv/bin/python benchmarks/real_fragmentation.py \\
        --model new=mitoscale/weights/mitoscale-small.safetensors --model old=git:8e6885d \\
        --update BENCHMARKS.md

``--model LABEL=PATH`` is repeatable; ``PATH`` is a ``.safetensors`` checkpoint (its ``.json``
beside it), ``shipped`` (the package's model), or ``git:REV`` (the shipped model as committed at
REV, extracted with ``git show`` into a temporary folder; ``git:REV:PATH`` for another file).

Outputs under ``--out`` (default benchmarks/real_fragmentation/): ``results.json`` (every
number) and ``results.md`` (the tables); with ``--tables DIR``, ``DIR/<method>/<image>.parquet``; overlay PNGs
(``realfrag_<image>.png``: the crop with the most foreground, each method's outlines side by
side) under ``--overlays`` (default docs/images); ``--update FILE`` replaces the block between
``<!-- real_fragmentation:begin -->`` and ``<!-- real_fragmentation:end -->`` in FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # compare_methods' make_segmenter

BEGIN, END = "<!-- real_fragmentation:begin -->", "<!-- real_fragmentation:end -->"
BASELINES = ("classical", "nellie")
#: dataset -> (folder under --data, file pattern)
DATASETS = {"mcc13": ("mcc13", "*.png"), "mcc13_raw": ("mcc13", "*.tif"), "h9c2": ("h9c2_case_study", "*.png")}
#: overlay images: the three MCC13 fields and one H9c2 image per condition (those of docs/segment.md)
OVERLAYS = ("mcc13_conv013_z7", "mcc13_convtl005_z12", "mcc13_convtl010_z3", "normoxia_m025_z04",
            "hypoxia_m001_z02", "hypoxia_ADM_m015_z01")
SUMS = ("n_instances", "foreground_px", "foreground_skeleton_um", "union_px", "covered_px", "outside_px",
        "dot_count", "area_um2", "dot_area_um2")


def _load():
    return [round(x, 2) for x in os.getloadavg()]


def resolve_model(text: str, tmp: Path) -> tuple[str, str | None, str]:
    """``LABEL=PATH`` -> (label, checkpoint path or None for the shipped model, description)."""
    from mitoscale.errors import InputError

    label, sep, where = text.partition("=")
    if not sep or not label or not where:
        raise InputError(f"--model expects LABEL=PATH, LABEL=shipped or LABEL=git:REV, got {text!r}")
    if where == "shipped":
        return label, None, "shipped model"
    if where.startswith("git:"):
        rev, _, rel = where[4:].partition(":")
        rel = rel or "mitoscale/weights/mitoscale-small.safetensors"
        out = tmp / label / Path(rel).name
        out.parent.mkdir(parents=True, exist_ok=True)
        for src, dst in ((rel, out), (str(Path(rel).with_suffix(".json")), out.with_suffix(".json"))):
            r = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{src}"], capture_output=True)
            if r.returncode:
                raise InputError(f"--model {text}: git show {rev}:{src} failed "
                                 f"({r.stderr.decode().strip().splitlines()[-1] if r.stderr else r.returncode})")
            dst.write_bytes(r.stdout)
        return label, str(out), f"{rel} at {rev}"
    if not Path(where).exists():
        raise InputError(f"--model {text}: checkpoint not found: {where}")
    return label, where, where


def find_images(data: Path, pixel_size_um: float, only: list[str] | None):
    """Yield ``(dataset, name, image)`` for every input image (2D, float32)."""
    from mitoscale.errors import InputError
    from mitoscale.io.images import iter_frames, open_image_files

    found = 0
    for dataset, (folder, pattern) in DATASETS.items():
        files = sorted((data / folder).glob(pattern))
        if only:
            files = [f for f in files if f.stem in only]
        for src in open_image_files(files, pixel_size_um):
            for frame in iter_frames(src):
                found += 1
                yield dataset, src.image_id, np.asarray(frame.data.compute(), dtype=np.float32)
    if not found:
        raise InputError(f"{data}: no images in {', '.join(sorted({f for f, _ in DATASETS.values()}))}/"
                         + (f" named {', '.join(only)}" if only else ""))


def resolve_models(args, tmp: Path) -> list[tuple[str, str | None, str]]:
    """Every ``--model`` resolved (checked, git revisions extracted) before anything is loaded."""
    from mitoscale.errors import InputError

    models = [resolve_model(text, tmp) for text in args.model or ["mitoscale=shipped"]]
    labels = [m[0] for m in models]
    for label in labels:
        if labels.count(label) > 1 or label in BASELINES:
            raise InputError(f"--model: label {label!r} used twice or a baseline's name")
    return models


def make_methods(args, models: list[tuple[str, str | None, str]]) -> dict:
    """{label: segmenter(image, px, keys) -> table}; descriptions in ``make_methods.info``."""
    from compare_methods import make_segmenter

    from mitoscale.errors import InputError

    methods, info = {}, {}
    for label, path, desc in models:
        text = f"{label}={desc}"
        seg = make_segmenter("mitoscale", argparse.Namespace(model=path, segment_config=args.segment_config))
        if isinstance(seg, str):
            raise InputError(f"--model {text}: {seg}")
        methods[label], info[label] = seg, {"kind": "model", "source": desc,
                                            "spec": make_segmenter.info.get("mitoscale", "").split(" (")[0]}
    for name in [b for b in args.baselines.split(",") if b]:
        if name not in BASELINES:
            raise InputError(f"--baselines: unknown {name!r} (known: {', '.join(BASELINES)})")
        seg = make_segmenter(name, args)
        if isinstance(seg, str):
            print(f"{name}: skipped, {seg}", file=sys.stderr)
            continue
        methods[name], info[name] = seg, {"kind": "baseline", "source": f"mitoscale baseline {name}"}
    make_methods.info = info
    return methods


def pool(rows: list[dict]) -> dict:
    """Pooled measures of one method over several images (sums, then ratios)."""
    s = {k: float(sum(r[k] for r in rows)) for k in SUMS}
    lengths = np.concatenate([r["_lengths"] for r in rows]) if rows else np.zeros(0)
    per10 = [r["instances_per_10um"] for r in rows]
    cov = [r["coverage"] for r in rows]
    return {
        "images": len(rows), "n_instances": int(s["n_instances"]),
        "instances_per_10um": 10 * s["n_instances"] / s["foreground_skeleton_um"],
        "instances_per_10um_range": [min(per10), max(per10)],
        "median_skeleton_um": float(np.median(lengths)) if lengths.size else float("nan"),
        "coverage": s["covered_px"] / s["foreground_px"], "coverage_range": [min(cov), max(cov)],
        "outside": s["outside_px"] / s["union_px"] if s["union_px"] else float("nan"),
        "dot_share_count": s["dot_count"] / s["n_instances"] if s["n_instances"] else float("nan"),
        "dot_share_area": s["dot_area_um2"] / s["area_um2"] if s["area_um2"] else float("nan"),
        "s_per_frame": float(np.mean([r["seconds"] for r in rows])),
        "s_per_frame_max": float(np.max([r["seconds"] for r in rows])),
        "shapes": sorted({"x".join(map(str, r["shape"])) for r in rows}),
    }


def targets(datasets: dict, info: dict) -> dict:
    """PASS/FAIL of issue 16's real-image targets per dataset for each model (None: no Nellie)."""
    out = {}
    for ds, by_method in datasets.items():
        nel = by_method.get("nellie")
        for label in (m for m in by_method if info[m]["kind"] == "model"):
            m = by_method[label]
            t = {"coverage>=0.6 and outside<=0.10": bool(m["coverage"] >= 0.6 and m["outside"] <= 0.10)}
            if nel is not None:
                t["fewer instances/10um than nellie"] = bool(m["instances_per_10um"] < nel["instances_per_10um"])
                t["median skeleton >= nellie"] = bool(m["median_skeleton_um"] >= nel["median_skeleton_um"])
                t["faster than nellie"] = bool(m["s_per_frame"] < nel["s_per_frame"])
            out.setdefault(ds, {})[label] = t
    return out


def to_markdown(res: dict) -> str:
    lines = [BEGIN, f"Real images, no ground truth (`benchmarks/real_fragmentation.py`). {res['date']}; "
             f"{res['machine']['cpus']} cores, torch threads {res['threads']}; load average "
             f"{res['load_before']} before, {res['load_after']} after (the cores are shared with other jobs, "
             "so times are noisy).  Reference foreground: Otsu on a Gaussian of "
             f"σ = {res['sigma_um']} µm ({res['sigma_um'] / res['pixel_size_um']:g} px)"
             + (f" minus a Gaussian of σ = {res['background_um']} µm" if res.get("background_um") else "")
             + f", the same for every method; {res['pixel_size_um']} µm/px.", "",
             f"Command: `{res['command']}`", ""]
    for label, i in res["methods"].items():
        lines.append(f"- `{label}`: {i['source']}" + (f" ({i['spec']})" if i.get("spec") else ""))
    lines += ["", "Pooled per dataset (sums over images, then ratios; ranges are per image):", "",
              "| dataset | method | instances / 10 µm [range] | median skeleton µm | coverage [range] | "
              "outside | dot share count / area | s / frame (max) | instances |",
              "|---|---|---|---|---|---|---|---|---|"]
    for ds, by in res["datasets"].items():
        for label, m in by.items():
            lo, hi = m["instances_per_10um_range"]
            clo, chi = m["coverage_range"]
            lines.append(f"| {ds} ({m['images']} × {', '.join(m['shapes'])}) | {label} | "
                         f"{m['instances_per_10um']:.2f} [{lo:.2f}-{hi:.2f}] | {m['median_skeleton_um']:.2f} | "
                         f"{m['coverage']:.3f} [{clo:.2f}-{chi:.2f}] | {m['outside']:.3f} | "
                         f"{m['dot_share_count']:.2f} / {m['dot_share_area']:.2f} | "
                         f"{m['s_per_frame']:.2f} ({m['s_per_frame_max']:.2f}) | {m['n_instances']} |")
    names = sorted({t for by in res["targets"].values() for m in by.values() for t in m})
    lines += ["", "Issue 16's targets (PASS/FAIL):", "", "| dataset | model | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
    for ds, by in res["targets"].items():
        for label, t in by.items():
            lines.append(f"| {ds} | {label} | " + " | ".join(
                ("PASS" if t[n] else "FAIL") if n in t else "-" for n in names) + " |")
    lines.append(END)
    return "\n".join(lines)


def update_block(path: Path, block: str, heading: str = "## Real images without ground truth") -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + f"\n\n{heading}\n\n" + block + "\n"
    path.write_text(text)


def run(args) -> dict:
    import torch

    from mitoscale.evaluate.overlay import write_method_overlays
    from mitoscale.evaluate.proxies import proxy_metrics, reference_foreground, skeleton_length_um
    from mitoscale.io.tables import write_table

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = Path(args.data)
    px = args.pixel_size
    only = [s for s in args.images.split(",") if s] if args.images else None
    load_before = _load()
    with tempfile.TemporaryDirectory() as tmp:
        models = resolve_models(args, Path(tmp))  # bad input fails before any image or model loads
        images = list(find_images(data, px, only))
        methods = make_methods(args, models)
        info = make_methods.info
        if args.crop:
            images = [(d, n, im[:args.crop, :args.crop]) for d, n, im in images]
        warm = images[0][2][:256, :256]
        for seg in methods.values():  # imports, model load, first-call costs
            seg(warm, px, dict(image_id="warmup"))
        per_image, rows = [], {}
        for dataset, name, image in images:
            fg = reference_foreground(image, px, args.sigma_um, args.background_um)
            fg_len = skeleton_length_um(fg, px)
            entry = {"dataset": dataset, "image": name, "shape": list(image.shape), "foreground_px": int(fg.sum()),
                     "foreground_skeleton_um": fg_len, "methods": {}}
            tables = {}
            for label, seg in methods.items():
                t0 = time.perf_counter()
                table = seg(image, px, dict(image_id=name))
                seconds = time.perf_counter() - t0
                m = proxy_metrics(table, fg, px, foreground_skeleton_um=fg_len)
                lengths = np.asarray(m.pop("skeleton_lengths_um"))
                m.update(seconds=seconds, shape=list(image.shape))
                rows.setdefault(dataset, {}).setdefault(label, []).append({**m, "_lengths": lengths})
                entry["methods"][label] = m
                tables[label] = table
                if args.tables:
                    write_table(table, Path(args.tables) / label / f"{name}.parquet",
                                locations=[dict(image_id=name, well="", field=0, t=0, z=0)])
                print(f"{name} {label}: {len(table)} instances, {seconds:.2f} s, "
                      f"{m['instances_per_10um']:.2f}/10 µm, coverage {m['coverage']:.3f}, "
                      f"outside {m['outside']:.3f}", file=sys.stderr, flush=True)
            if args.overlays and name in OVERLAYS:
                png = write_method_overlays(image, tables, Path(args.overlays) / f"realfrag_{name}.png",
                                            pixel_size_um=px, crop=args.overlay_crop, weight=fg, foreground=fg,
                                            title=name)
                entry["overlay"] = str(png)
            per_image.append(entry)
    datasets = {ds: {label: pool(r) for label, r in by.items()} for ds, by in rows.items()}
    res = {"date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
           "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                       "processor": platform.processor() or platform.machine()},
           "threads": args.threads, "load_before": load_before, "load_after": _load(),
           "command": "python benchmarks/real_fragmentation.py " + " ".join(args.argv),
           "data": str(data), "pixel_size_um": px, "sigma_um": args.sigma_um,
           "background_um": args.background_um, "methods": info,
           "datasets": datasets, "targets": targets(datasets, info), "images": per_image}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    block = to_markdown(res)
    (out / "results.md").write_text(block + "\n")
    if args.update:
        update_block(Path(args.update), block)
    print(block)
    return res


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data"),
                   help="folder holding mcc13/ and h9c2_case_study/ (default ../shared/data)")
    p.add_argument("--model", action="append", metavar="LABEL=PATH",
                   help="model to measure (repeatable): PATH, 'shipped' or git:REV[:PATH]; "
                        "default mitoscale=shipped")
    p.add_argument("--baselines", default=",".join(BASELINES), help="comma-separated baselines ('' for none)")
    p.add_argument("--segment-config", default=None, help="segment YAML for the models (default: defaults)")
    p.add_argument("--pixel-size", type=float, default=0.08, help="µm per pixel of every image (READMEs: 0.08)")
    p.add_argument("--sigma-um", type=float, default=None,
                   help="Gaussian σ of the reference foreground in µm (default 0.1)")
    p.add_argument("--background-um", type=float, default=0.0,
                   help="subtract a Gaussian of this σ (µm) before Otsu (default 0: the issue's reference)")
    p.add_argument("--images", default="", help="only these image stems (comma-separated)")
    p.add_argument("--crop", type=int, default=0, help="use only the top-left N x N px of each image (tests)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on cores shared with other jobs, 2 threads ran 25x slower)")
    p.add_argument("--tables", default="", help="also write each instance table as TABLES/<method>/<image>.parquet")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "real_fragmentation"))
    p.add_argument("--overlays", default=str(ROOT / "docs" / "images"), help="overlay PNG folder ('' for none)")
    p.add_argument("--overlay-crop", type=int, default=512, help="edge of the overlays' crop (px)")
    p.add_argument("--update", default="", help="Markdown file whose real_fragmentation block is replaced")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.sigma_um is None:
        from mitoscale.evaluate.proxies import REFERENCE_SIGMA_UM

        args.sigma_um = REFERENCE_SIGMA_UM
    return args


def main(argv=None) -> int:
    from mitoscale.errors import InputError, MitoscaleError

    os.environ.setdefault("MITOSCALE_NO_PROGRESS", "1")
    try:
        args = parse_args(argv)
        if not (args.pixel_size > 0 and args.sigma_um > 0):
            raise InputError("--pixel-size and --sigma-um must be positive")
        run(args)
    except MitoscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
