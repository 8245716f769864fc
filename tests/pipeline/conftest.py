"""Fixtures of the pipeline tests: a tiny pipeline config (micro SAM: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import yaml


def tiny_pipeline(model: Path, **sections) -> dict:
    """A pipeline config small enough for a 2-core test machine (plain dict)."""
    cfg = {
        "cluster": {"profile": "local", "workers": 2, "options": {"dashboard_address": None}},
        "simulate": {"n_images": 4, "chunk_images": 2, "seed": 0,
                     "set": {"corpus.crops_per_side": 1}},
        "samples": {"enabled": True, "image_px": 128, "timelapse_frames": 2,
                    "wells_per_condition": 1, "fields_per_well": 2,
                    "conditions": [{"name": "control"},
                                   {"name": "fragmented", "set": {"geometry.length_nm": [300, 900]}}]},
        "train": {"enabled": False},
        # the untrained model's scores are meaningless: accept every mask, few prompts
        "segment": {"model": str(model), "set": {"postprocess.min_score": 0.0,
                                                 "prompts.spacing": 16, "decode.window": 8}},
        "analyze": {"set": {"n_bootstrap": 100}},
    }
    for name, values in sections.items():
        cfg[name].update(values)
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
