"""The broad preset: exact truth for long, branched and crossing objects, camera statistics,
length distribution, determinism, bad ranges; and the paper preset left bit-identical."""

import hashlib

import numpy as np
import pytest
from scipy import stats

from mitoscale.cli import main
from mitoscale.simulate import SimulateConfig, simulate_image
from mitoscale.simulate.broad import camera_frame, optics_bank, render_layout
from mitoscale.simulate.config import load_simulate_config
from mitoscale.simulate.field import FieldLayout, FieldObject, _tube, sample_field

FIELD = 512 * 80.0  # nm
C = FIELD / 2


@pytest.fixture(scope="module")
def broad():
    return load_simulate_config(None, preset="broad")


@pytest.fixture(scope="module")
def entry(broad):
    return optics_bank(broad, 0)[0]


def _render(cfg, entry, objects, seed=0):
    layout = FieldLayout(objects=objects, haze=[], haze_defocus_nm=np.zeros(0), nucleus=None)
    rng = np.random.default_rng
    return render_layout(cfg, layout, entry, rng(seed), rng(seed + 1), 0, 80.0, (512, 512))


def test_paper_preset_is_bit_identical_to_before_the_broad_preset():
    # hashes of image + layered labels computed with the simulator at commit 8e6885d
    for idx, kw, want in ((3, {}, "7bde4832e271ab8c"),
                          (5, dict(pixel_size_nm=65.0, shape=(300, 200)), "344b10d142223615")):
        s = simulate_image(SimulateConfig(), 7, idx, **kw)
        assert hashlib.sha256(s.image.tobytes() + s.labels.tobytes()).hexdigest()[:16] == want
    assert "broad" not in SimulateConfig().model_dump() and "preset" not in SimulateConfig().model_dump()


def test_straight_12um_tube_is_one_instance_of_its_length(broad, entry):
    length, width = 12000.0, 400.0
    cp = np.array([[C - (length - width) / 2, C, 200.0], [C + (length - width) / 2, C, 200.0]])
    s = _render(broad, entry, [FieldObject("tube", [_tube(cp, width, length, 1.0)], length, width, 1.0, 200.0)])
    assert len(s.table) == 1
    row = s.table.iloc[0]
    assert abs(row.skeleton_length_um - length / 1000) / (length / 1000) < 0.05
    assert row.n_branch_points == 0 and row.n_end_points == 2


def test_y_junction_is_one_instance_with_one_branch_point(broad, entry):
    c = np.array([C, C, 200.0])
    arms = []
    for ang in (90.0, 210.0, 330.0):
        end = c + 3000.0 * np.array([np.cos(np.radians(ang)), np.sin(np.radians(ang)), 0.0])
        arms.append(_tube(np.stack([c, (c + end) / 2, end]), 400.0, 3400.0, 1.0))
    s = _render(broad, entry, [FieldObject("network", arms, 9400.0, 400.0, 1.0, 200.0)])
    assert len(s.table) == 1
    row = s.table.iloc[0]
    assert row.n_branch_points == 1 and row.n_end_points == 3
    assert row.skeleton_length_um == pytest.approx(3 * 3.0 + 3 * 0.2, rel=0.05)  # arms + end caps


def test_tubes_crossing_at_different_depths_are_two_overlapping_instances(broad, entry):
    a = _tube(np.array([[C - 5000, C, 0.0], [C + 5000, C, 0.0]]), 400.0, 10400.0, 1.0)
    b = _tube(np.array([[C, C - 5000, 600.0], [C, C + 5000, 600.0]]), 400.0, 10400.0, 1.0)
    s = _render(broad, entry, [FieldObject("tube", [a], 10400.0, 400.0, 1.0, 0.0),
                               FieldObject("tube", [b], 10400.0, 400.0, 1.0, 600.0)])
    assert len(s.table) == 2
    ma, mb = (s.labels == 1).any(axis=0), (s.labels == 2).any(axis=0)
    assert (ma & mb).sum() >= 16  # about (400 / 80)^2 pixels of the crossing
    assert s.labels.shape[0] == 2  # kept exact in two layers


def test_drawn_fields_hold_networks_crossings_and_long_tubes(broad):
    g = broad.broad.geometry
    kinds, long_tubes, overlaps = {}, 0, 0
    for i in range(4):
        s = simulate_image(broad, 3, i)
        for k, v in s.table.kind.value_counts().items():
            kinds[k] = kinds.get(k, 0) + v
        long_tubes += int((s.table.length_nm > 5000).sum())
        overlaps += int(((s.labels > 0).sum(axis=0) > 1).sum())
        assert s.image.shape == (512, 512) and s.image.dtype == np.uint16
        # a network is one instance with its branch points
        nets = s.table[s.table.kind == "network"]
        if len(nets):
            assert (nets.n_tubes >= g.network_edges[0]).all()
            assert nets.n_branch_points.sum() > 0
    assert set(kinds) == {"tube", "dot", "network"}
    assert long_tubes > 0 and overlaps > 0


