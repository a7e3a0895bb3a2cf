"""One ANTsPy call on ANTs and on parareg: ants.registration vs parareg.ants.registration.

For each ``type_of_transform`` the two run interleaved (ANTs, parareg, ANTs,
parareg, ...) on one IXI 2 mm pair (moving IXI013 -> fixed IXI012 by default,
the README's baseline pair), the registration call alone timed; parareg gets
one untimed run per type first, so numba compilation is excluded. Each
method's ``fwdtransforms`` are applied to the moving DLMUSE labels by the same
applier (``ants.apply_transforms``, nearestNeighbor) and scored by mean Dice
over the labels present in both.

Usage::

    python benchmarks/ants_api.py --quick --out /tmp/ants_api    # 2D slices, one run: smoke
    python benchmarks/ants_api.py                                 # SyN and SyNQuick, 3 repeats

Writes ``ants_api.json`` and ``ants_api.md`` (also printed) into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import log, machine_info, write_json  # noqa: E402
from tests._data import IXI_LABELS, IXI_T1, MINDBOGGLE, MINDBOGGLE_LABELS  # noqa: E402

DEFAULT_TYPES = ("SyN", "antsRegistrationSyNQuick[s]")


def _get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--types", default=",".join(DEFAULT_TYPES),
                        help="comma-separated type_of_transform values")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of both (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS, num_threads)")
    parser.add_argument("--fixed", type=int, default=0, help="index of the fixed IXI subject")
    parser.add_argument("--moving", type=int, default=1, help="index of the moving IXI subject")
    parser.add_argument("--quick", action="store_true",
                        help="2D Mindboggle slices, SyN only, one repeat")
    parser.add_argument("--out", default="benchmarks/out/ants_api")
    return parser


def mean_dice(fixed_labels: np.ndarray, warped_labels: np.ndarray) -> float:
    labels = np.intersect1d(np.unique(fixed_labels), np.unique(warped_labels))
    labels = labels[labels != 0]
    return float(np.mean([2.0 * np.sum((fixed_labels == k) & (warped_labels == k))
                          / (np.sum(fixed_labels == k) + np.sum(warped_labels == k))
                          for k in labels]))


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import ants

    import parareg.ants as pants

    if args.quick:
        images, labels = MINDBOGGLE, MINDBOGGLE_LABELS
        types, repeats = ("SyN",), 1
    else:
        images, labels = IXI_T1, IXI_LABELS
        types, repeats = tuple(args.types.split(",")), args.repeats
    fixed = ants.image_read(str(images[args.fixed]))
    moving = ants.image_read(str(images[args.moving]))
    fixed_labels = ants.image_read(str(labels[args.fixed]), pixeltype="unsigned int").numpy()
    moving_labels = ants.image_read(str(labels[args.moving]), pixeltype="unsigned int")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = {"ants": lambda t, p: ants.registration(fixed, moving, t, outprefix=p),
               "parareg.ants": lambda t, p: pants.registration(fixed, moving, t, outprefix=p,
                                                               num_threads=args.threads)}
    rows = []
    for t in types:
        log(f"warm-up parareg.ants {t}")
        methods["parareg.ants"](t, str(out / "warmup_"))
        for repeat in range(repeats):
            for name, run in methods.items():
                t0 = time.perf_counter()
                reg = run(t, str(out / f"{name}_{repeat}_"))
                seconds = time.perf_counter() - t0
                warped = ants.apply_transforms(fixed, moving_labels, reg["fwdtransforms"],
                                               interpolator="nearestNeighbor").numpy()
                rows.append({"type_of_transform": t, "method": name, "repeat": repeat,
                             "seconds": seconds, "dice": mean_dice(fixed_labels, warped)})
                log(f"{t} {name} run {repeat}: {seconds:.1f} s, Dice {rows[-1]['dice']:.4f}")
    lines = [f"pair: moving {Path(images[args.moving]).name} -> fixed "
             f"{Path(images[args.fixed]).name}, {args.threads} threads, {repeats} interleaved "
             "run(s) each", "",
             "| type_of_transform | method | min time (s) | all times (s) | mean Dice |",
             "| --- | --- | ---: | --- | ---: |"]
    for t in types:
        for name in methods:
            mine = [r for r in rows if r["type_of_transform"] == t and r["method"] == name]
            times = [r["seconds"] for r in mine]
            lines.append(f"| {t} | {name} | {min(times):.1f} | "
                         f"{', '.join(f'{s:.1f}' for s in times)} | {mine[0]['dice']:.4f} |")
    report = "\n".join(lines)
    (out / "ants_api.md").write_text(report + "\n")
    write_json(out / "ants_api.json", {"args": vars(args), "machine": machine_info(),
                                       "rows": rows})
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
