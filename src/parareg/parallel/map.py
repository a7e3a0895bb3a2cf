"""Run your own functions on the pool: per item, per slice, per block.

Results always come back in input order, and they never depend on the
thread count or the schedule: the items (list entries, slices, blocks) are
fixed by the data, each is computed by one call of your function, and only
the scheduling adapts. By default (``grain=None``) the first items are
timed and the rest runs serially or in work units of about a millisecond,
whichever the timing says is faster (see :mod:`parareg.parallel.adaptive`),
so small inputs and functions that hold the GIL run as fast as a plain loop.
A serial verdict is remembered per function and kind of item, so a loop of
calls does not pay the probe each time (it is asked again now and then).
For pure-Python functions, ``parallel_map(..., backend="processes")`` runs
on worker processes and the caller.

:func:`map_slices` and :func:`map_blocks` hand your function *views* of the
input (no copy, along any axis) and write each result straight into one
preallocated output array.

After a failure the same items run on every path (serial, threads,
processes): an :class:`Exception` from one item does not stop the others,
every item runs, and the exception of the lowest-indexed failing item is
re-raised. A ``KeyboardInterrupt`` or ``SystemExit`` stops promptly instead
(see :mod:`parareg.parallel.pool`): no further item starts and it is re-raised.

Examples
--------
>>> import numpy as np
>>> from scipy import ndimage
>>> volume = np.random.default_rng(0).random((8, 32, 32)).astype(np.float32)
>>> smoothed = map_slices(ndimage.gaussian_filter, volume, axis=0, num_threads=2, sigma=1.0)
>>> smoothed.shape
(8, 32, 32)
>>> blocks = map_blocks(ndimage.gaussian_filter, volume, block_shape=(8, 16, 16), halo=4,
...                     num_threads=2, sigma=1.0)
>>> bool(np.array_equal(blocks, ndimage.gaussian_filter(volume, sigma=1.0)))
True
>>> parallel_map(abs, [-1, -2, 3])
[1, 2, 3]
"""

from __future__ import annotations

import functools
import itertools
import math
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np

from .._config import as_index
from .adaptive import EARLY_VOXELS, MEASURE_S, Plan, measure, report, run_items
from .partition import _check_grain, partition_range
from .pool import in_work_unit, resolve_num_threads
from .schedule import check_schedule

BACKENDS = ("threads", "processes")

#: the least work (s) a call must save on warm worker processes to use them (round trips of
#: its chunks, pickling, waking the workers' vCPUs: about a millisecond each)
PROCESS_SAVING_S = 3e-3
#: starting the worker processes costs about this (the first time in a process: a fresh
#: forkserver that imports the main module, then a fork of it per worker; 1-2 s on 2 quiet
#: cores for a module importing numpy, scipy and parareg): a call saving less stays serial
#: and starts them in the background for the next call
PROCESS_START_S = 1.0
#: how the workers start: from a forkserver (a clean single-threaded process), never by
#: forking this one, whose other threads (the pool's, OpenBLAS's, numba's) may hold locks
#: that a forked child would inherit held (Python 3.12 warns about it); spawn where
#: there is no forkserver (Windows, macOS without it)
START_METHOD = ("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                else "spawn")
#: the target duration of one chunk of items sent to a worker (or kept by the caller)
PROCESS_UNIT_S = 5e-3
#: the most the caller waits for the executor to send the first chunks to the workers
PROCESS_HAND_OVER_S = 5e-3
#: the caller's poll interval meanwhile (a sleep: the executor's threads get the GIL)
HAND_OVER_POLL_S = 1e-4

_process_pools: dict[int, ProcessPoolExecutor] = {}
_process_ready: set[int] = set()  # worker counts whose processes have answered once
_process_lock = threading.Lock()


def _reset_process_pools():
    global _process_lock
    _process_pools.clear()
    _process_ready.clear()
    _process_lock = threading.Lock()  # another thread may have held it at fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_process_pools)


def _process_pool(workers: int) -> ProcessPoolExecutor:
    with _process_lock:
        pool = _process_pools.get(workers)
        if pool is None:
            pool = _process_pools[workers] = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD))
        return pool


