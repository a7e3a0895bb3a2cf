"""DIPY's tutorials as kept in tests/scripts/dipy_*.py: run on DIPY vs on parareg.dipy.

Each script runs as a whole command (a fresh ``python`` process: import,
reading the NIfTI files, registration, saving), once as written (DIPY) and
once with only its ``from dipy.align... import`` lines switched to
``from parareg.dipy import``, interleaved ``--repeats`` times. The images are
two IXI subjects (2 mm) shrunk by ``--step`` (every ``step``-th voxel, outer
faces zeroed as in tests/test_dipy_script.py). It records wall times (min,
median) and the correlation of each output image with the static image.

Usage::

    python benchmarks/dipy_tutorial.py                          # both scripts, 4 mm, 3 repeats
    python benchmarks/dipy_tutorial.py --step 1 --repeats 5     # the 2 mm images
    python benchmarks/dipy_tutorial.py --out /tmp/d --scripts dipy_affine_3d.py --repeats 1

Writes ``dipy_tutorial.json`` and ``dipy_tutorial.md`` (also printed) into ``--out``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402 - a sibling module, importable once its folder is on the path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "tests" / "scripts"
T1 = REPO.parent / "shared" / "data" / "ixi_2mm" / "t1"
PAIR = (T1 / "IXI012-HH-1211-T1_ds.nii.gz", T1 / "IXI013-HH-1212-T1_ds.nii.gz")
DIPY_IMPORT = re.compile(r"^from dipy\.align(?:\.\w+)* import ", re.MULTILINE)
RUNNERS = ("dipy", "parareg")
#: the scripts' outputs that lie on the static grid (the others are on the moving grid)
ON_STATIC_GRID = ("resampled_identity", "centred", "resampled", "transformed", "warped_moving")


def write_images(out: Path, step: int) -> tuple[Path, Path]:
    """The static and moving images, every ``step``-th voxel, outer faces zero."""
    paths = []
    for name, source in zip(("static", "moving"), PAIR):
        img = nib.load(source)
        data = np.asarray(img.dataobj, dtype=np.float32)
        data = np.pad(data[step:-step:step, step:-step:step, step:-step:step], 1)
        path = out / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, img.affine @ np.diag([step, step, step, 1.0])), path)
        paths.append(path)
    return paths[0], paths[1]


def script_for(runner: str, script: str, out: Path) -> Path:
    source = (SCRIPTS / script).read_text()
    if runner == "parareg":
        source = DIPY_IMPORT.sub("from parareg.dipy import ", source)
    path = out / f"{runner}_{script}"
    path.write_text(source)
    return path


def _corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "dipy_tutorial")
    parser.add_argument("--scripts", default="dipy_affine_syn.py,dipy_affine_3d.py")
    parser.add_argument("--runners", default=",".join(RUNNERS))
    parser.add_argument("--step", type=int, default=2, help="keep every step-th voxel")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    static, moving = write_images(args.out, args.step)
    target = nib.load(static).get_fdata()
    scripts = args.scripts.split(",")
    runners = args.runners.split(",")
    rows = {(s, r): {"script": s, "runner": r, "seconds": []} for s in scripts for r in runners}
    for repeat in range(args.repeats):
        for script in scripts:
            for runner in runners:  # interleaved, so a load change hits both alike
                result = args.out / f"{runner}_{script[:-3]}.npz"
                t0 = time.perf_counter()
                subprocess.run([sys.executable, str(script_for(runner, script, args.out)),
                                str(static), str(moving), str(result)], check=True,
                               capture_output=True)
                row = rows[script, runner]
                row["seconds"].append(time.perf_counter() - t0)
                _common.log(f"{script} on {runner}, repeat {repeat}: {row['seconds'][-1]:.1f} s")
                outputs = np.load(result)
                row["corr_with_static"] = {k: _corr(outputs[k], target) for k in outputs.files
                                           if k in ON_STATIC_GRID}
    lines = [f"### DIPY tutorials on DIPY vs parareg.dipy ({target.shape} images, "
             f"{args.repeats} interleaved runs)", "",
             "| script | runner | min | median | correlation with static (outputs on its grid) |",
             "| :--- | :--- | ---: | ---: | :--- |"]
    for row in rows.values():
        corr = ", ".join(f"{k} {v:.3f}" for k, v in row["corr_with_static"].items())
        lines.append(f"| {row['script']} | {row['runner']} | {min(row['seconds']):.1f} s | "
                     f"{statistics.median(row['seconds']):.1f} s | {corr} |")
    markdown = "\n".join(lines) + "\n"
    (args.out / "dipy_tutorial.md").write_text(markdown)
    _common.write_json(args.out / "dipy_tutorial.json", {
        "settings": vars(args) | {"out": str(args.out), "shape": target.shape},
        "machine": _common.machine_info(), "versions": _common.package_versions(
            ("numpy", "scipy", "numba", "dipy", "parareg")),
        "rows": list(rows.values())})
    print(markdown, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
