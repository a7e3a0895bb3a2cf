"""Thread-count resolution, the shared pool (run_units) and the schedules."""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import parareg
from parareg.parallel import SCHEDULES, in_work_unit, pool, resolve_num_threads, run_units
from parareg.parallel.schedule import make_schedule

pytestmark = pytest.mark.usefixtures("clean_threads")

BAD_COUNTS = [0, -1, -8, 2.0, 2.5, True, False, "2", None]
BAD_SETTABLE = [c for c in BAD_COUNTS if c is not None]  # None means "default" for num_threads


def run_with_timeout(target, timeout=20.0):
    """Run ``target()`` in a daemon thread; fail (instead of hanging) if it does not finish."""
    outcome = {}

    def body():
        try:
            outcome["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"deadlock: still running after {timeout} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# --------------------------------------------------------------------------- thread count


def test_default_is_cpu_count(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    assert parareg.get_num_threads() == 5
    assert resolve_num_threads(None) == 5


def test_default_when_cpu_count_unknown(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert parareg.get_num_threads() == 1


def test_resolution_order(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 5)
    monkeypatch.setenv("PARAREG_NUM_THREADS", "3")
    assert parareg.get_num_threads() == 3  # env beats cpu_count
    parareg.set_num_threads(4)
    assert parareg.get_num_threads() == 4  # set_num_threads beats env
    with parareg.threads(2):
        assert parareg.get_num_threads() == 2  # threads() beats set_num_threads
        assert resolve_num_threads(None) == 2
        assert resolve_num_threads(6) == 6  # an explicit argument beats everything
    assert parareg.get_num_threads() == 4
    pool._reset_num_threads()
    assert parareg.get_num_threads() == 3


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_env_is_unset(monkeypatch, raw):
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    monkeypatch.setenv("PARAREG_NUM_THREADS", raw)
    assert parareg.get_num_threads() == 7


def test_env_with_spaces(monkeypatch):
    monkeypatch.setenv("PARAREG_NUM_THREADS", " 6 ")
    assert parareg.get_num_threads() == 6


@pytest.mark.parametrize("raw", ["0", "-2", "2.5", "four", "1e3"])
def test_bad_env_value(monkeypatch, raw):
    monkeypatch.setenv("PARAREG_NUM_THREADS", raw)
    with pytest.raises(ValueError, match="PARAREG_NUM_THREADS"):
        parareg.get_num_threads()
    with pytest.raises(ValueError, match="PARAREG_NUM_THREADS"):
        run_units(lambda unit: None, 4)


def test_bad_env_value_ignored_when_overridden(monkeypatch):
    monkeypatch.setenv("PARAREG_NUM_THREADS", "lots")
    parareg.set_num_threads(2)
    assert parareg.get_num_threads() == 2


def test_threads_nests_and_restores():
    parareg.set_num_threads(3)
    with parareg.threads(5) as n:
        assert n == 5
        with parareg.threads(1):
            assert parareg.get_num_threads() == 1
        assert parareg.get_num_threads() == 5
    assert parareg.get_num_threads() == 3


def test_threads_restores_on_error():
    parareg.set_num_threads(3)
    with pytest.raises(RuntimeError, match="boom"):
        with parareg.threads(6):
            raise RuntimeError("boom")
    assert parareg.get_num_threads() == 3


def test_threads_is_thread_local():
    parareg.set_num_threads(3)
    seen = []
    with parareg.threads(6):
        other = threading.Thread(target=lambda: seen.append(parareg.get_num_threads()))
        other.start()
        other.join()
        assert parareg.get_num_threads() == 6
    assert seen == [3]


def test_numpy_integers_accepted():
    parareg.set_num_threads(np.int64(2))
    assert parareg.get_num_threads() == 2
    assert type(parareg.get_num_threads()) is int
    assert resolve_num_threads(np.int32(3)) == 3


@pytest.mark.parametrize("bad", BAD_SETTABLE)
def test_bad_counts_rejected(bad):
    parareg.set_num_threads(2)
    with pytest.raises(ValueError, match="positive integer"):
        parareg.set_num_threads(bad)
    with pytest.raises(ValueError, match="positive integer"):
        with parareg.threads(bad):
            pass  # pragma: no cover - must not be reached
    with pytest.raises(ValueError, match="num_threads.*positive integer"):
        resolve_num_threads(bad)
    with pytest.raises(ValueError, match="positive integer"):
        run_units(lambda unit: None, 3, num_threads=bad)
    assert parareg.get_num_threads() == 2  # a rejected value changes nothing


# --------------------------------------------------------------------------- run_units


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_threads", [1, 2, 3, 7])
@pytest.mark.parametrize("n_units", [1, 2, 5, 23])
def test_every_unit_runs_once(schedule, num_threads, n_units):
    counts = [0] * n_units
    lock = threading.Lock()

    def func(unit):
        with lock:
            counts[unit] += 1

    run_units(func, n_units, num_threads=num_threads, schedule=schedule)
    assert counts == [1] * n_units


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_threads", [2, 3])
def test_caller_works_and_threads_really_run_concurrently(schedule, num_threads):
    # Every unit waits until num_threads units are in flight at once: this can only
    # pass if num_threads distinct threads run units, the calling thread among them.
    barrier = threading.Barrier(num_threads, timeout=10)
    idents = set()

    def func(unit):
        idents.add(threading.get_ident())
        barrier.wait()

    run_with_timeout(lambda: run_units(func, num_threads, num_threads=num_threads,
                                       schedule=schedule))
    assert len(idents) == num_threads

    caller = threading.get_ident()
    idents.clear()
    barrier.reset()
    run_units(func, num_threads, num_threads=num_threads, schedule=schedule)
    assert caller in idents


def test_one_thread_runs_in_the_caller():
    idents = set()
    run_units(lambda unit: idents.add(threading.get_ident()), 9, num_threads=1)
    assert idents == {threading.get_ident()}


def test_default_thread_count_is_used():
    idents = set()
    barrier = threading.Barrier(3, timeout=10)

    def func(unit):
        idents.add(threading.get_ident())
        barrier.wait()

    def call():
        with parareg.threads(3):  # thread-local: set it in the thread that calls
            run_units(func, 3)

    run_with_timeout(call)
    assert len(idents) == 3


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("num_threads", [1, 2, 3, 7])
def test_lowest_failing_unit_raised_after_all_units_finish(schedule, num_threads):
    n_units = 12
    finished = [False] * n_units

    def func(unit):
        if unit == 9:
            raise KeyError("unit 9")  # fails first in time
        if unit == 4:
            time.sleep(0.02)
            raise ValueError("unit 4")  # fails later, but is the lowest failing unit
        time.sleep(0.0005 * (n_units - unit))
        finished[unit] = True

    with pytest.raises(ValueError, match="unit 4"):
        run_units(func, n_units, num_threads=num_threads, schedule=schedule)
    assert finished == [unit not in (4, 9) for unit in range(n_units)]


def test_error_does_not_poison_the_pool():
    with pytest.raises(ZeroDivisionError):
        run_units(lambda unit: 1 / 0, 4, num_threads=3)
    counts = [0] * 8
    run_units(lambda unit: counts.__setitem__(unit, counts[unit] + 1), 8, num_threads=3)
    assert counts == [1] * 8


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_nested_call_runs_serially(schedule):
    outer_units = 4
    inner_idents = [set() for _ in range(outer_units)]
    outer_idents = [None] * outer_units
    flags = []

    def inner(outer_unit):
        def body(unit):
            flags.append(in_work_unit())
            inner_idents[outer_unit].add(threading.get_ident())
        return body

    def outer(unit):
        outer_idents[unit] = threading.get_ident()
        # with all pool threads busy here, a nested parallel call would deadlock
        run_units(inner(unit), 6, num_threads=4, schedule=schedule)

    assert not in_work_unit()
    run_with_timeout(lambda: run_units(outer, outer_units, num_threads=4, schedule=schedule))
    assert not in_work_unit()
    assert all(flags) and len(flags) == outer_units * 6
    for unit in range(outer_units):
        assert inner_idents[unit] == {outer_idents[unit]}


def test_nested_call_in_serial_unit_runs_serially():
    idents = set()

    def outer(unit):
        idents.add(threading.get_ident())
        run_units(lambda u: idents.add(threading.get_ident()), 5, num_threads=3)

    run_units(outer, 2, num_threads=1)
    assert idents == {threading.get_ident()}


def test_concurrent_callers_do_not_deadlock():
    n_callers, repeats, n_units = 6, 15, 17
    failures = []

    def caller(index):
        schedule = SCHEDULES[index % 3]
        for repeat in range(repeats):
            out = [0] * n_units
            run_units(lambda unit: out.__setitem__(unit, unit * unit), n_units,
                      num_threads=2 + (index + repeat) % 4, schedule=schedule)
            if out != [u * u for u in range(n_units)]:
                failures.append((index, repeat, out))

    def main():
        workers = [threading.Thread(target=caller, args=(i,), daemon=True)
                   for i in range(n_callers)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(20)
            assert not worker.is_alive(), "deadlock between concurrent callers"

    run_with_timeout(main, timeout=30)
    assert failures == []


def test_concurrent_callers_while_the_pool_grows(monkeypatch):
    # Regression: growing the pool shut the old executor down while another caller
    # was still submitting to it -> "RuntimeError: cannot schedule new futures after
    # shutdown" in that caller (with its units left running in the background).
    previous = sys.getswitchinterval()
    errors = []
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(40):
            monkeypatch.setattr(pool, "_pool", pool._Pool())
            start = threading.Barrier(6)

            def caller(num_threads):
                start.wait()
                for _ in range(3):
                    try:
                        run_units(lambda unit: time.sleep(0), 16, num_threads=num_threads)
                    except Exception as exc:  # noqa: BLE001 - collected for the assert
                        errors.append(repr(exc))

            callers = [threading.Thread(target=caller, args=(n,), daemon=True)
                       for n in (7, 6, 5, 4, 3, 2)]
            for thread in callers:
                thread.start()
            for thread in callers:
                thread.join(20)
                assert not thread.is_alive()
    finally:
        sys.setswitchinterval(previous)
    assert errors == []


def test_zero_units_calls_nothing():
    run_units(lambda unit: pytest.fail("called"), 0, num_threads=3)


@pytest.mark.parametrize("bad", [-1, 2.0, "3", None, True])
def test_bad_unit_count(bad):
    with pytest.raises(ValueError, match="n_units"):
        run_units(lambda unit: None, bad, num_threads=2)


def test_bad_schedule():
    with pytest.raises(ValueError, match="schedule must be one of"):
        run_units(lambda unit: None, 3, num_threads=2, schedule="round-robin")
    with pytest.raises(ValueError, match="schedule must be one of"):
        run_units(lambda unit: None, 3, num_threads=1, schedule="Static")


# --------------------------------------------------------------------------- schedules


def drain(plan):
    claims = []
    while True:
        block = plan.claim()
        if not block:
            return claims
        claims.append(list(block))


@pytest.mark.parametrize("schedule", SCHEDULES)
@settings(max_examples=60, deadline=None)
@given(n_units=st.integers(0, 300), num_threads=st.integers(1, 40))
def test_schedule_claims_every_unit_once_in_order(schedule, n_units, num_threads):
    claims = drain(make_schedule(schedule, n_units, num_threads))
    flat = [unit for block in claims for unit in block]
    assert flat == list(range(n_units))  # one claimer gets everything, in order
    assert all(claims)
    sizes = [len(block) for block in claims]
    if schedule == "static":
        assert len(claims) == min(n_units, num_threads)
        assert max(sizes, default=0) - min(sizes, default=0) <= 1
    elif schedule == "dynamic":
        assert set(sizes) <= {1}
    else:
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[:1] in ([], [-(-n_units // (2 * num_threads))])


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("n_units, num_threads", [(1000, 4), (7, 3), (3, 8), (64, 2)])
def test_schedule_concurrent_claims(schedule, n_units, num_threads):
    plan = make_schedule(schedule, n_units, num_threads)
    got = [[] for _ in range(num_threads)]
    start = threading.Barrier(num_threads)

    def claimer(index):
        start.wait()
        got[index] = [unit for block in drain(plan) for unit in block]

    workers = [threading.Thread(target=claimer, args=(i,)) for i in range(num_threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert sorted(unit for part in got for unit in part) == list(range(n_units))


def test_unknown_schedule():
    with pytest.raises(ValueError, match="schedule must be one of"):
        make_schedule("auto", 5, 2)
