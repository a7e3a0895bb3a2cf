"""What ``parareg apply`` costs next to antsApplyTransforms (antspyx), as whole commands.

Cases (each a SyN result that ``parareg register`` writes first, untimed):

* ``1mm``: the 1 mm brain pair (fsaverage_brain <- vxm_t1), the moving image
  through ``-t PREFIX_1Warp.nii.gz PREFIX_0GenericAffine.mat``;
* ``series``: a 4D time series at 2 mm (the IXI moving volume, ``--volumes``
  scaled copies) through the IXI pair's warp and affine, ``-e 3``.

Each tool runs as a fresh process that reads the inputs, applies the list and
writes the output (``.nii.gz``), as a user's script pays it: ``parareg apply``
(the console command), and a ``python -c`` that does ``ants.image_read``,
``ants.apply_transforms`` (``imagetype=3`` for the series) and
``ants.image_write``. The two are interleaved ``--repeats`` times; the report
gives minima and medians, the ratio of medians, the thread count (both tools
get ``--threads``: ITK through ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``), the
versions and the machine, and checks the outputs agree (max |diff| / range
inside the image, where the edge rule cannot differ).

Usage::

    python benchmarks/apply.py --out /tmp/apply                  # both cases, 2 threads
    python benchmarks/apply.py --out /tmp/apply --quick          # tiny check that it runs
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PAIRS = {
    "1mm": (DATA / "brain_1mm" / "fsaverage_brain.nii.gz", DATA / "brain_1mm" / "vxm_t1.nii.gz"),
    "series": (DATA / "ixi_2mm" / "t1" / "IXI012-HH-1211-T1_ds.nii.gz",
               DATA / "ixi_2mm" / "t1" / "IXI013-HH-1212-T1_ds.nii.gz"),
}
VERSIONS = ("numpy", "scipy", "numba", "nibabel", "parareg", "antspyx")
TARGET = 0.5  #: parareg apply / antsApplyTransforms
#: the ``parareg`` console command, run by this interpreter
PARAREG = [sys.executable, "-c", "import sys; from parareg.cli.main import main; sys.exit(main())"]

ANTS_CHILD = """\
import sys, ants
fixed, moving, out, imagetype = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
transforms = sys.argv[5:]
result = ants.apply_transforms(ants.image_read(fixed), ants.image_read(moving), transforms,
                               imagetype=imagetype)
ants.image_write(result, out)
"""


def _env(threads: int) -> dict:
    env = dict(os.environ)
    env.update({"PARAREG_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
                "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(threads)})
    return env


def _timed(argv, env) -> tuple[float, float]:
    """Wall seconds of the command, and the CPU seconds (user + system) of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"apply benchmark: {' '.join(map(str, argv[:3]))} failed:\n"
                         f"{done.stderr[-2000:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def prepare(name, fixed, moving, args, scratch: Path) -> dict:
    """Register the pair once (untimed); build the series input; return the case's files."""
    import nibabel as nib

    prefix = scratch / f"{name}_"
    command = [*PARAREG, "register", str(fixed), str(moving), "-o",
               str(prefix), "-q", "--threads", str(args.threads)]
    if args.quick:
        command += ["--preset", "fast"]
    transforms = [f"{prefix}1Warp.nii.gz", f"{prefix}0GenericAffine.mat"]
    if not all(Path(t).exists() for t in transforms):  # --scratch may hold them already
        subprocess.run(command, check=True, env=_env(args.threads))
    case = {"name": name, "fixed": str(fixed), "input": str(moving), "transforms": transforms,
            "image_type": 0}
    if name == "series":
        volume = nib.load(moving)
        data = np.asarray(volume.get_fdata(dtype=np.float32))
        series = np.stack([data * (1 + 0.01 * t) for t in range(args.volumes)], axis=-1)
        path = scratch / f"series_{args.volumes}.nii.gz"
        if not path.exists():
            nib.save(nib.Nifti1Image(series, volume.affine), path)
        case.update(input=str(path), image_type=3, volumes=args.volumes)
    return case


