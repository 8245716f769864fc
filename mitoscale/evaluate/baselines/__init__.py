"""Baseline segmenters, each a pure function ``(image, pixel_size_um, cfg) -> labels``.

``BASELINES`` maps a name to its config model and kernel; the runner
(:mod:`mitoscale.evaluate.baselines.run`) turns any of them into instance
tables with the same layout as ``mitoscale segment``.
"""

from mitoscale.evaluate.baselines.classical import ClassicalConfig, segment_classical
from mitoscale.evaluate.baselines.nellie import NellieConfig, nellie_available, segment_nellie

BASELINES = {
    "classical": (ClassicalConfig, segment_classical),
    "nellie": (NellieConfig, segment_nellie),
}

__all__ = ["BASELINES", "ClassicalConfig", "segment_classical", "NellieConfig", "segment_nellie",
           "nellie_available"]
