"""benchmarks/parallel_maps.py --quick: runs every workload, checks equality, writes its files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "parallel_maps.py"
_spec = importlib.util.spec_from_file_location("benchmark_parallel_maps", _PATH)
parallel_maps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parallel_maps)

pytestmark = pytest.mark.usefixtures("clean_threads")


def test_quick_run_writes_json_and_table(tmp_path, capsys):
    assert parallel_maps.main(["--quick", "--threads", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "parallel_maps.json").read_text())
    assert report["threads"] == 2 and report["quick"] is True
    assert report["machine"]["versions"]["numpy"] and "cpu_model" in report["machine"]
    assert set(report["workloads"]) == {"slices_axis1", "slices_axis0", "small_slices",
                                        "python_items", "blocks_halo"}
    for workload in report["workloads"].values():
        assert all(workload["equal_to_loop"].values())
        assert {"loop", "futures", "parareg"} <= set(workload["times"])
        assert workload["parareg_plans"], "parareg's choice was not recorded"
    table = (tmp_path / "parallel_maps.md").read_text()
    assert "| workload | serial loop | futures threads | joblib threads | parareg |" in table
    assert table in capsys.readouterr().out


def test_bad_thread_count_is_refused():
    with pytest.raises(SystemExit):
        parallel_maps.main(["--threads", "0", "--quick"])
