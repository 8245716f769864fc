"""Configuration of ``mitoscale evaluate`` (``configs/evaluate.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mitoscale.config import StrictModel
from mitoscale.evaluate.metrics import DEFAULT_MIN_SIZE, DEFAULT_THRESHOLD

__all__ = ["EvaluateConfig"]


class EvaluateConfig(StrictModel):
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0, le=1)
    """Minimum Dice of a match (inclusive)."""
    min_size: int = Field(DEFAULT_MIN_SIZE, ge=0)
    """Predictions with fewer pixels are dropped before matching."""
    matching: Literal["greedy", "optimal"] = "greedy"
    """Conflict rule: greedy by descending Dice (the paper's protocol) or maximum total Dice."""
