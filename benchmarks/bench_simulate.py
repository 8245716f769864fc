"""Benchmark of ``mitoscale simulate``: per-stage costs, the FFT floor, images/s on 1 and 2 workers.

Usage::

    nice .venv/bin/python benchmarks/bench_simulate.py --n-images 240 --workers 1 2 \
        [--results benchmarks/RESULTS_simulate.md]

Prints a Markdown report (and writes it with ``--results``).  Throughput is
measured end to end: 512 x 512 images with masks and table, written to a
Zarr v3 corpus on local disk by a real ``LocalCluster`` (one single-threaded
worker process per core), after each worker has built its OTF cache.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft as sfft


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _best(fn, repeat=7):
    """Minimum wall time of ``fn()`` over ``repeat`` runs (least disturbed by other load)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def stage_costs(cfg, n=8):
    """Per-stage wall time of one 512 x 512 image in this process (min and median over images)."""
    from mitoscale.simulate import render as R
    from mitoscale.simulate.geometry import sample_tubes
    from mitoscale.simulate.imaging import focal_scan_max, otf_stack
    from mitoscale.simulate.raster import rasterise
    from mitoscale.io.tables import instances_to_table

    c, o = cfg.corpus, cfg.optics
    shape = (c.image_px, c.image_px)
    planes, focal = R._planes(cfg)
    t0 = time.perf_counter()
    stack = otf_stack(o.optics(), c.pixel_size_nm, shape, planes, focal, o.z0_depth_nm,
                      o.psf_radius_nm, o.oversample)
    setup = time.perf_counter() - t0
    rec = {k: [] for k in ("geometry", "rasterise", "focal scan", "noise", "labels + table", "total")}
    for i in range(n):
        t = [time.perf_counter()]
        tubes = sample_tubes([(R.crop_rng(0, i, r, col), ((col + .5) * c.crop_nm, (r + .5) * c.crop_nm), r, col)
                              for r in range(c.crops_per_side) for col in range(c.crops_per_side)],
                             cfg.geometry)
        t.append(time.perf_counter())
        density, masks = rasterise(tubes, shape, c.pixel_size_nm, np.asarray(planes), stack.margin_px,
                                   grid_shape=stack.padded_shape)
        t.append(time.perf_counter())
        blurred = focal_scan_max(density, stack, shape)
        t.append(time.perf_counter())
        img = np.random.default_rng(i).poisson(100.0 + 1000.0 * blurred).astype(np.uint16)
        t.append(time.perf_counter())
        kept = [m for m in masks if m is not None]
        R.layer_labels(kept, shape)
        instances_to_table([m for _, m in kept], offsets=[b[:2] for b, _ in kept], shape=shape,
                           image=img, image_id="x", pixel_size_um=0.08)
        t.append(time.perf_counter())
        R.simulate_image(cfg, 0, i)
        t.append(time.perf_counter())
        for key, a, b in zip(rec, t[:-1], t[1:]):
            rec[key].append(b - a)
    return setup, {k: (min(v), float(np.median(v))) for k, v in rec.items()}, stack


def fft_floor(stack, shape, n_planes):
    """Time and flop count of the irreducible transform work of one image."""
    h, w = shape
    ph, pw = stack.padded_shape
    m, n_kx = stack.margin_px, stack.n_kx
    n_freq, n_focal, _ = stack.values.shape
    dens = np.random.default_rng(0).random((n_planes, ph, pw), dtype=np.float32)
    spec = np.zeros((n_freq, n_planes, 2), np.float32)
    full = np.zeros((n_focal, ph, n_kx), np.complex64)

    def fwd():
        sfft.fft(sfft.rfft(dens, axis=2)[:, :, :n_kx], axis=1)

    def mac():
        np.matmul(stack.values, spec)

    def inv():
        sfft.irfft(sfft.ifft(full, axis=1)[:, m:m + h], n=pw, axis=2)

    t_fwd, t_mac, t_inv = _best(fwd)[0], _best(mac)[0], _best(inv)[0]
    lg = np.log2
    # split-radix-ish counts: real FFT of length N ~ 2.5 N log2 N, complex ~ 5 N log2 N flops
    flops_fwd = n_planes * (ph * 2.5 * pw * lg(pw) + n_kx * 5 * ph * lg(ph))
    flops_inv = n_focal * (n_kx * 5 * ph * lg(ph) + h * 2.5 * pw * lg(pw))
    flops_mac = n_freq * n_focal * n_planes * 2 * 2
    otf_bytes = stack.values.nbytes
    return dict(t_fwd=t_fwd, t_mac=t_mac, t_inv=t_inv, flops_fwd=flops_fwd, flops_inv=flops_inv,
                flops_mac=flops_mac, otf_bytes=otf_bytes, padded=(ph, pw), n_kx=n_kx, n_freq=n_freq,
                n_focal=n_focal, n_planes=n_planes)


