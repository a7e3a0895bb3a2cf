"""Adaptive scheduling of independent items: time the first ones, then choose, without a barrier.

The items (slices, blocks, list entries) are fixed by the data; only *who
runs them and in which groups* adapts, so results never depend on the
choice. :func:`run_items` hands out ranges of items from one shared
counter:

* The caller starts at once, serially: the first item alone (it may
  include warm-up such as a numba compilation), then two or three batches
  sized from it until about a millisecond is timed (:data:`MEASURE_S`). That
  gives the serial time of one item, and the caller's CPU over wall time. As
  soon as the rest is projected under the serial threshold (even at the
  first item's pace, an upper bound) it runs in one go: a quick call costs
  the loop plus a few clock reads.
* When the rest would take under :data:`SERIAL_BELOW_S` plus
  :data:`WAKE_FACTOR` times the pool's measured wake-up latency (how long a
  helper took to start after it was handed work, a running average: several
  ms on a virtual machine whose idle vCPU sleeps), or the items take under
  :data:`MIN_ITEM_S` each (a call's own dispatch holds the GIL, and handing
  the GIL between threads costs more than such an item), it runs serially:
  the pool is not touched (or its early helpers find nothing to claim).
* A probe's serial verdict is remembered per function and kind of item (the
  ``memo`` key the maps pass): a later call runs as a plain loop at once (no
  timing, no pool, two clock reads: a few microseconds), until
  :data:`MEMO_BUDGET_S` of work has run so; then it probes again, and a
  repeated serial verdict multiplies that budget by :data:`MEMO_GROWTH` (up
  to :data:`MEMO_MAX_S`), so the probes of a function that holds the GIL cost
  a per cent or so of its work at most, across calls as within one. After
  :data:`MEMO_STRIKES` calls in a row whose items cost over
  :data:`MEMO_COST_RATIO` times the probe's, the next call probes. A
  parallel verdict forgets it.
* Otherwise helper threads of the pool join the caller, claiming work units of
  about :data:`UNIT_S` each. For items known to be large (``early=True``:
  the array maps, for slices or blocks of :data:`EARLY_VOXELS` voxels or
  more) the helpers are woken at the start and join, one item at a time,
  when the caller is still in its first items after :data:`JOIN_AFTER_S`:
  a call of 8 blocks of 0.3 s starts in parallel, not after a serial block.
* The first helper to have run two probe units (a quarter of the grain each)
  or :data:`PROBE_S` of work decides (after one unit if it is a clear loss),
  from its own window: its pace relative to the serial one (``T`` threads at
  that pace would run ``speed-up`` times faster than the loop), and, for a
  function that keeps the CPU busy, the CPU time it and the caller got
  together (read from both threads' CPU clocks) in units of what the caller
  got alone while timing: at most one under the GIL, whatever the
  machine's load. Under :data:`MIN_SPEEDUP` (a function
  that holds the GIL; a numba call dominated by its dispatch, which
  ping-pongs the GIL) the helpers stop after their unit and the caller
  finishes the rest alone, as a plain loop would. In doubt, serial; the
  deciding helper asks again after :data:`REPROBE_AFTER_S`, or
  :data:`REPROBE_COST_FACTOR` times as long as its probe took if longer (then
  twice as long each time), while at least that much work is left, so a long call
  that began on a saturated machine, or after an unlucky probe, still gets
  the cores that free up (a function that holds the GIL pays one short
  probe per doubling interval: a few per cent at most).

So a function that holds the GIL loses at most the helpers' probes (a few
milliseconds of contention each), and a quick call never wakes the pool.
Each call logs its choice in one ``DEBUG`` record of the
``"parareg.parallel"`` logger, with the :class:`Plan` as ``record.plan``.

Examples
--------
>>> out = [None] * 5
>>> def square(start, stop):
...     for i in range(start, stop):
...         out[i] = i * i
>>> run_items(square, 5, num_threads=2).mode  # five quick items: a plain loop is fastest
'serial'
>>> out
[0, 1, 4, 9, 16]
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import typing
import weakref

from .partition import partition_range
from .pool import _pool, in_work_unit, run_units, work_unit

_log = logging.getLogger("parareg.parallel")

#: the serial timing phase ends once this much work has been timed after the first item
MEASURE_S = 1e-3
#: remaining work estimated below this runs serially
SERIAL_BELOW_S = 1e-3
#: the target duration of one work unit on the pool
UNIT_S = 1e-3
#: a first item slower than this is timed alone (large items: no second serial one)
LARGE_ITEM_S = 20e-3
#: a helper joins the caller's timing phase after this long (large items start in parallel)
JOIN_AFTER_S = 2e-3
#: array maps whose items hold this many voxels wake their helpers at the start (early=True)
EARLY_VOXELS = 1 << 16
#: a helper decides after two units or this much of its own wall time, whichever is first
PROBE_S = 5e-3
#: after a serial verdict the deciding helper probes again after this long (then 2x, 4x, ...)
#: while at least that much work is left: a saturated machine may free a core
REPROBE_AFTER_S = 50e-3
#: ... and at least this many times the wall time of the probe before (a probe of a
#: GIL-holding function costs up to its own duration: this keeps it to a few per cent)
REPROBE_COST_FACTOR = 20.0
#: the threads must beat the serial pace by this factor for the helpers to go on
MIN_SPEEDUP = 1.15
#: a helper's first unit estimating a speed-up under this decides at once (a clear loss)
CLEAR_LOSS = 0.8
#: CPU over wall time under which a function counts as waiting (sleep, I/O), not computing
WAITING_CPU = 0.05
#: items quicker than this run serially: handing the GIL between threads costs more
MIN_ITEM_S = 2e-6
#: the rest must be longer than this many wake-up latencies of the pool to try it
WAKE_FACTOR = 4.0
#: the weight of the latest helper's wake-up latency in the running average
WAKE_WEIGHT = 0.25
#: a call kept serial by the wake-up latency alone scales the average by this
WAKE_DECAY = 0.9
#: a remembered serial verdict covers items up to this factor costlier than its probe's
MEMO_COST_RATIO = 4.0
#: consecutive calls with items that much costlier end a remembered verdict (one such call
#: may just have been preempted on a loaded machine)
MEMO_STRIKES = 5
#: serial work a remembered verdict covers before the next probe
MEMO_BUDGET_S = 0.25
#: a repeated serial verdict multiplies the budget by this
MEMO_GROWTH = 4.0
#: the most serial work a remembered verdict covers
MEMO_MAX_S = 12.8
#: the most remembered verdicts (the oldest is dropped)
MEMO_SIZE = 256

#: the running average of the pool's wake-up latency (s): hand-off to a helper's start
_wake_s = 0.0


class Plan(typing.NamedTuple):
    """How :func:`run_items` scheduled one call (logged, and returned for tests)."""

    mode: str  # "serial", "threads" (helpers went on after the probe), "probe" (the items ran
    # out before a decision), or "processes" (parallel_map's process backend)
    items: int
    grain: int  # items per work unit
    item_s: float | None  # the serial time of one item (None: not timed)
    speedup: float | None  # the probe's speed-up over the serial pace (where no helper
    # decided: the whole pool phase's; None: the pool was not tried)
    reason: str


def report(plan: Plan, what: str) -> Plan:
    """Log ``plan`` in one DEBUG record of ``"parareg.parallel"`` (``record.plan``); return it."""
    if _log.isEnabledFor(logging.DEBUG):
        timing = "" if plan.item_s is None else f", {plan.item_s * 1e3:.3g} ms per item"
        probe = "" if plan.speedup is None else f", probe speed-up {plan.speedup:.2f}"
        _log.debug("%s: %d items %s, grain %d%s%s (%s)", what, plan.items, plan.mode,
                   plan.grain, timing, probe, plan.reason, extra={"plan": plan})
    return plan


def measure(call, n: int, *, start: int = 0, alone_above: float = LARGE_ITEM_S,
            serial_below: float = SERIAL_BELOW_S) -> tuple[int, float]:
    """Run ``call(i)`` serially from ``i = start`` until enough work is timed.

    The timing of :func:`run_items`' caller (see the module docstring), for
    the process backend, whose timed items run in the caller: a first item
    over ``alone_above`` seconds is timed alone, and the timing stops once
    the rest is projected under ``serial_below`` seconds. Returns ``(done,
    item_s)``: the next item to run and the estimated time of one item.
    """
    timer = _Range(lambda a, b: [call(i) for i in range(a, b)], start, n, keep_errors=False)
    item_s, _ = _time_alone(timer, timer.claim, alone_above=alone_above,
                            serial_below=serial_below)
    return timer.next, item_s


def _memo_key(memo):
    """``memo = (func, kind)`` as ``(key, weak reference to func)``, or ``None``.

    ``kind``: a tuple of hashable facts about the items (shape, dtype,
    keyword names). ``None`` where ``func`` cannot be weakly referenced (it is
    then never remembered, and nothing keeps a function alive).
    """
    if memo is None:
        return None
    func, kind = memo
    try:
        ref = weakref.ref(func)
    except TypeError:
        return None
    return (id(func), *kind), ref


@dataclasses.dataclass
class _Verdict:
    """A remembered serial verdict (see the module docstring)."""

    ref: weakref.ref  # the function (its id is in the key: a new function may reuse it)
    item_s: float
    speedup: float
    budget: float  # serial seconds covered before the next probe
    spent: float = 0.0  # serial seconds run on it so far
    strikes: int = 0  # consecutive calls whose items cost over MEMO_COST_RATIO x item_s


_memo: dict = {}
_memo_lock = threading.Lock()


def forget() -> None:
    """Forget every remembered verdict (the next call of each function probes again)."""
    with _memo_lock:
        _memo.clear()


def _recall(memo) -> _Verdict | None:
    """The remembered verdict for ``memo`` while its budget lasts, else ``None``."""
    keyed = _memo_key(memo)
    if keyed is None:
        return None
    key, ref = keyed
    verdict = _memo.get(key)  # one dict read: atomic, no lock
    if verdict is None or verdict.ref() is not ref() or verdict.spent >= verdict.budget:
        return None
    return verdict


def _remember(memo, plan: Plan, *, helped: bool) -> None:
    """Keep a probe's serial verdict under ``memo`` (a parallel one forgets the old).

    ``helped``: the helpers ran items. Where they ran none, the pace of the
    whole pool phase (the call's speed-up) rests on the caller's timing
    alone, which one preempted first item can inflate: such a call may keep
    a serial verdict, never forget one.
    """
    keyed = None if plan.speedup is None or plan.item_s is None else _memo_key(memo)
    if keyed is None:
        return
    key, ref = keyed
    with _memo_lock:
        parallel = plan.mode == "threads" or plan.speedup >= MIN_SPEEDUP  # (a probe that ran
        if parallel and not helped:  # out of items counts by the pace of the whole call)
            return
        old = _memo.pop(key, None)
        if parallel:
            return
        again = old is not None and old.ref() is ref()
        budget = min(MEMO_GROWTH * old.budget, MEMO_MAX_S) if again else MEMO_BUDGET_S
        _memo[key] = _Verdict(ref, plan.item_s, plan.speedup, budget)
        while len(_memo) > MEMO_SIZE:
            del _memo[next(iter(_memo))]


def _woke(latency: float) -> None:
    """Fold one helper's wake-up latency into the running average."""
    global _wake_s
    _wake_s += WAKE_WEIGHT * (latency - _wake_s)


#: threads have CPU clocks here: the helpers read the caller's, it needs no window of its own
_THREAD_CLOCKS = hasattr(time, "pthread_getcpuclockid")


def _cpu_clock(ident: int):
    """A clock of thread ``ident``'s CPU time (``None`` where the platform has none)."""
    try:
        return time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):
        return None


