import numpy as np
import pandas as pd
import pytest

from mitoscale.io.tables import instances_to_table, write_table


def disk_crop(area_target):
    """A compact boolean crop with exactly ``area_target`` pixels (row-major fill of a square)."""
    side = int(np.ceil(np.sqrt(area_target)))
    crop = np.zeros(side * side, bool)
    crop[:area_target] = True
    return crop.reshape(side, side)


def _make_table(image_id, areas_px, pixel_size_um=0.08, shape=(256, 256)):
    crops = [disk_crop(a) for a in areas_px]
    offsets = [((k * 20) % 200, (k * 37) % 200) for k in range(len(crops))]
    return instances_to_table(crops, offsets=offsets, shape=shape, image_id=image_id,
                              pixel_size_um=pixel_size_um)


@pytest.fixture
def make_table():
    """Build an instance table of compact objects with the given pixel areas."""
    return _make_table


@pytest.fixture
def study(tmp_path):
    """Three conditions, two images each; dot share grows a -> b -> c by construction."""
    spec = {
        "a1": [50] * 2 + [400] * 8, "a2": [60] * 3 + [500] * 7,
        "b1": [50] * 6 + [400] * 4, "b2": [100] * 5 + [300] * 5,
        "c1": [80] * 9 + [900] * 1, "c2": [40] * 8 + [250] * 2,
    }
    tables = pd.concat([_make_table(k, v) for k, v in spec.items()], ignore_index=True)
    write_table(tables, tmp_path / "tables" / "part-0.parquet")
    cond = pd.DataFrame({"file": [f"{k}.png" for k in spec], "condition": [f"cond_{k[0]}" for k in spec]})
    cond.to_csv(tmp_path / "conditions.csv", index=False)
    return tmp_path, spec
