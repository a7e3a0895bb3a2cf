"""Scaling study of the parareg image kernels: time vs image size and speed-up vs threads.

Kernels (each through its public function, validation and output allocation included):

``resample``
    :func:`parareg.resampling.resample_zero_outside` (the registration's rule:
    0 outside ``[0, n - 1]``; :func:`parareg.resample` takes ITK's edge rule)
    with an affine (small rotation + shift), linear;
    reference ``scipy.ndimage.affine_transform(order=1, mode="constant")``.
``warp``
    the same through a smooth random displacement field, linear;
    reference ``scipy.ndimage.map_coordinates(order=1, mode="constant")`` with
    the sampling coordinates precomputed outside the timed region.
``gradient``
    :func:`parareg.gradient`; reference ``numpy.gradient`` (per-axis arrays,
    no interleaving into a ``(..., ndim)`` array).

Each kernel is timed serially (``num_threads=1``), in parallel (the largest
``--threads`` value) and through its reference, at 2D sizes 64^2 .. 1024^2 and
3D sizes 32^3 .. 256^3; then at one size per dimension (1024^2, 192^3) for every
thread count. A STREAM copy/triad on the parareg pool gives the machine's
memory bandwidth to set the kernels' effective bandwidth against.

Writes ``scaling.json``, ``scaling.md`` (also printed), ``time_vs_voxels.png``
and ``speedup_vs_threads.png`` into ``--out``.

Usage::

    python benchmarks/scaling.py                      # full study (~1-2 min on 2 cores)
    python benchmarks/scaling.py --quick --out /tmp/s  # tiny sizes, seconds
    python benchmarks/scaling.py --threads 1,2,4,8,16 --repeats 7
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402 - a sibling module, importable once its folder is on the path

import parareg  # noqa: E402
from parareg._config import DEFAULT_GRAIN_VOXELS  # noqa: E402
from parareg.resampling import resample_zero_outside  # noqa: E402

KERNELS = ("resample", "warp", "gradient")
MODES = ("serial", "parallel", "reference")
REFERENCES = {
    "resample": 'scipy.ndimage.affine_transform(order=1, mode="constant")',
    "warp": 'scipy.ndimage.map_coordinates(order=1, mode="constant"), coordinates precomputed',
    "gradient": "numpy.gradient (per-axis arrays)",
}
SHORT_REFERENCES = {"resample": "affine_transform", "warp": "map_coordinates",
                    "gradient": "numpy.gradient"}

#: image side lengths of the size sweep: full study and --quick
SIZES = {2: (64, 128, 256, 512, 1024), 3: (32, 48, 64, 96, 128, 192, 256)}
QUICK_SIZES = {2: (32, 64, 128, 256), 3: (12, 16, 24, 48)}
#: side length of the thread sweep (the largest sweep size not above it is used)
SWEEP_SIZE = {2: 1024, 3: 192}

#: voxel spacing (mm) of every test image; anisotropic so world and voxel units differ
SPACING = (1.0, 1.1, 0.9)
#: the acceptance thresholds of the study
WARP_MIN_VOXELS = 1_000_000
WARP_MIN_SPEEDUP = 1.7
MAX_SLOWDOWN = 1.05


def bytes_per_voxel(kernel: str, ndim: int) -> int:
    """Compulsory memory traffic per output voxel, bytes (float32 everywhere).

    resample: image in + image out; warp: image in + field in (``ndim``
    components) + image out; gradient: image in + gradient out (``ndim``
    components). Interpolation neighbours are assumed to come from cache.
    """
    words = {"resample": 2, "warp": 2 + ndim, "gradient": 1 + ndim}[kernel]
    return 4 * words


# ----------------------------------------------------------------------------------------------
# test data


class Case:
    """A smooth random image of side ``n`` with its affine, field and reference inputs."""

    def __init__(self, ndim: int, n: int, seed: int = 0):
        self.ndim, self.n = ndim, n
        self.shape = (n,) * ndim
        self.rng = np.random.default_rng([seed, ndim, n])
        spacing = np.array(SPACING[:ndim])
        vox2world = np.diag([*spacing, 1.0])
        vox2world[:ndim, ndim] = [-10.0, 5.0, 3.0][:ndim]
        noise = self.rng.standard_normal(self.shape, dtype=np.float32)
        data = ndimage.gaussian_filter(noise, sigma=2.0, mode="wrap")
        data /= max(float(data.std()), 1e-12)
        self.image = parareg.Image(data, vox2world)
        self.spacing = spacing
        self.affine = self._rotation_shift()
        self.out2moving_vox = self.image.world2vox @ self.affine @ self.image.vox2world

    def _rotation_shift(self) -> np.ndarray:
        """World matrix: a ~5 degree rotation about the image centre plus a ~2 mm shift."""
        ndim = self.ndim
        if ndim == 2:
            t = np.deg2rad(5.0)
            rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        else:
            w = np.deg2rad([3.0, -4.0, 5.0])  # rotation vector -> Rodrigues
            angle = np.linalg.norm(w)
            k = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]]) / angle
            rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        centre = (self.image.vox2world @ np.r_[(np.array(self.shape) - 1) / 2, 1.0])[:ndim]
        shift = np.array([2.0, -1.5, 1.0][:ndim])
        affine = np.eye(ndim + 1)
        affine[:ndim, :ndim] = rot
        affine[:ndim, ndim] = centre - rot @ centre + shift
        return affine

    def field(self) -> np.ndarray:
        """Smooth random displacements, shape ``(*shape, ndim)``, float32 mm (up to ~3 mm).

        Each component is a sum of two separable products of sines with random
        frequencies (0.5 to 2 periods across the image) and phases.
        """
        ndim = self.ndim
        field = np.zeros((*self.shape, ndim), dtype=np.float32)
        amplitude = 1.5 * float(self.spacing.min())
        for c in range(ndim):
            for _ in range(2):
                freq = self.rng.uniform(0.5, 2.0, ndim)
                phase = self.rng.uniform(0.0, 2 * np.pi, ndim)
                term = np.float32(amplitude)
                for d in range(ndim):
                    line = np.sin(2 * np.pi * freq[d] * np.arange(self.n) / self.n + phase[d])
                    term = term * line.astype(np.float32).reshape(
                        [-1 if e == d else 1 for e in range(ndim)])
                field[..., c] += term
        return field

    def map_coordinates_points(self, field: np.ndarray) -> np.ndarray:
        """Moving-voxel coordinates of every reference voxel under ``field``, shape (ndim, *shape).

        The same arithmetic as the warp: ``world2vox @ (vox2world @ p + field[p])``.
        """
        ndim = self.ndim
        vox2world, world2vox = self.image.vox2world, self.image.world2vox
        index = [np.arange(self.n, dtype=np.float64).reshape(
            [-1 if e == d else 1 for e in range(ndim)]) for d in range(ndim)]
        world = []
        for e in range(ndim):
            w = field[..., e].astype(np.float64)
            w += vox2world[e, ndim]
            for k in range(ndim):
                w += vox2world[e, k] * index[k]
            world.append(w)
        coords = np.empty((ndim, *self.shape), dtype=np.float64)
        for d in range(ndim):
            coords[d] = world2vox[d, ndim]
            for e in range(ndim):
                coords[d] += world2vox[d, e] * world[e]
        return coords


def parareg_call(kernel: str, case: Case, threads: int, field=None):
    """A zero-argument call of the parareg kernel on ``case`` with ``threads`` threads."""
    image = case.image
    if kernel == "resample":
        return lambda: resample_zero_outside(image, image, affine=case.affine,
                                             num_threads=threads).data
    if kernel == "warp":
        return lambda: resample_zero_outside(image, image, field=field, num_threads=threads).data
    return lambda: parareg.gradient(image, num_threads=threads)


def reference_call(kernel: str, case: Case, coords=None):
    """A zero-argument call of the SciPy/NumPy equivalent (``numpy.gradient`` returns a list)."""
    data = case.image.data
    if kernel == "resample":
        return lambda: ndimage.affine_transform(data, case.out2moving_vox,
                                                output_shape=case.shape, order=1,
                                                mode="constant", cval=0.0)
    if kernel == "warp":
        return lambda: ndimage.map_coordinates(data, coords, order=1, mode="constant", cval=0.0)
    spacing = [float(s) for s in case.spacing]
    return lambda: np.gradient(data, *spacing)


# ----------------------------------------------------------------------------------------------
# measurements


def run_size_sweep(sizes: dict, parallel_threads: int, repeats: int, min_time: float,
                   seed: int) -> tuple[list, list]:
    """Time every kernel and mode at every size; return ``(records, agreement)``."""
    records, agreement = [], []
    for ndim in (2, 3):
        for n in sizes[ndim]:
            case = Case(ndim, n, seed)
            voxels = math.prod(case.shape)
            for kernel in KERNELS:
                common.log(f"size sweep: {kernel} {ndim}D {n}^{ndim}")
                field = case.field() if kernel == "warp" else None
                coords = case.map_coordinates_points(field) if kernel == "warp" else None
                calls = {"serial": parareg_call(kernel, case, 1, field),
                         "parallel": parareg_call(kernel, case, parallel_threads, field),
                         "reference": reference_call(kernel, case, coords)}
                timed = common.measure(calls, repeats=repeats, min_time=min_time)
                moved = bytes_per_voxel(kernel, ndim) * voxels
                for mode, t in timed.items():
                    threads = parallel_threads if mode == "parallel" else 1
                    records.append({"kernel": kernel, "ndim": ndim, "shape": list(case.shape),
                                    "voxels": voxels, "mode": mode, "threads": threads, **t,
                                    "bytes": moved, "gbps": moved / t["median_s"] / common.GB})
                serial, parallel, ref = (calls[m]() for m in MODES)
                if kernel == "gradient":
                    ref = np.stack(ref, axis=-1)
                agreement.append({
                    "kernel": kernel, "ndim": ndim, "shape": list(case.shape),
                    "max_abs_diff_vs_reference": float(np.max(np.abs(parallel - ref))),
                    "max_abs_reference": float(np.max(np.abs(ref))),
                    "serial_parallel_bit_identical": bool(np.array_equal(serial, parallel)),
                })
                del serial, parallel, ref, field, coords, calls
            del case
            gc.collect()
    return records, agreement


def run_thread_sweep(sweep_sizes: dict, thread_counts, repeats: int, min_time: float,
                     seed: int) -> list:
    """Time every parareg kernel at each thread count, one size per dimension."""
    results = []
    for ndim, n in sweep_sizes.items():
        case = Case(ndim, n, seed)
        voxels = math.prod(case.shape)
        for kernel in KERNELS:
            common.log(f"thread sweep: {kernel} {ndim}D {n}^{ndim}, threads {list(thread_counts)}")
            field = case.field() if kernel == "warp" else None
            timed = common.measure({t: parareg_call(kernel, case, t, field) for t in thread_counts},
                                   repeats=repeats, min_time=min_time)
            base = timed[1]["median_s"]
            for t, r in timed.items():
                results.append({"kernel": kernel, "ndim": ndim, "shape": list(case.shape),
                                "voxels": voxels, "threads": int(t), **r,
                                "speedup": base / r["median_s"],
                                "efficiency": base / r["median_s"] / t})
            del field
        del case
        gc.collect()
    return results


def fit_exponents(records) -> list:
    """Complexity exponent of every (kernel, ndim, mode) from its size sweep."""
    fits = []
    for ndim in (2, 3):
        for kernel in KERNELS:
            for mode in MODES:
                rows = [r for r in records
                        if (r["kernel"], r["ndim"], r["mode"]) == (kernel, ndim, mode)]
                fit = common.fit_power_law([r["voxels"] for r in rows],
                                           [r["median_s"] for r in rows])
                fits.append({"kernel": kernel, "ndim": ndim, "mode": mode, **fit})
    return fits


def speedups(records) -> list:
    """Per (kernel, ndim, size): serial, parallel and reference medians and their ratios."""
    table = {}
    for r in records:
        key = (r["kernel"], r["ndim"], r["shape"][0])
        entry = table.setdefault(key, {"kernel": r["kernel"], "ndim": r["ndim"],
                                       "shape": r["shape"], "voxels": r["voxels"]})
        entry[r["mode"]] = r["median_s"]
        entry[r["mode"] + "_min"] = r["min_s"]
    rows = list(table.values())
    for row in rows:
        row["speedup"] = row["serial"] / row["parallel"]
        # on minima: the noise-free estimate (interference on a VM only ever adds time)
        row["speedup_min"] = row["serial_min"] / row["parallel_min"]
        row["reference_over_parallel"] = row["reference"] / row["parallel"]
    return rows


def acceptance(rows, parallel_threads: int) -> dict:
    """The two acceptance criteria of the study, each with ``status`` PASS / FAIL / n/a."""
    warp = [r for r in rows if r["kernel"] == "warp" and r["ndim"] == 3
            and r["voxels"] >= WARP_MIN_VOXELS]
    if parallel_threads < 2 or not warp:
        why = ("only one thread" if parallel_threads < 2
               else f"no 3D warp size with >= {WARP_MIN_VOXELS:,} voxels in this run")
        warp_result = {"status": "n/a", "detail": why, "cases": []}
    else:
        ok = all(r["speedup"] >= WARP_MIN_SPEEDUP for r in warp)
        warp_result = {"status": "PASS" if ok else "FAIL", "cases": [
            {"shape": r["shape"], "speedup": r["speedup"],
             "speedup_min": r.get("speedup_min", float("nan"))}
            for r in warp]}
    if parallel_threads < 2:
        slow_result = {"status": "n/a", "detail": "only one thread", "worst": None}
    else:
        worst = min(rows, key=lambda r: r["speedup"])
        failing = [r for r in rows if r["parallel"] > MAX_SLOWDOWN * r["serial"]]
        slow_result = {"status": "FAIL" if failing else "PASS",
                       "worst": {k: worst[k] for k in ("kernel", "ndim", "shape", "speedup")},
                       "failing": [{k: r[k] for k in ("kernel", "ndim", "shape", "speedup")}
                                   for r in failing]}
    return {"warp_3d_speedup": {"threshold": WARP_MIN_SPEEDUP, "min_voxels": WARP_MIN_VOXELS,
                                "threads": parallel_threads, **warp_result},
            "no_parallel_slowdown": {"max_slowdown": MAX_SLOWDOWN,
                                     "threads": parallel_threads, **slow_result}}


# ----------------------------------------------------------------------------------------------
# report


def _size(shape) -> str:
    return f"{shape[0]}²" if len(shape) == 2 else f"{shape[0]}³"


def _name(kernel: str, ndim: int) -> str:
    return f"{kernel} {ndim}D"


def render_markdown(result: dict) -> str:
    machine, config = result["machine"], result["config"]
    versions = machine["versions"]
    p = config["parallel_threads"]
    lines = ["# parareg scaling study", ""]
    load = machine["load_average_at_start"]
    git = machine.get("git", {})
    revision = (f" (commit {git['commit'][:10]}{', modified' if git.get('dirty') else ''})"
                if git else "")
    lines += [
        f"- Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['usable_cpus']} usable), load average at start "
        f"{' / '.join(f'{x:.2f}' for x in load) if load else 'unknown'}; {machine['date']}",
        "- Software: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + revision,
        f"- Serial = `num_threads=1`, parallel = `num_threads={p}`; times are medians of "
        f"{config['repeats']} repeats after a warm-up call (compilation excluded); minima and "
        "every repeat are in `scaling.json`."
        + (" **Quick mode: tiny sizes, numbers are not meaningful.**" if config["quick"] else ""),
        "",
        "## Acceptance", "",
    ]
    acc = result["acceptance"]
    warp = acc["warp_3d_speedup"]
    warp_detail = (", ".join(f"{_size(c['shape'])}: {c['speedup']:.2f}× "
                             f"(on minima {c.get('speedup_min', float('nan')):.2f}×)"
                             for c in warp["cases"])
                   or warp.get("detail", ""))
    slow = acc["no_parallel_slowdown"]
    if slow["worst"]:
        w = slow["worst"]
        slow_detail = (f"worst: {_name(w['kernel'], w['ndim'])} {_size(w['shape'])} "
                       f"{w['speedup']:.3f}×")
        if slow["failing"]:
            slow_detail += "; failing: " + ", ".join(
                f"{_name(f['kernel'], f['ndim'])} {_size(f['shape'])} ({f['speedup']:.3f}×)"
                for f in slow["failing"])
    else:
        slow_detail = slow.get("detail", "")
    lines.append(common.markdown_table(["criterion", "result", "detail"], [
        [f"3D warp at ≥ {WARP_MIN_VOXELS / 1e6:g}M voxels: {p} threads ≥ "
         f"{WARP_MIN_SPEEDUP}× the 1-thread speed", f"**{warp['status']}**", warp_detail],
        [f"no kernel more than {100 * (MAX_SLOWDOWN - 1):.0f}% slower in parallel than serially "
         f"(speed-up ≥ {1 / MAX_SLOWDOWN:.3f}×) at any size", f"**{slow['status']}**",
         slow_detail]], align="lll"))

    lines += ["", "## Time vs image size", ""]
    fits = {(f["kernel"], f["ndim"], f["mode"]): f["exponent"] for f in result["fits"]}
    for ndim in (2, 3):
        for kernel in KERNELS:
            rows = [r for r in result["speedups"] if (r["kernel"], r["ndim"]) == (kernel, ndim)]
            lines += [f"### {_name(kernel, ndim)} — reference: {REFERENCES[kernel]}", ""]
            body = [[_size(r["shape"]), f"{r['voxels']:,}", common.format_time(r["serial"]),
                     common.format_time(r["parallel"]), common.format_time(r["reference"]),
                     f"{r['speedup']:.2f}×", f"{r['reference_over_parallel']:.2f}×"]
                    for r in rows]
            body.append(["fitted exponent", "", *(f"{fits[(kernel, ndim, m)]:.2f}"
                                                  for m in MODES), "", ""])
            lines += [common.markdown_table(
                ["size", "voxels", "serial", f"parallel ({p} thr)",
                 SHORT_REFERENCES[kernel], "parallel speed-up", f"{SHORT_REFERENCES[kernel]} / "
                 "parallel"], body), ""]
    lines += [
        "Notes: parareg times include input validation and output allocation (the public API). "
        "The `map_coordinates` reference gets its sampling coordinates precomputed outside the "
        "timed region (float64, `ndim × voxels`); `numpy.gradient` returns one array per axis, "
        "while `parareg.gradient` also interleaves them into a `(..., ndim)` array. SciPy and "
        "NumPy run on one thread. The fitted exponent is the least-squares slope of "
        "log(time) vs log(voxels) (1 = linear).", ""]

    lines += ["## Speed-up vs threads", ""]
    sweep = result["thread_sweep"]
    triad = {r["threads"]: r["gbps"] for r in result["bandwidth"]["results"]
             if r["kernel"] == "triad"}
    columns = [(k, d) for d in (2, 3) for k in KERNELS]
    shapes = {(r["kernel"], r["ndim"]): r["shape"] for r in sweep}
    lines += ["Speed-up over 1 thread (parallel efficiency); sizes: "
              + ", ".join(sorted({f"{d}D {_size(shapes[(k, d)])}" for k, d in columns
                                  if (k, d) in shapes})) + ". The triad column is the STREAM "
              "triad bandwidth speed-up: the ceiling for memory-bound kernels.", ""]
    cell = {(r["kernel"], r["ndim"], r["threads"]): r for r in sweep}
    body = []
    for t in result["config"]["threads"]:
        row = [str(t)]
        for k, d in columns:
            r = cell.get((k, d, t))
            row.append(f"{r['speedup']:.2f}× ({100 * r['efficiency']:.0f}%)" if r else "–")
        row.append(f"{triad[t] / triad[1]:.2f}×" if t in triad and 1 in triad else "–")
        body.append(row)
    lines += [common.markdown_table(["threads", *(_name(k, d) for k, d in columns), "triad"],
                                    body), ""]

    lines += ["## Effective memory bandwidth", ""]
    bw = result["bandwidth"]
    lines += [
        "Model (compulsory traffic, float32): resample = image in + image out (8 B/voxel); "
        "warp = image in + field in + image out (2D 16, 3D 20 B/voxel); gradient = image in + "
        "gradient out (2D 12, 3D 16 B/voxel). Interpolation neighbours are assumed cached. "
        "The same model is applied to the references, so their GB/s is a rescaled throughput. "
        f"Kernels at their largest size; copy/triad: STREAM convention (copy 16, triad 24 B per "
        f"float64 element, write-allocate not counted), {bw['array_bytes'] / 2**20:.0f} MiB "
        "per array, numba `nogil` loops on the parareg pool.", ""]
    largest = {}
    for r in result["speedups"]:
        key = (r["kernel"], r["ndim"])
        if key not in largest or r["voxels"] > largest[key]["voxels"]:
            largest[key] = r
    triad_p = triad.get(p, float("nan"))
    body = []
    for k, d in columns:
        r = largest[(k, d)]
        moved = bytes_per_voxel(k, d) * r["voxels"] / common.GB
        body.append([_name(k, d), _size(r["shape"]), str(bytes_per_voxel(k, d)),
                     f"{moved / r['serial']:.2f}", f"{moved / r['parallel']:.2f}",
                     f"{moved / r['reference']:.2f}",
                     f"{100 * moved / r['parallel'] / triad_p:.0f}%"])
    lines += [common.markdown_table(["kernel", "size", "B/voxel", "serial GB/s",
                                     f"parallel ({p} thr) GB/s", "reference GB/s",
                                     "parallel / triad"], body), ""]
    stream = {(r["kernel"], r["threads"]): r["gbps"] for r in bw["results"]}
    lines += [common.markdown_table(
        ["reference", "1 thread GB/s", f"{p} threads GB/s"],
        [[k, f"{stream[(k, 1)]:.2f}", f"{stream.get((k, p), float('nan')):.2f}"]
         for k in ("copy", "triad")]), ""]

    lines += ["## Agreement with the references", ""]
    body = []
    for k, d in columns:
        rows = [a for a in result["agreement"] if (a["kernel"], a["ndim"]) == (k, d)]
        body.append([_name(k, d), f"{max(a['max_abs_diff_vs_reference'] for a in rows):.2e}",
                     f"{max(a['max_abs_reference'] for a in rows):.2f}",
                     "yes" if all(a["serial_parallel_bit_identical"] for a in rows) else "**no**"])
    lines += [common.markdown_table(["kernel", "max abs(parareg − reference)",
                                     "max abs(reference)",
                                     "serial == parallel (bits), all sizes"], body), ""]
    lines += [f"Peak resident memory of the run: {result['peak_rss_gb']:.2f} GB; "
              f"wall time {result['wall_s']:.0f} s.", ""]
    return "\n".join(lines)


def plot(result: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = result["config"]["parallel_threads"]
    fits = {(f["kernel"], f["ndim"], f["mode"]): f["exponent"] for f in result["fits"]}
    labels = {"serial": "serial", "parallel": f"parallel ({p} thr)"}
    fig, axes = plt.subplots(2, 3, figsize=(13, 8), constrained_layout=True)
    for row, ndim in enumerate((2, 3)):
        for col, kernel in enumerate(KERNELS):
            ax = axes[row, col]
            for mode, style in zip(MODES, ("o-", "s-", "^--"), strict=True):
                rs = [r for r in result["records"]
                      if (r["kernel"], r["ndim"], r["mode"]) == (kernel, ndim, mode)]
                name = labels.get(mode, SHORT_REFERENCES[kernel])
                ax.loglog([r["voxels"] for r in rs], [r["median_s"] for r in rs], style,
                          label=f"{name} (p={fits[(kernel, ndim, mode)]:.2f})")
            ax.set_title(_name(kernel, ndim))
            ax.set_xlabel("voxels")
            ax.set_ylabel("time per call [s]")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8, title="time ∝ voxels^p", title_fontsize=8)
    fig.suptitle("parareg kernels: time vs image size")
    paths = [out / "time_vs_voxels.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    threads = result["config"]["threads"]
    for ndim in (2, 3):
        for colour, kernel in enumerate(KERNELS):
            rs = [r for r in result["thread_sweep"] if (r["kernel"], r["ndim"]) == (kernel, ndim)]
            if not rs:
                continue
            label = f"{_name(kernel, ndim)} {_size(rs[0]['shape'])}"
            style = {"marker": "o" if ndim == 2 else "s", "linestyle": "--" if ndim == 2
                     else "-", "color": f"C{colour}", "label": label}
            ax_s.plot([r["threads"] for r in rs], [r["speedup"] for r in rs], **style)
            ax_e.plot([r["threads"] for r in rs], [r["efficiency"] for r in rs], **style)
    triad = sorted((r["threads"], r["gbps"]) for r in result["bandwidth"]["results"]
                   if r["kernel"] == "triad")
    if triad and triad[0][0] == 1:
        ax_s.plot([t for t, _ in triad], [g / triad[0][1] for t, g in triad], "k--",
                  label="STREAM triad bandwidth")
    ax_s.plot(threads, threads, ":", color="grey", label="ideal")
    ax_e.axhline(1.0, linestyle=":", color="grey")
    ax_s.set(xlabel="threads", ylabel="speed-up over 1 thread", title="speed-up")
    ax_e.set(xlabel="threads", ylabel="speed-up / threads", title="parallel efficiency",
             ylim=(0, 1.15))
    for ax in (ax_s, ax_e):
        ax.set_xticks(threads)
        ax.grid(True, alpha=0.3)
    ax_s.legend(fontsize=8)
    paths.append(out / "speedup_vs_threads.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


# ----------------------------------------------------------------------------------------------
# command line


def _thread_list(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--threads takes comma-separated positive integers such as 1,2,4, got {text!r}"
        ) from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"--threads values must be >= 1, got {text!r}")
    return values


def default_threads() -> list[int]:
    """Every count from 1 to the usable CPUs (powers of two and the maximum above 16)."""
    n = common.usable_cpus()
    if n <= 16:
        return list(range(1, n + 1))
    return sorted({2**k for k in range(int(math.log2(n)) + 1)} | {n})


def _sizes(ladder, largest: int, quick: bool) -> list[int]:
    sizes = [n for n in ladder if n <= largest]
    if not quick and largest not in sizes or not sizes:
        sizes.append(largest)
    return sizes


def _get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Time parareg's resample/warp/gradient kernels vs image size and thread "
                    "count, against SciPy/NumPy; write JSON, markdown and PNG plots.")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out"
                        / "scaling", help="output folder (default: benchmarks/out/scaling)")
    parser.add_argument("--threads", type=_thread_list, default=None,
                        help="thread counts of the thread sweep, e.g. 1,2,4 (default: 1 to the "
                             "usable CPUs); the largest is the 'parallel' mode; 1 is always added")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per measurement (default 5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and arrays: a smoke run in seconds")
    parser.add_argument("--max-3d", type=int, default=256, help="largest 3D side (default 256)")
    parser.add_argument("--max-2d", type=int, default=1024, help="largest 2D side (default 1024)")
    parser.add_argument("--bandwidth-mib", type=float, default=None,
                        help="size of each copy/triad array, MiB (default 256; 8 with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test data")
    return parser


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    for name in ("max_3d", "max_2d"):
        if getattr(args, name) < 4:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 4")
    if args.repeats is not None and args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    quick = args.quick
    threads = sorted(set(args.threads or default_threads()) | {1})
    parallel_threads = threads[-1]
    repeats = args.repeats or (3 if quick else 5)
    min_time = 0.002 if quick else 0.02
    bandwidth_mib = args.bandwidth_mib or (8.0 if quick else 256.0)
    ladders = QUICK_SIZES if quick else SIZES
    sizes = {2: _sizes(ladders[2], args.max_2d, quick), 3: _sizes(ladders[3], args.max_3d, quick)}
    sweep = {d: max(s for s in sizes[d] if s <= SWEEP_SIZE[d]) if min(sizes[d]) <= SWEEP_SIZE[d]
             else min(sizes[d]) for d in (2, 3)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    machine = common.machine_info()
    machine["git"] = common.git_revision(__file__)
    common.log(f"scaling study: threads {threads}, sizes 2D {sizes[2]} 3D {sizes[3]}, "
               f"repeats {repeats} -> {out}")
    common.log("bandwidth: copy/triad")
    bandwidth = common.stream_bandwidth(int(bandwidth_mib * 2**20), threads, repeats=repeats,
                                        min_time=min_time)
    records, agreement = run_size_sweep(sizes, parallel_threads, repeats, min_time, args.seed)
    thread_sweep = run_thread_sweep(sweep, threads, repeats, min_time, args.seed)
    rows = speedups(records)
    result = {
        "schema": "parareg-benchmark-scaling/1",
        "machine": machine,
        "config": {"quick": quick, "threads": threads, "parallel_threads": parallel_threads,
                   "repeats": repeats, "min_time_s": min_time, "sizes_2d": sizes[2],
                   "sizes_3d": sizes[3], "thread_sweep_sizes": {f"{d}d": n
                                                                for d, n in sweep.items()},
                   "seed": args.seed, "grain_voxels": DEFAULT_GRAIN_VOXELS,
                   "references": REFERENCES,
                   "bytes_per_voxel": {f"{k}_{d}d": bytes_per_voxel(k, d)
                                       for d in (2, 3) for k in KERNELS}},
        "bandwidth": bandwidth,
        "records": records,
        "speedups": rows,
        "fits": fit_exponents(records),
        "thread_sweep": thread_sweep,
        "agreement": agreement,
        "acceptance": acceptance(rows, parallel_threads),
    }
    result["peak_rss_gb"] = common.peak_rss_gb()
    result["wall_s"] = time.perf_counter() - start
    markdown = render_markdown(result)
    common.write_json(out / "scaling.json", result)
    (out / "scaling.md").write_text(markdown, encoding="utf-8")
    plot(result, out)
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
