"""Compiling parareg's numba kernels: where the cache is, what compiles, ahead of time.

parareg's kernels are compiled by numba for the CPU they run on the first time
they are called, and cached on disk (``@njit(cache=True)``), so only the first
run on a machine pays for it (about 10 s for a 3D SyN registration on a
2-core machine). This module

* says where that cache is (:func:`cache_location`) and checks it is writable
  (:func:`check_cache_writable`);
* watches compilations as they happen (:class:`CompileWatch`), which is how
  ``parareg register`` knows to print its one-line notice;
* compiles everything ahead of time (:func:`warmup`, ``parareg warmup``), for
  container images and cluster nodes;
* on a cold cache, compiles the kernels a command needs later in a helper
  process, beside the ones it needs first (:func:`compile_ahead`);
* and, through ``import parareg`` (:mod:`parareg._numba_cache`), makes the
  cache safe for processes compiling at once and usable from a read-only
  install.

The cache location is numba's: ``$NUMBA_CACHE_DIR`` when set, else the
``__pycache__`` folder next to the kernels when it is writable, else numba's
user-wide cache (``~/.cache/numba``), else (read-only package and home) a
private folder ``$TMPDIR/numba-cache-<uid>``. Set ``NUMBA_CACHE_DIR`` for a
read-only install, so the cache lasts.

Importing this module imports neither numba nor the kernels.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


#: the environment variable numba reads for its cache folder
ENV_CACHE_DIR = "NUMBA_CACHE_DIR"
#: the subpackages holding parareg's numba kernels (searched for dispatchers)
_KERNEL_PACKAGES = ("parareg.kernels", "parareg.metrics")


# --- where the cache is -----------------------------------------------------------------------


def kernel_dispatchers() -> list:
    """Every numba dispatcher (``@njit`` function) defined in parareg's kernel packages.

    Found by importing the modules of :data:`_KERNEL_PACKAGES` and keeping
    their numba dispatchers, so the list follows the kernels as they are
    renamed, merged or split.
    """
    from numba.core.dispatcher import Dispatcher

    found = {}
    for package_name in _KERNEL_PACKAGES:
        package = importlib.import_module(package_name)
        names = [package_name] + [f"{package_name}.{m.name}"
                                  for m in pkgutil.iter_modules(package.__path__)]
        for name in names:
            module = importlib.import_module(name)
            for value in vars(module).values():
                if isinstance(value, Dispatcher) and value.py_func.__module__ == name:
                    found[id(value)] = value
    return list(found.values())


def cache_location() -> Path:
    """The folder numba caches parareg's compiled kernels in, as numba itself chose it.

    Returns
    -------
    Path
        ``$NUMBA_CACHE_DIR`` (when set) or the folder numba picked for the
        kernel sources (``parareg/kernels/__pycache__`` if writable, else a
        folder under numba's user-wide cache, else under
        ``$TMPDIR/numba-cache-<uid>``). Subfolders per source folder may sit
        below ``$NUMBA_CACHE_DIR``.
    """
    from numba.core import config

    if config.CACHE_DIR:
        return Path(config.CACHE_DIR)
    dispatchers = kernel_dispatchers()
    if not dispatchers:  # pragma: no cover - the kernels always define some
        raise RuntimeError("no numba kernels found in parareg")
    cache = getattr(dispatchers[0], "_cache", None)
    path = getattr(cache, "cache_path", None)
    if path is None:  # pragma: no cover - kernels are compiled with cache=True
        raise RuntimeError("parareg's kernels are not cached on disk")
    return Path(path)


def check_cache_writable(path: str | os.PathLike | None = None) -> Path:
    """Raise ``OSError`` naming ``NUMBA_CACHE_DIR`` unless the kernel cache can be written.

    Parameters
    ----------
    path : path-like, optional
        The folder to check; default :func:`cache_location`.

    Returns
    -------
    Path
        The folder checked (created if missing).
    """
    explicit = os.environ.get(ENV_CACHE_DIR, "")
    if path is None:
        path = Path(explicit) if explicit else cache_location()
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
        if not os.access(path, os.W_OK):  # e.g. a read-only mount seen by root
            raise PermissionError("not writable")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = (f"{ENV_CACHE_DIR}={str(path)!r}" if explicit and Path(explicit) == path
                 else f"the numba kernel cache {str(path)!r}")
        raise OSError(
            f"{where} is not writable ({reason}); set {ENV_CACHE_DIR} to a writable "
            f"folder, e.g. 'export {ENV_CACHE_DIR}=$HOME/.cache/parareg-numba'") from None
    return path


#: compile seconds a cold run (empty cache) spends, by command and --transform: the
#: "~N s" of the compile notice: cold minus warm wall time of the command on the IXI 2 mm
#: pair, 2 threads, on the 2-core reference machine (benchmarks/coldstart.py measures the
#: register ones: 14.0 s cold - 5.1 s warm for syn on 2026-12-01, after the kernel layer
#: became one design); re-measure when the kernels change.
COLD_COMPILE_SECONDS = {
    ("parareg register", "syn"): 9.0,
    ("parareg register", "affine"): 4.0,
    ("parareg register", "rigid"): 4.0,
    ("parareg apply", None): 1.0,
    ("parareg demo", None): 9.0,
    ("parareg scaling", "syn"): 9.0,
    ("parareg scaling", "affine"): 4.0,
    ("parareg scaling", "rigid"): 4.0,
}


def estimated_compile_seconds(command: str, transform: str | None = None) -> float | None:
    """Seconds ``command`` (e.g. ``"parareg register"``) compiles on a cold cache, or ``None``.

    From :data:`COLD_COMPILE_SECONDS`; ``transform`` is the ``--transform``
    value where the command has one (other values are ignored).
    """
    key = (command, transform if isinstance(transform, str) else None)
    return COLD_COMPILE_SECONDS.get(key, COLD_COMPILE_SECONDS.get((command, None)))


# --- watching compilations --------------------------------------------------------------------


@dataclass(frozen=True)
class Compilation:
    """One numba compilation (a cache miss) of a parareg function.

    Attributes
    ----------
    name : str
        ``module.qualname`` of the compiled function.
    signature : str
        The argument types it was compiled for.
    seconds : float
        Wall time, including the functions it called that compiled with it.
    exclusive : float
        ``seconds`` less those nested compilations.
    depth : int
        0 for a kernel called from Python, 1 or more for a function compiled
        because a kernel calls it.
    """

    name: str
    signature: str
    seconds: float
    exclusive: float
    depth: int


class CompileWatch:
    """Record the compilations of parareg's numba functions inside a ``with`` block.

    numba reports a compilation only on a cache miss (a cache hit loads the
    machine code without compiling), so an empty :attr:`records` after a
    run means everything came from the cache.

    Parameters
    ----------
    on_first : callable, optional
        Called with no argument just before the first parareg function
        compiles inside the block (from the thread that compiles it).
    prefix : str
        Only functions whose module starts with ``prefix`` are recorded.

    Examples
    --------
    >>> import numpy as np, parareg
    >>> with CompileWatch() as watch:
    ...     _ = parareg.gradient(parareg.Image(np.zeros((4, 4)), np.eye(3)))
    >>> all(r.name.startswith("parareg.") for r in watch.records)
    True
    """

    def __init__(self, *, on_first=None, prefix: str = "parareg."):
        self.on_first = on_first
        self.prefix = prefix
        self.records: list[Compilation] = []
        self._stack: list = []
        self._lock = threading.Lock()
        self._listener = None

    @property
    def kernels(self) -> list[Compilation]:
        """The compilations of functions called from Python (depth 0), slowest first."""
        return sorted((r for r in self.records if r.depth == 0), key=lambda r: -r.seconds)

    @property
    def seconds(self) -> float:
        """Total compile wall time of parareg functions in the block."""
        return sum(r.seconds for r in self.records if r.depth == 0)

    def __enter__(self) -> "CompileWatch":
        from numba.core import event

        watch = self

        class _Listener(event.Listener):
            def on_start(self, ev):
                watch._start(ev)

            def on_end(self, ev):
                watch._end(ev)

        self._listener = _Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc) -> bool:
        from numba.core import event

        event.unregister("numba:compile", self._listener)
        self._listener = None
        return False

    def _name(self, ev) -> str | None:
        dispatcher = (ev.data or {}).get("dispatcher")
        func = getattr(dispatcher, "py_func", None)
        if func is None:
            return None
        return f"{func.__module__}.{func.__qualname__}"

    # numba compiles under one global lock, so starts and ends nest like a stack
    def _start(self, ev) -> None:
        name = self._name(ev)
        with self._lock:
            self._stack.append([name, time.perf_counter(), 0.0])
            on_first = self.on_first if name and name.startswith(self.prefix) else None
            if on_first is not None:
                self.on_first = None
        if on_first is not None:
            on_first()

    def _end(self, ev) -> None:
        with self._lock:
            if not self._stack:  # pragma: no cover - started before the block
                return
            name, start, nested = self._stack.pop()
            seconds = time.perf_counter() - start
            if self._stack:
                self._stack[-1][2] += seconds
            if name is not None and name.startswith(self.prefix):
                signature = str((ev.data or {}).get("args", ""))
                self.records.append(Compilation(name, signature, seconds, seconds - nested,
                                                len(self._stack)))


# --- ahead of time ----------------------------------------------------------------------------


@dataclass
class WarmupReport:
    """What :func:`warmup` did.

    Attributes
    ----------
    cache : Path
        Where the compiled kernels are.
    jobs : dict
        Job name -> list of :class:`Compilation` in that job's process.
    seconds : float
        Wall time of the whole warmup.
    processes : int
        Worker processes used.
    """

    cache: Path
    jobs: dict = field(default_factory=dict)
    seconds: float = 0.0
    processes: int = 1

    @property
    def compilations(self) -> list[Compilation]:
        """Every compilation, all jobs together."""
        return [c for records in self.jobs.values() for c in records]


def default_jobs() -> int:
    """Worker processes of :func:`warmup` by default: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _check_jobs(jobs) -> int:
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    return jobs


