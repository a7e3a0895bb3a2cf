"""What every Dask runner of the package shares: the cluster, progress records, names.

Used by :mod:`parareg.bench.runner` (benchmark studies) and
:mod:`parareg.population.batch` (many registrations: templates, multi-atlas
segmentation). Dask (``distributed``) is imported only when a cluster starts.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

__all__ = ["Cluster", "Progress", "check_positive", "cluster", "local_cluster", "safe_name",
           "usable_cpus", "worker_name"]


@dataclass
class Progress:
    """What a ``progress`` callback receives after each finished task."""

    done: int
    total: int
    failed: int
    skipped: int
    elapsed: float
    row: dict | None = None
    #: the finished task's result object (:func:`parareg.population.register_many`: its
    #: :class:`~parareg.population.JobResult`), for callers that use it at once
    result: object = None


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
        from distributed import Client
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
    with local_cluster(workers, threads_per_worker) as local:
        client = Client(local)
        try:
            yield client
        finally:
            client.close()


@contextlib.contextmanager
def local_cluster(workers, threads_per_worker, **kwargs):
    """A :class:`~distributed.LocalCluster` of ``workers`` processes (``threads_per_worker``
    threads each; ``kwargs``: more of its arguments), closed on exit.

    Its worker processes start from a fork server where the platform has one (Linux, macOS),
    not by ``spawn``, Dask's default: a spawned worker process, once its worker has closed,
    tears down its interpreter (seconds of CPU on a loaded machine), and its nanny kills it
    after 4 s with "Worker process still alive after 4.0 seconds, killing" at every close; a
    process forked from the server ends at once (``os._exit``). The server is a clean
    process (Dask preloads ``distributed`` and ``numpy`` in it). A start method set in
    Dask's configuration (``distributed.worker.multiprocessing-method``) other than
    ``spawn`` is kept.
    """
    import multiprocessing

    import dask
    from distributed import LocalCluster

    key = "distributed.worker.multiprocessing-method"
    method = dask.config.get(key, default="spawn")
    if method == "spawn" and "forkserver" in multiprocessing.get_all_start_methods():
        method = "forkserver"
    with dask.config.set({key: method}):  # for the whole life: a nanny restarts its worker
        kwargs.setdefault("dashboard_address", ":0")
        with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                          processes=True, **kwargs) as local:
            yield local


class Cluster:
    """A Dask cluster that several batches share, started when a job first needs it.

    Pass it as ``scheduler=`` to :func:`parareg.population.register_many`; it is closed when the
    ``with`` block ends. A batch with nothing left to run (a resumed one)
    starts nothing.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        An existing cluster; otherwise a :class:`~distributed.LocalCluster`.
    workers : int, optional
        Worker processes of the local cluster; default: the jobs of the first
        batch that runs, at most the usable CPUs.
    threads_per_worker : int
        Jobs at once per worker of the local cluster.
    task_threads : int, optional
        Threads per registration (see :func:`parareg.population.register_many`).

    Examples
    --------
    >>> from parareg.population import register_many
    >>> with Cluster(workers=2) as cluster:                    # doctest: +SKIP
    ...     first = register_many(jobs, out="round1", scheduler=cluster)
    ...     second = register_many(more_jobs, out="round2", scheduler=cluster)
    """

    def __init__(self, *, scheduler=None, workers: int | None = None,
                 threads_per_worker: int = 1, task_threads: int | None = None):
        self.scheduler = scheduler
        self.workers = check_positive(workers, "workers", allow_none=True)
        self.threads_per_worker = check_positive(threads_per_worker, "threads_per_worker")
        self.task_threads = check_positive(task_threads, "task_threads", allow_none=True)
        self._client = None
        self._stack = contextlib.ExitStack()

    def client(self, jobs: int):
        """The client, starting the cluster (sized for ``jobs`` jobs) on the first call."""
        if self._client is None:
            if self.workers is None:
                self.workers = max(1, min(jobs, usable_cpus()))
            if self.task_threads is None:
                self.task_threads = 1 if self.scheduler is not None else max(
                    1, usable_cpus() // (self.workers * self.threads_per_worker))
            self._client = self._stack.enter_context(
                cluster(self.scheduler, self.workers, self.threads_per_worker))
        return self._client

    def close(self) -> None:
        self._client = None
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
