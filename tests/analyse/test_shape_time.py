"""Analysis additions of issue 14: shape means with CIs, the dot/rod/network rule, time course, event rates."""

import numpy as np
import pandas as pd
import pytest
from skimage.draw import line

from mitoscale.analyse.config import AnalyseConfig
from mitoscale.analyse.run import analyse_tables, write_outputs
from mitoscale.cli import main
from mitoscale.io.tables import instances_to_table, write_table
from mitoscale.shape import SHAPE_COLUMNS


def tube(length, width=5):
    m = np.zeros((width + 4, length + 4), bool)
    m[2:2 + width, 2:2 + length] = True
    return m


def y_mask():
    m = np.zeros((60, 60), bool)
    for end in [(5, 30), (55, 5), (55, 55)]:
        rr, cc = line(30, 30, *end)
        for d in range(-2, 3):
            m[np.clip(rr + d, 0, 59), cc] = True
    return m


def _table(image_id, masks, t=0):
    offsets = [(0, 70 * k) for k in range(len(masks))]
    return instances_to_table(masks, offsets=offsets, shape=(80, 80 * len(masks)), image_id=image_id,
                              pixel_size_um=0.08, t=t)


def test_shape_means_per_condition_with_cis(tmp_path):
    spec = {"a1": [20, 30], "a2": [40, 40, 40], "b1": [60], "b2": [70, 80]}
    df = pd.concat([_table(k, [tube(n) for n in v]) for k, v in spec.items()], ignore_index=True)
    pd.DataFrame({"image_id": list(spec), "condition": [k[0] for k in spec]}).to_csv(tmp_path / "c.csv", index=False)
    ds = analyse_tables(df, tmp_path / "c.csv", AnalyseConfig(n_bootstrap=200))
    for cond in ("a", "b"):
        per_image = [df[df.image_id == k]["skeleton_length_um"].mean() for k in spec if k[0] == cond]
        got = ds["mean_shape"].sel(condition=cond, shape="skeleton_length_um")
        assert float(got) == pytest.approx(np.mean(per_image))  # images weigh equally
        lo, hi = ds["ci_shape"].sel(condition=cond, shape="skeleton_length_um").to_numpy()
        assert min(per_image) - 1e-9 <= lo <= float(got) <= hi <= max(per_image) + 1e-9
    assert list(ds["shape"].to_numpy()) == list(SHAPE_COLUMNS)
    # skeleton lengths follow the tubes' lengths (+-1 px): condition b is longer
    assert float(ds["mean_shape"].sel(condition="b", shape="skeleton_length_um")) > 5.0
    paths = write_outputs(ds, tmp_path / "out")
    shape_csv = pd.read_csv(tmp_path / "out" / "per_condition_shape.csv")
    assert len(shape_csv) == 2 * len(SHAPE_COLUMNS) and "fig_a_counts.png" in paths


def test_three_class_rule_counts_branched_objects_as_networks(tmp_path):
    df = pd.concat([_table("x", [tube(10, 3), tube(60), y_mask()])], ignore_index=True)
    pd.DataFrame({"image_id": ["x"], "condition": ["c"]}).to_csv(tmp_path / "c.csv", index=False)
    two = analyse_tables(df, tmp_path / "c.csv", AnalyseConfig(n_bootstrap=100))
    three = analyse_tables(df, tmp_path / "c.csv", AnalyseConfig(n_bootstrap=100, class_rule="dot_rod_network"))
    assert list(two["class"].to_numpy()) == ["dot", "rod"]
    assert list(three["class"].to_numpy()) == ["dot", "rod", "network"]
    counts = three["count"].sel(image=three["image"][0]).to_numpy().tolist()
    assert counts == [1, 1, 1]  # the short tube, the long tube, the Y
    assert two["count"].sel(image=two["image"][0]).to_numpy().tolist() == [1, 2]


def test_class_share_over_time_and_event_rates_from_tracks(tmp_path):
    from mitoscale.track.config import MovieConfig
    from mitoscale.track.synthetic import simulate_movie

    seg = tmp_path / "seg"
    names = {"m0": "ctrl", "m1": "ctrl", "m2": "drug"}
    for k, (name, cond) in enumerate(names.items()):
        mv = simulate_movie(MovieConfig(frames=4, objects=12, image_px=128, seed=k,
                                        p_fission=0.2 if cond == "drug" else 0.0))
        for t, tab in enumerate(mv.tables):
            write_table(tab.drop(columns=["track_id", "parent_track_ids"]).assign(image_id=name),
                        seg / "instances" / f"{name}-{t}.parquet")
    csv = tmp_path / "c.csv"
    pd.DataFrame({"image_id": list(names), "condition": list(names.values())}).to_csv(csv, index=False)
    assert main(["track", str(seg), "--out", str(tmp_path / "tr"), "--in-process", "--frame-interval", "30"]) == 0
    out = tmp_path / "res"
    assert main(["analyze", str(seg / "instances"), "--conditions", str(csv), "--out", str(out),
                 "--tracks", str(tmp_path / "tr"), "--set", "n_bootstrap=100"]) == 0
    import xarray as xr

    ds = xr.open_dataset(out / "morphology.nc", engine="h5netcdf")
    assert list(ds["t"].to_numpy()) == [0, 1, 2, 3]
    assert ds["n_timelapses_t"].sel(condition="ctrl").to_numpy().tolist() == [2, 2, 2, 2]
    # independent: the mean over the two ctrl movies of each frame's dot share
    inst = pd.concat([pd.read_parquet(p) for p in sorted((seg / "instances").glob("m[01]-*.parquet"))])
    dot = (inst["area_um2"] <= 1.28 * (1 + 1e-9))
    share = dot.groupby([inst["image_id"], inst["t"]]).mean().groupby(level="t").mean()
    got = ds["mean_count_fraction_t"].sel(condition="ctrl", **{"class": "dot"}).to_numpy()
    assert got == pytest.approx(share.to_numpy())
    tracks = pd.read_parquet(tmp_path / "tr" / "tracks" / "m2-f0-z0.parquet")
    events = pd.read_parquet(tmp_path / "tr" / "events" / "m2-f0-z0.parquet")
    want = (events["event"] == "fission").sum() / (tracks["lifetime_s"].sum() / 60)
    assert float(ds["mean_rate"].sel(condition="drug", rate="fission_per_track_min")) == pytest.approx(want)
    assert want > 0
    assert float(ds["mean_rate"].sel(condition="ctrl", rate="fission_per_track_min")) == 0.0
    life = ds["mean_rate"].sel(condition="ctrl", rate="mean_lifetime_s")
    assert 30 <= float(life) <= 4 * 30
    for fig in ("fig_d_class_share_over_time.png", "fig_e_event_rates.png"):
        assert (out / fig).is_file()