def warmup(*, jobs: int | None = None, ndims: Sequence[int] = (2, 3),
           callback: Callable[[str, list], None] | None = None) -> WarmupReport:
    """Compile every kernel a registration or ``apply`` can use, and cache them on disk.

    Runs tiny synthetic registrations and resamplings through the public API
    and the command line code (every transform model, every affine and SyN
    metric, linear and nearest interpolation, label maps, field inversion,
    composition and Jacobian), in ``jobs`` worker processes. Later processes
    on this machine then load the kernels from the cache instead of compiling
    them. Meant for building container images and cluster nodes.

    Parameters
    ----------
    jobs : int, optional
        Worker processes; default :func:`default_jobs`. Jobs that depend on
        kernels compiled by others run after them.
    ndims : sequence of {2, 3}
        Image dimensionalities to compile for.
    callback : callable, optional
        ``callback(name, records)`` after each job, in the calling process.

    Returns
    -------
    WarmupReport

    Raises
    ------
    OSError
        When the cache location is not writable (the message names
        ``NUMBA_CACHE_DIR``).
    """
    from . import _warmup_jobs

    jobs = default_jobs() if jobs is None else _check_jobs(jobs)
    ndims = tuple(ndims)
    if not ndims or any(n not in (2, 3) for n in ndims):
        raise ValueError(f"ndims must hold 2 and/or 3, got {ndims!r}")
    start = time.perf_counter()
    report = WarmupReport(cache=check_cache_writable(), processes=jobs)
    waves = _warmup_jobs.waves(ndims)
    for wave in waves:
        for name, records in _run_wave(wave, jobs):
            report.jobs[name] = records
            if callback is not None:
                callback(name, records)
    report.seconds = time.perf_counter() - start
    return report


