"""Mean squares and correlation on the affine path: NumPy twin, finite differences, known answers.

Thread-count invariance and the no-overlap error of these metrics are
tested with Mattes MI in ``test_metric_mi.py``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import parareg
from parareg.metrics import Correlation, MeanSquares, get_affine_metric

from ._data import IXI_T1, MINDBOGGLE, needs_data
from .reference import metric_reference as ref
from .reference.synthetic import (
    central_box,
    finite_difference_cosine,
    image_center,
    inner_overlap_mask,
    near_identity,
    synthetic_pair,
    translation,
)

TWINS = {"meansquares": ref.mean_squares, "correlation": ref.correlation}


@pytest.fixture(scope="module")
def ixi_pair():
    if len(IXI_T1) < 2:
        pytest.skip("IXI 2 mm volumes are not present")
    return parareg.load(IXI_T1[0]), parareg.load(IXI_T1[1])


@pytest.fixture(scope="module")
def mindboggle_pair():
    if len(MINDBOGGLE) < 2:
        pytest.skip("mindboggle 2D slices are not present")
    return parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])


def assert_matches_twin(name, metric, state, fixed, moving, matrix, moving_mask=None):
    value, grad, n_valid = TWINS[name](fixed, moving, matrix, state.sample_index,
                                       moving_mask=moving_mask,
                                       moving_gradient=metric.moving_gradient)
    result = metric.evaluate(state, matrix)
    assert result.num_valid == n_valid
    np.testing.assert_allclose(result.value, value, rtol=1e-5)
    np.testing.assert_allclose(result.gradient, grad, rtol=1e-5, atol=1e-5 * np.abs(grad).max())


@pytest.mark.parametrize("name", sorted(TWINS))
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("moving_gradient", ["image", "interpolant"])
def test_matches_numpy_twin_synthetic(name, ndim, masked, moving_gradient):
    fixed, moving = synthetic_pair(ndim, seed=10 + ndim)
    fixed_mask = moving_mask = None
    if masked:
        fixed_mask = fixed.data > np.percentile(fixed.data, 40)
        moving_mask = central_box(moving.shape, 4)
    metric = get_affine_metric(name, moving_gradient=moving_gradient)
    state = metric.setup(fixed, moving, fixed_mask=fixed_mask, moving_mask=moving_mask,
                         sampling=0.7, seed=1, num_threads=2)
    matrix = near_identity(ndim, seed=2, degrees=5.0, shift_mm=2.0,
                           center=image_center(fixed))
    assert_matches_twin(name, metric, state, fixed, moving, matrix, moving_mask)


@needs_data
@pytest.mark.parametrize("name", sorted(TWINS))
def test_matches_numpy_twin_mindboggle(name, mindboggle_pair):
    fixed, moving = mindboggle_pair
    metric = get_affine_metric(name)
    state = metric.setup(fixed, moving)
    matrix = near_identity(2, seed=5, center=image_center(fixed))
    assert_matches_twin(name, metric, state, fixed, moving, matrix)


# --------------------------------------------------------------------------- #
# finite differences (dense, inside the moving image; see test_metric_mi.py)


def _fd_state(metric, pair):
    fixed, moving = pair
    margin = 8 if fixed.ndim == 3 else 12
    return metric.setup(fixed, moving, fixed_mask=inner_overlap_mask(fixed, moving, margin))


@needs_data
@pytest.mark.parametrize("name", sorted(TWINS))
@pytest.mark.parametrize("which", ["ixi", "mindboggle"])
def test_gradient_matches_finite_differences(name, which, request):
    pair = request.getfixturevalue(f"{which}_pair")
    metric = get_affine_metric(name, moving_gradient="interpolant")
    state = _fd_state(metric, pair)
    for seed in (0, 1)[: 3 - state.ndim]:  # one matrix in 3D keeps the test fast
        matrix = near_identity(state.ndim, seed=seed, degrees=3.0,
                               center=image_center(pair[0]))
        cosine, ratio = finite_difference_cosine(metric, state, matrix, step_mm=0.05)
        assert cosine >= 0.99
        assert 0.9 < ratio < 1.1


@needs_data
@pytest.mark.parametrize("name", sorted(TWINS))
@pytest.mark.parametrize("which", ["ixi", "mindboggle"])
def test_image_gradient_close_to_finite_differences(name, which, request):
    pair = request.getfixturevalue(f"{which}_pair")
    metric = get_affine_metric(name)
    state = _fd_state(metric, pair)
    for seed in (0, 1)[: 3 - state.ndim]:  # one matrix in 3D keeps the test fast
        matrix = near_identity(state.ndim, seed=seed, degrees=3.0,
                               center=image_center(pair[0]))
        cosine, ratio = finite_difference_cosine(metric, state, matrix, step_mm=1.0)
        assert cosine >= 0.95
        assert 0.8 < ratio < 1.25


# --------------------------------------------------------------------------- #
# known answers


@pytest.mark.parametrize("ndim", [2, 3])
def test_mean_squares_known_values(ndim):
    fixed, _ = synthetic_pair(ndim, seed=3)
    ms = MeanSquares()
    identity = np.eye(ndim + 1)
    same = ms.setup(fixed, fixed)
    value, grad = ms.value_and_gradient(same, identity)
    # world2vox @ vox2world is the identity up to rounding on the oblique grid
    assert value < 1e-20 and np.abs(grad).max() < 1e-8
    offset = ms.setup(fixed, fixed.with_data(fixed.data + 2.5))
    value, grad = ms.value_and_gradient(offset, identity)
    np.testing.assert_allclose(value, 6.25, rtol=1e-6)
    assert ms.value(offset, near_identity(ndim, seed=1, center=image_center(fixed))) > 6.25


@pytest.mark.parametrize("ndim", [2, 3])
def test_correlation_known_values(ndim):
    fixed, moving = synthetic_pair(ndim, seed=4)
    cc = Correlation()
    identity = np.eye(ndim + 1)
    state = cc.setup(fixed, fixed.with_data(3.0 * fixed.data - 7.0))
    value, grad = cc.value_and_gradient(state, identity)
    np.testing.assert_allclose(value, -1.0, atol=1e-9)
    anti = cc.setup(fixed, fixed.with_data(-fixed.data))
    np.testing.assert_allclose(cc.value(anti, identity), 1.0, atol=1e-9)
    other = cc.value(cc.setup(fixed, moving), near_identity(ndim, seed=2,
                                                           center=image_center(fixed)))
    assert -1.0 < other < 1.0


def test_correlation_of_constant_overlap_is_zero():
    fixed, moving = synthetic_pair(2, seed=5)
    data = moving.data.copy()
    data[:, :] = 4.0
    data[-1, -1] = 9.0  # not constant as an image, constant where the samples land
    cc = Correlation()
    state = cc.setup(fixed, moving.with_data(data), fixed_mask=central_box(fixed.shape, 20))
    value, grad = cc.value_and_gradient(state, np.eye(3))
    assert value == 0.0 and np.all(grad == 0.0)


@needs_data
@pytest.mark.parametrize("name", sorted(TWINS))
def test_known_translation_is_the_optimum(name, mindboggle_pair):
    fixed = mindboggle_pair[0]
    shift = np.array([2.5, -1.5])
    moving = parareg.resample(fixed, fixed, affine=translation(shift))
    metric = get_affine_metric(name)
    state = metric.setup(fixed, moving)
    values = {off: metric.value(state, translation(-shift + 0.5 * np.array(off)))
              for off in itertools.product((-1, 0, 1), repeat=2)}
    assert min(values, key=values.get) == (0, 0)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_constant_images_are_rejected(name):
    fixed, moving = synthetic_pair(3, seed=0)
    metric = get_affine_metric(name)
    with pytest.raises(ValueError, match="fixed is constant"):
        metric.setup(fixed.with_data(np.ones(fixed.shape)), moving)
    with pytest.raises(ValueError, match="moving is constant"):
        metric.setup(fixed, moving.with_data(np.zeros(moving.shape)))
