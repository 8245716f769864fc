"""Whole-screen orchestration at scale (issue 15): many small frames through the real run path.

    nice .venv/bin/python benchmarks/bench_screen.py [--frames 5000 20000] [--slurm]
                                                     [--segment-frames 1000] [--analyze-rows 5000000]

A synthetic HCS plate (OME-Zarr 0.5; wells x 5 fields x 100 time points of
128² px) is segmented by the classical baseline (cheap per frame, so the
orchestration shows) through ``run_baseline`` -> ``execute_batches``, the
executor ``mitoscale segment`` uses, on a LocalCluster of 2 single-thread
workers whose scheduler runs in its own process (`dask scheduler`; and, with ``--slurm``, on
the test suite's single-node SLURM).  ``--segment-frames`` runs the model
path (``run_segmentation``, fast preset) on a smaller plate.  Measured:

- wall time of the run against the sum of per-frame task compute
  (``task_s`` in the completion log: read + check + segment + table), i.e.
  ``overhead = wall * threads / sum(task_s) - 1``;
- peak RSS of the scheduler process and of the client (this process), sampled every 0.25 s;
- files written (all, and per well);
- ``mitoscale analyze`` on a synthesised partitioned table dataset of
  ``--analyze-rows`` instances: peak RSS (its own ``ru_maxrss``) and time;
- ``mitoscale status`` on a run folder whose log holds 100,000 frames.

Prints a JSON document (copied into BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIELDS, T = 5, 100


def make_plate(path: Path, n_frames: int, side: int = 128, seed: int = 0) -> Path:
    """An NGFF 0.5 plate of ``n_frames`` frames: rows A.., 12 columns, 5 fields, 100 t each."""
    import zarr
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_plate_metadata, write_well_metadata

    from mitoscale.io.omezarr import write_ome_zarr_image

    if (path / "zarr.json").exists():  # kept from an earlier run (--keep)
        return path
    n_wells = max(1, n_frames // (FIELDS * T))
    wells = [(chr(ord("A") + i // 12), str(i % 12 + 1)) for i in range(n_wells)]
    g = zarr.open_group(str(path), mode="w", zarr_format=3)
    fmt = FormatV05()
    write_plate_metadata(g, sorted({r for r, _ in wells}), sorted({c for _, c in wells}, key=int),
                         [f"{r}/{c}" for r, c in wells], fmt=fmt, name="bench screen")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    for r, c in wells:
        write_well_metadata(g.require_group(f"{r}/{c}"), [{"path": str(f)} for f in range(FIELDS)], fmt=fmt)
        for f in range(FIELDS):
            img = rng.poisson(20, (T, side, side)).astype(np.uint16)
            for _ in range(8):  # a few elongated objects per frame, the same through time
                cy, cx = rng.integers(10, side - 10, 2)
                a = rng.uniform(0, np.pi)
                d = (yy - cy) * np.cos(a) - (xx - cx) * np.sin(a)
                e = (yy - cy) * np.sin(a) + (xx - cx) * np.cos(a)
                img[:, (np.abs(d) < 2) & (np.abs(e) < rng.integers(3, 15))] += 300
            write_ome_zarr_image(path / r / c / str(f), img, "tyx", 0.08, version="0.5")
    return path


class Sampler:
    """Peak RSS of the scheduler process and of this process while a run goes on."""

    def __init__(self, client):
        import psutil

        self.client, self.me = client, psutil.Process()
        self.sched = self.me_peak = 0
        self.sched_tasks = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def _probe(self):
        def probe(dask_scheduler):
            import psutil

            return psutil.Process().memory_info().rss, len(dask_scheduler.tasks)

        rss, n = self.client.run_on_scheduler(probe)
        self.sched, self.sched_tasks = max(self.sched, rss), max(self.sched_tasks, n)
        self.me_peak = max(self.me_peak, self.me.memory_info().rss)

    def _run(self):
        while not self._stop.is_set():
            try:
                self._probe()
            except Exception:  # noqa: BLE001 - the cluster closing
                pass
            time.sleep(0.25)

    def _cpu(self):
        def cpu(dask_scheduler):
            import psutil

            t = psutil.Process().cpu_times()
            return t.user + t.system

        def wcpu():
            import psutil

            t = psutil.Process().cpu_times()
            return t.user + t.system

        t = self.me.cpu_times()
        return self.client.run_on_scheduler(cpu), t.user + t.system, sum(self.client.run(wcpu).values())

    def __enter__(self):
        self._probe()
        self.sched_start = self.sched
        self._cpu0 = self._cpu()
        self._th.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._th.join()
        s1, c1, w1 = self._cpu()
        self.sched_cpu, self.client_cpu, self.workers_cpu = s1 - self._cpu0[0], c1 - self._cpu0[1], w1 - self._cpu0[2]


def _manifest_seconds(out: Path) -> float:
    return float(json.loads((out / "manifest.json").read_text()).get("seconds", 0.0))


def _files(out: Path) -> dict:
    files = [p for p in out.rglob("*") if p.is_file()]
    wells = {p.parent for p in files if p.name.endswith(".parquet") and "plate_well=" in p.parent.name}
    return {"files": len(files), "parquet_files": sum(p.suffix == ".parquet" for p in files),
            "wells": len(wells), "files_per_well": (sum(p.suffix == ".parquet" for p in files) / len(wells)
                                                    if wells else None)}


def run_screen(client, plate: Path, out: Path, threads: int, segment: bool = False) -> dict:
    from mitoscale.io.runfolder import RunFolder

    with Sampler(client) as s:
        t0 = time.perf_counter()
        if segment:
            from mitoscale.segment.config import SegmentConfig
            from mitoscale.segment.pipeline import run_segmentation

            cfg = SegmentConfig.model_validate({"prompts": {"sampling": "maxima"}})
            man = run_segmentation(plate, out, cfg=cfg, client=client, progress=False)
            execution = man["execution"]
        else:
            from mitoscale.evaluate.baselines.run import run_baseline

            res = run_baseline("classical", plate, out, client=client)
            execution = res["execution"]
        wall = time.perf_counter() - t0
    totals = RunFolder(out, "?").totals()
    frames = len(RunFolder(out, "?").markers.completed())
    task = totals["task_s"]
    task_cpu = totals.get("task_cpu_s", 0.0)  # the frames' own CPU (thread time; not inflated by other load)
    stage = totals.get("stage_s", 0.0)
    merge = execution.get("merge_s", 0.0)
    return {"frames": frames, "wall_s": round(wall, 2), "sum_task_s": round(task, 2), "threads": threads,
            "overhead_vs_compute": round(wall * threads / task - 1, 4),
            "overhead_ms_per_frame": round((wall * threads - task) / frames * 1000, 3),
            "frames_per_s": round(frames / wall, 1),
            "sum_stage_s": round(stage, 2), "sum_merge_s": round(merge, 2),
            "outside_tasks_vs_compute": round((wall * threads - task - stage - merge) / task, 4),
            "scheduler_rss_start_mb": round(s.sched_start / 2**20, 1),
            "scheduler_rss_peak_mb": round(s.sched / 2**20, 1),
            "scheduler_tasks_peak": s.sched_tasks,
            "scheduler_cpu_s": round(s.sched_cpu, 2), "client_cpu_s": round(s.client_cpu, 2),
            "workers_cpu_s": round(s.workers_cpu, 2),
            # CPU spent on anything but the frames' own compute, over that compute: robust to other
            # load on the machine, unlike the wall-based overhead (idle workers do not show here)
            "sum_task_cpu_s": round(task_cpu, 2),
            "cpu_overhead_vs_compute": round((s.workers_cpu + s.sched_cpu + s.client_cpu - task_cpu) / task_cpu, 4)
            if task_cpu else None,
            "scheduler_cpu_ms_per_task": round(s.sched_cpu / max(1, execution.get("tasks") or 1) * 1000, 2),
            "client_cpu_ms_per_task": round(s.client_cpu / max(1, execution.get("tasks") or 1) * 1000, 2), "client_rss_peak_mb": round(s.me_peak / 2**20, 1),
            **{k: execution.get(k) for k in ("frames_per_task", "tasks", "max_in_flight", "merges")},
            "plan_and_claim_s": round(wall - _manifest_seconds(out), 2),
            **_files(out)}


def synth_tables(root: Path, n_rows: int, wells: int = 384, per_frame: int = 30) -> Path:
    """A partitioned instance-table dataset of ``n_rows`` rows written directly (no segmentation)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mitoscale.io.partitions import partition_file, partition_of
    from mitoscale.io.tables import SCHEMA
    from mitoscale.shape import SHAPE_COLUMNS

    rng = np.random.default_rng(1)
    per_well = n_rows // wells
    for w in range(wells):
        well = f"{chr(ord('A') + w // 24)}/{w % 24 + 1}"
        n = per_well
        frame = np.arange(n) // per_frame
        cols = {"image_id": ["plate"] * n, "well": [well] * n, "field": (frame % 9).astype(np.int32),
                "t": (frame // 9).astype(np.int32), "z": np.zeros(n, np.int32),
                "instance_id": (np.arange(n) % per_frame + 1).astype(np.int64)}
        area = rng.integers(20, 900, n)
        for c, dt in SCHEMA.items():
            if c in cols:
                continue
            if c == "mask":
                cols[c] = [b"\xff\x0f"] * n
            elif c == "area_px":
                cols[c] = area
            elif c == "area_um2":
                cols[c] = area * 0.0064
            elif c == "pixel_size_um":
                cols[c] = np.full(n, 0.08)
            elif dt.startswith("int"):
                cols[c] = rng.integers(0, 128, n).astype(dt)
            else:
                cols[c] = rng.random(n)
        for c, dt in SHAPE_COLUMNS.items():
            cols[c] = rng.integers(0, 4, n).astype(dt) if dt.startswith("int") else rng.random(n)
        f = partition_file(root, partition_of({"image_id": "plate", "well": well}))
        f.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols), f, compression="zstd", row_group_size=per_frame * 9)
    return root / "instances"


