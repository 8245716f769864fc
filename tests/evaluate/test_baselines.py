"""Baseline kernels on real simulator output, label -> table conversion, Nellie (optional)."""

import numpy as np
import pytest

from mitoscale.evaluate.baselines import ClassicalConfig, nellie_available, segment_classical, segment_nellie
from mitoscale.evaluate.baselines.common import labels_to_table
from mitoscale.evaluate.metrics import evaluate_tables
from mitoscale.io.tables import table_to_masks


@pytest.fixture(scope="module")
def synthetic():
    """Two small simulated images (real simulator, 80 nm and 65 nm sampling) with ground truth."""
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    cfg = load_simulate_config(None)
    return {px: simulate_image(cfg, 777, 0, pixel_size_nm=px, shape=(int(256 * 80 / px),) * 2)
            for px in (80, 65)}


def _score(labels, sim, px_um):
    pred = labels_to_table(labels, image_id=sim.table["image_id"].iloc[0], pixel_size_um=px_um, z=-1,
                           image=sim.image)
    return evaluate_tables(pred, sim.table)[1]


def test_labels_to_table_roundtrip():
    lab = np.zeros((40, 50), np.int32)
    lab[2:6, 3:9] = 4
    lab[10:30, 10:12] = 9
    lab[35:38, 40:50] = 2
    img = np.arange(lab.size, dtype=float).reshape(lab.shape)
    t = labels_to_table(lab, image_id="x", pixel_size_um=0.1, image=img)
    assert list(t["instance_id"]) == [1, 2, 3]
    masks = table_to_masks(t)
    for m, v in zip(masks, (2, 4, 9)):  # label order
        np.testing.assert_array_equal(m, lab == v)
    assert t["mean_intensity"].iloc[1] == pytest.approx(img[lab == 4].mean())
    assert t["area_um2"].iloc[2] == pytest.approx(40 * 0.01)
    assert len(labels_to_table(np.zeros((5, 5), int), image_id="e", pixel_size_um=0.1)) == 0


def test_classical_finds_synthetic_mitochondria(synthetic):
    sim = synthetic[80]
    s = _score(segment_classical(sim.image, 0.08), sim, 0.08)
    assert s["precision"] > 0.8 and s["recall"] > 0.5 and s["mean_dice"] > 0.4, s


def test_classical_settings_are_physical(synthetic):
    # the same scene sampled at 80 and 65 nm gives similar instance counts and quality
    counts, dice = [], []
    for px, sim in synthetic.items():
        s = _score(segment_classical(sim.image, px / 1000), sim, px / 1000)
        counts.append(s["n_pred"])
        dice.append(s["mean_dice"])
    assert abs(counts[0] - counts[1]) <= 0.2 * max(counts)
    assert abs(dice[0] - dice[1]) < 0.1


def test_classical_edge_cases():
    assert segment_classical(np.zeros((32, 32)), 0.08).max() == 0
    img = np.zeros((64, 64), np.float32)
    img[20:26, 10:50] = 100          # one bright rod on a flat background
    lab = segment_classical(img, 0.08, ClassicalConfig(background_sigma_um=4.0))
    assert lab.max() == 1
    with pytest.raises(ValueError):
        segment_classical(np.zeros((2, 8, 8)), 0.08)


@pytest.mark.nellie
@pytest.mark.skipif(not nellie_available(), reason="optional extra 'nellie' not installed "
                                                   "(pip install 'mitoscale[nellie]')")
def test_nellie_runs_headless_and_finds_objects(synthetic):
    import sys

    sim = synthetic[80]
    labels = segment_nellie(sim.image, 0.08)
    assert labels.shape == sim.image.shape and labels.max() > 5
    assert not any(m.startswith(("PyQt", "napari.qt")) for m in sys.modules)
    s = _score(labels, sim, 0.08)
    assert s["tp"] > 0.3 * s["n_gt"], s


def test_nellie_missing_is_a_clear_error(monkeypatch):
    import mitoscale.evaluate.baselines.nellie as nel
    from mitoscale.errors import InputError

    monkeypatch.setattr(nel, "nellie_available", lambda: False)
    with pytest.raises(InputError, match=r"mitoscale\[nellie\]"):
        nel.segment_nellie(np.zeros((8, 8)), 0.08)
