"""Displacement fields: composition, inversion, Jacobian, consistency vs NumPy/SciPy twins.

Also: known answers (translations, linear maps), thread invariance at 1/2/3
threads, warm starts, and bad input.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from parareg import fields
from parareg.kernels.lift import lift_affine, lift_array, lift_linear

from .reference import fields_reference as ref

SHAPES = {2: (300, 260), 3: (48, 44, 40)}  # several axis-0 work units each (grain 32768)


def oblique_vox2world(ndim, spacing=(1.2, 0.9, 2.0), angle=0.3, shift=(-40.0, 25.0, -60.0)):
    """Rotation x anisotropic spacing + translation: a non-trivial grid."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.eye(ndim)
    rot[:2, :2] = [[c, -s], [s, c]]
    if ndim == 3:
        c2, s2 = np.cos(0.2), np.sin(0.2)
        rot = rot @ np.array([[1, 0, 0], [0, c2, -s2], [0, s2, c2]])
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = rot @ np.diag(spacing[:ndim])
    m[:ndim, ndim] = shift[:ndim]
    return m


def smooth_random_field(shape, vox2world, *, max_vox=3.0, sigma=6.0, seed=0, border=None,
                        ramp=8):
    """Gaussian-filtered noise, at most ``max_vox`` voxels long (in voxel units), in mm.

    With ``border`` the field is exactly zero within ``border`` voxels of the
    grid edge and fades in smoothly over the next ``ramp`` voxels (so inverses
    exist everywhere on the grid).
    """
    ndim = len(shape)
    rng = np.random.default_rng(seed)
    vox = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
                    for _ in range(ndim)], axis=-1)
    if border is not None:
        window = np.ones(shape)
        for axis, n in enumerate(shape):
            d = np.minimum(np.arange(n), n - 1 - np.arange(n)).astype(float)
            t = np.clip((d - border) / ramp, 0.0, 1.0)
            window *= (t * t * (3 - 2 * t)).reshape([-1 if a == axis else 1 for a in range(ndim)])
        vox *= window[..., None]
    vox *= max_vox / np.linalg.norm(vox, axis=-1).max()
    return (vox @ vox2world[:ndim, :ndim].T).astype(np.float32)


def interior(shape, margin):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(margin, n - margin) for n in shape)] = True
    return mask


def in_voxels(disp_mm, vox2world):
    """Norm of mm displacements measured in voxel units of the grid."""
    ndim = disp_mm.shape[-1]
    return np.linalg.norm(disp_mm @ np.linalg.inv(vox2world[:ndim, :ndim]).T, axis=-1)


def off_boundary(coords, shape, margin=1e-4):
    """Sample points not within ``margin`` of a grid boundary plane (either side)."""
    keep = np.ones(coords.shape[1:], bool)
    for axis, n in enumerate(shape):
        for edge in (0.0, n - 1.0):
            keep &= np.abs(coords[axis] - edge) > margin
    return keep


# --- the 2D strategy: 2D fields run through the 3D kernels ------------------------------


def test_lift_keeps_points_and_shares_memory():
    rng = np.random.default_rng(0)
    m = np.eye(3)
    m[:2] = rng.normal(size=(2, 3))
    x, y = 1.7, -2.3
    lifted = lift_affine(m) @ np.array([x, y, 0.0, 1.0])
    np.testing.assert_allclose(lifted[[0, 1, 3]], m @ np.array([x, y, 1.0]), rtol=0, atol=1e-12)
    assert lifted[2] == 0.0
    np.testing.assert_array_equal(lift_linear(m[:2, :2])[:2, :2], m[:2, :2])
    field = np.zeros((5, 4, 2), np.float32)
    view = lift_array(field, 2)
    assert view.shape == (5, 4, 1, 2) and np.shares_memory(view, field)
    assert lift_array(np.zeros((5, 4, 3, 3)), 3).shape == (5, 4, 3, 3)


