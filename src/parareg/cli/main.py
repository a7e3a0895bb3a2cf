"""``parareg``: the top-level command, dispatching to ``register``, ``apply`` and ``demo``."""

from __future__ import annotations

import argparse
import atexit
import importlib
import importlib.util
import os
import sys
import threading

from ._common import CLIError, Console, EXIT_BAD_INPUT, make_parser

#: sub-command -> (module under parareg.cli, one-line help); each module has main(argv) -> int
_ALL_COMMANDS = {
    "register": ("register", "register MOVING to FIXED; write ANTs-style transforms"),
    "apply": ("apply", "resample an image through ITK/ANTs transform files"),
    "demo": ("demo", "register a synthetic deformation of the MNI152 template"),
    "bench": ("bench", "run or resume a benchmark study (image pairs x methods)"),
    "scaling": ("scaling", "time one registration at 1..N threads and several image sizes"),
    "warmup": ("warmup", "compile every kernel ahead of time (container images, clusters)"),
    "template": ("template", "build an unbiased population template on Dask (resumable)"),
    "segment": ("segment", "segment an image from labelled atlases: register each, fuse labels"),
}
#: set to 1 to exit the ordinary way (interpreter teardown) instead of :func:`exit_now`
ENV_FULL_EXIT = "PARAREG_FULL_EXIT"
#: the commands whose module is present in this installation
COMMANDS = {name: entry for name, entry in _ALL_COMMANDS.items()
            if importlib.util.find_spec(f"{__package__}.{entry[0]}") is not None}

DESCRIPTION = """\
parareg: fast, multi-threaded, bit-reproducible image registration.
Results are identical at any thread count; transforms are ITK/ANTs files."""

EPILOG = """\
commands:
""" + "\n".join(f"  {name:<10}{text}" for name, (_, text) in COMMANDS.items()) + """

examples:
  parareg demo                                   # a 1-minute tour, offline
  parareg register fixed.nii.gz moving.nii.gz -o out_ --qc
  parareg apply -i moving.nii.gz -r fixed.nii.gz -o warped.nii.gz \\
      -t out_1Warp.nii.gz out_0GenericAffine.mat

Run "parareg COMMAND --help" for a command's options."""


def _version() -> str:
    from .. import __version__

    return __version__


def _get_parser():
    parser = make_parser("parareg", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"parareg {_version()}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND",
                        help="one of: " + ", ".join(COMMANDS))
    parser.add_argument("args", nargs=argparse.REMAINDER,
                        help="the command's arguments (see parareg COMMAND --help)")
    return parser


def main(argv=None) -> int:
    """Run ``parareg COMMAND ...``; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        module = importlib.import_module(f"{__package__}.{COMMANDS[argv[0]][0]}")
        return module.main(argv[1:])
    try:
        _get_parser().parse_args(argv)  # --help, --version, or an error
    except CLIError as exc:
        Console().error(exc)
        return EXIT_BAD_INPUT
    # parse_args only returns here for a known command, which was dispatched above
    return EXIT_BAD_INPUT  # pragma: no cover


def run() -> None:
    """The ``parareg`` program: :func:`main`, then :func:`exit_now` with its exit code."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process with ``code`` as Python would, without tearing the interpreter down.

    Python's own shutdown is kept: other threads are joined (idle thread pools
    stopped), ``atexit`` handlers run, stdout and stderr are flushed. What is
    skipped is the teardown after it -- freeing every module and object, numba's
    type system and JIT-loaded kernels among them -- which costs ~0.3-0.5 s
    after a registration and changes nothing the command wrote (its files are
    complete and ``fsync``\\ ed when it returns). Set ``PARAREG_FULL_EXIT=1`` to
    exit the ordinary way (``sys.exit``).
    """
    if os.environ.get(ENV_FULL_EXIT, "").strip() not in ("", "0"):
        sys.exit(code)
    shutdown = getattr(threading, "_shutdown", None)  # what Py_Finalize calls first
    if shutdown is None or threading.current_thread() is not threading.main_thread():
        sys.exit(code)  # pragma: no cover - not CPython, or not the main thread
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or gone (e.g. a closed pipe)
            code = code or 120  # what Python returns when the final flush fails
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
