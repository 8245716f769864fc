"""Distributed overlapping-tile SAM inference over OME-Zarr images, plates and TIFF/PNG folders.

Kernels (NumPy/PyTorch, unit-tested): :mod:`~mitoscale.segment.tiling`,
:mod:`~mitoscale.segment.prompts`, :mod:`~mitoscale.segment.decode` (local-window
decoding), :mod:`~mitoscale.segment.tile`, :mod:`~mitoscale.segment.postprocess`,
:mod:`~mitoscale.segment.frame` (one frame end to end); orchestration:
:mod:`~mitoscale.segment.pipeline` (one Dask graph over frames x tiles); CLI:
:mod:`~mitoscale.segment.cli`.  See ``docs/segment.md``.
"""

from mitoscale.segment.config import SegmentConfig

__all__ = ["SegmentConfig", "run_segmentation", "segment_frame"]


def __getattr__(name):  # keep `import mitoscale.segment` light (no torch until needed)
    if name == "run_segmentation":
        from mitoscale.segment.pipeline import run_segmentation

        return run_segmentation
    if name == "segment_frame":
        from mitoscale.segment.frame import segment_frame

        return segment_frame
    raise AttributeError(name)
