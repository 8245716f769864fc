"""`mitoscale baseline` and `mitoscale evaluate` end to end on real files."""

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from mitoscale.cli import main
from mitoscale.evaluate.baselines.run import run_baseline
from mitoscale.io.tables import instances_to_table, read_table, write_table
from tests.conftest import done_units, forget_units


@pytest.fixture(scope="module")
def sim_folder(tmp_path_factory):
    """Three simulated 80 nm images as TIFFs, plus their ground-truth table."""
    from mitoscale.simulate.config import load_simulate_config
    from mitoscale.simulate.render import simulate_image

    root = tmp_path_factory.mktemp("sim")
    cfg = load_simulate_config(None)
    tables = []
    for i in range(3):
        s = simulate_image(cfg, 4242, i, shape=(192, 192))
        name = f"img{i}"
        (root / "images").mkdir(exist_ok=True)
        tifffile.imwrite(root / "images" / f"{name}.tif", s.image)
        tables.append(s.table.assign(image_id=name, z=0))
    write_table(pd.concat(tables, ignore_index=True), root / "gt.parquet")
    return root


def test_baseline_then_evaluate_cli(sim_folder, tmp_path, capsys, local_client):
    out = tmp_path / "classical"
    rc = main(["baseline", "classical", str(sim_folder / "images"), "--out", str(out), "--pixel-size", "0.08",
               "--scheduler", local_client.scheduler.address])
    assert rc == 0
    pred = read_table(out)
    assert set(pred["image_id"]) == {"img0", "img1", "img2"} and len(pred) > 20
    assert (pred["pixel_size_um"] == 0.08).all()
    assert json.loads((out / "manifest.json").read_text())["method"] == "classical"
    capsys.readouterr()
    rc = main(["evaluate", str(out), str(sim_folder / "gt.parquet"), "--out", str(tmp_path / "ev")])
    assert rc == 0
    text = capsys.readouterr().out
    assert "precision" in text and "mean Dice" in text
    per_image = pd.read_csv(tmp_path / "ev" / "per_image.csv")
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert len(per_image) == 3 and per_image["tp"].sum() == summary["tp"]
    assert summary["precision"] > 0.7 and summary["config"]["threshold"] == 0.5
    matches = pd.read_csv(tmp_path / "ev" / "matches.csv")
    assert len(matches) == summary["tp"] and (matches["dice"] >= 0.5).all()


def test_baseline_resumes_and_refuses_other_settings(sim_folder, tmp_path, local_client):
    out = tmp_path / "o"
    first = run_baseline("classical", sim_folder / "images", out, pixel_size_um=0.08, client=local_client)
    assert first["n_frames"] == 3 and first["n_done_before"] == 0
    forget_units(out, "img1_____f0__t0__z0")
    again = run_baseline("classical", sim_folder / "images", out, pixel_size_um=0.08, client=local_client)
    assert again["n_done_before"] == 2 and again["n_frames"] == 3
    assert set(read_table(out)["image_id"]) == {"img0", "img1", "img2"}
    rc = main(["baseline", "classical", str(sim_folder / "images"), "--out", str(out), "--pixel-size", "0.08",
               "--set", "h_um=0.2"])
    assert rc == 2


def test_cli_user_errors_are_one_line(sim_folder, tmp_path, capsys):
    cases = [
        (["baseline", "classical", str(sim_folder / "images"), "--out", str(tmp_path / "a")], "pixel size"),
        (["baseline", "classical", str(sim_folder / "images"), "--out", str(tmp_path / "b"),
          "--pixel-size", "0.08", "--set", "bogus=1"], "unknown key 'bogus'"),
        (["evaluate", str(tmp_path / "missing.parquet"), str(sim_folder / "gt.parquet")], "not found"),
    ]
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"image_id": ["x"], "area_px": [3]}).to_parquet(bad)
    cases.append((["evaluate", str(bad), str(sim_folder / "gt.parquet")], "missing columns"))
    other = instances_to_table([np.ones((4, 4), bool)], image_id="nowhere", pixel_size_um=0.08)
    write_table(other, tmp_path / "other.parquet")
    cases.append((["evaluate", str(tmp_path / "other.parquet"), str(sim_folder / "gt.parquet")], "share no image"))
    for argv, msg in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip()
        assert rc == 2, argv
        assert msg in err and len(err.splitlines()) == 1, err
