"""Simulate one image of the ``broad`` preset.

Geometry (:mod:`~mitoscale.simulate.field`) -> dye density with uneven
labelling -> Gibson-Lanni focal scan at a drawn pixel size, optics drawn per
image from a seeded bank -> out-of-focus haze, cell-body haze, uneven
illumination -> shot noise, read noise, gain and offset (ADU) -> optional
8-bit contrast stretch -> resampled to the output pixel size (80 nm) as
``mitoscale segment`` resamples a real image.  The ground truth is
rasterised exactly on the output grid.

Signal-to-background ratio: with ``b`` the uniform background photons per
pixel and ``S`` the in-focus objects' expected photons, ``SBR = mean of S
over the foreground / b`` (as the paper preset); cell-body haze and
out-of-focus haze come on top of ``b``, illumination multiplies everything.

Randomness: per image, ``SeedSequence([seed, index])`` streams ``(0,)``
photon budget and camera, ``(1,)`` geometry, ``(2,)`` noise; the optics bank
of a corpus seed uses ``SeedSequence([seed], spawn_key=(9, j))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from threadpoolctl import threadpool_limits

from mitoscale.errors import InputError
from mitoscale.io.tables import instances_to_table
from mitoscale.segment.tiling import resample
from mitoscale.simulate.config import SimulateConfig
from mitoscale.simulate.field import FieldLayout, sample_field
from mitoscale.simulate.imaging import _compute_otf_stack, focal_scan_max
from mitoscale.simulate.psf import Optics
from mitoscale.simulate.raster import rasterise

__all__ = ["BankEntry", "optics_bank", "warm_bank", "simulate_broad_image", "render_layout", "camera_frame"]


@dataclass(frozen=True)
class BankEntry:
    """One drawn optical configuration."""

    optics: Optics
    render_pixel_nm: float
    focal_z_nm: tuple[float, ...]


def optics_bank(cfg: SimulateConfig, seed: int) -> list[BankEntry]:
    """The ``bank_size`` optical configurations of a corpus seed."""
    o = cfg.broad.optics
    return _bank(o.model_dump_json(), int(seed))


@lru_cache(maxsize=16)
def _bank(optics_json: str, seed: int) -> list[BankEntry]:
    from mitoscale.simulate.config_broad import BroadOptics

    o = BroadOptics.model_validate_json(optics_json)
    out = []
    for j in range(o.bank_size):
        rng = np.random.default_rng(np.random.SeedSequence([seed], spawn_key=(9, j)))
        ni = o.ni0 + rng.uniform(*o.ni_mismatch)
        optics = Optics(na=float(rng.uniform(*o.numerical_aperture)),
                        wavelength_nm=float(rng.uniform(*o.wavelength_nm)),
                        ns=float(rng.uniform(*o.ns)), ni=float(ni), ni0=o.ni0)
        span = float(rng.uniform(*o.focal_span_nm))
        if rng.uniform() < o.single_plane_probability or o.focal_slices[1] == 1:
            focal = (span / 2,)
        else:
            n = int(rng.integers(max(o.focal_slices[0], 2), o.focal_slices[1] + 1))
            focal = tuple(float(v) for v in np.linspace(0.0, span, n))
        out.append(BankEntry(optics, float(rng.uniform(*o.render_pixel_nm)), focal))
    return out


def _planes(cfg: SimulateConfig) -> tuple[float, ...]:
    """Object-plane heights covering every in-focus object of the broad preset."""
    b = cfg.broad
    g = b.geometry
    wmax = max(g.width_nm[1], g.dot_diameter_nm[1])
    dz = b.optics.object_plane_spacing_nm
    z_lo, z_hi = g.z_range_nm[0] - wmax / 2, g.z_range_nm[1] + wmax / 2
    return tuple(float(z_lo + j * dz) for j in range(int(math.ceil((z_hi - z_lo) / dz - 1e-9)) + 1))


def _render_shape(shape: tuple[int, int], p_out: float, p_r: float) -> tuple[int, int]:
    return max(1, round(shape[0] * p_out / p_r)), max(1, round(shape[1] * p_out / p_r))


def warm_bank(cfg: SimulateConfig, seed: int, shape: tuple[int, int] | None = None) -> int:
    """Compute (and cache in this process) the OTF stack of every bank entry; returns their count."""
    c, o = cfg.corpus, cfg.optics
    shape = shape or (c.image_px, c.image_px)
    for e in optics_bank(cfg, seed):
        _stack(e.optics, e.render_pixel_nm, _render_shape(shape, c.pixel_size_nm, e.render_pixel_nm),
               _planes(cfg), e.focal_z_nm, o.z0_depth_nm, o.psf_radius_nm, o.oversample)
    return len(optics_bank(cfg, seed))


@lru_cache(maxsize=64)
def _stack(optics, p, shape, planes, focal, z0, radius, oversample):
    with threadpool_limits(1):
        return _compute_otf_stack(optics, p, shape, planes, focal, z0, radius, oversample)


_COARSE = 4  # smooth fields (haze, cell bodies) are computed on a grid this much coarser


def _coarse_shape(shape):
    return tuple(-(-n // _COARSE) for n in shape)


def _smooth_field(rng, shape, p_nm, sigma_nm, n_blobs, centre=None, spread_nm=None):
    """Sum of ``n_blobs`` anisotropic Gaussians (peak 1) on the coarse grid, for cell-body haze."""
    h, w = shape
    pc = p_nm * _COARSE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros(shape, np.float32)
    for _ in range(n_blobs):
        if centre is not None:
            cy, cx = np.asarray(centre) / pc + rng.normal(0, spread_nm / pc, 2)
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        sy, sx = rng.uniform(*sigma_nm, 2) / pc
        out += rng.uniform(0.4, 1.0) * np.exp(-0.5 * (((y - cy) / sy) ** 2 + ((x - cx) / sx) ** 2))
    return out / max(float(out.max()), 1e-9)


def _coarsen(img: np.ndarray) -> np.ndarray:
    """Mean over ``_COARSE`` x ``_COARSE`` blocks (zero-padded at the far edges)."""
    h, w = img.shape
    hc, wc = _coarse_shape(img.shape)
    pad = np.zeros((hc * _COARSE, wc * _COARSE), np.float32)
    pad[:h, :w] = img
    return pad.reshape(hc, _COARSE, wc, _COARSE).mean(axis=(1, 3))


def _refine(small: np.ndarray, shape) -> np.ndarray:
    """Bilinear upsampling of a coarse field back to ``shape``."""
    hc, wc = small.shape
    return ndimage.zoom(small, _COARSE, order=1)[: shape[0], : shape[1]]


def camera_frame(rng_noise, expected: np.ndarray, gain: float, offset: float, read_e: float) -> np.ndarray:
    """Photons -> ADU: Poisson shot noise, Gaussian read noise (e-), gain (ADU/e-), offset; uint16."""
    electrons = rng_noise.poisson(expected).astype(np.float32)
    electrons += rng_noise.normal(0.0, read_e, expected.shape).astype(np.float32)
    return np.clip(np.rint(offset + gain * electrons), 0, 65535).astype(np.uint16)


def simulate_broad_image(cfg: SimulateConfig, seed: int, index: int, *,
                         pixel_size_nm: float | None = None, shape: tuple[int, int] | None = None):
    """Image ``index`` of a broad-preset corpus with ``seed`` (see :func:`~mitoscale.simulate.render.simulate_image`)."""
    from mitoscale.simulate.render import image_rng

    b_cfg, c = cfg.broad, cfg.corpus
    p_out = float(pixel_size_nm or c.pixel_size_nm)
    h, w = (int(v) for v in (shape or (c.image_px, c.image_px)))
    if h <= 0 or w <= 0 or p_out <= 0:
        raise InputError(f"image shape {shape} and pixel size {p_out} nm must be positive")
    budget, geom, noise = (image_rng(seed, index, s) for s in (0, 1, 2))
    bank = optics_bank(cfg, seed)
    entry = bank[int(budget.integers(len(bank)))]
    extent = max(h, w) * p_out

    layout = sample_field(geom, b_cfg.geometry, b_cfg.intensity, extent, entry.focal_z_nm[-1])
    return render_layout(cfg, layout, entry, budget, noise, index, p_out, (h, w))


def render_layout(cfg: SimulateConfig, layout: FieldLayout, entry: BankEntry, budget, noise,
                  index: int, p_out: float, shape: tuple[int, int]):
    """Image a drawn (or hand-made) field: optics, haze, camera, resampling, exact truth.

    ``budget`` and ``noise`` are the generators of the photon budget/camera
    draws and of the noise.
    """
    from mitoscale.simulate.render import SimulatedImage, image_id, layer_labels

    b_cfg, c = cfg.broad, cfg.corpus
    h, w = shape
    p_r = entry.render_pixel_nm
    hr, wr = _render_shape((h, w), p_out, p_r)
    objs = layout.objects
    tubes = [t for o in objs for t in o.tubes]
    groups = np.repeat(np.arange(len(objs)), [len(o.tubes) for o in objs])
    bright = np.array([o.brightness for o in objs])

    g, o = b_cfg.geometry, cfg.optics
    planes = _planes(cfg)
    stack = _stack(entry.optics, p_r, (hr, wr), planes, entry.focal_z_nm, o.z0_depth_nm,
                   o.psf_radius_nm, o.oversample)
    density, masks_r = rasterise(tubes, (hr, wr), p_r, np.asarray(planes), stack.margin_px,
                                 grid_shape=stack.padded_shape, groups=groups, brightness=bright,
                                 texture=layout.texture or None)
    signal = focal_scan_max(density, stack, (hr, wr)) if tubes else np.zeros((hr, wr), np.float32)

    fg = np.zeros((hr, wr), bool)
    for m in masks_r:
        if m is not None:
            (y0, x0, y1, x1), crop = m
            fg[y0:y1, x0:x1] |= crop

    # out-of-focus haze: projected thickness, Gaussian defocus blur (sigma = defocus / 2),
    # on the coarse grid (it is smooth)
    haze_c = np.zeros(_coarse_shape((hr, wr)), np.float32)
    if layout.haze:
        _, hmasks = rasterise(layout.haze, (hr, wr), p_r, np.asarray(planes[:2]), 0, density=False)
        bins = np.digitize(layout.haze_defocus_nm, np.linspace(*g.haze_defocus_nm, 4)[1:-1])
        for bi in np.unique(bins):
            thick = np.zeros((hr, wr), np.float32)
            for k in np.flatnonzero(bins == bi):
                if hmasks[k] is not None:
                    (y0, x0, y1, x1), crop = hmasks[k]
                    t = layout.haze[k]
                    thick[y0:y1, x0:x1] += crop * (t.width_nm * t.brightness)
            sigma = 0.5 * float(layout.haze_defocus_nm[bins == bi].mean()) / (p_r * _COARSE)
            haze_c += ndimage.gaussian_filter(_coarsen(thick), sigma, mode="constant")

    cam = b_cfg.camera
    sbr = float(budget.uniform(*cam.sbr))
    background = float(budget.uniform(*cam.background_photons))
    b_r = background * (p_r / c.pixel_size_nm) ** 2
    mean_fg = float(signal[fg].mean()) if fg.any() else 0.0
    scale = sbr * b_r / mean_fg if mean_fg > 0 else 0.0
    cell_amp = float(budget.uniform(*cam.cell_haze))
    centre = None if layout.nucleus is None else (layout.nucleus[1], layout.nucleus[0])
    cell = _smooth_field(budget, _coarse_shape((hr, wr)), p_r, (4000.0, 12000.0),
                         int(budget.integers(1, 5)), centre=centre, spread_nm=6000.0)
    smooth = _refine(b_r * cell_amp * cell + scale * haze_c, (hr, wr))
    falloff = float(budget.uniform(*cam.illumination_falloff))
    yy, xx = np.mgrid[0:hr, 0:wr].astype(np.float32)
    cy, cx = budget.uniform(0.3, 0.7, 2) * (hr, wr)
    illum = 1.0 - falloff * (((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * (hr**2 + wr**2)))
    expected = (illum * (b_r + smooth + scale * signal)).astype(np.float32)
    expected = np.maximum(expected, 0.0)

    gain, offset = float(budget.uniform(*cam.gain_adu_per_e)), float(budget.uniform(*cam.offset_adu))
    read_e = float(budget.uniform(*cam.read_noise_e))
    frame = camera_frame(noise, expected, gain, offset, read_e)
    eight_bit = bool(budget.uniform() < cam.eight_bit_probability)
    if eight_bit:
        lo, hi = np.percentile(frame, cam.stretch_percentiles)
        frame = np.clip(np.rint((frame - lo) / max(hi - lo, 1e-9) * 255), 0, 255).astype(np.uint16)
    image = np.clip(np.rint(resample(frame, (h, w))), 0, 65535).astype(np.uint16)

    # exact ground truth on the output grid
    _, masks = rasterise(tubes, (h, w), p_out, np.asarray(planes[:2]), 0, groups=groups, density=False)
    kept = [k for k, m in enumerate(masks) if m is not None]
    kept_masks = [masks[k] for k in kept]
    labels, layer_of = layer_labels(kept_masks, (h, w), c.max_label_layers)
    ko = [objs[k] for k in kept]
    focal = entry.focal_z_nm
    table = instances_to_table(
        [crop for _, crop in kept_masks], offsets=[bbox[:2] for bbox, _ in kept_masks], shape=(h, w),
        image=image, image_id=image_id(index), shape_engine="compiled", pixel_size_um=p_out / 1000.0, z=-1,
        extra=dict(
            kind=[ob.kind for ob in ko],
            length_nm=[ob.length_nm for ob in ko],
            width_nm=[ob.width_nm for ob in ko],
            z_nm=[ob.z_nm for ob in ko],
            defocus_nm=[max(focal[0] - ob.z_nm, ob.z_nm - focal[-1], 0.0) for ob in ko],
            n_tubes=np.array([len(ob.tubes) for ob in ko], dtype=np.int32),
            label_layer=np.array(layer_of, dtype=np.int32),
        ),
    )
    info = dict(na=entry.optics.na, wavelength_nm=entry.optics.wavelength_nm, ns=entry.optics.ns,
                ni=entry.optics.ni, render_pixel_nm=p_r, focal_slices=len(focal),
                gain_adu_per_e=gain, offset_adu=offset, read_noise_e=read_e, eight_bit=eight_bit,
                cell_haze=cell_amp, illumination_falloff=falloff, n_haze=len(layout.haze))
    return SimulatedImage(image=image, labels=labels, table=table, sbr=sbr, background=background,
                          expected_source=lambda: resample(expected, (h, w)).astype(np.float32), info=info)
