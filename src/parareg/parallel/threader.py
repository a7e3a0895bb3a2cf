"""ITKv4-style DomainThreader: before (serial) -> threaded per unit -> after (serial).

Subclasses say how to split a domain (:meth:`DomainThreader.partition`),
what each unit computes (:meth:`DomainThreader.threaded`) and how per-unit
results are reduced (:meth:`DomainThreader.after`, in unit order).

Examples
--------
A thread-count-invariant sum of squares:

>>> import numpy as np
>>> class SumOfSquares(DomainThreader):
...     def partition(self, domain):
...         return partition_range(0, domain.size, grain=1000)
...     def before(self, domain, subdomains):
...         self.data = domain
...         self.partials = unit_buffers(len(subdomains))
...     def threaded(self, unit, subdomain):
...         start, stop = subdomain
...         chunk = self.data[start:stop].astype(np.float64)
...         self.partials[unit] = chunk @ chunk
...     def after(self):
...         return reduce_units(self.partials)
>>> float(SumOfSquares(num_threads=3).execute(np.ones(2500)))
2500.0
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS
from .partition import axis0_ranges, partition_range  # noqa: F401 - re-exported for subclasses
from .pool import resolve_num_threads, run_units
from .schedule import check_schedule


def unit_buffers(n_units: int, shape=(), dtype=np.float64) -> np.ndarray:
    """Zeroed per-unit buffers with a leading unit axis, shape ``(n_units, *shape)``."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return np.zeros((n_units, *shape), dtype=dtype)


def reduce_units(buffers: np.ndarray) -> np.ndarray:
    """Sum per-unit buffers in unit order: ``((b[0] + b[1]) + b[2]) + ...``.

    The order is fixed by the units, not by the threads, so the result is
    bit-identical at any thread count.
    """
    if len(buffers) == 0:
        raise ValueError("buffers must hold at least one unit")
    total = np.array(buffers[0], copy=True)
    for part in buffers[1:]:
        total += part
    return total


class DomainThreader:
    """Template for a threaded computation over a domain.

    Parameters
    ----------
    num_threads : int, optional
        Threads to use; ``None`` means :func:`parareg.get_num_threads`.
    schedule : {"static", "dynamic", "guided"}
        Assignment of units to threads; never changes the result.
    """

    def __init__(self, *, num_threads=None, schedule: str = "dynamic"):
        if num_threads is not None:
            resolve_num_threads(num_threads)
        self.num_threads = num_threads
        self.schedule = check_schedule(schedule)

    def partition(self, domain) -> list:
        """Split ``domain`` into a list of subdomains, one per work unit."""
        raise NotImplementedError

    def before(self, domain, subdomains) -> None:
        """Serial set-up; allocate per-unit buffers here."""

    def threaded(self, unit: int, subdomain) -> None:
        """Compute one unit; write only to storage owned by ``unit``."""
        raise NotImplementedError

    def after(self):
        """Serial reduction of per-unit buffers, in unit order; returns the result."""
        return None

    def execute(self, domain):
        """Run before -> threaded (every unit, in parallel) -> after and return after's result."""
        subdomains = list(self.partition(domain))
        self.before(domain, subdomains)
        run_units(
            lambda unit: self.threaded(unit, subdomains[unit]),
            len(subdomains),
            num_threads=self.num_threads,
            schedule=self.schedule,
        )
        return self.after()


class SlabThreader(DomainThreader):
    """A :class:`DomainThreader` whose domain is an array shape split into axis-0 slabs.

    Each subdomain is a ``(start, stop)`` pair of rows along axis 0 holding
    about ``grain`` voxels.
    """

    def __init__(self, *, grain: int = DEFAULT_GRAIN_VOXELS, num_threads=None, schedule="dynamic"):
        super().__init__(num_threads=num_threads, schedule=schedule)
        self.grain = grain

    def partition(self, domain) -> list:
        return axis0_ranges(tuple(domain), grain=self.grain)


class _UnitCalls(DomainThreader):
    """A :class:`DomainThreader` over given subdomains calling ``call(unit, *subdomain)``."""

    def __init__(self, call, *, num_threads=None, schedule: str = "dynamic"):
        super().__init__(num_threads=num_threads, schedule=schedule)
        self.call = call

    def partition(self, domain) -> list:
        return domain

    def before(self, domain, subdomains) -> None:
        self.results = [None] * len(subdomains)

    def threaded(self, unit: int, subdomain) -> None:
        self.results[unit] = self.call(unit, *subdomain)

    def after(self) -> list:
        return self.results


def for_each_unit(call, subdomains, *, num_threads=None, schedule: str = "dynamic") -> list:
    """Run ``call(unit, *subdomains[unit])`` for every unit on the pool; results in unit order.

    The one way parareg's drivers run a kernel over work units: a
    :class:`DomainThreader` whose subdomains are given. ``call`` writes to
    storage owned by ``unit`` (rows of the output, ``buffers[unit]``) or
    returns its unit's partial result, which comes back in unit order for a
    thread-count-invariant reduction.

    Parameters
    ----------
    call : callable
        ``call(unit, *subdomain)``, e.g. ``call(unit, start, stop)`` for the
        ``(start, stop)`` pairs of :func:`axis0_ranges`.
    subdomains : sequence of tuple
        One tuple of kernel arguments per work unit (fixed by the domain and
        a grain, never by the thread count).
    num_threads : int, optional
        Threads, the caller included; ``None`` means
        :func:`parareg.get_num_threads`. With ``1`` the pool is never used.
    schedule : {"static", "dynamic", "guided"}
        Assignment of units to threads; never changes the result.

    Returns
    -------
    list
        ``call``'s return value for each unit, in unit order.

    Examples
    --------
    >>> import numpy as np
    >>> data = np.arange(10.0)
    >>> for_each_unit(lambda unit, start, stop: float(data[start:stop].sum()),
    ...               partition_range(0, 10, grain=4), num_threads=2)
    [6.0, 22.0, 17.0]
    """
    return _UnitCalls(call, num_threads=num_threads, schedule=schedule).execute(subdomains)


def for_each_slab(kernel_call, shape, *, grain: int = DEFAULT_GRAIN_VOXELS,
                  num_threads=None, schedule: str = "dynamic") -> int:
    """Call ``kernel_call(start, stop)`` for each axis-0 slab of ``shape``; return the unit count.

    Shorthand for :func:`for_each_unit` over ``axis0_ranges(shape, grain=grain)``.
    """
    ranges = axis0_ranges(tuple(shape), grain=grain)
    for_each_unit(lambda unit, start, stop: kernel_call(start, stop), ranges,
                  num_threads=num_threads, schedule=schedule)
    return len(ranges)
