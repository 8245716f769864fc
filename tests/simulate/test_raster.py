"""Rasterisation against a brute-force 3D calculation."""

import numpy as np
import pytest

from mitoscale.simulate import SimulateConfig
from mitoscale.simulate.geometry import Tube, bezier, sample_tubes
from mitoscale.simulate.raster import rasterise, segment_count
from mitoscale.simulate.render import crop_rng

P = 80.0
PLANES = np.arange(-250.0, 751.0, 125.0)


def _brute(tube: Tube, rows, cols):
    """Thickness (nm) of the tube under each pixel centre by dense z sampling in 3D."""
    arc = max(tube.length_nm - tube.width_nm, 0.0)
    pts = bezier(tube.control_points, segment_count(arc) + 1)
    z = np.arange(-400.0, 900.0, 0.5)
    out = np.zeros(len(rows))
    a, b = pts[:-1], pts[1:]
    for n, (r, c) in enumerate(zip(rows, cols)):
        q = np.stack(np.broadcast_arrays((c + 0.5) * P, (r + 0.5) * P, z), axis=1)  # (Z, 3)
        ab = b - a
        t = np.clip(((q[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0, 1)
        d = np.linalg.norm(q[:, None] - (a[None] + t[..., None] * ab[None]), axis=-1).min(axis=1)
        out[n] = (d <= tube.radius_nm).sum() * 0.5
    return out


def _tube(cp, width=300.0, brightness=1.0):
    cp = np.asarray(cp, float)
    arc = np.linalg.norm(np.diff(bezier(cp, 2001), axis=0), axis=1).sum()
    return Tube(control_points=cp, width_nm=width, length_nm=arc + width, brightness=brightness,
                crop_row=0, crop_col=0)


@pytest.mark.parametrize("tube", [
    _tube([[800, 800, 250], [1600, 900, 250], [2400, 800, 250]]),          # flat, curved
    _tube([[800, 1600, 0], [1500, 1500, 250], [2200, 1600, 500]], 400.0),  # climbing 500 nm
    _tube([[1600, 1600, 100], [1600, 1600, 300], [1610, 1600, 450]], 350.0),  # nearly vertical
    _tube([[1600, 1600, 200], [1600, 1600, 200]], 480.0),                  # a sphere
], ids=["flat", "tilted", "vertical", "sphere"])
def test_density_is_the_projected_thickness(tube):
    density, masks = rasterise([tube], (40, 40), P, PLANES, 0)
    thickness = density.sum(axis=0)  # hat weights form a partition of unity
    (y0, x0, y1, x1), crop = masks[0]
    rows, cols = np.nonzero(np.pad(crop, 2))
    rows, cols = rows + y0 - 2, cols + x0 - 2
    brute = _brute(tube, rows, cols)
    got = thickness[rows, cols]
    assert np.abs(got - brute).max() < 3.0  # nm, the brute-force z step is 0.5 nm
    # the mask is where the projected tube covers the pixel centre: lateral
    # distance to the (densely sampled) projected polyline within the radius
    full = np.zeros((40, 40), bool)
    full[y0:y1, x0:x1] = crop
    arc = max(tube.length_nm - tube.width_nm, 0.0)
    pts = bezier(tube.control_points, segment_count(arc) + 1)
    dense = np.concatenate([np.linspace(a, b, 400) for a, b in zip(pts[:-1], pts[1:])]) if len(pts) > 1 else pts
    yy, xx = np.mgrid[0:40, 0:40]
    d = np.hypot((xx.ravel()[:, None] + 0.5) * P - dense[None, :, 0],
                 (yy.ravel()[:, None] + 0.5) * P - dense[None, :, 1]).min(axis=1).reshape(40, 40)
    clear = np.abs(d - tube.radius_nm) > 1.0  # away from sampling ties
    assert np.array_equal(full[clear], (d <= tube.radius_nm)[clear])


def test_density_z_centroid_matches_the_tube():
    tube = _tube([[800, 1600, 0], [1500, 1500, 250], [2200, 1600, 500]], 300.0)
    density, _ = rasterise([tube], (40, 40), P, PLANES, 0)
    # the dye's mean height equals the centreline's mean height (symmetric cross-section)
    zbar = (density.sum(axis=(1, 2)) * PLANES).sum() / density.sum()
    centre = bezier(tube.control_points, 2001)[:, 2]
    assert zbar == pytest.approx(centre.mean(), abs=15.0)


def test_random_tubes_against_brute_force():
    cfg = SimulateConfig()
    tubes = sample_tubes([(crop_rng(5, 0, 0, 0), (5120.0, 5120.0), 0, 0)], cfg.geometry)
    density, masks = rasterise(tubes, (128, 128), P, PLANES, 0)
    rng = np.random.default_rng(0)
    for k in rng.choice(len(tubes), size=min(4, len(tubes)), replace=False):
        solo, m = rasterise([tubes[k]], (128, 128), P, PLANES, 0)
        (y0, x0, y1, x1), crop = m[0]
        rows, cols = np.nonzero(crop)
        pick = rng.choice(len(rows), size=min(25, len(rows)), replace=False)
        r, c = rows[pick] + y0, cols[pick] + x0
        thickness = solo.sum(axis=0)[r, c] / tubes[k].brightness  # density = thickness x brightness
        assert np.abs(thickness - _brute(tubes[k], r, c)).max() < 3.0
        assert masks[k][0] == m[0][0] and np.array_equal(masks[k][1], crop)
    # all tubes together: densities add up
    total = sum(rasterise([t], (128, 128), P, PLANES, 0)[0] for t in tubes)
    assert np.allclose(total, density, atol=1e-3)
