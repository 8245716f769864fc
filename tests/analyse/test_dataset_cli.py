import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mitoscale.analyse.dataset import bootstrap_mean_ci
from mitoscale.cli import main
from mitoscale.io.tables import read_table, write_table



def test_bootstrap_ci_brackets_mean_and_degenerates():
    rng = np.random.default_rng(0)
    v = rng.normal(5, 1, size=(40, 2))
    ci = bootstrap_mean_ci(v, 2000, 0.95, rng)
    assert (ci[:, 0] < v.mean(0)).all() and (v.mean(0) < ci[:, 1]).all()
    # about 1.96 standard errors each side
    se = v.std(0, ddof=1) / np.sqrt(40)
    assert np.allclose(ci[:, 1] - ci[:, 0], 2 * 1.96 * se, rtol=0.2)
    one = bootstrap_mean_ci(np.array([[0.3, 0.7]]), 500, 0.95, rng)
    assert np.allclose(one, [[0.3, 0.3], [0.7, 0.7]])


def test_analyze_cli_end_to_end(study, capsys):
    root, spec = study
    out = root / "out"
    rc = main(["analyze", str(root / "tables"), "--conditions", str(root / "conditions.csv"),
               "--out", str(out), "--set", "n_bootstrap=500"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cond_a" in printed and "dot share" in printed
    ds = xr.open_dataset(out / "morphology.nc", engine="h5netcdf").load()
    assert list(ds["condition"].values) == ["cond_a", "cond_b", "cond_c"]
    assert ds.attrs["dot_max_area_um2"] == 1.28
    # hand-computed: image a1 has 2 dots of 50 px and 8 rods of 400 px
    a1 = ds.sel(image="a1")
    assert a1["count"].sel({"class": "dot"}) == 2
    assert float(a1["area_fraction"].sel({"class": "dot"})) == pytest.approx(100 / 3300)
    assert np.allclose(ds["count_fraction"].sum("class"), 1)
    # condition means are means over images; dot share rises a -> b -> c by construction
    dot = ds["mean_count_fraction"].sel({"class": "dot"}).values
    assert dot == pytest.approx([(0.2 + 0.3) / 2, (0.6 + 0.5) / 2, (0.9 + 0.8) / 2])
    assert list(ds["total_count"].sel({"class": "rod"}).values) == [15, 9, 3]
    lo, hi = ds["ci_count_fraction"].sel({"class": "dot"}).values.T
    assert (lo <= dot + 1e-12).all() and (dot <= hi + 1e-12).all()
    per_cond = pd.read_csv(out / "per_condition.csv")
    assert len(per_cond) == 6 and {"ci_low_area_fraction", "mean_count"} <= set(per_cond.columns)
    assert len(pd.read_csv(out / "per_image.csv")) == 12
    for stem in ("fig_a_counts", "fig_b_count_fraction", "fig_c_area_fraction"):
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (out / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"


def test_analyze_threshold_option_changes_classes(study):
    root, _ = study
    main(["analyze", str(root / "tables"), "--conditions", str(root / "conditions.csv"),
          "--out", str(root / "o2"), "--dot-max-area", str(450 * 0.0064), "--set", "n_bootstrap=200"])
    ds = xr.open_dataset(root / "o2" / "morphology.nc", engine="h5netcdf")
    assert int(ds["count"].sel(image="a1", **{"class": "dot"})) == 10


def _run_err(argv, capsys):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


def test_bad_inputs_exit_nonzero_with_one_line(study, capsys, tmp_path):
    root, _ = study
    tables = str(root / "tables")
    out = str(tmp_path / "bad")
    # conditions naming an unknown image
    c = root / "c_unknown.csv"
    c.write_text("file,condition\na1.png,x\nnot_there.png,y\n")
    rc, err = _run_err(["analyze", tables, "--conditions", str(c), "--out", out], capsys)
    assert rc == 2 and "'not_there'" in err and len(err.splitlines()) == 1
    # an empty condition
    c.write_text("file,condition\na1.png,x\nb1.png,\n")
    rc, err = _run_err(["analyze", tables, "--conditions", str(c), "--out", out], capsys)
    assert rc == 2 and "empty condition" in err and len(err.splitlines()) == 1
    # a table failing the schema
    df = read_table(tables)
    df.drop(columns=["area_um2"]).to_parquet(tmp_path / "broken.parquet")
    rc, err = _run_err(["analyze", str(tmp_path / "broken.parquet"), "--conditions",
                        str(root / "conditions.csv"), "--out", out], capsys)
    assert rc == 2 and "missing columns: area_um2" in err and len(err.splitlines()) == 1
    # pixel size missing from a table
    df2 = df.copy()
    df2["pixel_size_um"] = np.nan
    df2.to_parquet(tmp_path / "nopx.parquet")
    rc, err = _run_err(["analyze", str(tmp_path / "nopx.parquet"), "--conditions",
                        str(root / "conditions.csv"), "--out", out], capsys)
    assert rc == 2 and "pixel_size_um" in err and len(err.splitlines()) == 1


def test_tables_at_two_pixel_sizes_are_classified_alike(tmp_path, make_table):
    # the same physical objects (0.5 and 2.5 um^2) sampled at 80 nm and 50 nm
    t = pd.concat([make_table("s80", [78, 391], pixel_size_um=0.08),
                   make_table("s50", [200, 1000], pixel_size_um=0.05, shape=(400, 400))], ignore_index=True)
    write_table(t, tmp_path / "t.parquet")
    (tmp_path / "c.csv").write_text("image_id,condition\ns80,a\ns50,b\n")
    assert main(["analyze", str(tmp_path / "t.parquet"), "--conditions", str(tmp_path / "c.csv"),
                 "--out", str(tmp_path / "o"), "--set", "n_bootstrap=100"]) == 0
    ds = xr.open_dataset(tmp_path / "o" / "morphology.nc", engine="h5netcdf")
    assert ds["count"].values.tolist() == [[1, 1], [1, 1]]
