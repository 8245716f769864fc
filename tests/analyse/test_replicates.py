"""Statistics over experimental units, not frames or fields (issue 13, section 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mitoscale.analyse.config import AnalyseConfig
from mitoscale.analyse.run import analyse_tables
from mitoscale.io.tables import write_table


def _movie(mk, image_id, n_frames, dots, rods, **keys):
    frames = []
    for t in range(n_frames):
        tab = mk(image_id, [50] * (dots + t % 2) + [400] * rods)
        frames.append(tab.assign(t=t, **keys))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def movies(tmp_path, make_table):
    """Two 6-frame movies per condition: 12 frames but 2 replicates each."""
    df = pd.concat([_movie(make_table, "a1", 6, 2, 8), _movie(make_table, "a2", 6, 3, 7),
                    _movie(make_table, "b1", 6, 6, 4), _movie(make_table, "b2", 6, 5, 5)],
                   ignore_index=True)
    csv = tmp_path / "c.csv"
    csv.write_text("image_id,condition\na1,A\na2,A\nb1,B\nb2,B\n")
    return df, csv


def test_a_timelapse_is_one_replicate(movies):
    df, csv = movies
    ds = analyse_tables(df, csv, AnalyseConfig(n_bootstrap=200))
    assert ds.attrs["replicate"] == "series"
    assert ds["n_units"].values.tolist() == [2, 2] and ds["n_images"].values.tolist() == [12, 12]
    # independent calculation: mean of each movie's mean, then the mean of the movies
    per_frame = df.assign(dot=df["area_um2"] <= 1.28).groupby(["image_id", "t"])["dot"].agg(["sum", "mean"])
    movie = per_frame.groupby("image_id").mean()
    exp_count = movie.loc[["a1", "a2"], "sum"].mean()
    exp_frac = movie.loc[["a1", "a2"], "mean"].mean()
    assert float(ds["mean_count"].sel(condition="A", **{"class": "dot"})) == pytest.approx(exp_count)
    assert float(ds["mean_count_fraction"].sel(condition="A", **{"class": "dot"})) == pytest.approx(exp_frac)
    units = ds["unit_count_fraction"].sel({"class": "dot"})
    assert sorted(ds["unit"].values.tolist()) == ["a1", "a2", "b1", "b2"]
    assert float(units.sel(unit="b1")) == pytest.approx(movie.loc["b1", "mean"])
    # the CI is a bootstrap over the 2 movies: it lies within their range
    lo, hi = ds["ci_count_fraction"].sel(condition="A", **{"class": "dot"}).values
    assert lo >= movie.loc[["a1", "a2"], "mean"].min() - 1e-12
    assert hi <= movie.loc[["a1", "a2"], "mean"].max() + 1e-12
    # frames as replicates (pseudo-replication) only when asked for
    naive = analyse_tables(df, csv, AnalyseConfig(n_bootstrap=200, replicate="image"))
    assert naive["n_units"].values.tolist() == [12, 12]


def test_plate_fields_are_averaged_per_well(tmp_path, make_table):
    tabs = []
    for w, (dots, rods) in {"A/1": (2, 8), "A/2": (4, 6), "B/1": (7, 3), "B/2": (6, 4)}.items():
        for f in range(3):
            tabs.append(make_table("plate", [50] * (dots + f) + [400] * rods).assign(well=w, field=f))
    df = pd.concat(tabs, ignore_index=True)
    csv = tmp_path / "c.csv"
    csv.write_text("well,condition\nA01,ctrl\nA02,ctrl\nB01,drug\nB02,drug\n")
    ds = analyse_tables(df, csv, AnalyseConfig(n_bootstrap=200))
    assert ds.attrs["replicate"] == "well"
    assert ds["n_units"].values.tolist() == [2, 2] and ds["n_images"].values.tolist() == [6, 6]
    exp = np.mean([np.mean([(2 + f) for f in range(3)]), np.mean([(4 + f) for f in range(3)])])
    assert float(ds["mean_count"].sel(condition="ctrl", **{"class": "dot"})) == pytest.approx(exp)
    field = analyse_tables(df, csv, AnalyseConfig(n_bootstrap=200, replicate="field"))
    assert field["n_units"].values.tolist() == [6, 6]


def test_outputs_report_units_and_figures_show_them(movies, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mitoscale.analyse.plots import plot_metric
    from mitoscale.analyse.run import format_summary, write_outputs

    df, csv = movies
    ds = analyse_tables(df, csv, AnalyseConfig(n_bootstrap=200))
    paths = write_outputs(ds, tmp_path / "out")
    per_cond = pd.read_csv(paths["per_condition"])
    assert set(per_cond["n_units"]) == {2} and set(per_cond["replicate"]) == {"series"}
    assert "n = series" in format_summary(ds)
    fig, ax = plt.subplots()
    plot_metric(ds, "count_fraction", ax)
    from matplotlib.collections import PathCollection

    points = sum(len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection))
    assert points == 2 * 2 * 2  # 2 units x 2 conditions x 2 classes, not 12 frames each
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A\n(n=2 series)", "B\n(n=2 series)"]
    plt.close(fig)


def test_min_area_above_the_dot_threshold_is_one_line(movies, tmp_path, capsys):
    from mitoscale.cli import main

    df, csv = movies
    write_table(df, tmp_path / "t.parquet")
    rc = main(["analyze", str(tmp_path / "t.parquet"), "--conditions", str(csv), "--out",
               str(tmp_path / "o"), "--set", "min_area_um2=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "min_area_um2" in err[0] and "every dot" in err[0]
    assert not (tmp_path / "o" / "per_condition.csv").exists()
