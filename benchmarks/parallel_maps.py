"""parareg's maps against a plain loop and joblib threads, on the issue-11 workloads.

Workloads (``--quick`` shrinks every array and item count so the script just runs):

``slices_axis1``
    16 slices of 1500 x 2500 along axis 1 of a (1500, 16, 2500) float32 array,
    ``scipy.ndimage.gaussian_filter(sigma=(3, 5))`` per slice (strided views).
``slices_axis0``
    the same along axis 0 of a (16, 1500, 2500) array.
``small_slices``
    2000 slices of 64 x 64, ``gaussian_filter(sigma=1.5)`` per slice.
``python_items``
    a pure-Python function that holds the GIL (a sum of squares in a Python
    loop, ~50 us), once per item of 2000.
``blocks_halo``
    ``gaussian_filter(sigma=2)`` over (48, 192, 192)-voxel blocks of a 192^3
    float32 volume, each grown by a halo of 8 voxels (the filter's reach), the
    cores written into one output (equal to filtering the whole volume).

Methods: ``loop`` (a list comprehension, then ``np.stack`` for the slices; a
loop over the blocks), ``futures`` (``concurrent.futures.ThreadPoolExecutor``
``.map`` with T workers, the same stacking), ``joblib``
(``joblib.Parallel(n_jobs=T, prefer="threads")``, the same stacking; skipped
when joblib is not installed: it is an optional benchmark extra) and
``parareg`` (:func:`parareg.parallel.map_slices` / :func:`map_blocks` /
:func:`parallel_map` with the default adaptive grain; the plan it chose is
recorded from its ``DEBUG`` log record). Every method's result (of the timed
calls themselves) is checked equal to the loop's in the same run. Times are
medians of ``--repeats`` interleaved repeats (:func:`_common.measure`).

Writes ``parallel_maps.json`` and ``parallel_maps.md`` (also printed) into ``--out``.

Usage::

    python benchmarks/parallel_maps.py --threads 2 --out /tmp/pm     # ~2 min on 2 quiet cores
    python benchmarks/parallel_maps.py --quick --out /tmp/pm         # seconds: does it run
"""

from __future__ import annotations

import argparse
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    format_time,
    log,
    machine_info,
    markdown_table,
    measure,
    package_versions,
    write_json,
)

from parareg.parallel import map_blocks, map_slices, parallel_map  # noqa: E402
from parareg.parallel.map import block_regions  # noqa: E402

try:
    import joblib
except ImportError:  # optional benchmark extra
    joblib = None


def python_item(x: int) -> int:
    """A GIL-holding pure-Python item: a sum of squares over a Python loop."""
    total = 0
    for i in range(x % 7 + 600):
        total += i * i
    return total


def _slices(shape, axis, sigma):
    array = np.random.default_rng(0).random(shape, dtype=np.float32)
    lead = (slice(None),) * axis

    def views():
        return (array[lead + (i,)] for i in range(shape[axis]))

    def loop():
        return np.stack([ndimage.gaussian_filter(v, sigma) for v in views()], axis=axis)

    def with_joblib(threads):
        parts = joblib.Parallel(n_jobs=threads, prefer="threads")(
            joblib.delayed(ndimage.gaussian_filter)(v, sigma) for v in views())
        return np.stack(parts, axis=axis)

    def with_futures(threads):
        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda v: ndimage.gaussian_filter(v, sigma), views()))
        return np.stack(parts, axis=axis)

    def with_parareg(threads):
        return map_slices(ndimage.gaussian_filter, array, axis=axis, num_threads=threads,
                          sigma=sigma)

    return loop, with_futures, with_joblib, with_parareg


def _items(n):
    items = list(range(n))

    def loop():
        return [python_item(x) for x in items]

    def with_joblib(threads):
        return joblib.Parallel(n_jobs=threads, prefer="threads")(
            joblib.delayed(python_item)(x) for x in items)

    def with_futures(threads):
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(python_item, items))

    def with_parareg(threads):
        return parallel_map(python_item, items, num_threads=threads)

    return loop, with_futures, with_joblib, with_parareg


def _blocks(shape, block_shape, halo, sigma):
    volume = np.random.default_rng(1).random(shape, dtype=np.float32)
    regions = block_regions(shape, block_shape, (halo,) * len(shape))

    def filtered(region):
        return ndimage.gaussian_filter(volume[region[1]], sigma)[region[2]]

    def assemble(parts):
        out = np.empty_like(volume)
        for region, part in zip(regions, parts):
            out[region[0]] = part
        return out

    def loop():
        return assemble([filtered(region) for region in regions])

    def with_futures(threads):
        with ThreadPoolExecutor(threads) as pool:
            return assemble(list(pool.map(filtered, regions)))

    def with_joblib(threads):
        return assemble(joblib.Parallel(n_jobs=threads, prefer="threads")(
            joblib.delayed(filtered)(region) for region in regions))

    def with_parareg(threads):
        return map_blocks(ndimage.gaussian_filter, volume, block_shape=block_shape, halo=halo,
                          num_threads=threads, sigma=sigma)

    return loop, with_futures, with_joblib, with_parareg


