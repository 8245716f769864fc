"""Scheduler memory per task through the real executor (issue 15): what grows with the tasks run.

    .venv/bin/python benchmarks/bench_scheduler_memory.py [--tasks 4000] [--step 1000] [--frames-per-task 64]

A fresh ``dask scheduler`` process and 2 single-thread workers (own processes);
batches of real lazy frames (a 128² NGFF movie, dask slices of its Zarr
array, as ``plan_baseline`` lists them) are run through
``mitoscale.io.batches.execute_batches`` with the same submission as
``run_baseline`` but a task body that only touches its frames' keys, so only
orchestration costs.  After every ``--step`` tasks the scheduler's RSS and
the sizes of its records (task groups/prefixes, logs, events, computations)
are read with ``run_on_scheduler``.  Prints JSON: RSS per 1,000 tasks (slope
over the later steps) and the records that grew.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def _noop_batch(batch, out):
    """Stands in for a batch task: no pixels read, nothing staged."""
    return {u: {"task_s": 0.0, "n_instances": 0, "seconds": 0.0} for u in batch.units}


def scheduler_state(dask_scheduler) -> dict:
    import gc

    import psutil

    s = dask_scheduler
    gc.collect()
    comp = list(getattr(s, "computations", []))
    return {
        "rss_mb": psutil.Process().memory_info().rss / 2**20,
        "tasks": len(s.tasks), "task_groups": len(s.task_groups), "task_prefixes": len(s.task_prefixes),
        "transition_log": len(s.transition_log),
        "events": sum(len(v.events) for v in s._broker._topics.values()) if hasattr(s, "_broker") else None,
        "event_topics": len(s._broker._topics) if hasattr(s, "_broker") else None,
        "events_by_topic": ({k: len(v.events) for k, v in s._broker._topics.items()}
                            if hasattr(s, "_broker") else None),
        "computations": len(comp),
        "computation_groups": sum(len(c.groups) for c in comp),
        "computation_code": sum(len(repr(c.code)) for c in comp),
        "erred_tasks": len(getattr(s, "erred_tasks", ())),
        "clients": len(s.clients),
        "gc_objects": len(gc.get_objects()),
        "prefix_durations": sum(len(getattr(p, "all_durations", {})) for p in s.task_prefixes.values()),
        "system_monitor": s.monitor.count if hasattr(s, "monitor") else None,
        "modules": len(sys.modules),
        "stage_imported": any(m.startswith(("mitoscale.evaluate", "mitoscale.segment", "torch")) for m in sys.modules),
    }


def _types(dask_scheduler, top=15):
    import gc
    from collections import Counter

    gc.collect()
    c = Counter(type(o).__qualname__ for o in gc.get_objects())
    return c.most_common(top)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=4000)
    ap.add_argument("--step", type=int, default=1000)
    ap.add_argument("--frames-per-task", type=int, default=64)
    ap.add_argument("--types", action="store_true", help="also the most common object types on the scheduler")
    args = ap.parse_args(argv)
    os.environ.setdefault("MITOSCALE_NO_PROGRESS", "1")
    from bench_screen import _local_client

    from mitoscale.evaluate.baselines.run import plan_baseline
    from mitoscale.io.batches import execute_batches, make_batches, submit_batch
    try:
        from mitoscale.io.batches import submit_key
    except ImportError:  # before the fix: the key every run_baseline task had
        def submit_key(prefix, b):
            return f"{prefix}-{b.name}-{time.time_ns()}"
    from mitoscale.io.omezarr import write_ome_zarr_image
    from mitoscale.io.partitions import partition_of

    tmp = Path(tempfile.mkdtemp(prefix="bench-sched-"))
    rng = np.random.default_rng(0)
    inp = write_ome_zarr_image(tmp / "m.ome.zarr", rng.poisson(20, (500, 128, 128)).astype(np.uint16), "tyx", 0.08)
    plan = plan_baseline("classical", inp, tmp / "o")
    items = [(j[3], partition_of(j[1]), j) for j in plan.jobs]
    cluster, client = _local_client(tmp)
    rows = []
    try:
        rows.append({"tasks_run": 0, **client.run_on_scheduler(scheduler_state)})
        done = 0
        while done < args.tasks:
            batches = []
            while len(batches) < args.step:
                batches += make_batches(items, args.frames_per_task)
            batches = batches[:args.step]
            t0 = time.process_time()
            execute_batches(plan.folder, batches, client=client, progress=False, desc="baseline classical",
                            submit=lambda c, b: submit_batch(c, submit_key("baseline-classical-frames", b),
                                                             _noop_batch, b, str(tmp / "o")))
            done += len(batches)
            rows.append({"tasks_run": done, "client_cpu_s": round(time.process_time() - t0, 2),
                         **client.run_on_scheduler(scheduler_state)})
            print(json.dumps(rows[-1]), file=sys.stderr)
        types = client.run_on_scheduler(_types) if args.types else None
    finally:
        client.close()
        cluster.close()
    later = rows[1:]
    slope = ((later[-1]["rss_mb"] - later[0]["rss_mb"]) / (later[-1]["tasks_run"] - later[0]["tasks_run"]) * 1000
             if len(later) > 1 else None)
    grew = {k: [r[k] for r in rows] for k in rows[0] if k not in ("tasks_run",) and isinstance(rows[0][k], int)
            and rows[-1][k] != rows[1][k]}
    print(json.dumps({"frames_per_task": args.frames_per_task, "rss_mb_per_1000_tasks": slope,
                      "rss_mb": [round(r["rss_mb"], 1) for r in rows], "tasks_run": [r["tasks_run"] for r in rows],
                      "grew": grew, "types": types}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
