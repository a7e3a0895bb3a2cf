"""``parareg template``: build an unbiased population template on Dask (resumable)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._common import (
    CLIError,
    add_quiet_argument,
    make_parser,
    positive_int,
    run_command,
)

DESCRIPTION = """\
Build an unbiased template of IMAGE... (Avants et al. 2010, as ANTs'
antsMultivariateTemplateConstruction2.sh and ANTsPy's build_template): each
iteration registers every image to the current template on a Dask cluster,
averages the warped images and moves the average by the mean inverse warp.
Coarse to fine: the iterations before the last run only the coarsest SyN
level(s) (--early-levels), the last one the whole pyramid. The template is
bit-identical at any --workers."""

EPILOG = """\
outputs in DIR:
  template.nii.gz             the final template (template_NAME.nii.gz: of the
                              contrast NAME of --channel)
  template_iterK.nii.gz       the template after iteration K (0: the initial one,
                              the affinely aligned mean of the images)
  qc_iterK.png                that template next to the images warped to the
                              previous one (needs matplotlib)
  report.png                  sharpness, mean warp and seconds per iteration
  iterK/NAME/                 iteration K's registration of image NAME: the ANTs
                              transforms 0GenericAffine.mat, 1Warp.nii.gz,
                              1InverseWarp.nii.gz, Warped.nii.gz, record.json
  template.json               settings, mean warp and sharpness per iteration

Rerun the same command to resume: finished registrations are kept (a killed
run loses only those in flight); a larger --iterations continues a finished
build made with --early-levels all. A registration that fails is recorded in
its record.json and left out of that iteration's average, with a warning.

examples:
  parareg template sub-*_T1w.nii.gz -o template/ --iterations 4 --workers 4
  parareg template sub-*_T1w.nii.gz -o template/ --scheduler tcp://10.0.0.5:8786
  parareg template sub-*_T1w.nii.gz --channel t2 sub-*_T2w.nii.gz -o template/

exit status: 0 on success, 1 when too few registrations of an iteration
succeeded, 2 on bad input (one "parareg: error:" line), 130 when interrupted."""


#: exit status when too few registrations of an iteration succeeded
EXIT_FAILED = 1


def _levels(text: str) -> int | None:
    """``--early-levels``: a positive integer, or ``all`` (None)."""
    if text.strip().lower() == "all":
        return None
    return positive_int(text)


def _get_parser():
    from ..population.template import EARLY_LEVELS

    parser = make_parser("parareg template", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("images", nargs="*", metavar="IMAGE",
                        help="two or more NIfTI images, all 2D or all 3D, one contrast")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (rerun to resume)")
    parser.add_argument("--iterations", "-i", type=positive_int, default=4,
                        help="template updates after the initial template (default: 4)")
    parser.add_argument("--transform", "-t", type=str.lower, choices=("rigid", "affine", "syn"),
                        default="syn", help="registration to the template (default: syn)")
    parser.add_argument("--preset", "-p", type=str.lower, choices=("fast", "default", "accurate"),
                        default="default",
                        help="SyN pyramid and iterations of the last iteration (default: "
                             "default)")
    parser.add_argument("--early-levels", type=_levels, default=EARLY_LEVELS, metavar="N|all",
                        help="SyN pyramid levels (from the coarsest) of the iterations before "
                             "the last; all: every level, as the last iteration (default: "
                             f"{EARLY_LEVELS}, a quarter of the resolution)")
    parser.add_argument("--gradient-step", "-g", type=float, default=0.2,
                        help="fraction of the mean inverse warp applied per iteration, in "
                             "(0, 1] (default: 0.2, as ANTsPy)")
    parser.add_argument("--no-sharpen", action="store_true",
                        help="no Laplacian sharpening of the template")
    parser.add_argument("--channel", nargs="+", action="append", metavar="NAME IMAGE",
                        help="another contrast: its name, then one image per subject in the "
                             "order of IMAGE..., each on its subject's grid (repeat for more; "
                             "writes template_NAME.nii.gz)")
    parser.add_argument("--initial", metavar="IMAGE",
                        help="start from this template (default: the affinely aligned mean)")
    parser.add_argument("--no-qc", action="store_true", help="no qc_iterK.png and report.png pictures")
    dask = parser.add_argument_group("execution (Dask)")
    dask.add_argument("--workers", "-j", type=positive_int, default=None,
                      help="worker processes of the local cluster (default: one per image, "
                           "at most the CPUs)")
    dask.add_argument("--task-threads", type=positive_int, metavar="N",
                      help="threads per registration (default: CPUs / workers; 1 with "
                           "--scheduler)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="use the Dask cluster at ADDRESS (paths must be shared with it)")
    add_quiet_argument(parser)
    return parser


def main(argv=None) -> int:
    """Run ``parareg template``; return the exit code (0, or 2 for bad input)."""
    return run_command(_run, _get_parser(), argv)


def _bar(done: int, total: int, width: int = 20) -> str:
    """``[#####...............]``: ``done`` of ``total``."""
    filled = int(width * done / max(total, 1))
    return f"[{'#' * filled}{'.' * (width - filled)}]"


class _Progress:
    """Lines on stderr: one per iteration start and end (with the build's progress bar), one
    per finished registration (with the iteration's bar)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, p) -> None:
        what = "initial template" if p.iteration == 0 else f"iteration {p.iteration}/" \
                                                           f"{p.iterations}"
        if p.stage == "registering":
            self._line(f"{what}: {p.jobs} registration{'s' * (p.jobs != 1)}")
        elif p.stage == "registered":
            r = p.registration
            row = r.row or {}
            status = row.get("status")
            seconds = (row.get("seconds") or {}).get("total")
            detail = f"{seconds:.1f} s" if status == "ok" and seconds is not None else \
                f"FAILED: {row.get('error')}"
            done, total = r.done + r.skipped, r.total + r.skipped
            self._line(f"  {_bar(done, total)} {done}/{total} {row.get('name')} {detail} "
                       f"({r.failed} failed, {r.elapsed:.0f} s)")
        elif p.stage == "updated":
            warp = "" if p.mean_warp_mm is None else f", mean warp {p.mean_warp_mm:.3f} mm"
            sharp = "" if p.sharpness is None else f", sharpness {p.sharpness:.3f}"
            took = "" if p.seconds is None else f"{p.seconds:.0f} s, "
            self._line(f"{what}: {p.template}{warp}{sharp} ({took}"
                       f"{time.perf_counter() - self.t0:.0f} s in all) "
                       f"{_bar(p.iteration, p.iterations)}")


def _run(args, console) -> int:
    from ..population import template

    if args.output is None:
        raise CLIError("-o/--output DIR is required (see 'parareg template --help')")
    if len(args.images) < 2:
        raise CLIError(f"a template needs at least 2 images, got {len(args.images)} (see "
                       "'parareg template --help')")
    if not 0 < args.gradient_step <= 1:
        raise CLIError(f"--gradient-step must be in (0, 1], got {args.gradient_step:g}")
    channels = {}
    for name, *images in args.channel or ():
        if name in channels:
            raise CLIError(f"--channel {name} is given twice")
        if len(images) != len(args.images):
            raise CLIError(f"--channel {name}: give one image per subject, got {len(images)} "
                           f"for {len(args.images)} images")
        channels[name] = images
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--output: {str(out)!r} exists and is not a folder")
    console.print(f"parareg template: {len(args.images)} images, {args.iterations} "
                  f"iteration{'s' * (args.iterations != 1)} of {args.transform}"
                  + (f" (preset {args.preset})" if args.transform == "syn" else "")
                  + f", gradient step {args.gradient_step:g}")
    t0 = time.perf_counter()
    try:
        result = template.build(
            args.images, out=out, initial=args.initial, iterations=args.iterations,
            transform=args.transform, preset=args.preset,
            early_levels=args.early_levels, channels=channels or None,
            gradient_step=args.gradient_step,
            blending_weight=None if args.no_sharpen else 0.75, scheduler=args.scheduler,
            workers=args.workers, task_threads=args.task_threads, qc=not args.no_qc,
            progress=None if console.quiet else _Progress())
    except KeyboardInterrupt:
        console.warn(f"finished registrations are kept in {out}; rerun the same command to "
                     "resume")
        raise
    except template.TemplateError as exc:
        console.error(exc)
        return EXIT_FAILED
    console.print(f"template: {result.path} ({time.perf_counter() - t0:.1f} s"
                  + (f"; left out after failing: {', '.join(result.failed)}"
                     if result.failed else "") + ")")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