# --- composition -------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_matches_scipy(ndim):
    shape = SHAPES[ndim]
    a = oblique_vox2world(ndim)
    outer = smooth_random_field(shape, a, max_vox=3.0, seed=1)
    inner = smooth_random_field(shape, a, max_vox=2.5, seed=2)
    got = fields.compose(outer, inner, vox2world=a, num_threads=2)
    want = ref.compose(outer, inner, a)
    coords = ref.sample_coords(inner, a)
    np.testing.assert_allclose(coords, ref.sample_coords_via_world(inner, a), atol=1e-9)
    keep = off_boundary(coords, shape)
    assert keep.mean() > 0.9
    assert got.dtype == np.float32 and got.shape == outer.shape
    np.testing.assert_allclose(got[keep], want[keep], rtol=0, atol=2e-5)
    # sample points that left the grid took outer = 0: w = inner there
    outside = np.zeros(shape, bool)
    for axis, n in enumerate(shape):
        outside |= (coords[axis] < -1e-3) | (coords[axis] > n - 1 + 1e-3)
    assert outside.sum() > 100
    np.testing.assert_array_equal(got[outside], inner[outside])


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_with_identity_is_exact(ndim):
    shape = SHAPES[ndim]
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, seed=3)
    zero = np.zeros_like(u)
    np.testing.assert_array_equal(fields.compose(u, zero, vox2world=a), u)
    np.testing.assert_array_equal(fields.compose(zero, u, vox2world=a), u)


def test_compose_order_is_outer_after_inner():
    """phi_outer o phi_inner: the inner displacement is applied to the point first."""
    a = np.eye(3)
    shape = (20, 20)
    # outer: x -> x + (0.1 * x0, 0) (depends on position); inner: shift +2 along axis 0
    x0 = np.arange(shape[0], dtype=np.float32)[:, None] * np.ones(shape, np.float32)
    outer = np.stack([0.1 * x0, np.zeros(shape, np.float32)], axis=-1)
    inner = np.zeros_like(outer)
    inner[..., 0] = 2.0
    w = fields.compose(outer, inner, vox2world=a)
    # at x0 = 5: 2 + outer(7) = 2 + 0.7; the other order would give 0.5 + 2
    np.testing.assert_allclose(w[5, 5], [2.7, 0.0], rtol=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_compose_in_place_into_inner(ndim):
    shape = SHAPES[ndim]
    a = oblique_vox2world(ndim)
    outer = smooth_random_field(shape, a, seed=4)
    inner = smooth_random_field(shape, a, seed=5)
    want = fields.compose(outer, inner, vox2world=a)
    result = fields.compose(outer, inner, vox2world=a, out=inner, num_threads=3)
    assert result is inner
    np.testing.assert_array_equal(inner, want)


def test_compose_rejects_out_overlapping_outer():
    a = np.eye(3)
    u = smooth_random_field((40, 30), a, seed=6)
    v = smooth_random_field((40, 30), a, seed=7)
    with pytest.raises(ValueError, match="out must not overlap outer"):
        fields.compose(u, v, vox2world=a, out=u)
    with pytest.raises(ValueError, match="out must be a float32 array"):
        fields.compose(u, v, vox2world=a, out=np.empty(u.shape))
    with pytest.raises(ValueError, match="partly overlap"):
        buf = np.zeros((41, 30, 2), np.float32)
        buf[:40] = v
        fields.compose(u, buf[:40], vox2world=a, out=buf[1:])


# --- Jacobian determinant ----------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_matches_numpy_gradient(ndim):
    shape = SHAPES[ndim]
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, max_vox=3.0, seed=8)
    got = fields.jacobian_determinant(u, vox2world=a, num_threads=2)
    want = ref.jacobian_determinant(u, a)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert got.std() > 0.05  # the test field really deforms


@pytest.mark.parametrize("ndim", [2, 3])
def test_jacobian_of_linear_map_is_its_determinant(ndim):
    shape = (30, 26, 22)[:ndim]
    a = oblique_vox2world(ndim)
    m = np.array([[1.1, 0.2, -0.05], [-0.1, 0.95, 0.1], [0.05, 0.15, 1.2]])[:ndim, :ndim]
    b = np.array([0.7, -1.3, 2.1])[:ndim]
    x = ref.grid_world(shape, a)
    u = (x @ (m - np.eye(ndim)).T + b).astype(np.float32)  # x + u(x) = m x + b
    det = fields.jacobian_determinant(u, vox2world=a)
    # central and one-sided differences are both exact on a linear field: everywhere
    np.testing.assert_allclose(det, np.linalg.det(m), rtol=2e-5)
    assert abs(np.linalg.det(m) - 1.0) > 0.05


