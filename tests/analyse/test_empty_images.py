"""Images processed but holding no instance count as zero dots and zero rods."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mitoscale.analyse.morphology import per_image_summary
from mitoscale.cli import main
from mitoscale.io.tables import empty_table, write_table


def _loc(image_id, well="", field=0):
    return dict(image_id=image_id, well=well, field=field, t=0, z=0)


def _analyze(tables, conditions, out) -> int:
    return main(["analyze", str(tables), "--conditions", str(conditions), "--out", str(out),
                 "--set", "n_bootstrap=200"])


def test_empty_images_enter_counts_not_fractions(tmp_path, make_table, capsys):
    parts = tmp_path / "instances"
    # a1: 2 dots (50 px) and 2 rods (400 px); b1: 1 dot, 3 rods -- one part per image, as segment writes
    write_table(make_table("a1", [50, 50, 400, 400]), parts / "a1.parquet", locations=[_loc("a1")])
    write_table(make_table("b1", [50, 400, 400, 400]), parts / "b1.parquet", locations=[_loc("b1")])
    # a2 and c1 were processed and found empty: parts without rows
    write_table(empty_table(), parts / "a2.parquet", locations=[_loc("a2")])
    write_table(empty_table(), parts / "c1.parquet", locations=[_loc("c1")])
    cond = tmp_path / "c.csv"
    cond.write_text("image_id,condition\na1,A\na2,A\nb1,B\nc1,C\n")
    out = tmp_path / "out"
    assert _analyze(parts, cond, out) == 0
    ds = xr.open_dataset(out / "morphology.nc", engine="h5netcdf").load()
    assert list(ds["n_images"].values) == [2, 1, 1]
    a2 = ds.sel(image="a2")
    assert a2["count"].values.tolist() == [0, 0] and np.isnan(a2["count_fraction"]).all()
    assert np.isnan(a2["area_fraction"]).all() and np.isnan(float(a2["pixel_size_um"]))
    cnt = ds["mean_count"].sel({"class": "dot"}).values
    assert cnt == pytest.approx([(2 + 0) / 2, 1, 0])            # empty images count in count means
    frac = ds["mean_count_fraction"].sel({"class": "dot"}).values
    assert frac[:2] == pytest.approx([0.5, 0.25]) and np.isnan(frac[2])  # ...not in fraction means
    assert ds["total_count"].values.tolist() == [[2, 2], [1, 3], [0, 0]]
    assert np.isnan(ds["pooled_count_fraction"].sel(condition="C")).all()
    per_cond = pd.read_csv(out / "per_condition.csv")
    assert per_cond.loc[per_cond["condition"] == "C", "n_images"].tolist() == [1, 1]
    assert (out / "fig_b_count_fraction.png").exists()
    assert "C" in capsys.readouterr().out

    # an image in neither the rows nor the recorded locations is still an error
    cond.write_text("image_id,condition\na1,A\nnever_processed,A\n")
    assert _analyze(parts, cond, tmp_path / "o2") == 2
    assert "'never_processed'" in capsys.readouterr().err


def test_old_tables_without_locations_are_unchanged(tmp_path, make_table, capsys):
    # the same rows written without location metadata: an empty image is unknown, as before
    parts = tmp_path / "instances"
    write_table(make_table("a1", [50, 400]), parts / "a1.parquet")
    write_table(empty_table(), parts / "a2.parquet")
    cond = tmp_path / "c.csv"
    cond.write_text("image_id,condition\na1,A\na2,A\n")
    assert _analyze(parts, cond, tmp_path / "out") == 2
    assert "'a2'" in capsys.readouterr().err
    cond.write_text("image_id,condition\na1,A\n")
    assert _analyze(parts, cond, tmp_path / "out") == 0
    ds = xr.open_dataset(tmp_path / "out" / "morphology.nc", engine="h5netcdf")
    assert list(ds["image"].values) == ["a1"] and int(ds["n_images"].sel(condition="A")) == 1


def test_baseline_run_records_an_empty_frame_for_analyze(tmp_path):
    import imageio.v3 as iio

    from mitoscale.evaluate.baselines.run import run_baseline

    (tmp_path / "in").mkdir()
    img = np.zeros((64, 64), np.uint8)
    img[20:26, 10:50] = 200   # 240 px at 80 nm = 1.54 um^2: a rod
    img[40:44, 30:34] = 200   # 16 px: a dot
    iio.imwrite(tmp_path / "in" / "full.png", img)
    empty = np.zeros((64, 64), np.uint8)
    empty[5, 5] = 1  # an image without mitochondria (a constant frame is refused: no image at all)
    iio.imwrite(tmp_path / "in" / "empty.png", empty)
    res = run_baseline("classical", tmp_path / "in", tmp_path / "seg", pixel_size_um=0.08)
    assert res["n_frames"] == 2 and res["n_instances"] == 2
    cond = tmp_path / "c.csv"
    cond.write_text("file,condition\nfull.png,x\nempty.png,x\n")
    assert _analyze(tmp_path / "seg" / "instances", cond, tmp_path / "out") == 0
    ds = xr.open_dataset(tmp_path / "out" / "morphology.nc", engine="h5netcdf")
    assert ds["count"].sel(image="empty").values.tolist() == [0, 0]
    assert ds["count"].sel(image="full").values.tolist() == [1, 1]
    assert ds["mean_count"].sel(condition="x").values.tolist() == [0.5, 0.5]
    assert ds["mean_count_fraction"].sel(condition="x").values.tolist() == [0.5, 0.5]


def test_per_image_summary_keeps_locations_without_kept_instances(make_table):
    df = pd.concat([make_table("p", [50, 400]), make_table("q", [20])], ignore_index=True)
    df.loc[df["image_id"] == "q", "well"] = "B/3"
    locs = pd.DataFrame([_loc("p"), _loc("q", "B/3"), _loc("q", "B/3", field=1)])
    s = per_image_summary(df, 1.28, min_area_um2=30 * 0.0064, locations=locs)
    assert s[["well", "field", "count_dot", "count_rod", "n_instances"]].values.tolist() == [
        ["", 0, 1, 1, 2], ["B/3", 0, 0, 0, 0], ["B/3", 1, 0, 0, 0]]
    # q's only instance is below min_area, yet q keeps its pixel size; the unseen field has none
    assert s["pixel_size_um"].iloc[1] == pytest.approx(0.08) and np.isnan(s["pixel_size_um"].iloc[2])
    assert s["image"].is_unique
