"""Inputs as people have them: TIFF pixel-size tags, implausible pixel sizes, plate-map well names,
pipeline configs run from another folder (issue 13, sections 4 and 6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from mitoscale.errors import InputError
from mitoscale.io.images import check_pixel_sizes, open_image, tiff_pixel_size

REPO = Path(__file__).resolve().parents[2]
MCC13 = REPO.parent / "shared" / "data" / "mcc13" / "mcc13_convtl010_z3_raw.tif"


def _img():
    return np.random.default_rng(0).integers(0, 1000, (32, 40)).astype(np.uint16)


@pytest.mark.skipif(not MCC13.is_file(), reason="../shared/data/mcc13 not present")
def test_raw_mcc13_tiff_carries_its_pixel_size():
    assert tiff_pixel_size(MCC13) == pytest.approx(0.08)
    (src,) = open_image(MCC13)
    assert src.pixel_size_um == pytest.approx(0.08) and src.axes == ("y", "x")


def test_pixel_size_from_ome_imagej_and_resolution_tags(tmp_path):
    ome = tmp_path / "a.ome.tif"
    tifffile.imwrite(ome, _img(), metadata={"PhysicalSizeX": 65, "PhysicalSizeY": 65,
                                            "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm"})
    ij = tmp_path / "b.tif"
    tifffile.imwrite(ij, _img(), imagej=True, resolution=(1 / 0.1, 1 / 0.1), metadata={"unit": "um"})
    cm = tmp_path / "c.tif"
    tifffile.imwrite(cm, _img(), resolution=(1e4 / 0.2, 1e4 / 0.2), resolutionunit="CENTIMETER")
    dpi = tmp_path / "d.tif"  # the 72 dpi default of non-microscopy software: not a pixel size
    tifffile.imwrite(dpi, _img(), resolution=(72, 72), resolutionunit="INCH")
    assert tiff_pixel_size(ome) == pytest.approx(0.065)
    assert tiff_pixel_size(ij) == pytest.approx(0.1)
    assert tiff_pixel_size(cm) == pytest.approx(0.2)
    assert tiff_pixel_size(dpi) is None
    assert open_image(ome)[0].pixel_size_um == pytest.approx(0.065)
    assert open_image(ij, pixel_size_um=0.09)[0].pixel_size_um == 0.09  # --pixel-size wins
    aniso = tmp_path / "e.tif"
    tifffile.imwrite(aniso, _img(), resolution=(1e4 / 0.1, 1e4 / 0.2), resolutionunit="CENTIMETER")
    with pytest.raises(InputError, match="anisotropic"):
        tiff_pixel_size(aniso)


def test_implausible_pixel_size_is_refused_with_the_way_out(tmp_path, micro_model, capsys):
    from mitoscale.cli import main

    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, _img())
    argv = ["segment", str(path), "--model", str(micro_model), "--out", str(tmp_path / "o"),
            "--in-process", "--pixel-size", "1.0"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "upsampled 12.5x" in err[0] and "--set input.max_resample=12.5" in err[0], err
    assert not (tmp_path / "o" / "manifest.json").exists()
    # far too small as well (a size given in the wrong unit)
    (src,) = open_image(path, pixel_size_um=0.001)
    with pytest.raises(InputError, match="downsampled 80x"):
        check_pixel_sizes([src], 0.08)
    check_pixel_sizes(open_image(path, pixel_size_um=1.0), 0.08, max_resample=13)  # the override


@pytest.mark.parametrize("names", [["A1", "B1"], ["A01", "B01"], ["a1", "b1"], ["A/1", "B/1"],
                                   ["A-01", "b/01"]])
def test_plate_map_well_names(tmp_path, names):
    from mitoscale.analyse.conditions import assign_conditions, read_conditions

    csv = tmp_path / "map.csv"
    pd.DataFrame({"well": names, "condition": ["ctrl", "drug"]}).to_csv(csv, index=False)
    images = pd.DataFrame({"image_id": ["p"] * 3, "well": ["A/1", "B/1", "A/1"]})
    got = assign_conditions(images, read_conditions(csv), str(csv))
    assert list(got) == ["ctrl", "drug", "ctrl"]
    # a plate whose NGFF column names are zero-padded ("A/01") matches too
    padded = images.assign(well=["A/01", "B/01", "A/01"])
    assert list(assign_conditions(padded, read_conditions(csv), str(csv))) == ["ctrl", "drug", "ctrl"]


def test_plate_map_bad_and_duplicated_wells(tmp_path):
    from mitoscale.analyse.conditions import read_conditions

    csv = tmp_path / "map.csv"
    pd.DataFrame({"well": ["A1", "A01"], "condition": ["x", "y"]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match="'A/1' is listed twice"):
        read_conditions(csv)
    pd.DataFrame({"well": ["A1", "plate1"], "condition": ["x", "y"]}).to_csv(csv, index=False)
    with pytest.raises(InputError, match="line 3: 'plate1' is not a well name"):
        read_conditions(csv)


def test_pipeline_config_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    from mitoscale.pipeline.config import load_pipeline_config

    conf = tmp_path / "project" / "configs"
    conf.mkdir(parents=True)
    (conf / "sim.yaml").write_text("{}\n")
    (conf / "p.yaml").write_text(
        "simulate:\n  config: sim.yaml\n"
        "segment:\n  inputs:\n    - name: plate\n      path: ../data/plate.ome.zarr\n"
        "      conditions: ../data/map.csv\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_pipeline_config(conf / "p.yaml", ["segment.model=my.safetensors"])
    assert cfg.simulate.config == str(conf / "sim.yaml")
    assert cfg.segment.inputs[0].path == str(tmp_path / "project" / "data" / "plate.ome.zarr")
    assert cfg.segment.inputs[0].conditions == str(tmp_path / "project" / "data" / "map.csv")
    assert cfg.segment.model == str(elsewhere / "my.safetensors")  # --set: the current folder


def test_shipped_pipeline_configs_load_from_any_folder(tmp_path, monkeypatch):
    from mitoscale.pipeline.config import load_pipeline_config
    from mitoscale.pipeline.stages import stage_keys

    monkeypatch.chdir(tmp_path)
    for name in ("demo.yaml", "pipeline.yaml"):
        cfg = load_pipeline_config(REPO / "configs" / name)
        for section in (cfg.simulate, cfg.samples, cfg.train, cfg.analyze):
            assert section.config is None or Path(section.config).is_file(), (name, section.config)
    stage_keys(load_pipeline_config(REPO / "configs" / "demo.yaml"), tmp_path / "run")  # reads them
