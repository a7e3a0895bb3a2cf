"""SyN metrics (CC, SSD, EM): NumPy twins, finite differences, real data, threads, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import parareg
from parareg.metrics.syn import SYN_METRICS, CCMetric, EMMetric, SSDMetric, get_syn_metric
from parareg.metrics.syn_base import Pair
from parareg.metrics.syn_cc import cc_fields
from parareg.metrics.syn_em import em_fields
from parareg.metrics.syn_ssd import ssd_fields
from parareg.transforms import center_of_mass

from ._data import IXI_T1, needs_data
from .reference import syn_metrics_reference as ref


def oblique(ndim, seed=0):
    """A vox2world with unequal spacing, a small rotation/shear and an offset."""
    rng = np.random.default_rng(seed)
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = np.diag(np.linspace(0.8, 1.6, ndim)) + 0.15 * rng.normal(size=(ndim, ndim))
    m[:ndim, ndim] = rng.normal(size=ndim) * 10
    return m


def smooth_pair(shape, seed=0):
    """Two smooth, positive, partly correlated images (a blob field and a warped copy)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    fixed = np.full(shape, 0.2)
    moving = np.full(shape, 0.3)
    for _ in range(6):
        centre = rng.uniform(-0.6, 0.6, len(shape))
        width = rng.uniform(0.25, 0.5)
        shift = rng.uniform(-0.15, 0.15, len(shape))
        r2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        r2s = sum((g - c - s) ** 2 for g, c, s in zip(grids, centre, shift))
        fixed += np.exp(-r2 / width ** 2)
        moving += np.exp(-r2s / width ** 2)
    moving = np.sqrt(moving) + 0.3 * grids[0]  # a monotone remap plus a ramp: CC < 1
    return fixed.astype(np.float32), moving.astype(np.float32)


def cosine(a, b):
    a = np.ravel(a)
    b = np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- #
# agreement with the NumPy twins


@pytest.mark.parametrize("shape, radius", [((9, 8, 7), 1), ((9, 11, 10), 2), ((5, 9, 3), 2),
                                           ((13, 12), 2), ((7, 20), 3), ((4, 6), 4)])
def test_window_sums_are_exactly_the_clipped_box_sums(shape, radius):
    rng = np.random.default_rng(3)
    fixed = rng.integers(-20, 50, shape).astype(np.float32)  # integers: sums are exact
    moving = rng.integers(0, 30, shape).astype(np.float32)
    pair = Pair(fixed, moving, np.eye(len(shape) + 1), None)
    *_, sums = cc_fields(pair, radius, 1e-5, grain=40, return_sums=True)
    expected = ref.box_sums(fixed, moving, radius)
    np.testing.assert_array_equal(sums.reshape(expected.shape), expected)


@pytest.mark.parametrize("ndim, radius, use_mask", [(2, 1, False), (2, 3, True), (3, 1, True),
                                                    (3, 2, False)])