# --- inversion ---------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_inverse_is_accurate_in_the_interior(ndim):
    shape = (120, 110) if ndim == 2 else (48, 44, 40)
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, max_vox=3.0, sigma=6.0, seed=10)  # nonzero at the border
    assert ref.jacobian_determinant(u, a).min() > 0.2  # a diffeomorphism
    v, stats = fields.invert(u, vox2world=a, iterations=30, tolerance=1e-4)
    inside = interior(shape, 8)
    uv = fields.compose(u, v, vox2world=a)
    vu = fields.compose(v, u, vox2world=a)
    assert in_voxels(uv, a)[inside].mean() < 0.05
    assert in_voxels(vu, a)[inside].mean() < 0.05
    assert in_voxels(uv, a)[inside].max() < 0.05
    # and the iteration really moved: the inverse is not the trivial -u
    assert in_voxels(v + u, a)[inside].max() > 0.05
    # stats are the residual of the returned field (phi_u o phi_v), over the whole grid
    norms = np.linalg.norm(ref.compose(u, v, a), axis=-1)
    np.testing.assert_allclose(stats.mean_residual, norms.mean(), rtol=1e-4)
    np.testing.assert_allclose(stats.max_residual, norms.max(), rtol=1e-4)


@pytest.mark.parametrize("ndim", [2, 3])
def test_invert_matches_reference_iteration(ndim):
    shape = (120, 110) if ndim == 2 else (40, 36, 32)
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, max_vox=3.0, seed=11, border=3)
    v, stats = fields.invert(u, vox2world=a, iterations=6, tolerance=0.0)
    want, history = ref.invert(u, a, iterations=6)
    assert stats.iterations == 6 and not stats.converged
    np.testing.assert_allclose(v, want, rtol=0, atol=2e-5)
    np.testing.assert_allclose(stats.mean_residual, history[-1][0], rtol=1e-3)
    np.testing.assert_allclose(stats.max_residual, history[-1][1], rtol=1e-3)
    assert history[-1][0] < 0.1 * history[0][0]  # the reference iteration converges too


@pytest.mark.parametrize("ndim", [2, 3])
def test_translation_inverts_to_negative_translation(ndim):
    shape = (60, 50) if ndim == 2 else (30, 28, 26)
    a = oblique_vox2world(ndim)
    t = (np.array([1.5, -2.25, 0.75])[:ndim] @ a[:ndim, :ndim].T).astype(np.float32)
    u = np.broadcast_to(t, (*shape, ndim)).copy()
    v, stats = fields.invert(u, vox2world=a, iterations=10)
    inside = interior(shape, 4)
    np.testing.assert_allclose(v[inside], np.broadcast_to(-t, v[inside].shape),
                               rtol=0, atol=1e-6)
    assert stats.iterations == 10  # border voxels, whose preimage is off the grid, never settle


@pytest.mark.parametrize("ndim", [2, 3])
def test_warm_start_needs_fewer_iterations(ndim):
    shape = (120, 110) if ndim == 2 else (40, 36, 32)
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, max_vox=3.0, seed=12, border=3)
    v, first = fields.invert(u, vox2world=a, iterations=50, tolerance=1e-3)
    assert first.converged and first.mean_residual < 1e-3
    step = smooth_random_field(shape, a, max_vox=0.2, seed=13, border=3)
    u2 = fields.compose(step, u, vox2world=a)  # a small SyN-like update
    kept = v.copy()
    _, cold = fields.invert(u2, vox2world=a, iterations=50, tolerance=1e-3)
    v2, warm = fields.invert(u2, vox2world=a, initial=v, iterations=50, tolerance=1e-3)
    np.testing.assert_array_equal(v, kept)  # initial is not modified
    assert cold.converged and warm.converged
    assert warm.iterations < cold.iterations
    # an already converged initial guess costs no update at all
    same, again = fields.invert(u2, vox2world=a, initial=v2, tolerance=1e-3)
    assert again.iterations == 0 and again.converged
    np.testing.assert_array_equal(same, v2)


def test_zero_iterations_only_measures():
    a = oblique_vox2world(3)
    u = smooth_random_field((20, 18, 16), a, seed=14)
    v, stats = fields.invert(u, vox2world=a, iterations=0)
    np.testing.assert_array_equal(v, 0)
    norms = np.linalg.norm(u.astype(np.float64), axis=-1)
    np.testing.assert_allclose(stats.mean_residual, norms.mean(), rtol=1e-6)
    assert stats.iterations == 0 and not stats.converged


