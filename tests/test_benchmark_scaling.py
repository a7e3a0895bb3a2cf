"""benchmarks/scaling.py: a --quick run writes its report, and its verdicts follow the numbers."""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"
_spec = importlib.util.spec_from_file_location("benchmark_scaling", _PATH)
scaling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scaling)
common = sys.modules["_common"]  # imported by the script from its own folder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quick_run_writes_json_markdown_and_plots(tmp_path, capsys, clean_threads):
    assert scaling.main(["--quick", "--out", str(tmp_path), "--threads", "2",
                         "--repeats", "1"]) == 0
    result = json.loads((tmp_path / "scaling.json").read_text())
    markdown = (tmp_path / "scaling.md").read_text()
    assert capsys.readouterr().out.strip() == markdown.strip()
    for name in ("time_vs_voxels.png", "speedup_vs_threads.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC

    config = result["config"]
    assert config["threads"] == [1, 2] and config["parallel_threads"] == 2  # 1 is always added
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["versions"]["numpy"]
    n_sizes = len(config["sizes_2d"]) + len(config["sizes_3d"])
    assert len(result["records"]) == n_sizes * len(scaling.KERNELS) * len(scaling.MODES)
    assert all(r["median_s"] > 0 and r["min_s"] <= r["median_s"] for r in result["records"])
    assert len(result["thread_sweep"]) == 2 * len(scaling.KERNELS) * 2
    assert {f["mode"] for f in result["fits"]} == set(scaling.MODES)
    assert {(r["kernel"], r["threads"]) for r in result["bandwidth"]["results"]} == {
        (k, t) for k in ("copy", "triad") for t in (1, 2)}
    # the references compute the same thing, and parareg's bits do not depend on threads
    for a in result["agreement"]:
        assert a["max_abs_diff_vs_reference"] <= 1e-5 * max(a["max_abs_reference"], 1.0), a
        assert a["serial_parallel_bit_identical"], a
    for heading in ("## Acceptance", "## Time vs image size", "## Speed-up vs threads",
                    "## Effective memory bandwidth", "map_coordinates", "fitted exponent"):
        assert heading in markdown
    # quick sizes never reach 1M voxels, so the warp criterion cannot be judged
    assert result["acceptance"]["warp_3d_speedup"]["status"] == "n/a"


def _row(kernel, ndim, n, serial, parallel):
    voxels = n**ndim
    return {"kernel": kernel, "ndim": ndim, "shape": [n] * ndim, "voxels": voxels,
            "serial": serial, "parallel": parallel, "reference": 1.0,
            "speedup": serial / parallel, "reference_over_parallel": 1.0 / parallel}


def test_acceptance_verdicts():
    good = [_row("warp", 3, 128, 1.0, 0.55), _row("gradient", 2, 64, 1.0, 1.04)]
    verdict = scaling.acceptance(good, 2)
    assert verdict["warp_3d_speedup"]["status"] == "PASS"
    assert verdict["no_parallel_slowdown"]["status"] == "PASS"

    slow_warp = [_row("warp", 3, 128, 1.0, 0.62), _row("warp", 3, 64, 1.0, 2.0)]
    verdict = scaling.acceptance(slow_warp, 2)
    assert verdict["warp_3d_speedup"]["status"] == "FAIL"  # 1.61x at 128^3 (64^3 is < 1M)
    assert [c["shape"] for c in verdict["warp_3d_speedup"]["cases"]] == [[128] * 3]
    slowdown = verdict["no_parallel_slowdown"]
    assert slowdown["status"] == "FAIL" and slowdown["worst"]["shape"] == [64] * 3

    assert scaling.acceptance(good, 1)["warp_3d_speedup"]["status"] == "n/a"


def test_common_doctests():
    assert doctest.testmod(common).failed == 0


def test_power_law_fit_recovers_exponent():
    fit = common.fit_power_law([1e3, 1e4, 1e5, 1e6], [3e-6 * v**1.5 for v in (1e3, 1e4, 1e5, 1e6)])
    assert fit["exponent"] == pytest.approx(1.5)
    assert fit["prefactor"] == pytest.approx(3e-6)
    assert fit["r2"] == pytest.approx(1.0)
