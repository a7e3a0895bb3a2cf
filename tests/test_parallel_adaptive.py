"""The adaptive grain: serial for small work and GIL-bound functions, the pool otherwise.

Also: the choice is logged, results never depend on it, and ``num_threads=1``
never touches the pool, in the maps and in the library's drivers.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from scipy import ndimage

import parareg
import parareg.parallel.adaptive as adaptive
from parareg import fields, filters
from parareg.parallel import map_blocks, map_slices, parallel_map, pool

from ._parallel import fresh_verdicts  # noqa: F401 - an autouse fixture

pytestmark = pytest.mark.usefixtures("clean_threads")


def plans(caplog):
    return [r.plan for r in caplog.records if r.name == "parareg.parallel" and hasattr(r, "plan")]


def python_item(x):
    """Holds the GIL for ~0.2 ms."""
    total = 0
    for i in range(2000 + x % 3):
        total += i * i
    return total


def test_the_choice_is_one_debug_record_per_call(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    parallel_map(abs, range(5), num_threads=2)
    (record,) = [r for r in caplog.records if r.name == "parareg.parallel"]
    assert record.levelno == logging.DEBUG
    assert record.plan.mode == "serial" and record.plan.items == 5
    assert "parallel_map: 5 items serial" in record.getMessage()


def test_quick_work_runs_serially_in_the_caller(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    out = map_slices(np.negative, np.ones((50, 4, 4)), num_threads=3)
    assert (out == -1).all()
    (plan,) = plans(caplog)
    assert plan.mode == "serial", plan


def test_a_gil_holding_function_falls_back_to_the_loop(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    out = parallel_map(python_item, range(300), num_threads=2)
    assert out == [python_item(x) for x in range(300)]
    (plan,) = plans(caplog)
    # Python bytecode cannot run on two threads at once: the probe is never faster
    assert plan.mode == "serial" and plan.speedup < adaptive.MIN_SPEEDUP, plan
    # about a millisecond of items per unit, not one item (one where load made an item that long)
    assert plan.grain > 1 or plan.item_s >= adaptive.UNIT_S, plan


def test_a_gil_releasing_function_runs_on_the_pool(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    # 10 ms sleeps: a loaded machine's wake-up latency (ms) does not hide the speed-up
    out = parallel_map(lambda x: time.sleep(0.01) or x, range(24), num_threads=3)
    assert out == list(range(24))
    (plan,) = plans(caplog)
    assert plan.mode == "threads" and plan.speedup >= adaptive.MIN_SPEEDUP, plan


def sleepy_gaussian(array, **kwargs):
    time.sleep(2e-4)  # long enough that the helpers always get some of the items
    return ndimage.gaussian_filter(array, **kwargs)


def test_a_serial_verdict_is_asked_again_later(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")

    def item(x):  # the first items hold the GIL, the later ones wait (release it)
        if x < 20:
            return python_item(x)
        time.sleep(0.005)
        return x

    out = parallel_map(item, range(140), num_threads=2)
    assert out == [item(x) for x in range(20)] + list(range(20, 140))
    (plan,) = plans(caplog)
    # the first probe saw the GIL; a later one, after REPROBE_AFTER_S, the sleeps
    assert plan.mode == "threads" and plan.speedup >= adaptive.MIN_SPEEDUP, plan


@pytest.mark.parametrize("min_speedup", [0.0, float("inf")])
@pytest.mark.parametrize("unit_s", [1e-6, 1e-3])
def test_results_do_not_depend_on_the_choice(monkeypatch, caplog, min_speedup, unit_s):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    monkeypatch.setattr(adaptive, "MEASURE_S", 0.0)  # time two items only
    monkeypatch.setattr(adaptive, "SERIAL_BELOW_S", 0.0)  # then always probe
    monkeypatch.setattr(adaptive, "WAKE_FACTOR", 0.0)
    monkeypatch.setattr(adaptive, "MEMO_BUDGET_S", 0.0)  # and never from memory
    monkeypatch.setattr(adaptive, "MIN_SPEEDUP", min_speedup)  # 0: always threads, inf: never
    monkeypatch.setattr(adaptive, "UNIT_S", unit_s)  # grain 1 or several slices
    volume = np.random.default_rng(0).normal(size=(30, 60, 11)).astype(np.float32)
    expected = np.stack([ndimage.gaussian_filter(volume[:, i], 1.2) for i in range(60)], axis=1)
    for n in (2, 3):
        out = map_slices(sleepy_gaussian, volume, axis=1, num_threads=n, sigma=1.2)
        np.testing.assert_array_equal(out, expected)
        blocks = map_blocks(sleepy_gaussian, volume, block_shape=(5, 5, 11), halo=5,
                            num_threads=n, sigma=1.2)
        np.testing.assert_array_equal(blocks, ndimage.gaussian_filter(volume, 1.2))
    decided = {plan.mode for plan in plans(caplog) if plan.speedup is not None}
    assert decided == ({"threads"} if min_speedup == 0.0 else {"serial"})


class FakeClock:
    """Stands in for ``time`` in the adaptive module: items advance it by their cost."""

    def __init__(self, costs):
        self.now, self.costs = 0.0, costs

    def perf_counter(self):
        return self.now

    thread_time = perf_counter

    def item(self, index):
        self.now += self.costs[index]


def test_measure_skips_a_slow_first_item(monkeypatch):
    clock = FakeClock([0.01] + [0.0002] * 40)  # a warm-up-like first item, then quick ones
    monkeypatch.setattr(adaptive, "time", clock)
    done, item_s = adaptive.measure(clock.item, 41)
    # the first item alone, then one item (a quarter of MEASURE_S at the first's pace), then
    # a batch that fills MEASURE_S at the second's: 1 + 1 + 4 items (+1 if rounding falls short)
    assert done in (6, 7) and item_s == pytest.approx(0.0002)


def test_a_large_first_item_is_timed_alone(monkeypatch):
    clock = FakeClock([0.03] * 10)
    monkeypatch.setattr(adaptive, "time", clock)
    assert adaptive.measure(clock.item, 10) == (1, 0.03)


def test_quick_calls_stop_timing_once_the_rest_is_quick(monkeypatch):
    clock = FakeClock([1e-5] * 200)
    monkeypatch.setattr(adaptive, "time", clock)
    # 1e-5 s then 199 more: 2 ms, over the serial threshold; a batch of ~25 (a quarter of a
    # millisecond), then ~175 items left at 1e-5 s: 1.75 ms, still over; a batch of ~75 fills
    # the millisecond, and the rest (~99 items, 0.99 ms) is under it: no more clock reads
    done, item_s = adaptive.measure(clock.item, 200)
    assert 100 <= done <= 102 and item_s == pytest.approx(1e-5)
    clock = FakeClock([1e-5] * 60)
    monkeypatch.setattr(adaptive, "time", clock)
    assert adaptive.measure(clock.item, 60) == (1, 1e-5)  # 59 more at its pace: 0.59 ms


def test_a_serial_verdict_is_remembered_then_probed_again(monkeypatch, caplog, pool_calls):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    monkeypatch.setattr(adaptive, "WAKE_FACTOR", 0.0)
    monkeypatch.setattr(adaptive, "MEMO_BUDGET_S", 1e3)
    monkeypatch.setattr(adaptive, "MEMO_MAX_S", 1e6)
    monkeypatch.setattr(adaptive, "MEMO_COST_RATIO", 1e3)  # a loaded machine's items vary 5x
    parallel_map(python_item, range(300), num_threads=2)
    first = plans(caplog)[-1]
    assert first.mode == "serial" and first.speedup is not None, first  # probed
    submitted = len(pool_calls)
    assert submitted
    for _ in range(2):
        assert parallel_map(python_item, range(300), num_threads=2) == [python_item(x)
                                                                        for x in range(300)]
        plan = plans(caplog)[-1]
        # the plain loop at once: not even the first items are timed apart
        assert plan.mode == "serial" and plan.reason == adaptive._REMEMBERED, plan
    assert len(pool_calls) == submitted  # the pool was not touched
    (verdict,) = adaptive._memo.values()
    assert verdict.budget == 1e3 and verdict.spent > 0
    verdict.spent = verdict.budget  # as if 1000 s of work had run serially since
    parallel_map(python_item, range(300), num_threads=2)
    assert len(pool_calls) > submitted and plans(caplog)[-1].speedup is not None  # probed
    (verdict,) = adaptive._memo.values()
    # a second serial verdict multiplies the budget
    assert verdict.budget == adaptive.MEMO_GROWTH * 1e3 and verdict.spent == 0
    # items costlier than the probe's run as a loop MEMO_STRIKES times (timed whole), then probe
    monkeypatch.setattr(adaptive, "MEMO_COST_RATIO", 4.0)
    verdict.item_s /= 10  # as if the probe's items had been 10x cheaper
    submitted = len(pool_calls)
    for _ in range(adaptive.MEMO_STRIKES):
        parallel_map(python_item, range(300), num_threads=2)
        assert plans(caplog)[-1].reason == adaptive._REMEMBERED and len(pool_calls) == submitted
    parallel_map(python_item, range(300), num_threads=2)
    assert len(pool_calls) > submitted and plans(caplog)[-1].speedup is not None
    # another number of items (another power of two) is another kind: probed on its own
    submitted = len(pool_calls)
    parallel_map(python_item, range(40), num_threads=2)
    assert len(pool_calls) > submitted


def test_the_pool_wake_up_latency_raises_the_serial_threshold(monkeypatch, caplog, pool_calls):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    monkeypatch.setattr(adaptive, "WAKE_FACTOR", 4.0)
    monkeypatch.setattr(adaptive, "_wake_s", 1.0)  # 4 x 1 s: a 60 ms call stays serial
    out = parallel_map(lambda x: time.sleep(0.002) or x, range(30), num_threads=2)
    assert out == list(range(30)) and pool_calls == []
    (plan,) = plans(caplog)
    assert plan.mode == "serial" and "wake-up" in plan.reason, plan


# --------------------------------------------------------------------------- num_threads=1


@pytest.fixture
def pool_calls(monkeypatch):
    """The number of times the shared pool was handed work (a spy on ``_pool.submit``)."""
    calls = []
    submit = pool._pool.submit

    def spy(fn, count):
        calls.append(count)
        return submit(fn, count)

    monkeypatch.setattr(pool._pool, "submit", spy)
    return calls


@pytest.mark.parametrize("grain", [None, 1])
def test_maps_never_use_the_pool_at_one_thread(pool_calls, grain):
    sleepy = lambda x: time.sleep(0.002) or x  # noqa: E731 - the pool would win for it
    parallel_map(sleepy, range(10), num_threads=1, grain=grain)
    map_slices(lambda s: time.sleep(0.002) or s, np.zeros((10, 3)), num_threads=1, grain=grain)
    map_blocks(lambda b: time.sleep(0.002) or b, np.zeros((10, 3)), block_shape=1,
               num_threads=1, grain=grain)
    with parareg.threads(1):
        parallel_map(sleepy, range(10), grain=grain)
    assert pool_calls == []
    parallel_map(sleepy, range(10), num_threads=2, grain=grain)  # the spy sees the pool
    assert pool_calls


@pytest.fixture(scope="module")
def big_pair():
    shape = (112, 104, 96)  # over 2**20 voxels: all_finite scans in slabs on the pool
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape],
                                indexing="ij"), axis=-1)
    fixed = np.exp(-(((grid - np.array(shape) / 2) / 20.0) ** 2).sum(-1)).astype(np.float32)
    moving = np.roll(fixed, 2, axis=0)
    return parareg.Image(fixed * 100, np.eye(4)), parareg.Image(moving * 100, np.eye(4))


def test_drivers_never_use_the_pool_at_one_thread(big_pair, pool_calls):
    fixed, moving = big_pair  # built before the spy: Image() scans on the default threads
    field = np.zeros((*fixed.shape, 3), np.float32)

    def everything(n):
        parareg.resample(moving, fixed, field=field, num_threads=n)
        parareg.resample(moving, fixed, affine=np.eye(4), num_threads=n)
        parareg.gradient(moving, num_threads=n)
        fields.jacobian_determinant(field, vox2world=np.eye(4), num_threads=n)
        fields.smooth_field(field, 1.0, num_threads=n)
        fields.invert(field, vox2world=np.eye(4), num_threads=n)
        fields.inverse_consistency_error(field, field, vox2world=np.eye(4),
                                                 num_threads=n)
        filters.gaussian_smooth(fixed.data, 1.0, num_threads=n)
        parareg.affine_registration(fixed, moving, pipeline=("translation",),
                                    levels=((4, 1.0, 3), (2, 0.0, 2)), num_threads=n)
        parareg.syn_registration(fixed, moving, levels=((4, 1.0, 2), (2, 0.0, 1)),
                                 num_threads=n)

    everything(1)
    assert pool_calls == []
    everything(2)  # the same calls do use the pool at two threads: the spy works
    assert len(pool_calls) > 9


def test_large_items_start_in_parallel_without_a_serial_first_item(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    spans = {}

    def slow(index, s):
        begin = time.perf_counter()
        time.sleep(0.03)
        spans[index] = (begin, time.perf_counter())
        return s + 1

    # slices of 2**16 voxels: known to be large, the helpers are woken at the start
    volume = np.arange(4, dtype=np.float32)[:, None, None] * np.ones((4, 256, 256), np.float32)
    out = map_slices(lambda s: slow(int(s[0, 0]), s), volume, num_threads=2)
    np.testing.assert_array_equal(out, volume + 1)
    # a helper joined while slice 0 (the caller's) was still running: no serial first item
    assert spans[1][0] < spans[0][1], spans
    (plan,) = plans(caplog)
    assert plan.item_s >= 0.03 and plan.mode in ("threads", "probe"), plan


def test_a_large_gil_holding_item_does_not_go_on_in_parallel(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    items = [30000 + i for i in range(12)]  # each a few ms of Python bytecode
    out = parallel_map(lambda x: sum(i * i for i in range(x)), items, num_threads=2)
    assert out == [sum(i * i for i in range(x)) for x in items]
    (plan,) = plans(caplog)
    assert plan.mode == "serial" and plan.speedup < adaptive.MIN_SPEEDUP, plan


def test_an_item_failing_while_the_helpers_run_is_raised_after_every_item(caplog):
    ran = []

    def func(x):
        time.sleep(0.002)
        ran.append(x)
        if x in (7, 20):
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 7$"):
        parallel_map(func, range(30), num_threads=3)
    assert sorted(ran) == list(range(30))


def test_the_process_backend_logs_its_choice_too(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    assert parallel_map(abs, [-1, -2, -3], num_threads=2, backend="processes") == [1, 2, 3]
    (plan,) = plans(caplog)
    assert plan.mode == "serial" and "round trip" in plan.reason


def test_a_pool_phase_the_helpers_got_nothing_of_keeps_a_serial_verdict():
    # one preempted first item can make the whole call look 100x faster than its timing
    memo = (python_item, ("parallel_map", 2, 9))
    serial = adaptive.Plan("serial", 300, 10, 2e-4, 0.9, "the probe ran under 1.15x")
    adaptive._remember(memo, serial, helped=True)
    assert len(adaptive._memo) == 1
    bogus = adaptive.Plan("serial", 300, 300, 0.05, 300.0, "every item ran in the caller")
    adaptive._remember(memo, bogus, helped=False)
    (verdict,) = adaptive._memo.values()
    assert verdict.item_s == 2e-4  # kept
    parallel = adaptive.Plan("threads", 300, 10, 2e-4, 1.8, "the probe ran faster")
    adaptive._remember(memo, parallel, helped=True)
    assert not adaptive._memo  # a real parallel verdict forgets it