# --- inverse consistency -----------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_inverse_consistency_matches_reference(ndim, masked):
    shape = SHAPES[ndim]
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, max_vox=3.0, seed=15, border=3)
    v, _ = fields.invert(u, vox2world=a, iterations=3, tolerance=0.0)  # deliberately rough
    mask = interior(shape, 6) if masked else None
    mean, largest = fields.inverse_consistency_error(u, v, vox2world=a, mask=mask)
    want_mean, want_max = ref.inverse_consistency_error(u, v, a, mask)
    assert want_mean > 1e-3
    np.testing.assert_allclose(mean, want_mean, rtol=1e-4)
    np.testing.assert_allclose(largest, want_max, rtol=1e-4)
    mask_u8 = None if mask is None else mask.astype(np.uint8) * 7
    assert fields.inverse_consistency_error(u, v, vox2world=a, mask=mask_u8) == (mean, largest)


def test_inverse_consistency_of_a_good_inverse_is_small():
    a = oblique_vox2world(3)
    u = smooth_random_field((40, 36, 32), a, max_vox=3.0, seed=16, border=3)
    v, stats = fields.invert(u, vox2world=a, iterations=50, tolerance=1e-4)
    mean, largest = fields.inverse_consistency_error(u, v, vox2world=a)
    assert stats.converged
    # what is left is linear interpolation of v (phi_v o phi_u) where u compresses
    assert mean < 0.01 and largest < 0.5  # mm; |u| reaches ~5 mm
    rough, _ = fields.invert(u, vox2world=a, iterations=1, tolerance=0.0)  # v = -u
    assert fields.inverse_consistency_error(u, rough, vox2world=a)[0] > 5 * mean


# --- smoothing ---------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_smooth_field_matches_scipy(ndim):
    a = np.eye(ndim + 1)
    u = smooth_random_field(SHAPES[ndim], a, sigma=1.0, seed=17)
    for sigma in ((1.5, 2.0, 1.0)[:ndim], 0.7, (0.0, 3.0, 0.5)[:ndim]):
        got = fields.smooth_field(u, sigma, num_threads=2)
        twin = ref.smooth_field(u, sigma)
        np.testing.assert_allclose(got, twin, rtol=1e-5, atol=1e-6 * np.abs(twin).max())


