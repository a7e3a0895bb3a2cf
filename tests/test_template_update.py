"""The template's running sums (:class:`parareg.population.template_update.Sums`): whatever
order the registrations finish in, and whichever of them are added before the last one
finishes, the bits of adding every successful one in image order."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from parareg.population.template_update import Sums, initial_sums


@dataclass
class _Result:
    """What Sums reads of a JobResult."""

    name: str
    ok: bool
    warp: np.ndarray
    image: np.ndarray

    def load_warp(self):
        return self.warp

    def load(self, role):
        assert role == "warped"
        return type("Loaded", (), {"data": self.image})()


def _results(count=5, failed=2):
    rng = np.random.default_rng(7)
    return [_Result(f"s{i}", i != failed, rng.normal(size=(6, 5, 4, 3)).astype(np.float32),
                    rng.random((6, 5, 4)).astype(np.float32) * 1e3) for i in range(count)]


def _in_order(arrays, start=None):
    total = None if start is None else start.astype(np.float64)
    for array in arrays:
        total = array.astype(np.float64) if total is None else total + array
    return total / (len(arrays) + (start is not None))


def test_sums_in_any_finishing_order_are_the_in_order_sums():
    results = _results()
    ok = [r for r in results if r.ok]
    warp, image = _in_order([r.warp for r in ok]), _in_order([r.image for r in ok])
    for order in itertools.islice(itertools.permutations(results), 0, None, 7):
        for finished in (0, 2, len(results)):  # how many were added before finish
            sums = Sums([r.name for r in results], roles={"": "warped"}, deformable=True)
            for result in order[:finished]:
                sums.add(result)
            sums.finish(ok)
            assert np.array_equal(sums.mean("warp"), warp)
            assert np.array_equal(sums.mean("warped"), image)
            assert [r.name for r in sums.added] == [r.name for r in ok]


def test_initial_sums_start_with_the_reference():
    results = _results(4, failed=9)
    reference = type("Ref", (), {"data": np.full((6, 5, 4), 3.0, np.float32)})()
    sums = initial_sums([r.name for r in results], {"": reference}, roles={"": "warped"})
    for result in reversed(results):
        sums.add(result)
    sums.finish(results)
    assert sums.warp is None
    assert np.array_equal(sums.mean("warped"),
                          _in_order([r.image for r in results], start=reference.data))
