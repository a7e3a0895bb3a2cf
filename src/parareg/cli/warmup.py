"""``parareg warmup``: compile every kernel ahead of time, for images and cluster nodes."""

from __future__ import annotations

from ._common import add_quiet_argument, make_parser, positive_int, run_command

DESCRIPTION = """\
Compile every kernel a registration or `parareg apply` can use (2D and 3D,
every metric and transform model, linear and nearest interpolation, label
maps, field inversion/composition/Jacobian) and cache it on disk, so that
later runs on this machine start at full speed instead of compiling first
(about 10 s for a 3D SyN registration on a 2-core machine)."""

EPILOG = """\
the cache (numba's; kept across runs and shared by processes):
  $NUMBA_CACHE_DIR when set; otherwise parareg/kernels/__pycache__ when the
  package folder is writable, else ~/.cache/numba, else a private
  $TMPDIR/numba-cache-<uid> (lost on reboot). Compiled code is valid
  for this CPU model and these numba/parareg versions only. For a read-only
  install (container image, shared software tree) set NUMBA_CACHE_DIR to a
  writable folder, or run warmup at build time with NUMBA_CACHE_DIR pointing
  at a folder that ships with the image.

examples:
  parareg warmup                                  # all cores
  NUMBA_CACHE_DIR=/opt/parareg-cache parareg warmup --jobs 4
  # Dockerfile:  ENV NUMBA_CACHE_DIR=/opt/parareg-cache
  #              RUN parareg warmup

exit status: 0 on success, 2 on bad input (e.g. an unwritable cache)."""


def _get_parser():
    parser = make_parser("parareg warmup", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--jobs", "-j", type=positive_int, default=None, metavar="N",
                        help="compile in N worker processes (default: the number of cores)")
    parser.add_argument("--dims", type=int, nargs="+", choices=(2, 3), default=[2, 3],
                        metavar="D", help="image dimensionalities to compile for "
                                          "(default: 2 3)")
    add_quiet_argument(parser)
    return parser


def main(argv=None) -> int:
    """Run ``parareg warmup``; return the exit code (0, or 2 for bad input)."""
    return run_command(_run, _get_parser(), argv)


def _run(args, console) -> int:
    from ..compilation import check_cache_writable, default_jobs, warmup

    cache = check_cache_writable()  # before any worker starts, with the fix in the message
    jobs = args.jobs or default_jobs()
    console.print(f"parareg warmup: compiling kernels for {' and '.join(map(str, args.dims))}D "
                  f"images in {jobs} process{'es' * (jobs != 1)}; cache: {cache}")

    def done(name, records):
        kernels = [r for r in records if r.depth == 0]
        seconds = sum(r.seconds for r in kernels)
        console.print(f"  {name:<12} {len(kernels):3d} kernels, {len(records):3d} functions "
                      f"compiled in {seconds:5.1f} s")

    report = warmup(jobs=jobs, ndims=args.dims, callback=done)
    kernels = [r for r in report.compilations if r.depth == 0]
    seconds = sum(r.seconds for r in kernels)
    if kernels:
        console.print(f"compiled {len(kernels)} kernel specialisations "
                      f"({len(report.compilations)} functions, {seconds:.1f} s of compiling) "
                      f"in {report.seconds:.1f} s")
    else:
        console.print(f"nothing to compile: every kernel was already cached "
                      f"({report.seconds:.1f} s)")
    console.print(f"cache: {report.cache}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
