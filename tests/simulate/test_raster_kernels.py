"""The compiled rasteriser kernels equal their NumPy formulation bit for bit."""

import numpy as np
import pytest

from mitoscale.simulate import SimulateConfig
from mitoscale.simulate.geometry import sample_tubes
from mitoscale.simulate.raster import _geometry, _k_ds, rasterise
from mitoscale.simulate.raster_kernels import cover, deposit
from mitoscale.simulate.render import crop_rng

P = 80.0
PLANES = np.arange(-250.0, 751.0, 125.0)


def _expand(y0, x0, hh, ww):
    """Row and column of every pixel of a list of windows, and each pixel's window index."""
    sizes = hh * ww
    owner = np.repeat(np.arange(len(sizes)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return y0[owner] + local // ww[owner], x0[owner] + local % ww[owner], owner


def _cover_numpy(a, step, r_seg, k_ds, seg_obj, seg_win, obj_win, tstart, p, n_pix):
    """The (pixel, segment) pair formulation with ``ufunc.at`` (the rasteriser before compilation)."""
    row, col, seg = _expand(*seg_win.T)
    o = seg_obj[seg]
    key = tstart[o] + (row - obj_win[o, 0]) * obj_win[o, 3] + (col - obj_win[o, 1])
    l2_seg = step[:, 0] ** 2 + step[:, 1] ** 2
    inv = np.where(l2_seg > 0, 1.0 / np.maximum(l2_seg, 1e-300), 0.0)
    dx = (col + 0.5) * p - a[seg, 0]
    dy = (row + 0.5) * p - a[seg, 1]
    s0 = (dx * step[seg, 0] + dy * step[seg, 1]) * inv[seg]
    l2 = l2_seg[seg]
    h2 = r_seg[seg] ** 2 - (dx * dx + dy * dy - s0 * s0 * l2)
    inside = h2 - (np.clip(s0, 0.0, 1.0) - s0) ** 2 * l2 >= 0
    flags = np.zeros(n_pix, dtype=bool)
    flags[key[inside]] = True
    seg, key, s0, l2, h2 = seg[inside], key[inside], s0[inside], l2[inside], h2[inside]
    sz = step[seg, 2]
    ds = np.sqrt(np.maximum(h2, 0.0)) * sz * k_ds[seg]
    s_hi = np.clip(s0 + ds, 0.0, 1.0)
    s_lo = np.clip(s0 - ds, 0.0, 1.0)
    top = a[seg, 2] + s_hi * sz + np.sqrt(np.maximum(h2 - (s_hi - s0) ** 2 * l2, 0.0))
    bottom = a[seg, 2] + s_lo * sz - np.sqrt(np.maximum(h2 - (s_lo - s0) ** 2 * l2, 0.0))
    z_hi = np.full(n_pix, -np.inf)
    z_lo = np.full(n_pix, np.inf)
    np.maximum.at(z_hi, key, top)
    np.minimum.at(z_lo, key, bottom)
    return flags, z_lo, z_hi


def _hat_cdf(u):
    u = np.clip(u, -1.0, 1.0)
    return np.where(u <= 0, 0.5 * (u + 1) ** 2, 1.0 - 0.5 * (1 - u) ** 2)


def _deposit_numpy(dens, zl, zh, amount, flat_xy, plane_z, dz):
    n_planes = len(plane_z)
    j0 = np.clip(np.floor((zl - plane_z[0]) / dz).astype(np.int64) - 1, 0, n_planes - 1)
    j1 = np.clip(np.ceil((zh - plane_z[0]) / dz).astype(np.int64) + 1, 0, n_planes - 1)
    span = int((j1 - j0).max()) + 1
    jj = j0[:, None] + np.arange(span)[None, :]
    valid = jj <= j1[:, None]
    jj = np.minimum(jj, n_planes - 1)
    pz = plane_z[jj]
    wgt = (_hat_cdf((zh[:, None] - pz) / dz) - _hat_cdf((zl[:, None] - pz) / dz)) * amount[:, None]
    nz_i, nz_k = np.nonzero((wgt > 0) & valid)
    flat = jj[nz_i, nz_k] * (dens.size // n_planes) + flat_xy[nz_i]
    np.add.at(dens, flat, wgt[nz_i, nz_k].astype(np.float32))


def _segments(seed, n_crops=4):
    cfg = SimulateConfig()
    tubes = sample_tubes([(crop_rng(seed, 0, 0, c), ((c + 0.5) * 10240.0, 5120.0), 0, c) for c in range(n_crops)],
                         cfg.geometry)
    a, step, owner = _geometry(tubes)
    r_seg = np.array([t.radius_nm for t in tubes])[owner]
    lo = np.floor((np.minimum(a, a + step)[:, :2] - r_seg[:, None]) / P).astype(np.int64) - 1
    hi = np.ceil((np.maximum(a, a + step)[:, :2] + r_seg[:, None]) / P).astype(np.int64) + 1
    seg_win = np.stack([lo[:, 1], lo[:, 0], hi[:, 1] - lo[:, 1], hi[:, 0] - lo[:, 0]], axis=1)
    olo = np.array([lo[owner == t].min(axis=0) for t in range(len(tubes))])
    ohi = np.array([hi[owner == t].max(axis=0) for t in range(len(tubes))])
    obj_win = np.stack([olo[:, 1], olo[:, 0], ohi[:, 1] - olo[:, 1], ohi[:, 0] - olo[:, 0]], axis=1)
    sizes = obj_win[:, 2] * obj_win[:, 3]
    return a, step, r_seg, owner, seg_win, obj_win, np.cumsum(sizes) - sizes, int(sizes.sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cover_equals_numpy(seed):
    a, step, r_seg, owner, seg_win, obj_win, tstart, n_pix = _segments(seed)
    k_ds = _k_ds(step)
    want = _cover_numpy(a, step, r_seg, k_ds, owner, seg_win, obj_win, tstart, P, n_pix)
    got = cover(a, step, r_seg, k_ds, owner, seg_win, obj_win, tstart, P, n_pix, True)
    assert want[0].any()
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    flags, lo, hi = cover(a, step, r_seg, k_ds, owner, seg_win, obj_win, tstart, P, n_pix, False)
    np.testing.assert_array_equal(flags, want[0])
    assert np.isinf(lo).all() and np.isinf(hi).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_deposit_equals_numpy(seed):
    rng = np.random.default_rng(seed)
    n, shape = 5000, (len(PLANES), 40, 50)
    zl = rng.uniform(-400.0, 800.0, n)
    zh = zl + rng.uniform(0.0, 600.0, n)
    amount = rng.uniform(50.0, 200.0, n)
    flat_xy = rng.integers(0, shape[1] * shape[2], n)  # repeated pixels: the accumulation order matters
    want = np.zeros(shape, np.float32)
    got = np.zeros(shape, np.float32)
    _deposit_numpy(want.reshape(-1), zl, zh, amount, flat_xy, PLANES, 125.0)
    deposit(got.reshape(-1), zl, zh, amount, flat_xy, PLANES, 125.0)
    assert want.any()
    np.testing.assert_array_equal(got, want)


def test_rasterise_masks_only_matches_density_masks():
    cfg = SimulateConfig()
    tubes = sample_tubes([(crop_rng(3, 0, 0, 0), (5120.0, 5120.0), 0, 0)], cfg.geometry)
    _, with_density = rasterise(tubes, (128, 128), P, PLANES, 20)
    none, masks = rasterise(tubes, (128, 128), P, PLANES, 20, density=False)
    assert none is None
    for x, y in zip(with_density, masks):
        assert (x is None) == (y is None)
        if x is not None:
            assert x[0] == y[0] and np.array_equal(x[1], y[1])
