"""Shared fixtures. The real-data location and ``needs_data`` marker live in ``tests/_data.py``."""

from __future__ import annotations

import signal

import pytest

from parareg.parallel import pool

# A suite started in the background without job control (`nohup pytest &`, a CI runner's
# subshell) inherits SIGINT ignored, and so would every child process the Ctrl-C tests
# interrupt (an ignored signal stays ignored across exec): give this process Python's own
# handler, so its children start with the default one.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def clean_threads(monkeypatch):
    """No ``PARAREG_NUM_THREADS``, no global thread count, before and after the test."""
    monkeypatch.delenv("PARAREG_NUM_THREADS", raising=False)
    pool._reset_num_threads()
    yield
    pool._reset_num_threads()


@pytest.fixture(scope="module")
def cluster():
    """The address of a real local Dask cluster (2 worker processes, 1 thread each) that a
    test module shares; closed after the module."""
    pytest.importorskip("distributed")
    from parareg._cluster import local_cluster

    with local_cluster(2, 1) as local:
        yield local.scheduler_address
