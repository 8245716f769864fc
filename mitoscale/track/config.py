"""Configuration of ``mitoscale track`` (``configs/track.yaml``)."""

from __future__ import annotations

from pydantic import Field

from mitoscale.config import StrictModel

__all__ = ["TrackConfig"]


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
