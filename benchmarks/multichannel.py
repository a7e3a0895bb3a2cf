"""Two-channel against single-channel registration on the same data: time and accuracy.

Data: open_ms patient01 (``../shared/data/multimodal/open_ms``), two visits of
one patient, each a FLAIR and a T2W image. Each visit's T2W is put on that
visit's FLAIR grid with the reference intrastudy transform (and, with
``--shrink``, both onto a coarser grid); visit 2 is then registered to visit 1
with ``parareg.affine_registration`` three ways on the same settings: FLAIR
alone, T2W alone, and FLAIR + T2W as two channels (``channels=[Channel(t2w1,
t2w2, weight=W)]``). Accuracy is the mean and max displacement error (mm) over
the head of visit 1 against the reference between-visit map composed from
the two ``*_FLAIR_to_common_space.txt`` files. Times: every mode is run once
untimed (compilation), then ``--repeats`` times, interleaved; minima and medians.

``--intrastudy parareg`` puts each T2W on its FLAIR grid with parareg's own
rigid T2W -> FLAIR fit (MI, started from the reference) instead of the
reference file, to show how much of the T2W channel's error that file
brings. The "simulated" rows have an exact reference: two visits sampled from
visit 1's full-resolution FLAIR and T2W with a known rigid motion between
them, each channel degraded its own way
(``parareg.bench.longitudinal.simulated_visits``: FLAIR without the upper 40 %
of the slices, T2W without the first 40 % of another axis, independent noise
of 20 % each), over ``--seeds`` noise seeds (each registered once, untimed;
mean and max of the per-seed mean errors).

Run::

    PYTHONPATH=src python benchmarks/multichannel.py --threads 2 --repeats 3

Writes ``multichannel.json`` and ``multichannel.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (git_revision, log, machine_info, markdown_table, measure,  # noqa: E402
                     write_json)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "multimodal" / "open_ms" / "patient01"
#: the simulated visits' motions: (degrees about x, y, z; shift mm), about the grid's centre
MOTIONS = {"A": ((2.0, -3.0, 1.5), (3.0, -2.0, 1.5)), "B": ((-1.0, 2.0, -2.5), (-4.0, 1.0, 2.0))}
STAGES = {"rigid": ("center_of_mass", "translation", "rigid"),
          "affine": ("center_of_mass", "translation", "rigid", "affine")}


def _triple(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("x"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="open_ms patient folder")
    parser.add_argument("--shrink", default="2x2x1",
                        help="shrink factors of the FLAIR grids per axis (default 2x2x1: "
                             "1.4 x 1.4 x 3-4 mm)")
    parser.add_argument("--stages", choices=sorted(STAGES), default="rigid")
    parser.add_argument("--metric", default="mi", help="affine metric of every channel")
    parser.add_argument("--iterations", default="100x50x25",
                        help="iterations per level, pyramid 4x2x1 (sigmas 2x1x0 vox)")
    parser.add_argument("--weight", type=float, default=1.0,
                        help="weight of the T2W channel (FLAIR's is 1)")
    parser.add_argument("--intrastudy", choices=("reference", "parareg"), default="reference",
                        help="how each T2W is put on its FLAIR grid: the reference transform "
                             "file, or parareg's own rigid fit")
    parser.add_argument("--seeds", type=int, default=3,
                        help="noise seeds of the simulated visits (default 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "multichannel"))
    args = parser.parse_args(argv)

    import parareg
    from parareg.bench.longitudinal import (displacement_error, head_mask, load_visit,
                                            reference_fixed2moving, reference_intrastudy,
                                            rigid_about_centre, simulated_visits)
    from parareg.transforms import center_of_mass

    shrink = _triple(args.shrink)
    iterations = _triple(args.iterations)
    levels = tuple(zip((4, 2, 1)[-len(iterations):], (2.0, 1.0, 0.0)[-len(iterations):],
                       iterations))
    intrastudy = {}
    if args.intrastudy == "parareg":
        for study in ("study1", "study2"):
            intrastudy[study] = _own_intrastudy(Path(args.data), study, args.threads)
    log(f"loading {args.data} (shrink {args.shrink}, intrastudy {args.intrastudy})")
    flair1, t2w1 = load_visit(args.data, "study1", shrink=shrink, num_threads=args.threads,
                              intrastudy=intrastudy.get("study1"))
    flair2, t2w2 = load_visit(args.data, "study2", shrink=shrink, num_threads=args.threads,
                              intrastudy=intrastudy.get("study2"))
    mask = head_mask(flair1)
    intrastudy_shift = {study: displacement_error(matrix, reference_intrastudy(args.data, study),
                                                  flair1, mask)[0]
                        for study, matrix in intrastudy.items()}
    options = {"pipeline": STAGES[args.stages], "levels": levels, "metric": args.metric,
               "num_threads": args.threads}
    cases = {"open_ms": (reference_fixed2moving(args.data), flair1, t2w1, flair2, t2w2)}
    report = {}
    for case, (reference, f1, t1, f2, t2) in cases.items():
        modes = {"FLAIR": (f1, f2, None), "T2W": (t1, t2, None),
                 "FLAIR + T2W": (f1, f2, [parareg.Channel(t1, t2, weight=args.weight)])}
        results = {}

        def runner(name, modes=modes, results=results):
            fixed, moving, channels = modes[name]

            def run():
                results[name] = parareg.affine_registration(fixed, moving, channels=channels,
                                                            **options)
            return run

        log(f"{case}: timing {list(modes)} x {args.repeats} at {args.threads} threads")
        times = measure({name: runner(name) for name in modes}, repeats=args.repeats,
                        min_time=0.0)
        errors = {name: displacement_error(results[name].matrix, reference, f1, mask)
                  for name in modes}
        start = displacement_error(center_of_mass(f1, f2), reference, f1, mask)
        report[case] = {"start_error_mm": {"mean": start[0], "max": start[1]},
                        "modes": {name: {"seconds": times[name], "mean_error_mm": errors[name][0],
                                         "max_error_mm": errors[name][1],
                                         "matrix": results[name].matrix.tolist()}
                                  for name in modes}}
    anatomy = load_visit(args.data, "study1", num_threads=args.threads,
                         intrastudy=intrastudy.get("study1"))
    for label, (degrees, shift) in MOTIONS.items():
        truth = rigid_about_centre(flair1, degrees=degrees, shift=shift)
        report[f"simulated {label}"] = _simulated(
            parareg, anatomy, flair1, truth, mask, args.seeds,
            {**options, "levels": ((4, 2.0, 100), (2, 1.0, 50), (1, 0.0, 25))}, args.weight)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "multichannel.json", {
        "machine": machine_info(), "git": git_revision(__file__), "args": vars(args),
        "grid": {"shape": list(flair1.shape), "spacing_mm": flair1.spacing.tolist()},
        "head_voxels": int(mask.sum()), "levels": levels,
        "intrastudy_vs_reference_mm": intrastudy_shift, "simulated_motions": MOTIONS,
        **report})
    text = (f"open_ms patient01, visit 2 -> visit 1, {args.stages} ({args.metric}), grid "
            f"{'x'.join(map(str, flair1.shape))} of "
            f"{' x '.join(f'{s:.2f}' for s in flair1.spacing)} mm, {args.threads} threads, "
            f"{args.repeats} repeats, T2W weight {args.weight:g}, intrastudy "
            f"{args.intrastudy}"
            + "".join(f", {study} own fit vs reference {shift:.3f} mm"
                      for study, shift in intrastudy_shift.items()) + "\n\n")
    rows = []
    for case, data in report.items():
        if case.startswith("simulated"):
            rows += [[f"{case} ({args.seeds} seeds)", name, "", "",
                      f"{m['mean_error_mm']:.3f}", f"{m['max_error_mm']:.3f}"]
                     for name, m in data["modes"].items()]
            continue
        start = data["start_error_mm"]
        rows.append([case, "start (centres of mass)", "", "", f"{start['mean']:.3f}",
                     f"{start['max']:.3f}"])
        rows += [[case, name, f"{m['seconds']['min_s']:.3f}", f"{m['seconds']['median_s']:.3f}",
                  f"{m['mean_error_mm']:.3f}", f"{m['max_error_mm']:.3f}"]
                 for name, m in data["modes"].items()]
    text += markdown_table(["case", "channels", "time min s", "time median s", "mean error mm",
                            "max error mm"], rows)
    text += ("\n\nsimulated rows: the mean over the seeds of each seed's mean error, and the "
             "worst seed's mean error (3-level pyramid 4x2x1, 100x50x25 iterations)\n")
    (out / "multichannel.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _simulated(parareg, anatomy, grid, truth, mask, seeds, options, weight) -> dict:
    """Per mode: the mean over seeds of the mean error (mm), the largest seed's, and each
    seed's, on two visits on ``grid`` simulated from ``anatomy`` (3-level pyramid)."""
    from parareg.bench.longitudinal import displacement_error, simulated_visits

    errors = {"FLAIR": [], "T2W": [], "FLAIR + T2W": []}
    for seed in range(seeds):
        log(f"simulated visits, seed {seed}")
        (f1, t1), (f2, t2) = simulated_visits(anatomy, grid, truth, seed=seed,
                                              num_threads=options["num_threads"])
        for name, fixed, moving, channels in (
                ("FLAIR", f1, f2, None), ("T2W", t1, t2, None),
                ("FLAIR + T2W", f1, f2, [parareg.Channel(t1, t2, weight=weight)])):
            result = parareg.affine_registration(fixed, moving, channels=channels, **options)
            errors[name].append(displacement_error(result.matrix, truth, grid, mask)[0])
    return {"motion": truth.tolist(),
            "modes": {name: {"mean_error_mm": float(sum(v) / len(v)),
                             "max_error_mm": float(max(v)), "per_seed_mm": v}
                      for name, v in errors.items()}}


def _own_intrastudy(folder: Path, study: str, threads: int):
    """parareg's rigid T2W -> FLAIR fit of one visit (MI, from the reference transform)."""
    import parareg
    from parareg.bench.longitudinal import reference_intrastudy

    log(f"{study}: fitting T2W -> FLAIR")
    fit = parareg.affine_registration(folder / f"{study}_FLAIR.nii.gz",
                                      folder / f"{study}_T2W.nii.gz",
                                      pipeline=("translation", "rigid"), metric="mi",
                                      starting_affine=reference_intrastudy(folder, study),
                                      num_threads=threads)
    return fit.matrix


if __name__ == "__main__":
    raise SystemExit(main())
