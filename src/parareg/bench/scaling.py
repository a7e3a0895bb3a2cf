"""Scaling of one registration: time vs thread count and vs image size, and its reproducibility.

The pair is shrunk by each factor with
:func:`~parareg.registration.pyramid.pyramid_level` (Gaussian ``sigma = 0.5 *
(factor - 1)`` voxels), and at each size :func:`parareg.register` is timed at
every thread count. This is the foundation's kernel scaling study
(``benchmarks/scaling.py``) applied to a whole registration, with the same
conventions:

* one untimed warm-up registration per size first (numba compilation, first
  touch of memory and thread start-up are not timed);
* the thread counts are interleaved repeat by repeat, so a burst of load from
  elsewhere hits all of them alike and their ratios stay meaningful;
* a time is the median of the repeats (every repeat and the minimum are kept);
* the fitted exponent is the least-squares slope of log(time) vs log(voxels).

The warped images of every run at a size must be bit-identical (any thread
count, any repeat); each run records whether it is (``identical``).

>>> from parareg.bench.scaling import default_threads
>>> default_threads(6)
[1, 2, 4, 6]
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

SCHEMA = "parareg-registration-scaling/1"
SCALING_JSON = "scaling.json"
SCALING_MD = "scaling.md"
SPEEDUP_PNG = "speedup.png"
TIME_PNG = "time_vs_voxels.png"

from .machine import cpu_model as _cpu_model
from .machine import fit_power_law
from .machine import markdown_table as _table

__all__ = ["SCALING_JSON", "SCALING_MD", "SPEEDUP_PNG", "TIME_PNG", "default_threads",
           "registration_scaling", "render_markdown", "write_outputs"]


# --- machine --------------------------------------------------------------------------------


def _machine() -> dict:
    from .runner import _usable_cpus

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
            "usable_cpus": _usable_cpus(), "platform": platform.platform(),
            "load_average_at_start": list(load) if load else None}


def default_threads(n: int | None = None) -> list[int]:
    """Powers of two up to ``n`` CPUs, and ``n`` itself.

    ``n`` defaults to the CPUs this process may use (``os.cpu_count()`` unless
    its affinity mask allows fewer).
    """
    if n is None:
        from .runner import _usable_cpus

        n = _usable_cpus()
    n = max(1, int(n))
    return sorted({2**k for k in range(n.bit_length()) if 2**k <= n} | {n})


# --- validation -----------------------------------------------------------------------------


def _positive_ints(values, *, name: str) -> list[int]:
    from .._config import as_index

    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence of positive integers, got {values!r}") \
            from None
    checked = [as_index(v) for v in values]
    if not checked or any(v is None or v < 1 for v in checked):
        raise ValueError(f"{name} must be a non-empty sequence of positive integers, "
                         f"got {values!r}")
    return checked


# --- fits -----------------------------------------------------------------------------------


# --- the study ------------------------------------------------------------------------------


def _digest(result) -> tuple[str, np.ndarray, np.ndarray]:
    warped = np.ascontiguousarray(result.warped.data)
    return hashlib.sha256(warped.tobytes()).hexdigest(), warped, result.affine.matrix


def registration_scaling(fixed, moving, *, transform: str = "syn", preset: str = "fast",
                         threads=None, factors=(4, 2, 1), repeats: int = 1, out=None,
                         progress=None) -> dict:
    """Time one registration at several thread counts and image sizes.

    Parameters
    ----------
    fixed, moving : Image or path
        A 2D or 3D pair (both of the same dimensionality).
    transform : {"syn", "affine", "rigid"}
    preset : {"fast", "default", "accurate"}
        As in :func:`parareg.register`.
    threads : sequence of int, optional
        Thread counts; 1 is always added (speed-ups are relative to it).
        Default: :func:`default_threads`.
    factors : sequence of int
        Shrink factors of the pair, one image size each (1 is full size);
        each image is smoothed by ``0.5 * (factor - 1)`` voxels first.
    repeats : int
        Timed registrations per (size, thread count).
    out : path, optional
        Folder (created if needed) for ``scaling.json``, ``scaling.md``,
        ``speedup.png`` and ``time_vs_voxels.png`` (see :func:`write_outputs`).
    progress : callable, optional
        Called with ``{"factor", "shape", "threads", "repeat", "seconds"}``
        after each timed run (``threads`` is ``"warm-up"`` for the warm-ups).

    Returns
    -------
    dict
        ``machine``, ``versions``, ``config``, ``runs`` (one per size and
        thread count: ``factor``, ``shape``, ``voxels``, ``threads``,
        ``seconds`` (median), ``min_s``, ``times_s``, ``stages_s``, ``speedup``,
        ``efficiency``, ``identical``, ``warped_sha256``), ``fits`` (time vs
        voxels per thread count), ``identical`` (all runs), ``wall_s`` and,
        with ``out``, ``files``.

    Examples
    --------
    >>> from parareg.bench.scaling import registration_scaling
    >>> result = registration_scaling("fixed.nii.gz", "moving.nii.gz", transform="affine",
    ...                               threads=(1, 2), factors=(2, 1))  # doctest: +SKIP
    >>> result["identical"]  # doctest: +SKIP
    True
    """
    from ..image import as_image
    from ..registration import register
    from ..registration.pipeline import AFFINE_PIPELINES, SYN_PRESETS
    from ..registration.pyramid import pyramid_level

    if transform not in AFFINE_PIPELINES:
        raise ValueError(f"transform must be one of {sorted(AFFINE_PIPELINES)}, "
                         f"got {transform!r}")
    if preset not in SYN_PRESETS:
        raise ValueError(f"preset must be one of {sorted(SYN_PRESETS)}, got {preset!r}")
    threads = sorted(set(_positive_ints(default_threads() if threads is None else threads,
                                        name="threads")) | {1})
    factors = sorted(set(_positive_ints(factors, name="factors")), reverse=True)
    repeats = _positive_ints([repeats], name="repeats")[0]
    names = {"fixed": str(fixed) if isinstance(fixed, (str, os.PathLike)) else None,
             "moving": str(moving) if isinstance(moving, (str, os.PathLike)) else None}
    fixed = as_image(fixed, name="fixed")
    moving = as_image(moving, name="moving")
    if fixed.ndim != moving.ndim:
        raise ValueError(f"fixed is {fixed.ndim}D but moving is {moving.ndim}D; "
                         "use a pair of the same dimensionality")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    if threads[-1] > machine["usable_cpus"]:
        warnings.warn(f"{threads[-1]} threads on {machine['usable_cpus']} usable CPUs: counts "
                      "above the CPUs oversubscribe them and measure no extra speed-up",
                      stacklevel=2)
    report = progress or (lambda info: None)

    start = time.perf_counter()
    runs = []
    for factor in factors:
        sigma = 0.5 * (factor - 1)
        fixed_level = pyramid_level(fixed, factor=factor, sigma=sigma)
        moving_level = pyramid_level(moving, factor=factor, sigma=sigma)
        shape = list(fixed_level.shape)

        def one(num_threads, fixed_level=fixed_level, moving_level=moving_level):
            t0 = time.perf_counter()
            result = register(fixed_level, moving_level, transform=transform, preset=preset,
                              num_threads=num_threads)
            return time.perf_counter() - t0, result

        seconds, _ = one(threads[-1])  # warm-up: compilation and first touch
        report({"factor": factor, "shape": shape, "threads": "warm-up", "repeat": 0,
                "seconds": seconds})
        times = {t: [] for t in threads}
        stages = {t: [] for t in threads}
        digests = {t: [] for t in threads}
        reference = None
        for repeat in range(repeats):
            for t in threads:
                seconds, result = one(t)
                times[t].append(seconds)
                stages[t].append(dict(result.seconds))
                sha, warped, matrix = _digest(result)
                if reference is None:
                    reference = (warped, matrix)
                same = (np.array_equal(warped, reference[0])
                        and np.array_equal(matrix, reference[1]))
                digests[t].append((sha, same))
                del result, warped
                report({"factor": factor, "shape": shape, "threads": t, "repeat": repeat,
                        "seconds": seconds})
        base = float(np.median(times[1]))
        for t in threads:
            median = float(np.median(times[t]))
            runs.append({
                "factor": factor, "sigma_vox": sigma, "shape": shape,
                "moving_shape": list(moving_level.shape),
                "voxels": int(math.prod(shape)), "threads": t, "seconds": median,
                "min_s": float(np.min(times[t])), "times_s": times[t],
                "stages_s": {k: float(np.median([s.get(k, math.nan) for s in stages[t]]))
                             for k in stages[t][0]},
                "speedup": base / median, "efficiency": base / median / t,
                "identical": all(same for _, same in digests[t]),
                "warped_sha256": digests[t][0][0]})
        del reference

    fits = []
    for t in threads:
        rows = [r for r in runs if r["threads"] == t]
        fits.append({"threads": t, **fit_power_law([r["voxels"] for r in rows],
                                                   [r["seconds"] for r in rows])})
    from .runner import _versions

    study = {
        "schema": SCHEMA, "machine": machine, "versions": _versions(),
        "config": {**names, "fixed_shape": list(fixed.shape), "moving_shape": list(moving.shape),
                   "ndim": fixed.ndim, "transform": transform, "preset": preset,
                   "threads": threads, "factors": factors, "repeats": repeats,
                   "warm_up": "one untimed registration per size at the most threads",
                   "sigma_vox": "0.5 * (factor - 1)"},
        "runs": runs, "fits": fits, "identical": all(r["identical"] for r in runs),
        "wall_s": time.perf_counter() - start,
    }
    if out is not None:
        study["files"] = [str(p) for p in write_outputs(study, out)]
    return study


# --- outputs --------------------------------------------------------------------------------


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


def _size(run) -> str:
    return f"{' × '.join(map(str, run['shape']))} (÷{run['factor']})"


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _seconds(value) -> str:
    return f"{value:.3g} s" if _finite(value) else "–"


def render_markdown(study: dict) -> str:
    """``scaling.md``: setup, time table, speed-up table, exponents, reproducibility."""
    machine, config, runs = study["machine"], study["config"], study["runs"]
    threads, factors = config["threads"], config["factors"]
    cell = {(r["factor"], r["threads"]): r for r in runs}
    sizes = [cell[(f, 1)] for f in factors]
    load = machine.get("load_average_at_start")
    software = ", ".join(f"{k} {v}" for k, v in study["versions"].items() if v)
    pair = (f"`{config['fixed']}` ← `{config['moving']}`" if config.get("fixed") else "images")
    lines = [
        "# parareg registration scaling", "",
        f"- Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['usable_cpus']} usable), load average at start "
        f"{' / '.join(f'{x:.2f}' for x in load) if load else 'unknown'}; {machine['date']}",
        f"- Software: {software}",
        f"- Registration: `parareg.register(transform={config['transform']!r}, "
        f"preset={config['preset']!r})` of {pair}, {config['ndim']}D, full size "
        f"{' × '.join(map(str, config['fixed_shape']))}; smaller sizes are the pair shrunk by "
        "each factor after a Gaussian of 0.5 × (factor − 1) voxels.",
        f"- Each time is the median of {config['repeats']} registration(s) after one untimed "
        "warm-up per size (compilation excluded); thread counts are interleaved within a "
        f"repeat. Every repeat is in `{SCALING_JSON}`.", "",
        "## Time", "",
        _table(["size (factor)", "voxels", *(f"{t} thr" for t in threads)],
               [[_size(s), f"{s['voxels']:,}",
                 *(_seconds(cell[(s['factor'], t)]['seconds']) for t in threads)]
                for s in sizes]), "",
        "## Speed-up over 1 thread (efficiency)", "",
        _table(["size (factor)", *(f"{t} thr" for t in threads)],
               [[_size(s), *(f"{cell[(s['factor'], t)]['speedup']:.2f}× "
                             f"({100 * cell[(s['factor'], t)]['efficiency']:.0f}%)"
                             for t in threads)] for s in sizes]), "",
        "## Time vs voxels", "",
    ]
    fits = {f["threads"]: f for f in study["fits"]}
    top = fits[threads[-1]]

    def exponent(fit) -> str:
        return f"{fit['exponent']:.2f}" if _finite(fit["exponent"]) else "– (one size)"

    lines += [f"Fitted exponent p of time ∝ voxels^p at {threads[-1]} thread(s): "
              f"**{exponent(top)}** ({top['points']} sizes; 1 = linear).", "",
              _table(["threads", "exponent p", "R²"],
                     [[str(t), exponent(fits[t]),
                       f"{fits[t]['r2']:.3f}" if _finite(fits[t]["r2"]) else "–"]
                      for t in threads]), "",
              "## Reproducibility", ""]
    if study["identical"]:
        lines.append("Warped images (and affine matrices) are **bit-identical** across thread "
                     "counts and repeats at every size.")
    else:
        bad = sorted({_size(r) for r in runs if not r["identical"]})
        lines.append("**Not bit-identical** across thread counts at: " + ", ".join(bad) + ".")
    lines += ["", f"Wall time of the study: {study['wall_s']:.1f} s.", ""]
    return "\n".join(lines)


def _new_figure(width, height):
    from .report import _new_figure as new_figure  # the object-oriented Agg API, no pyplot

    return new_figure(width, height)


def _speedup_figure(study: dict):
    threads, factors = study["config"]["threads"], study["config"]["factors"]
    fig = _new_figure(11, 4.5)
    ax_s, ax_e = fig.subplots(1, 2)
    for colour, factor in enumerate(factors):
        rows = sorted((r for r in study["runs"] if r["factor"] == factor),
                      key=lambda r: r["threads"])
        style = {"marker": "o", "color": f"C{colour}", "label": _size(rows[0])}
        ax_s.plot([r["threads"] for r in rows], [r["speedup"] for r in rows], **style)
        ax_e.plot([r["threads"] for r in rows], [r["efficiency"] for r in rows], **style)
    ax_s.plot(threads, threads, ":", color="grey", label="ideal")
    ax_e.axhline(1.0, linestyle=":", color="grey")
    ax_s.set(xlabel="threads", ylabel="speed-up over 1 thread", title="speed-up")
    ax_e.set(xlabel="threads", ylabel="speed-up / threads", title="parallel efficiency",
             ylim=(0, 1.15))
    for ax in (ax_s, ax_e):
        ax.set_xticks(threads)
        ax.grid(True, alpha=0.3)
    ax_s.legend(fontsize=8)
    config = study["config"]
    fig.suptitle(f"parareg.register ({config['transform']}, {config['preset']}): speed-up")
    fig.tight_layout()
    return fig


def _time_figure(study: dict):
    fits = {f["threads"]: f["exponent"] for f in study["fits"]}
    fig = _new_figure(6.5, 5)
    ax = fig.subplots()
    for colour, t in enumerate(study["config"]["threads"]):
        rows = sorted((r for r in study["runs"] if r["threads"] == t), key=lambda r: r["voxels"])
        p = fits[t]
        label = f"{t} thread(s)" + (f" (p = {p:.2f})" if _finite(p) else "")
        ax.loglog([r["voxels"] for r in rows], [r["seconds"] for r in rows], "o-",
                  color=f"C{colour}", label=label)
    ax.set(xlabel="voxels (fixed grid)", ylabel="registration time [s]",
           title="time vs image size")
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, ax.yaxis):  # decade labels only: minor ones overlap
        axis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, title="time ∝ voxels^p", title_fontsize=8)
    fig.tight_layout()
    return fig


def write_outputs(study: dict, out) -> list[Path]:
    """Write ``scaling.json``, ``scaling.md`` and the two plots into ``out``; return the paths.

    Each file is written atomically and the set is all-or-nothing: if one
    fails, those already written are removed. Without matplotlib the plots
    are left out with a warning.
    """
    import importlib.util

    from ..io.outputs import OutputSet

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writers = [
        (SCALING_JSON, lambda tmp: Path(tmp).write_text(
            json.dumps(_jsonable(study), indent=2) + "\n", encoding="utf-8")),
        (SCALING_MD, lambda tmp: Path(tmp).write_text(render_markdown(study),
                                                      encoding="utf-8")),
    ]
    if importlib.util.find_spec("matplotlib") is None:
        warnings.warn("matplotlib is not installed, so the plots are left out: "
                      "pip install 'parareg[bench]'", stacklevel=2)
    else:
        for name, make in ((SPEEDUP_PNG, _speedup_figure), (TIME_PNG, _time_figure)):
            writers.append((name, lambda tmp, make=make: make(study).savefig(
                tmp, format="png", dpi=110)))
    with OutputSet(num_threads=1) as outputs:
        for name, write in writers:
            outputs.add(out / name, write)
    return outputs.paths
