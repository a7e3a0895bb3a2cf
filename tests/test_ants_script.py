"""tests/scripts/ants_registration.py, an ANTsPy script, on parareg after changing its import.

Its outputs are compared with a direct parareg call written out with the mapping docs/ants.md
gives for ``type_of_transform="SyN"``; the script also runs as written on ANTsPy.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import parareg
from parareg.fields import jacobian_determinant
from parareg.io import read_affine, read_warp
from tests._data import MINDBOGGLE

SCRIPT = Path(__file__).parent / "scripts" / "ants_registration.py"
SRC = Path(__file__).resolve().parents[1] / "src"

needs_slices = pytest.mark.skipif(len(MINDBOGGLE) < 2, reason="Mindboggle slices not present")


def run(script: Path, *args) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, str(script), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def ported(tmp_path) -> Path:
    """The script with its one ``import ants`` line changed, and nothing else."""
    lines = SCRIPT.read_text().splitlines(keepends=True)
    changed = [line.replace("import ants\n", "import parareg.ants as ants\n")
               if line == "import ants\n" else line for line in lines]
    assert sum(a != b for a, b in zip(lines, changed)) == 1
    path = tmp_path / SCRIPT.name
    path.write_text("".join(changed))
    return path


def direct_syn(fixed, moving):
    """ANTsPy's "SyN" with reg_iterations=(40, 20, 0), written as a parareg call (docs/ants.md)."""
    return parareg.register(
        fixed, moving, transform="syn", affine_metric="mi", syn_metric="mi", seed=0,
        affine_options={"pipeline": ("center_of_mass", "affine"), "full_resolution": "all",
                        "levels": ((4, 3.0, 2100), (2, 2.0, 1200), (2, 1.0, 1200)),
                        "sampling": 0.2, "sampling_strategy": "regular", "bins": 32},
        syn_options={"levels": ((4, 2.0, 40), (2, 1.0, 20), (1, 0.0, 0)), "step": 0.2,
                     "update_sigma": math.sqrt(3.0), "field_sigma": 0.0,
                     "convergence": (1e-7, 8)})


@needs_slices
def test_ported_script_matches_a_direct_parareg_call(tmp_path):
    prefix = str(tmp_path / "sub01_")
    out = run(ported(tmp_path), MINDBOGGLE[0], MINDBOGGLE[1], prefix)
    assert f"fwdtransforms: {prefix}1Warp.nii.gz {prefix}0GenericAffine.mat" in out
    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    result = direct_syn(fixed, moving)
    # the files are the registration's, to the bit (the warp) or to rounding (the ITK matrix)
    forward, _ = read_warp(prefix + "1Warp.nii.gz")
    np.testing.assert_array_equal(forward, result.mapping.forward)
    backward, _ = read_warp(prefix + "1InverseWarp.nii.gz")
    np.testing.assert_array_equal(backward, result.mapping.backward)
    np.testing.assert_allclose(read_affine(prefix + "0GenericAffine.mat"), result.affine.matrix,
                               rtol=0, atol=1e-9)
    np.testing.assert_array_equal(parareg.load(prefix + "warpedmovout.nii.gz").data,
                                  result.warped.data)
    # apply_transforms on those files gives the same images
    scale = float(np.ptp(moving.data))
    warped = parareg.load(prefix + "warped.nii.gz").data
    assert np.abs(warped - result.warped.data).max() <= 1e-5 * scale
    inverse = parareg.load(prefix + "inverse.nii.gz").data
    expected = result.mapping.transform_inverse(fixed).data
    assert np.abs(inverse - expected).max() <= 1e-5 * float(np.ptp(fixed.data))
    log_jacobian = parareg.load(prefix + "logjac.nii.gz").data
    det = jacobian_determinant(result.mapping.forward, vox2world=fixed.vox2world)
    np.testing.assert_allclose(log_jacobian, np.log(det), rtol=1e-5, atol=1e-6)


@needs_slices
def test_the_script_is_a_real_antspy_script(tmp_path):
    pytest.importorskip("ants")
    prefix = str(tmp_path / "ants_")
    out = run(SCRIPT, MINDBOGGLE[0], MINDBOGGLE[1], prefix)
    assert f"fwdtransforms: {prefix}1Warp.nii.gz {prefix}0GenericAffine.mat" in out
    for name in ("0GenericAffine.mat", "1Warp.nii.gz", "1InverseWarp.nii.gz", "warped.nii.gz",
                 "inverse.nii.gz", "logjac.nii.gz"):
        assert Path(prefix + name).exists()