def _child_env() -> dict:
    """This process's environment, with this very parareg first on the path of a child."""
    here = str(Path(__file__).resolve().parents[1])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [here] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))


def _run_wave(names, jobs):
    """Run the warmup jobs ``names``, at most ``jobs`` at once; yield results as they finish.

    ``jobs == 1`` runs them in this process. Otherwise each job is a fresh
    ``python -m parareg._warmup_jobs NAME OUT`` process (a plain subprocess,
    not a multiprocessing pool, so an interrupt or a failed job terminates
    the others at once instead of waiting for them).
    """
    from . import _warmup_jobs

    if jobs == 1:
        for name in names:
            yield name, _warmup_jobs.run_job(name)
        return
    import json
    import subprocess
    import sys

    env = _child_env()
    pending, running = list(names), {}
    with tempfile.TemporaryDirectory(prefix="parareg-warmup-") as tmp:
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    name = pending.pop(0)
                    out, log = Path(tmp) / f"{name}.json", Path(tmp) / f"{name}.log"
                    with open(log, "wb") as stderr:
                        running[name] = subprocess.Popen(
                            [sys.executable, "-m", "parareg._warmup_jobs", name, str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=stderr)
                finished = [n for n, proc in running.items() if proc.poll() is not None]
                if not finished:
                    time.sleep(0.05)
                    continue
                for name in finished:
                    proc = running.pop(name)
                    if proc.returncode != 0:
                        lines = (Path(tmp) / f"{name}.log").read_text(errors="replace").split("\n")
                        last = next((ln for ln in reversed(lines) if ln.strip()), "")
                        raise RuntimeError(f"warmup job {name} failed (exit code "
                                           f"{proc.returncode}): {last.strip()}")
                    records = json.loads((Path(tmp) / f"{name}.json").read_text())
                    yield name, [Compilation(**r) for r in records]
        finally:
            for proc in running.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in running.values():
                proc.wait()


# --- beside a cold run ------------------------------------------------------------------------


def spare_cores() -> int | None:
    """Usable cores minus the tasks running right now (the caller's included); ``None`` where
    the system does not say (no ``/proc/loadavg``)."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return default_jobs() - running


def _cache_is_empty() -> bool:
    """Whether the kernels' cache folder holds no cache index yet (a fresh install or an
    empty ``NUMBA_CACHE_DIR``): then everything compiles, without looking further."""
    try:
        from .kernels.fields import compose_3d

        folder = compose_3d._cache._cache_path
        with os.scandir(folder) as entries:
            return not any(entry.name.endswith(".nbi") for entry in entries)
    except FileNotFoundError:
        return True
    except (AttributeError, OSError):  # numba internals moved: wait for the first compile
        return False


class compile_ahead:  # noqa: N801 - used as a context manager, like contextlib's
    """On a cold cache, compile warmup job ``job``'s kernels in a helper process.

    Entering the ``with`` block with an empty kernel cache (no cache index at
    all), or else the first parareg kernel this process compiles inside it
    (so: the cache is cold), starts one ``python -m parareg._warmup_jobs JOB``
    process, which compiles the kernels of a later stage (e.g. SyN's, job
    ``"ahead-cc-3d"``) on another core while this process compiles and runs
    the earlier one. Each kernel still compiles once: when this process
    reaches a kernel the helper is compiling, it waits for it and loads the
    result from the cache (:mod:`parareg._numba_cache`). Results do not
    depend on it: the cached machine code is the same whichever process
    compiled it. A warm cache never starts the helper; neither does a machine
    with fewer than ``min_cpus`` usable cores, nor one whose cores are all busy
    at that moment (a loaded machine: the helper could only add its own start
    to the work; see :func:`spare_cores`), nor ``PARAREG_COMPILE_AHEAD=0``;
    ``PARAREG_COMPILE_AHEAD=1`` starts it whatever the load. The helper is
    stopped when the block ends.

    Parameters
    ----------
    job : str
        A job of :mod:`parareg._warmup_jobs` (``"ahead-<syn metric>[-masked]-3d"``).
    min_cpus : int
        Usable cores below which no helper starts.

    Attributes
    ----------
    process : subprocess.Popen or None
        The helper, once started.
    """

    #: the environment variable that turns the helper off ("0")
    ENV = "PARAREG_COMPILE_AHEAD"

    def __init__(self, job: str, *, min_cpus: int = 2):
        self.job = job
        self.process = None
        setting = os.environ.get(self.ENV, "")
        self._forced = setting == "1"
        enabled = setting != "0" and default_jobs() >= min_cpus
        self._watch = CompileWatch(on_first=self._start) if enabled else None

    def _start(self) -> None:
        import subprocess
        import sys

        spare = spare_cores()
        if not self._forced and spare is not None and spare < 1:
            return
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "parareg._warmup_jobs", self.job, os.devnull],
                env=_child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        except OSError:  # no helper: this process compiles everything itself, as without
            self.process = None

    def __enter__(self) -> "compile_ahead":
        if self._watch is not None:
            if _cache_is_empty():
                # a fresh cache: start now, so the helper's own start-up (imports, its
                # synthetic images) overlaps this process's imports and image reading
                self._watch.on_first = None
                self._start()
            self._watch.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        if self._watch is not None:
            self._watch.__exit__(*exc)
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # a compile cut short leaves no cache entry behind
            self.process.wait()
        return False
