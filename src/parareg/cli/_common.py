"""What every ``parareg`` command shares: parsing, messages, errors, progress and outputs.

Contract of a command (see :func:`run_command`):

* bad input -- a missing or unreadable file, an image of the wrong
  dimensionality, an unknown option value, a transform that does not fit --
  ends the command with exit code 2 and **one** line ``parareg: error: ...``
  on stderr, never a traceback;
* anything else (a bug) is raised, with its traceback; set ``PARAREG_DEBUG=1`` to get
  the traceback of a bad-input error too;
* results go to stdout (silenced by ``-q``), progress and warnings to stderr;
* the library's progress comes as :mod:`logging` records (:mod:`parareg._log`);
  :func:`run_command` configures the ``"parareg"`` logger for the command's
  duration (:class:`parareg.cli._logging.LogHandler`): a progress display by default, nothing with
  ``-q``, every record as one line with ``-v``;
* output files are written as one set by :class:`parareg.io.OutputSet`: a
  failure, Ctrl-C or SIGTERM leaves the earlier outputs exactly as they were,
  and no output is ever one of the command's inputs
  (:func:`refuse_inputs_as_outputs`);
* SIGTERM is turned into an exception (:class:`Terminated`, exit 143) so that
  clean-up code runs, as it does for Ctrl-C (exit 130).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

PROG = "parareg"
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: set to 1 to see the traceback behind a "parareg: error:" line
ENV_DEBUG = "PARAREG_DEBUG"


class CLIError(Exception):
    """Bad input noticed by the command line itself: one error line, exit code 2."""


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that ``finally`` blocks run."""


def _raise_terminated(signum, frame):
    raise Terminated()


#: exceptions that mean "bad input" rather than "bug": the library raises ValueError (and
#: subclasses such as RegistrationError) for bad data, OSError for files, ImportError for a
#: missing optional dependency (with the pip command in its message)
INPUT_ERRORS = (CLIError, OSError, ValueError, ImportError)


# --- argument parsing ----------------------------------------------------------------------


class ArgumentParser(argparse.ArgumentParser):
    """An ``argparse`` parser whose usage errors become one line and exit code 2.

    ``argparse`` prints the usage block and then the message; here the message
    alone is raised as :class:`CLIError` so :func:`run_command` reports it
    like every other bad input. ``--help`` still exits 0 through
    ``SystemExit``.
    """

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


def make_parser(prog: str, *, description: str, epilog: str | None = None) -> ArgumentParser:
    """A parser for ``prog`` with examples kept as written (RawDescriptionHelpFormatter)."""
    return ArgumentParser(prog=prog, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def positive_int(text: str) -> int:
    """``argparse`` type: an integer of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """``argparse`` type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_threads_argument(parser) -> None:
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help="threads to use (default: $PARAREG_NUM_THREADS, else all cores); "
                             "results are bit-identical at any thread count")


