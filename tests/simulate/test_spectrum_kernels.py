"""The compiled support gathers equal NumPy's fancy indexing."""

import numpy as np

from mitoscale.simulate.spectrum_kernels import gather_support, scatter_support


def test_gather_and_scatter_equal_fancy_indexing():
    rng = np.random.default_rng(0)
    ph, n_kx, n_planes, n_focal = 24, 7, 6, 4
    support = np.sort(rng.choice(ph * n_kx, 90, replace=False)).astype(np.int64)
    planes = np.array([1, 2, 4], dtype=np.int64)
    cols = (rng.normal(size=(3, ph, n_kx)) + 1j * rng.normal(size=(3, ph, n_kx))).astype(np.complex64)
    want = np.zeros((support.size, n_planes), np.complex64)
    want[:, planes] = cols.reshape(3, -1)[:, support].T
    np.testing.assert_array_equal(gather_support(cols, support, planes, n_planes), want)

    acc = rng.normal(size=(support.size, n_focal, 2)).astype(np.float32)
    full = np.zeros((n_focal, ph * n_kx), np.complex64)
    full[:, support] = acc.view(np.complex64)[..., 0].T
    np.testing.assert_array_equal(scatter_support(acc, support, ph * n_kx), full)
