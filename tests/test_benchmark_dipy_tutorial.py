"""benchmarks/dipy_tutorial.py: a tiny run writes JSON and markdown with every measurement."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ._data import needs_data

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "dipy_tutorial.py"
_spec = importlib.util.spec_from_file_location("benchmark_dipy_tutorial", _PATH)
dipy_tutorial = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dipy_tutorial)


@needs_data
def test_tiny_run_records_times_and_quality(tmp_path, capsys):
    argv = ["--out", str(tmp_path), "--scripts", "dipy_affine_3d.py", "--runners", "parareg",
            "--step", "4", "--repeats", "1"]
    assert dipy_tutorial.main(argv) == 0
    report = json.loads((tmp_path / "dipy_tutorial.json").read_text())
    markdown = (tmp_path / "dipy_tutorial.md").read_text()
    assert capsys.readouterr().out == markdown
    (row,) = report["rows"]
    assert row["runner"] == "parareg" and len(row["seconds"]) == 1
    assert row["corr_with_static"]["transformed"] > row["corr_with_static"]["centred"]
    assert "dipy_affine_3d.py | parareg" in markdown
