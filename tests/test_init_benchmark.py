"""benchmarks/init_robustness.py runs end to end on one 2D pair (a rotation and a cropped view in
the simulated other contrast), and its summary of a stopped run's log gives the same table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ._data import needs_data

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("init_robustness",
                                                  ROOT / "benchmarks" / "init_robustness.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_data
def test_init_robustness_grid_runs_and_its_log_summarises_alike(tmp_path, capsys):
    script = _script()
    out = tmp_path / "grid"
    assert script.main(["--out", str(out), "--datasets", "2d", "--pairs-2d", "1",
                        "--first-pair", "1", "--angles", "0:120:120", "--crop-angles", "90:90:1",
                        "--shift", "0", "--contrasts", "other", "--methods", "com", "search",
                        "--threads", "1"]) == 0
    log = tmp_path / "grid.log"
    log.write_text(capsys.readouterr().err)
    study = json.loads((out / "init_robustness.json").read_text())
    rows = study["rows"]
    cases = {(r["kind"], r["angle"], r["method"]): r for r in rows}
    assert set(cases) == {(kind, angle, method) for kind, angle in
                          (("rotation", 0.0), ("rotation", 120.0), ("crop", 90.0))
                          for method in ("com", "search")}
    assert all(r["pair"] == "OASIS-TRT-20-12->OASIS-TRT-20-11" for r in rows)
    assert cases[("rotation", 120.0, "search")]["success"]  # the search's point
    assert not cases[("rotation", 120.0, "com")]["success"]
    assert "uncropped_error_mm" in cases[("crop", 90.0, "search")]
    table = (out / "init_robustness.md").read_text()
    assert "**2d, other contrast**" in table and (out / "init_robustness.png").is_file()
    again = tmp_path / "again"
    assert script.main(["--out", str(again), "--from-log", str(log)]) == 0
    assert (again / "init_robustness.md").read_text() == table