def _peak_rss_of(code: str) -> tuple[float, float, str]:
    """Run ``code`` in a fresh interpreter; its own peak RSS (MB) and wall time."""
    wrapped = code + "\nimport resource, sys\nprint('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(REPO), "MITOSCALE_NO_PROGRESS": "1"})
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    kb = int(next(ln for ln in r.stdout.splitlines() if ln.startswith("PEAK_KB")).split()[1])
    return kb / 1024, wall, r.stdout


def bench_analyze(tmp: Path, n_rows: int) -> dict:
    t0 = time.perf_counter()
    inst = synth_tables(tmp / "tables", n_rows)
    synth = time.perf_counter() - t0
    cond = tmp / "cond.csv"
    cond.write_text("well,condition\n" + "".join(f"{chr(ord('A') + w // 24)}/{w % 24 + 1},c{w % 4}\n"
                                                 for w in range(384)))
    base, _, _ = _peak_rss_of("import mitoscale.analyse.run, mitoscale.cli")
    peak, wall, _ = _peak_rss_of(
        f"from mitoscale.cli import main\nimport sys\nrc = main(['analyze', {str(inst)!r}, '--conditions', "
        f"{str(cond)!r}, '--out', {str(tmp / 'an')!r}, '--set', 'n_bootstrap=200'])\nassert rc == 0, rc")
    return {"rows": n_rows, "synth_s": round(synth, 1), "analyze_wall_s": round(wall, 1),
            "analyze_peak_rss_mb": round(peak, 1), "interpreter_with_imports_rss_mb": round(base, 1),
            "dataset_mb": round(sum(p.stat().st_size for p in inst.rglob("*.parquet")) / 2**20, 1)}