def add_quiet_argument(parser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` (one or the other)."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing but warnings and errors (no progress, no summary)")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="print every log record of the library on stderr, one line each "
                            "(each iteration and each pyramid level's summary), instead of "
                            "the progress display")


# --- messages ------------------------------------------------------------------------------


class Console:
    """Where a command's text goes: results to stdout, progress, warnings and errors to stderr.

    Streams are looked up at each call (``sys.stdout`` may be replaced, e.g. by
    pytest's ``capsys``).
    """

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet

    def print(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=sys.stdout, flush=True)

    def warn(self, text: str) -> None:
        print(f"{PROG}: warning: {one_line(text)}", file=sys.stderr, flush=True)

    def error(self, text: str) -> None:
        print(f"{PROG}: error: {one_line(text)}", file=sys.stderr, flush=True)


def one_line(message) -> str:
    """``message`` (a string or an exception) on one line."""
    if isinstance(message, BaseException):
        text = str(message)
        if isinstance(message, OSError) and message.filename and message.strerror:
            text = f"{message.strerror}: {str(message.filename)!r}"
        message = text or type(message).__name__
    return " ".join(str(message).split())


@contextmanager
def warnings_to(console: Console):
    """Show Python warnings raised inside the block as ``parareg: warning: ...`` lines.

    The warning filters are left as they are (``-W`` options still apply).
    """
    with warnings.catch_warnings():
        def show(message, category, filename, lineno, file=None, line=None):
            console.warn(str(message))

        warnings.showwarning = show
        yield


def run_command(command, parser: argparse.ArgumentParser, argv) -> int:
    """Parse ``argv`` and run ``command(args, console)``, mapping bad input to exit code 2.

    Parameters
    ----------
    command : callable
        ``command(args, console) -> int``.
    parser : argparse.ArgumentParser
        Usually an :class:`ArgumentParser` (usage errors become :class:`CLIError`).
    argv : list of str or None
        ``None`` reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The command's exit code; 2 for bad input; 130 when interrupted (Ctrl-C);
        143 on SIGTERM.
    """
    console = Console()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    try:
        args = parser.parse_args(argv)
        console.quiet = bool(getattr(args, "quiet", False))
        verbose = bool(getattr(args, "verbose", False))
        from ._logging import logging_to

        with warnings_to(console), compile_notice(console, parser.prog, args), \
                logging_to(console, verbose=verbose):
            return command(args, console)
    except KeyboardInterrupt:
        console.error("interrupted")
        return EXIT_INTERRUPTED
    except Terminated:
        console.error("terminated")
        return EXIT_TERMINATED
    except INPUT_ERRORS as exc:
        if os.environ.get(ENV_DEBUG, "").strip() not in ("", "0"):
            raise
        console.error(exc)
        return EXIT_BAD_INPUT
    except MemoryError as exc:  # one line, not a traceback, for an allocation that failed
        if os.environ.get(ENV_DEBUG, "").strip() not in ("", "0"):
            raise
        console.error(f"out of memory ({exc or 'an allocation failed'}); free memory or ask "
                      f"for less work (see '{parser.prog} --help')")
        return EXIT_BAD_INPUT
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


#: the compile notice is printed at most once per process
_compile_noticed = threading.Event()


@contextmanager
def compile_notice(console: Console, prog: str, args):
    """Print one line when kernels start compiling (a cold numba cache), once per process.

    Only commands with a measured estimate
    (:func:`parareg.compilation.estimated_compile_seconds`) print it, on
    stderr; ``-q`` silences it like all progress. The library only detects
    the compilation (:class:`parareg.compilation.CompileWatch`); the text is
    written here.
    """
    from ..compilation import estimated_compile_seconds

    seconds = estimated_compile_seconds(prog, getattr(args, "transform", None))
    if seconds is None or console.quiet or _compile_noticed.is_set():
        yield
        return

    def notice():
        if not _compile_noticed.is_set():
            _compile_noticed.set()
            print(f"{PROG}: compiling kernels for this CPU, once: ~{seconds:.0f} s "
                  f"(run '{PROG} warmup' ahead of time to skip this)", file=sys.stderr,
                  flush=True)

    from ..compilation import CompileWatch

    with CompileWatch(on_first=notice):
        yield


# --- inputs and outputs --------------------------------------------------------------------


def load_image(path, *, name: str, labels: bool = False):
    """Read an image for the argument ``name``; errors name the argument.

    With ``labels=True`` integer-valued data keep their integer type (for
    nearest-neighbour resampling of label maps); other data load as float32.
    """
    from ..image import as_image

    if labels:
        from ..io.nifti import load_labels_or_intensities

        return load_labels_or_intensities(path, name=name)
    return as_image(Path(path), name=name)  # checks existence, readability and 2D/3D


def check_output_file(path, *, name: str) -> Path:
    """``path`` as a Path whose folder exists and is writable (checked before any work)."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise CLIError(f"{name}: the folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"{name}: the folder {str(folder)!r} is not writable")
    if path.is_dir():
        raise CLIError(f"{name}: {str(path)!r} is a directory, not a file name")
    return path


def require_module(module: str, *, purpose: str, extra: str) -> None:
    """Raise :class:`CLIError` naming the pip command when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise CLIError(f"{purpose} needs {module}, which is not installed: "
                       f"pip install 'parareg[{extra}]'")


def refuse_inputs_as_outputs(outputs, inputs) -> None:
    """Raise :class:`CLIError` when an output path is the same file as an input.

    Checked before any work, after resolving symlinks and hard links (the
    same device and inode). An output that does not exist yet cannot be an
    input.

    Parameters
    ----------
    outputs : iterable of path
        Every file the command may write or replace.
    inputs : mapping of str to path
        Argument name (e.g. ``"moving"``, ``"-t"``) -> file read.
    """
    seen = {}
    for name, path in inputs.items():
        try:
            st = os.stat(path)
        except OSError:
            continue
        seen[(st.st_dev, st.st_ino)] = (name, path)
    for path in outputs:
        try:
            st = os.stat(path)
        except OSError:
            continue
        hit = seen.get((st.st_dev, st.st_ino))
        if hit is not None:
            name, source = hit
            raise CLIError(f"--output: {str(path)!r} is the {name} file {str(source)!r} (the same "
                           "file); writing it would destroy an input: choose another output")


# --- numbers for summaries -----------------------------------------------------------------


def ncc(a, b, mask=None) -> float:
    """Normalised cross-correlation of two arrays (over ``mask`` if given); nan if constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a - a.mean()
    b = b - b.mean()
    denominator = np.sqrt(np.vdot(a, a) * np.vdot(b, b))
    return float(np.vdot(a, b) / denominator) if denominator > 0 else float("nan")


def describe_grid(image) -> str:
    """``"216 x 291 voxels of 1 x 1 mm"``."""
    shape = " x ".join(str(n) for n in image.shape)
    spacing = " x ".join(f"{s:.3g}" for s in image.spacing)
    return f"{shape} voxels of {spacing} mm"


# --- progress ------------------------------------------------------------------------------


class RegistrationProgress:
    """Progress of a registration on stderr, fed by the registration callbacks.

    On a terminal the current iteration is redrawn in place (at most every
    ``interval`` seconds); otherwise (a log file, a pipe) one line is written
    per finished pyramid level, so logs stay short.

    The dicts are those of the library's progress records (:mod:`parareg._log`),
    which carry ``levels``, ``max_iterations`` and ``metric``; without them
    (a registration callback's dict) the constructor's pyramids and names are used.

    Parameters
    ----------
    enabled : bool
        ``False`` (``-q``) makes every method a no-op.
    affine_levels : sequence of (factor, sigma, iterations), optional
        The affine pyramid, for "level i/n" and iteration limits.
    syn_levels : sequence of (factor, sigma, iterations), optional
    affine_metric, syn_metric : str
        Names shown next to the values.
    interval : float
        Seconds between terminal redraws.
    """

    def __init__(self, *, enabled: bool, affine_levels=(), syn_levels=(),
                 affine_metric: str = "", syn_metric: str = "", interval: float = 0.1):
        self.enabled = enabled
        self.affine_levels = tuple(affine_levels)
        self.syn_levels = tuple(syn_levels)
        self.affine_metric = affine_metric
        self.syn_metric = syn_metric
        self.interval = interval
        self._key = None
        self._text = ""
        self._drawn = 0.0
        self._width = 0

    # callbacks (the dicts documented in AffineRegistration and SymmetricDiffeomorphicRegistration)
    def affine(self, info: dict) -> None:
        if not self.enabled:
            return
        level = int(info.get("level", 0))
        n = info.get("levels", len(self.affine_levels))
        limit = info.get("max_iterations")
        if limit is None:
            limit = self.affine_levels[level][2] if level < len(self.affine_levels) else "?"
        text = (f"affine {info.get('stage', ''):<11} level {level + 1}/{n}  "
                f"iteration {info.get('iteration', 0):>3}/{limit}  "
                f"{info.get('metric', self.affine_metric)} "
                f"{float(info.get('value', np.nan)):.6g}")
        self._update(("affine", info.get("stage"), level), text)

    def syn(self, info: dict) -> None:
        if not self.enabled:
            return
        level = int(info.get("level", 0))
        n = info.get("levels", len(self.syn_levels))
        factor, _, limit = self.syn_levels[level] if level < len(self.syn_levels) else \
            ("?", None, "?")
        factor = info.get("factor", factor)
        limit = info.get("max_iterations", limit)
        text = (f"syn    shrink {factor:<4} level {level + 1}/{n}  "
                f"iteration {info.get('iteration', 0):>3}/{limit}  "
                f"{info.get('metric', self.syn_metric)} energy "
                f"{float(info.get('energy', np.nan)):.6g}")
        self._update(("syn", level), text)

    def close(self) -> None:
        """Finish the current line (call once the registration returns or fails)."""
        if self._key is not None:
            self._finish()
        self._key = None

    # drawing
    @staticmethod
    def _tty() -> bool:
        isatty = getattr(sys.stderr, "isatty", None)
        return bool(isatty and isatty())

    def _update(self, key, text: str) -> None:
        if key != self._key and self._key is not None:
            self._finish()
        self._key, self._text = key, text
        now = time.perf_counter()
        if self._tty() and now - self._drawn >= self.interval:
            self._draw(end="")
            self._drawn = now

    def _draw(self, *, end: str) -> None:
        pad = " " * max(0, self._width - len(self._text))
        sys.stderr.write(f"\r{self._text}{pad}{end}")
        sys.stderr.flush()
        self._width = len(self._text)

    def _finish(self) -> None:
        if self._tty():
            self._draw(end="\n")
            self._width = 0
        else:
            sys.stderr.write(self._text + "\n")
            sys.stderr.flush()
