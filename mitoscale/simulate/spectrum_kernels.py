"""Compiled gathers between the pruned FFT grid and the OTF support (:mod:`~mitoscale.simulate.imaging`).

The focal scan keeps only the ``K`` frequencies inside the optical cutoff:
:func:`gather_support` copies them out of the forward transforms into the
frequency-major ``(K, P)`` spectrum of the plane sum, and
:func:`scatter_support` puts the ``(K, F)`` focal-slice spectra back onto the
zeroed grid of the inverse transforms.  Both are plain copies of float32
(real, imaginary) pairs, one pass each, so they give exactly what NumPy's
fancy indexing gave, without its transposed temporaries.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["gather_support", "scatter_support"]


def gather_support(cols: np.ndarray, support: np.ndarray, planes: np.ndarray, n_planes: int) -> np.ndarray:
    """``spec[k, planes[j]] = cols[j].ravel()[support[k]]``; other planes zero.

    Parameters
    ----------
    cols : (U, GH, n_kx) complex64, C-contiguous
        Forward transforms of the ``U`` planes that hold dye.
    support : (K,) int64
        Flat indices into one ``(GH, n_kx)`` grid.
    planes : (U,) int64
        The object plane of each transform.
    n_planes : int

    Returns
    -------
    (K, n_planes) complex64
    """
    spec = np.zeros((support.size, n_planes), dtype=np.complex64)
    _compile()[0](cols.reshape(cols.shape[0], -1).view(np.float32), support, planes,
                  spec.view(np.float32).reshape(support.size, n_planes, 2))
    return spec


def scatter_support(acc: np.ndarray, support: np.ndarray, grid_size: int) -> np.ndarray:
    """``full[f].ravel()[support[k]] = acc[k, f]``; every other frequency zero.

    Parameters
    ----------
    acc : (K, F, 2) float32, C-contiguous
        Real and imaginary parts of each focal slice's spectrum on the support.
    support : (K,) int64
        Flat indices into one ``(GH, n_kx)`` grid.
    grid_size : int
        ``GH * n_kx``.

    Returns
    -------
    (F, grid_size) complex64
    """
    full = np.zeros((acc.shape[1], grid_size), dtype=np.complex64)
    _compile()[1](acc, support, full.view(np.float32))
    return full


@functools.cache  # compiled on first use, once per process
def _compile():
    import numba

    @numba.njit(cache=True, nogil=True)
    def gather(cols_ri, support, planes, spec_ri):  # pragma: no cover - compiled
        for k in range(support.shape[0]):
            s = 2 * support[k]
            for j in range(planes.shape[0]):
                p = planes[j]
                spec_ri[k, p, 0] = cols_ri[j, s]
                spec_ri[k, p, 1] = cols_ri[j, s + 1]

    @numba.njit(cache=True, nogil=True)
    def scatter(acc, support, full_ri):  # pragma: no cover - compiled
        for k in range(support.shape[0]):
            s = 2 * support[k]
            for f in range(acc.shape[1]):
                full_ri[f, s] = acc[k, f, 0]
                full_ri[f, s + 1] = acc[k, f, 1]

    return gather, scatter
