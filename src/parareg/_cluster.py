"""What every Dask runner of the package shares: the cluster, progress records, names.

Used by :mod:`parareg.bench.runner` (benchmark studies) and
:mod:`parareg.population.batch` (many registrations: templates, multi-atlas
segmentation). Dask (``distributed``) is imported only when a cluster starts.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

__all__ = ["Progress", "check_positive", "cluster", "safe_name", "usable_cpus", "worker_name"]


@dataclass
class Progress:
    """What a ``progress`` callback receives after each finished task."""

    done: int
    total: int
    failed: int
    skipped: int
    elapsed: float
    row: dict | None = None


def safe_name(*parts) -> str:
    """A file name from ``parts``: characters other than letters, digits, ``.-`` become ``_``.

    >>> safe_name("sub-1", "sub-2", "parareg:syn")
    'sub-1__sub-2__parareg_syn'
    """
    clean = ["".join(c if c.isalnum() or c in ".-" else "_" for c in str(p)) for p in parts]
    return "__".join(clean)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), else ``os.cpu_count()``."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def check_positive(value, name, *, allow_none=False, kind=int):
    """``value`` if it is a positive ``kind`` (int, or any number for ``float``), else a
    ``ValueError`` naming ``name``."""
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not value > 0:
        raise ValueError(f"{name} must be a positive {'number' if kind is float else 'integer'}, "
                         f"got {value!r}")
    return value


def worker_name() -> str:
    """The Dask worker's address, or this process's id outside a worker."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


@contextlib.contextmanager
def cluster(scheduler, workers, threads_per_worker):
    """A ``distributed.Client``: of the cluster at ``scheduler`` (an address, or a client,
    used as is), else of a new :class:`~distributed.LocalCluster` of ``workers`` processes
    with ``threads_per_worker`` threads each, closed on exit."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError("running on Dask needs dask.distributed, which is not installed: "
                          "pip install 'dask[distributed]' (or parareg[bench])") from None

    if scheduler is not None:
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            yield client
        finally:
            if client is not scheduler:
                client.close()
        return
    local = LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                         processes=True, dashboard_address=None)
    try:
        client = Client(local)
        try:
            yield client
        finally:
            client.close()
    finally:
        local.close()
