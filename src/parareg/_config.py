"""Library-wide defaults and the environment variables that override them.

``PARAREG_NUM_THREADS``
    Default number of threads when neither a ``num_threads`` argument nor
    :func:`parareg.set_num_threads` says otherwise. Falls back to
    ``os.cpu_count()``.
"""

from __future__ import annotations

import operator
import os

ENV_NUM_THREADS = "PARAREG_NUM_THREADS"

#: Voxels per work unit of an image kernel. Work units are fixed by the
#: domain and this grain, never by the thread count, so results are
#: bit-identical at any thread count.
DEFAULT_GRAIN_VOXELS = 32_768

#: Grain of cheap, memory-bound kernels (finite differences): a unit must hold
#: well over the ~50 us it costs to hand it to another thread.
CHEAP_GRAIN_VOXELS = 262_144


def as_index(value) -> int | None:
    """``value`` as an ``int`` if it is an integer (NumPy's too) but not a bool, else ``None``.

    Floats, strings and float arrays give ``None`` rather than being truncated.
    """
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_num_threads(value, *, name: str = "num_threads") -> int:
    """Return ``value`` as a positive ``int`` or raise a ``ValueError`` naming ``name``."""
    original, value = value, as_index(value)
    if value is None:
        raise ValueError(f"{name} must be a positive integer, got {original!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (1 or more), got {value!r}")
    return value


def env_num_threads() -> int | None:
    """Thread count from ``PARAREG_NUM_THREADS``, or ``None`` when unset or empty."""
    raw = os.environ.get(ENV_NUM_THREADS, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{ENV_NUM_THREADS} must be a positive integer, got {raw!r}; "
            f"unset it or set e.g. {ENV_NUM_THREADS}=4"
        ) from None
    return check_num_threads(value, name=ENV_NUM_THREADS)
