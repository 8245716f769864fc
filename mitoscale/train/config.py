"""Validated training configuration (``configs/train*.yaml``).

Every key is documented in ``docs/train.md``.  Unknown keys are errors
(:class:`mitoscale.config.StrictModel`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mitoscale.config import StrictModel

__all__ = ["ModelSection", "DataSection", "OptimSection", "TrainConfig", "FREEZABLE"]

#: module prefixes that ``freeze`` may name (any sub-module path below them works too)
FREEZABLE = ("image_encoder", "prompt_encoder", "mask_decoder")


class ModelSection(StrictModel):
    """Which architecture to train and where its starting weights come from."""

    variant: str = "mito256"
    #: our ``.safetensors`` (with ``.json``) or an official SAM ``.pth``; None = random init
    checkpoint: str | None = None
    #: module prefixes whose parameters are not trained, e.g. ``[image_encoder]``
    freeze: list[str] = Field(default_factory=list)
    #: decode each prompt against this many embedding cells around it (as
    #: ``mitoscale segment`` does); None = the whole embedding map
    decoder_window: int | None = Field(default=None, ge=2)


class DataSection(StrictModel):
    """The corpus, the split and the prompts."""

    #: the corpus, or a list of corpora read as one in that order (a mixture: images are drawn
    #: in proportion to each corpus's size; validation comes from the last one's tail)
    corpus: str | list[str] = "corpus.zarr"
    #: precomputed embeddings from ``mitoscale train embed``; needs a frozen image encoder
    embedding_cache: str | None = None
    #: fraction of the corpus (its last images) held out for validation
    val_fraction: float = Field(default=0.05, ge=0.0, lt=1.0)
    #: at most this many validation images are scored each time
    val_max_images: int = Field(default=16, ge=1)
    #: K: foreground points sampled per image per step
    points_per_image: int = 16
    #: random 90-degree rotations and flips (image mode only)
    augment: bool = True
    num_workers: int = Field(default=0, ge=0)

    @field_validator("points_per_image")
    @classmethod
    def _k_positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"K (points_per_image) must be >= 1, got {v}")
        return v


class OptimSection(StrictModel):
    """AdamW with linear warm-up and cosine decay."""

    lr: float = Field(default=3e-4, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(default=50, ge=0)
    #: the cosine decays from ``lr`` to ``lr * min_lr_ratio`` at ``steps``
    min_lr_ratio: float = Field(default=0.05, ge=0, le=1)
    grad_clip: float | None = Field(default=1.0, gt=0)


class TrainConfig(StrictModel):
    """Everything ``mitoscale train`` needs besides the output directory."""

    seed: int = 0
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    #: optimiser steps (each = ``batch_size * grad_accum`` images per process)
    steps: int = Field(default=1000, ge=1)
    batch_size: int = Field(default=2, ge=1)
    grad_accum: int = Field(default=1, ge=1)
    #: weight of SAM's IoU-prediction MSE next to the Dice-min loss (0 = off)
    iou_loss_weight: float = Field(default=1.0, ge=0)
    #: weight of the shift-consistency loss (0 = off): each sample becomes two tiles of one
    #: image ``consistency_shift`` px apart with the same points, and the two views' masks
    #: (and predicted IoUs) are pulled together, so overlapping inference tiles agree
    consistency_weight: float = Field(default=0.0, ge=0)
    #: shift between the two views (px); a multiple of the encoder's patch x window size
    #: (64 px for mito256) matches how ``mitoscale segment`` aligns its tiles
    consistency_shift: int = Field(default=64, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: bf16 autocast ("auto" = bf16 on a GPU that supports it, fp32 on CPU)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    #: torch intra-op threads per process (0 = torch's default)
    threads: int = Field(default=0, ge=0)
    checkpoint_every: int = Field(default=100, ge=1)
    keep_checkpoints: int = Field(default=3, ge=1)
    val_every: int = Field(default=200, ge=1)
    log_every: int = Field(default=10, ge=1)
    tensorboard: bool = True

    @model_validator(mode="after")
    def _check_freeze(self) -> "TrainConfig":
        for name in self.model.freeze:
            if name.split(".")[0] not in FREEZABLE:
                raise ValueError(f"freeze entry {name!r} must start with one of {list(FREEZABLE)}")
        if self.consistency_weight > 0 and self.data.embedding_cache:
            raise ValueError("consistency_weight needs images: it cannot be used with data.embedding_cache")
        if self.data.embedding_cache and isinstance(self.data.corpus, list):
            raise ValueError("data.embedding_cache needs a single data.corpus, not a list")
        if self.data.embedding_cache and "image_encoder" not in self.model.freeze:
            raise ValueError("data.embedding_cache needs model.freeze to contain image_encoder")
        return self
