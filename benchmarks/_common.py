"""Helpers shared by the benchmark scripts: machine facts, timing, fits, bandwidth, tables.

Nothing here knows about a particular benchmark. A script imports it as a
sibling module (``benchmarks/`` is on ``sys.path`` when a script in it runs).

Timing convention
-----------------
Every timed callable is called once first (numba compilation, page faults of
first touch and lazy thread start-up are excluded), then timed ``repeats``
times with :func:`time.perf_counter`. A callable faster than ``min_time`` is
looped ``number`` times per repeat (as :mod:`timeit` does) and the per-call
time is reported. Several callables measured together are interleaved repeat
by repeat, so a burst of load from elsewhere hits all of them alike and their
ratios (speed-ups) stay meaningful on a shared machine.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from numba import njit

#: bytes per gigabyte in every bandwidth figure (decimal, as STREAM reports)
GB = 1e9

from parareg.bench.machine import cpu_model, fit_power_law, markdown_table, usable_cpus  # noqa: E402,F401


# ----------------------------------------------------------------------------------------------
# machine and versions


def package_versions(names=("numpy", "scipy", "numba", "llvmlite", "matplotlib", "parareg")):
    """``{name: version}`` of the imported (else installed) packages; ``None`` if absent."""
    versions = {"python": platform.python_version()}
    for name in names:
        module = sys.modules.get(name)  # an imported module wins over stale metadata
        version = getattr(module, "__version__", None)
        if version is None:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = None
        versions[name] = version
    return versions


def git_revision(path) -> dict:
    """``{"commit": sha, "dirty": bool}`` of the checkout holding ``path``, or ``{}``."""
    cwd = Path(path).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=cwd, capture_output=True, text=True, timeout=10,
                                check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": sha, "dirty": bool(status.strip())}


def machine_info() -> dict:
    """Facts about this machine and software stack worth keeping next to any timing."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "load_average_at_start": list(load) if load else None,
        "total_memory_gb": total_memory_gb(),
        "versions": package_versions(),
        "env": {k: os.environ[k] for k in ("PARAREG_NUM_THREADS", "OMP_NUM_THREADS",
                                            "NUMBA_NUM_THREADS") if k in os.environ},
    }