def bench_status(tmp: Path, n: int = 100_000) -> dict:
    from mitoscale.io.atomic import atomic_write_json
    from mitoscale.io.unitlog import UnitLog

    out = tmp / "status-run"
    log = UnitLog(out / "units.log")
    recs = [(f"plate__{chr(65 + i // 12000)}-{i // 1000 % 12 + 1}__f{i // 100 % 10}__t{i % 100}__z0",
             "done" if i % 997 else "failed", {"instances": 12, "task_s": 0.01} if i % 997 else
             {"reason": "frame is constant"}) for i in range(n)]
    for i in range(0, n, 5000):
        log.append(recs[i:i + 5000])
    atomic_write_json(out / "manifest.json", {"stage": "segment", "status": "running", "units": n,
                                              "identity": {"stage": "segment"}})
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "mitoscale", "status", str(out)], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mitoscale.cli"], env={**os.environ, "PYTHONPATH": str(REPO)})
    floor = time.perf_counter() - t1
    return {"frames": n, "status_wall_s": round(wall, 2), "python_import_floor_s": round(floor, 2),
            "first_line": r.stdout.splitlines()[0] if r.stdout else r.stderr[-300:]}


def _local_client(tmp: Path):
    """A scheduler and 2 single-thread workers in their own processes (logs to files, never a full pipe)."""
    from distributed import Client

    sf = tmp / "scheduler.json"
    sf.unlink(missing_ok=True)
    logs = open(tmp / "cluster.log", "ab")
    py = [sys.executable, "-m"]
    # as deploy/slurm/dask-cluster.sbatch starts it (mitoscale.cluster.launch.LOG_LENGTH)
    from mitoscale.cluster.launch import LOG_LENGTH

    env = {**os.environ, "DASK_DISTRIBUTED__ADMIN__LOW_LEVEL_LOG_LENGTH": str(LOG_LENGTH)}
    procs = [subprocess.Popen(py + ["distributed.cli.dask_scheduler", "--scheduler-file", str(sf), "--host",
                                    "127.0.0.1", "--port", "0", "--no-dashboard"], stdout=logs, stderr=logs,
                              env=env)]
    deadline = time.monotonic() + 60
    while not sf.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    procs.append(subprocess.Popen(py + ["distributed.cli.dask_worker", "--scheduler-file", str(sf), "--nworkers",
                                        "2", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                                  stdout=logs, stderr=logs, env={**os.environ, "PYTHONPATH": str(REPO)}))
    client = Client(scheduler_file=str(sf))
    client.wait_for_workers(2, timeout=120)

    class _Procs:
        def close(self):
            for p in reversed(procs):
                if p.poll() is None:
                    p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()

    cluster = _Procs()
    atexit.register(cluster.close)  # a benchmark stopped with Ctrl-C or SIGTERM leaves no cluster behind
    return cluster, client


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--segment-frames", type=int, default=1000)
    ap.add_argument("--analyze-rows", type=int, default=5_000_000)
    ap.add_argument("--slurm", action="store_true", help="also on the test suite's single-node SLURM")
    ap.add_argument("--no-local", action="store_true", help="skip the LocalCluster runs")
    ap.add_argument("--no-status", action="store_true", help="skip the status timing")
    ap.add_argument("--keep", default=None, help="work directory to keep (default: a temporary one)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks and atexit
    os.environ.setdefault("MITOSCALE_NO_PROGRESS", "1")
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="bench-screen-"))
    tmp.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": os.uname().nodename,
              "cpus": os.cpu_count(), "load_before": os.getloadavg(), "runs": []}
    try:
        plates = {}
        need = [] if args.no_local and not args.slurm else args.frames + (
            [args.segment_frames] if args.segment_frames and not args.no_local else [])
        for n in sorted(set(need)):
            t0 = time.perf_counter()
            plates[n] = make_plate(tmp / f"plate{n}.ome.zarr", n)
            print(f"plate of {n} frames written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        # a fresh scheduler per size: its memory at 5,000 and at 20,000 frames compares like with like
        runs = [] if args.no_local else [(n, False) for n in args.frames] + (
            [(args.segment_frames, True)] if args.segment_frames else [])
        for n, segment in runs:
            cluster, client = _local_client(tmp)
            try:
                r = run_screen(client, plates[n], tmp / f"out-local-{n}{'-seg' if segment else ''}", 2,
                               segment=segment)
            finally:
                client.close()
                cluster.close()
            report["runs"].append({"cluster": "local (dask scheduler + 2 workers x 1 thread, own processes, "
                                              "a fresh scheduler per run)",
                                   "path": "segment (shipped model, maxima preset)" if segment
                                   else "baseline classical", **r, "load": os.getloadavg()})
            print(json.dumps(report["runs"][-1]), file=sys.stderr)
        if args.slurm:
            report["runs"] += bench_slurm(tmp, plates, args.frames)
        if not args.no_status:
            report["status"] = bench_status(tmp)
            print(json.dumps(report["status"]), file=sys.stderr)
        if args.analyze_rows:
            report["analyze"] = bench_analyze(tmp, args.analyze_rows)
        report["load_after"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


def bench_slurm(tmp: Path, plates: dict, frames: list[int]) -> list[dict]:
    sys.path.insert(0, str(REPO / "tests" / "hpc"))
    from helpers import slurm_profile_opts
    from slurm_service import SingleNodeSlurm, unavailable_reason

    from mitoscale.cluster import get_client

    reason = unavailable_reason()
    if reason:
        return [{"cluster": "slurm", "skipped": reason}]
    runs = []
    with SingleNodeSlurm(tmp / "slurm") as _:
        with get_client("slurm", n_workers=2, options=slurm_profile_opts(tmp)) as client:
            client.wait_for_workers(2, timeout=180)
            for n in frames:
                r = run_screen(client, plates[n], tmp / f"out-slurm-{n}", 2)
                runs.append({"cluster": "slurm (single node, 2 worker jobs x 1 core)",
                             "path": "baseline classical", **r, "load": os.getloadavg()})
                print(json.dumps(runs[-1]), file=sys.stderr)
    return runs


if __name__ == "__main__":
    sys.exit(main())
