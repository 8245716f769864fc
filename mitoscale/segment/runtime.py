"""Model loading once per process (and once per Dask worker).

:func:`get_model` caches loaded models by checkpoint path, variant and
device, so every task on a worker shares one copy.  :class:`ModelPlugin` is a
Dask worker plugin that loads it when a worker starts (also on workers that
replace a killed one) and sets torch's thread count to the worker's threads,
so N single-threaded workers use N cores without oversubscription.  It also
undoes the effect of the ``MALLOC_TRIM_THRESHOLD_=65536`` that Dask's nanny
sets for its workers (:func:`mitoscale.cluster.worker.tune_malloc`), which made every task ~2.4x
slower than the same work in-process.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from mitoscale.cluster.worker import tune_malloc  # re-exported: called by ModelPlugin and tile tasks
from mitoscale.errors import ModelError

__all__ = ["resolve_device", "get_model", "check_model", "tile_size", "tile_align", "resolve_config",
           "tune_malloc", "ModelPlugin"]


def tile_size(spec, cfg) -> int:
    """Tile edge used for ``spec``: the configured size or the model's input size."""
    return int(cfg.model.tile_size or spec.img_size)


def tile_align(spec, tile: int, halo: int) -> int:
    """Default tile alignment: the encoder's window (px) if it fits the core, else its patch."""
    inner = tile - 2 * halo
    window = spec.patch_size * spec.window_size
    if spec.window_size > 0 and window <= inner:
        return int(window)
    return int(spec.patch_size) if spec.patch_size <= inner else 1


def resolve_config(cfg, spec):
    """A copy of ``cfg`` with model-dependent defaults filled in (``tile_size``, ``tile_align``)."""
    cfg = cfg.model_copy(deep=True)
    cfg.model.tile_size = tile_size(spec, cfg)
    if cfg.model.tile_align is None:
        cfg.model.tile_align = tile_align(spec, cfg.model.tile_size, cfg.model.halo)
    return cfg


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@functools.lru_cache(maxsize=4)
def _load(path: str | None, variant: str | None, device: str):
    from mitoscale.model import load_model

    return load_model(path, variant=variant, device=device)


def get_model(path: str | Path | None, variant: str | None = None, device: str = "auto"):
    """``(model, spec, meta)`` loaded once per process."""
    return _load(str(path) if path is not None else None, variant, resolve_device(device))


def check_model(spec, meta: dict, cfg) -> None:
    """Raise :class:`ModelError` when the model does not fit the segment config."""
    if cfg.model.tile_size is not None and cfg.model.tile_size > spec.img_size:
        raise ModelError(f"tile_size {cfg.model.tile_size} exceeds the {spec.name!r} model's "
                         f"input size {spec.img_size}")
    meta = meta or {}
    trained = meta.get("pixel_size_um", (meta.get("training_corpus") or {}).get("pixel_size_um"))
    if trained is not None and abs(float(trained) - cfg.model.pixel_size_um) > 1e-9:
        raise ModelError(f"model was trained at {trained} µm/px but the config resamples to "
                         f"{cfg.model.pixel_size_um} µm/px")


try:  # distributed is a dependency, but keep this module importable without it
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # pragma: no cover
    WorkerPlugin = object  # type: ignore[misc,assignment]


class ModelPlugin(WorkerPlugin):
    """Load the segmentation model once when each worker starts.

    Parameters
    ----------
    path : str or None
        Checkpoint (``None``: the shipped model).
    variant : str or None
    device : str
    """

    def __init__(self, path: str | None, variant: str | None = None, device: str = "auto"):
        self.path, self.variant, self.device = path, variant, device

    def setup(self, worker: Any) -> None:
        import torch

        nthreads = getattr(getattr(worker, "state", None), "nthreads", None) or getattr(worker, "nthreads", 1)
        torch.set_num_threads(max(1, int(nthreads)))
        tune_malloc()
        get_model(self.path, self.variant, self.device)
