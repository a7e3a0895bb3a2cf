"""``parareg bench``: run (or resume) a registration benchmark study on Dask.

Examples::

    parareg bench --images 'data/images/*.nii.gz' --labels 'data/labels/*.nii.gz' \\
        --methods parareg:syn,greedy,ants --pairs 20 --seed 1 --prealign rigid --out study
    parareg bench ... --scheduler tcp://10.0.0.5:8786 --timeout 1800   # an existing cluster
    parareg bench --report-only --out study                            # redraw the report
    parareg bench --list-methods

Rerunning the same command resumes: finished (pair, method) rows in
``study/results.csv`` are kept and skipped. Exit status: 0 when every task
succeeded, 1 when some were recorded as failed, 2 on bad input (nothing run),
130 when interrupted (rerun to resume).
"""

from __future__ import annotations

import sys
import time

from ._common import (EXIT_OK, add_quiet_argument, make_parser, positive_float, positive_int,
                      run_command)

#: exit status when the study ran but some tasks were recorded as failed
EXIT_SOME_FAILED = 1


def _get_parser():
    parser = make_parser("parareg bench", description=__doc__.split("\n\n")[0].replace("``", ""),
                         epilog=__doc__.split("\n\n", 1)[1])
    data = parser.add_argument_group("data")
    data.add_argument("--images", metavar="GLOB",
                      help="images, a glob pattern (quote it); paired with --labels by "
                           "subject ID, the file name up to its first '_'")
    data.add_argument("--labels", metavar="GLOB", help="label maps, a glob pattern")
    data.add_argument("--pairs-csv", metavar="FILE",
                      help="CSV of pairs (fixed_image, fixed_labels, moving_image, moving_labels) "
                           "instead of --images/--labels")
    data.add_argument("--pairs", type=positive_int, metavar="N",
                      help="a seeded sample of N pairs (default: all pairs)")
    data.add_argument("--pair-mode", choices=("ordered", "unordered"), default="ordered",
                      help="every (fixed, moving) order, or each pair once (%(default)s)")
    data.add_argument("--seed", type=int, default=0,
                      help="seed of the pair sample, the prealignment and the methods "
                           "(%(default)s)")
    study = parser.add_argument_group("study")
    study.add_argument("--methods", default="parareg:syn", metavar="LIST",
                       help="comma-separated method names (%(default)s); see --list-methods")
    study.add_argument("--prealign", choices=("rigid", "none"), default="none",
                       help="rigid prealignment shared by all methods (%(default)s)")
    study.add_argument("--out", metavar="DIR", help="study folder (rerun to resume)")
    study.add_argument("--timeout", type=positive_float, metavar="SECONDS",
                       help="kill a task after this long and record it as timed out")
    study.add_argument("--retry-failed", action="store_true",
                       help="on resume, rerun the tasks recorded as failed")
    study.add_argument("--no-qc", action="store_true", help="no QC picture per registration")
    study.add_argument("--no-report", action="store_true", help="no report at the end")
    study.add_argument("--report-only", action="store_true",
                       help="only (re)write the report of the study in --out")
    study.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                       help="import MODULE first (it may call parareg.bench.register_method); "
                            "repeatable")
    study.add_argument("--list-methods", action="store_true",
                       help="list the registered methods and whether they are installed")
    add_quiet_argument(parser)
    dask = parser.add_argument_group("execution (Dask)")
    dask.add_argument("--workers", type=positive_int, default=1,
                      help="worker processes of the local cluster (%(default)s)")
    dask.add_argument("--threads-per-worker", type=positive_int, default=1,
                      help="tasks run at once per worker (%(default)s)")
    dask.add_argument("--task-threads", type=positive_int, metavar="N",
                      help="threads per registration (default: usable CPUs / tasks at once; "
                           "1 with --scheduler)")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="use the Dask cluster at ADDRESS instead of a local one")
    return parser


def _list_methods() -> str:
    from ..bench import METHODS
    from ..bench.methods import ALIASES

    lines = []
    for name in sorted(METHODS):
        method = METHODS[name]
        state = "installed" if method.installed else f"needs {', '.join(method.requires)}"
        lines.append(f"{name:22s} {state:22s} {method.description}")
    lines += [f"{alias:22s} alias of {target}" for alias, target in sorted(ALIASES.items())]
    return "\n".join(lines)


class _ProgressLine:
    """A one-line text progress bar on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream=None, width=24):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, p) -> None:
        filled = int(self.width * p.done / max(p.total, 1))
        eta = p.elapsed / p.done * (p.total - p.done) if p.done else 0.0
        row = p.row or {}
        last = (f"{row.get('method')} {row.get('moving')}->{row.get('fixed')} "
                f"{row.get('status')}")
        if row.get("status") == "ok" and row.get("seconds") is not None:
            last += f" {row['seconds']:.1f} s Dice {row.get('dice_mean', float('nan')):.3f}"
        text = (f"[{'#' * filled}{'.' * (self.width - filled)}] {p.done}/{p.total}"
                f"  failed {p.failed}  skipped {p.skipped}  {_clock(p.elapsed)} elapsed"
                f"  eta {_clock(eta)}  last: {last}")
        if self.tty:
            self.stream.write("\r" + text[:160].ljust(160))
            if p.done == p.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _run(args, console) -> int:
    import importlib

    from ._common import CLIError

    for module in args.plugin:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise CLIError(f"--plugin {module!r} cannot be imported: {exc}") from exc
    if args.list_methods:
        console.print(_list_methods())
        return EXIT_OK
    if not args.out:
        raise CLIError("--out DIR is required (see 'parareg bench --help')")
    from .. import bench

    if args.pairs_csv is not None and (args.images is not None or args.labels is not None):
        raise CLIError("give either --images and --labels, or --pairs-csv, not both")
    if args.pairs_csv is None and not args.report_only:
        if args.images is None:
            raise CLIError("give --images GLOB and --labels GLOB, or --pairs-csv FILE")
        if args.labels is None:
            raise CLIError("--images needs --labels GLOB (a label map per image), or give "
                           "--pairs-csv FILE instead")
    if args.report_only:
        console.print(str(bench.write_report(args.out)))
        return EXIT_OK
    t0 = time.perf_counter()
    try:
        result = bench.run(
            args.images, args.labels, out=args.out, methods=args.methods,
            pairs_csv=args.pairs_csv, pair_mode=args.pair_mode, n_pairs=args.pairs,
            seed=args.seed, prealign=None if args.prealign == "none" else args.prealign,
            workers=args.workers, threads_per_worker=args.threads_per_worker,
            task_threads=args.task_threads, scheduler=args.scheduler, timeout=args.timeout,
            retry_failed=args.retry_failed, qc=not args.no_qc, report=not args.no_report,
            progress=None if args.quiet else _ProgressLine())
    except KeyboardInterrupt:
        console.warn(f"finished rows are in {args.out}/results.csv; rerun the same command "
                     "to resume")
        raise
    console.print(f"{result.computed} task(s) run, {result.skipped} already done, "
                  f"{result.failed} failed, in {time.perf_counter() - t0:.1f} s")
    console.print(f"results: {result.out / 'results.csv'}")
    if result.report is not None:
        console.print(f"report:  {result.report}")
    return EXIT_SOME_FAILED if result.failed else EXIT_OK


def main(argv=None) -> int:
    """Run ``parareg bench ...``; return the exit code (see the module notes)."""
    return run_command(_run, _get_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
