"""benchmarks/parallel_maps.py --smoke: runs every workload, checks equality, writes its files."""

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


def test_smoke_run_writes_json_table_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    # a subprocess: the script is __main__ there, so worker processes (futures, loky, parareg's
    # process backend) get its functions as they would from a user's script
    done = subprocess.run([sys.executable, str(_PATH), "--smoke", "--threads", "2", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "parallel_maps.json").read_text())
    assert report["threads"] == 2 and report["setting"] == "smoke" and report["repeats"] == 1
    assert report["process_start_s"] > 0  # parareg's workers started before the timing
    assert report["machine"]["versions"]["numpy"] and "cpu_model" in report["machine"]
    assert set(report["workloads"]) == set(parallel_maps.FAMILIES)
    for name, family in report["workloads"].items():
        assert len(family["rows"]) == 2
        assert [s["threads"] for s in family["scaling"]] == [1, 2]
        for row in family["rows"]:
            assert all(row["equal_to_loop"].values()), (name, row["n"])
            assert {"loop", "futures threads", "futures processes", "parareg threads"} <= set(
                row["times"])
            assert isinstance(row["target_best"], bool)
            assert isinstance(row["target_threads_like"], bool)
            assert row["parareg_plans"]["parareg threads"], "parareg's choice was not recorded"
            processes = family["backend"] == "processes"
            assert ("parareg processes" in row["times"]) == processes
            assert row["recommended"] == ("parareg processes" if processes
                                          else "parareg threads")
    table = (tmp_path / "parallel_maps.md").read_text()
    assert "| workload | N | loop | futures threads | joblib threads | parareg threads |" in table
    assert "≤1.05× best" in table
    assert table in done.stdout
    for name in ("parallel_time_vs_size.png", "parallel_speedup_vs_threads.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_judge_marks_both_targets():
    t = {"loop": 1.0, "futures threads": 0.5, "joblib threads": 0.6, "parareg threads": 0.52}
    verdict = parallel_maps.judge(t)
    assert verdict["target_best"] and verdict["target_loop"] is None  # a parallel method won
    assert verdict["threads_vs_like"] == pytest.approx(1.04) and verdict["target_threads_like"]
    verdict = parallel_maps.judge({"loop": 1.0, "futures threads": 1.2, "parareg threads": 1.1})
    assert verdict["target_best"] is True  # faster than futures, but no parallel method won:
    assert verdict["parareg_vs_loop"] == pytest.approx(1.1) and verdict["target_loop"] is False


def test_judge_compares_like_with_like_for_pure_python():
    t = {"loop": 1.0, "futures threads": 1.3, "joblib threads": 1.4, "futures processes": 0.6,
         "joblib loky": 0.7, "parareg threads": 1.02, "parareg processes": 0.66}
    verdict = parallel_maps.judge(t, processes=True)
    assert verdict["recommended"] == "parareg processes"
    assert verdict["parareg_vs_best"] == pytest.approx(1.1) and not verdict["target_best"]
    assert not verdict["target_processes_like"] and verdict["target_threads_like"]
    assert verdict["threads_vs_loop"] == pytest.approx(1.02) and verdict["target_threads_loop"]


def test_quick_rows_are_rows_of_the_full_run():
    for name, sizes in parallel_maps.QUICK.items():
        assert set(sizes) <= set(parallel_maps.FAMILIES[name][2]), name
    assert set(parallel_maps.CALLS) == set(parallel_maps.FAMILIES)


def test_bad_thread_count_is_refused():
    with pytest.raises(SystemExit):
        parallel_maps.main(["--threads", "0", "--smoke"])
    with pytest.raises(SystemExit):
        parallel_maps.main(["--quick", "--smoke"])