def _drop_pool(workers: int, pool: ProcessPoolExecutor) -> None:
    """Forget a broken ``pool`` (the next call starts a fresh one)."""
    with _process_lock:
        if _process_pools.get(workers) is pool:
            del _process_pools[workers]
            _process_ready.discard(workers)
    pool.shutdown(wait=False)


def _start_in_background(workers: int) -> None:
    """Start ``workers`` worker processes in a daemon thread (the next call finds them)."""
    def start():
        try:
            _process_pool(workers).submit(int).result()
            _process_ready.add(workers)
        except Exception:  # noqa: BLE001 - a later call that needs the pool reports it
            pass

    with _process_lock:
        if workers in _process_pools:
            return  # started already (or starting)

    threading.Thread(target=start, name="parareg-process-start", daemon=True).start()


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    return backend


def _check_optional_grain(grain):
    return None if grain is None else _check_grain(grain)


class _Failed:
    """An item's Exception, carried in place of its result (picklable when the exception is)."""

    def __init__(self, exc):
        self.exc = exc


def _call_one(func, item):
    try:
        return func(item)
    except Exception as exc:  # noqa: BLE001 - re-raised by _raise_lowest
        return _Failed(exc)


def _map_chunk(func, items) -> list:
    """``func(item)`` for every item; an Exception becomes a :class:`_Failed`, the rest go on.

    ``map`` at C speed (no wrapper call per item: the plain loop's cost); an
    Exception ends one pass (``extend`` keeps what it appended) and the next
    pass goes on after the failed item.
    """
    out = []
    while len(out) < len(items):
        try:
            out.extend(map(func, items[len(out):] if out else items))
        except Exception as exc:  # noqa: BLE001 - re-raised by _raise_lowest
            out.append(_Failed(exc))
    return out


def _unwrap(value):
    if isinstance(value, _Failed):
        raise value.exc
    return value


def _raise_lowest(results: list) -> list:
    for value in results:
        if isinstance(value, _Failed):
            raise value.exc
    return results


def parallel_map(func, items, *, num_threads=None, backend: str = "threads",
                 schedule: str = "dynamic", grain: int | None = None) -> list:
    """``[func(item) for item in items]``, computed in parallel, in input order.

    Parameters
    ----------
    func : callable
        Applied to each item. With ``backend="processes"`` it must be
        picklable (a module-level function, or a ``functools.partial`` of one).
    items : iterable
        Inputs; consumed into a list first.
    num_threads : int, optional
        Threads (or worker processes) to use; ``None`` means
        :func:`parareg.get_num_threads`. ``1`` never touches the pool.
    backend : {"threads", "processes"}
        Threads suit functions that release the GIL (numba ``nogil``, NumPy,
        SciPy); a function that holds it (pure Python) runs as a plain loop
        there, since the probe sees no speed-up. ``"processes"`` runs such
        functions in parallel: ``num_threads - 1`` persistent worker
        processes (started from a forkserver, as with ``spawn``: a script
        must guard its own work with ``if __name__ == "__main__":``, and
        ``func`` must be importable there) plus the caller, which keeps the chunks no worker has
        started. The first items are timed in the caller; a call whose
        workers would save under :data:`PROCESS_SAVING_S` stays serial, and
        before the workers exist, one saving under :data:`PROCESS_START_S`
        stays serial and starts them in the background for the next call.
        Items and results are pickled (the caller's own chunks are not).
    schedule : {"static", "dynamic", "guided"}
        Assignment of work units to threads (threads backend, with a given
        ``grain``; the adaptive default claims units dynamically); results
        never depend on it.
    grain : int, optional
        Items per work unit. ``None`` (default) times the first items and
        chooses the grain or a serial loop (logged at ``DEBUG`` on the
        ``"parareg.parallel"`` logger); an integer fixes it (a single unit
        runs serially in the caller).

    Returns
    -------
    list
        ``func(item)`` for every item, in input order.

    Raises
    ------
    Exception
        The lowest-indexed failing item's, after every item has run (on
        every backend, serial or not).
    BaseException
        ``KeyboardInterrupt``, ``SystemExit``: re-raised promptly; items not
        yet started never run.

    Examples
    --------
    >>> parallel_map(len, ["a", "bb", "ccc"], num_threads=2)
    [1, 2, 3]
    """
    _check_backend(backend)
    check_schedule(schedule)  # also on the serial path, so a typo never passes silently
    grain = _check_optional_grain(grain)
    items = list(items)
    n_threads = resolve_num_threads(num_threads)
    if backend == "processes":
        return _raise_lowest(_map_processes(func, items, n_threads, grain))
    results = [None] * len(items)
    failed = {}  # index -> Exception (one key per item: no lock needed)

    def run_range(start, stop):  # map() at C speed; an Exception ends one pass, the next goes on
        while start < stop:
            done = []
            try:
                done.extend(map(func, items[start:stop]))
            except Exception as exc:  # noqa: BLE001 - the lowest is re-raised below
                failed[start + len(done)] = exc
                done.append(None)
            results[start:start + len(done)] = done
            start += len(done)

    run_items(run_range, len(items), num_threads=n_threads, schedule=schedule, grain=grain,
              memo=(func, ("parallel_map", n_threads, len(items).bit_length())),
              what="parallel_map")
    if failed:
        raise failed[min(failed)]
    return results