def run_case(case, args, scratch: Path) -> dict:
    env = _env(args.threads)
    ours = scratch / f"{case['name']}_parareg.nii.gz"
    theirs = scratch / f"{case['name']}_ants.nii.gz"
    parareg_argv = [*PARAREG, "apply", "-i", case["input"], "-r",
                    case["fixed"], "-o", str(ours), "-q", "--threads", str(args.threads),
                    "-e", str(case["image_type"]), "-t", *case["transforms"]]
    ants_argv = [sys.executable, "-c", ANTS_CHILD, case["fixed"], case["input"], str(theirs),
                 str(case["image_type"]), *case["transforms"]]
    times = {"parareg": [], "ants": []}
    _timed(parareg_argv, env)  # once first: numba cache, page cache
    _timed(ants_argv, env)
    for _ in range(args.repeats):
        times["parareg"].append(_timed(parareg_argv, env))
        times["ants"].append(_timed(ants_argv, env))
    result = {key: case[key] for key in ("name", "fixed", "input", "image_type", "volumes")
              if key in case}
    for tool, runs in times.items():
        values, cpu = [wall for wall, _ in runs], [c for _, c in runs]
        result[tool] = {"seconds": values, "min": min(values),
                        "median": statistics.median(values), "cpu_seconds": cpu,
                        "cpu_min": min(cpu)}
    result["ratio_of_medians"] = result["parareg"]["median"] / result["ants"]["median"]
    result["agreement"] = agreement(ours, theirs)
    return result


def agreement(ours: Path, theirs: Path) -> dict:
    """max |parareg - ANTs| / range, over all voxels and over voxels away from zero-padding."""
    import nibabel as nib

    a = np.asarray(nib.load(ours).dataobj, dtype=np.float64)
    b = np.asarray(nib.load(theirs).dataobj, dtype=np.float64).reshape(a.shape)
    scale = float(np.ptp(b)) or 1.0
    diff = np.abs(a - b)
    inside = (a != 0) & (b != 0)
    return {"max_over_range": float(diff.max() / scale),
            "max_over_range_inside": float(diff[inside].max() / scale) if inside.any() else 0.0,
            "fraction_over_1e-4": float(np.mean(diff > 1e-4 * scale))}


def markdown(report) -> str:
    rows = []
    for case in report["cases"]:
        rows.append([case["name"] + (f" ({case.get('volumes', '')} volumes)"
                                     if case["image_type"] == 3 else ""),
                     f"{case['parareg']['median']:.2f} (min {case['parareg']['min']:.2f})",
                     f"{case['ants']['median']:.2f} (min {case['ants']['min']:.2f})",
                     f"{case['ratio_of_medians']:.2f}x",
                     "met" if case["ratio_of_medians"] <= TARGET else "not met",
                     f"{case['parareg']['cpu_min']:.2f} / {case['ants']['cpu_min']:.2f}",
                     f"{case['agreement']['max_over_range_inside']:.1e}"])
    head = ["case", "parareg apply, s", "antsApplyTransforms (antspyx), s",
            "parareg / ANTs", f"target <= {TARGET}x", "min CPU s, parareg / ANTs",
            "max diff / range (inside)"]
    machine = report["machine"]
    lines = [f"threads: {report['settings']['threads']}; machine: {machine.get('cpu_model')}, "
             f"{machine.get('usable_cpus')} usable CPUs; versions: "
             + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), "",
             _common.markdown_table(head, rows)]
    return "\n".join(lines) + "\n"


def _get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--scratch", type=Path, default=None,
                        help="keep the registrations and inputs in this folder and reuse them "
                             "on the next run (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true",
                        help="a check that it runs: the series case, 3 volumes, 1 repeat")
    return parser


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    if args.quick:
        args.cases, args.volumes, args.repeats = ["series"], 3, 1
    for name in ("threads", "repeats", "volumes"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items()},
              "machine": _common.machine_info(), "git": _common.git_revision(__file__),
              "versions": _common.package_versions(VERSIONS)}
    with tempfile.TemporaryDirectory(prefix="apply-bench-") as tmp:
        scratch = Path(tmp) if args.scratch is None else args.scratch
        scratch.mkdir(parents=True, exist_ok=True)
        cases = [prepare(name, *PAIRS[name], args, scratch) for name in args.cases]
        report["cases"] = [run_case(case, args, scratch) for case in cases]
    _common.write_json(args.out / "apply.json", report)
    text = markdown(report)
    (args.out / "apply.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
