"""The H9c2 case-study command on one real image per condition (classical baseline)."""

import importlib.util
import shutil
from pathlib import Path

import pandas as pd
import pytest

DATA = Path("/work/shared/data/h9c2_case_study")
SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "h9c2_case_study" / "run.py"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"case-study images not present at {DATA}")
def test_case_study_runs_end_to_end(tmp_path, local_client):
    cond = pd.read_csv(DATA / "conditions.csv")
    subset = cond.groupby("condition").head(1)
    data = tmp_path / "data"
    data.mkdir()
    for f in subset["file"]:
        shutil.copy(DATA / f, data / f)
    subset.to_csv(data / "conditions.csv", index=False)
    spec = importlib.util.spec_from_file_location("case_study_run", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--data", str(data), "--out", str(tmp_path / "out"), "--methods", "classical",
                     "--scheduler", local_client.scheduler.address]) == 0
    report = (tmp_path / "out" / "REPORT.md").read_text()
    assert "| classical | normoxia | 1 |" in report and "Does the expected trend appear?" in report
    for fig in ("fig_a_counts", "fig_b_count_fraction", "fig_c_area_fraction"):
        assert (tmp_path / "out" / "classical" / "analysis" / f"{fig}.pdf").exists()
    assert (tmp_path / "out" / "methods_dot_share.png").exists()
