"""Cost of the shape columns (issue 14): ms per instance of ``mitoscale.shape.shape_features``.

Measured on the simulator's ground-truth instances (real tube shapes, 80 nm), in one
process on one core, after a warm-up call (skan's Numba functions compile once per
process, ~4 s, not counted).  Also reports the share of ``instances_to_table`` that the
shape columns take.

Usage::

    nice .venv/bin/python benchmarks/bench_shape.py --images 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main(argv=None) -> dict:
    from threadpoolctl import threadpool_limits

    from mitoscale.io.tables import decode_mask, instances_to_table
    from mitoscale.shape import shape_features
    from mitoscale.simulate.config import SimulateConfig
    from mitoscale.simulate.render import simulate_image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    load = os.getloadavg()
    cfg = SimulateConfig()
    crops, offsets, shapes = [], [], []
    for i in range(args.images):
        table = simulate_image(cfg, 123, i).table
        crops.append([decode_mask((r.bbox_y0, r.bbox_x0, r.bbox_y1, r.bbox_x1), r.mask)
                      for r in table.itertuples(index=False)])
        offsets.append(list(zip(table.bbox_y0, table.bbox_x0)))
        shapes.append((int(table.image_height.iloc[0]), int(table.image_width.iloc[0])))
    n = sum(len(c) for c in crops)
    with threadpool_limits(1):
        shape_features(crops[0][:5], 0.08)  # Numba compile
        shape_t, shape_cpu, table_t = [], [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            for c in crops:
                shape_features(c, 0.08)
            shape_t.append(time.perf_counter() - t0)
            shape_cpu.append(time.process_time() - c0)
            t0 = time.perf_counter()
            for c, o, s in zip(crops, offsets, shapes):
                instances_to_table(c, offsets=o, shape=s, image_id="x", pixel_size_um=0.08)
            table_t.append(time.perf_counter() - t0)
    out = dict(images=args.images, instances=n, instances_per_image=n / args.images,
               shape_ms_per_instance=1e3 * min(shape_t) / n,
               shape_cpu_ms_per_instance=1e3 * min(shape_cpu) / n,
               table_ms_per_instance=1e3 * min(table_t) / n,
               shape_share_of_table=min(shape_t) / min(table_t),
               load_average_before=load, load_average_after=os.getloadavg())
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