def _hand_over(futures) -> None:
    """Wait (without the GIL) until the executor has sent ``futures`` to its workers.

    The executor's threads need the GIL to queue and pickle chunks; a caller
    going straight on with pure Python would hold it for a switch interval
    (5 ms) at a time while the workers wait for their first chunks.
    """
    deadline = time.perf_counter() + PROCESS_HAND_OVER_S
    while not all(f.running() or f.done() for f in futures):
        if time.perf_counter() > deadline:
            return
        time.sleep(HAND_OVER_POLL_S)
    time.sleep(HAND_OVER_POLL_S)  # and for the queue's feeder thread to pickle them


def _guided_units(start: int, n: int, grain: int, workers: int, n_threads: int) -> list:
    """One large first chunk per worker (3/4 of its fair share), then chunks of ``grain``.

    Each worker is sent its large chunk at once (and one small one: the
    executor queues one chunk ahead); the caller takes the small ones from
    the end, so the split balances to about a small chunk, without a round
    trip per small chunk to a worker.
    """
    big = max(grain, (3 * (n - start)) // (4 * n_threads))
    units = []
    for _ in range(workers):
        if n - start <= grain:
            break
        units.append((start, min(n, start + big)))
        start = units[-1][1]
    return units + partition_range(start, n, grain=grain) if start < n else units


def _map_processes(func, items, n_threads: int, grain) -> list:
    """Items in chunks through ``n_threads - 1`` worker processes and the caller.

    The chunks are all submitted in order; the caller, instead of waiting,
    takes chunks from the end for itself for as long as it can cancel them
    (a chunk a worker has not yet been sent), then collects the workers'.
    Adaptive (``grain=None``): the first items are timed in the caller, and
    the call stays serial when the workers would save too little.
    """
    n = len(items)
    what = "parallel_map(backend='processes')"
    if n_threads <= 1 or n <= 1 or in_work_unit():
        report(Plan("serial", n, max(n, 1), None, None, "one thread, one item or nested"), what)
        return _map_chunk(func, items)
    workers = n_threads - 1  # the caller works too
    head = []
    item_s = None
    if grain is None:
        done, item_s = measure(lambda i: head.append(_call_one(func, items[i])), n,
                               alone_above=MEASURE_S, serial_below=PROCESS_SAVING_S)
        left = n - done
        saving = item_s * left * (1 - 1 / n_threads)
        warm = workers in _process_ready  # (a pool still starting would block the caller)
        if saving < (PROCESS_SAVING_S if warm else PROCESS_START_S):
            if warm or saving < PROCESS_SAVING_S:
                reason = (f"the workers would save under {PROCESS_SAVING_S * 1e3:g} ms: "
                          "a round trip to a worker costs about a millisecond")
            else:
                reason = (f"the workers would save under {PROCESS_START_S * 1e3:g} ms, less "
                          "than starting them costs: they start in the background")
                _start_in_background(workers)
            report(Plan("serial", n, n, item_s, None, reason), what)
            return head + _map_chunk(func, items[done:])
        grain = max(1, min(math.ceil(PROCESS_UNIT_S / max(item_s, 1e-9)),
                           math.ceil(left / (4 * n_threads))))
        units = _guided_units(len(head), n, grain, workers, n_threads)
    else:
        units = partition_range(len(head), n, grain=grain)
    if len(units) <= 1 and not head:
        report(Plan("serial", n, grain, None, None, "one unit of the given grain"), what)
        return _map_chunk(func, items)
    report(Plan("processes", n, grain, item_s, None, "the given grain" if item_s is None
                else "the workers save enough"), what)
    pool = _process_pool(workers)
    try:
        futures = [pool.submit(_map_chunk, func, items[start:stop]) for start, stop in units]
    except BrokenProcessPool:  # a worker died while idle (none of this call's work is lost)
        _drop_pool(workers, pool)
        pool = _process_pool(workers)
        futures = [pool.submit(_map_chunk, func, items[start:stop]) for start, stop in units]
    chunks = [None] * len(units)
    fatal = []  # a worker's KeyboardInterrupt or SystemExit: the caller starts no more chunks

    def note(future):
        if not future.cancelled() and not isinstance(future.exception(), (Exception, type(None))):
            fatal.append(future)

    for future in futures:
        future.add_done_callback(note)
    try:
        _hand_over(futures[:workers + 1])
        for index in reversed(range(len(units))):  # the caller's share, from the end
            if fatal or not futures[index].cancel():
                break  # sent to a worker already: so are the ones before it
            chunks[index] = _map_chunk(func, items[slice(*units[index])])
        if fatal:
            fatal[0].result()  # raises it
        for index, future in enumerate(futures):
            if chunks[index] is None:
                chunks[index] = future.result()  # every chunk runs, in any order
    except BrokenProcessPool:  # a worker died (the executor fails every chunk): start afresh
        _drop_pool(workers, pool)
        raise
    except BaseException:  # KeyboardInterrupt, SystemExit: stop promptly
        for future in futures:
            future.cancel()
        raise
    _process_ready.add(workers)
    return head + [value for chunk in chunks for value in chunk]


# --------------------------------------------------------------------------- array maps


class _ArrayMap:
    """Items of an array map, in any order; item 0's result fixes the output's shape and dtype.

    ``compute(i)`` returns item ``i``'s result; ``allocate(result)`` makes the
    output from item 0's; ``place(out, i, result)`` checks and writes one
    result. Results that finish before item 0's wait (at most about one per
    thread: item 0 is claimed first), so which result sets the dtype (and
    which item a shape error names) never depends on timing.
    """

    def __init__(self, compute, place, allocate):
        self.compute, self.place, self.allocate = compute, place, allocate
        self.out = None
        self.waiting = {}  # index -> result, until item 0's result allocates the output
        self.errors = {}  # index -> Exception (one key per item)
        self.lock = threading.Lock()

    def _place(self, index, result):
        try:
            self.place(self.out, index, result)
        except Exception as exc:  # noqa: BLE001 - the lowest is re-raised by run()
            self.errors[index] = exc

    def call(self, index):
        try:
            result = self.compute(index)
            if self.out is None:
                with self.lock:
                    if index == 0:
                        self.out = self.allocate(result)
                        for other, waiting in sorted(self.waiting.items()):
                            self._place(other, waiting)
                        self.waiting.clear()
                    elif self.out is None:
                        self.waiting[index] = result
                        return
        except Exception as exc:  # noqa: BLE001 - the lowest is re-raised by run()
            self.errors[index] = exc
            return
        self._place(index, result)

    def run_range(self, start, stop):
        compute, place, errors = self.compute, self.place, self.errors
        for index in range(start, stop):
            out = self.out
            if out is None:  # until item 0's result has made the output
                self.call(index)
                continue
            try:  # the common case in one frame: the maps' per-item cost is the loop's
                place(out, index, compute(index))
            except Exception as exc:  # noqa: BLE001 - the lowest is re-raised by run()
                errors[index] = exc

    def run(self, n, *, num_threads, schedule, grain, voxels, what, memo=None) -> np.ndarray:
        run_items(self.run_range, n, num_threads=num_threads, schedule=schedule, grain=grain,
                  early=voxels >= EARLY_VOXELS, memo=memo, what=what)
        if self.errors:
            raise self.errors[min(self.errors)]
        return self.out


def _check_axis(axis, array) -> int:
    index = as_index(axis)
    if index is None or not -array.ndim <= index < array.ndim:
        raise ValueError(f"axis must be an integer in [{-array.ndim}, {array.ndim}) for an "
                         f"array of shape {array.shape}, got {axis!r}")
    return index % array.ndim


def _apply(func, kwargs, view):
    """``func(view, **kwargs)`` as an array (module level: picklable for worker processes)."""
    return np.asarray(func(view, **kwargs))


def map_slices(func, array, *, axis: int = 0, num_threads=None, backend: str = "threads",
               schedule: str = "dynamic", grain: int | None = None, **kwargs):
    """Apply ``func`` to every slice of ``array`` along ``axis`` and reassemble the result.

    The slices are views (no copy, along any axis) and each result is
    written into one preallocated output, so the only copies are the ones
    ``func`` makes.

    Parameters
    ----------
    func : callable
        ``func(slice, **kwargs) -> ndarray``; every slice's result must have
        the shape of slice 0's, and is cast (as by assignment) to its dtype.
    array : ndarray, shape (X, Y, Z) (any ndim >= 2)
        The input; slice ``i`` is ``array[(slice(None),) * axis + (i,)]``.
    axis : int
        Axis to slice along (negative counts from the end).
    num_threads, backend, schedule
        As in :func:`parallel_map`. With ``backend="processes"`` each slice
        is pickled to a worker (a copy).
    grain : int, optional
        Voxels per work unit (whole slices are grouped until they hold about
        this many voxels). ``None`` (default) times the first slices and
        chooses (see :func:`parallel_map`).
    **kwargs
        Passed to ``func``.

    Returns
    -------
    ndarray
        The per-slice results stacked along ``axis``, as
        ``np.stack([func(s) for s in slices], axis=axis)`` gives them.

    Raises
    ------
    ValueError
        A bad ``axis`` or ``array``, or ``func`` returning a result of
        another shape than slice 0's (naming the slice).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(12.0).reshape(3, 4)
    >>> map_slices(np.cumsum, image, axis=1, num_threads=2)
    array([[ 0.,  1.,  2.,  3.],
           [ 4.,  6.,  8., 10.],
           [12., 15., 18., 21.]])
    """
    _check_backend(backend)
    check_schedule(schedule)
    grain = _check_optional_grain(grain)  # before grain // per_slice below could hide 0 or -1
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"array must have at least 2 dimensions, got shape {array.shape}")
    axis = _check_axis(axis, array)
    n = array.shape[axis]
    if n == 0:
        raise ValueError(f"array has no slices along axis {axis} (shape {array.shape})")
    per_slice = max(1, math.prod(array.shape) // n)
    slices_per_unit = None if grain is None else max(1, grain // per_slice)
    n_threads = resolve_num_threads(num_threads)
    job = functools.partial(_apply, func, kwargs)
    first = (axis, *range(axis))  # this axis first, then the ones before it (a view each way)
    slices = array.transpose(*first, *range(axis + 1, array.ndim))  # [i]: array[..., i, ...]
    shapes, placed = [], []  # slice 0's result shape; the output with the slices first

    def allocate(result):
        if result.ndim < axis:
            raise ValueError(f"func returned a {result.ndim}-D result for slice 0; "
                             f"stacking along axis {axis} needs at least {axis} dimensions")
        shapes.append(result.shape)
        out = np.empty((*result.shape[:axis], n, *result.shape[axis:]), dtype=result.dtype)
        placed.append(out.transpose(*first, *range(axis + 1, out.ndim)))
        return out

    def place(out, index, result):
        if result.shape != shapes[0]:
            raise ValueError(f"func returned shape {result.shape} for slice {index} along axis "
                             f"{axis} but {shapes[0]} for slice 0; func must return arrays of "
                             "one shape")
        placed[0][index] = result

    if backend == "processes":  # the slices go to the workers; the results are placed here
        results = parallel_map(functools.partial(_call_one, job),
                               list(slices), num_threads=n_threads,
                               backend="processes", grain=slices_per_unit)
        return _ArrayMap(lambda i: _unwrap(results[i]), place, allocate).run(
            n, num_threads=1, schedule=schedule, grain=None, voxels=0,
            what="map_slices: placing the results of parallel_map(backend='processes')")
    return _ArrayMap(lambda i: np.asarray(func(slices[i], **kwargs)), place, allocate).run(
        n, num_threads=n_threads, schedule=schedule, grain=slices_per_unit, voxels=per_slice,
        memo=(func, ("map_slices", n_threads, axis, array.shape, array.dtype.str, *kwargs)),
        what="map_slices")


# --------------------------------------------------------------------------- blocks


def _per_axis(value, ndim: int, *, name: str, minimum: int) -> tuple[int, ...]:
    """An int or one int per axis, each >= ``minimum``, as a tuple of ``ndim`` ints."""
    values = (value,) * ndim if as_index(value) is not None else value
    try:
        values = tuple(values)
    except TypeError:
        values = None
    checked = None if values is None else [as_index(v) for v in values]
    if checked is None or any(v is None or v < minimum for v in checked):
        kind = "positive" if minimum > 0 else "non-negative"
        raise ValueError(f"{name} must be a {kind} integer or a sequence of {ndim} {kind} "
                         f"integers (one per axis of the array), got {value!r}")
    if len(checked) != ndim:
        raise ValueError(f"{name} must have one entry per axis of the {ndim}-D array, "
                         f"got {len(checked)} entries: {value!r}")
    return tuple(checked)


def block_regions(shape, block_shape, halo) -> list[tuple[tuple[slice, ...], ...]]:
    """The blocks of ``shape`` in C order: ``(core, extended, core_in_extended)`` slices.

    ``extended`` is the core grown by ``halo`` on each side and clipped to the
    array (dask's ``boundary="none"``); ``core_in_extended`` selects the core
    inside the extended block.

    Examples
    --------
    >>> core, extended, inner = block_regions((5,), (2,), (1,))[1]
    >>> core, extended, inner
    ((slice(2, 4, None),), (slice(1, 5, None),), (slice(1, 3, None),))
    """
    starts = [range(0, n, b) for n, b in zip(shape, block_shape)]
    regions = []
    for corner in itertools.product(*starts):
        core, extended, inner = [], [], []
        for begin, n, b, h in zip(corner, shape, block_shape, halo):
            end = min(begin + b, n)
            lo, hi = max(begin - h, 0), min(end + h, n)
            core.append(slice(begin, end))
            extended.append(slice(lo, hi))
            inner.append(slice(begin - lo, end - lo))
        regions.append((tuple(core), tuple(extended), tuple(inner)))
    return regions


def map_blocks(func, array, *, block_shape, halo=0, num_threads=None,
               schedule: str = "dynamic", grain: int | None = None, **kwargs):
    """Apply ``func`` to n-D blocks of ``array`` grown by a halo; reassemble the cores.

    Like :func:`dask.array.map_overlap` with ``boundary="none"`` and
    ``trim=True``, but on parareg's thread pool and without copies: each
    block is grown by ``halo`` voxels on each side, the growth is clipped at
    the array's edges (``func`` sees the true edge and applies its own
    boundary mode there, so nothing is invented beyond the array), ``func``
    gets a view of the grown block, and the core of its result is written
    into one preallocated output. For a filter whose reach is at most
    ``halo`` voxels (a separable Gaussian with radius
    ``int(truncate * sigma + 0.5) <= halo``, a median filter of size
    ``2 * halo + 1``), the result equals the filter of the whole array.

    Parameters
    ----------
    func : callable
        ``func(block, **kwargs) -> ndarray`` of the same shape as ``block``
        (halo included). Results are cast to the dtype of the first one.
    array : ndarray, shape (X, Y[, Z, ...])
        The input (any ndim >= 1).
    block_shape : int or sequence of int
        Core size of the blocks along each axis (one int: every axis);
        blocks at the far edges may be smaller.
    halo : int or sequence of int
        Voxels added on each side of a block along each axis, at most the
        block's size along that axis.
    num_threads, schedule
        As in :func:`parallel_map` (threads only: blocks are views).
    grain : int, optional
        Blocks per work unit; ``None`` (default) times the first blocks and
        chooses (see :func:`parallel_map`).
    **kwargs
        Passed to ``func``.

    Returns
    -------
    ndarray, shape of ``array``
        The cores of the per-block results.

    Raises
    ------
    ValueError
        A ``block_shape`` or ``halo`` of the wrong length or sign, a halo
        larger than the block, or ``func`` returning another shape than the
        block it was given (naming the block).
    Exception
        The lowest-numbered failing block's (C order), after every block ran.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> image = np.random.default_rng(1).random((30, 40))
    >>> out = map_blocks(ndimage.median_filter, image, block_shape=(16, 16), halo=1, size=3)
    >>> bool(np.array_equal(out, ndimage.median_filter(image, size=3)))
    True
    """
    check_schedule(schedule)
    grain = _check_optional_grain(grain)
    array = np.asarray(array)
    if array.ndim < 1 or array.size == 0:
        raise ValueError(f"array must have at least one voxel, got shape {array.shape}")
    block_shape = _per_axis(block_shape, array.ndim, name="block_shape", minimum=1)
    halo = _per_axis(halo, array.ndim, name="halo", minimum=0)
    for axis, (h, b) in enumerate(zip(halo, block_shape)):
        if h > b:
            raise ValueError(f"halo must be at most block_shape along each axis, got halo "
                             f"{halo[axis]} > block_shape {b} along axis {axis}; use larger "
                             f"blocks or a smaller halo")
    regions = block_regions(array.shape, block_shape, halo)
    n_threads = resolve_num_threads(num_threads)

    def describe(index):
        core = ", ".join(f"{s.start}:{s.stop}" for s in regions[index][0])
        return f"the block at [{core}] (block {index})"

    def compute(index):
        view = array[regions[index][1]]
        result = np.asarray(func(view, **kwargs))
        if result.shape != view.shape:
            raise ValueError(f"func returned shape {result.shape} for {describe(index)}, "
                             f"expected {view.shape}: the shape of the block it was given, "
                             "halo included")
        return result

    def place(out, index, result):
        core, _, inner = regions[index]
        out[core] = result[inner]

    return _ArrayMap(compute, place, lambda result: np.empty(array.shape, result.dtype)).run(
        len(regions), num_threads=n_threads, schedule=schedule, grain=grain,
        voxels=math.prod(s.stop - s.start for s in regions[0][1]), what="map_blocks",
        memo=(func, ("map_blocks", n_threads, array.shape, array.dtype.str, block_shape, halo,
                     *kwargs)))
