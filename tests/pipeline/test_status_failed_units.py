"""`mitoscale status RUN_DIR` lists the failed frames of the segment stage (issue 13)."""

from __future__ import annotations

from mitoscale.cli import main
from mitoscale.config import dump_config
from mitoscale.io.runfolder import RunFolder
from mitoscale.pipeline.config import PipelineConfig
from mitoscale.pipeline.state import RunState


def test_status_lists_failed_units(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = PipelineConfig.model_validate({
        "simulate": {"enabled": False}, "analyze": {"enabled": False},
        "segment": {"inputs": [{"name": "plate", "path": str(tmp_path / "plate.ome.zarr")}]}})
    state = RunState(run)
    state.save_config({"config": dump_config(cfg), "keys": {"segment": "k1"}})
    state.write("segment", "k1", "failed", error="1 of 3 frames failed (...)")
    folder = RunFolder(run / "segment" / "plate", "segment")
    folder.failures.mark("plate__B-2__f0__t0__z0", {"reason": "frame is constant (every pixel = 9)"})
    folder.markers.mark("plate__A-1__f0__t0__z0", {"instances": 3})
    assert main(["status", str(run)]) == 1
    out = capsys.readouterr().out
    assert "segment: failed units (a rerun retries only these):" in out
    assert "plate__B-2__f0__t0__z0: frame is constant (every pixel = 9)" in out
