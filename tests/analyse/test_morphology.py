import numpy as np
import pandas as pd
import pytest

from mitoscale.analyse.conditions import assign_conditions, read_conditions
from mitoscale.analyse.morphology import classify, per_image_summary
from mitoscale.errors import InputError



def test_threshold_is_physical_and_inclusive(make_table):
    # 200 px at 80 nm = 1.28 um^2 -> dot; 201 px -> rod; 200 px at 100 nm = 2 um^2 -> rod
    t80 = make_table("x", [200, 201], pixel_size_um=0.08)
    t100 = make_table("y", [200, 128], pixel_size_um=0.1)   # 128 px at 100 nm = 1.28 um^2 -> dot
    assert classify(t80["area_um2"], 1.28).tolist() == ["dot", "rod"]
    assert classify(t100["area_um2"], 1.28).tolist() == ["rod", "dot"]
    # the paper's earlier 120 px boundary
    assert classify(make_table("z", [120, 121])["area_um2"], 120 * 0.0064).tolist() == ["dot", "rod"]


def test_per_image_counts_and_areas_by_hand(make_table):
    df = pd.concat([make_table("p", [50, 100, 300]), make_table("q", [400, 500])], ignore_index=True)
    s = per_image_summary(df, 1.28).set_index("image")
    assert s.loc["p", "count_dot"] == 2 and s.loc["p", "count_rod"] == 1
    assert s.loc["q", "count_dot"] == 0 and s.loc["q", "count_rod"] == 2
    assert s.loc["p", "area_um2_dot"] == pytest.approx(150 * 0.0064)
    assert s.loc["q", "area_um2_rod"] == pytest.approx(900 * 0.0064)
    assert (s["n_instances"] == [3, 2]).all()
    s2 = per_image_summary(df, 1.28, min_area_um2=80 * 0.0064).set_index("image")
    assert s2.loc["p", "count_dot"] == 1


def test_conditions_csv_stems_and_errors(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("file,condition,extra\na.png,ctl,1\nb.tif,drug,2\n")
    c = read_conditions(p)
    assert c["value"].tolist() == ["a", "b"] and c["key"].iloc[0] == "image_id"
    images = pd.DataFrame({"image_id": ["a", "b", "z"], "well": ["", "", ""]})
    assert assign_conditions(images, c).tolist()[:2] == ["ctl", "drug"]
    assert np.isnan(assign_conditions(images, c).iloc[2])
    with pytest.raises(InputError, match="not found in the instance tables"):
        assign_conditions(images.iloc[:1], c)
    p.write_text("file,condition\na.png,ctl\nb.png,\n")
    with pytest.raises(InputError, match="empty condition on line 3"):
        read_conditions(p)
    p.write_text("file,group\na.png,ctl\n")
    with pytest.raises(InputError, match="'condition' column"):
        read_conditions(p)
    p.write_text("file,condition\na.png,ctl\na.png,drug\n")
    with pytest.raises(InputError, match="listed twice"):
        read_conditions(p)
    with pytest.raises(InputError, match="not found"):
        read_conditions(tmp_path / "nope.csv")


def test_conditions_by_well():
    c = pd.DataFrame({"key": ["well"] * 2, "value": ["B/3", "C/4"], "condition": ["ctl", "drug"]})
    images = pd.DataFrame({"image_id": ["plate"] * 3, "well": ["B/3", "B/3", "C/4"]})
    assert assign_conditions(images, c).tolist() == ["ctl", "ctl", "drug"]
