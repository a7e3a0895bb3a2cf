"""benchmarks/pareto.py: the quick mode runs and writes its JSON, table and plot; bad options."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ._data import MINDBOGGLE

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "pareto.py"
_spec = importlib.util.spec_from_file_location("benchmark_pareto", _PATH)
pareto = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pareto)


@pytest.mark.skipif(len(MINDBOGGLE) < 2 or importlib.util.find_spec("matplotlib") is None,
                    reason="needs ../shared/data/mindboggle_2d and matplotlib")
def test_quick_run_writes_json_table_and_plot_and_reuses_its_cache(tmp_path, capsys):
    out = tmp_path / "pareto"
    assert pareto.main(["--out", str(out), "--quick", "--threads", "1"]) == 0
    report = json.loads((out / "pareto.json").read_text())
    assert (out / "pareto_2d.png").read_bytes()[:4] == b"\x89PNG"
    text = (out / "pareto.md").read_text()
    assert capsys.readouterr().out.strip() == text.strip()
    rows = report["rows"]
    assert len(rows) == 2 and {r["method"] for r in rows} == {"sweep center u2.4 f1 s0.5",
                                                    "sweep center u6 f2.5 s0.5"}
    for row in rows:
        assert 0 < row["dice_mean"] < 1 and 0 < row["sdlogj"] < 2 and row["hd95_mean"] > 0
    smooth, loose = sorted(rows, key=lambda r: r["options"]["field_sigma"], reverse=True)
    assert smooth["sdlogj"] < loose["sdlogj"]  # more smoothing, a more regular map
    assert report["settings"]["threads"] == 1 and report["versions"]["numpy"]
    assert report["machine"]["cpu_count"] and report["revision"] is not None
    cached = (out / "cache_2d.json").read_text()
    assert pareto.main(["--out", str(out), "--quick", "--threads", "1"]) == 0
    assert (out / "cache_2d.json").read_text() == cached  # nothing recomputed
    assert json.loads((out / "pareto.json").read_text())["rows"] == rows


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads must be at least 1"),
    (["--pairs-3d", "4"], "--pairs-3d must be 1 to 3"),
    (["--pairs-2d", "7"], "--pairs-2d must be 1 to 6"),
    (["--dims", "4d"], "--dims must list 2d and/or 3d"),
    (["--peers", "elastix"], "--peers must be among"),
    (["--fresh", "--cached-only"], "--fresh and --cached-only exclude each other"),
])
def test_bad_options(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        pareto.main(["--out", str(tmp_path)] + argv)
    assert info.value.code == 2 and message in capsys.readouterr().err
