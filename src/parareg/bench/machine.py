"""Small helpers shared by benchmark reports: the machine, a power-law fit, markdown tables.

Used by :mod:`parareg.bench.scaling` and by the scripts in ``benchmarks/`` (which import them
from here rather than keeping copies).
"""

from __future__ import annotations

import os
import platform

import numpy as np

__all__ = ["cpu_model", "fit_power_law", "markdown_table", "usable_cpus"]


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), falling back to ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def fit_power_law(sizes, times) -> dict:
    """Least-squares fit of ``log(time) = exponent * log(size) + log(prefactor)``.

    Returns ``{"exponent", "prefactor", "r2", "points"}``; the exponent is
    ``nan`` with fewer than two distinct sizes.

    Examples
    --------
    >>> fit = fit_power_law([10, 100, 1000], [2e-3, 2e-2, 2e-1])
    >>> round(fit["exponent"], 6), round(fit["prefactor"], 6)
    (1.0, 0.0002)
    """
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.asarray(times, dtype=np.float64))
    if x.size < 2 or np.ptp(x) == 0:
        return {"exponent": float("nan"), "prefactor": float("nan"), "r2": float("nan"),
                "points": int(x.size)}
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total = np.sum((y - y.mean()) ** 2)
    r2 = 1.0 - np.sum(residual**2) / total if total > 0 else 1.0
    return {"exponent": float(slope), "prefactor": float(np.exp(intercept)), "r2": float(r2),
            "points": int(x.size)}


def markdown_table(headers, rows, align=None) -> str:
    """A GitHub markdown table; ``align`` is a string of ``l``/``r`` per column (default: text
    left, the rest right)."""
    if align is None:
        align = "l" + "r" * (len(headers) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
