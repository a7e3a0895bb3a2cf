"""Schedules: which participating thread runs which work unit.

A schedule never changes *what* a unit computes, only *who* computes it, so
results do not depend on the schedule. Each schedule is a small object with
``claim()`` returning the next batch of unit indices for the calling thread
(an empty list when nothing is left). All claims are thread-safe.

``static``
    Units are cut into ``num_threads`` contiguous blocks up front; each
    participant claims one whole block (ITK's default).
``dynamic`` (parareg's default)
    Participants claim one unit at a time: best for uneven units, and when one
    core is slowed by something else (a busy sibling, a virtual machine's
    neighbour) the others take over its share. With units of ~1 ms the lock
    per claim costs nothing measurable.
``guided``
    Participants claim blocks of ``ceil(remaining / (2 * num_threads))`` units,
    shrinking as the work runs out (OpenMP's guided schedule).
"""

from __future__ import annotations

import math
import threading

SCHEDULES = ("static", "dynamic", "guided")


def check_schedule(schedule) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {schedule!r}")
    return schedule


class _Schedule:
    def __init__(self, n_units: int, num_threads: int):
        self.n_units = n_units
        self.num_threads = num_threads
        self._lock = threading.Lock()
        self._next = 0

    def claim(self) -> range:  # pragma: no cover - abstract
        raise NotImplementedError


class StaticSchedule(_Schedule):
    def __init__(self, n_units: int, num_threads: int):
        super().__init__(n_units, num_threads)
        per, extra = divmod(n_units, num_threads)
        bounds = [0]
        for t in range(num_threads):
            bounds.append(bounds[-1] + per + (1 if t < extra else 0))
        self._blocks = [range(bounds[t], bounds[t + 1]) for t in range(num_threads)]

    def claim(self) -> range:
        with self._lock:
            if self._next >= len(self._blocks):
                return range(0)
            block = self._blocks[self._next]
            self._next += 1
            return block


class DynamicSchedule(_Schedule):
    def claim(self) -> range:
        with self._lock:
            begin = self._next
            if begin >= self.n_units:
                return range(0)
            self._next = begin + 1
            return range(begin, begin + 1)


class GuidedSchedule(_Schedule):
    def claim(self) -> range:
        with self._lock:
            begin = self._next
            remaining = self.n_units - begin
            if remaining <= 0:
                return range(0)
            size = max(1, math.ceil(remaining / (2 * self.num_threads)))
            self._next = begin + size
            return range(begin, begin + size)


_CLASSES = {"static": StaticSchedule, "dynamic": DynamicSchedule, "guided": GuidedSchedule}


def make_schedule(schedule: str, n_units: int, num_threads: int) -> _Schedule:
    """Build the schedule named ``schedule`` for ``n_units`` units over ``num_threads`` threads."""
    return _CLASSES[check_schedule(schedule)](n_units, num_threads)
