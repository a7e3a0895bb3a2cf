"""benchmarks/memory.py: the upsampled pair keeps its field of view; a small run writes its report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
_spec = importlib.util.spec_from_file_location("benchmark_memory", _PATH)
memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(memory)


def test_upsample_doubles_the_grid_over_the_same_field_of_view(tmp_path):
    affine = np.array([[2.0, 0, 0, -10], [0, 2.0, 0, 5], [0, 0, 3.0, 1], [0, 0, 0, 1]])
    ramp = np.add.outer(np.add.outer(np.arange(6.0), np.arange(5.0)), np.arange(4.0))
    nib.save(nib.Nifti1Image(ramp.astype(np.float32), affine), str(tmp_path / "c.nii.gz"))
    fine = nib.load(str(memory.upsample(tmp_path / "c.nii.gz", tmp_path / "f.nii.gz")))
    assert fine.shape == (12, 10, 8) and fine.get_data_dtype() == np.float32
    # the outer faces of the two grids coincide in world space
    for img in (fine, nib.load(str(tmp_path / "c.nii.gz"))):
        spacing = np.abs(np.diag(img.affine)[:3])
        first = img.affine[:3, 3] - spacing / 2
        last = img.affine[:3, :3] @ (np.array(img.shape) - 1) + img.affine[:3, 3] + spacing / 2
        np.testing.assert_allclose(first, [-11, 4, -0.5])
        np.testing.assert_allclose(last, [1, 14, 11.5])
    # linear data stay linear inside: a fine voxel between two coarse ones is their mean
    data = fine.get_fdata()
    assert data[3, 3, 3] == pytest.approx((ramp[1, 1, 1] * 3 + ramp[2, 2, 2]) / 4, abs=1e-5)


def test_unknown_size_is_refused():
    with pytest.raises(SystemExit):
        memory.main(["--sizes", "3mm"])


def test_small_run_writes_estimate_and_measured_peak(tmp_path, monkeypatch):
    grid = np.indices((40, 40, 40), dtype=np.float32)
    paths = []
    for name, c in (("fixed", 19.5), ("moving", 20.5)):
        blob = np.exp(-((grid - c) ** 2).sum(0) / 100.0).astype(np.float32)
        paths.append(tmp_path / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(blob, np.diag([2.0, 2.0, 2.0, 1.0])), str(paths[-1]))
    monkeypatch.setitem(memory.PAIRS, "2mm", tuple(paths))
    out = tmp_path / "out"
    assert memory.main(["--sizes", "2mm", "--preset", "fast", "--out", str(out)]) == 0
    report = json.loads((out / "memory.json").read_text())
    (case,) = report["cases"]
    assert case["fixed_shape"] == [40, 40, 40] and case["preset"] == "fast"
    assert 0.8 <= case["ratio"] <= 1.25
    assert case["estimate"] == sum(case["estimate_parts"].values())
    assert "| 2mm | fast |" in (out / "memory.md").read_text()
