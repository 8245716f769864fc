"""Configuration of ``mitoscale segment`` (``configs/segment.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mitoscale import TRAINING_PIXEL_SIZE_UM
from mitoscale.config import StrictModel

__all__ = ["SegmentConfig", "InputConfig", "ModelConfig", "PromptConfig", "DecodeConfig",
           "PostprocessConfig", "OutputConfig"]


class InputConfig(StrictModel):
    channel: int | str = 0
    """Channel index or name to segment."""
    z_mode: Literal["max", "each"] = "max"
    """``max``: max-project z; ``each``: every plane on its own."""
    pixel_size_um: float | None = Field(None, gt=0)
    """Overrides the NGFF scale and TIFF tags; required for PNG inputs."""
    max_resample: float = Field(4.0, ge=1)
    """Refuse inputs whose pixel size is more than this factor from the model's (either way):
    at 1 µm/px a frame would be upsampled 12.5x and the "instances" would be blur."""


class ModelConfig(StrictModel):
    path: str | None = None
    """Checkpoint; ``null`` uses the shipped ``mitoscale-small`` model."""
    variant: str | None = None
    """Expected architecture (``small``, ``tiny``, ``vit_b`` ...); a mismatch is an error."""
    pixel_size_um: float = Field(TRAINING_PIXEL_SIZE_UM, gt=0)
    """Pixel size frames are resampled to (the training pixel size)."""
    tile_size: int | None = Field(None, ge=32)
    """Tile edge in pixels at ``pixel_size_um``; ``null``: the model's input size."""
    halo: int = Field(32, ge=0)
    """Overlap margin (px) around each tile's core; prompts are decoded in the tile whose
    core holds them, so every prompt has at least this much context."""
    tile_align: int | None = Field(None, ge=1)
    """Tile origins are multiples of this (px); ``null``: the encoder's attention window
    (patch x window size, 64 px for the shipped model) where it fits the tile core, else its
    patch size, so overlapping tiles see an object on the same patch and window grid."""
    bf16: bool | Literal["auto"] = "auto"
    """bfloat16 autocast for encoder and decoder on the CPU; ``auto``: when the CPU has
    native bf16 (AVX512-BF16/AMX), where it is ~2x faster with masks agreeing at IoU > 0.99."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto``: a GPU when the worker has one (dask-cuda workers), else the CPU."""


class PromptConfig(StrictModel):
    threshold: Literal["otsu", "li", "triangle", "yen"] = "otsu"
    """Foreground threshold, computed once per frame so that tiles agree."""
    smooth_sigma: float = Field(1.0, ge=0)
    """Gaussian sigma (px) before thresholding and picking prompt pixels."""
    sampling: Literal["maxima", "grid", "maxima+grid"] = "maxima+grid"
    """``maxima``: local intensity maxima of the foreground at least ``spacing`` px apart (plus
    the brightest pixel of any foreground component without one); ``grid``: the brightest
    foreground pixel of every ``spacing x spacing`` cell; ``maxima+grid``: maxima first, then
    grid prompts (``grid_spacing``), which ``skip_covered`` mostly leaves undecoded.  Measured:
    ``maxima+grid`` keeps the recall of the dense grid at half its decoder prompts; ``maxima``
    alone needs 3x fewer again but loses some recall (benchmarks/RESULTS_segment.md)."""
    spacing: int = Field(3, ge=1)
    """Minimum distance between maxima, or the grid cell edge (px at the model pixel size)."""
    grid_spacing: int = Field(6, ge=1)
    """Grid cell edge of ``maxima+grid``: grid prompts follow all maxima, so with
    ``skip_covered`` they are decoded only where no accepted mask covers them."""
    max_prompts: int | None = Field(None, ge=1)
    """Cap per frame (brightest first); ``null`` = no cap."""
    skip_covered: bool = True
    """Do not decode prompts on pixels already covered by an accepted mask."""
    round_spacing: float = Field(16.0, ge=0)
    """Prompts decoded in the same round are more than this many px apart (16 px = 1.3 µm),
    so a round rarely decodes two prompts of one mitochondrion; closer prompts wait."""
    cover_erosion: int = Field(0, ge=0)
    """Masks are eroded by this many px before they cover prompts, so a prompt on the rim
    of a mask (where a touching or overlapping neighbour may start) is still decoded.
    Measured on a 1024 x 1024 frame: 1 px decodes 1.55x more prompts (1656 vs 1066) for
    0.006 more recall (0.815 vs 0.808), so the default is 0 (issue 7's 5 s target)."""


