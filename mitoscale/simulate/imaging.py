"""Widefield focal scan and max projection through precomputed OTFs.

The image of focal slice ``f`` is ``sum_p PSF(z_p, z_f) * density_p`` over the
object planes ``p``, with the Gibson-Lanni PSF of a source at depth ``z_p``
seen with the focus at ``z_f`` (no shift-invariance in z is assumed: every
(focal slice, object plane) pair has its own PSF, so the depth-dependent
aberration of the aqueous specimen is kept exactly).  Focal slice ``f`` is
focused on height ``z_f``: its focus setting is the one of best on-axis
intensity for a point source at that height (:func:`~mitoscale.simulate.psf.best_focus`).  In Fourier space this is
``sum_p OTF[f, p] * FFT(density_p)``: one real FFT per object plane, a
multiply-add, one inverse real FFT per focal slice, and a maximum over the
slices.

The PSF is real and point-symmetric, so its OTF is real; the optics pass
nothing beyond the cutoff ``2 NA / lambda``, so only the frequencies inside
that disc are stored and multiplied (about 37 % of a real-FFT half plane at
80 nm pixels).  The OTF stack depends only on the optics, the pixel size
and the padded shape, and is cached per process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft as sfft
from threadpoolctl import threadpool_limits

from mitoscale.simulate.psf import Optics, best_focus, psf_2d
from mitoscale.simulate.spectrum_kernels import gather_support, scatter_support

__all__ = ["OTFStack", "otf_stack", "focal_scan_max"]


@dataclass(frozen=True)
class OTFStack:
    """Band-limited OTFs of every (focal slice, object plane) pair."""

    padded_shape: tuple[int, int]
    margin_px: int
    n_kx: int  # columns of the rfft half plane that reach into the OTF support
    support: np.ndarray  # flat indices into the (ph, n_kx) low-kx part of the half plane
    values: np.ndarray  # (K, F, P) float32, frequency-major for a batched matmul
    plane_z_nm: np.ndarray  # (P,)
    focal_z_nm: np.ndarray  # (F,) heights the focal slices are focused on
    focus_setting_nm: np.ndarray  # (F,) Gibson-Lanni focus parameter z_f of each slice


def otf_stack(
    optics: Optics,
    pixel_size_nm: float,
    shape: tuple[int, int],
    plane_z_nm: tuple[float, ...],
    focal_z_nm: tuple[float, ...],
    z0_depth_nm: float,
    psf_radius_nm: float,
    oversample: int,
) -> OTFStack:
    """Compute (and cache per process) the OTF stack for one imaging geometry.

    Parameters
    ----------
    optics : Optics
    pixel_size_nm : float
    shape : (H, W)
        Image shape; the FFT grid adds ``margin_px = ceil(psf_radius / pixel)``
        on every side (no wrap-around) and is rounded up to a fast FFT size.
    plane_z_nm, focal_z_nm : tuple of float
        Object-plane heights and the heights the focal slices focus on
        (simulation z, nm).
    z0_depth_nm : float
        Depth of z = 0 above the coverslip.
    psf_radius_nm : float
        PSF support; light farther than this from the source is dropped.
    oversample : int
        Pixel-integration sub-samples per axis.
    """
    return _otf_stack(optics, float(pixel_size_nm), tuple(int(v) for v in shape),
                      tuple(plane_z_nm), tuple(focal_z_nm), float(z0_depth_nm),
                      float(psf_radius_nm), int(oversample))


@lru_cache(maxsize=8)
def _otf_stack(
    optics: Optics,
    pixel_size_nm: float,
    shape: tuple[int, int],
    plane_z_nm: tuple[float, ...],
    focal_z_nm: tuple[float, ...],
    z0_depth_nm: float,
    psf_radius_nm: float,
    oversample: int,
) -> OTFStack:
    # small dense linear algebra: one BLAS thread (oversubscribed threads are
    # slower by orders of magnitude on a busy machine)
    with threadpool_limits(1):
        return _compute_otf_stack(optics, pixel_size_nm, shape, plane_z_nm, focal_z_nm,
                                  z0_depth_nm, psf_radius_nm, oversample)


def _compute_otf_stack(optics, pixel_size_nm, shape, plane_z_nm, focal_z_nm, z0_depth_nm,
                       psf_radius_nm, oversample) -> OTFStack:
    h, w = shape
    p = float(pixel_size_nm)
    margin = int(math.ceil(psf_radius_nm / p))
    ph = sfft.next_fast_len(h + 2 * margin, real=True)
    pw = sfft.next_fast_len(w + 2 * margin, real=True)
    k = 2 * margin + 1
    # focal slice k is focused on height focal_z_nm[k]: the focus setting of best
    # on-axis intensity for a source there (beyond the paraxial focus when ns < ni)
    zf = np.array([best_focus(z + z0_depth_nm, optics) for z in focal_z_nm])
    kernels = np.stack([
        psf_2d((k, k), p, zf, zp + z0_depth_nm, optics, oversample=oversample, radius_nm=psf_radius_nm)
        for zp in plane_z_nm
    ], axis=1)  # (F, P, k, k)
    # one normalisation for the whole stack: the largest 2D PSF integral is 1
    kernels /= kernels.sum(axis=(2, 3)).max()
    # band limit of the optics: |f| <= 2 NA / lambda (cycles per nm)
    fy = sfft.fftfreq(ph, d=p)[:, None]
    fx = sfft.rfftfreq(pw, d=p)[None, :]
    cutoff = 2.0 * optics.na / optics.wavelength_nm
    inside = np.hypot(fy, fx) <= cutoff  # (ph, pw // 2 + 1)
    n_kx = int(np.flatnonzero(inside.any(axis=0)).max()) + 1
    support = np.flatnonzero(inside[:, :n_kx].ravel())
    # OTF of each kernel centred on the origin of the periodic grid; one object
    # plane at a time keeps the transient memory to a few tens of MB
    n_focal, n_planes = kernels.shape[:2]
    values = np.empty((support.size, n_focal, n_planes), dtype=np.float32)  # (K, F, P)
    idx_y = (np.arange(k) - margin) % ph
    idx_x = (np.arange(k) - margin) % pw
    grid = np.zeros((n_focal, ph, pw))
    for j in range(n_planes):
        grid[:, idx_y[:, None], idx_x[None, :]] = kernels[:, j]
        otf = sfft.rfft2(grid, axes=(-2, -1))[:, :, :n_kx].real  # real: the PSF is point-symmetric
        values[:, :, j] = otf.reshape(n_focal, -1)[:, support].T
    return OTFStack(padded_shape=(ph, pw), margin_px=margin, n_kx=n_kx, support=support,
                    values=values, plane_z_nm=np.asarray(plane_z_nm), focal_z_nm=np.asarray(focal_z_nm),
                    focus_setting_nm=zf)


def focal_scan_max(density: np.ndarray, stack: OTFStack, shape: tuple[int, int]) -> np.ndarray:
    """Noise-free max projection of the focal scan.

    The 2D FFTs are pruned to the band limit: the forward transform keeps
    only the ``n_kx`` low-frequency columns before its column pass, and the
    inverse runs its column pass on those columns only and its row pass on
    the image rows only.

    Parameters
    ----------
    density : (P, GH, GW) float32
        Dye density on the object planes, image pixel (y, x) at (y + m, x + m),
        ``GH <= ph`` and ``GW <= pw`` (see :func:`~mitoscale.simulate.raster.rasterise`).
    stack : OTFStack
    shape : (H, W)

    Returns
    -------
    (H, W) float32
        Maximum over focal slices of the blurred density.
    """
    h, w = shape
    ph, pw = stack.padded_shape
    m, n_kx = stack.margin_px, stack.n_kx
    n_planes, dh, dw = density.shape
    n_freq, n_focal, _ = stack.values.shape
    planes = np.flatnonzero(density.reshape(n_planes, -1).any(axis=1))  # those that hold dye
    # forward: rows (real FFT), keep the low columns, then columns; a density
    # already on the padded grid (rasterise(..., grid_shape=padded_shape)) needs no copy,
    # nor does a contiguous run of planes
    run = planes.size and planes[-1] - planes[0] + 1 == planes.size
    held = density[planes[0]: planes[-1] + 1] if run else density[planes]
    rows = sfft.rfft(held, n=None if dw == pw else pw, axis=2)[:, :, :n_kx]
    cols = np.ascontiguousarray(sfft.fft(rows, n=None if dh == ph else ph, axis=1))
    spec = gather_support(cols, stack.support, planes, n_planes)  # (K, P)
    # sum over object planes for every focal slice: (K, F, P) @ (K, P, 2) real matmul
    spec_ri = spec.view(np.float32).reshape(n_freq, n_planes, 2)
    acc = np.ascontiguousarray(np.matmul(stack.values, spec_ri))  # (K, F, 2)
    # inverse: columns on the low columns only, keep the image rows, then rows
    full = scatter_support(acc, stack.support, ph * n_kx)
    cols = sfft.ifft(full.reshape(n_focal, ph, n_kx), axis=1)[:, m: m + h, :]
    slices = sfft.irfft(cols, n=pw, axis=2)[:, :, m: m + w]
    # density pixel (i, j) sits at grid (i, j); image pixel (y, x) is density (y + m, x + m)
    return slices.max(axis=0)