def test_smooth_field_on_a_tiny_grid_reflects_like_scipy():
    u = np.random.default_rng(3).normal(size=(3, 2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(fields.smooth_field(u, 2.0), ref.smooth_field(u, 2.0),
                               rtol=1e-5, atol=1e-6)


# --- thread invariance -------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_bit_identical_at_1_2_3_threads(ndim):
    shape = SHAPES[ndim]
    a = oblique_vox2world(ndim)
    u = smooth_random_field(shape, a, max_vox=3.0, seed=18)
    w = smooth_random_field(shape, a, max_vox=2.0, seed=19)
    mask = interior(shape, 3)

    def everything(n):
        inv, stats = fields.invert(u, vox2world=a, iterations=4, tolerance=0.0, num_threads=n)
        return (fields.compose(u, w, vox2world=a, num_threads=n), inv,
                (stats.mean_residual, stats.max_residual, stats.iterations),
                fields.jacobian_determinant(u, vox2world=a, num_threads=n),
                fields.inverse_consistency_error(u, w, vox2world=a, num_threads=n),
                fields.inverse_consistency_error(u, inv, vox2world=a, mask=mask, num_threads=n),
                fields.smooth_field(u, 2.0, num_threads=n))

    one = everything(1)
    for n in (2, 3):
        other = everything(n)
        for x, y in zip(one, other):
            if isinstance(x, np.ndarray):
                np.testing.assert_array_equal(x, y)
            else:
                assert x == y


# --- bad input ---------------------------------------------------------------------------


def test_bad_inputs_name_the_argument():
    a3 = oblique_vox2world(3)
    u3 = smooth_random_field((12, 10, 8), a3, seed=20)
    u2 = smooth_random_field((12, 10), np.eye(3), seed=21)
    with pytest.raises(ValueError, match=r"outer must have shape \(X, Y, Z, 3\)"):
        fields.compose(u2, u2, vox2world=a3)
    with pytest.raises(ValueError, match=r"field must have shape \(X, Y, 2\)"):
        fields.jacobian_determinant(u3, vox2world=np.eye(3))
    with pytest.raises(ValueError, match="inner must have shape"):
        fields.compose(u3, u3[:-1], vox2world=a3)
    with pytest.raises(ValueError, match="vox2world must be a 3x3"):
        fields.invert(u3, vox2world=np.eye(5))
    with pytest.raises(ValueError, match="vox2world is not invertible"):
        fields.invert(u3, vox2world=np.diag([1.0, 0.0, 1.0, 1.0]))
    bad = u3.copy()
    bad[3, 4, 5, 1] = np.nan
    with pytest.raises(ValueError, match="field contains NaN"):
        fields.invert(bad, vox2world=a3)
    with pytest.raises(ValueError, match="backward contains NaN"):
        fields.inverse_consistency_error(u3, bad, vox2world=a3)
    with pytest.raises(ValueError, match="initial must have shape"):
        fields.invert(u3, vox2world=a3, initial=u3[:, :-1])
    with pytest.raises(ValueError, match="iterations must be a non-negative integer"):
        fields.invert(u3, vox2world=a3, iterations=2.5)
    with pytest.raises(ValueError, match="tolerance must be finite"):
        fields.invert(u3, vox2world=a3, tolerance=float("nan"))
    with pytest.raises(ValueError, match="mask must have the grid shape"):
        fields.inverse_consistency_error(u3, u3, vox2world=a3, mask=np.ones((12, 10)))
    with pytest.raises(ValueError, match="mask selects no voxel"):
        fields.inverse_consistency_error(u3, u3, vox2world=a3, mask=np.zeros((12, 10, 8)))
    with pytest.raises(ValueError, match="field must hold floating-point"):
        fields.jacobian_determinant(u3.astype(np.int32), vox2world=a3)
    with pytest.raises(ValueError, match=r"field must have shape \(X, Y, 2\) or"):
        fields.smooth_field(u3[..., :2], 1.0)
    with pytest.raises(ValueError, match="field has an empty grid"):
        fields.jacobian_determinant(np.zeros((0, 4, 2), np.float32), vox2world=np.eye(3))


def test_max_norm_matches_numpy_at_any_thread_count():
    u = np.random.default_rng(5).normal(size=(70, 40, 30, 3)).astype(np.float32)
    scale = np.array([0.5, 1.0, 2.0])
    twin = float(np.sqrt(((u.astype(np.float64) * scale) ** 2).sum(-1)).max())
    got = [fields.max_norm(u, scale=scale, num_threads=n) for n in (1, 2, 3)]
    assert got[0] == got[1] == got[2]
    assert abs(got[0] - twin) < 1e-5 * twin


def test_damped_inversion_converges_where_plain_iteration_diverges():
    # a 1D-like expansion: x -> x + 2.5 * s(x), stretching space by up to ~3.5x in the middle
    n = 64
    x = np.arange(n, dtype=np.float64)
    s = 6.0 * np.tanh((x - n / 2) / 6.0)  # du/dx = tanh' peaks at 1 -> stretch 1 + 1 ... scaled
    u = np.zeros((n, 16, 2), np.float32)
    u[..., 0] = (2.5 * s)[:, None]
    a = np.eye(3)
    inner = (slice(12, -12), slice(None))
    plain, p_stats = fields.invert(u, vox2world=a, iterations=60, tolerance=0.0)
    damped, d_stats = fields.invert(u, vox2world=a, iterations=60, tolerance=0.0, damped=True)
    res_plain = np.linalg.norm(fields.compose(u, plain, vox2world=a)[inner], axis=-1).max()
    res_damped = np.linalg.norm(fields.compose(u, damped, vox2world=a)[inner], axis=-1).max()
    assert res_plain > 1.0  # plain fixed point oscillates where the stretch exceeds 2
    assert res_damped < 0.05
    for n_threads in (2, 3):
        again, _ = fields.invert(u, vox2world=a, iterations=60, tolerance=0.0, damped=True,
                                 num_threads=n_threads)
        np.testing.assert_array_equal(again, damped)
