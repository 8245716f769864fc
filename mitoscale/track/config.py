"""Configuration of ``mitoscale track`` (``configs/track.yaml``)."""

from __future__ import annotations

from pydantic import Field

from mitoscale.config import StrictModel

__all__ = ["TrackConfig", "MovieConfig"]


class TrackConfig(StrictModel):
    max_distance_um: float = Field(1.0, gt=0)
    """Largest centroid displacement (after drift correction) linked between two frames, µm."""
    overlap_weight: float = Field(1.0, ge=0)
    """Weight of ``1 - IoU`` in the linking cost ``(d / max_distance)^2 + w (1 - IoU)``."""
    gap_frames: int = Field(1, ge=0)
    """Missing frames a track may skip (gap closing); 0 disables gap closing."""
    events: bool = True
    """Detect fission (splitting) and fusion (merging)."""
    event_max_distance_um: float = Field(2.0, gt=0)
    """Largest centroid distance between a parent and a child of an event, µm."""
    event_min_cover: float = Field(0.25, ge=0, le=1)
    """A fission child (fusion parent) must have at least this fraction of its area inside the
    other object (after drift correction), so neighbours that merely pass by are not events."""
    drift_correction: bool = True
    """Estimate stage drift between frames (phase correlation of the masks) before linking."""
    frame_interval_s: float | None = Field(None, gt=0)
    """Time step; default: the input's NGFF time axis (required when it has none)."""
    dot_max_area_um2: float = Field(1.28, gt=0)
    """Dot/rod boundary of the track table's class per frame (the analysis default)."""


class MovieConfig(StrictModel):
    """A synthetic timelapse with known tracks (``samples.movie`` in the pipeline)."""

    frames: int = Field(8, ge=0, description="0 = no movie")
    image_px: int = Field(256, ge=32)
    pixel_size_um: float = Field(0.08, gt=0)
    frame_interval_s: float = Field(2.0, gt=0)
    objects: int = Field(30, ge=1, description="objects in the first frame")
    length_um: tuple[float, float] = (0.8, 3.0)
    width_um: tuple[float, float] = (0.3, 0.45)
    speed_um: float = Field(0.08, ge=0, description="persistent speed per frame")
    jitter_um: float = Field(0.03, ge=0, description="Brownian step sd per frame")
    drift_um: float = Field(0.1, ge=0, description="stage drift step sd per frame")
    p_fission: float = Field(0.03, ge=0, le=1, description="per long object and frame")
    p_fusion: float = Field(0.03, ge=0, le=1, description="per object and frame, for a close pair")
    p_appear: float = Field(0.5, ge=0, description="new objects per frame (Poisson mean)")
    p_disappear: float = Field(0.01, ge=0, le=1)
    p_miss: float = Field(0.01, ge=0, le=1, description="object not seen in one frame")
    bleach_per_frame: float = Field(0.02, ge=0, lt=1)
    sbr: float = Field(4.0, gt=0)
    background_photons: float = Field(20.0, gt=0)
    psf_sigma_um: float = Field(0.1, gt=0)
    seed: int = 0
