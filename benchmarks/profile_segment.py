"""Where the CPU time of ``segment_frame`` goes, per stage, on real and synthetic 1024² frames (issue 16).

One torch thread, CPU seconds (``time.process_time``), in-process, the shipped model and the
default segment config.  Stages: ``prepare`` (resample, normalise, smooth, threshold, prompts),
``encoder``, ``decoder`` (the decoder calls, split by window size), ``accept`` (logits -> masks,
coverage; the rest of the tile loop), ``stitch`` (merge across tiles), ``suppress`` (overlap
suppression), ``table`` (mapping to the input grid and the instance table).  Counts: prompts,
prompts decoded per window size (the larger windows are re-decodes of masks touching a window
edge), prompts skipped as covered, instances.

Frames: ``mcc13_conv013_z7``, ``normoxia_m025_z04``, ``hypoxia_m001_z02`` (80 nm) and the
1024² synthetic frame of benchmarks/bench_segment.py (seed 123).  ``--save DIR`` writes each
frame's label image (``DIR/<frame>.npy``) so that two code versions can be compared pixel by pixel
(``--compare DIR``).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_segment.py --save /tmp/labels_before
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/profile_segment.py --compare /tmp/labels_before
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = Path("/work/shared/data")
REAL = {"mcc13_conv013_z7": "mcc13/mcc13_conv013_z7.png",
        "normoxia_m025_z04": "h9c2_case_study/normoxia_m025_z04.png",
        "hypoxia_m001_z02": "h9c2_case_study/hypoxia_m001_z02.png"}


def frames(data: Path, names: list[str] | None):
    from mitoscale.io.images import iter_frames, open_image_files

    for name, rel in REAL.items():
        if names and name not in names:
            continue
        for src in open_image_files([data / rel], 0.08):
            for fr in iter_frames(src):
                yield name, np.asarray(fr.data.compute(), dtype=np.float32), None
    if not names or "synthetic" in names:
        from bench_segment import simulate

        image, gt = simulate((1024, 1024))
        yield "synthetic", image, gt


class Probe:
    """Wraps the pipeline's stage functions (by module attribute) to sum their CPU seconds."""

    def __init__(self):
        self.cpu: Counter = Counter()
        self.count: Counter = Counter()
        self._undo = []

    def wrap(self, module, name: str, stage: str, counter=None):
        fn = getattr(module, name)

        def timed(*a, **k):
            c0 = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.cpu[stage] += time.process_time() - c0
                if counter is not None:
                    counter(self.count, *a, **k)
        setattr(module, name, timed)
        self._undo.append((module, name, fn))

    def reset(self):
        self.cpu.clear()
        self.count.clear()

    def restore(self):
        for module, name, fn in reversed(self._undo):
            setattr(module, name, fn)


def install(probe: Probe) -> Probe:
    from mitoscale.segment import frame, tile

    def count_decode(cnt, model, spec, emb, points, window=16, **k):
        cnt[f"decoded_w{window}"] += len(points)
        cnt["decoder_calls"] += 1
    probe.wrap(frame, "prepare_frame", "prepare")
    probe.wrap(tile, "encode_tile", "encoder")
    probe.wrap(tile, "decode_points", "decoder", count_decode)
    probe.wrap(frame, "merge_across_tiles", "stitch")
    probe.wrap(frame, "suppress_overlaps", "suppress")
    probe.wrap(frame, "map_to_input", "table")
    probe.wrap(frame, "instances_to_table", "table")
    return probe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--frames", default="", help="comma-separated subset of the frame names")
    ap.add_argument("--save", type=Path, help="write each frame's label image here")
    ap.add_argument("--compare", type=Path, help="compare label images with those saved here")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.NAME=VALUE",
                    help="override a segment config value (JSON value), repeatable")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from bench_segment import score

    from mitoscale.segment.config import SegmentConfig
    from mitoscale.segment.frame import paint_labels, segment_frame
    from mitoscale.segment.runtime import get_model

    sam, spec, _ = get_model(None, None, "cpu")
    cfg = SegmentConfig()
    for item in args.set:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        setattr(getattr(cfg, section), name, json.loads(value))
    probe = install(Probe())
    with torch.inference_mode():  # warm-up (allocator, oneDNN kernels)
        segment_frame(np.random.default_rng(0).random((256, 256), dtype=np.float32), 0.08, sam, spec, cfg)
    rows = []
    for name, image, gt in frames(args.data, [f for f in args.frames.split(",") if f]):
        probe.reset()
        st: dict = {}
        with torch.inference_mode():
            df = segment_frame(image, 0.08, sam, spec, cfg, stats=st)
        cpu = dict(probe.cpu)
        cpu["accept"] = cpu.get("accept", 0.0)
        total = st["cpu_s"]
        tile_loop = total - sum(cpu.get(k, 0.0) for k in ("prepare", "stitch", "suppress", "table"))
        cpu["accept"] = tile_loop - cpu.get("encoder", 0.0) - cpu.get("decoder", 0.0)
        row = {"frame": name, "cpu_s": round(total, 3), **{f"{k}_s": round(v, 3) for k, v in sorted(cpu.items())},
               "tiles": st["tiles"], "prompts": st["prompts"], **dict(sorted(probe.count.items())),
               "accepted": st["accepted"], "instances": len(df)}
        first = probe.count.get(f"decoded_w{cfg.decode.window}", 0)
        row["skipped_covered"] = st["prompts"] - first
        lab = paint_labels(df, image.shape)
        row["coverage_px"] = int((lab > 0).sum())
        if gt is not None:
            row.update({k: round(float(v), 4) for k, v in score(df, gt).items()})
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.save(args.save / f"{name}.npy", lab)
        if args.compare:
            ref = np.load(args.compare / f"{name}.npy")
            row["identical"] = bool(np.array_equal(ref, lab))
            if not row["identical"]:
                row["differing_px"] = int((ref != lab).sum())
        rows.append(row)
        print(json.dumps(row), flush=True)
    probe.restore()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
