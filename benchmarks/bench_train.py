"""Training throughput: encoder in the loop vs the embedding cache, fp32 vs bf16, DDP scaling.

Every case is a real ``mitoscale train`` run (``run_training``) on a small
corpus from the real simulator, in its own process so peak memory (max RSS)
is per case.  Steps/s and images/s are read from the run's ``logs/train.csv``
after dropping the first (warm-up) steps.

Usage::

    python benchmarks/bench_train.py --out /tmp/bench_train [--cases small,vitb] [--steps 6]

Prints a Markdown table (paste into benchmarks/RESULTS_train.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import yaml

# name: (variant, freeze encoder?, use cache?, precision, nproc, batch, K, window, threads)
CASES = {
    "mito256-full-fp32": ("mito256", False, False, "fp32", 1, 4, 12, 16, 2),
    "mito256-full-bf16": ("mito256", False, False, "bf16", 1, 4, 12, 16, 2),
    "mito256-frozen-loop": ("mito256", True, False, "fp32", 1, 4, 12, 16, 2),
    "mito256-frozen-cache": ("mito256", True, True, "fp32", 1, 4, 12, 16, 2),
    "mito256-full-fp32-1thread": ("mito256", False, False, "fp32", 1, 4, 12, 16, 1),
    "mito256-full-bf16-1thread": ("mito256", False, False, "bf16", 1, 4, 12, 16, 1),
    "mito256-bf16-1proc-1thread": ("mito256", False, False, "bf16", 1, 2, 12, 16, 1),
    "mito256-bf16-ddp2-1thread": ("mito256", False, False, "bf16", 2, 2, 12, 16, 1),
    "vit_b_512-frozen-loop": ("vit_b_512", True, False, "fp32", 1, 1, 12, None, 2),
    "vit_b_512-frozen-cache": ("vit_b_512", True, True, "fp32", 1, 1, 12, None, 2),
    "vit_b_512-frozen-loop-w8": ("vit_b_512", True, False, "fp32", 1, 1, 12, 8, 2),
    "vit_b_512-frozen-cache-w8": ("vit_b_512", True, True, "fp32", 1, 1, 12, 8, 2),
    "vit_b_512-frozen-loop-1thread": ("vit_b_512", True, False, "fp32", 1, 1, 12, None, 1),
    "vit_b_512-frozen-cache-1thread": ("vit_b_512", True, True, "fp32", 1, 1, 12, None, 1),
    "vit_b_512-frozen-loop-w8-1thread": ("vit_b_512", True, False, "fp32", 1, 1, 12, 8, 1),
    "vit_b_512-frozen-cache-w8-1thread": ("vit_b_512", True, True, "fp32", 1, 1, 12, 8, 1),
    "vit_b-frozen-loop": ("vit_b", True, False, "fp32", 1, 1, 12, None, 2),
    "vit_b-frozen-cache": ("vit_b", True, True, "fp32", 1, 1, 12, None, 2),
}
GROUPS = {
    "small": [c for c in CASES if c.startswith("mito256")],
    "vitb": [c for c in CASES if c.startswith("vit_b_512") and not c.endswith("1thread")],
    "onethread": [c for c in CASES if c.endswith("-1thread") and "ddp" not in c and "1proc" not in c],
    "vitb1024": ["vit_b-frozen-loop", "vit_b-frozen-cache"],
}


def make_corpus(path: Path, n: int) -> Path:
    from mitoscale.simulate import load_simulate_config, write_corpus

    if not (path / "zarr.json").exists():
        write_corpus(load_simulate_config(None), path, n, seed=42, chunk_images=4)
    return path


def write_cfg(path: Path, case: str, corpus: Path, steps: int, cache: Path | None) -> Path:
    variant, frozen, use_cache, precision, _, batch, k, window, threads = CASES[case]
    cfg = {
        "seed": 0,
        "model": {"variant": variant, "freeze": ["image_encoder"] if frozen else [],
                  "decoder_window": window},
        "data": {"corpus": str(corpus), "val_fraction": 0.0, "points_per_image": k,
                 "embedding_cache": str(cache) if use_cache else None},
        "steps": steps, "batch_size": batch, "log_every": 1, "checkpoint_every": 10_000,
        "val_every": 10_000, "precision": precision, "threads": threads, "tensorboard": False,
        "optim": {"warmup_steps": 1},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_case(case: str, work: Path, corpus: Path, steps: int, warmup: int) -> dict:
    variant, frozen, use_cache, precision, nproc, batch, k, window, threads = CASES[case]
    cache = None
    embed_s = None
    if use_cache:
        cache = work / f"cache-{variant}.zarr"
        if not (cache / "zarr.json").exists():
            cfg = write_cfg(work / f"{case}-embed.yaml", case, corpus, steps, None)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mitoscale", "train", "embed", "--config", str(cfg),
                            "--out", str(cache), "--workers", "1", "--threads", str(threads),
                            "--dtype", "float32"], check=True, capture_output=True)
            embed_s = time.perf_counter() - t0
    cfg = write_cfg(work / f"{case}.yaml", case, corpus, steps, cache)
    out = work / f"run-{case}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MITOSCALE_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "mitoscale", "train", "--config", str(cfg), "--out", str(out)]
    if nproc > 1:
        cmd += ["--nproc-per-node", str(nproc)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t0
    rows = list(csv.DictReader((out / "logs" / "train.csv").open()))[warmup:]
    sps = [float(r["steps_per_s"]) for r in rows]
    steps_per_s = len(sps) / sum(1 / s for s in sps)  # harmonic mean = total steps / total time
    imgs = steps_per_s * batch * nproc
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MiB, largest child so far
    return {"case": case, "variant": variant, "frozen": frozen, "cache": use_cache,
            "precision": precision, "nproc": nproc, "threads": threads, "batch": batch, "K": k,
            "steps_per_s": steps_per_s, "s_per_step": 1 / steps_per_s, "images_per_s": imgs,
            "prompts_per_s": imgs * k, "peak_rss_mib": peak, "wall_s": wall, "embed_s": embed_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_train"))
    ap.add_argument("--cases", default="small,vitb",
                    help="comma-separated case names or groups (small, vitb, vitb1024, onethread)")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2, help="logged steps dropped from the timing")
    ap.add_argument("--n-images", type=int, default=8)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(args.out / "corpus.zarr", args.n_images)
    if args.one:  # one case in this process, so RUSAGE_CHILDREN is this case's peak
        print(json.dumps(run_case(args.one, args.out, corpus, args.steps, args.warmup)))
        return 0
    names = []
    for item in args.cases.split(","):
        names += GROUPS.get(item, [item])
    results = []
    for name in names:
        p = subprocess.run([sys.executable, __file__, "--out", str(args.out), "--one", name,
                            "--steps", str(args.steps), "--warmup", str(args.warmup),
                            "--n-images", str(args.n_images)], capture_output=True, text=True)
        if p.returncode:
            print(f"{name}: FAILED\n{p.stderr[-2000:]}", file=sys.stderr)
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("| case | precision | procs x threads | batch x K | s/step | steps/s | images/s | prompts/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['precision']} | {r['nproc']} x {r['threads']} | {r['batch']} x {r['K']} | "
              f"{r['s_per_step']:.2f} | {r['steps_per_s']:.3f} | {r['images_per_s']:.2f} | "
              f"{r['prompts_per_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
