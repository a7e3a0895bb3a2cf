"""A fixture the parallel-layer tests share: no remembered verdicts, no wake-up threshold."""

from __future__ import annotations

import pytest

import parareg.parallel.adaptive as adaptive


@pytest.fixture(autouse=True)
def fresh_verdicts(monkeypatch):
    """Every test starts with no remembered serial verdict and ends with none.

    The pool's wake-up latency is left out of the serial threshold: on a loaded machine slow
    wake-ups would keep the calls that test the pool serial (it is tested on its own).
    """
    adaptive.forget()
    monkeypatch.setattr(adaptive, "WAKE_FACTOR", 0.0)
    yield
    adaptive.forget()
