"""Simulate one image: geometry -> dye density -> focal scan -> photons.

Signal-to-background ratio
--------------------------
With ``b`` the expected background photons per pixel and ``S(x)`` the
expected signal photons (above background) of the noise-free max
projection, the image's SBR is

    SBR = mean of S over the foreground pixels / b,

where the foreground is the union of the ground-truth masks.  The expected
image is ``b + S``; the recorded image is a Poisson draw of it, in photons
(uint16).  SBR is drawn uniformly from ``imaging.sbr`` once per image, and
``b`` uniformly from ``imaging.background_photons`` (photons per pixel at
``corpus.pixel_size_nm``, scaled with the pixel area at other pixel sizes).

Randomness
----------
Image ``index`` of a corpus with ``seed`` uses independent streams derived
from ``SeedSequence([seed, index])``: one per crop for its geometry (spawn
key ``(1, row, col)``, so a crop's objects do not depend on the image shape
or pixel size), one for the photon budget (``(0,)``) and one for the noise
(``(2,)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mitoscale.errors import InputError
from mitoscale.io.tables import instances_to_table
from mitoscale.simulate.config import SimulateConfig
from mitoscale.simulate.geometry import Tube, sample_tubes
from mitoscale.simulate.imaging import focal_scan_max, otf_stack
from mitoscale.simulate.raster import rasterise

__all__ = ["SimulatedImage", "simulate_image", "layer_labels", "image_rng", "crop_rng", "image_id"]


@dataclass
class SimulatedImage:
    """Result of :func:`simulate_image`."""

    image: np.ndarray  # (H, W) uint16 photons
    labels: np.ndarray  # (L, H, W) uint16 layered labels
    table: pd.DataFrame  # instance table + simulation columns
    sbr: float  # the drawn SBR (definition in the module docstring)
    background: float  # expected background photons per pixel
    # (H, W) float32 noise-free expected photons (see ``expected``), or a function that makes it:
    # the broad preset resamples it from its render grid only when it is read
    expected_source: np.ndarray | Callable[[], np.ndarray] = field(repr=False)
    info: dict = field(default_factory=dict)  # broad preset: the optics and camera drawn

    @property
    def expected(self) -> np.ndarray:
        """(H, W) float32 noise-free expected photons (computed on first access)."""
        if callable(self.expected_source):
            self.expected_source = self.expected_source()
        return self.expected_source


def image_id(index: int) -> str:
    """Zero-padded corpus index used as ``image_id``."""
    return f"{int(index):08d}"


def image_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Generator of one per-image stream (0: photon budget, 2: noise)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)], spawn_key=(stream,)))


def crop_rng(seed: int, index: int, row: int, col: int) -> np.random.Generator:
    """Generator of one crop's geometry."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)], spawn_key=(1, row, col)))


