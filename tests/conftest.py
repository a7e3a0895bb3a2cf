"""Shared fixtures. The real-data location and ``needs_data`` marker live in ``tests/_data.py``."""

from __future__ import annotations

import pytest

from parareg.parallel import pool


@pytest.fixture
def clean_threads(monkeypatch):
    """No ``PARAREG_NUM_THREADS``, no global thread count, before and after the test."""
    monkeypatch.delenv("PARAREG_NUM_THREADS", raising=False)
    pool._reset_num_threads()
    yield
    pool._reset_num_threads()
