"""How much memory a registration needs, checked before the big arrays are allocated.

:func:`estimate` predicts the peak resident memory (RSS) of a registration from
the two grids, the pyramid levels and the transform model (how each term was
derived and calibrated: :mod:`parareg.memory.model`); :func:`check` compares it
with the memory this process may still use (:func:`available_memory`) and with
a user limit (``max_memory``), and raises :class:`InsufficientMemoryError`
naming the estimate, the limit and what to change.

Examples
--------
>>> from parareg.memory import estimate
>>> print(estimate((160, 192, 224), (256, 256, 256)).phase)
SyN level 3/3 (shrink 1): metric
"""

from .check import (
    InsufficientMemoryError,
    advice,
    check,
    check_registration,
    estimate_registration,
)
from .limits import ENV_MEMORY_CHECK, available_memory, measure_peak_rss, parse_size
from .model import BASELINE_BYTES, MemoryEstimate, estimate, format_bytes

__all__ = [
    "BASELINE_BYTES",
    "ENV_MEMORY_CHECK",
    "InsufficientMemoryError",
    "MemoryEstimate",
    "advice",
    "available_memory",
    "check",
    "check_registration",
    "estimate",
    "estimate_registration",
    "format_bytes",
    "measure_peak_rss",
    "parse_size",
]