class DecodeConfig(StrictModel):
    chunk: int = Field(32, ge=1)
    """Prompts decoded per decoder call (memory ~ chunk x window area)."""
    window: int | None = Field(16, ge=2)
    """Local decoding window in embedding cells (16 cells = 128 px = 10.2 µm for patch 8);
    ``null`` decodes against the whole embedding map, as SAM does."""
    max_window: int | None = Field(None, ge=2)
    """Masks touching the window edge are decoded again in a window twice as large, up to
    this size (``null``: the whole map); at least ``window``."""
    multimask: bool = True
    """Ask for SAM's three masks and keep the one with the highest predicted IoU."""
    keep_all_masks: bool = False
    """With ``multimask``, keep all three masks of every prompt as candidates (as
    ``SamAutomaticMaskGenerator`` does) and let the overlap suppression choose among them:
    more recall at some precision and ~1.3x the post-processing (configs/segment_thorough.yaml)."""

    @model_validator(mode="after")
    def _windows(self) -> DecodeConfig:
        if self.max_window is not None and (self.window is None or self.max_window < self.window):
            raise ValueError(f"max_window ({self.max_window}) must be at least window ({self.window})")
        return self


class PostprocessConfig(StrictModel):
    min_score: float = Field(0.2, ge=0, le=1)
    """Masks whose predicted IoU is below this are dropped."""
    min_area: int = Field(10, ge=0)
    """Masks smaller than this (px at the model pixel size) are dropped."""
    max_overlap: float = Field(0.5, ge=0, le=1)
    """Overlap = |A ∩ B| / min(|A|, |B|); of two masks above it, the lower-scoring one is dropped."""
    fragment_score: float = Field(0.6, ge=0, le=1)
    """A mask sharing pixels with a better kept mask is dropped unless it scores at least this:
    such masks are mostly split-off pieces of the better mask's object.  Measured on a
    validation split: precision 0.976 -> 0.988 for recall 0.825 -> 0.801; 0 turns the rule
    off (the paper's clean-up exactly)."""
    largest_component: bool = True
    """Keep only the largest 8-connected component of each mask."""
    stitch_iou: float | None = Field(0.5, gt=0, le=1)
    """Masks cut by an inner tile edge are joined with a neighbouring tile's mask whose IoU with
    them, inside the region both tiles cover, is at least this (one instance for an object longer
    than a tile); ``null`` turns stitching off (suppression only)."""


class OutputConfig(StrictModel):
    labels_name: str = "mitochondria"
    """Name of the label image (``labels/<name>``): letters, digits, ``_ - .``, no path separator."""
    ngff_version: Literal["auto", "0.4", "0.5"] = "auto"
    """``auto``: same as the input (0.5 for TIFF/PNG)."""

    @field_validator("labels_name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", v) or v.endswith("-partial"):
            raise ValueError(f"{v!r} is not a plain name (letters, digits, _ - . ; no '/', no '..')")
        return v


class SegmentConfig(StrictModel):
    """All settings of ``mitoscale segment``."""

    input: InputConfig = InputConfig()
    model: ModelConfig = ModelConfig()
    prompts: PromptConfig = PromptConfig()
    decode: DecodeConfig = DecodeConfig()
    postprocess: PostprocessConfig = PostprocessConfig()
    output: OutputConfig = OutputConfig()
