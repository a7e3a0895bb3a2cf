"""Failures in work units are never lost: Exceptions after every unit, BaseExceptions promptly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from parareg.parallel import SCHEDULES, map_slices, parallel_map, run_units

pytestmark = pytest.mark.usefixtures("clean_threads")

THREADS = [1, 2, 3]
FATAL = [KeyboardInterrupt, SystemExit]


class Recorder:
    """A function that records which items it ran and fails on chosen items."""

    def __init__(self, failures):
        self.failures = dict(failures)  # item -> exception class
        self.ran = set()
        self.lock = threading.Lock()

    def __call__(self, item):
        with self.lock:
            self.ran.add(item)
        if item in self.failures:
            raise self.failures[item](f"item {item}")
        return item


def fail_on_odd(x):
    """Module level so the process backend can pickle it."""
    if x % 2:
        raise ValueError(f"item {x}")
    return x


# ------------------------------------------------------------------------ BaseException re-raised


@pytest.mark.parametrize("fatal", FATAL)
@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_run_units_reraises_base_exception(fatal, num_threads, schedule):
    buffers = np.zeros(12)

    def func(unit):
        if unit == 7:
            raise fatal("unit 7")
        buffers[unit] = unit + 1

    with pytest.raises(fatal, match="unit 7"):
        run_units(func, 12, num_threads=num_threads, schedule=schedule)


@pytest.mark.parametrize("fatal", FATAL)
@pytest.mark.parametrize("num_threads", THREADS)
@pytest.mark.parametrize("grain", [1, 3])
def test_parallel_map_reraises_base_exception(fatal, num_threads, grain):
    func = Recorder({5: fatal})
    with pytest.raises(fatal, match="item 5"):
        parallel_map(func, range(12), num_threads=num_threads, grain=grain)


@pytest.mark.parametrize("fatal", FATAL)
@pytest.mark.parametrize("num_threads", THREADS)
def test_map_slices_reraises_base_exception(fatal, num_threads):
    volume = np.zeros((9, 4, 4), dtype=np.float32)

    def func(plane):
        if plane[0, 0] == 5:
            raise fatal("slice 5")
        return plane + 1

    volume[:, 0, 0] = np.arange(9)
    with pytest.raises(fatal, match="slice 5"):
        map_slices(func, volume, num_threads=num_threads, grain=16)


@pytest.mark.parametrize("num_threads", THREADS)
def test_base_exception_wins_over_exception(num_threads):
    def func(unit):
        if unit == 1:
            raise ValueError("unit 1")
        if unit == 8:
            raise KeyboardInterrupt("unit 8")

    with pytest.raises(KeyboardInterrupt, match="unit 8"):
        run_units(func, 10, num_threads=num_threads)


def test_system_exit_code_is_kept():
    def func(unit):
        if unit == 2:
            sys.exit(3)

    with pytest.raises(SystemExit) as info:
        run_units(func, 6, num_threads=3)
    assert info.value.code == 3


@pytest.mark.parametrize("num_threads", [2, 3])
def test_base_exception_in_a_worker_thread_is_not_lost(num_threads):
    """The interrupt is raised in a pool thread, never in the caller (which waits for it)."""
    caller = threading.get_ident()
    raised = threading.Event()

    def func(unit):
        if threading.get_ident() == caller:
            assert raised.wait(20), "no unit ran in a worker thread"
        elif not raised.is_set():
            raised.set()
            raise KeyboardInterrupt(f"unit {unit}")

    with pytest.raises(KeyboardInterrupt, match="unit"):
        run_units(func, 40, num_threads=num_threads)
    assert raised.is_set()


@pytest.mark.parametrize("num_threads", THREADS)
def test_base_exception_stops_promptly(num_threads):
    ran = []

    def func(unit):
        ran.append(unit)
        if unit == 0:
            raise KeyboardInterrupt("stop")
        time.sleep(0.01)

    with pytest.raises(KeyboardInterrupt):
        run_units(func, 100, num_threads=num_threads)
    assert len(ran) < 100  # units not yet started never run
    if num_threads == 1:
        assert ran == [0]


def test_pool_usable_after_base_exception():
    with pytest.raises(KeyboardInterrupt):
        run_units(lambda unit: (_ for _ in ()).throw(KeyboardInterrupt()), 6, num_threads=3)
    counts = [0] * 9
    run_units(lambda unit: counts.__setitem__(unit, counts[unit] + 1), 9, num_threads=3)
    assert counts == [1] * 9


# ---------------------------------------------------------------------- same items on every path


@pytest.mark.parametrize("grain", [1, 2, 5])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_same_items_run_serial_and_threaded(grain, schedule):
    """After an Exception every item still runs, and the lowest failing item's error is raised."""
    seen = {}
    for num_threads in THREADS:
        func = Recorder({9: KeyError, 4: ValueError, 13: TypeError})
        with pytest.raises(ValueError, match="item 4"):
            parallel_map(func, range(15), num_threads=num_threads, grain=grain, schedule=schedule)
        seen[num_threads] = func.ran
    assert seen[1] == seen[2] == seen[3] == set(range(15))


def test_processes_backend_runs_every_item_and_raises_the_lowest():
    with pytest.raises(ValueError, match="item 1"):
        parallel_map(fail_on_odd, range(8), num_threads=2, backend="processes", grain=2)
    assert parallel_map(fail_on_odd, [0, 2, 4], num_threads=2, backend="processes") == [0, 2, 4]


def interrupt_on_five(x):
    """Module level (picklable): ~50 ms, then item 5 is interrupted, wherever it runs."""
    time.sleep(0.05)
    if x == 5:
        raise KeyboardInterrupt(f"item {x}")
    return x


@pytest.mark.parametrize("grain", [None, 1])
def test_processes_backend_reraises_base_exception_promptly(grain):
    begin = time.perf_counter()
    with pytest.raises(KeyboardInterrupt, match="item 5"):
        parallel_map(interrupt_on_five, range(40), num_threads=2, backend="processes",
                     grain=grain)
    # a worker runs item 5 early (chunks from the front, ~0.3 s): the caller, which runs
    # chunks from the end, starts none after it (its half alone would take ~1 s)
    assert time.perf_counter() - begin < 0.8
    assert parallel_map(interrupt_on_five, range(5), num_threads=2, backend="processes",
                        grain=1) == list(range(5))  # the pool still works


def test_serial_path_runs_every_item():
    func = Recorder({0: ValueError})
    with pytest.raises(ValueError, match="item 0"):
        parallel_map(func, range(5), num_threads=1)
    assert func.ran == set(range(5))


# --------------------------------------------------------------------------- a real Ctrl-C

CTRL_C_SCRIPT = textwrap.dedent("""
    import sys, time
    from parareg.parallel import run_units
    ran = []
    def func(unit):
        ran.append(unit)
        if unit == 2:
            print("started", flush=True)
        time.sleep(0.05)
    try:
        run_units(func, 400, num_threads=3)
    except KeyboardInterrupt:
        print(f"interrupted after {len(ran)} units", flush=True)
        sys.exit(130)
    print("finished", flush=True)
""")


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_sigint_stops_run_units_promptly():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "started"
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert "interrupted after" in out
    assert int(out.split()[2]) < 100
    assert time.monotonic() - sent < 4  # all 400 units * 50 ms / 3 threads would take ~7 s