def _warm(cfg_json=None):
    from mitoscale.simulate import SimulateConfig, simulate_image

    cfg = SimulateConfig() if cfg_json is None else SimulateConfig.model_validate_json(cfg_json)
    if cfg.preset == "broad":
        from mitoscale.simulate.broad import warm_bank

        warm_bank(cfg, 0)  # every optics configuration of the bank, as a long corpus run amortises it
    simulate_image(cfg, 0, 0)
    return os.getpid()


def _cpu_seconds():
    return time.process_time()


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def throughput(cfg, n_images, workers, tmp):
    from distributed import Client, LocalCluster

    from mitoscale.simulate import write_corpus

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        t0 = time.perf_counter()
        client.run(_warm, cfg.model_dump_json())
        warm = time.perf_counter() - t0
        out = Path(tmp) / f"bench-{workers}.zarr"
        shutil.rmtree(out, ignore_errors=True)
        load0 = os.getloadavg()[0]
        cpu0 = client.run(_cpu_seconds)
        res = write_corpus(cfg, out, n_images, seed=0, client=client)
        cpu1 = client.run(_cpu_seconds)
        load1 = os.getloadavg()[0]
        rss = client.run(_peak_rss_mb)
        cpu = sum(cpu1[k] - cpu0[k] for k in cpu1)
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    return dict(workers=workers, seconds=res["seconds"], rate=n_images / res["seconds"], warm=warm,
                cpu_per_image=cpu / n_images, capacity=workers * n_images / cpu,
                rss=max(rss.values()), load=(load0, load1), bytes_per_image=size / n_images)