def test_cc_matches_numpy_twin(ndim, radius, use_mask):
    shape = (23, 19) if ndim == 2 else (12, 11, 10)
    rng = np.random.default_rng(ndim + radius)
    fixed = rng.random(shape).astype(np.float32) * 100
    moving = (0.5 * fixed + 50 * rng.random(shape)).astype(np.float32)
    fixed[:4] = 7.0  # a flat region exercises the guard
    vox2world = oblique(ndim)
    mask = rng.random(shape) > 0.3 if use_mask else None
    forward, backward, energy = CCMetric(radius).compute(fixed, moving, vox2world=vox2world,
                                                         mask=mask)
    f_ref, b_ref, e_ref = ref.cc(fixed, moving, radius, vox2world, mask)
    assert forward.shape == backward.shape == (*shape, ndim)
    assert forward.dtype == backward.dtype == np.float32
    scale = np.abs(f_ref).max()
    np.testing.assert_allclose(forward, f_ref, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(backward, b_ref, rtol=1e-4, atol=1e-5 * np.abs(b_ref).max())
    assert energy == pytest.approx(e_ref, rel=1e-10)
    assert -1.0 <= energy < 0.0
    assert np.all(forward[:radius] == 0) and np.all(backward[-radius:] == 0)  # DIPY's border


def test_cc_is_minus_dipy_steps():
    crosscorr = pytest.importorskip("dipy.align.crosscorr")
    fixed, moving = smooth_pair((14, 15, 16), seed=4)
    forward, backward, energy = CCMetric(radius=2).compute(fixed, moving, vox2world=np.eye(4))
    factors = np.asarray(crosscorr.precompute_cc_factors_3d(
        fixed.astype(np.float64), moving.astype(np.float64), 2))
    g_fixed = np.stack(np.gradient(fixed.astype(np.float64)), -1)
    g_moving = np.stack(np.gradient(moving.astype(np.float64)), -1)
    dipy_forward, dipy_energy = crosscorr.compute_cc_forward_step_3d(g_fixed, factors, 2)
    dipy_backward, _ = crosscorr.compute_cc_backward_step_3d(g_moving, factors, 2)
    scale = np.abs(dipy_forward).max()
    np.testing.assert_allclose(forward, -np.asarray(dipy_forward), rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(backward, -np.asarray(dipy_backward), rtol=1e-4,
                               atol=1e-6 * np.abs(dipy_backward).max())
    assert energy * 10 * 11 * 12 == pytest.approx(dipy_energy, rel=1e-6)  # DIPY sums the interior


@pytest.mark.parametrize("ndim", [2, 3])
def test_ssd_matches_numpy_twin(ndim):
    shape = (21, 17) if ndim == 2 else (11, 10, 9)
    rng = np.random.default_rng(ndim)
    fixed = rng.random(shape).astype(np.float32) * 10
    moving = (fixed + rng.normal(size=shape)).astype(np.float32)
    moving[0] = fixed[0]  # delta = 0 rows
    vox2world = oblique(ndim, seed=1)
    mask = rng.random(shape) > 0.2
    for sigma_x, kwargs in [(None, {}), (0.7, {"sigma_x_sq": 0.49})]:
        forward, backward, energy = SSDMetric(sigma_x=sigma_x).compute(
            fixed, moving, vox2world=vox2world, mask=mask)
        f_ref, b_ref, e_ref = ref.ssd(fixed, moving, vox2world, mask, **kwargs)
        np.testing.assert_allclose(forward, f_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(backward, b_ref, rtol=1e-4, atol=1e-5)
        assert energy == pytest.approx(e_ref, rel=1e-10)
    # the demons step is bounded by sigma_x / 2 mm
    assert np.linalg.norm(forward, axis=-1).max() <= 0.35 + 1e-6


@pytest.mark.parametrize("ndim, levels, double", [(2, 8, True), (3, 16, False), (3, 2, True)])
def test_em_matches_numpy_twin(ndim, levels, double):
    shape = (25, 19) if ndim == 2 else (12, 11, 10)
    rng = np.random.default_rng(levels)
    fixed = rng.random(shape).astype(np.float32) * 10
    moving = (np.sqrt(fixed) + 0.3 * rng.random(shape)).astype(np.float32)
    fixed[:2] = 0.0  # class 0 (values <= 0)
    moving[-1] = -1.0
    vox2world = oblique(ndim, seed=2)
    mask = rng.random(shape) > 0.1
    forward, backward, energy = EMMetric(levels, double_gradient=double).compute(
        fixed, moving, vox2world=vox2world, mask=mask)
    f_ref, b_ref, e_ref = ref.em(fixed, moving, vox2world, levels, mask, double_gradient=double)
    np.testing.assert_allclose(forward, f_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(backward, b_ref, rtol=1e-4, atol=1e-5)
    assert energy == pytest.approx(e_ref, rel=1e-9)


# --------------------------------------------------------------------------- #
# fields against finite differences of the energy w.r.t. a displacement


def _fd_check(metric, which, n_voxels=6, h=1.0 / 64, levels=None):
    """Fields at the strongest voxels, and the centred differences of the energy there.

    ``which`` is "forward" (perturb the fixed image's pull field) or "backward"
    (the moving image's). Returns (fields, -dE/du) at the chosen voxels, shape (n, 3).
    With ``levels`` (EM), voxels whose perturbed intensity lies near a quantisation
    bin edge are skipped: there the energy jumps (a label changes) and has no derivative.
    """
    shape = (16, 17, 18)
    fixed_data, moving_data = smooth_pair(shape, seed=1)
    vox2world = oblique(3, seed=5)
    fixed = parareg.Image(fixed_data, vox2world)
    moving = parareg.Image(moving_data, vox2world)
    zero = np.zeros((*shape, 3), np.float32)

    def energy(fixed_field, moving_field):
        s = parareg.resample(fixed, fixed, field=fixed_field).data
        m = parareg.resample(moving, fixed, field=moving_field).data
        return metric.compute(s, m, vox2world=vox2world)[2]

    s0 = parareg.resample(fixed, fixed, field=zero).data
    m0 = parareg.resample(moving, fixed, field=zero).data
    forward, backward, _ = metric.compute(s0, m0, vox2world=vox2world)
    field = forward if which == "forward" else backward
    norms = np.linalg.norm(field, axis=-1)
    interior = np.zeros(shape, bool)
    interior[4:-4, 4:-4, 4:-4] = True
    if levels is not None:
        values = (s0 if which == "forward" else m0).astype(np.float64)
        lo, hi = values.min(), values.max()  # all positive here
        position = (values - lo) / ((hi - lo) / (levels - 1))
        interior &= np.abs(position - np.floor(position) - 0.5) < 0.2
    picks = np.argsort(np.where(interior, norms, -1).ravel())[::-7][:n_voxels]
    fields, descent = [], []
    for flat in picks:
        index = np.unravel_index(flat, shape)
        grad = np.zeros(3)
        for k in range(3):
            plus, minus = zero.copy(), zero.copy()
            plus[(*index, k)] = h
            minus[(*index, k)] = -h
            if which == "forward":
                grad[k] = (energy(plus, zero) - energy(minus, zero)) / (2 * h)
            else:
                grad[k] = (energy(zero, plus) - energy(zero, minus)) / (2 * h)
        fields.append(field[index])
        descent.append(-grad)
    return np.array(fields), np.array(descent)


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_cc_fields_point_down_the_energy(which):
    fields, descent = _fd_check(CCMetric(radius=2), which)
    assert np.abs(descent).max() > 0
    assert cosine(fields, descent) > 0.9  # all voxels together: magnitudes agree too
    for f, d in zip(fields, descent):
        assert cosine(f, d) > 0.9


@pytest.mark.parametrize("metric", [SSDMetric(), EMMetric(32, double_gradient=False)],
                         ids=["ssd", "em"])
@pytest.mark.parametrize("which", ["forward", "backward"])
def test_demons_fields_point_down_the_energy(metric, which):
    levels = metric.q_levels if isinstance(metric, EMMetric) else None
    fields, descent = _fd_check(metric, which, h=1.0 / 256, levels=levels)
    assert np.abs(descent).max() > 0
    for f, d in zip(fields, descent):  # a demons step is a per-voxel rescaled gradient
        assert cosine(f, d) > 0.99


# --------------------------------------------------------------------------- #
# real data: a small step along the fields lowers the energy


@pytest.fixture(scope="module")
def ixi_pair():
    if len(IXI_T1) < 2:
        pytest.skip("IXI T1 images are not present")
    fixed = parareg.load(IXI_T1[0])
    moving = parareg.load(IXI_T1[1])
    return fixed, moving, center_of_mass(fixed, moving)


@needs_data
@pytest.mark.parametrize("metric", [CCMetric(radius=2), SSDMetric(), EMMetric(64)],
                         ids=["cc", "ssd", "em"])
def test_step_along_fields_lowers_energy_on_ixi(ixi_pair, metric):
    fixed, moving, fixed2moving = ixi_pair
    zero = np.zeros((*fixed.shape, 3), np.float32)

    def energy(fixed_field, moving_field):
        s = parareg.resample(fixed, fixed, field=fixed_field).data
        m = parareg.resample(moving, fixed, affine=fixed2moving, field=moving_field).data
        return metric.compute(s, m, vox2world=fixed.vox2world)[2]

    s0 = parareg.resample(fixed, fixed, field=zero).data
    m0 = parareg.resample(moving, fixed, affine=fixed2moving, field=zero).data
    forward, backward, e0 = metric.compute(s0, m0, vox2world=fixed.vox2world)
    # 0.2 mm at the strongest voxel (voxels are 2 mm): a small step, as a SyN iteration
    f = 0.2 * forward / np.linalg.norm(forward, axis=-1).max()
    b = 0.2 * backward / np.linalg.norm(backward, axis=-1).max()
    for fixed_field, moving_field in [(f, zero), (zero, b), (f, b)]:
        better = energy(fixed_field, moving_field)
        worse = energy(-fixed_field, -moving_field)
        assert better < e0
        assert better < worse
        if not isinstance(metric, EMMetric):
            # EM is excluded: any sub-voxel shift blurs the images through interpolation,
            # which lowers the within-class variances as much as a 0.2 mm step does
            assert worse > e0


# --------------------------------------------------------------------------- #
# thread-count invariance


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("name, kwargs", [("cc", {"radius": 2}), ("ssd", {}),
                                          ("em", {"q_levels": 32})])
def test_identical_bits_at_any_thread_count(ndim, name, kwargs):
    shape = (400, 300) if ndim == 2 else (70, 50, 40)
    fixed, moving = smooth_pair(shape, seed=6)
    metric = get_syn_metric(name, **kwargs)
    mask = np.random.default_rng(0).random(shape) > 0.1
    outs = [metric.compute(fixed, moving, vox2world=oblique(ndim), mask=mask, num_threads=n)
            for n in (1, 2, 3)]
    for forward, backward, energy in outs[1:]:
        np.testing.assert_array_equal(forward, outs[0][0])
        np.testing.assert_array_equal(backward, outs[0][1])
        assert energy == outs[0][2]


@pytest.mark.parametrize("driver, args", [(cc_fields, (2, 1e-5)), (ssd_fields, (1.0,)),
                                          (em_fields, (16, 1.0, True))],
                         ids=["cc", "ssd", "em"])
def test_many_small_units_give_the_same_fields(driver, args):
    fixed, moving = smooth_pair((21, 22, 23), seed=7)
    pair = Pair(fixed, moving, oblique(3), None)
    base = driver(pair, *args, num_threads=1)
    for grain, threads in [(1, 3), (500, 2), (3000, 3)]:
        forward, backward, energy = driver(pair, *args, num_threads=threads, grain=grain)
        np.testing.assert_array_equal(forward, base[0])
        np.testing.assert_array_equal(backward, base[1])
        assert energy == pytest.approx(base[2], rel=1e-12)  # only the sum order differs


# --------------------------------------------------------------------------- #
# registry and bad inputs


def test_registry():
    assert sorted(SYN_METRICS) == ["cc", "em", "mi", "ssd"]
    assert isinstance(get_syn_metric("cc", radius=3), CCMetric)
    assert repr(get_syn_metric("ssd", sigma_x=1.5)) == "SSDMetric(sigma_x=1.5)"
    with pytest.raises(ValueError, match=r"metric must be one of \['cc', 'em', 'mi', 'ssd'\], got 'ncc'"):
        get_syn_metric("ncc")


@pytest.mark.parametrize("radius", [0, -1, 1.5, True, "2"])
def test_bad_radius(radius):
    with pytest.raises(ValueError, match="radius"):
        CCMetric(radius)


@pytest.mark.parametrize("kwargs, name", [({"q_levels": 1}, "q_levels"),
                                          ({"q_levels": 4.0}, "q_levels"),
                                          ({"sigma_x": 0}, "sigma_x"),
                                          ({"sigma_x": np.nan}, "sigma_x")])
def test_bad_hyperparameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EMMetric(**kwargs)


def test_image_smaller_than_window():
    image = np.ones((20, 4, 20), np.float32)
    with pytest.raises(ValueError, match=r"fixed_warped.*2 \* radius \+ 1 = 5"):
        CCMetric(radius=2).compute(image, image, vox2world=np.eye(4))
    CCMetric(radius=1).compute(image, image, vox2world=np.eye(4))  # 3 voxels suffice


@pytest.mark.parametrize("name", sorted(SYN_METRICS))
def test_bad_images(name):
    metric = get_syn_metric(name)
    if name == "cc":
        metric = CCMetric(radius=1)
    good = np.ones((8, 9, 10), np.float32)
    with pytest.raises(ValueError, match="moving_warped must have the shape"):
        metric.compute(good, good[:, :, :9], vox2world=np.eye(4))
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="moving_warped contains 1 NaN"):
        metric.compute(good, bad, vox2world=np.eye(4))
    with pytest.raises(ValueError, match="fixed_warped contains 1 NaN"):
        metric.compute(bad, good, vox2world=np.eye(4))
    with pytest.raises(ValueError, match="fixed_warped must be a 2D or 3D"):
        metric.compute(good[0, 0], good[0, 0], vox2world=np.eye(2))
    with pytest.raises(ValueError, match="vox2world must be a 4x4"):
        metric.compute(good, good, vox2world=np.eye(3))
    with pytest.raises(ValueError, match="mask must have the shape"):
        metric.compute(good, good, vox2world=np.eye(4), mask=np.ones((8, 9), bool))
    with pytest.raises(ValueError, match="mask is empty"):
        metric.compute(good, good, vox2world=np.eye(4), mask=np.zeros(good.shape, bool))
    with pytest.raises(ValueError, match="num_threads"):
        metric.compute(good, good, vox2world=np.eye(4), num_threads=0)
