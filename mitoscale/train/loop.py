"""The training loop: ``run_training(cfg, out_dir, resume=...)``.

One function serves a single process and every DDP rank (the launcher in
:mod:`mitoscale.train.launch` starts the ranks).  Rank 0 alone writes
checkpoints, logs and the final model.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mitoscale.config import dump_config
from mitoscale.errors import ConfigError, OutputError
from mitoscale.io.atomic import atomic_write_json, check_writable
from mitoscale.model import build_sam, get_spec, load_model, save_model
from mitoscale.train.config import TrainConfig
from mitoscale.train.corpus import open_corpora, split_indices
from mitoscale.train.dataset import ChunkSampler, PromptDataset, collate
from mitoscale.train.distributed import (cleanup_distributed, dist_info, init_distributed,
                                         resolve_device)
from mitoscale.train.logs import RunLogger
from mitoscale.train.loss import dice_min_loss, shift_consistency_loss
from mitoscale.train.module import PromptedSam, crop_windows
from mitoscale.train.state import latest_checkpoint, load_checkpoint, save_checkpoint
from mitoscale.train.validate import validate as validate_model

__all__ = ["run_training", "preflight", "lr_factor", "apply_freeze", "use_bf16"]

log = logging.getLogger(__name__)


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def apply_freeze(model: torch.nn.Module, prefixes: list[str]) -> int:
    """Set ``requires_grad=False`` below each module prefix; return the trainable parameter count.

    Raises
    ------
    ConfigError
        If a prefix names no parameter, or nothing is left to train.
    """
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            raise ConfigError(f"freeze entry {prefix!r} matches no parameter of the model")
    n_train = 0
    for name, p in model.named_parameters():
        frozen = any(name == q or name.startswith(q + ".") for q in prefixes)
        p.requires_grad_(not frozen)
        n_train += 0 if frozen else p.numel()
    if n_train == 0:
        raise ConfigError("freeze leaves no trainable parameter")
    return n_train


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to autocast to bf16 (``auto``: only on a GPU that supports it)."""
    if precision == "fp32":
        return False
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not ok:
            raise ConfigError("precision 'bf16' requested but this GPU does not support bf16")
        return ok
    return precision == "bf16"


def _initial_model(cfg: TrainConfig):
    spec = get_spec(cfg.model.variant)
    if cfg.model.checkpoint:
        sam, spec, _ = load_model(cfg.model.checkpoint, variant=cfg.model.variant)
    else:
        torch.manual_seed(cfg.seed)
        sam = build_sam(spec)
    return sam, spec


