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
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "multichannel"))
    args = parser.parse_args(argv)

    import parareg
    from parareg.bench.longitudinal import (displacement_error, head_mask, load_visit,
                                            reference_fixed2moving)
    from parareg.transforms import center_of_mass

    shrink = _triple(args.shrink)
    iterations = _triple(args.iterations)
    levels = tuple(zip((4, 2, 1)[-len(iterations):], (2.0, 1.0, 0.0)[-len(iterations):],
                       iterations))
    log(f"loading {args.data} (shrink {args.shrink})")
    flair1, t2w1 = load_visit(args.data, "study1", shrink=shrink, num_threads=args.threads)
    flair2, t2w2 = load_visit(args.data, "study2", shrink=shrink, num_threads=args.threads)
    reference = reference_fixed2moving(args.data)
    mask = head_mask(flair1)
    options = {"pipeline": STAGES[args.stages], "levels": levels, "metric": args.metric,
               "num_threads": args.threads}
    modes = {
        "FLAIR": (flair1, flair2, None),
        "T2W": (t2w1, t2w2, None),
        "FLAIR + T2W": (flair1, flair2, [parareg.Channel(t2w1, t2w2, weight=args.weight)]),
    }
    results = {}

    def runner(name):
        fixed, moving, channels = modes[name]

        def run():
            results[name] = parareg.affine_registration(fixed, moving, channels=channels,
                                                        **options)
        return run

    log(f"timing {list(modes)} x {args.repeats} at {args.threads} threads")
    times = measure({name: runner(name) for name in modes}, repeats=args.repeats, min_time=0.0)
    errors = {name: displacement_error(results[name].matrix, reference, flair1, mask)
              for name in modes}
    start = displacement_error(center_of_mass(flair1, flair2), reference,
                               flair1, mask)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "multichannel.json", {
        "machine": machine_info(), "git": git_revision(__file__), "args": vars(args),
        "grid": {"shape": list(flair1.shape), "spacing_mm": flair1.spacing.tolist()},
        "head_voxels": int(mask.sum()), "levels": levels,
        "start_error_mm": {"mean": start[0], "max": start[1]},
        "modes": {name: {"seconds": times[name], "mean_error_mm": errors[name][0],
                         "max_error_mm": errors[name][1],
                         "matrix": results[name].matrix.tolist()} for name in modes}})
    rows = [["start (centres of mass)", "", "", f"{start[0]:.3f}", f"{start[1]:.3f}"]]
    rows += [[name, f"{times[name]['min_s']:.3f}", f"{times[name]['median_s']:.3f}",
              f"{errors[name][0]:.3f}", f"{errors[name][1]:.3f}"] for name in modes]
    text = (f"open_ms patient01, visit 2 -> visit 1, {args.stages} ({args.metric}), grid "
            f"{'x'.join(map(str, flair1.shape))} of "
            f"{' x '.join(f'{s:.2f}' for s in flair1.spacing)} mm, {args.threads} threads, "
            f"{args.repeats} repeats, T2W weight {args.weight:g}\n\n")
    text += markdown_table(["channels", "time min s", "time median s", "mean error mm",
                            "max error mm"], rows)
    (out / "multichannel.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