def workloads(quick: bool) -> dict:
    """name -> (description, loop, futures(threads), joblib(threads), parareg(threads))."""
    big = (150, 4, 250) if quick else (1500, 16, 2500)
    small = 50 if quick else 2000
    cube = 32 if quick else 192
    return {
        "slices_axis1": (f"{big[1]} slices of {big[0]}x{big[2]} along axis 1, "
                         "gaussian_filter(sigma=(3, 5))", *_slices(big, 1, (3, 5))),
        "slices_axis0": (f"{big[1]} slices of {big[0]}x{big[2]} along axis 0, "
                         "gaussian_filter(sigma=(3, 5))",
                         *_slices((big[1], big[0], big[2]), 0, (3, 5))),
        "small_slices": (f"{small} slices of 64x64, gaussian_filter(sigma=1.5)",
                         *_slices((small, 64, 64), 0, 1.5)),
        "python_items": (f"{small} items of a GIL-holding pure-Python function",
                         *_items(small)),
        "blocks_halo": (f"{cube}^3 in blocks of {cube // 4}x{cube}x{cube}, halo 8, "
                        "gaussian_filter(sigma=2)",
                        *_blocks((cube,) * 3, (cube // 4, cube, cube), 8, 2.0)),
    }


class _Plans(logging.Handler):
    """Keeps the plans parareg's maps log (``record.plan``)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.plans = []

    def emit(self, record):
        plan = getattr(record, "plan", None)
        if plan is not None:
            self.plans.append(plan)


def _same(a, b) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def run(quick: bool, threads: int, repeats: int) -> dict:
    handler = _Plans()
    logger = logging.getLogger("parareg.parallel")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    results = {}
    try:
        for name, (description, loop, with_futures, with_joblib,
                   with_parareg) in workloads(quick).items():
            log(f"{name}: {description}")
            funcs = {"loop": loop, "futures": lambda f=with_futures: f(threads),
                     "parareg": lambda f=with_parareg: f(threads)}
            if joblib is not None:
                funcs["joblib"] = lambda f=with_joblib: f(threads)
            last = {}  # each method's latest result, checked against the loop's after timing
            timed = {key: (lambda k=key, f=func: last.__setitem__(k, f()))
                     for key, func in funcs.items()}
            handler.plans.clear()
            times = measure(timed, repeats=repeats, min_time=0.05)
            equal = {key: _same(value, last["loop"]) for key, value in last.items()}
            last.clear()
            plans = sorted({(p.mode, p.grain) for p in handler.plans})
            results[name] = {"description": description, "equal_to_loop": equal,
                             "times": times, "parareg_plans": [list(p) for p in plans]}
    finally:
        logger.removeHandler(handler)
    return results


def table(results: dict) -> str:
    rows = []
    for name, r in results.items():
        t = {key: value["median_s"] for key, value in r["times"].items()}
        joblib_s = t.get("joblib", float("nan"))
        best_other = min(t["futures"], joblib_s) if joblib else t["futures"]
        modes = sorted({mode for mode, _ in r["parareg_plans"]})
        grains = sorted({grain for _, grain in r["parareg_plans"]})
        choice = f"{'/'.join(modes)}, grain {grains[0]}" + (
            f"-{grains[-1]}" if len(grains) > 1 else "")
        rows.append([r["description"], format_time(t["loop"]), format_time(t["futures"]),
                     format_time(joblib_s), format_time(t["parareg"]),
                     f"{t['parareg'] / t['loop']:.2f}", f"{t['parareg'] / best_other:.2f}",
                     choice, "yes" if all(r["equal_to_loop"].values()) else "NO"])
    return markdown_table(["workload", "serial loop", "futures threads", "joblib threads",
                           "parareg", "parareg / loop", "parareg / best other", "parareg's choice",
                           "equal"], rows, align="lrrrrrrll")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="tiny workloads and one repeat: checks that the script runs")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        parser.error("--threads and --repeats must be positive")
    repeats = 1 if args.quick else args.repeats
    results = run(args.quick, args.threads, repeats)
    machine = machine_info()
    machine["versions"] = package_versions(("numpy", "scipy", "numba", "joblib", "parareg"))
    report = {"threads": args.threads, "repeats": repeats, "quick": args.quick,
              "machine": machine, "workloads": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "parallel_maps.json", report)
    text = (f"{args.threads} threads, median of {repeats} interleaved repeats, "
            f"{machine['cpu_model']} ({machine['usable_cpus']} usable CPUs)\n\n"
            + table(results) + "\n")
    (args.out / "parallel_maps.md").write_text(text, encoding="utf-8")
    print(text)
    failed = [name for name, r in results.items() if not all(r["equal_to_loop"].values())]
    if failed:
        log(f"results differ from the loop in: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
