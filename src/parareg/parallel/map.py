"""Run your own functions on the pool: per item, per slice, per block.

Results always come back in input order. Below a grain size the work runs
serially in the caller, so small inputs are never slower than a plain loop.

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
>>> parallel_map(abs, [-1, -2, 3])
[1, 2, 3]
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS, as_index
from .partition import _check_grain, partition_range
from .pool import in_work_unit, resolve_num_threads, run_units
from .schedule import check_schedule

BACKENDS = ("threads", "processes")

_process_pools: dict[int, ProcessPoolExecutor] = {}
_process_lock = threading.Lock()


def _reset_process_pools():
    global _process_lock
    _process_pools.clear()
    _process_lock = threading.Lock()  # another thread may have held it at fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_process_pools)


def _process_pool(workers: int) -> ProcessPoolExecutor:
    with _process_lock:
        pool = _process_pools.get(workers)
        if pool is None:
            pool = _process_pools[workers] = ProcessPoolExecutor(max_workers=workers)
        return pool


def _check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    return backend


def parallel_map(func, items, *, num_threads=None, backend: str = "threads",
                 schedule: str = "dynamic", grain: int = 1) -> list:
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
        :func:`parareg.get_num_threads`.
    backend : {"threads", "processes"}
        Threads suit functions that release the GIL (numba ``nogil``, NumPy,
        SciPy); processes suit pure-Python functions.
    schedule : {"static", "dynamic", "guided"}
        Assignment of work units to threads (threads backend); results never
        depend on it.
    grain : int
        Items per work unit. A single unit runs serially in the caller.

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
    """
    _check_backend(backend)
    check_schedule(schedule)  # also on the serial path, so a typo never passes silently
    items = list(items)
    n_threads = resolve_num_threads(num_threads)
    units = partition_range(0, len(items), grain=grain)
    if n_threads == 1 or len(units) <= 1 or in_work_unit():
        return _raise_lowest(_map_chunk(func, items))
    if backend == "processes":
        return _map_processes(func, items, units, min(n_threads, len(units)))
    results = [None] * len(items)
    errors = {}

    def unit_job(unit):
        start, stop = units[unit]
        for index in range(start, stop):
            try:
                results[index] = func(items[index])
            except Exception as exc:  # noqa: BLE001 - the rest of the unit still runs
                errors[index] = exc  # distinct keys per unit: no lock needed

    run_units(unit_job, len(units), num_threads=n_threads, schedule=schedule)
    if errors:
        raise errors[min(errors)]
    return results


class _Failed:
    """An item's Exception, carried in place of its result (picklable when the exception is)."""

    def __init__(self, exc):
        self.exc = exc


def _map_chunk(func, items) -> list:
    """``func(item)`` for every item; an Exception becomes a :class:`_Failed`, the rest go on."""
    out = []
    for item in items:
        try:
            out.append(func(item))
        except Exception as exc:  # noqa: BLE001 - re-raised by _raise_lowest
            out.append(_Failed(exc))
    return out


def _raise_lowest(results: list) -> list:
    for value in results:
        if isinstance(value, _Failed):
            raise value.exc
    return results


def _map_processes(func, items, units, workers: int) -> list:
    pool = _process_pool(workers)
    futures = [pool.submit(_map_chunk, func, items[start:stop]) for start, stop in units]
    try:
        chunks = [future.result() for future in futures]  # every chunk runs, in any order
    except BaseException:  # KeyboardInterrupt, SystemExit, or a broken pool: stop promptly
        for future in futures:
            future.cancel()
        raise
    return _raise_lowest([value for chunk in chunks for value in chunk])


def _apply_slice(func, kwargs, array, axis, index):
    return np.asarray(func(np.take(array, index, axis=axis), **kwargs))


def map_slices(func, array, *, axis: int = 0, num_threads=None, backend: str = "threads",
               schedule: str = "dynamic", grain: int = DEFAULT_GRAIN_VOXELS, **kwargs):
    """Apply ``func`` to every slice of ``array`` along ``axis`` and reassemble the result.

    Parameters
    ----------
    func : callable
        ``func(slice, **kwargs) -> ndarray``; every slice's result must have
        the same shape and dtype.
    array : ndarray, shape (X, Y, Z) (any ndim >= 2)
        The input; slices are ``np.take(array, i, axis=axis)``.
    axis : int
        Axis to slice along.
    num_threads, backend, schedule
        As in :func:`parallel_map`.
    grain : int
        Voxels per work unit (whole slices are grouped until they hold about
        this many voxels). Arrays smaller than one unit run serially.
    **kwargs
        Passed to ``func``.

    Returns
    -------
    ndarray
        The per-slice results stacked along ``axis``.
    """
    grain = _check_grain(grain)  # checked here: grain // per_slice below would hide 0 or -1
    array = np.asarray(array)
    if array.ndim < 2:
        raise ValueError(f"array must have at least 2 dimensions, got shape {array.shape}")
    index = as_index(axis)
    if index is None or not -array.ndim <= index < array.ndim:
        raise ValueError(f"axis must be an integer in [{-array.ndim}, {array.ndim}) for an "
                         f"array of shape {array.shape}, got {axis!r}")
    axis = index % array.ndim
    n = array.shape[axis]
    if n == 0:
        raise ValueError(f"array has no slices along axis {axis} (shape {array.shape})")
    per_slice = max(1, math.prod(array.shape) // n)
    slices_per_unit = max(1, grain // per_slice)
    job = functools.partial(_apply_slice, func, kwargs, array, axis)
    results = parallel_map(job, range(n), num_threads=num_threads, backend=backend,
                           schedule=schedule, grain=slices_per_unit)
    return np.stack(results, axis=axis)