def test_camera_gain_offset_and_read_noise_by_independent_estimates(broad):
    cam = broad.broad.camera
    for i in range(3):
        info = simulate_image(broad, 5, i).info
        g, off, rn = info["gain_adu_per_e"], info["offset_adu"], info["read_noise_e"]
        assert cam.gain_adu_per_e[0] <= g <= cam.gain_adu_per_e[1]
        # the same camera model on a dark half and a lit half (100 photons)
        expected = np.zeros((400, 400), np.float32)
        expected[:, 200:] = 100.0
        frame = camera_frame(np.random.default_rng(i), expected, g, off, rn).astype(float)
        dark, lit = frame[:, :200], frame[:, 200:]
        off_est = dark.mean()
        gain_est = (lit.var() - dark.var()) / (lit.mean() - dark.mean())  # photon transfer
        rn_est = dark.std() / gain_est
        assert off_est == pytest.approx(off, abs=0.02 * off + 0.5)
        assert gain_est == pytest.approx(g, rel=0.05)
        assert rn_est == pytest.approx(rn, rel=0.1, abs=0.15)
        assert cam.offset_adu[0] <= off_est <= cam.offset_adu[1]
        assert cam.read_noise_e[0] * 0.9 <= rn_est <= cam.read_noise_e[1] * 1.1


def test_sbr_by_an_independent_estimate(broad):
    from scipy import ndimage

    cfg = broad.model_copy(deep=True)
    b = cfg.broad
    b.camera.cell_haze = (0.0, 0.0)
    b.camera.illumination_falloff = (0.0, 0.0)
    b.camera.eight_bit_probability = 0.0
    b.geometry.haze_objects = (0, 0)
    b.geometry.objects_per_image = (20, 40)
    b.optics.render_pixel_nm = (80.0, 80.0)
    b.optics.bank_size = 2
    for i in range(3):
        s = simulate_image(cfg, 9, i)
        photons = (s.image.astype(float) - s.info["offset_adu"]) / s.info["gain_adu_per_e"]
        fg = (s.labels > 0).any(axis=0)
        far = ndimage.distance_transform_edt(~fg) * 0.08 > 1.5
        bg = photons[far].mean()
        est = (photons[fg].mean() - bg) / bg
        assert bg == pytest.approx(s.background, rel=0.03)
        assert est == pytest.approx(s.sbr, rel=0.10)
        assert b.camera.sbr[0] * 0.9 <= est <= b.camera.sbr[1] * 1.1


def test_tube_lengths_follow_the_configured_distribution(broad):
    g = broad.broad.geometry
    rng = np.random.default_rng(0)
    lengths = []
    while len(lengths) < 2000:
        layout = sample_field(rng, g, broad.broad.intensity, FIELD, 500.0)
        lengths += [o.length_nm for o in layout.objects if o.kind == "tube"]
    res = stats.kstest(np.array(lengths[:2000]), g.tube_length.cdf)
    assert res.pvalue > 0.01
    assert max(lengths) > 10000 and min(lengths) < 500


def test_same_seed_same_image_and_other_index_other_image(broad):
    a, b = simulate_image(broad, 1, 4), simulate_image(broad, 1, 4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.image, simulate_image(broad, 1, 5).image)


@pytest.mark.parametrize("override, needle", [
    ("broad.geometry.width_nm=[700,200]", "min 700.0 > max 200.0"),
    ("broad.geometry.width_nm=[-5,200]", "must be positive"),
    ("broad.optics.numerical_aperture=[1.2,1.52]", "must be < the immersion index"),
    ("broad.geometry.tube_length.range_nm=[900000,950000]", "has no mass in range_nm"),
])
def test_bad_ranges_are_one_line_errors(tmp_path, capsys, override, needle):
    rc = main(["simulate", "--preset", "broad", "--set", override, "--n-images", "2",
               "--out", str(tmp_path / "c.zarr")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "c.zarr").exists()


def test_unknown_preset_and_help(tmp_path, capsys):
    assert main(["simulate", "--preset", "fancy", "--n-images", "2", "--out", str(tmp_path / "c.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown simulator preset 'fancy'" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    assert "paper" in out and "broad" in out


def test_broad_corpus_bit_identical_across_worker_counts(tmp_path, local_client):
    from mitoscale.simulate import write_corpus
    from mitoscale.simulate.corpus import open_corpus

    cfg = load_simulate_config(None, preset="broad", overrides=[
        "corpus.crop_px=64", "corpus.crops_per_side=2", "corpus.images_per_chunk=2",
        "broad.optics.bank_size=2", "broad.geometry.objects_per_image=[10,30]"])
    write_corpus(cfg, tmp_path / "a.zarr", 4, seed=2, client=None)
    write_corpus(cfg, tmp_path / "b.zarr", 4, seed=2, client=local_client)
    ra, _ = open_corpus(tmp_path / "a.zarr")
    rb, attrs = open_corpus(tmp_path / "b.zarr")
    assert attrs["config"]["preset"] == "broad"
    assert np.array_equal(ra["images"][:], rb["images"][:])
    assert np.array_equal(ra["labels"][:], rb["labels"][:])
