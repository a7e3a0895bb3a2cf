"""parareg's maps against a plain loop, concurrent.futures and joblib, on the issue-11 workloads.

Workload families, each at four sizes (``--smoke``: two tiny ones, one repeat;
``--quick``: the sizes of :data:`QUICK`, the rows that missed a target before):

``slices_axis0`` / ``slices_axis1`` / ``slices_axis2``
    ``scipy.ndimage.gaussian_filter(sigma=2)`` on every 2-D slice of an N^3
    float32 volume along axis 0, 1 or 2 (views; axis 2 slices are strided
    both ways). N = 24, 48, 96, 192. parareg: :func:`~parareg.parallel.map_slices`.
``pixels_python`` / ``pixels_numba``
    a per-pixel function (100 steps of the logistic map) on every pixel of
    an N^2 image, as a list of Python floats, in pure Python and numba-jitted
    (``nogil``). N = 24, 48, 96, 192. parareg: :func:`~parareg.parallel.parallel_map`.
``silly_sum``
    the parallel-processing tutorials' exercise: a pure-Python double loop
    summing an N x N float64 array, parallelised over 16 row blocks (fixed by
    the data, so every method sums the same partial sums in the same order).
    N = 128, 256, 512, 1024.
``blocks_halo``
    ``gaussian_filter(sigma=2)`` over 4 x 4 x 4 blocks of an N^3 float32
    volume, each grown by a halo of 8 voxels (the filter's reach), the cores
    written into one output (equal to filtering the whole volume).
    N = 32, 64, 128, 192. parareg: :func:`~parareg.parallel.map_blocks`;
    also ``dask.array.map_overlap`` (threads) when dask is installed.

Methods: ``loop`` (a list comprehension, then the same assembly), ``futures
threads`` / ``futures processes`` (persistent ``ThreadPoolExecutor`` /
``ProcessPoolExecutor`` with T workers, ``.map``; processes with ``chunksize``
``n / (4 T)``), ``joblib threads`` / ``joblib loky`` (``joblib.Parallel(n_jobs=T,
prefer="threads")`` / the default loky processes, ``delayed`` per item;
skipped when joblib is not installed: an optional benchmark extra), ``parareg
threads`` (the default backend) and, for pure Python, ``parareg processes``
(``backend="processes"``: T - 1 worker processes and the caller). The
*recommended* parareg call (:data:`CALLS`, what its documentation tells a user
to write) is threads for SciPy and numba (GIL released) and processes for pure
Python, where the threads backend must fall back to the loop's speed.
parareg's plans are recorded from its ``DEBUG`` log records. Every method's
result (of the timed calls themselves) is checked equal to the loop's in the
same run. parareg remembers a probe's serial verdict per function across calls
(see :mod:`parareg.parallel.adaptive`), as it would in a user's loop over
volumes; the untimed warm-up calls include the first probe.

Times: minima (and medians, in the JSON) of ``--repeats`` interleaved repeats
(:func:`_common.measure`). Targets (pass/fail per row): the recommended
parareg call <= 1.05x the best of joblib and futures; <= 1.05x the loop
wherever no other parallel method beats the loop; like with like, parareg
threads <= 1.05x the best threaded method and parareg processes <= 1.05x the
best process pool (and, for pure Python, parareg's threads backend <= 1.05x
the loop wherever no threaded method beats it).

Writes ``parallel_maps.json``, ``parallel_maps.md`` (also printed) and the
plots ``parallel_time_vs_size.png`` (log-log, fitted exponents) and
``parallel_speedup_vs_threads.png`` (largest size of each family, threads
1..T) into ``--out``.

Usage::

    python benchmarks/parallel_maps.py --out /tmp/pm           # ~4 min on 2 quiet cores
    python benchmarks/parallel_maps.py --quick --out /tmp/pm   # the missed rows, ~3 min
    python benchmarks/parallel_maps.py --smoke --out /tmp/pm   # seconds: does it run
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numba import njit
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fit_power_law,
    format_time,
    log,
    machine_info,
    markdown_table,
    measure,
    package_versions,
    usable_cpus,
    write_json,
)

from parareg.parallel import map_blocks, map_slices, parallel_map  # noqa: E402
from parareg.parallel.map import block_regions  # noqa: E402

try:
    import joblib
except ImportError:  # optional benchmark extra
    joblib = None
try:
    import dask
    import dask.array as da
except ImportError:  # optional extra
    da = None

#: the slack of both targets
TOLERANCE = 1.05
#: rounds of chunks per worker for futures' ProcessPoolExecutor.map(chunksize=...)
CHUNKS_PER_WORKER = 4


# --------------------------------------------------------------------------- the functions


def logistic(x: float) -> float:
    """100 steps of the logistic map from ``x``: a per-pixel function in pure Python."""
    for _ in range(100):
        x = 3.9 * x * (1.0 - x)
    return x


logistic_numba = njit(nogil=True)(logistic)


def silly_sum(data) -> float:
    """The tutorials' exercise: sum a 2-D array in a pure-Python double loop."""
    rows, cols = data.shape
    total = 0.0
    for i in range(rows):
        for j in range(cols):
            total += data[i, j]
    return total


