"""Multi-label STAPLE against its NumPy twin; thread-count bits; bad options."""

from __future__ import annotations

import numpy as np
import pytest

from parareg.population.fusion import FUSIONS, check_fusion
from parareg.population.staple import staple
from .reference.fusion_reference import staple_twin
from .test_fusion import _label_maps


@pytest.mark.parametrize("shape, n, iterations", [((23, 17), 5, 4), ((9, 8, 7), 4, 100)])
def test_staple_equals_numpy_twin(shape, n, iterations):
    maps = _label_maps(shape, n, seed=11, n_labels=5)
    result = staple(maps, max_iterations=iterations)
    fused, posteriors, values = staple_twin(maps, max_iterations=iterations)
    np.testing.assert_array_equal(result.label_values, values)
    np.testing.assert_allclose(result.posteriors, posteriors, atol=1e-6)
    top2 = np.sort(posteriors, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-6
    np.testing.assert_array_equal(result.labels[clear], fused[clear])
    assert result.labels.dtype == maps[0].dtype


def test_staple_identical_bits_at_1_2_3_threads(monkeypatch):
    import parareg.population.staple as module

    monkeypatch.setattr(module, "STAPLE_GRAIN_VOXELS", 2000)  # several slabs
    maps = _label_maps((40, 33, 6), 4, seed=12, n_labels=7)
    runs = [staple(maps, num_threads=n) for n in (1, 2, 3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.labels, runs[0].labels)
        np.testing.assert_array_equal(run.posteriors, runs[0].posteriors)


def test_staple_trusts_the_better_atlases():
    """Two good atlases and one that misses most of a square: the square survives, and the
    poor atlas's errors are outvoted even where a good one errs too."""
    truth = np.zeros((30, 30), np.int32)
    truth[5:25, 5:25] = 2
    good = [truth.copy(), truth.copy()]
    good[0][5, 5:25] = 0
    poor = np.zeros_like(truth)
    poor[20:25, 5:25] = 2
    result = staple([*good, poor])
    assert (result.labels == truth).mean() > 0.97
    np.testing.assert_allclose(result.posteriors.sum(axis=-1), 1.0, rtol=1e-6)
    assert result.label_values.tolist() == [0, 2]


def test_staple_with_one_atlas_returns_its_labels():
    maps = _label_maps((12, 10), 1, seed=13)
    result = staple(maps)
    np.testing.assert_array_equal(result.labels, maps[0])
    assert set(np.unique(result.posteriors)) == {0.0, 1.0}


@pytest.mark.parametrize("kwargs, match", [
    ({"tolerance": 0}, "tolerance must be a number in"),
    ({"tolerance": float("nan")}, "tolerance must be a number in"),
    ({"tolerance": "1e-5"}, "tolerance must be a number in"),
    ({"max_iterations": 0}, "max_iterations must be an integer >= 1"),
    ({"max_iterations": 2.5}, "max_iterations must be an integer >= 1"),
])
def test_staple_rejects_bad_options(kwargs, match):
    maps = _label_maps((6, 6), 2, seed=14)
    with pytest.raises(ValueError, match=match):
        staple(maps, **kwargs)


def test_staple_is_a_fusion_of_the_registry():
    assert check_fusion("STAPLE") == "staple"
    maps = _label_maps((8, 8), 3, seed=15)
    fused = FUSIONS["staple"](None, None, maps, posteriors=False, num_threads=1)
    np.testing.assert_array_equal(fused.labels, staple(maps, posteriors=False).labels)
