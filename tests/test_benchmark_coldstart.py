"""benchmarks/coldstart.py: a tiny run writes JSON and markdown with every measurement."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from parareg import _warmup_jobs

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "coldstart.py"
_spec = importlib.util.spec_from_file_location("benchmark_coldstart", _PATH)
coldstart = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coldstart)

HAS_GREEDY = importlib.util.find_spec("picsl_greedy") is not None


def test_tiny_run_records_cold_warm_greedy_compiles_and_import(tmp_path, capsys):
    fixed, moving = _warmup_jobs._pair(3)
    f = _warmup_jobs._write(fixed, tmp_path / "f.nii.gz")
    m = _warmup_jobs._write(moving, tmp_path / "m.nii.gz")
    argv = ["--out", str(tmp_path / "out"), "--pairs", f"{f}:{m}", "--repeats", "1",
            "--import-repeats", "2", "--threads", "1", "--register-args=--transform rigid"]
    if not HAS_GREEDY:
        argv.append("--no-greedy")
    assert coldstart.main(argv) == 0
    report = json.loads((tmp_path / "out" / "coldstart.json").read_text())
    markdown = (tmp_path / "out" / "coldstart.md").read_text()
    assert capsys.readouterr().out.strip() == markdown.strip()
    (row,) = report["pairs"]
    assert len(row["cold_s"]) == 1 and len(row["warm_s"]) == 1
    assert len(row["cold_alone_s"]) == 1 and "no helper" in markdown  # PARAREG_COMPILE_AHEAD=0
    assert min(row["cold_cpu_s"]) > 0 and min(row["warm_cpu_s"]) > 0
    assert len(row["greedy_s"]) == (1 if HAS_GREEDY else 0)
    kernels = coldstart.kernel_table(row["compilations"][0])
    assert kernels and all(s > 0 for *_, s in kernels)  # the cold run compiled
    assert [s for *_, s in kernels] == sorted((s for *_, s in kernels), reverse=True)
    assert kernels[0][0] in markdown and "import parareg" in markdown
    llvm = coldstart.llvm_seconds(row["compilations"][0])  # the LLVM part of each compile
    assert set(llvm) == {k for k, *_ in kernels} and all(v > 0 for v in llvm.values())
    assert "of which LLVM s" in markdown and "in numba's own Python" in markdown
    assert report["import"]["import parareg"]["median_s"] > 0
    assert report["settings"]["threads"] == 1 and report["versions"]["numba"]


def test_bad_pairs_and_counts_are_rejected(tmp_path):
    with pytest.raises(SystemExit, match="neither one of"):
        coldstart.main(["--out", str(tmp_path), "--pairs", "nonsense"])
    with pytest.raises(SystemExit, match="no such image"):
        coldstart.main(["--out", str(tmp_path), "--pairs", "/no/f.nii.gz:/no/m.nii.gz"])
    with pytest.raises(SystemExit, match="--repeats must be at least 1"):
        coldstart.main(["--out", str(tmp_path), "--repeats", "0"])
