"""Partitioners: full coverage, in order, no overlap, independent of the thread count."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parareg
from parareg.parallel import (
    adaptive,
    axis0_ranges,
    map as map_module,
    partition,
    partition_items,
    partition_range,
    partition_slabs,
    pool,
    threader,
)

pytestmark = pytest.mark.usefixtures("clean_threads")

grains = st.integers(1, 60)
shapes = st.lists(st.integers(0, 9), min_size=1, max_size=4).map(tuple)
BAD_GRAINS = [0, -1, -100, 1.0, 2.5, True, "4", None, np.float64(4.0)]


def check_contiguous(ranges, start, stop, grain):
    """``ranges`` tile ``[start, stop)`` in order with ``grain``-long pieces (last shorter)."""
    assert all(b < e for b, e in ranges)
    assert [b for b, _ in ranges] == list(range(start, stop, grain))
    assert [e for _, e in ranges[:-1]] == [b for b, _ in ranges[1:]]  # no gap, no overlap
    if ranges:
        assert ranges[-1][1] == stop
        assert all(e - b == grain for b, e in ranges[:-1])
        assert 1 <= ranges[-1][1] - ranges[-1][0] <= grain
    assert len(ranges) == math.ceil((stop - start) / grain)


@settings(max_examples=80, deadline=None)
@given(start=st.integers(-50, 50), length=st.integers(0, 400), grain=grains)
def test_partition_range_tiles_the_range(start, length, grain):
    ranges = partition_range(start, start + length, grain=grain)
    check_contiguous(ranges, start, start + length, grain)
    covered = [i for b, e in ranges for i in range(b, e)]
    assert covered == list(range(start, start + length))


@settings(max_examples=60, deadline=None)
@given(items=st.lists(st.integers()), grain=grains)
def test_partition_items_chunks_in_order(items, grain):
    chunks = partition_items(items, grain=grain)
    assert [x for chunk in chunks for x in chunk] == items
    assert all(len(chunk) == grain for chunk in chunks[:-1])
    assert all(1 <= len(chunk) <= grain for chunk in chunks)
    assert len(chunks) == math.ceil(len(items) / grain)


def test_partition_items_accepts_any_iterable():
    assert partition_items(iter("abcde"), grain=2) == [["a", "b"], ["c", "d"], ["e"]]
    assert partition_items((), grain=3) == []


@settings(max_examples=80, deadline=None)
@given(shape=shapes, grain=grains)
def test_partition_slabs_cover_every_voxel_once(shape, grain):
    slabs = partition_slabs(shape, grain=grain)
    hits = np.zeros(shape, dtype=np.int64)
    for slab in slabs:
        assert len(slab) == len(shape)
        assert hits[slab].size > 0  # no empty slabs
        hits[slab] += 1
    assert np.all(hits == 1)
    if not slabs:
        assert math.prod(shape) == 0
        return
    # slabs cut a single axis, the outermost one longer than 1, in order
    axis = next((a for a, n in enumerate(shape) if n > 1), 0)
    for slab in slabs:
        for a, s in enumerate(slab):
            if a != axis:
                assert (s.start, s.stop) == (0, shape[a])
    bounds = [(s[axis].start, s[axis].stop) for s in slabs]
    plane = math.prod(shape[axis + 1:])
    check_contiguous(bounds, 0, shape[axis], max(1, grain // plane))


@settings(max_examples=80, deadline=None)
@given(shape=shapes, grain=grains)
def test_axis0_ranges_cover_axis0(shape, grain):
    ranges = axis0_ranges(shape, grain=grain)
    if math.prod(shape) == 0:
        assert ranges == []
        return
    plane = math.prod(shape[1:])
    thickness = max(1, grain // plane)
    check_contiguous(ranges, 0, shape[0], thickness)
    # each unit holds about grain voxels: never more than one plane over
    assert all((e - b) * plane <= max(grain, plane) for b, e in ranges)


def test_axis0_ranges_of_an_image():
    assert axis0_ranges((10, 4, 5), grain=60) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert axis0_ranges((3, 100), grain=10) == [(0, 1), (1, 2), (2, 3)]  # at least one row


def test_partition_slabs_skips_leading_singletons():
    assert partition_slabs((1, 4, 2), grain=4) == [
        (slice(0, 1), slice(0, 2), slice(0, 2)),
        (slice(0, 1), slice(2, 4), slice(0, 2)),
    ]
    assert partition_slabs((1, 1, 1), grain=5) == [(slice(0, 1),) * 3]


@settings(max_examples=30, deadline=None)
@given(shape=shapes, grain=grains, length=st.integers(0, 200))
def test_units_do_not_depend_on_thread_count(shape, grain, length):
    def everything():
        return (partition_range(0, length, grain=grain),
                partition_items(range(length), grain=grain),
                partition_slabs(shape, grain=grain),
                axis0_ranges(shape, grain=grain))

    reference = everything()
    for n in (1, 2, 3, 16):
        with parareg.threads(n):
            assert everything() == reference
    pool.set_num_threads(7)
    try:
        assert everything() == reference
    finally:
        pool._reset_num_threads()


def test_numpy_integer_grain_accepted():
    assert partition_range(0, 5, grain=np.int64(2)) == [(0, 2), (2, 4), (4, 5)]
    assert axis0_ranges((4, 2), grain=np.int32(4)) == [(0, 2), (2, 4)]


@pytest.mark.parametrize("bad", BAD_GRAINS)
def test_bad_grain(bad):
    with pytest.raises(ValueError, match="grain must be a positive integer"):
        partition_range(0, 10, grain=bad)
    with pytest.raises(ValueError, match="grain must be a positive integer"):
        partition_items([1, 2, 3], grain=bad)
    with pytest.raises(ValueError, match="grain must be a positive integer"):
        partition_slabs((4, 4), grain=bad)
    with pytest.raises(ValueError, match="grain must be a positive integer"):
        axis0_ranges((4, 4), grain=bad)


def test_bad_domains():
    with pytest.raises(ValueError, match="stop must be >= start"):
        partition_range(5, 2, grain=1)
    with pytest.raises(ValueError, match="non-negative"):
        partition_slabs((3, -1), grain=4)
    with pytest.raises(ValueError, match="shape"):
        partition_slabs((), grain=4)


@pytest.mark.parametrize("module", [partition, pool, threader, map_module, adaptive])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