def _planes(cfg: SimulateConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    g, im = cfg.geometry, cfg.imaging
    z_lo = g.z_range_nm[0] - g.width_nm[1] / 2
    z_hi = g.z_range_nm[1] + g.width_nm[1] / 2
    dz = im.object_plane_spacing_nm
    n = int(math.ceil((z_hi - z_lo) / dz - 1e-9)) + 1
    planes = tuple(float(z_lo + j * dz) for j in range(n))
    focal = tuple(float(v) for v in np.linspace(g.z_range_nm[0], g.z_range_nm[1], im.n_focal_slices))
    return planes, focal


def layer_labels(masks: list, shape: tuple[int, int], max_layers: int | None = None):
    """Greedy layering: each instance goes to the first layer where it overlaps nothing.

    Parameters
    ----------
    masks : list of (bbox, crop)
        Instances in id order (id = position + 1).
    shape : (H, W)
    max_layers : int, optional
        Raise if more layers would be needed.

    Returns
    -------
    labels : (L, H, W) uint16
    layer_of : list of int
    """
    layers: list[np.ndarray] = []
    layer_of = []
    for k, ((y0, x0, y1, x1), crop) in enumerate(masks, start=1):
        for li, lab in enumerate(layers):
            if not lab[y0:y1, x0:x1][crop].any():
                break
        else:
            if max_layers is not None and len(layers) >= max_layers:
                raise InputError(f"an image needs more than corpus.max_label_layers={max_layers} "
                                 "label layers; raise it")
            layers.append(np.zeros(shape, dtype=np.uint16))
            li = len(layers) - 1
        layers[li][y0:y1, x0:x1][crop] = k
        layer_of.append(li)
    labels = np.stack(layers) if layers else np.zeros((1,) + tuple(shape), dtype=np.uint16)
    return labels, layer_of


def simulate_image(
    cfg: SimulateConfig,
    seed: int,
    index: int,
    *,
    pixel_size_nm: float | None = None,
    shape: tuple[int, int] | None = None,
) -> SimulatedImage:
    """Simulate image ``index`` of the corpus with ``seed``.

    Parameters
    ----------
    cfg : SimulateConfig
    seed, index : int
        The image depends only on these (and the config).
    pixel_size_nm : float, optional
        Sampling of the image (default ``cfg.corpus.pixel_size_nm``, 80 nm).
        The physical objects and optics do not change with it.
    shape : (H, W), optional
        Default ``crops_per_side * crop_px`` square (512 x 512).  Crops keep
        their physical size (``crop_px * cfg.corpus.pixel_size_nm``) and tile
        the field from the top-left corner; crops cut by the image border
        are simulated whole and clipped.

    Returns
    -------
    SimulatedImage
    """
    if cfg.preset == "broad":
        from mitoscale.simulate.broad import simulate_broad_image

        return simulate_broad_image(cfg, seed, index, pixel_size_nm=pixel_size_nm, shape=shape)
    c = cfg.corpus
    p = float(pixel_size_nm or c.pixel_size_nm)
    if shape is None:
        shape = (c.image_px, c.image_px)
    h, w = (int(v) for v in shape)
    if h <= 0 or w <= 0 or p <= 0:
        raise InputError(f"image shape {shape} and pixel size {p} nm must be positive")
    crop_nm = c.crop_nm
    n_rows = int(math.ceil(h * p / crop_nm - 1e-9))
    n_cols = int(math.ceil(w * p / crop_nm - 1e-9))
    tubes: list[Tube] = sample_tubes(
        [(crop_rng(seed, index, r, col), ((col + 0.5) * crop_nm, (r + 0.5) * crop_nm), r, col)
         for r in range(n_rows) for col in range(n_cols)],
        cfg.geometry,
    )

    planes, focal = _planes(cfg)
    o = cfg.optics
    stack = otf_stack(o.optics(), p, (h, w), planes, focal, o.z0_depth_nm, o.psf_radius_nm, o.oversample)
    density, masks = rasterise(tubes, (h, w), p, np.asarray(planes), stack.margin_px,
                               grid_shape=stack.padded_shape)
    blurred = focal_scan_max(density, stack, (h, w))

    kept = [k for k, m in enumerate(masks) if m is not None]
    kept_masks = [masks[k] for k in kept]
    labels, layer_of = layer_labels(kept_masks, (h, w), c.max_label_layers)
    fg = (labels > 0).any(axis=0)

    budget = image_rng(seed, index, 0)
    sbr = float(budget.uniform(*cfg.imaging.sbr))
    background = float(budget.uniform(*cfg.imaging.background_photons)) * (p / c.pixel_size_nm) ** 2
    mean_fg = float(blurred[fg].mean()) if fg.any() else 0.0
    scale = sbr * background / mean_fg if mean_fg > 0 else 0.0
    expected = (background + scale * blurred).astype(np.float32)
    noise = image_rng(seed, index, 2)
    image = np.minimum(noise.poisson(expected), np.iinfo(np.uint16).max).astype(np.uint16)

    kt = [tubes[k] for k in kept]
    table = instances_to_table(
        [crop for _, crop in kept_masks], offsets=[bbox[:2] for bbox, _ in kept_masks], shape=(h, w),
        image=image, image_id=image_id(index), shape_engine="compiled", pixel_size_um=p / 1000.0, z=-1,
        extra=dict(
            length_nm=[t.length_nm for t in kt],
            width_nm=[t.width_nm for t in kt],
            z_nm=[t.z_nm for t in kt],
            control_points_nm=[t.control_points.tolist() for t in kt],
            crop_row=np.array([t.crop_row for t in kt], dtype=np.int32),
            crop_col=np.array([t.crop_col for t in kt], dtype=np.int32),
            label_layer=np.array(layer_of, dtype=np.int32),
        ),
    )
    return SimulatedImage(image=image, labels=labels, table=table, sbr=sbr,
                          background=background, expected_source=expected)
