"""One persistent pool of threads, and the thread count that drives it.

The thread count is resolved in one place, :func:`resolve_num_threads`:
an explicit ``num_threads`` argument, else the innermost ``with threads(n):``
block of the calling thread, else :func:`set_num_threads`, else the
``PARAREG_NUM_THREADS`` environment variable, else ``os.cpu_count()``.

:func:`run_units` runs ``func(unit)`` for every unit index on the pool. The
calling thread works too; a call made from inside a work unit runs serially
in that thread instead of deadlocking.

Failures are never lost, as in ITK, whose threaders re-raise the first
caught exception once every worker has joined:

* An :class:`Exception` in a unit does not stop the others: every unit runs,
  then the exception of the lowest-numbered failing unit is re-raised in the
  caller (so which error you see does not depend on timing or thread count).
* A :class:`BaseException` that is not an :class:`Exception`
  (``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``) stops the call
  promptly: no further unit starts, units already running in other threads
  finish (a thread cannot be interrupted), and the caller re-raises it, in
  preference to any :class:`Exception` (the lowest-numbered unit's if several
  threads raised one). Which units ran before the stop depends on timing;
  on one thread the units after the interrupted one never start.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait

from .._config import as_index, check_num_threads, env_num_threads
from .schedule import check_schedule, make_schedule

_global_num_threads: int | None = None
_local = threading.local()


def set_num_threads(n: int) -> None:
    """Set the process-wide default number of threads.

    Parameters
    ----------
    n : int
        A positive number of threads.

    Examples
    --------
    >>> import parareg
    >>> parareg.set_num_threads(2); parareg.get_num_threads()
    2
    """
    global _global_num_threads
    _global_num_threads = check_num_threads(n, name="n")


def _reset_num_threads() -> None:
    global _global_num_threads
    _global_num_threads = None


def get_num_threads() -> int:
    """The number of threads a call with ``num_threads=None`` would use now."""
    override = getattr(_local, "override", None)
    if override is not None:
        return override
    if _global_num_threads is not None:
        return _global_num_threads
    env = env_num_threads()
    if env is not None:
        return env
    return os.cpu_count() or 1


def resolve_num_threads(num_threads: int | None = None) -> int:
    """``num_threads`` checked, or the default of :func:`get_num_threads` when ``None``."""
    if num_threads is None:
        return get_num_threads()
    return check_num_threads(num_threads)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Use ``n`` threads by default inside the block, in the calling thread only.

    The previous value is restored on exit, even on error.

    Examples
    --------
    >>> import parareg
    >>> with parareg.threads(3):
    ...     parareg.get_num_threads()
    3
    """
    n = check_num_threads(n, name="n")
    previous = getattr(_local, "override", None)
    _local.override = n
    try:
        yield n
    finally:
        _local.override = previous


def in_work_unit() -> bool:
    """True when called from inside a work unit (nested parallel calls run serially)."""
    return getattr(_local, "in_unit", False)


class work_unit:  # noqa: N801 - used as a function: ``with work_unit():``
    """Mark the calling thread as inside a work unit for the block (restored on exit).

    A class, not a generator-based context manager: it runs on every call of
    the maps, including the quick ones that stay serial.
    """

    __slots__ = ("previous",)

    def __enter__(self):
        self.previous = getattr(_local, "in_unit", False)
        _local.in_unit = True
        return self

    def __exit__(self, *exc):
        _local.in_unit = self.previous
        return False


class _Pool:
    """A lazily grown ``ThreadPoolExecutor`` shared by every parallel call."""

    def __init__(self):
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._size = 0

    def submit(self, fn, count: int) -> list:
        """Submit ``fn`` ``count`` times, growing the pool to ``count`` workers if needed.

        Submitting under the lock matters: growing shuts the old executor down,
        and a concurrent caller still submitting to it would get a RuntimeError.
        """
        with self._lock:
            if self._executor is None or count > self._size:
                old = self._executor
                self._executor = ThreadPoolExecutor(
                    max_workers=count, thread_name_prefix="parareg"
                )
                self._size = count
                if old is not None:
                    old.shutdown(wait=False)  # its queued work still runs
            return [self._executor.submit(fn) for _ in range(count)]

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._executor = None
        self._size = 0


_pool = _Pool()
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_pool.reset)


def _run_serial(func, n_units: int) -> None:
    """Every unit in order; an Exception is kept for later, a BaseException propagates at once."""
    errors = {}
    previous = in_work_unit()
    _local.in_unit = True
    try:
        for unit in range(n_units):
            try:
                func(unit)
            except Exception as exc:  # noqa: BLE001 - re-raised below
                errors[unit] = exc
    finally:
        _local.in_unit = previous
    if errors:
        raise errors[min(errors)]


def run_units(func: Callable[[int], object], n_units: int, *, num_threads: int | None = None,
              schedule: str = "dynamic") -> None:
    """Run ``func(unit)`` for ``unit`` in ``range(n_units)`` on the pool.

    Parameters
    ----------
    func : callable
        Called once per unit index; it must write its result to a place owned
        by that unit (e.g. ``buffers[unit]``), never to shared accumulators.
    n_units : int
        Number of work units.
    num_threads : int, optional
        Threads to use, the caller included. ``None`` resolves as described in
        :mod:`parareg.parallel.pool`.
    schedule : {"static", "dynamic", "guided"}
        How units are handed to threads; results never depend on it.

    Raises
    ------
    Exception
        The lowest-numbered failing unit's, after every unit has run.
    BaseException
        A ``KeyboardInterrupt`` or ``SystemExit`` from a unit, as soon as the
        units already running have finished; no further unit starts.
    """
    check_schedule(schedule)
    units = as_index(n_units)
    if units is None or units < 0:
        raise ValueError(f"n_units must be a non-negative integer, got {n_units!r}")
    n_units = units
    n_threads = min(resolve_num_threads(num_threads), n_units)
    if n_units <= 0:
        return
    if n_threads <= 1 or in_work_unit():
        _run_serial(func, n_units)
        return
    plan = make_schedule(schedule, n_units, n_threads)
    errors = {}  # unit -> Exception: every unit still runs
    fatal = {}  # unit -> BaseException (KeyboardInterrupt, SystemExit...): stop claiming
    errors_lock = threading.Lock()
    stop = threading.Event()

    def participate():
        previous = in_work_unit()
        _local.in_unit = True
        try:
            while not stop.is_set():
                block = plan.claim()
                if not block:
                    return
                for unit in block:
                    if stop.is_set():
                        return
                    try:
                        func(unit)
                    except Exception as exc:  # noqa: BLE001 - re-raised by the caller
                        with errors_lock:
                            errors[unit] = exc
                    except BaseException as exc:  # re-raised by the caller, first
                        with errors_lock:
                            fatal[unit] = exc
                        stop.set()
                        return
        finally:
            _local.in_unit = previous

    futures = _pool.submit(participate, n_threads - 1)
    try:
        participate()
        for future in futures:
            future.cancel()  # never started: the caller and the others did its share
        wait(futures)
    except BaseException:  # the caller was interrupted between units, e.g. Ctrl-C in wait()
        stop.set()  # the other threads stop after their current unit
        raise
    for future in futures:  # a failure outside func (a bug in the pool itself) is not lost
        if not future.cancelled() and future.exception() is not None:
            raise future.exception()
    if fatal:
        raise fatal[min(fatal)]
    if errors:
        raise errors[min(errors)]
