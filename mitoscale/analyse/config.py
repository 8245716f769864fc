"""Configuration of ``mitoscale analyze`` (``configs/analyse.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mitoscale.config import StrictModel

__all__ = ["AnalyseConfig", "DOT_MAX_AREA_UM2"]

DOT_MAX_AREA_UM2 = 1.28
"""Dot/rod boundary: 200 px at 80 nm (200 * 0.08**2 µm²), the paper's case-study value."""


class AnalyseConfig(StrictModel):
    dot_max_area_um2: float = Field(DOT_MAX_AREA_UM2, gt=0)
    """An instance is a dot if its area is at most this (µm²), else a rod.  Physical units
    classify inputs at any pixel size alike; the paper's first value, 120 px at 80 nm, is 0.768."""
    min_area_um2: float = Field(0.0, ge=0)
    """Instances smaller than this are ignored (0 keeps everything the method reported)."""
    n_bootstrap: int = Field(2000, ge=100)
    """Bootstrap resamples (of images within a condition) for the confidence intervals."""
    ci: float = Field(0.95, gt=0, lt=1)
    """Confidence level of the percentile bootstrap intervals."""
    seed: int = 0
    """Seed of the bootstrap."""
    class_rule: Literal["dot_rod", "dot_rod_network"] = "dot_rod"
    """``dot_rod`` (the paper's rule, by area) or ``dot_rod_network``: network = branched
    (``n_branch_points >= network_min_branch_points``), the rest dot/rod by area."""
    network_min_branch_points: int = Field(1, ge=1)
    """Branch points that make an instance a network (the skeleton shape column)."""
    condition_order: list[str] | None = None
    """Order of conditions in tables and figures; default: first appearance in the CSV."""
    replicate: Literal["auto", "image", "field", "series", "well"] = "auto"
    """The experimental unit means and CIs are taken over (mitoscale.analyse.replicates):
    ``auto`` = the well for plates, the series for timelapses, the image for single frames.
    Frames of one movie or fields of one well are not independent replicates."""

    @model_validator(mode="after")
    def _min_below_dot(self) -> AnalyseConfig:
        if self.min_area_um2 >= self.dot_max_area_um2:
            raise ValueError(f"min_area_um2 ({self.min_area_um2:g}) must be below dot_max_area_um2 "
                             f"({self.dot_max_area_um2:g}): it would drop every dot")
        return self