class _Shared:
    """The state one adaptive call shares between the caller and its helpers."""

    def __init__(self, run_range, start: int, n: int, num_threads: int):
        self.run_range, self.n, self.num_threads = run_range, n, num_threads
        self.caller_clock = _cpu_clock(threading.get_ident())
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.next = start
        self.busy = 0  # ranges claimed by helpers and not finished
        self.helper_items = 0  # items the helpers ran
        self.grain = 1  # items per helper claim (1 until the timing sets it)
        self.item_s = None  # the serial time of one item
        self.cpu_share = None  # the caller's CPU over wall time while timing alone
        self.last_item_s = None  # per item, of the caller's latest range (fresh for a re-probe)
        self.speedup = None
        self.parallel = None  # None: undecided; True: helpers go on; False: they stop
        self.timed = threading.Event()  # the caller's timing phase is over (or it gave up)
        self.stop = threading.Event()  # helpers claim nothing more
        self.done = threading.Event()  # the caller has claimed everything (or gave up)
        self.errors = {}  # first item of a range -> an Exception that escaped run_range
        self.fatal = None  # a BaseException of a helper
        self.submitted = time.perf_counter()  # when the helpers were handed to the pool
        self.began = self.submitted  # when the caller's timing ended
        self.left = n - start  # the items left then
        self.elapsed = 0.0  # from then until every item ran

    def claim(self, count: int, helper: bool):
        with self.lock:
            if (self.next >= self.n or self.fatal is not None
                    or (helper and self.stop.is_set())):
                return None
            start = self.next
            self.next = min(self.n, start + count)
            if helper:
                self.busy += 1
            return start, self.next

    def release(self, items: int):
        with self.lock:
            self.busy -= 1
            self.helper_items += items
            self.idle.notify_all()

    def run(self, start: int, stop: int) -> None:
        try:
            self.run_range(start, stop)
        except Exception as exc:  # noqa: BLE001 - the lowest is re-raised by the caller
            self.errors[start] = exc

    def caller_cpu(self) -> float | None:
        return None if self.caller_clock is None else time.clock_gettime(self.caller_clock)

    def decide(self, *, items: int, wall: float, cpu: float, caller_cpu: float | None,
               final: bool) -> bool:
        """A helper's verdict on its window (see the module docstring).

        ``items``, ``wall`` and ``cpu``: the helper's items, wall time and
        CPU time so far; ``caller_cpu``: the caller's CPU time in the same
        window (``None`` where threads have no CPU clock); ``final``: the
        probe is over (else only a clear loss decides). Returns whether this
        call made the decision.
        """
        wall = max(wall, 1e-9)
        # every thread at this helper's pace, relative to the loop's
        speedup = self.num_threads * items * self.item_s / wall
        # sleep or I/O: judged by its pace alone (a CPU-bound thread starved by a loaded
        # machine still gets more than WAITING_CPU: 2 cores shared by 20 busy threads, 0.1)
        caller_share = self.cpu_share if caller_cpu is None else caller_cpu / wall
        waits = cpu < WAITING_CPU * wall and (caller_share or 0.0) < WAITING_CPU
        if caller_cpu is not None and not waits:
            # the CPU cores the pair kept busy at once: at most one under the GIL, whatever the
            # load (a helper can even run alone at full pace while the caller waits for the GIL)
            speedup = min(speedup, (cpu + caller_cpu) / wall * self.num_threads / 2)
        if not final and speedup >= CLEAR_LOSS:
            return False
        with self.lock:
            if self.parallel is not None:
                return False
            self.speedup = speedup
            self.parallel = speedup >= MIN_SPEEDUP
            if not self.parallel:
                self.stop.set()
            return True

    def reprobe(self, backoff: float) -> bool:
        """After a serial verdict: wait ``backoff`` s, then probe again if work is left."""
        if self.done.wait(backoff):
            return False
        with self.lock:
            item_s = self.last_item_s or self.item_s  # the caller ran alone since: its pace now
            if (self.done.is_set() or self.fatal is not None
                    or item_s * (self.n - self.next) < backoff):
                return False
            self.item_s = item_s
            self.grain = _grain(item_s, self.n - self.next, self.num_threads)
            self.parallel = None
            self.stop.clear()
            return True


