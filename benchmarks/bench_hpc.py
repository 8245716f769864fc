"""HPC-layer overheads: SLURM worker start-up, simulate through SLURM vs local, resume cost.

Run as root on a machine with slurm-wlm + munge (``deploy/ci/prepare_test_services.sh``)::

    nice .venv/bin/python benchmarks/bench_hpc.py [--demo]

Prints a Markdown table (copied into ``benchmarks/RESULTS_hpc.md``).

Measured:
- time from ``get_client("slurm", n_workers=2)`` until both worker jobs have joined,
  against its floor: importing ``distributed`` in a fresh interpreter (what every
  worker job must do) plus SLURM's scheduling interval;
- ``write_corpus`` of the same images in-process, on a 2-worker LocalCluster and on 2
  SLURM worker jobs (cluster start-up excluded), against the floor of the per-image
  compute time divided by the workers;
- ``mitoscale run`` on an already complete run directory (the price of resuming) and
  ``mitoscale status``;
- with ``--demo``: ``mitoscale run --config configs/demo.yaml`` from scratch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "hpc"))

from slurm_service import SingleNodeSlurm, unavailable_reason  # noqa: E402

N_IMAGES = 24
SIM_SET = ["corpus.crops_per_side=2"]


def _opts(tmp: Path) -> list[str]:
    return ["queue=debug", "cores=1", "processes=1", "memory=2GiB", "walltime=00:10:00",
            "interface=lo", "dashboard_address=127.0.0.1:0", f"log_directory={tmp}/logs",
            "death_timeout=30"]


def _time(cmd: list[str], env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def bench_slurm(tmp: Path, rows: list) -> None:
    from mitoscale.cluster import get_client
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.corpus import write_corpus

    import_s = min(_time([sys.executable, "-c", "import distributed, mitoscale.simulate.render"])
                   for _ in range(3))
    cfg = load_simulate_config(None, SIM_SET)
    with SingleNodeSlurm(tmp / "slurm") as slurm:
        os.environ.update(slurm.env)
        starts = []
        for rep in range(3):
            t0 = time.perf_counter()
            with get_client("slurm", n_workers=2, options=_opts(tmp)) as client:
                client.wait_for_workers(2, timeout=120)
                starts.append(time.perf_counter() - t0)
                if rep == 0:
                    out = tmp / "slurm.zarr"
                    write_corpus(cfg, out, N_IMAGES, seed=0, client=client, chunk_images=1)  # warm
                    shutil.rmtree(out)
                    t1 = time.perf_counter()
                    write_corpus(cfg, out, N_IMAGES, seed=0, client=client, chunk_images=1)
                    slurm_sim = time.perf_counter() - t1
            slurm.cancel_all()
    rows.append(("SLURM: 2 worker jobs joined after get_client (median of 3)",
                 f"{sorted(starts)[1]:.1f} s",
                 f"{import_s:.1f} s interpreter+imports per worker, + up to 1 s sched_interval"))

    t1 = time.perf_counter()
    write_corpus(cfg, tmp / "inproc.zarr", N_IMAGES, seed=0, client=None, chunk_images=1)
    inproc = time.perf_counter() - t1
    with get_client("local", n_workers=2, options=["dashboard_address=null"]) as client:
        write_corpus(cfg, tmp / "warm.zarr", 4, seed=1, client=client, chunk_images=1)
        t1 = time.perf_counter()
        write_corpus(cfg, tmp / "local.zarr", N_IMAGES, seed=0, client=client, chunk_images=1)
        local = time.perf_counter() - t1
    per_image = inproc / N_IMAGES
    rows.append((f"simulate {N_IMAGES} x 256^2 images, in-process (1 core)", f"{inproc:.1f} s",
                 f"{per_image:.2f} s/image"))
    rows.append(("same, LocalCluster 2 workers (warm)", f"{local:.1f} s",
                 f"{inproc / 2:.1f} s = in-process / 2 cores"))
    rows.append(("same, 2 SLURM worker jobs (warm)", f"{slurm_sim:.1f} s",
                 f"{inproc / 2:.1f} s = in-process / 2 cores"))


def bench_resume(tmp: Path, rows: list, demo: bool) -> None:
    env = {**os.environ, "MITOSCALE_NO_PROGRESS": "1"}
    mito = [sys.executable, "-m", "mitoscale"]
    out = tmp / "demo_out"
    if demo:
        t = _time([*mito, "run", "--config", "configs/demo.yaml", "--out", str(out)], env)
        rows.append(("`mitoscale run --config configs/demo.yaml` from scratch", f"{t:.0f} s",
                     "target: about 10 min on a fresh 2-core machine"))
    else:
        return
    rerun = min(_time([*mito, "run", "--config", "configs/demo.yaml", "--out", str(out)], env)
                for _ in range(3))
    status = min(_time([*mito, "status", str(out)], env) for _ in range(3))
    helps = min(_time([*mito, "--help"], env) for _ in range(3))
    rows.append(("`mitoscale run` again on the complete demo run (nothing to do)", f"{rerun:.1f} s",
                 "stage configs validated + model sha256 + (no) cluster start"))
    rows.append(("`mitoscale status demo_out`", f"{status:.1f} s", f"`mitoscale --help`: {helps:.1f} s"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", action="store_true", help="also time the demo from scratch")
    args = ap.parse_args()
    os.chdir(REPO)
    os.environ["MITOSCALE_NO_PROGRESS"] = "1"
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-hpc-") as d:
        tmp = Path(d)
        reason = unavailable_reason()
        if reason:
            print(f"skipping SLURM numbers: {reason}", file=sys.stderr)
        else:
            bench_slurm(tmp, rows)
        bench_resume(tmp, rows, args.demo)
    print(f"machine: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    print("| measurement | time | floor / reference |\n| --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
