"""The physics simulator and corpus writer (``mitoscale simulate``).

Kernels: :mod:`~mitoscale.simulate.psf` (Gibson-Lanni PSF, Li-Xue-Blu
method), :mod:`~mitoscale.simulate.geometry` (Bezier tubes),
:mod:`~mitoscale.simulate.raster` (dye density and ground-truth masks),
:mod:`~mitoscale.simulate.imaging` (focal scan through cached OTFs) and
:mod:`~mitoscale.simulate.render` (one image).  Orchestration:
:mod:`~mitoscale.simulate.corpus` (Dask -> Zarr v3).  See ``docs/simulate.md``.
"""

from mitoscale.simulate.config import SimulateConfig, load_simulate_config
from mitoscale.simulate.corpus import open_corpus, read_instances, write_corpus
from mitoscale.simulate.render import SimulatedImage, simulate_image

__all__ = [
    "SimulateConfig",
    "SimulatedImage",
    "load_simulate_config",
    "open_corpus",
    "read_instances",
    "simulate_image",
    "write_corpus",
]
