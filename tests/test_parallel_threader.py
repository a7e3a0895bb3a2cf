"""DomainThreader, SlabThreader, for_each_slab, unit_buffers and reduce_units."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from parareg.parallel import (
    SCHEDULES,
    DomainThreader,
    SlabThreader,
    axis0_ranges,
    for_each_slab,
    partition_range,
    reduce_units,
    unit_buffers,
)

pytestmark = pytest.mark.usefixtures("clean_threads")

THREADS = [1, 2, 3]


def awkward_floats(n, seed=0):
    """float32 values over many orders of magnitude and both signs: sums depend on order."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0.0, 6.0, n) * rng.choice([-1.0, 1.0], n)
    return values.astype(np.float32)


class Sum(DomainThreader):
    """Sum of a float32 vector, accumulated in float64 per-unit buffers."""

    def __init__(self, *, grain=4096, **kwargs):
        super().__init__(**kwargs)
        self.grain = grain
        self.calls = []
        self.lock = threading.Lock()

    def partition(self, domain):
        return partition_range(0, domain.size, grain=self.grain)

    def before(self, domain, subdomains):
        self.calls.append(("before", threading.get_ident()))
        self.data = domain
        self.partials = unit_buffers(len(subdomains))

    def threaded(self, unit, subdomain):
        start, stop = subdomain
        with self.lock:
            self.calls.append(("threaded", unit))
        self.partials[unit] = np.sum(self.data[start:stop], dtype=np.float64)

    def after(self):
        self.calls.append(("after", threading.get_ident()))
        return reduce_units(self.partials)


def serial_sum(data, grain):
    total = 0.0
    for start, stop in partition_range(0, data.size, grain=grain):
        total += np.sum(data[start:stop], dtype=np.float64)
    return np.float64(total)


def test_sum_is_bit_identical_across_threads_and_schedules():
    data = awkward_floats(200_003)
    reference = serial_sum(data, 4096)
    results = {}
    for schedule in SCHEDULES:
        for n in THREADS:
            results[schedule, n] = Sum(num_threads=n, schedule=schedule).execute(data)
    bits = {key: value.tobytes() for key, value in results.items()}
    assert set(bits.values()) == {reference.tobytes()}, results
    # the check has teeth: summing the same partials in another order changes the bits
    partials = [np.sum(data[b:e], dtype=np.float64)
                for b, e in partition_range(0, data.size, grain=4096)]
    assert np.float64(sum(reversed(partials))).tobytes() != reference.tobytes()


def test_hooks_run_in_order_in_the_caller():
    data = awkward_floats(50_000, seed=1)
    summer = Sum(grain=500, num_threads=3, schedule="dynamic")
    summer.execute(data)
    caller = threading.get_ident()
    assert summer.calls[0] == ("before", caller)
    assert summer.calls[-1] == ("after", caller)
    units = sorted(unit for kind, unit in summer.calls[1:-1])
    assert units == list(range(100))


def test_default_thread_count_gives_the_same_bits(monkeypatch):
    data = awkward_floats(30_000, seed=2)
    reference = serial_sum(data, 1000)
    for raw in ("1", "2", "3"):
        monkeypatch.setenv("PARAREG_NUM_THREADS", raw)
        assert Sum(grain=1000).execute(data).tobytes() == reference.tobytes()


def test_threader_error_propagates():
    class Failing(Sum):
        def threaded(self, unit, subdomain):
            super().threaded(unit, subdomain)
            if unit in (3, 7):
                raise RuntimeError(f"unit {unit} failed")

    failing = Failing(grain=10, num_threads=3)
    with pytest.raises(RuntimeError, match="unit 3 failed"):
        failing.execute(np.ones(100, dtype=np.float32))
    assert sorted(u for kind, u in failing.calls if kind == "threaded") == list(range(10))
    assert ("after", threading.get_ident()) not in failing.calls


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_threader_rejects_bad_thread_count(bad):
    with pytest.raises(ValueError, match="positive integer"):
        Sum(num_threads=bad)


