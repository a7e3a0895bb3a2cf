"""benchmarks/parallel_maps.py --quick: runs every workload, checks equality, writes its files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "parallel_maps.py"
_spec = importlib.util.spec_from_file_location("benchmark_parallel_maps", _PATH)
parallel_maps = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = parallel_maps  # its dataclass looks its module up there
_spec.loader.exec_module(parallel_maps)

pytestmark = pytest.mark.usefixtures("clean_threads")


def test_quick_run_writes_json_table_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    # a subprocess: the script is __main__ there, so worker processes (futures, loky, parareg's
    # process backend) get its functions as they would from a user's script
    done = subprocess.run([sys.executable, str(_PATH), "--quick", "--threads", "2", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "parallel_maps.json").read_text())
    assert report["threads"] == 2 and report["quick"] is True
    assert report["machine"]["versions"]["numpy"] and "cpu_model" in report["machine"]
    assert set(report["workloads"]) == set(parallel_maps.FAMILIES)
    for name, family in report["workloads"].items():
        assert len(family["rows"]) == 2
        assert [s["threads"] for s in family["scaling"]] == [1, 2]
        for row in family["rows"]:
            assert all(row["equal_to_loop"].values()), (name, row["n"])
            assert {"loop", "futures threads", "futures processes", "parareg"} <= set(
                row["times"])
            assert isinstance(row["target_best"], bool)
            assert row["parareg_plans"], "parareg's choice was not recorded"
        assert ("parareg threads" in family["rows"][0]["times"]) == (
            family["backend"] == "processes")
    table = (tmp_path / "parallel_maps.md").read_text()
    assert "| workload | N | loop | futures threads | futures processes |" in table
    assert "≤1.05× best" in table
    assert table in done.stdout
    for name in ("parallel_time_vs_size.png", "parallel_speedup_vs_threads.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_judge_marks_both_targets():
    t = {"loop": 1.0, "futures threads": 0.5, "joblib threads": 0.6, "parareg": 0.52}
    verdict = parallel_maps.judge(t)
    assert verdict["target_best"] and verdict["target_loop"] is None  # a parallel method won
    verdict = parallel_maps.judge({"loop": 1.0, "futures threads": 1.2, "parareg": 1.1})
    assert verdict["target_best"] is True  # faster than futures, but no parallel method won:
    assert verdict["parareg_vs_loop"] == pytest.approx(1.1) and verdict["target_loop"] is False


def test_bad_thread_count_is_refused():
    with pytest.raises(SystemExit):
        parallel_maps.main(["--threads", "0", "--quick"])
