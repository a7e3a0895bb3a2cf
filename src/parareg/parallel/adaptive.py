"""Adaptive scheduling of independent items: time the first ones, then choose.

The items (slices, blocks, list entries) are fixed by the data; only *who
runs them and in which groups* adapts, so results never depend on the
choice. :func:`run_items` runs the first items serially in the caller and
times them, then

* runs the rest serially when they would take less than about a
  millisecond (the pool's dispatch costs ~50 us), or
* groups them into work units of about a millisecond each and runs a
  *probe* on the pool (one unit per thread, or 2 % of the items if that is
  more), then, for a short probe, as many items serially right after it (a
  reference taken under the same machine load); when the probe is not at least
  ``MIN_SPEEDUP`` times faster than that reference, or its threads did not
  run at once (CPU over wall time in the probe, relative to the reference:
  a function that holds the GIL keeps it near 1), the rest runs serially,
  otherwise in parallel with the same grain.

The probe is small, so a function that holds the GIL loses at most the
probe's contention; every other item runs as in a plain loop. The probe's
time runs from its first unit's start to its last unit's end, so the
pool's wake-up (milliseconds on a loaded machine) does not count against
it. Each call logs its choice in one ``DEBUG`` record of the
``"parareg.parallel"`` logger, with the :class:`Plan` as ``record.plan``.

Examples
--------
>>> out = [None] * 5
>>> def square(i):
...     out[i] = i * i
>>> run_items(square, 5, num_threads=2).mode  # five quick items: a plain loop is fastest
'serial'
>>> out
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time

from .partition import partition_range
from .pool import in_work_unit, run_units

_log = logging.getLogger("parareg.parallel")

#: the serial timing phase ends once this much work has been timed after the first item
MEASURE_S = 1e-3
#: remaining work estimated below this runs serially
SERIAL_BELOW_S = 1e-3
#: the target duration of one work unit on the pool
UNIT_S = 1e-3
#: a first item slower than this is timed alone (large items: no second serial one)
LARGE_ITEM_S = 20e-3
#: the probe runs at least this share of the remaining items (and one unit per thread)
PROBE_SHARE = 0.02
#: a probe shorter than this is compared with a serial run of as many items right after
#: it (longer ones with the timed first items: their timing is already reliable)
REFERENCE_BELOW_S = 50e-3
#: the probe must beat the serial estimate by this factor for the rest to go parallel
MIN_SPEEDUP = 1.15


@dataclasses.dataclass(frozen=True)
class Plan:
    """How :func:`run_items` scheduled one call (logged, and returned for tests)."""

    mode: str  # "serial", "threads" (the rest after the probe), "probe" (nothing after it),
    # or "processes" (parallel_map's process backend)
    items: int
    grain: int  # items per work unit
    item_s: float | None  # the serial time of one item (None: not timed)
    speedup: float | None  # the probe's speed-up over the serial estimate (None: no probe)
    reason: str


def report(plan: Plan, what: str) -> Plan:
    """Log ``plan`` in one DEBUG record of ``"parareg.parallel"`` (``record.plan``); return it."""
    if _log.isEnabledFor(logging.DEBUG):
        timing = "" if plan.item_s is None else f", {plan.item_s * 1e3:.3g} ms per item"
        probe = "" if plan.speedup is None else f", probe speed-up {plan.speedup:.2f}"
        _log.debug("%s: %d items %s, grain %d%s%s (%s)", what, plan.items, plan.mode,
                   plan.grain, timing, probe, plan.reason, extra={"plan": plan})
    return plan


def measure(call, n: int, *, start: int = 0) -> tuple[int, float]:
    """Run ``call(i)`` serially from ``i = start`` until enough work is timed.

    The first item is timed alone (it may include warm-up such as a numba
    compilation or cold caches), then batches of 1, 2, 4, ... items, so that
    tiny items are not slowed by a clock read each. Returns ``(done,
    item_s)``: the next item to run and the estimated time of one item (the
    fastest batch's per-item time; the first item's if nothing followed it).
    """
    index, batch = start, 1
    first = None
    estimates = []
    total = 0.0
    while index < n:
        stop = min(n, index + batch)
        begin = time.perf_counter()
        _run_range(call, index, stop)
        elapsed = time.perf_counter() - begin
        if first is None:
            first = elapsed
        else:
            total += elapsed
            estimates.append(elapsed / (stop - index))
            batch *= 2
        index = stop
        if first >= LARGE_ITEM_S or (estimates and total >= MEASURE_S):
            break
    return index, min(estimates) if estimates else first


def _run_range(call, start: int, stop: int) -> None:
    for index in range(start, stop):
        call(index)


def run_items(call, n: int, *, num_threads: int, schedule: str = "dynamic",
              grain: int | None = None, start: int = 0, before_s: float | None = None,
              what: str = "run_items") -> Plan:
    """Call ``call(i)`` for every ``i`` in ``range(start, n)``, serially or on the pool.

    Parameters
    ----------
    call : callable
        ``call(i)`` computes item ``i`` and stores its result in a place
        owned by ``i``. It should catch the Exceptions it wants to keep
        (the map functions do); an escaping exception propagates as from
        :func:`parareg.parallel.run_units`.
    n : int
        Number of items.
    num_threads : int
        Resolved thread count (the caller included).
    schedule : {"static", "dynamic", "guided"}
        Assignment of work units to threads.
    grain : int, optional
        Items per work unit. ``None`` times the first items and chooses the
        grain or serial execution (see the module docstring); an integer
        fixes it and skips the timing (serial when it makes one unit).
    start : int
        The first item to run (the earlier ones ran already, e.g. item 0 of
        an array map, which fixes the output's shape).
    before_s : float, optional
        How long the item before ``start`` took; at least ``LARGE_ITEM_S``
        stands for the timing phase (large items: no further serial one).
    what : str
        The caller's name, for the log record.

    Returns
    -------
    Plan
        The choice made (also logged at ``DEBUG`` on ``"parareg.parallel"``).
    """
    if num_threads <= 1 or n - start <= 1 or in_work_unit():
        _run_range(call, start, n)
        reason = ("nested in a work unit" if in_work_unit()
                  else "one thread" if num_threads <= 1 else "one item")
        return report(Plan("serial", n, max(n, 1), None, None, reason), what)
    if grain is not None:
        units = partition_range(start, n, grain=grain)
        if len(units) <= 1:
            _run_range(call, start, n)
            return report(Plan("serial", n, grain, None, None, "one unit of the given grain"),
                          what)
        run_units(lambda u: _run_range(call, *units[u]), len(units), num_threads=num_threads,
                  schedule=schedule)
        return report(Plan("threads", n, grain, None, None, "the given grain"), what)

    if before_s is not None and before_s >= LARGE_ITEM_S:
        done, item_s = start, before_s
    else:
        done, item_s = measure(call, n, start=start)
    left = n - done
    if left == 0:
        return report(Plan("serial", n, n, item_s, None, "every item ran while timing"), what)
    if item_s * left < SERIAL_BELOW_S:
        _run_range(call, done, n)
        return report(Plan("serial", n, n, item_s, None,
                           f"under {SERIAL_BELOW_S * 1e3:.3g} ms of work"), what)
    grain = max(1, min(math.ceil(UNIT_S / max(item_s, 1e-9)),
                       math.ceil(left / (2 * num_threads))))
    probe_items = max(grain * num_threads, math.ceil(PROBE_SHARE * left))
    probe = partition_range(done, min(n, done + probe_items), grain=grain)
    spans = [None] * len(probe)
    cpu = [0.0] * len(probe)

    def probe_unit(unit):
        begin, begin_cpu = time.perf_counter(), time.thread_time()
        _run_range(call, *probe[unit])
        cpu[unit] = time.thread_time() - begin_cpu
        spans[unit] = (begin, time.perf_counter())

    run_units(probe_unit, len(probe), num_threads=num_threads, schedule=schedule)
    probe_stop = probe[-1][1]
    # from the first unit's start to the last one's end: the pool's wake-up is not counted
    wall = max(end for _, end in spans) - min(begin for begin, _ in spans)
    if probe_stop == n:
        return report(Plan("probe", n, grain, item_s, None, "all in the probe"), what)
    speedup = item_s * (probe_stop - done) / max(wall, 1e-9)
    reference_stop = probe_stop
    if item_s * (probe_stop - done) < REFERENCE_BELOW_S:
        # as many items right after, serially: a reference taken under the same machine load
        reference_stop = min(n, probe_stop + (probe_stop - done))
        begin, begin_cpu = time.perf_counter(), time.thread_time()
        _run_range(call, probe_stop, reference_stop)
        serial_wall = time.perf_counter() - begin
        serial_cpu = time.thread_time() - begin_cpu
        speedup = (serial_wall * (probe_stop - done) / (reference_stop - probe_stop)
                   / max(wall, 1e-9))
        if serial_cpu > max(1e-4, 0.1 * serial_wall):  # busy in this thread, not waiting
            # how many threads really ran at once, relative to one thread alone: CPU time
            # over wall time in the probe, over the same in the reference. A function that
            # holds the GIL keeps it near 1 however noisy the clocks are on a busy machine.
            concurrency = (sum(cpu) / max(wall, 1e-9)) / (serial_cpu / serial_wall)
            speedup = min(speedup, concurrency)
    if reference_stop == n:
        return report(Plan("probe", n, grain, item_s, speedup, "all in the probes"), what)
    if speedup < MIN_SPEEDUP:
        _run_range(call, reference_stop, n)
        return report(Plan("serial", n, grain, item_s, speedup,
                           f"the probe ran under {MIN_SPEEDUP}x the serial speed"), what)
    rest = partition_range(reference_stop, n, grain=grain)
    run_units(lambda u: _run_range(call, *rest[u]), len(rest), num_threads=num_threads,
              schedule=schedule)
    return report(Plan("threads", n, grain, item_s, speedup, "the probe ran faster"), what)