def filtered_core(item, sigma):
    """One block of blocks_halo for the other methods: filter the grown block, keep its core.

    ``item`` is ``(grown block, its core's slices inside it)``; the block is a view (a copy
    only where a method pickles it to a worker process).
    """
    block, core = item
    return ndimage.gaussian_filter(block, sigma)[core]


# --------------------------------------------------------------------------- the methods


@dataclasses.dataclass
class Case:
    """One workload at one size: the per-item function, its items, and how results assemble."""

    func: object  # picklable: func(item)
    items: list
    assemble: object  # list of per-item results -> the result compared with the loop's
    parareg: object  # parareg(threads, backend) -> the result
    processes: bool  # parareg's recommended backend is "processes" (pure Python)
    size: int  # voxels or items, the x axis of the time-vs-size plot
    extra: dict = dataclasses.field(default_factory=dict)  # more methods: name -> f(threads)


class Executors:
    """Persistent futures executors (a fair best case: no pool start-up inside the timing)."""

    def __init__(self):
        self.pools = {}

    def get(self, kind, workers):
        key = (kind, workers)
        if key not in self.pools:
            cls = ThreadPoolExecutor if kind == "threads" else ProcessPoolExecutor
            self.pools[key] = cls(max_workers=workers)
        return self.pools[key]

    def close(self):
        for pool in self.pools.values():
            pool.shutdown()


def methods(case: Case, threads: int, executors: Executors) -> dict:
    """name -> zero-argument callable returning the result, for every method."""
    func, items, assemble = case.func, case.items, case.assemble
    chunksize = max(1, math.ceil(len(items) / (CHUNKS_PER_WORKER * threads)))
    out = {
        "loop": lambda: assemble([func(x) for x in items]),
        "futures threads": lambda: assemble(list(
            executors.get("threads", threads).map(func, items))),
        "futures processes": lambda: assemble(list(
            executors.get("processes", threads).map(func, items, chunksize=chunksize))),
    }
    if joblib is not None:
        out["joblib threads"] = lambda: assemble(joblib.Parallel(
            n_jobs=threads, prefer="threads")(joblib.delayed(func)(x) for x in items))
        out["joblib loky"] = lambda: assemble(joblib.Parallel(n_jobs=threads)(
            joblib.delayed(func)(x) for x in items))
    out["parareg threads"] = lambda: case.parareg(threads, "threads")
    if case.processes:
        out["parareg processes"] = lambda: case.parareg(threads, "processes")
    for name, extra in case.extra.items():
        out[name] = functools.partial(extra, threads)
    return out


