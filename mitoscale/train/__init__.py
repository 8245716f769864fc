"""SAM training on the synthetic corpus (``mitoscale train``).

Public API (imported lazily so ``mitoscale --help`` stays fast)::

    from mitoscale.train import TrainConfig, run_training
    run_training(cfg, out_dir, resume=True)

Modules: :mod:`~mitoscale.train.config` (validated YAML),
:mod:`~mitoscale.train.corpus` and :mod:`~mitoscale.train.dataset` (lazy,
chunk-aligned prompted samples), :mod:`~mitoscale.train.loss` (Dice-min),
:mod:`~mitoscale.train.module` (prompted, windowed SAM),
:mod:`~mitoscale.train.loop` (training), :mod:`~mitoscale.train.state`
(pickle-free checkpoints), :mod:`~mitoscale.train.validate`,
:mod:`~mitoscale.train.embed` (embedding cache),
:mod:`~mitoscale.train.distributed` and :mod:`~mitoscale.train.launch` (DDP).
See ``docs/train.md``.
"""

__all__ = ["TrainConfig", "run_training", "preflight", "write_embeddings", "export_model"]

_WHERE = {
    "TrainConfig": "mitoscale.train.config",
    "run_training": "mitoscale.train.loop",
    "preflight": "mitoscale.train.loop",
    "write_embeddings": "mitoscale.train.embed",
    "export_model": "mitoscale.train.export",
}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mitoscale.train' has no attribute {name!r}")
