"""``parareg scaling``: time one registration at 1 .. N threads and at several image sizes.

Examples::

    parareg scaling fixed.nii.gz moving.nii.gz --out scaling
    parareg scaling fixed.nii.gz moving.nii.gz --transform affine --threads 1,2,4 \\
        --factors 4,2,1 --repeats 3 --out scaling -q

At each size (the pair shrunk by each --factors value after a Gaussian of
0.5 * (factor - 1) voxels) one untimed registration compiles and warms up, then
the registration is timed at every thread count (interleaved, --repeats times).
The warped images must be bit-identical at every thread count; scaling.json
records it per run. Writes scaling.json, scaling.md (also printed),
speedup.png and time_vs_voxels.png into --out. Exit status: 0 when every
size was bit-identical, 1 when some was not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys

from ._common import EXIT_OK, add_quiet_argument, make_parser, positive_int, run_command

#: exit status when the study ran but some warped images differed between thread counts
EXIT_NOT_IDENTICAL = 1


def _int_list(option: str):
    """``argparse`` type: comma-separated positive integers such as ``1,2,4``."""

    def parse(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(
                f"{option} takes comma-separated positive integers such as 1,2,4, got {text!r}")
        return values

    return parse


def _get_parser():
    from ..bench.scaling import default_threads
    from ..registration.pipeline import AFFINE_PIPELINES, SYN_PRESETS

    parser = make_parser("parareg scaling", description=__doc__.split("\n\n")[0]
                         .replace("``", ""), epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("fixed", metavar="FIXED", help="fixed image (2D or 3D NIfTI)")
    parser.add_argument("moving", metavar="MOVING", help="moving image, same dimensionality")
    parser.add_argument("--transform", choices=sorted(AFFINE_PIPELINES), default="syn",
                        help="transform to estimate (%(default)s)")
    parser.add_argument("--preset", choices=sorted(SYN_PRESETS), default="fast",
                        help="SyN settings (%(default)s)")
    parser.add_argument("--threads", type=_int_list("--threads"), default=None, metavar="LIST",
                        help="thread counts, e.g. 1,2,4; 1 is always added (default: "
                             f"{','.join(map(str, default_threads()))}, powers of two up to the "
                             "usable CPUs and their number)")
    parser.add_argument("--factors", type=_int_list("--factors"), default=[4, 2, 1],
                        metavar="LIST",
                        help="shrink factors, one image size each; 1 is full size (4,2,1)")
    parser.add_argument("--repeats", type=positive_int, default=1, metavar="R",
                        help="timed registrations per size and thread count; the median is "
                             "reported (1)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (created if needed)")
    add_quiet_argument(parser)
    return parser


def _run(args, console) -> int:
    from .._hints import InputError
    from ..bench.scaling import registration_scaling, render_markdown
    from ._hints import scaling_error

    def progress(info) -> None:
        if console.quiet:
            return
        shape = " x ".join(map(str, info["shape"]))
        what = ("warm-up" if info["threads"] == "warm-up"
                else f"{info['threads']} thread(s), repeat {info['repeat'] + 1}")
        print(f"factor {info['factor']} ({shape}): {what}: {info['seconds']:.2f} s",
              file=sys.stderr, flush=True)

    # paths, not loaded images: the report names the files; the library checks them (missing,
    # unreadable, not 2D/3D, 2D vs 3D) before any work and before --out is created
    try:
        study = registration_scaling(
            args.fixed, args.moving, transform=args.transform, preset=args.preset,
            threads=args.threads, factors=args.factors, repeats=args.repeats, out=args.out,
            progress=progress)
    except InputError as exc:  # re-said with this command's options
        raise scaling_error(exc, factors=args.factors) from exc
    console.print(render_markdown(study).rstrip("\n"))
    if not study["identical"]:
        console.warn("warped images differ between thread counts; see scaling.json")
        return EXIT_NOT_IDENTICAL
    return EXIT_OK


def main(argv=None) -> int:
    """Run ``parareg scaling ...``; return the exit code (see the module notes)."""
    return run_command(_run, _get_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