OTHERS = ("futures threads", "futures processes", "joblib threads", "joblib loky")
THREADED = ("futures threads", "joblib threads")
PROCESSES = ("futures processes", "joblib loky")
PARAREG = ("parareg threads", "parareg processes")


def recommended(processes: bool) -> str:
    """The parareg method its documentation recommends: processes for pure Python."""
    return "parareg processes" if processes else "parareg threads"


# --------------------------------------------------------------------------- the workloads


def _volume(n, seed=0):
    return np.random.default_rng(seed).random((n, n, n), dtype=np.float32)


def slices_case(n: int, axis: int) -> Case:
    array = _volume(n)
    lead = (slice(None),) * axis
    func = functools.partial(ndimage.gaussian_filter, sigma=2.0)
    return Case(func, [array[lead + (i,)] for i in range(n)],
                lambda parts: np.stack(parts, axis=axis),
                lambda t, backend: map_slices(ndimage.gaussian_filter, array, axis=axis,
                                              num_threads=t, backend=backend, sigma=2.0),
                False, array.size)


def pixels_case(n: int, func) -> Case:
    pixels = np.random.default_rng(2).uniform(0.1, 0.9, n * n).tolist()
    return Case(func, pixels, list,
                lambda t, backend: parallel_map(func, pixels, num_threads=t, backend=backend),
                func is logistic, n * n)


def silly_sum_case(n: int) -> Case:
    data = np.random.default_rng(3).random((n, n))
    blocks = np.array_split(data, 16)
    return Case(silly_sum, blocks, sum,
                lambda t, backend: sum(parallel_map(silly_sum, blocks, num_threads=t,
                                                    backend=backend)),
                True, n * n)


def blocks_case(n: int) -> Case:
    volume = _volume(n, seed=1)
    block, halo, sigma = n // 4, 8, 2.0
    regions = block_regions(volume.shape, (block,) * 3, (halo,) * 3)

    def assemble(parts):
        out = np.empty_like(volume)
        for region, part in zip(regions, parts):
            out[region[0]] = part
        return out

    extra = {}
    if da is not None:
        def with_dask(threads):
            with dask.config.set(scheduler="threads", num_workers=threads):
                return da.from_array(volume, chunks=block).map_overlap(
                    ndimage.gaussian_filter, depth=halo, boundary="none", sigma=sigma,
                    dtype=volume.dtype).compute()
        extra["dask map_overlap"] = with_dask
    return Case(functools.partial(filtered_core, sigma=sigma),
                [(volume[grown], core) for _, grown, core in regions], assemble,
                lambda t, backend: map_blocks(ndimage.gaussian_filter, volume, block_shape=block,
                                              halo=halo, num_threads=t, sigma=sigma),
                False, volume.size, extra)


FAMILIES = {
    "slices_axis0": ("gaussian_filter(sigma=2) per slice of N^3 along axis 0", "voxels",
                     (24, 48, 96, 192), (8, 16), lambda n: slices_case(n, 0)),
    "slices_axis1": ("the same along axis 1", "voxels", (24, 48, 96, 192), (8, 16),
                     lambda n: slices_case(n, 1)),
    "slices_axis2": ("the same along axis 2", "voxels", (24, 48, 96, 192), (8, 16),
                     lambda n: slices_case(n, 2)),
    "pixels_python": ("per-pixel logistic map (pure Python) on N^2 pixels", "pixels",
                      (24, 48, 96, 192), (8, 16), lambda n: pixels_case(n, logistic)),
    "pixels_numba": ("per-pixel logistic map (numba, nogil) on N^2 pixels", "pixels",
                     (24, 48, 96, 192), (8, 16), lambda n: pixels_case(n, logistic_numba)),
    "silly_sum": ("silly_sum: pure-Python sum of N^2 float64, 16 row blocks", "elements",
                  (128, 256, 512, 1024), (32, 64), silly_sum_case),
    "blocks_halo": ("gaussian_filter(sigma=2) on 4^3 blocks of N^3, halo 8", "voxels",
                    (32, 64, 128, 192), (32, 40), blocks_case),
}


