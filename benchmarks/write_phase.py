"""A/B of the write phase of ``parareg register``: two source trees, interleaved runs, minima.

Each repeat runs ``parareg register FIXED MOVING -o OUT/o_`` once with each
``--src`` tree on ``PYTHONPATH`` (alternating, so load from elsewhere hits
both alike) and reads the summary's ``write`` line (outputs written, plus the
numbers the summary needs) and ``total``, and the wall time of the process.

With ``--in-process`` the pair is registered once (``--preset``) and the
write phase alone is timed in this process, interleaved: "sequential" does
what parareg did before the one writer (each file through ``nibabel.save``
at gzip level 1, one after another, then InverseWarped, the Jacobian and
the NCC before registration), "writer, N threads" what ``parareg register``
does now (:class:`parareg.io.OutputSet` compressing in the background while
InverseWarped is computed, the summary numbers in a side thread).

Run::

    python benchmarks/write_phase.py --src main=/work/main/src --src new=src \\
        FIXED MOVING --repeats 5 --preset fast
    python benchmarks/write_phase.py --in-process FIXED MOVING --repeats 5

Writes ``write_phase.json`` and ``write_phase.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, machine_info, markdown_table, write_json  # noqa: E402


def one_run(src: str, fixed, moving, folder: Path, *, preset: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    cmd = [sys.executable, "-m", "parareg.cli", "register", str(fixed), str(moving), "-o",
           str(folder / "o_"), "--preset", preset, "--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    stages = dict(re.findall(r"^\s+(affine|syn|warp|write|total)\s+([\d.]+) s", done.stdout,
                             flags=re.M))
    return {"wall_s": wall, **{f"{k}_s": float(v) for k, v in stages.items()}}


def in_process(fixed, moving, *, preset: str, threads: int, repeats: int) -> dict:
    """Minimum seconds of the write phase, sequential vs the writer (see the module docstring)."""
    from concurrent.futures import ThreadPoolExecutor

    import nibabel as nib

    import parareg
    from parareg.cli._common import ncc
    from parareg.cli.register import _side_numbers
    from parareg.io import OutputSet
    from parareg.io.itk import affine_map_to_itk
    from parareg.io.itk_warp import warp_to_nifti, write_warp
    from parareg.io.nifti import save, to_nifti

    fixed, moving = parareg.load(fixed), parareg.load(moving)
    result = parareg.register(fixed, moving, transform="syn", preset=preset,
                              num_threads=threads)
    mapping = result.mapping
    parareg.resample(moving, fixed, num_threads=threads)  # every kernel loaded before timing

    def sequential(folder):
        affine_map_to_itk(result.affine, folder / "o_0GenericAffine.mat")
        nib.save(warp_to_nifti(mapping.forward, mapping.vox2world), folder / "o_1Warp.nii.gz")
        nib.save(warp_to_nifti(mapping.backward, mapping.vox2world),
                 folder / "o_1InverseWarp.nii.gz")
        nib.save(to_nifti(result.warped), folder / "o_Warped.nii.gz")
        inverse = mapping.transform_inverse(fixed, num_threads=threads)
        nib.save(to_nifti(inverse), folder / "o_InverseWarped.nii.gz")
        mapping.jacobian_determinant(num_threads=threads)
        ncc(fixed.data, parareg.resample(moving, fixed, num_threads=threads).data)
        ncc(fixed.data, result.warped.data)

    def writer(folder, n):
        with OutputSet(num_threads=n) as outputs, ThreadPoolExecutor(max_workers=1) as side:
            affine_map_to_itk(result.affine, folder / "o_0GenericAffine.mat", outputs=outputs)
            write_warp(mapping.forward, mapping.vox2world, folder / "o_1Warp.nii.gz",
                       outputs=outputs)
            write_warp(mapping.backward, mapping.vox2world, folder / "o_1InverseWarp.nii.gz",
                       outputs=outputs)
            save(result.warped, folder / "o_Warped.nii.gz", outputs=outputs)
            numbers = side.submit(_side_numbers, fixed, moving, result, jacobian=True,
                                  similarity=True, num_threads=n)
            inverse = mapping.transform_inverse(fixed, num_threads=n)
            save(inverse, folder / "o_InverseWarped.nii.gz", outputs=outputs)
            numbers.result()

    modes = {"sequential (before)": lambda folder: sequential(folder)}
    for n in sorted({1, threads}):
        modes[f"writer, {n} thread{'s' * (n > 1)}"] = lambda folder, n=n: writer(folder, n)
    times = {name: [] for name in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for name, mode in modes.items():
                t0 = time.perf_counter()
                mode(Path(tmp))
                times[name].append(time.perf_counter() - t0)
                log(f"repeat {repeat + 1} {name}: {times[name][-1]:.2f} s")
    return {name: {"min_s": min(ts), "times_s": ts} for name, ts in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixed")
    parser.add_argument("moving")
    parser.add_argument("--in-process", action="store_true",
                        help="time the write phase alone in this process (see above)")
    parser.add_argument("--src", action="append", default=[], metavar="NAME=DIR",
                        help="a source tree to put on PYTHONPATH (repeat for A and B)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" /
                                             "write_phase"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.in_process:
        minima = in_process(args.fixed, args.moving, preset=args.preset, threads=args.threads,
                            repeats=args.repeats)
        write_json(out / "write_phase_in_process.json",
                   {"machine": machine_info(), "fixed": args.fixed, "moving": args.moving,
                    "preset": args.preset, "threads": args.threads, "modes": minima})
        text = markdown_table(["write phase", "min", "repeats"],
                              [[name, f"{m['min_s']:.2f} s",
                                " ".join(f"{t:.2f}" for t in m["times_s"])]
                               for name, m in minima.items()]) + "\n"
        (out / "write_phase_in_process.md").write_text(text, encoding="utf-8")
        print(text)
        return 0
    if len(args.src) < 1:
        parser.error("give --src NAME=DIR (twice for an A/B) or --in-process")
    sources = dict(item.split("=", 1) for item in args.src)
    runs = {name: [] for name in sources}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, src in sources.items():
                folder = Path(tmp) / name
                folder.mkdir(exist_ok=True)
                run = one_run(src, args.fixed, args.moving, folder, preset=args.preset,
                              threads=args.threads)
                log(f"repeat {repeat + 1} {name}: {run}")
                runs[name].append(run)
    keys = ("write_s", "total_s", "wall_s")
    minima = {name: {k: min(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    study = {"machine": machine_info(), "fixed": args.fixed, "moving": args.moving,
             "preset": args.preset, "threads": args.threads, "sources": sources,
             "runs": runs, "minima": minima}
    write_json(out / "write_phase.json", study)
    text = markdown_table(["tree", "write (min)", "total (min)", "process wall (min)"],
                          [[name, f"{m['write_s']:.2f} s", f"{m['total_s']:.2f} s",
                            f"{m['wall_s']:.2f} s"] for name, m in minima.items()]) + "\n"
    (out / "write_phase.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
