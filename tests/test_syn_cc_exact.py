"""CCMetric(gradient="exact"): NumPy twin, finite differences, thread-count invariance."""

from __future__ import annotations

import numpy as np
import pytest

from parareg.metrics.syn import CCMetric
from parareg.metrics.syn_base import Pair
from parareg.metrics.syn_cc import CC_EXACT_REGULARIZATION, cc_fields

from .reference import syn_metrics_reference as ref
from .test_syn_metrics import oblique, smooth_pair


@pytest.mark.parametrize("ndim, radius, use_mask", [(2, 1, False), (2, 3, True), (3, 1, True),
                                                    (3, 2, False)])
def test_exact_matches_numpy_twin(ndim, radius, use_mask):
    shape = (23, 19) if ndim == 2 else (12, 11, 10)
    rng = np.random.default_rng(ndim + radius)
    fixed = rng.random(shape).astype(np.float32) * 100
    moving = (0.5 * fixed + 50 * rng.random(shape)).astype(np.float32)
    fixed[:4] = 7.0  # a flat region exercises the guard
    vox2world = oblique(ndim)
    mask = rng.random(shape) > 0.3 if use_mask else None
    forward, backward, energy = CCMetric(radius, gradient="exact").compute(
        fixed, moving, vox2world=vox2world, mask=mask)
    f_ref, b_ref, e_ref = ref.cc_exact(fixed, moving, radius, vox2world, mask,
                                       kappa=CC_EXACT_REGULARIZATION)
    assert forward.shape == backward.shape == (*shape, ndim)
    assert forward.dtype == backward.dtype == np.float32
    np.testing.assert_allclose(forward, f_ref, rtol=1e-4, atol=1e-5 * np.abs(f_ref).max())
    np.testing.assert_allclose(backward, b_ref, rtol=1e-4, atol=1e-5 * np.abs(b_ref).max())
    assert energy == pytest.approx(e_ref, rel=1e-10)
    plain = cc_fields(Pair(fixed, moving, vox2world, mask), radius, 1e-5, gradient="exact",
                      regularization=0.0)
    center = CCMetric(radius).compute(fixed, moving, vox2world=vox2world, mask=mask)
    assert plain[2] == center[2]  # unregularised: the same energy, only its gradient differs
    assert np.abs(forward[-radius]).max() > 0  # windows reach r voxels past the interior


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("which", ["forward", "backward"])
def test_exact_is_the_gradient_of_the_summed_cc(ndim, which):
    """Finite differences of ``sum_y cc(y) = -N * energy`` w.r.t. one intensity, times that
    image's world gradient, give the field (the centre term does not: it is an approximation).
    Unregularised (``kappa = 0``): the regularisation's variances are held constant."""
    shape = (17, 16) if ndim == 2 else (11, 10, 9)
    radius = 2
    fixed, moving = smooth_pair(shape, seed=8)
    vox2world = oblique(ndim, seed=2)
    n_evaluated = np.prod([n - 2 * radius for n in shape])

    def exact(fixed, moving):
        pair = Pair(fixed, moving, vox2world, None)
        forward, backward, energy = cc_fields(pair, radius, 1e-5, gradient="exact",
                                              regularization=0.0)
        return pair.unfold(forward), pair.unfold(backward), energy

    forward, backward, _ = exact(fixed, moving)
    field = forward if which == "forward" else backward
    image = fixed if which == "forward" else moving
    gradient = ref.world_gradient(image, vox2world)
    h = 1e-3
    rng = np.random.default_rng(ndim)
    picks = [tuple(rng.integers(0, n) for n in shape) for _ in range(12)] + [(1,) * ndim]
    errors_exact, errors_center = [], []
    center = CCMetric(radius).compute(fixed, moving, vox2world=vox2world)
    center = center[0] if which == "forward" else center[1]
    for index in picks:
        sums = []
        for sign in (1, -1):
            bumped = image.copy()
            bumped[index] += np.float32(sign * h)
            args = (bumped, moving) if which == "forward" else (fixed, bumped)
            sums.append(-n_evaluated * exact(*args)[2])
        expected = (sums[0] - sums[1]) / (2 * h) * gradient[index]
        scale = np.abs(field).max()
        errors_exact.append(np.abs(field[index] - expected).max() / scale)
        errors_center.append(np.abs(center[index] - expected).max() / scale)
    assert max(errors_exact) < 1e-3
    assert max(errors_center) > 1e-2


@pytest.mark.parametrize("ndim", [2, 3])
def test_exact_identical_bits_at_any_thread_count(ndim):
    shape = (400, 300) if ndim == 2 else (70, 50, 40)
    fixed, moving = smooth_pair(shape, seed=6)
    mask = np.random.default_rng(0).random(shape) > 0.1
    metric = CCMetric(2, gradient="exact")
    outs = [metric.compute(fixed, moving, vox2world=oblique(ndim), mask=mask, num_threads=n)
            for n in (1, 2, 3)]
    for forward, backward, energy in outs[1:]:
        np.testing.assert_array_equal(forward, outs[0][0])
        np.testing.assert_array_equal(backward, outs[0][1])
        assert energy == outs[0][2]


def test_exact_many_small_units_give_the_same_fields():
    fixed, moving = smooth_pair((21, 22, 23), seed=7)
    pair = Pair(fixed, moving, oblique(3), None)
    base = cc_fields(pair, 2, 1e-5, num_threads=1, gradient="exact")
    for grain, threads in [(1, 3), (500, 2), (3000, 3)]:
        forward, backward, energy = cc_fields(pair, 2, 1e-5, num_threads=threads, grain=grain,
                                              gradient="exact")
        np.testing.assert_array_equal(forward, base[0])
        np.testing.assert_array_equal(backward, base[1])
        assert energy == pytest.approx(base[2], rel=1e-12)


@pytest.mark.parametrize("gradient", ["Exact", "full", None, 1])
def test_bad_gradient(gradient):
    with pytest.raises(ValueError, match=r"gradient must be one of \['center', 'exact'\]"):
        CCMetric(2, gradient=gradient)


def test_repr_names_the_gradient():
    assert repr(CCMetric(2)) == "CCMetric(radius=2, eps=1e-05)"
    assert repr(CCMetric(2, gradient="exact")) == "CCMetric(radius=2, eps=1e-05, gradient='exact')"


def test_syn_takes_the_gradient_of_a_cc_named_by_name():
    from parareg.registration.syn import SymmetricDiffeomorphicRegistration

    syn = SymmetricDiffeomorphicRegistration("cc", gradient="exact")
    assert syn.metric.gradient == "exact" and syn.metric.radius == 2
    assert SymmetricDiffeomorphicRegistration("cc").metric.gradient == "center"


@pytest.mark.parametrize("metric, gradient, message", [
    ("cc", "nope", r"gradient must be one of \['center', 'exact'\], got 'nope'"),
    ("mi", "exact", r"gradient='exact' is not an option of the SyN metric 'mi'"),
    (CCMetric(2), "exact", r"gradient='exact' is an option of a metric given by name"),
])
def test_syn_refuses_a_bad_gradient(metric, gradient, message):
    from parareg.registration.syn import SymmetricDiffeomorphicRegistration

    with pytest.raises(ValueError, match=message):
        SymmetricDiffeomorphicRegistration(metric, gradient=gradient)