def _helper(shared: _Shared) -> None:
    _woke(time.perf_counter() - shared.submitted)
    shared.timed.wait(JOIN_AFTER_S)
    units = items = 0
    # one window for both threads' clocks and the items, from the first claim on
    start, start_cpu, caller_start = time.perf_counter(), time.thread_time(), shared.caller_cpu()
    decider, probe_wall = False, None
    backoff = REPROBE_AFTER_S
    with work_unit():
        while True:
            # the probe's units are a quarter of the grain: a bad guess costs little
            grain = shared.grain if shared.parallel else max(1, shared.grain // 4)
            claimed = shared.claim(grain, helper=True)
            if claimed is None:
                if decider and probe_wall is not None:  # a long probe waits longer to ask again
                    backoff = max(backoff, REPROBE_COST_FACTOR * probe_wall)
                if not (decider and shared.parallel is False and shared.reprobe(backoff)):
                    return
                # the machine's load may have changed (or the first probe was unlucky)
                decider, backoff, units, items = False, 2 * backoff, 0, 0
                probe_wall = None
                start, start_cpu = time.perf_counter(), time.thread_time()
                caller_start = shared.caller_cpu()
                continue
            try:
                shared.run(*claimed)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: the caller re-raises
                shared.fatal = exc
                shared.stop.set()
                return
            finally:
                shared.release(claimed[1] - claimed[0])
            units += 1
            items += claimed[1] - claimed[0]
            if shared.parallel is None and shared.item_s is not None:
                wall = time.perf_counter() - start
                caller = shared.caller_cpu()
                decider = shared.decide(
                    items=items, wall=wall, cpu=time.thread_time() - start_cpu,
                    caller_cpu=None if caller is None else caller - caller_start,
                    final=units >= 2 or wall >= PROBE_S)
                if decider:
                    probe_wall = wall


def _time_alone(timer, claim, *, alone_above: float = LARGE_ITEM_S,
                serial_below: float | None = None):
    """The caller's timing phase: the first item alone, then batches sized from it.

    ``claim(count)`` hands out the next range of ``timer`` (``None`` when none
    is left) and ``timer.run(a, b)`` runs it. After the first item (an upper
    bound: it may include warm-up) a batch of about a quarter of
    :data:`MEASURE_S`, then batches up to 4x larger that fill it (at least
    two: the fastest is kept, so one preempted batch does not mislead). The timing
    stops early when the rest is projected under ``serial_below`` (default:
    :func:`_serial_below`): that call is serial anyway. Returns the serial time
    of one item (the fastest batch's per item, else the first item's) and the
    start of the caller's CPU window (see :func:`_cpu_share`: under 1 on a busy
    machine, near 0 for a function that waits), or ``(None, None)`` if
    nothing ran.
    """
    serial_below = _serial_below() if serial_below is None else serial_below
    batch, first, best, total, batches = 1, None, math.inf, 0.0, 0
    begin_cpu = None  # the CPU window starts after the first item (a syscall: not for 1 item)
    while (claimed := claim(batch)) is not None:
        if first is not None and begin_cpu is None and not _THREAD_CLOCKS:
            begin_all, begin_cpu = time.perf_counter(), time.thread_time()
        begin = time.perf_counter()
        timer.run(*claimed)
        elapsed = time.perf_counter() - begin
        if first is None:
            first = elapsed
            if first >= alone_above:
                break
            batch = max(1, int(MEASURE_S / (4 * max(first, 1e-9))))
        else:
            total += elapsed
            batches += 1
            best = min(best, elapsed / (claimed[1] - claimed[0]))
            if total >= MEASURE_S and batches >= 2:  # two: one preempted batch misleads
                break
            batch = max(1, min(4 * batch, math.ceil((MEASURE_S - total) / max(best, 1e-9))))
        if min(first, best) * (timer.n - timer.next) < serial_below:
            break
    if first is None:
        return None, None
    window = None if begin_cpu is None else (begin_all, begin_cpu)
    return (first if best == math.inf else best), window


def _cpu_share(window) -> float | None:
    """The caller's CPU over wall time since ``window = (wall, cpu)`` (read only if needed)."""
    if window is None:
        return None
    return (time.thread_time() - window[1]) / max(time.perf_counter() - window[0], 1e-9)


class _Range:
    """A plain counter over ``[start, n)`` for the caller alone (no lock, no thread woken)."""

    def __init__(self, run_range, start: int, n: int, *, keep_errors: bool = True):
        self.run_range, self.next, self.n = run_range, start, n
        self.errors = {}
        if not keep_errors:
            self.run = run_range

    def claim(self, count: int):
        if self.next >= self.n:
            return None
        start = self.next
        self.next = min(self.n, start + count)
        return start, self.next

    def run(self, start: int, stop: int) -> None:
        try:
            self.run_range(start, stop)
        except Exception as exc:  # noqa: BLE001 - the lowest is re-raised by the caller
            self.errors[start] = exc


def _grain(item_s: float, left: int, num_threads: int) -> int:
    """Items per work unit: about UNIT_S of work, and at least two units per thread."""
    return max(1, min(math.ceil(UNIT_S / max(item_s, 1e-9)),
                      math.ceil(left / (2 * num_threads))))


def _serial_below() -> float:
    """Work (s) under which the rest runs serially: the threshold plus the pool's wake-up."""
    return SERIAL_BELOW_S + WAKE_FACTOR * _wake_s


def _serial_reason(item_s: float | None, left: int) -> str | None:
    if item_s is None:
        return None
    global _wake_s
    work = item_s * left
    if work < SERIAL_BELOW_S + WAKE_FACTOR * _wake_s:
        if work >= SERIAL_BELOW_S:  # kept serial by the wake-up alone: let it fade, so one
            _wake_s *= WAKE_DECAY  # slow wake-up does not keep the later calls serial
        return _QUICK
    if item_s < MIN_ITEM_S:
        return _TINY
    return None


# the reasons are constants: formatting numbers would cost a quick call more than its check
_QUICK = "under SERIAL_BELOW_S + WAKE_FACTOR x the pool's wake-up latency of work"
_TINY = "items under MIN_ITEM_S: handing the GIL between threads costs more"
_REMEMBERED = ("a probe of this function on such items ran under MIN_SPEEDUP (remembered "
               "until its budget of serial work is spent)")


def run_items(run_range, n: int, *, num_threads: int, schedule: str = "dynamic",
              grain: int | None = None, start: int = 0, early: bool = False,
              memo=None, what: str = "run_items") -> Plan:
    """Call ``run_range(a, b)`` on ranges covering ``[start, n)``, serially or on the pool.

    Parameters
    ----------
    run_range : callable
        ``run_range(a, b)`` computes items ``a`` to ``b - 1`` and stores each
        result in a place owned by its item. It should catch the Exceptions it
        wants to keep (the map functions do); one that escapes is re-raised
        (the lowest range's) after every item has run.
    n : int
        Number of items.
    num_threads : int
        Resolved thread count (the caller included).
    schedule : {"static", "dynamic", "guided"}
        Assignment of work units to threads with a given ``grain`` (the
        adaptive path claims units dynamically).
    grain : int, optional
        Items per work unit. ``None`` times the first items and chooses
        (see the module docstring); an integer fixes it and skips the
        timing (serial when it makes one unit).
    start : int
        The first item to run (the earlier ones ran already).
    early : bool
        Wake the helpers at the start, to join after :data:`JOIN_AFTER_S`
        if the caller is still in its first items (for items known to be
        large, e.g. slices of many voxels). Otherwise they are woken only
        once the timing says the rest is worth it, so a quick call never
        touches the pool (waking a thread takes the GIL from the caller for
        a moment: milliseconds on a loaded machine).
    memo : tuple, optional
        ``(func, kind)``: the function and a tuple of hashable facts about
        its items; a probe's serial verdict is remembered under them (see
        the module docstring).
    what : str
        The caller's name, for the log record.

    Returns
    -------
    Plan
        The choice made (also logged at ``DEBUG`` on ``"parareg.parallel"``).
    """
    if num_threads <= 1 or n - start <= 1 or in_work_unit():
        reason = ("nested in a work unit" if in_work_unit()
                  else "one thread" if num_threads <= 1 else "one item")
        if n > start:
            run_range(start, n)
        return report(Plan("serial", n, max(n, 1), None, None, reason), what)
    if grain is not None:
        units = partition_range(start, n, grain=grain)
        if len(units) <= 1:
            run_range(start, n)
            return report(Plan("serial", n, grain, None, None, "one unit of the given grain"),
                          what)
        run_units(lambda u: run_range(*units[u]), len(units), num_threads=num_threads,
                  schedule=schedule)
        return report(Plan("threads", n, grain, None, None, "the given grain"), what)
    return report(_adaptive(run_range, start, n, num_threads, early, memo), what)


def _remembered(run_range, start: int, n: int, verdict: _Verdict) -> Plan:
    """A remembered serial verdict: the plain loop, timed as a whole (two clock reads)."""
    begin = time.perf_counter()
    run_range(start, n)
    item_s = (time.perf_counter() - begin) / (n - start)
    verdict.spent += item_s * (n - start)  # (a race of two callers loses a few ms of budget)
    if item_s <= verdict.item_s * MEMO_COST_RATIO:
        verdict.strikes = 0
    else:  # costlier items than the probe's (or a preempted call: hence the strikes)
        verdict.strikes += 1
        if verdict.strikes >= MEMO_STRIKES:
            verdict.spent = verdict.budget  # the next call probes
    return Plan("serial", n, n, item_s, None, _REMEMBERED)


def _adaptive(run_range, start: int, n: int, num_threads: int, early: bool, memo) -> Plan:
    verdict = _recall(memo)
    if verdict is not None:
        return _remembered(run_range, start, n, verdict)
    if early:
        shared = _Shared(run_range, start, n, num_threads)
        _pool.submit(lambda: _helper(shared), num_threads - 1)
        timer = shared
    else:  # the timing needs no shared state: a quick call stays a plain loop
        shared, timer = None, _Range(run_range, start, n)
    reason = None
    try:
        with work_unit():
            claim = (lambda count: shared.claim(count, helper=False)) if early else timer.claim
            item_s, window = _time_alone(timer, claim)
            left = n - timer.next
            reason = _serial_reason(item_s, left)
            if shared is None:
                if reason is not None or left == 0:
                    if left:
                        timer.run(timer.next, n)
                    if timer.errors:
                        raise timer.errors[min(timer.errors)]
                    return Plan("serial", n, n, item_s, None,
                                reason or "every item ran while timing")
                shared = _Shared(run_range, timer.next, n, num_threads)
                shared.errors = timer.errors
            shared.item_s, shared.cpu_share = item_s, _cpu_share(window)
            if reason is not None:
                shared.stop.set()
            if item_s is not None:
                shared.grain = _grain(item_s, left, num_threads)
            shared.began, shared.left = time.perf_counter(), left
            shared.timed.set()
            if not early:
                _pool.submit(lambda: _helper(shared), num_threads - 1)
            while (claimed := shared.claim(shared.grain, helper=False)) is not None:
                begin = time.perf_counter()
                shared.run(*claimed)
                shared.last_item_s = (time.perf_counter() - begin) / (claimed[1] - claimed[0])
    except BaseException:
        if shared is not None:
            shared.done.set()
            shared.stop.set()  # the helpers stop after their current range
            shared.timed.set()
        raise
    with shared.lock:
        shared.done.set()
        shared.stop.set()  # helpers still waiting to join find nothing
        while shared.busy:
            shared.idle.wait()
    shared.elapsed = time.perf_counter() - shared.began
    if shared.fatal is not None:
        raise shared.fatal
    if shared.errors:
        raise shared.errors[min(shared.errors)]
    plan = _outcome(shared, n, reason)
    _remember(memo, plan, helped=shared.helper_items > 0)
    return plan


def _outcome(shared: _Shared, n: int, reason: str | None) -> Plan:
    """The :class:`Plan` of a call that went past the caller's timing."""
    grain, item_s, speedup = shared.grain, shared.item_s, shared.speedup
    if speedup is None and reason is None and item_s is not None:
        # no helper decided: the whole pool phase against the serial pace (a quick call's
        # probe that ran out of items, or helpers that woke too late to get any)
        speedup = item_s * shared.left / max(shared.elapsed, 1e-9)
    if not shared.helper_items:
        if reason is None:
            reason = ("every item ran in the caller" if shared.speedup is None
                      else f"the probe ran under {MIN_SPEEDUP}x the serial pace")
        return Plan("serial", n, grain, item_s, speedup, reason)
    if shared.parallel is None:
        return Plan("probe", n, grain, item_s, speedup, "the items ran out in the probe")
    if not shared.parallel:
        return Plan("serial", n, grain, item_s, speedup,
                    f"the probe ran under {MIN_SPEEDUP}x the serial pace")
    return Plan("threads", n, grain, item_s, speedup, "the probe ran faster")
