"""benchmarks/affine_masks.py runs end to end on a tiny pair (one tree, one child process)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

import parareg

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("affine_masks",
                                                  ROOT / "benchmarks" / "affine_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_affine_masks_benchmark_runs_and_writes_its_report(tmp_path):
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in (24, 24, 20)],
                                indexing="ij"), axis=-1)
    for name, shift in (("fixed", 0.0), ("moving", 1.0)):
        data = np.exp(-(((grid - 12 - shift) / 5.0) ** 2).sum(-1)) * 100
        parareg.save(parareg.Image(data.astype(np.float32), np.eye(4)),
                     tmp_path / f"{name}.nii.gz")
    out = tmp_path / "out"
    code = _script().main([str(tmp_path / "fixed.nii.gz"), str(tmp_path / "moving.nii.gz"),
                           "--src", f"a={ROOT / 'src'}",
                           "--repeats", "1", "--inner", "1", "--threads", "1",
                           "--out", str(out)])
    assert code == 0
    study = json.loads((out / "affine_masks.json").read_text())
    assert study["identical_matrices"] is True
    assert set(study["minima_s"]) == {"a"} and study["minima_s"]["a"] > 0
    matrix = np.array(study["runs"]["a"][0]["matrix"])
    assert matrix.shape == (4, 4) and np.isfinite(matrix).all()
    assert "| a |" in (out / "affine_masks.md").read_text()
