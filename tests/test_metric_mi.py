"""Mattes mutual information: NumPy twin, finite differences, sampling, threads, real data."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import parareg
from parareg.metrics import (
    AFFINE_METRICS,
    Correlation,
    MattesMutualInformation,
    MeanSquares,
    NoOverlapError,
    get_affine_metric,
)

from ._data import DATA, IXI_T1, MINDBOGGLE, needs_data
from .reference import metric_reference as ref
from .reference.synthetic import (
    central_box,
    finite_difference_cosine,
    image_center,
    inner_overlap_mask,
    near_identity,
    oblique_grid,
    smooth_random,
    synthetic_pair,
    translation,
)

BRATS = DATA / "multimodal" / "brats_pat0001"


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


def assert_matches_reference(metric, state, matrix, expected):
    value, grad, n_valid = expected
    result = metric.evaluate(state, matrix)
    assert result.num_valid == n_valid
    np.testing.assert_allclose(result.value, value, rtol=1e-5)
    np.testing.assert_allclose(result.gradient, grad, rtol=1e-5,
                               atol=1e-5 * np.abs(grad).max())


# --------------------------------------------------------------------------- #
# agreement with the NumPy twin


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("bins", [16, 32])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("moving_gradient", ["image", "interpolant"])
def test_matches_numpy_twin_synthetic(ndim, bins, masked, moving_gradient):
    fixed, moving = synthetic_pair(ndim, seed=ndim)
    fixed_mask = moving_mask = None
    if masked:
        fixed_mask = fixed.data > np.percentile(fixed.data, 30)
        moving_mask = central_box(moving.shape, 3)
    mi = MattesMutualInformation(bins=bins, moving_gradient=moving_gradient)
    state = mi.setup(fixed, moving, fixed_mask=fixed_mask, moving_mask=moving_mask,
                     num_threads=2)
    matrix = near_identity(ndim, seed=1, degrees=4.0, shift_mm=2.0,
                           center=image_center(fixed))
    expected = ref.mattes_mi(fixed, moving, matrix, state.sample_index, bins=bins,
                             fixed_mask=fixed_mask, moving_mask=moving_mask,
                             moving_gradient=moving_gradient)
    assert 0 < expected[2] < state.num_samples  # some samples fall outside: the test means it
    assert_matches_reference(mi, state, matrix, expected)


@needs_data
def test_matches_numpy_twin_ixi_sparse(ixi_pair):
    fixed, moving = ixi_pair
    mi = MattesMutualInformation(moving_gradient="image")
    state = mi.setup(fixed, moving, sampling=0.05, seed=3)
    matrix = near_identity(3, seed=2, center=image_center(fixed))
    assert_matches_reference(mi, state, matrix, ref.mattes_mi(fixed, moving, matrix,
                                                              state.sample_index))


@needs_data
def test_matches_numpy_twin_mindboggle(mindboggle_pair):
    fixed, moving = mindboggle_pair
    mi = MattesMutualInformation(bins=24, moving_gradient="image")
    state = mi.setup(fixed, moving)
    matrix = near_identity(2, seed=4, center=image_center(fixed))
    assert_matches_reference(mi, state, matrix, ref.mattes_mi(fixed, moving, matrix,
                                                              state.sample_index, bins=24))


def test_bspline_window_matches_definition():
    from parareg.kernels import histogram

    # helpers have no Python wrapper: test their source (the kernels' runs cover the jitted code)
    cubic_bspline_weights = histogram.cubic_bspline_weights.py_func
    cubic_bspline_slopes = histogram.cubic_bspline_slopes.py_func
    for r in np.linspace(0, 1, 11):
        u = np.array([-1 - r, -r, 1 - r, 2 - r])
        np.testing.assert_allclose(cubic_bspline_weights(r), ref.bspline3(u), atol=1e-14)
        np.testing.assert_allclose(cubic_bspline_slopes(r), ref.bspline3_derivative(u),
                                   atol=1e-14)
        assert abs(sum(cubic_bspline_weights(r)) - 1) < 1e-14


# --------------------------------------------------------------------------- #
# analytic gradient vs finite differences (dense sampling)
#
# Samples are restricted to fixed voxels that stay well inside the moving
# image, so none enters or leaves it under the steps (that changes the value
# by a jump the gradient does not see, exactly as in ITK). With
# moving_gradient="interpolant" the gradient is the exact derivative of the
# value; with the default "image" it uses the central-difference gradient
# image, an approximation whose direction differs by a few degrees at 2 mm.


def _fd_state(metric, pair):
    fixed, moving = pair
    margin = 8 if fixed.ndim == 3 else 12
    return metric.setup(fixed, moving, fixed_mask=inner_overlap_mask(fixed, moving, margin))


@needs_data
@pytest.mark.parametrize("which, seed", [("ixi", 0), ("ixi", 1), ("mindboggle", 0),
                                         ("mindboggle", 1), ("mindboggle", 2)])
def test_gradient_matches_finite_differences(which, seed, request):
    pair = request.getfixturevalue(f"{which}_pair")
    mi = MattesMutualInformation(moving_gradient="interpolant")
    state = _fd_state(mi, pair)
    matrix = near_identity(state.ndim, seed=seed, degrees=3.0, center=image_center(pair[0]))
    cosine, ratio = finite_difference_cosine(mi, state, matrix, step_mm=0.05)
    assert cosine >= 0.99
    assert 0.9 < ratio < 1.1


@needs_data
@pytest.mark.parametrize("which", ["ixi", "mindboggle"])
def test_image_gradient_close_to_finite_differences(which, request):
    pair = request.getfixturevalue(f"{which}_pair")
    mi = MattesMutualInformation(moving_gradient="image")
    state = _fd_state(mi, pair)
    for seed in (0, 1):
        matrix = near_identity(state.ndim, seed=seed, degrees=3.0,
                               center=image_center(pair[0]))
        cosine, ratio = finite_difference_cosine(mi, state, matrix, step_mm=0.25)
        assert cosine >= 0.93
        assert 0.8 < ratio < 1.25


def test_gradient_matches_finite_differences_synthetic():
    fixed, moving = synthetic_pair(3, seed=7)
    mi = MattesMutualInformation(moving_gradient="interpolant")
    state = mi.setup(fixed, moving, fixed_mask=inner_overlap_mask(fixed, moving, 4))
    matrix = near_identity(3, seed=3, degrees=2.0, center=image_center(fixed))
    cosine, _ = finite_difference_cosine(mi, state, matrix, step_mm=0.02, radius_mm=20.0)
    assert cosine >= 0.99


# --------------------------------------------------------------------------- #
# sampling


@needs_data
def test_dense_and_sparse(ixi_pair):
    fixed, moving = ixi_pair
    mi = MattesMutualInformation(moving_gradient="image")
    matrix = translation([2.3, -1.1, 0.7])
    dense = mi.setup(fixed, moving)
    value, grad = mi.value_and_gradient(dense, matrix)
    for strategy in ("random", "regular"):
        full = mi.setup(fixed, moving, sampling=1.0, sampling_strategy=strategy, seed=5)
        v, g = mi.value_and_gradient(full, matrix)
        assert v == value and np.array_equal(g, grad)
    for strategy, tolerance in (("random", 0.02), ("regular", 0.05)):
        sparse = mi.setup(fixed, moving, sampling=0.2, sampling_strategy=strategy)
        assert sparse.num_samples == round(0.2 * fixed.data.size)
        v, g = mi.value_and_gradient(sparse, matrix)
        assert abs(v - value) <= tolerance * abs(value)
        assert g.ravel() @ grad.ravel() / np.linalg.norm(g) / np.linalg.norm(grad) > 0.95


def test_sparse_samples_are_seeded_sorted_and_inside_mask():
    fixed, moving = synthetic_pair(3, seed=1)
    mask = fixed.data > np.median(fixed.data)
    mi = MattesMutualInformation(moving_gradient="image")
    a = mi.setup(fixed, moving, fixed_mask=mask, sampling=0.3, seed=11)
    b = mi.setup(fixed, moving, fixed_mask=mask, sampling=0.3, seed=11)
    c = mi.setup(fixed, moving, fixed_mask=mask, sampling=0.3, seed=12)
    assert np.array_equal(a.sample_index, b.sample_index)
    assert not np.array_equal(a.sample_index, c.sample_index)
    assert np.all(np.diff(a.sample_index) > 0)
    assert np.all(mask.reshape(-1)[a.sample_index])
    assert a.num_samples == round(0.3 * mask.sum()) and a.num_candidates == mask.sum()
    regular = mi.setup(fixed, moving, fixed_mask=mask, sampling=0.25,
                       sampling_strategy="regular")
    candidates = np.flatnonzero(mask)
    positions = np.searchsorted(candidates, regular.sample_index)
    assert np.array_equal(candidates[positions], regular.sample_index)
    assert positions[0] == 0 and regular.num_samples == round(0.25 * mask.sum())
    assert set(np.diff(positions)) <= {3, 4, 5}  # every 4th candidate, evenly spread
    np.testing.assert_array_equal(a.fixed_values, fixed.data.reshape(-1)[a.sample_index])


# --------------------------------------------------------------------------- #
# thread-count invariance


@pytest.mark.parametrize("metric_cls", [MattesMutualInformation, MeanSquares, Correlation])
@pytest.mark.parametrize("ndim", [2, 3])
def test_identical_bits_at_any_thread_count(metric_cls, ndim):
    shape = (330, 310) if ndim == 2 else (66, 64, 62)
    rng = np.random.default_rng(ndim)
    fixed = parareg.Image(smooth_random(shape, 1), oblique_grid(ndim, 1))
    moving = parareg.Image(smooth_random(shape, 2) + rng.random(shape).astype(np.float32),
                           oblique_grid(ndim, 2))
    metric = metric_cls()
    matrix = near_identity(ndim, seed=5, center=image_center(fixed))
    results = []
    for n in (1, 2, 3):
        state = metric.setup(fixed, moving, sampling=0.9, num_threads=n)
        assert len(state.units) >= 3
        results.append(metric.value_and_gradient(state, matrix))
    state = metric.setup(fixed, moving, sampling=0.9)
    for n in (1, 3, 2):
        with parareg.threads(n):
            results.append(metric.value_and_gradient(state, matrix))
    value, grad = results[0]
    for v, g in results[1:]:
        assert v == value
        assert np.array_equal(g, grad)


# --------------------------------------------------------------------------- #
# the optimum is where it should be


@needs_data
@pytest.mark.parametrize("which", ["ixi", "mindboggle"])
def test_known_translation_is_the_optimum(which, request):
    fixed = request.getfixturevalue(f"{which}_pair")[0]
    shift, step = ((np.array([3.0, -2.0, 1.0]), 1.0) if fixed.ndim == 3
                   else (np.array([2.5, -1.5]), 0.5))
    moving = parareg.resample(fixed, fixed, affine=translation(shift))  # moving(y) = fixed(y + t)
    mi = MattesMutualInformation(moving_gradient="image")
    state = mi.setup(fixed, moving)
    truth = -shift
    offsets = [np.zeros(fixed.ndim)] + [sign * step * axis for axis in np.eye(fixed.ndim)
                                        for sign in (-1, 1)]
    if fixed.ndim == 2:  # the diagonals too (cheap in 2D)
        offsets += [step * np.array(off) for off in itertools.product((-1, 1), repeat=2)]
    values = [mi.value(state, translation(truth + off)) for off in offsets]
    assert int(np.argmin(values)) == 0
    assert values[0] < mi.value(state, np.eye(fixed.ndim + 1))


@needs_data
def test_brats_flair_t1c_identity_beats_3mm_shifts():
    flair_path = BRATS / "Flair_subtrMeanDivStd.nii.gz"
    t1c_path = BRATS / "T1c_subtrMeanDivStd.nii.gz"
    if not (flair_path.exists() and t1c_path.exists()):
        pytest.skip("BRATS FLAIR/T1c are not present")
    mi = MattesMutualInformation(moving_gradient="image")
    state = mi.setup(parareg.load(t1c_path), parareg.load(flair_path), sampling=0.05)
    at_identity = mi.value(state, np.eye(4))
    for axis, sign in itertools.product(range(3), (-1, 1)):
        assert at_identity < mi.value(state, translation(3.0 * sign * np.eye(3)[axis]))


# --------------------------------------------------------------------------- #
# masks


def test_fixed_mask_restricts_samples():
    fixed, moving = synthetic_pair(2, seed=3)
    mask = np.zeros(fixed.shape, bool)
    mask[10:40, 5:30] = True
    mi = MattesMutualInformation(moving_gradient="image")
    masked = mi.setup(fixed, moving, fixed_mask=parareg.Image(mask.astype(np.uint8),
                                                               fixed.vox2world))
    assert masked.num_samples == mask.sum()
    assert np.all(mask.reshape(-1)[masked.sample_index])
    assert masked.fixed_range == (float(fixed.data[mask].min()), float(fixed.data[mask].max()))
    full = mi.setup(fixed, moving)
    matrix = np.eye(3)
    assert mi.value(masked, matrix) != mi.value(full, matrix)


def test_moving_mask_skips_samples():
    fixed, moving = synthetic_pair(3, seed=4)
    moving_mask = np.zeros(moving.shape, np.int16)
    moving_mask[: moving.shape[0] // 2] = 3
    mi = MattesMutualInformation(moving_gradient="image")
    matrix = near_identity(3, seed=6, center=image_center(fixed))
    without = mi.evaluate(mi.setup(fixed, moving), matrix)
    state = mi.setup(fixed, moving, moving_mask=moving_mask)
    with_mask = mi.evaluate(state, matrix)
    expected = ref.mattes_mi(fixed, moving, matrix, state.sample_index,
                             moving_mask=moving_mask)
    assert 0 < with_mask.num_valid == expected[2] < without.num_valid
    assert_matches_reference(mi, state, matrix, expected)


# --------------------------------------------------------------------------- #
# errors


def test_bad_inputs_name_the_argument():
    fixed, moving = synthetic_pair(3, seed=0)
    fixed2d, _ = synthetic_pair(2, seed=0)
    mi = MattesMutualInformation(moving_gradient="image")
    with pytest.raises(ValueError, match="fixed is constant.*MI is undefined"):
        mi.setup(fixed.with_data(np.full(fixed.shape, 7.0)), moving)
    with pytest.raises(ValueError, match="moving is constant"):
        mi.setup(fixed, moving.with_data(np.zeros(moving.shape)))
    inside = np.zeros(moving.shape, bool)
    inside[:4] = True
    constant_inside = moving.data.copy()
    constant_inside[:4] = 5.0
    with pytest.raises(ValueError, match="moving is constant.*inside moving_mask"):
        mi.setup(fixed, moving.with_data(constant_inside), moving_mask=inside)
    with pytest.raises(ValueError, match="fixed_mask is empty"):
        mi.setup(fixed, moving, fixed_mask=np.zeros(fixed.shape, bool))
    with pytest.raises(ValueError, match="moving_mask must have the shape"):
        mi.setup(fixed, moving, moving_mask=np.ones(fixed.shape, bool))
    with pytest.raises(ValueError, match="fixed_mask is not on the grid"):
        mi.setup(fixed, moving, fixed_mask=parareg.Image(np.ones(fixed.shape), np.eye(4)))
    for sampling in (0, 0.0, -0.1, 1.5, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="sampling"):
            mi.setup(fixed, moving, sampling=sampling)
    with pytest.raises(ValueError, match="sampling_strategy"):
        mi.setup(fixed, moving, sampling=0.5, sampling_strategy="grid")
    with pytest.raises(ValueError, match="seed"):
        mi.setup(fixed, moving, sampling=0.5, seed=-1)
    with pytest.raises(ValueError, match="moving is 3D but fixed is 2D"):
        mi.setup(fixed2d, moving)
    with pytest.raises(ValueError, match="bins"):
        MattesMutualInformation(bins=4)
    with pytest.raises(ValueError, match="moving_gradient"):
        MattesMutualInformation(moving_gradient="sobel")
    state = mi.setup(fixed, moving)
    with pytest.raises(ValueError, match="fixed2moving"):
        mi.value_and_gradient(state, np.eye(3))
    with pytest.raises(TypeError, match="state"):
        mi.value(object(), np.eye(4))
    lean = MattesMutualInformation(moving_gradient="interpolant").setup(fixed, moving)
    assert lean.moving_gradient.size == 3
    mi.value(lean, np.eye(4))  # the value needs no gradient
    with pytest.raises(ValueError, match="without the moving gradient image"):
        mi.value_and_gradient(lean, np.eye(4))


def test_no_overlap_raises():
    fixed, moving = synthetic_pair(3, seed=0)
    for metric in (MattesMutualInformation(), MeanSquares(), Correlation()):
        state = metric.setup(fixed, moving)
        with pytest.raises(NoOverlapError, match="no overlap"):
            metric.value_and_gradient(state, translation([500.0, 0, 0]))
        assert issubclass(NoOverlapError, ValueError)


def test_registry():
    assert sorted(AFFINE_METRICS) == ["correlation", "meansquares", "mi"]
    assert isinstance(get_affine_metric("mi", bins=40), MattesMutualInformation)
    assert get_affine_metric("mi", bins=40).bins == 40
    assert isinstance(get_affine_metric("meansquares"), MeanSquares)
    assert isinstance(get_affine_metric("correlation"), Correlation)
    with pytest.raises(ValueError) as info:
        get_affine_metric("nmi")
    expected = "metric must be one of ['correlation', 'meansquares', 'mi'], got 'nmi'"
    assert str(info.value) == expected
    assert get_affine_metric("MI", bins=40).bins == 40
    with pytest.raises(ValueError, match=r"bins=40 is not an option of the affine metric "
                                         r"'correlation' \(it takes moving_gradient\)"):
        get_affine_metric("correlation", bins=40)