def test_threader_rejects_bad_schedule():
    with pytest.raises(ValueError, match="schedule must be one of"):
        Sum(schedule="fastest")


def test_base_class_must_be_specialised():
    with pytest.raises(NotImplementedError):
        DomainThreader(num_threads=1).execute(np.zeros(3))


# --------------------------------------------------------------------------- buffers


def test_unit_buffers_shapes():
    assert unit_buffers(4).shape == (4,)
    assert unit_buffers(4).dtype == np.float64
    assert unit_buffers(3, 5).shape == (3, 5)
    assert unit_buffers(3, np.int64(5)).shape == (3, 5)
    buffers = unit_buffers(2, (3, 4), dtype=np.float32)
    assert buffers.shape == (2, 3, 4) and buffers.dtype == np.float32
    assert not buffers.any()


def test_reduce_units_is_in_unit_order_and_leaves_buffers_alone():
    buffers = np.array([[1e16, 1.0], [1.0, 2.0], [-1e16, 3.0]])
    before = buffers.copy()
    total = reduce_units(buffers)
    # ((1e16 + 1) + -1e16) == 0 in float64, whereas (1e16 + -1e16) + 1 == 1
    np.testing.assert_array_equal(total, [0.0, 6.0])
    np.testing.assert_array_equal(buffers, before)
    assert total.dtype == np.float64


def test_reduce_units_needs_a_unit():
    with pytest.raises(ValueError, match="at least one unit"):
        reduce_units(unit_buffers(0, 3))


# --------------------------------------------------------------------------- slabs


class RowNormsAndTotal(SlabThreader):
    """Per-row squared norms (disjoint output rows) and a reduced grand total."""

    def before(self, domain, subdomains):
        self.out = np.zeros(domain[0])
        self.partials = unit_buffers(len(subdomains))
        self.units = subdomains

    def threaded(self, unit, subdomain):
        start, stop = subdomain
        rows = self.data[start:stop].astype(np.float64)
        self.out[start:stop] = (rows ** 2).reshape(stop - start, -1).sum(axis=1)
        self.partials[unit] = np.sum(rows)

    def after(self):
        return self.out, reduce_units(self.partials)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_slab_threader(schedule):
    data = awkward_floats(37 * 11 * 5, seed=3).reshape(37, 11, 5)
    reference = None
    for n in THREADS:
        threader = RowNormsAndTotal(grain=120, num_threads=n, schedule=schedule)
        threader.data = data
        rows, total = threader.execute(data.shape)
        assert threader.units == axis0_ranges(data.shape, grain=120) == [
            (b, min(b + 2, 37)) for b in range(0, 37, 2)]
        np.testing.assert_array_equal(
            rows, (data.astype(np.float64) ** 2).reshape(37, -1).sum(axis=1))
        if reference is None:
            reference = total.tobytes()
        assert total.tobytes() == reference


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_threads", [1, 2, 3, 7])
def test_for_each_slab_writes_every_row_once(schedule, num_threads):
    shape = (53, 6, 4)
    hits = np.zeros(shape, dtype=np.int64)
    calls = []

    def kernel(start, stop):
        calls.append((start, stop))
        hits[start:stop] += 1

    n_units = for_each_slab(kernel, shape, grain=100, num_threads=num_threads,
                            schedule=schedule)
    expected = axis0_ranges(shape, grain=100)
    assert n_units == len(expected) == 14
    assert sorted(calls) == expected
    assert np.all(hits == 1)


def test_for_each_slab_empty_shape_calls_nothing():
    assert for_each_slab(lambda start, stop: pytest.fail("called"), (0, 5), grain=10) == 0


def test_for_each_slab_bad_grain():
    with pytest.raises(ValueError, match="grain"):
        for_each_slab(lambda start, stop: None, (4, 4), grain=0)
