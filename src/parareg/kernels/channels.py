"""Kernels of multi-channel registration: the pieces that combine the channels' SyN forces.

Both run over a flat ``[start, stop)`` range of float32 values (a force
field seen as one long vector), serial, allocate nothing and validate
nothing. Arithmetic is float64.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel


@kernel
def sum_of_squares(values, start, stop):
    """``sum(values[start:stop] ** 2)`` in float64 (one work unit's partial)."""
    total = 0.0
    for i in range(start, stop):
        v = np.float64(values[i])
        total += v * v
    return total


@kernel
def scale_add(out, out_scale, values, scale, start, stop):
    """``out[i] = out_scale * out[i] + scale * values[i]`` for ``i`` in ``[start, stop)``,
    computed in float64 and stored as ``out``'s float32."""
    for i in range(start, stop):
        out[i] = out_scale * np.float64(out[i]) + scale * np.float64(values[i])