#: ``--quick``: the rows that missed a target in the quiet run of BENCHMARKS.md section 24
QUICK = {"slices_axis0": (48, 96), "slices_axis1": (96, 192), "slices_axis2": (24, 48, 96),
         "pixels_python": (24, 48, 96), "pixels_numba": (24, 96),
         "silly_sum": (128, 256, 512, 1024), "blocks_halo": (64,)}
#: repeats per setting (``--repeats`` overrides)
REPEATS = {"full": 3, "quick": 5, "smoke": 1}


# --------------------------------------------------------------------------- running


class _Plans(logging.Handler):
    """Keeps the plans parareg's maps log (``record.plan``), per method being timed."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.plans = []  # (method, plan)
        self.method = None

    def emit(self, record):
        plan = getattr(record, "plan", None)
        if plan is not None:
            self.plans.append((self.method, plan))


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a == b
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def time_methods(funcs: dict, repeats: int, handler: _Plans) -> tuple[dict, dict, list]:
    """Interleaved timing; every method's last result compared with the loop's."""
    last = {}

    def timed(key, func):
        handler.method = key
        last[key] = func()

    timed("loop", funcs["loop"])  # numba compiles in the first call, which had set the loop's
    # calls per repeat (its calibration) to 1 where the others averaged 40 calls
    handler.plans.clear()
    times = measure({key: functools.partial(timed, key, func) for key, func in funcs.items()},
                    repeats=repeats, min_time=0.02, steady_below=0.2)
    equal = {key: _same(value, last["loop"]) for key, value in last.items()}
    plans = {key: [list(p) for p in sorted({(p.mode, p.grain) for k, p in handler.plans
                                             if k == key and p.items > 1})]
             for key in funcs if key.startswith("parareg")}
    return times, equal, plans


def judge(t: dict, processes: bool = False) -> dict:
    """Ratios and the pass/fail of the targets from per-method times (seconds).

    ``processes``: the workload is pure Python, where parareg recommends its
    process backend. The headline compares that recommended call with the
    best of joblib and futures, and with the loop where no other parallel
    method beats it; like with like compares parareg's threads with the
    threaded methods and its processes with the process pools.
    """
    chosen = recommended(processes)
    others = [t[k] for k in OTHERS if k in t]
    best = min(others)
    parallel = min(others + [t[k] for k in t if k not in OTHERS + PARAREG + ("loop",)])
    verdict = {"recommended": chosen, "best_other_s": best, "parareg_vs_best": t[chosen] / best,
               "parareg_vs_loop": t[chosen] / t["loop"]}
    verdict["target_best"] = verdict["parareg_vs_best"] <= TOLERANCE
    verdict["target_loop"] = (None if parallel < t["loop"]
                              else verdict["parareg_vs_loop"] <= TOLERANCE)
    for ours, theirs, name in (("parareg threads", THREADED, "threads"),
                               ("parareg processes", PROCESSES, "processes")):
        rivals = [t[k] for k in theirs if k in t]
        if ours in t and rivals:
            verdict[f"{name}_vs_like"] = t[ours] / min(rivals)
            verdict[f"target_{name}_like"] = verdict[f"{name}_vs_like"] <= TOLERANCE
    if processes:  # pure Python on threads: the plain loop's speed where no thread helps
        threaded = min(t[k] for k in THREADED if k in t)
        verdict["threads_vs_loop"] = t["parareg threads"] / t["loop"]
        verdict["target_threads_loop"] = (None if threaded < t["loop"]
                                          else verdict["threads_vs_loop"] <= TOLERANCE)
    return verdict


def start_process_pool(threads: int) -> float:
    """Start parareg's worker processes now (seconds), as the futures pools are before timing.

    The first start in a process is the forkserver's (it imports this module) and then a
    fork of it per worker; a later call that needs them finds them warm.
    """
    begin = time.perf_counter()
    parallel_map(int, range(2 * threads), num_threads=threads, backend="processes", grain=1)
    return time.perf_counter() - begin


def run(setting: str, threads: int, repeats: int, families=None) -> dict:
    handler = _Plans()
    logger = logging.getLogger("parareg.parallel")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    executors = Executors()
    results = {}
    try:
        for name, (description, unit, sizes, smoke_sizes, build) in FAMILIES.items():
            if families and name not in families:
                continue
            rows = []
            chosen = (QUICK.get(name, ()) if setting == "quick"
                      else smoke_sizes if setting == "smoke" else sizes)
            if not chosen:
                continue
            for n in chosen:
                case = build(n)
                backend = "processes" if case.processes else "threads"
                log(f"{name}: N = {n}")
                times, equal, plans = time_methods(methods(case, threads, executors), repeats,
                                                   handler)
                t = {key: value["min_s"] for key, value in times.items()}
                medians = {key: value["median_s"] for key, value in times.items()}
                rows.append({"n": n, "size": case.size, "times": times, "equal_to_loop": equal,
                             "parareg_plans": plans, **judge(t, case.processes),
                             "by_median": judge(medians, case.processes)})
            scaling = []
            if threads > 1 and setting != "quick":  # speed-up vs threads, at the largest size
                case = build(rows[-1]["n"])
                funcs = {"loop": lambda c=case: c.assemble([c.func(x) for x in c.items])}
                for k in range(1, threads):  # (processes: k - 1 workers and the caller)
                    funcs[f"parareg {k}"] = functools.partial(case.parareg, k, backend)
                times, equal, _ = time_methods(funcs, repeats, handler)
                scaling = [{"threads": k, "min_s": times[f"parareg {k}"]["min_s"]}
                           for k in range(1, threads)]
                scaling.append({"threads": threads,
                                "min_s": rows[-1]["times"][recommended(case.processes)]["min_s"]})
                rows[-1]["scaling_equal"] = equal
            results[name] = {"description": description, "unit": unit, "rows": rows,
                             "scaling": scaling, "backend": backend}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        executors.close()
    return results


# --------------------------------------------------------------------------- the report

COLUMNS = ("loop", "futures threads", "joblib threads", "parareg threads", "futures processes",
           "joblib loky", "parareg processes")

#: the call a user writes, per family (``f``: the function; the workloads' own arguments elided)
CALLS = {"slices_axis0": "map_slices(f, volume, axis=0)", "slices_axis1":
         "map_slices(f, volume, axis=1)", "slices_axis2": "map_slices(f, volume, axis=2)",
         "pixels_python": 'parallel_map(f, pixels, backend="processes")',
         "pixels_numba": "parallel_map(f, pixels)",
         "silly_sum": 'parallel_map(f, blocks, backend="processes")',
         "blocks_halo": "map_blocks(f, volume, block_shape=N // 4, halo=8)"}


def _mark(value) -> str:
    return "n/a" if value is None else "pass" if value else "**FAIL**"


def _plans(plans: list) -> str:
    """``[[mode, grain], ...]`` as "serial/threads, grain 2-5"."""
    if not plans:
        return "–"
    modes = "/".join(sorted({mode for mode, _ in plans}))
    grains = sorted({grain for _, grain in plans})
    return f"{modes}, grain {grains[0]}" + (f"-{grains[-1]}" if len(grains) > 1 else "")


def table(results: dict) -> str:
    rows = []
    for name, family in results.items():
        for r in family["rows"]:
            t = {key: value["min_s"] for key, value in r["times"].items()}
            choice = "; ".join(f"{key.split()[1]}: {_plans(plans)}"
                               for key, plans in r["parareg_plans"].items())
            threads_target = ("" if "target_threads_loop" not in r else
                              f"; threads {r['threads_vs_loop']:.2f}x loop: "
                              f"{_mark(r['target_threads_loop'])}")
            like = "; ".join(f"{kind} {r[kind + '_vs_like']:.2f}: "
                             f"{_mark(r['target_' + kind + '_like'])}"
                             for kind in ("threads", "processes") if kind + "_vs_like" in r)
            extra = [f"{key} {format_time(value)}" for key, value in t.items()
                     if key not in COLUMNS]
            rows.append([name, str(r["n"])] + [format_time(t[key]) if key in t else "–"
                                               for key in COLUMNS]
                        + [f"{r['parareg_vs_best']:.2f}", f"{r['parareg_vs_loop']:.2f}", like,
                           _mark(r["target_best"]), _mark(r["target_loop"]) + threads_target,
                           choice + ("; " + "; ".join(extra) if extra else ""),
                           "yes" if all(r["equal_to_loop"].values()) else "NO"])
    headers = ["workload", "N", *COLUMNS, "recommended / best joblib+futures",
               "recommended / loop", "like with like (parareg / best of its kind)",
               "≤1.05× best", "≤1.05× loop (where no parallel beats it)",
               "parareg's plans; other methods", "equal"]
    return markdown_table(headers, rows, align="ll" + "r" * (len(COLUMNS) + 2) + "lllll")


def families_table(results: dict) -> str:
    rows = [[name, family["description"], f"`{CALLS[name]}`", family["unit"]]
            for name, family in results.items()]
    return markdown_table(["workload", "what", "the recommended parareg call", "size unit"],
                          rows, align="llll")


def plot(results: dict, out: Path, threads: int) -> list[Path]:
    """The two PNGs: time vs size (log-log, fitted exponents) and speed-up vs threads."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(results)
    cols = 4
    rows_ = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows_), dpi=90)
    FigureCanvasAgg(fig)
    for index, name in enumerate(names):
        family = results[name]
        ax = fig.add_subplot(rows_, cols, index + 1)
        sizes = [r["size"] for r in family["rows"]]
        keys = [k for k in family["rows"][0]["times"]]
        for key in keys:
            times = [r["times"][key]["min_s"] for r in family["rows"]]
            fit = fit_power_law(sizes, times)
            style = (dict(lw=2.2, color="k") if key == recommended(family["backend"] == "processes")
                     else dict(lw=1))
            ax.plot(sizes, times, "o-", ms=3, label=f"{key} (k={fit['exponent']:.2f})", **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(family["unit"], fontsize=8)
        ax.set_ylabel("seconds (min of repeats)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(f"time vs size, {threads} threads; k: fitted exponent of time = c * size^k")
    fig.tight_layout()
    paths = [out / "parallel_time_vs_size.png"]
    fig.savefig(paths[0], format="png")

    fig = Figure(figsize=(6.0, 4.5), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ks = list(range(1, threads + 1))
    ax.plot(ks, ks, "--", color="0.6", label="ideal")
    for name, family in results.items():
        if not family["scaling"]:
            continue
        base = family["scaling"][0]["min_s"]
        ax.plot([s["threads"] for s in family["scaling"]],
                [base / s["min_s"] for s in family["scaling"]], "o-",
                label=f"{name}, N={family['rows'][-1]['n']} ({family['backend']})")
    ax.set_xlabel("threads (num_threads)")
    ax.set_ylabel("parareg speed-up over 1 thread")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("parareg speed-up vs threads, largest size of each workload")
    fig.tight_layout()
    paths.append(out / "parallel_speedup_vs_threads.png")
    fig.savefig(paths[1], format="png")
    return paths


def summary(results: dict) -> str:
    rows = [r for family in results.values() for r in family["rows"]]
    best = sum(1 for r in rows if r["target_best"])
    loop = [r["target_loop"] for r in rows if r["target_loop"] is not None]
    threads = [r["target_threads_loop"] for r in rows if r.get("target_threads_loop") is not None]
    like = {kind: [r[f"target_{kind}_like"] for r in rows if f"target_{kind}_like" in r]
            for kind in ("threads", "processes")}
    medians = [r["by_median"] for r in rows if "by_median" in r]
    by_median = (f" Judged by medians of the repeats instead of minima (one lucky repeat of the loop "
                 f"or a rival sets a minimum): {sum(1 for m in medians if m['target_best'])}/"
                 f"{len(medians)} and {sum(1 for m in medians if m['target_loop'])}/"
                 f"{sum(1 for m in medians if m['target_loop'] is not None)} rows." if medians
                 else "")
    return (f"recommended parareg call <= {TOLERANCE}x the best of joblib and futures: "
            f"{best}/{len(rows)} rows; <= {TOLERANCE}x the loop where no other parallel method "
            f"beats it: {sum(loop)}/{len(loop)} rows. Like with like: parareg threads <= "
            f"{TOLERANCE}x the best threaded method: {sum(like['threads'])}/"
            f"{len(like['threads'])} rows; parareg processes <= {TOLERANCE}x the best process "
            f"pool: {sum(like['processes'])}/{len(like['processes'])} rows. Pure Python on "
            f"parareg's threads <= {TOLERANCE}x the loop where no threaded method beats it: "
            f"{sum(threads)}/{len(threads)} rows.{by_median}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=usable_cpus(),
                        help="threads (and worker processes) of every parallel method "
                             "(default: the usable CPUs)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats (default: 3; --quick 5; --smoke 1)")
    setting = parser.add_mutually_exclusive_group()
    setting.add_argument("--quick", action="store_true",
                         help="only the rows that missed a target in the last quiet run (QUICK), "
                              "5 repeats, no scaling study or plots: ~3 min quiet")
    setting.add_argument("--smoke", action="store_true",
                         help="tiny sizes and one repeat: checks that the script runs")
    parser.add_argument("--only", nargs="+", choices=sorted(FAMILIES), metavar="WORKLOAD",
                        help=f"run only these workloads (of {', '.join(FAMILIES)})")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.repeats is not None and args.repeats < 1):
        parser.error("--threads and --repeats must be positive")
    setting = "quick" if args.quick else "smoke" if args.smoke else "full"
    repeats = REPEATS[setting] if args.repeats is None else args.repeats
    machine = machine_info()
    start_s = start_process_pool(args.threads) if args.threads > 1 else None
    if start_s is not None:
        log(f"parareg's {args.threads - 1} worker process(es) started in {start_s:.2f} s")
    results = run(setting, args.threads, repeats, args.only)
    machine["versions"] = package_versions(("numpy", "scipy", "numba", "joblib", "dask",
                                            "parareg"))
    report = {"threads": args.threads, "repeats": repeats, "setting": setting,
              "process_start_s": start_s,
              "tolerance": TOLERANCE, "machine": machine, "workloads": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "parallel_maps.json", report)
    load = machine.get("load_average_at_start")
    text = (f"{args.threads} threads, minimum of {repeats} interleaved repeats, "
            f"{machine['cpu_model']} ({machine['usable_cpus']} usable CPUs, load average "
            f"{load[0]:.1f} at the start)" if load else "")
    if start_s is not None:
        text += (f"; parareg's worker processes started (forkserver, before the timing, as "
                 f"the futures pools) in {start_s:.2f} s")
    text += "\n\n"
    text += families_table(results) + "\n\n" + table(results) + "\n\n" + summary(results) + "\n"
    (args.out / "parallel_maps.md").write_text(text, encoding="utf-8")
    print(text)
    if not (args.no_plots or setting == "quick"):
        for path in plot(results, args.out, args.threads):
            log(f"wrote {path}")
    failed = [f"{name} N={r['n']}" for name, family in results.items() for r in family["rows"]
              if not all(r["equal_to_loop"].values())
              or not all(r.get("scaling_equal", {}).values())]
    if failed:
        log(f"results differ from the loop in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
