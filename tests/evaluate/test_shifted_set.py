"""benchmarks/shifted_set.py: its parameters really lie outside the training preset's ranges, the
truth's dot shares are the analysis rule's, and the script runs end to end (issue 16)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("shifted_set", ROOT / "benchmarks" / "shifted_set.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _outside(value, lo, hi):
    return value < lo or value > hi


def test_shifted_parameters_lie_outside_the_training_ranges():
    from mitoscale.simulate.config import load_simulate_config

    mod = _script()
    train = load_simulate_config(str(ROOT / "configs" / "simulate_broad.yaml")).broad
    for cond in mod.CONDITIONS:
        shifted = mod.condition_config(cond)
        o, t = shifted.broad.optics, train.optics
        assert o.numerical_aperture[0] == o.numerical_aperture[1]  # one fixed PSF
        assert _outside(o.numerical_aperture[0], *t.numerical_aperture)
        assert _outside(o.ns[0], *t.ns)
        assert _outside(o.ni_mismatch[0], *t.ni_mismatch)
        assert o.focal_slices == (1, 1) and o.single_plane_probability == 1.0
        assert shifted.corpus.pixel_size_nm == 65 and o.render_pixel_nm == (65, 65)
        g, c = shifted.broad.geometry, shifted.broad.camera
        assert g.haze_objects[0] >= train.geometry.haze_objects[1]  # more haze than training saw
        assert c.cell_haze[0] >= train.camera.cell_haze[1]
    seeds = [s for s, _ in mod.CONDITIONS.values()]
    assert len(set(seeds)) == 3 and min(seeds) > 1000  # apart from the corpora's seeds (1-99)


def test_truth_dot_shares_follow_the_conditions_and_the_analysis_rule():
    mod = _script()
    shares = {}
    for cond in mod.CONDITIONS:
        image, gt = next(mod.shifted_images(cond, 1, 256))
        assert image.shape == (256, 256) and len(gt) > 5
        count, area = mod.dot_shares(gt, 1.28)
        a = gt["area_um2"].to_numpy()  # independent: the rule written out, px area at 65 nm
        assert np.allclose(a, gt["area_px"].to_numpy() * 0.065 ** 2)
        assert count == pytest.approx(np.mean(a <= 1.28))
        assert area == pytest.approx(a[a <= 1.28].sum() / a.sum())
        shares[cond] = count
    assert shares["networks"] < shares["intermediate"] < shares["fragments"]


def test_shifted_set_script_end_to_end(tmp_path):
    mod = _script()
    md = tmp_path / "BENCH.md"
    md.write_text("# bench\n")
    rc = mod.main(["--n-images", "1", "--shape", "160", "--baselines", "classical", "--model", "m=shipped",
                   "--out", str(tmp_path / "out"), "--overlays", str(tmp_path / "img"), "--overlay-crop", "96",
                   "--update", str(md)])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res["conditions"]) == set(mod.CONDITIONS)
    assert set(res["pooled"]) == {"m", "classical"}
    assert set(res["targets"]) == {"m"}
    for cond, by in res["conditions"].items():
        for s in by.values():
            assert 0 <= s["precision"] <= 1 and 0 <= s["recall"] <= 1 and s["n_gt"] == res["truth"][cond]["n"]
    assert all((tmp_path / "img" / f"shifted_{c}.png").exists() for c in mod.CONDITIONS)
    assert "<!-- shifted_set:begin -->" in md.read_text()


def test_unknown_condition_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        _script().parse_args(["--conditions", "networks,nope"])
    assert e.value.code == 2 and "unknown condition" in capsys.readouterr().err
