"""Partitioners: pure functions that split a domain into work units.

Work units depend only on the domain and a grain size, never on the number
of threads; this is what makes every reduction in parareg bit-identical at
any thread count (units are reduced in unit order).

Examples
--------
>>> partition_range(0, 10, grain=4)
[(0, 4), (4, 8), (8, 10)]
>>> partition_items(["a", "b", "c"], grain=2)
[['a', 'b'], ['c']]
>>> partition_slabs((4, 5, 6), grain=60)
[(slice(0, 2, None), slice(0, 5, None), slice(0, 6, None)), (slice(2, 4, None), slice(0, 5, None), slice(0, 6, None))]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .._config import as_index


def _check_grain(grain) -> int:
    value = as_index(grain)  # any integer type (NumPy's included), not bool or float
    if value is None or value < 1:
        raise ValueError(f"grain must be a positive integer, got {grain!r}")
    return value


def partition_range(start: int, stop: int, *, grain: int) -> list[tuple[int, int]]:
    """Split ``[start, stop)`` into contiguous ``(begin, end)`` ranges of ``grain`` indices.

    The last range may be shorter. An empty range gives an empty list.
    """
    grain = _check_grain(grain)
    if stop < start:
        raise ValueError(f"stop must be >= start, got start={start}, stop={stop}")
    return [(b, min(b + grain, stop)) for b in range(start, stop, grain)]


def partition_items(items: Sequence, *, grain: int) -> list[list]:
    """Split a sequence into consecutive chunks of ``grain`` items (the last may be shorter)."""
    grain = _check_grain(grain)
    items = list(items)
    return [items[b : b + grain] for b in range(0, len(items), grain)]


def slab_axis(shape: Sequence[int]) -> int:
    """The outermost axis of ``shape`` whose length is more than one (0 if none is)."""
    for axis, n in enumerate(shape):
        if n > 1:
            return axis
    return 0


def partition_slabs(shape: Sequence[int], *, grain: int) -> list[tuple[slice, ...]]:
    """Split an image region into slabs along its outermost non-singleton axis.

    Each slab holds whole hyperplanes and about ``grain`` voxels (at least one
    hyperplane). Returns one tuple of slices per slab, usable as ``array[slab]``.
    """
    grain = _check_grain(grain)
    shape = tuple(int(n) for n in shape)
    if not shape or any(n < 0 for n in shape):
        raise ValueError(f"shape must hold one or more non-negative lengths, got {shape}")
    if math.prod(shape) == 0:
        return []
    axis = slab_axis(shape)
    plane = math.prod(shape[axis + 1 :])
    thickness = max(1, grain // max(plane, 1))
    full = [slice(0, n) for n in shape]
    slabs = []
    for begin, end in partition_range(0, shape[axis], grain=thickness):
        region = list(full)
        region[axis] = slice(begin, end)
        slabs.append(tuple(region))
    return slabs


def axis0_ranges(shape: Sequence[int], *, grain: int) -> list[tuple[int, int]]:
    """Slabs of whole rows along axis 0 as ``(start, stop)`` pairs, about ``grain`` voxels each.

    This is the unit kernels iterate over: ``kernel(..., start, stop)`` covers
    ``array[start:stop]``.
    """
    grain = _check_grain(grain)
    shape = tuple(int(n) for n in shape)
    if not shape or math.prod(shape) == 0:
        return []
    plane = math.prod(shape[1:])
    thickness = max(1, grain // max(plane, 1))
    return partition_range(0, shape[0], grain=thickness)