def _rank_fingerprints(sam: torch.nn.Module, info) -> list[str]:
    """SHA-256 of every rank's weights (DDP keeps them identical; recorded as a check)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(sam.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    mine = h.hexdigest()
    if not info.enabled:
        return [mine]
    gathered: list = [None] * info.world
    torch.distributed.all_gather_object(gathered, mine)
    return gathered


def preflight(cfg: TrainConfig, out_dir: str | Path, resume: bool = False) -> None:
    """Check a run's inputs without training (used before launching DDP workers).

    Raises the same one-line errors :func:`run_training` would: missing GPU,
    missing corpus or masks, bad checkpoint, stale embedding cache, existing
    run without ``resume``.
    """
    resolve_device(cfg.device)
    use_bf16(cfg.precision, resolve_device(cfg.device))
    out_dir = check_writable(Path(out_dir))
    ckpt_dir = out_dir / "checkpoints"
    if not resume and ckpt_dir.exists() and latest_checkpoint(ckpt_dir) is not None:
        raise OutputError(f"{out_dir} already holds a training run; pass --resume to continue it "
                          "or choose another --out")
    corpus = open_corpora(cfg.data.corpus)
    sam, spec = _initial_model(cfg)
    apply_freeze(sam, cfg.model.freeze)
    if cfg.data.embedding_cache:
        from mitoscale.train.embed import open_cache

        open_cache(cfg.data.embedding_cache, sam, spec, corpus)
    split_indices(corpus.n_images, cfg.data.val_fraction)


def run_training(cfg: TrainConfig, out_dir: str | Path, resume: bool = False) -> dict:
    """Train (or fine-tune) a SAM-architecture model on a synthetic corpus.

    Parameters
    ----------
    cfg : TrainConfig
        Validated configuration (``configs/train.yaml``).
    out_dir : path
        Run directory: ``checkpoints/``, ``logs/`` (CSV + TensorBoard),
        ``config.json`` and the final ``model.safetensors`` + ``model.json``.
    resume : bool
        Continue from ``out_dir/checkpoints/latest`` (model, optimiser,
        scheduler, step, RNG and sampler position); without a checkpoint the
        run starts fresh.

    Returns
    -------
    dict
        ``step``, ``model`` (final weights path), ``val`` (last validation
        metrics or None) and ``train_loss`` (last logged loss).

    Raises
    ------
    MitoscaleError
        For bad input (missing corpus or masks, K = 0, bad checkpoint,
        missing GPU, stale embedding cache, existing run without --resume),
        before any training work starts.
    """
    info = dist_info()
    device = resolve_device(cfg.device, info.local_rank)
    bf16 = use_bf16(cfg.precision, device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir = check_writable(Path(out_dir)) if info.is_main else Path(out_dir).absolute()
    ckpt_dir = out_dir / "checkpoints"
    ckpt = latest_checkpoint(ckpt_dir) if ckpt_dir.exists() else None
    if ckpt is not None and not resume:
        raise OutputError(f"{out_dir} already holds a training run; pass --resume to continue it "
                          "or choose another --out")

    corpus = open_corpora(cfg.data.corpus)
    sam, spec = _initial_model(cfg)
    n_trainable = apply_freeze(sam, cfg.model.freeze)
    cache = None
    if cfg.data.embedding_cache:
        from mitoscale.train.embed import open_cache

        cache = open_cache(cfg.data.embedding_cache, sam, spec, corpus)
    train_images, val_images = split_indices(corpus.n_images, cfg.data.val_fraction)

    init_distributed(info, device)
    try:
        return _train(cfg, out_dir, ckpt, info, device, bf16, corpus, sam, spec, n_trainable,
                      cache, train_images, val_images)
    finally:
        cleanup_distributed()


def _train(cfg, out_dir, ckpt, info, device, bf16, corpus, sam, spec, n_trainable, cache,
           train_images, val_images) -> dict:
    model = PromptedSam(sam, window=cfg.model.decoder_window).to(device).train()
    net: torch.nn.Module = model
    if info.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)  # SAM's box/mask prompt paths stay unused
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
                            weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(
        lr_factor, warmup=cfg.optim.warmup_steps, total=cfg.steps, min_ratio=cfg.optim.min_lr_ratio))
    step = 0
    if ckpt is not None:
        state = load_checkpoint(ckpt, sam, opt, sched)
        step = int(state["step"])
        if info.is_main:
            log.info("resumed from %s (step %d)", ckpt, step)
    if info.is_main:
        atomic_write_json(out_dir / "config.json", {
            "config": dump_config(cfg), "world_size": info.world, "spec": spec.to_dict(),
            "n_trainable_parameters": n_trainable, "device": str(device), "bf16": bf16})

    dataset = PromptDataset(corpus, spec.img_size, cfg.data.points_per_image, seed=cfg.seed,
                            augment=cfg.data.augment, embeddings=cache,
                            pair_shift=cfg.consistency_shift if cfg.consistency_weight > 0 else 0)
    upi = dataset.units_per_image
    units = (train_images[:, None] * upi + np.arange(upi)[None]).ravel()
    per_rank_step = cfg.batch_size * cfg.grad_accum
    sampler = ChunkSampler(units, corpus.chunk_len * upi, seed=cfg.seed, rank=info.rank,
                           world=info.world, start=step * per_rank_step)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler,
                                         collate_fn=collate, num_workers=cfg.data.num_workers)
    batches = iter(loader)
    logger = RunLogger(out_dir, enabled=info.is_main, tensorboard=cfg.tensorboard,
                       resume_step=step if ckpt is not None else None)
    embed_fn = None
    if cache is not None:
        def embed_fn(image, tile, _inp):
            return torch.from_numpy(np.asarray(cache[image, tile], dtype=np.float32))[None].to(device)

    def run_validation() -> dict | None:
        if len(val_images) == 0:
            return None
        if info.is_main:
            t0 = time.perf_counter()
            metrics = validate_model(model, corpus, val_images[: cfg.data.val_max_images],
                                     spec.img_size, embed_fn, device, bf16)
            metrics["seconds"] = time.perf_counter() - t0
            logger.log("val", step, metrics)
            log.info("step %d validation: precision %.3f recall %.3f mean Dice %.3f", step,
                     metrics["precision"], metrics["recall"], metrics["mean_dice"])
        else:
            metrics = None
        if info.enabled:
            torch.distributed.barrier()
        return metrics

    val = None
    last_loss = float("nan")
    window = {"loss": 0.0, "dice": 0.0, "iou_mse": 0.0, "consistency": 0.0, "n": 0}
    t_window = time.perf_counter()
    extra = {"config": dump_config(cfg), "world_size": info.world}
    while step < cfg.steps:
        for micro in range(cfg.grad_accum):
            batch = next(batches)
            sync = micro == cfg.grad_accum - 1 or not info.enabled
            ctx = contextlib.nullcontext() if sync else net.no_sync()
            with ctx:
                pairs = "image_b" in batch
                points = batch["points"]
                if pairs:  # two views per sample: one encoder batch of 2B tiles
                    points = torch.cat([points, batch["points_b"]])
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    if cache is not None:
                        logits, iou, origin = net(points.to(device),
                                                  embeddings=batch["embedding"].to(device))
                    else:
                        images = batch["image"]
                        if pairs:
                            images = torch.cat([images, batch["image_b"]])
                        logits, iou, origin = net(points.to(device), images=images.to(device))
                targets, valid = batch["targets"], batch["valid"]
                if pairs:
                    targets, valid = torch.cat([targets, batch["targets_b"]]), torch.cat([valid, valid])
                targets = targets.to(device).flatten(0, 1)
                size = logits.shape[-1] * model.patch // 4  # window (or tile) edge in pixels
                if size < targets.shape[-1]:
                    targets = crop_windows(targets, origin.flatten(0, 1), size)
                out = dice_min_loss(
                    logits.flatten(0, 1), targets, valid.to(device).flatten(0, 1),
                    iou.flatten(0, 1) if cfg.iou_loss_weight > 0 else None, cfg.iou_loss_weight)
                if pairs:
                    nb = batch["points"].shape[0]
                    cons = shift_consistency_loss(logits[:nb], logits[nb:], origin[:nb], origin[nb:],
                                                  batch["shift"].to(device), model.patch // 4)
                    cons = cons + F.mse_loss(iou[:nb].float(), iou[nb:].float())
                    out["consistency"] = cons.detach()
                    out["loss"] = out["loss"] + cfg.consistency_weight * cons
                else:
                    out["consistency"] = torch.zeros(())
                (out["loss"] / cfg.grad_accum).backward()
            for key in ("loss", "dice", "iou_mse", "consistency"):
                window[key] += float(out[key].detach())
            window["n"] += 1
        if cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        step += 1

        if step % cfg.log_every == 0 or step == cfg.steps:
            stats = torch.tensor([window["loss"], window["dice"], window["iou_mse"], window["n"],
                                  window["consistency"]], dtype=torch.float64)
            if info.enabled:
                torch.distributed.all_reduce(stats)
            elapsed = time.perf_counter() - t_window
            n = max(stats[3].item(), 1)
            last_loss = stats[0].item() / n
            images = n * cfg.batch_size * (2 if cfg.consistency_weight > 0 else 1)  # tiles, all ranks
            logger.log("train", step, {
                "loss": last_loss, "dice_loss": stats[1].item() / n, "iou_mse": stats[2].item() / n,
                **({"consistency": stats[4].item() / n} if cfg.consistency_weight > 0 else {}),
                "lr": sched.get_last_lr()[0], "steps_per_s": (window["n"] / cfg.grad_accum) / elapsed,
                "images_per_s": images / elapsed, "prompts_per_s": images * cfg.data.points_per_image / elapsed,
            })
            if info.is_main:
                log.info("step %d/%d loss %.4f lr %.2e %.2f img/s", step, cfg.steps, last_loss,
                         sched.get_last_lr()[0], images / elapsed)
            window = {"loss": 0.0, "dice": 0.0, "iou_mse": 0.0, "consistency": 0.0, "n": 0}
            t_window = time.perf_counter()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            if info.is_main:
                save_checkpoint(out_dir / "checkpoints", step, sam, spec, opt, sched,
                                {**extra, "sampler_start": step * per_rank_step},
                                keep=cfg.keep_checkpoints)
            if info.enabled:
                torch.distributed.barrier()
        if step % cfg.val_every == 0 or step == cfg.steps:
            val = run_validation()

    fingerprints = _rank_fingerprints(sam, info)
    final = out_dir / "model.safetensors"
    if info.is_main:
        save_model(final, sam, spec, meta={
            "trained_by": "mitoscale train", "steps": step, "world_size": info.world,
            "config": dump_config(cfg), "corpus": {
                **{k: corpus.attrs.get(k) for k in ("seed", "n_images", "pixel_size_um", "version")},
                **({"parts": corpus.attrs["parts"]} if "parts" in corpus.attrs else {})},
            "validation": val})
        atomic_write_json(out_dir / "DONE", {"step": step, "rank_weight_sha256": fingerprints})
    logger.close()
    return {"step": step, "model": str(final), "val": val, "train_loss": last_loss}
