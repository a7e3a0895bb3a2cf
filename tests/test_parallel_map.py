"""parallel_map and map_slices: ordered results, backends, serial fallback, grain."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest
from scipy import ndimage

import parareg.parallel.adaptive as adaptive_module
import parareg.parallel.map as map_module
from parareg.parallel import SCHEDULES, in_work_unit, map_slices, parallel_map, run_units

from ._parallel import fresh_verdicts  # noqa: F401 - an autouse fixture

pytestmark = pytest.mark.usefixtures("clean_threads")


def sleep_then(seconds, x):
    time.sleep(seconds)
    return x


def square_and_pid(x):
    """Module level, so the process backend can pickle it."""
    return x * x, os.getpid()


def slow_square_and_pid(x):
    """Waits 30 ms (releasing the GIL, as a worker's round trip needs it), then as above."""
    time.sleep(0.03)
    return x * x, os.getpid()


def die_in_a_worker(x):
    time.sleep(0.02)
    if multiprocessing.parent_process() is not None:  # in a worker process
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x


def count_units(monkeypatch):
    """Spy on the run_units calls parallel_map makes; returns the list of unit counts."""
    seen = []

    def spy(func, n_units, **kwargs):
        seen.append(n_units)
        return run_units(func, n_units, **kwargs)

    monkeypatch.setattr(adaptive_module, "run_units", spy)
    return seen


# --------------------------------------------------------------------------- parallel_map


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_threads", [1, 2, 3, 7])
@pytest.mark.parametrize("grain", [1, 4])
def test_results_in_input_order(schedule, num_threads, grain):
    def slow_for_early_items(x):
        time.sleep(0.0003 * (20 - x))  # early items finish last
        return -x

    out = parallel_map(slow_for_early_items, range(20), num_threads=num_threads,
                       schedule=schedule, grain=grain)
    assert out == [-x for x in range(20)]


def test_items_may_be_a_generator():
    assert parallel_map(str, (x for x in range(5)), num_threads=2) == ["0", "1", "2", "3", "4"]
    assert parallel_map(str, [], num_threads=3) == []


def test_grain_sets_the_work_units(monkeypatch):
    seen = count_units(monkeypatch)
    parallel_map(abs, range(10), num_threads=2, grain=3)
    parallel_map(abs, range(10), num_threads=2, grain=1)
    assert seen == [4, 10]


def test_items_of_one_unit_run_together_in_one_thread():
    where = {}
    start = threading.Barrier(2, timeout=10)

    def record(x):
        if x % 5 == 0:
            start.wait()  # forces the two units onto two threads at once
        where[x] = threading.get_ident()
        return x

    parallel_map(record, range(10), num_threads=2, grain=5, schedule="dynamic")
    assert len({where[x] for x in range(5)}) == 1
    assert len({where[x] for x in range(5, 10)}) == 1
    assert where[0] != where[5]


@pytest.mark.parametrize("kwargs", [dict(num_threads=1), dict(num_threads=4, grain=10),
                                    dict(num_threads=4, grain=50)])
def test_serial_fallback_runs_in_the_caller(monkeypatch, kwargs):
    seen = count_units(monkeypatch)
    idents = set()
    parallel_map(lambda x: idents.add(threading.get_ident()), range(10), **kwargs)
    assert idents == {threading.get_ident()}
    assert seen == []


def test_serial_fallback_with_processes_needs_no_pickling():
    # one unit: runs in this process, so even a lambda (unpicklable) works
    out = parallel_map(lambda x: (x + 1, os.getpid()), range(4), num_threads=2,
                       backend="processes", grain=4)
    assert out == [(x + 1, os.getpid()) for x in range(4)]


@pytest.mark.parametrize("grain", [None, 1])
def test_processes_backend_ordered_in_workers_and_the_caller(monkeypatch, grain):
    monkeypatch.setattr(map_module, "PROCESS_START_S", 0.0)  # start them now, however costly
    out = parallel_map(slow_square_and_pid, range(12), num_threads=2, backend="processes",
                       grain=grain)
    assert [value for value, _ in out] == [x * x for x in range(12)]
    pids = [pid for _, pid in out]
    # one worker process takes chunks from the front, the caller from the back
    assert len(set(pids)) == 2 and pids[-1] == os.getpid(), pids


def test_a_small_call_starts_the_worker_processes_in_the_background(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="parareg.parallel")
    monkeypatch.setattr(map_module, "_process_pools", {})  # none started yet
    monkeypatch.setattr(map_module, "_process_ready", set())
    monkeypatch.setattr(map_module, "PROCESS_START_S", 1e3)  # more than a worker would save
    items = range(16)  # 16 x 4 ms: a worker would save ~30 ms
    slow = functools.partial(sleep_then, 0.004)
    try:
        assert parallel_map(slow, items, num_threads=2, backend="processes") == list(items)
        plan = [r.plan for r in caplog.records if hasattr(r, "plan")][-1]
        assert plan.mode == "serial" and "background" in plan.reason, plan
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and 1 not in map_module._process_ready:
            time.sleep(0.01)
        assert map_module._process_pools[1]._processes, "no worker process started"
        assert 1 in map_module._process_ready, "the worker process never answered"
        assert parallel_map(slow, items, num_threads=2, backend="processes") == list(items)
        plan = [r.plan for r in caplog.records if hasattr(r, "plan")][-1]
        assert plan.mode == "processes", plan  # the next call finds them
    finally:
        for pool in map_module._process_pools.values():
            pool.shutdown()


# the executor then fails every chunk, also the ones the caller cancelled to run itself: on
# Python 3.11 its thread reports an InvalidStateError for those (harmless, the pool is gone)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_process_is_reported_and_replaced():
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        parallel_map(die_in_a_worker, range(6), num_threads=2, backend="processes", grain=1)
    out = parallel_map(slow_square_and_pid, range(6), num_threads=2, backend="processes",
                       grain=1)
    assert [value for value, _ in out] == [x * x for x in range(6)]


def test_processes_backend_keeps_quick_work_in_the_caller():
    # twelve microsecond items: a round trip to a worker costs more than the loop
    out = parallel_map(square_and_pid, range(12), num_threads=2, backend="processes")
    assert out == [(x * x, os.getpid()) for x in range(12)]


def test_first_error_propagates():
    for backend in ("threads", "processes"):
        with pytest.raises(ValueError, match="item 3 is bad"):
            parallel_map(fail_on_three, range(8), num_threads=2, backend=backend)


def test_nested_parallel_map_runs_serially():
    def outer(x):
        assert in_work_unit()
        return parallel_map(lambda y: (x, y, threading.get_ident()), range(3), num_threads=3)

    done = []
    worker = threading.Thread(target=lambda: done.append(
        parallel_map(outer, range(4), num_threads=3, grain=1)), daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "nested parallel_map deadlocked"
    for x, inner in enumerate(done[0]):
        assert [(a, b) for a, b, _ in inner] == [(x, y) for y in range(3)]
        assert len({ident for _, _, ident in inner}) == 1


@pytest.mark.parametrize("backend", ["thread", "multiprocessing", None, "Threads"])
def test_unknown_backend(backend):
    with pytest.raises(ValueError, match="backend must be one of"):
        parallel_map(abs, [1, 2], backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        parallel_map(abs, [], backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        map_slices(np.abs, np.ones((3, 3)), backend=backend)


@pytest.mark.parametrize("num_threads", [1, 4])
def test_unknown_schedule(num_threads):
    with pytest.raises(ValueError, match="schedule must be one of"):
        parallel_map(abs, range(6), num_threads=num_threads, schedule="auto")


@pytest.mark.parametrize("bad", [0, -3, 1.5, "2", True])
def test_bad_grain_and_thread_count(bad):
    with pytest.raises(ValueError, match="grain"):
        parallel_map(abs, range(6), grain=bad)
    with pytest.raises(ValueError, match="grain"):
        map_slices(np.abs, np.ones((4, 4)), grain=bad)
    with pytest.raises(ValueError, match="num_threads"):
        parallel_map(abs, range(6), num_threads=bad)


# --------------------------------------------------------------------------- map_slices


def serial_slices(func, array, axis, **kwargs):
    return np.stack([func(np.take(array, i, axis=axis), **kwargs)
                     for i in range(array.shape[axis])], axis=axis)


VOLUME = np.random.default_rng(7).normal(size=(9, 10, 11)).astype(np.float32)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("grain", [None, 1, 250])
def test_map_slices_gaussian_equals_serial_loop(num_threads, axis, grain):
    expected = serial_slices(ndimage.gaussian_filter, VOLUME, axis, sigma=1.3)
    out = map_slices(ndimage.gaussian_filter, VOLUME, axis=axis, num_threads=num_threads,
                     grain=grain, sigma=1.3)
    assert out.dtype == np.float32 and out.shape == VOLUME.shape
    np.testing.assert_array_equal(out, expected)
    # and it really filtered slice by slice, not the whole volume
    assert not np.array_equal(out, ndimage.gaussian_filter(VOLUME, sigma=1.3))


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_map_slices_schedules(schedule):
    expected = serial_slices(ndimage.gaussian_filter, VOLUME, 1, sigma=0.8)
    out = map_slices(ndimage.gaussian_filter, VOLUME, axis=1, num_threads=3, grain=99,
                     schedule=schedule, sigma=0.8)
    np.testing.assert_array_equal(out, expected)


def test_map_slices_grain_groups_slices(monkeypatch):
    seen = count_units(monkeypatch)
    volume = np.zeros((40, 64, 64), dtype=np.float32)  # 4096 voxels per slice
    out = map_slices(lambda s: s + 1, volume, num_threads=2, grain=32768)
    assert seen == [5]  # 40 slices in units of 32768 // 4096 = 8
    assert np.all(out == 1)


def test_map_slices_2d_and_output_dtype():
    image = np.arange(30, dtype=np.int16).reshape(5, 6)
    out = map_slices(np.cumsum, image, axis=1, num_threads=2, grain=1, dtype=np.float64)
    np.testing.assert_array_equal(out, np.cumsum(image, axis=0, dtype=np.float64))
    assert out.dtype == np.float64


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_map_slices_processes_backend(axis):
    expected = serial_slices(ndimage.gaussian_filter, VOLUME, axis, sigma=1.0)
    out = map_slices(ndimage.gaussian_filter, VOLUME, axis=axis, num_threads=2,
                     backend="processes", grain=200, sigma=1.0)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("axis", [3, -4, 1.0, "0", None, True])
def test_map_slices_bad_axis(axis):
    with pytest.raises(ValueError, match="axis"):
        map_slices(np.abs, VOLUME, axis=axis)


@pytest.mark.parametrize("array", [np.ones(5), np.float32(3.0), np.ones((0, 4))])
def test_map_slices_bad_array(array):
    with pytest.raises(ValueError, match="dimensions|no slices"):
        map_slices(np.abs, array)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_map_slices_passes_views_not_copies(axis):
    seen = []

    def record(plane):
        seen.append(np.shares_memory(plane, VOLUME))
        return plane * 2

    out = map_slices(record, VOLUME, axis=axis, num_threads=2, grain=1)
    np.testing.assert_array_equal(out, VOLUME * 2)
    assert len(seen) == VOLUME.shape[axis] and all(seen)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("grain", [None, 1])
def test_map_slices_results_may_change_shape_and_dtype(num_threads, grain):
    # each (10, 11) slice along axis 0 -> its column sums, (11,): stacked as np.stack does
    out = map_slices(lambda s: s.sum(axis=0, dtype=np.float64), VOLUME, axis=0,
                     num_threads=num_threads, grain=grain)
    expected = np.stack([VOLUME[i].sum(axis=0, dtype=np.float64) for i in range(9)], axis=0)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_map_slices_names_the_slice_of_the_wrong_shape(num_threads):
    def bad_on_four(plane):
        return plane[:-1] if plane[0, 0] == VOLUME[:, 4][0, 0] else plane

    with pytest.raises(ValueError, match=r"func returned shape \(8, 11\) for slice 4 along axis "
                                         r"1 but \(9, 11\) for slice 0"):
        map_slices(bad_on_four, VOLUME, axis=1, num_threads=num_threads, grain=1)


def test_map_slices_scalar_results_along_a_later_axis():
    with pytest.raises(ValueError, match="stacking along axis 2 needs at least 2 dimensions"):
        map_slices(np.sum, VOLUME, axis=2)
    assert map_slices(np.sum, VOLUME, axis=0).shape == (9,)


@pytest.mark.parametrize("grain", [None, 2])
def test_map_slices_processes_backend_checks_shapes_and_errors_too(grain):
    out = map_slices(ndimage.gaussian_filter, VOLUME, axis=1, num_threads=2,
                     backend="processes", grain=grain, sigma=0.7)
    np.testing.assert_array_equal(out, serial_slices(ndimage.gaussian_filter, VOLUME, 1,
                                                     sigma=0.7))
    with pytest.raises(ValueError, match="item 3 is bad"):
        parallel_map(fail_on_three, range(8), num_threads=2, backend="processes", grain=grain)
