"""The Gibson-Lanni PSF against an independent implementation (psfmodels, GPL: test oracle only)."""

import numpy as np
import pytest

from mitoscale.simulate.psf import Optics, best_focus, gibson_lanni_radial, psf_2d

psfmodels = pytest.importorskip("psfmodels")


def _oracle(o: Optics, zf_nm, zp_nm, nx, dxy_nm):
    params = dict(NA=o.na, ns=o.ns, ni=o.ni, ni0=o.ni0, ng=o.ng, ng0=o.ng0,
                  tg=o.tg_nm / 1000, tg0=o.tg0_nm / 1000, ti0=o.ti0_nm / 1000, sf=3, mode=1)
    return psfmodels.scalar_psf(np.asarray(zf_nm) / 1000, nx=nx, dxy=dxy_nm / 1000, pz=zp_nm / 1000,
                                wvl=o.wavelength_nm / 1000, params=params, normalize=False)


@pytest.mark.parametrize("optics,zp", [
    (Optics(), 300.0),                                  # the simulator's defaults (aqueous specimen)
    (Optics(), 1050.0),                                 # deepest object plane
    (Optics(ns=1.47, na=1.4, wavelength_nm=600.0), 0.0),  # psfmodels' own defaults
])
def test_psf_matches_psfmodels_scalar_within_2_percent(optics, zp):
    zf = zp + np.array([-750.0, -400.0, -100.0, 0.0, 150.0, 500.0, 750.0])
    zf = zf[zf >= 0]
    ref = _oracle(optics, zf, zp, 31, 80.0)
    mine = psf_2d((31, 31), 80.0, zf, zp, optics, oversample=3)
    # same normalisation for both: the global maximum of the stack
    ref, mine = ref / ref.max(), mine / mine.max()
    err = np.linalg.norm(mine - ref) / np.linalg.norm(ref)
    assert err < 0.02, f"relative L2 error {err:.4f}"
    # and slice by slice (defocus behaviour, not just the in-focus peak)
    for a, b in zip(ref, mine):
        assert np.linalg.norm(a - b) / np.linalg.norm(a) < 0.05


def test_best_focus_matched_index_and_focal_shift():
    zp = 400.0
    # matched indices: the paraxial focus is the focus
    assert abs(best_focus(zp, Optics(ns=1.515)) - zp) < 2.0
    # aqueous specimen under oil: the intensity peak lies beyond the paraxial focus
    shifted = best_focus(zp, Optics())
    assert 1.1 * zp < shifted < 1.5 * zp
    zf = np.linspace(0, 1000, 201)
    peak = gibson_lanni_radial(np.array([0.0]), zf, zp)[:, 0]
    assert abs(zf[np.argmax(peak)] - shifted) <= 5.0


def test_lateral_fwhm_is_diffraction_limited():
    o = Optics()
    r = np.linspace(0, 600, 1201)
    prof = gibson_lanni_radial(r, [300.0], 300.0, o)[0]
    fwhm = 2 * r[np.argmax(prof < prof[0] / 2)]
    # scalar widefield: FWHM ~ 0.51 lambda / NA (Airy) -> ~237 nm for 660 nm / 1.42
    assert 0.45 * o.wavelength_nm / o.na < fwhm < 0.58 * o.wavelength_nm / o.na