def total_memory_gb() -> float | None:
    """Physical memory in GB (``None`` where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    except (ValueError, OSError, AttributeError):
        return None


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * (1 if sys.platform == "darwin" else 1024) / GB


# ----------------------------------------------------------------------------------------------
# timing


def _calibrate(func, min_time: float) -> int:
    """Warm up ``func`` (one call) and return how many calls make one repeat last ``min_time``."""
    t0 = time.perf_counter()
    func()
    first = time.perf_counter() - t0
    if first >= 5 * min_time:  # slow anyway: one call per repeat, no second warm-up
        return 1
    t0 = time.perf_counter()  # the first call may have included compilation
    func()
    second = max(time.perf_counter() - t0, 1e-9)
    return max(1, math.ceil(min_time / second))


def measure(funcs: dict, *, repeats: int, min_time: float = 0.02,
            steady_below: float = math.inf) -> dict:
    """Time several callables, interleaved repeat by repeat.

    Within a repeat each callable runs once untimed right before its timed
    run, so every mode is measured in steady state, as inside a registration
    loop. Without it, the first 2-thread call after a serial phase pays for
    waking the idle second vCPU of this virtual machine (several ms, measured:
    a 128^3 warp went from 1.9x to 1.6x when 1- and 2-thread calls alternated).

    Parameters
    ----------
    funcs : dict of str to callable
        Zero-argument callables; each is warmed up before any timing.
    repeats : int
        Timed repeats of each callable.
    min_time : float
        Seconds; faster callables are looped within a repeat.
    steady_below : float
        Seconds; the untimed call before each repeat is made only for
        callables whose first timed call was faster (a slow one is its own
        steady state, and the warm-up would double the benchmark's time).

    Returns
    -------
    dict of str to dict
        Per name: ``median_s`` and ``min_s`` (per call), ``times_s`` (every
        repeat, per call) and ``number`` (calls per repeat).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    numbers = {name: _calibrate(func, min_time) for name, func in funcs.items()}
    times = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            number = numbers[name]
            if not times[name] or times[name][0] < steady_below:
                func()  # untimed: the same mode's steady state
            t0 = time.perf_counter()
            for _ in range(number):
                func()
            times[name].append((time.perf_counter() - t0) / number)
    return {name: {"median_s": float(np.median(ts)), "min_s": float(np.min(ts)),
                   "times_s": [float(t) for t in ts], "number": numbers[name]}
            for name, ts in times.items()}


# ----------------------------------------------------------------------------------------------
# fits


# ----------------------------------------------------------------------------------------------
# reference memory bandwidth (STREAM copy and triad) on the parareg pool


@njit(nogil=True, cache=False)
def _stream_copy(a, b, start, stop):
    for i in range(start, stop):
        a[i] = b[i]


@njit(nogil=True, cache=False)
def _stream_triad(a, b, c, s, start, stop):
    for i in range(start, stop):
        a[i] = b[i] + s * c[i]


#: bytes moved per element, STREAM's convention (write-allocate traffic not counted)
STREAM_BYTES_PER_ELEMENT = {"copy": 2 * 8, "triad": 3 * 8}


def stream_bandwidth(array_bytes: int, thread_counts, *, repeats: int,
                     min_time: float = 0.02, grain: int = 1 << 20) -> dict:
    """Copy (``a = b``) and triad (``a = b + s * c``) bandwidth at each thread count.

    The kernels are numba ``nogil`` loops over ``[start, stop)`` run on the
    parareg pool with :func:`parareg.parallel.run_units`, in units of
    ``grain`` float64 elements, so they see the same threads as the library.

    Parameters
    ----------
    array_bytes : int
        Size of each of the three float64 arrays, bytes.
    thread_counts : iterable of int
        Thread counts to measure.
    repeats, min_time
        As in :func:`measure`.

    Returns
    -------
    dict
        ``{"array_bytes", "grain_elements", "bytes_per_element", "results": [
        {"kernel", "threads", "median_s", "min_s", "gbps", "gbps_best"}, ...]}``
        with ``gbps`` from the median and ``gbps_best`` from the minimum time.
    """
    from parareg.parallel import partition_range, run_units

    n = max(1, int(array_bytes) // 8)
    a = np.zeros(n)
    b = np.full(n, 1.0)
    c = np.full(n, 2.0)
    units = partition_range(0, n, grain=grain)

    def copy(threads):
        run_units(lambda u: _stream_copy(a, b, *units[u]), len(units), num_threads=threads)

    def triad(threads):
        run_units(lambda u: _stream_triad(a, b, c, 3.0, *units[u]), len(units),
                  num_threads=threads)

    funcs = {}
    for threads in thread_counts:
        funcs[("copy", threads)] = lambda t=threads: copy(t)
        funcs[("triad", threads)] = lambda t=threads: triad(t)
    timed = measure(funcs, repeats=repeats, min_time=min_time)
    results = []
    for (kernel, threads), t in timed.items():
        moved = STREAM_BYTES_PER_ELEMENT[kernel] * n
        results.append({"kernel": kernel, "threads": int(threads), "median_s": t["median_s"],
                        "min_s": t["min_s"], "gbps": moved / t["median_s"] / GB,
                        "gbps_best": moved / t["min_s"] / GB})
    return {"array_bytes": 8 * n, "grain_elements": grain,
            "bytes_per_element": dict(STREAM_BYTES_PER_ELEMENT), "results": results}


# ----------------------------------------------------------------------------------------------
# output


def format_time(seconds: float) -> str:
    """A time with a unit that keeps 3 significant digits, e.g. ``"12.3 ms"``.

    >>> format_time(0.01234), format_time(2.5e-5), format_time(3.0)
    ('12.3 ms', '25.0 µs', '3.00 s')
    """
    if not math.isfinite(seconds):
        return "–"
    units = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
    unit, scale = next((u for u in units if seconds >= u[1]), units[-1])
    value = seconds / scale
    digits = 2 if value < 10 else 1 if value < 100 else 0
    return f"{value:.{digits}f} {unit}"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/inf
    return obj


def write_json(path, data) -> Path:
    """Write ``data`` as indented JSON (NumPy scalars converted, NaN/inf written as null)."""
    path = Path(path)
    path.write_text(json.dumps(_jsonable(data), indent=2) + "\n", encoding="utf-8")
    return path


def log(message: str) -> None:
    """Progress line on stderr (stdout carries the report)."""
    print(message, file=sys.stderr, flush=True)