def _throughput_rows(cfg, args, lines):
    """Run the throughput measurement on each worker count, append its rows, print and write the report."""
    tmp = tempfile.mkdtemp(prefix="bench-simulate-")
    results = []
    try:
        for w in args.workers:
            r = throughput(cfg, args.n_images, w, tmp)
            results.append(r)
            lines.append(f"| {w} | {r['rate']:.1f} | {r['seconds']:.1f} | {r['cpu_per_image'] * 1e3:.0f} | "
                         f"{r['capacity']:.1f} | {r['warm']:.1f} | {r['rss']:.0f} | "
                         f"{r['load'][0]:.1f} / {r['load'][1]:.1f} | {r['bytes_per_image'] / 1024:.0f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if len(results) >= 2:
        lines += ["", f"Speed-up {results[-1]['workers']} vs {results[0]['workers']} workers: "
                      f"{results[-1]['rate'] / results[0]['rate']:.2f} x"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.results:
        Path(args.results).write_text(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-images", type=int, default=240)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--results", default=None, help="write the Markdown report here")
    ap.add_argument("--preset", default="paper", choices=["paper", "broad"])
    args = ap.parse_args(argv)
    os.environ.setdefault("MITOSCALE_NO_PROGRESS", "1")
    from threadpoolctl import threadpool_limits

    from mitoscale.simulate import SimulateConfig
    from mitoscale.cluster.worker import tune_malloc as _tune_malloc

    _tune_malloc()  # as in the corpus workers
    from mitoscale.simulate.config import load_simulate_config

    cfg = load_simulate_config(None, preset=args.preset)
    if args.preset == "broad":
        return _broad_report(cfg, args)
    lines = [
        "# Simulator benchmark (`benchmarks/bench_simulate.py`)",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"{_cpu_model()}; load average at start: {os.getloadavg()[0]:.1f}",
        f"- command: `.venv/bin/python benchmarks/bench_simulate.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    with threadpool_limits(1):
        setup, stages, stack = stage_costs(cfg)
        floor = fft_floor(stack, (cfg.corpus.image_px,) * 2, len(stack.plane_z_nm))
    lines += ["## One 512 x 512 image, one core (min / median of 8 images, ms)", "",
              f"OTF stack set-up (once per worker process): {setup:.2f} s", "",
              "| stage | min | median |", "|---|---|---|"]
    lines += [f"| {k} | {a * 1e3:.1f} | {b * 1e3:.1f} |" for k, (a, b) in stages.items()]
    f = floor
    t_floor = f["t_fwd"] + f["t_mac"] + f["t_inv"]
    gflops = (f["flops_fwd"] + f["flops_inv"] + f["flops_mac"]) / 1e9
    lines += [
        "", "## The floor", "",
        f"Per image the optics need {f['n_planes']} forward real 2D FFTs (object planes) and "
        f"{f['n_focal']} inverse ones (focal slices) on the padded {f['padded'][0]} x {f['padded'][1]} "
        f"grid, pruned to the {f['n_kx']} low-frequency columns inside the cutoff 2 NA / lambda, and "
        f"{f['n_freq']} x {f['n_focal']} x {f['n_planes']} real x complex multiply-adds "
        f"(the OTF stack, {f['otf_bytes'] / 2**20:.1f} MiB float32, streamed once per image).",
        "",
        f"- forward FFTs: {f['flops_fwd'] / 1e6:.0f} Mflop, measured {f['t_fwd'] * 1e3:.1f} ms",
        f"- OTF multiply-add: {f['flops_mac'] / 1e6:.0f} Mflop + {f['otf_bytes'] / 2**20:.0f} MiB read, "
        f"measured {f['t_mac'] * 1e3:.1f} ms",
        f"- inverse FFTs: {f['flops_inv'] / 1e6:.0f} Mflop, measured {f['t_inv'] * 1e3:.1f} ms",
        f"- floor: {gflops:.2f} Gflop, **{t_floor * 1e3:.1f} ms per image = {t_floor * 1e3 / 16:.2f} ms per "
        f"128 x 128 crop** on one core; the full image takes {stages['total'][0] * 1e3:.1f} ms "
        f"({stages['total'][0] / t_floor:.1f} x the floor); rasterisation, noise and the table are the rest.",
        "", "## Throughput (write_corpus, LocalCluster, 512 x 512 images with masks and table to Zarr)", "",
        "| workers | images/s (wall) | wall (s) | worker CPU ms / image | images/s at 1 core per worker (CPU) "
        "| worker warm-up (s) | peak RSS per worker (MiB) | load avg start/end | disk per image (KiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    _throughput_rows(cfg, args, lines)


def _broad_report(cfg, args):
    """Broad preset: per-image cost on one core (warm bank), then throughput on 1 and 2 workers."""
    from threadpoolctl import threadpool_limits

    from mitoscale.simulate import simulate_image
    from mitoscale.simulate.broad import warm_bank

    lines = [
        "# Simulator benchmark, broad preset (`benchmarks/bench_simulate.py --preset broad`)", "",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores, "
        f"{_cpu_model()}; load average at start: {os.getloadavg()[0]:.1f}",
        f"- command: `.venv/bin/python benchmarks/bench_simulate.py {' '.join(sys.argv[1:])}`", "",
    ]
    with threadpool_limits(1):
        t0 = time.perf_counter()
        n_bank = warm_bank(cfg, 0)
        setup = time.perf_counter() - t0
        times, counts = [], []
        for i in range(16):
            t1 = time.perf_counter()
            s = simulate_image(cfg, 0, i)
            times.append(time.perf_counter() - t1)
            counts.append(len(s.table))
    lines += ["## One 512 x 512 image, one core, bank warm", "",
              f"- OTF stacks of the {n_bank} bank configurations (once per worker process): {setup:.1f} s",
              f"- per image over 16 images: min {min(times) * 1e3:.0f} ms, median {np.median(times) * 1e3:.0f} ms, "
              f"max {max(times) * 1e3:.0f} ms; {np.mean(counts):.0f} instances per image on average", "",
              "## Throughput (write_corpus, LocalCluster, after each worker warmed its bank)", "",
              "| workers | images/s (wall) | wall (s) | worker CPU ms / image | images/s at 1 core per worker (CPU) "
              "| worker warm-up (s) | peak RSS per worker (MiB) | load avg start/end | disk per image (KiB) |",
              "|---|---|---|---|---|---|---|---|---|"]
    _throughput_rows(cfg, args, lines)


if __name__ == "__main__":
    main()
