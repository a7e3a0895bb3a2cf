"""Tests for parareg.transforms: linear transform families and initialisers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import parareg
from parareg import Image
from parareg.transforms import (
    TRANSFORMS,
    AffineTransform,
    RigidTransform,
    SimilarityTransform,
    TranslationTransform,
    center_of_mass,
    geometric_centers,
    get_transform,
    image_center,
    origins,
)
from parareg.transforms.linear import _rotvec_derivatives

T1_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ixi_2mm" / "t1"
if not T1_DIR.is_dir():
    T1_DIR = Path("/work/shared/data/ixi_2mm/t1")

CASES = list(itertools.product(sorted(TRANSFORMS), (2, 3)))
IDS = [f"{name}-{ndim}d" for name, ndim in CASES]


def random_params(transform, rng, *, max_angle=0.9 * np.pi):
    """Random valid parameters: rotations below ``max_angle``, moderate scales."""
    n, k = transform.ndim, transform.n_linear
    t = rng.uniform(-30.0, 30.0, n)
    if transform.name == "translation":
        return t
    if transform.name == "affine":
        return np.concatenate([(np.eye(n) + 0.3 * rng.standard_normal((n, n))).ravel(), t])
    if n == 2:
        rot = rng.uniform(-max_angle, max_angle, 1)
    else:
        axis = rng.standard_normal(3)
        rot = axis / np.linalg.norm(axis) * rng.uniform(0.0, max_angle)
    extra = [rng.uniform(-0.5, 0.5)] if transform.name == "similarity" else []
    p = np.concatenate([rot, extra, t])
    assert p.shape == (transform.n_params,)
    assert k == transform.n_params - n
    return p


def apply(matrix, points):
    n = points.shape[1]
    return points @ matrix[:n, :n].T + matrix[:n, n]


# --------------------------------------------------------------------------- #
# registry
# --------------------------------------------------------------------------- #
def test_registry_names_and_classes():
    assert sorted(TRANSFORMS) == ["affine", "rigid", "similarity", "translation"]
    expected = {"translation": (TranslationTransform, 2, 3), "rigid": (RigidTransform, 3, 6),
                "similarity": (SimilarityTransform, 4, 7), "affine": (AffineTransform, 6, 12)}
    for name, (cls, n2, n3) in expected.items():
        assert type(get_transform(name, 2)) is cls
        assert get_transform(name, 2).n_params == n2
        assert get_transform(name, 3).n_params == n3
        assert get_transform(name, 3).ndim == 3


def test_unknown_name_and_bad_ndim():
    with pytest.raises(ValueError, match=r"transform must be one of \['affine', 'rigid', "
                                         r"'similarity', 'translation'\], got 'euler'"):
        get_transform("euler", 3)
    with pytest.raises(ValueError, match="ndim must be 2 or 3"):
        get_transform("rigid", 4)


# --------------------------------------------------------------------------- #
# identity, round trips, structure
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name,ndim", CASES, ids=IDS)
def test_identity(name, ndim):
    tr = get_transform(name, ndim)
    p0 = tr.identity_params()
    assert p0.shape == (tr.n_params,) and p0.dtype == np.float64
    np.testing.assert_array_equal(tr.matrix(p0), np.eye(ndim + 1))
    np.testing.assert_allclose(tr.matrix(p0, center=np.full(ndim, 37.5)), np.eye(ndim + 1),
                               atol=1e-13)
    np.testing.assert_allclose(tr.params_from_matrix(np.eye(ndim + 1)), p0, atol=1e-15)


@pytest.mark.parametrize("name,ndim", CASES, ids=IDS)
def test_params_matrix_round_trip(name, ndim):
    tr = get_transform(name, ndim)
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = random_params(tr, rng)
        c = rng.uniform(-80.0, 80.0, ndim)
        m = tr.matrix(p, center=c)
        np.testing.assert_allclose(tr.params_from_matrix(m, center=c), p, rtol=0, atol=1e-9)
        # the same map expressed about another centre keeps the matrix
        q = tr.params_from_matrix(m, center=c + 10.0)
        np.testing.assert_allclose(tr.matrix(q, center=c + 10.0), m, rtol=0, atol=1e-9)


def test_matrix_definition():
    """M(x) = A (x - c) + c + t, written out for the affine family."""
    rng = np.random.default_rng(2)
    tr = get_transform("affine", 3)
    a = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    t, c = rng.standard_normal(3), rng.standard_normal(3) * 50
    x = rng.standard_normal((10, 3)) * 50
    m = tr.matrix(np.concatenate([a.ravel(), t]), center=c)
    np.testing.assert_allclose(apply(m, x), (x - c) @ a.T + c + t, atol=1e-10)


def test_rotation_vector_matches_scipy():
    rng = np.random.default_rng(3)
    tr = get_transform("rigid", 3)
    for _ in range(20):
        w = rng.standard_normal(3) * rng.uniform(0, 1.5)
        r = tr.matrix(np.concatenate([w, np.zeros(3)]))[:3, :3]
        np.testing.assert_allclose(r, Rotation.from_rotvec(w).as_matrix(), atol=1e-13)
    # right-handed: +90 degrees about z takes x to y; 2D: +90 degrees takes x to y
    r = tr.matrix([0, 0, np.pi / 2, 0, 0, 0])
    np.testing.assert_allclose(r[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    r2 = get_transform("rigid", 2).matrix([np.pi / 2, 0, 0])
    np.testing.assert_allclose(r2[:2, :2] @ [1, 0], [0, 1], atol=1e-15)


@pytest.mark.parametrize("angle", [0.0, 1e-12, 1e-7, 1e-2 - 1e-9, 1e-2 + 1e-9, 1.0,
                                   np.pi - 1e-3, np.pi - 1e-7])
def test_rotation_vector_round_trip_small_and_large_angles(angle):
    tr = get_transform("rigid", 3)
    axis = np.array([0.3, -0.8, 0.52])
    axis /= np.linalg.norm(axis)
    p = np.concatenate([axis * angle, [1.0, 2.0, 3.0]])
    m = tr.matrix(p)
    np.testing.assert_allclose(tr.params_from_matrix(m), p, rtol=0, atol=1e-8)
    np.testing.assert_allclose(m[:3, :3], Rotation.from_rotvec(axis * angle).as_matrix(),
                               atol=1e-14)


def test_rotation_by_pi_maps_back():
    tr = get_transform("rigid", 3)
    for axis in np.eye(3).tolist() + [[1.0, 1.0, 0.0], [0.2, -0.5, 0.9]]:
        axis = np.asarray(axis) / np.linalg.norm(axis)
        m = tr.matrix(np.concatenate([np.pi * axis, np.zeros(3)]))
        p = tr.params_from_matrix(m)
        assert np.isclose(np.linalg.norm(p[:3]), np.pi)
        np.testing.assert_allclose(tr.matrix(p), m, atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_rigid_is_proper_rotation(ndim):
    tr = get_transform("rigid", ndim)
    rng = np.random.default_rng(4)
    for _ in range(20):
        r = tr.matrix(random_params(tr, rng), center=rng.uniform(-50, 50, ndim))[:ndim, :ndim]
        np.testing.assert_allclose(r.T @ r, np.eye(ndim), atol=1e-14)
        assert np.isclose(np.linalg.det(r), 1.0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_similarity_is_isotropic(ndim):
    tr = get_transform("similarity", ndim)
    rng = np.random.default_rng(5)
    for _ in range(20):
        p = random_params(tr, rng)
        a = tr.matrix(p)[:ndim, :ndim]
        s = np.exp(p[tr.n_linear - 1])
        np.testing.assert_allclose(a.T @ a, s * s * np.eye(ndim), atol=1e-13)
        assert np.linalg.det(a) > 0


@pytest.mark.parametrize("ndim", [2, 3])
def test_projection_onto_rigid_and_similarity(ndim):
    """Non-member matrices project to the nearest member; the centre keeps its image."""
    rng = np.random.default_rng(6)
    sim, rigid = get_transform("similarity", ndim), get_transform("rigid", ndim)
    c = rng.uniform(-40, 40, ndim)
    p = random_params(sim, rng)
    m = sim.matrix(p, center=c)
    # rigid drops the scale, keeps the rotation and where the centre goes
    q = rigid.params_from_matrix(m, center=c)
    r = rigid.matrix(q, center=c)
    np.testing.assert_allclose(r[:ndim, :ndim] * np.exp(p[sim.n_linear - 1]), m[:ndim, :ndim],
                               atol=1e-12)
    np.testing.assert_allclose(apply(r, c[None]), apply(m, c[None]), atol=1e-10)
    # a small anisotropic perturbation: similarity recovers the average scale
    a = np.diag(np.linspace(1.9, 2.1, ndim))
    m2 = np.eye(ndim + 1)
    m2[:ndim, :ndim] = a
    q2 = sim.params_from_matrix(m2)
    np.testing.assert_allclose(q2[: sim.n_linear - 1], 0.0, atol=1e-14)
    assert np.isclose(np.exp(q2[sim.n_linear - 1]), 2.0)
    # a reflection still projects to a proper rotation
    refl = np.eye(ndim + 1)
    refl[0, 0] = -1.0
    rr = rigid.matrix(rigid.params_from_matrix(refl))[:ndim, :ndim]
    assert np.isclose(np.linalg.det(rr), 1.0)


@pytest.mark.parametrize("name,ndim", CASES, ids=IDS)
def test_center_is_fixed_under_pure_linear_part(name, ndim):
    tr = get_transform(name, ndim)
    rng = np.random.default_rng(7)
    p = random_params(tr, rng)
    p[-ndim:] = 0.0
    c = rng.uniform(-100, 100, ndim)
    m = tr.matrix(p, center=c)
    np.testing.assert_allclose(apply(m, c[None])[0], c, atol=1e-11)
    if tr.n_linear:
        moved = apply(m, c[None] + 10.0)[0]
        assert not np.allclose(moved, c + 10.0)  # other points do move
        jac = tr.jacobian(p, c[None], center=c)
        np.testing.assert_allclose(jac[0, :, : tr.n_linear], 0.0, atol=1e-12)
    # the translation parameters move the centre by exactly t
    p[-ndim:] = rng.uniform(-5, 5, ndim)
    np.testing.assert_allclose(apply(tr.matrix(p, center=c), c[None])[0], c + p[-ndim:],
                               atol=1e-11)


# --------------------------------------------------------------------------- #
# Jacobian
# --------------------------------------------------------------------------- #
def finite_difference_jacobian(tr, p, x, c, h=1e-6):
    out = np.empty((x.shape[0], tr.ndim, tr.n_params))
    for k in range(tr.n_params):
        dp = np.zeros(tr.n_params)
        dp[k] = h
        plus = apply(tr.matrix(p + dp, center=c), x)
        minus = apply(tr.matrix(p - dp, center=c), x)
        out[:, :, k] = (plus - minus) / (2 * h)
    return out


@pytest.mark.parametrize("name,ndim", CASES, ids=IDS)
def test_jacobian_matches_finite_differences(name, ndim):
    tr = get_transform(name, ndim)
    rng = np.random.default_rng(8)
    x = rng.uniform(-100, 100, (25, ndim))
    param_sets = [tr.identity_params()] + [random_params(tr, rng) for _ in range(5)]
    if tr.n_linear and name != "affine":
        small = tr.identity_params()
        small[: ndim - 1 if ndim == 2 else 3] = 1e-4  # tiny rotation: series branch
        param_sets.append(small)
    for p in param_sets:
        c = rng.uniform(-50, 50, ndim)
        jac = tr.jacobian(p, x, center=c)
        assert jac.shape == (25, ndim, tr.n_params) and jac.dtype == np.float64
        fd = finite_difference_jacobian(tr, p, x, c)
        scale = max(1.0, float(np.abs(fd).max()))
        assert np.abs(jac - fd).max() < 1e-7 * scale, (p, np.abs(jac - fd).max())
        # translation columns are the identity
        np.testing.assert_array_equal(jac[:, :, -ndim:], np.broadcast_to(np.eye(ndim),
                                                                          (25, ndim, ndim)))


def test_rotation_derivatives_continuous_across_series_threshold():
    axis = np.array([0.6, 0.0, 0.8])
    below = _rotvec_derivatives(axis * (1e-2 - 1e-10))
    above = _rotvec_derivatives(axis * (1e-2 + 1e-10))
    np.testing.assert_allclose(below, above, atol=1e-12)


def test_jacobian_empty_points():
    tr = get_transform("rigid", 3)
    assert tr.jacobian(tr.identity_params(), np.zeros((0, 3))).shape == (0, 3, 6)


# --------------------------------------------------------------------------- #
# parameter scales
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name,ndim", CASES, ids=IDS)
def test_param_scales_move_corners_about_one_mm(name, ndim):
    tr = get_transform(name, ndim)
    extent = np.array([180.0, 220.0, 160.0][:ndim])
    scales = tr.param_scales(extent)
    assert scales.shape == (tr.n_params,)
    np.testing.assert_array_equal(scales[-ndim:], 1.0)
    c = np.full(ndim, 12.0)
    corners = c + 0.5 * extent * np.array(list(itertools.product((-1, 1), repeat=ndim)))
    jac = tr.jacobian(tr.identity_params(), corners, center=c) * scales
    largest_move = np.linalg.norm(jac, axis=1).max(axis=0)  # per parameter, mm
    assert np.all(largest_move <= 1.0 + 1e-12)
    assert np.all(largest_move >= 0.4)
    # a scalar extent is used for every axis
    np.testing.assert_allclose(tr.param_scales(100.0), tr.param_scales(np.full(ndim, 100.0)))


def test_param_scales_bad_extent():
    tr = get_transform("rigid", 3)
    for bad in (0.0, -5.0, [1.0, 2.0], [1.0, np.nan, 2.0]):
        with pytest.raises(ValueError, match="extent_mm"):
            tr.param_scales(bad)


# --------------------------------------------------------------------------- #
# bad inputs
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("name,ndim", CASES, ids=IDS)
def test_bad_inputs(name, ndim):
    tr = get_transform(name, ndim)
    p = tr.identity_params()
    with pytest.raises(ValueError, match="params must have shape"):
        tr.matrix(np.zeros(tr.n_params + 1))
    with pytest.raises(ValueError, match="params must have shape"):
        tr.jacobian(np.zeros((1, tr.n_params)), np.zeros((3, ndim)))
    with pytest.raises(ValueError, match="params contains NaN"):
        tr.matrix(np.full(tr.n_params, np.nan))
    with pytest.raises(ValueError, match=rf"points must have shape \(N, {ndim}\)"):
        tr.jacobian(p, np.zeros((4, ndim + 1)))
    with pytest.raises(ValueError, match="points must have shape"):
        tr.jacobian(p, np.zeros(ndim))
    with pytest.raises(ValueError, match="center must have shape"):
        tr.matrix(p, center=np.zeros(ndim + 1))
    with pytest.raises(ValueError, match="matrix"):
        tr.params_from_matrix(np.eye(ndim + 2))
    with pytest.raises(ValueError, match="matrix is not invertible"):
        tr.params_from_matrix(np.diag([0.0] * ndim + [1.0]))


# --------------------------------------------------------------------------- #
# initialisers
# --------------------------------------------------------------------------- #
def oblique_vox2world(ndim, spacing, offset, rotvec):
    m = np.eye(ndim + 1)
    if ndim == 3:
        rot = Rotation.from_rotvec(rotvec).as_matrix()
    else:
        rot = Rotation.from_rotvec([0, 0, rotvec[2]]).as_matrix()[:2, :2]
    m[:ndim, :ndim] = rot * np.asarray(spacing)
    m[:ndim, ndim] = offset
    return m


def world(vox2world, index):
    n = len(index)
    return vox2world[:n, :n] @ np.asarray(index, dtype=float) + vox2world[:n, n]


def test_center_of_mass_cuboids_known_answer():
    """Two different grids; each holds a cuboid (plus negative background)."""
    f2w = oblique_vox2world(3, [1.5, 1.0, 2.5], [-20.0, 5.0, 33.0], [0.1, -0.2, 0.3])
    m2w = oblique_vox2world(3, [2.0, 0.8, 1.2], [10.0, -40.0, 2.0], [-0.3, 0.05, 0.6])
    fixed = np.full((20, 24, 16), -3.0)
    fixed[3:9, 5:15, 2:6] = 7.0
    moving = np.zeros((30, 18, 22))
    moving[10:20, 4:10, 7:13] = 2.0
    moving[0, 0, 0] = -100.0  # negative intensities carry no mass
    expected = world(m2w, [14.5, 6.5, 9.5]) - world(f2w, [5.5, 9.5, 3.5])
    m = center_of_mass(Image(fixed, f2w), Image(moving, m2w))
    expected_matrix = np.eye(4)
    expected_matrix[:3, 3] = expected
    np.testing.assert_allclose(m, expected_matrix, rtol=0, atol=1e-9)


@pytest.mark.parametrize("ndim", [2, 3])
def test_initialisers_blob_shifted_in_voxels(ndim):
    """The same blob moved by a known voxel shift on an oblique grid."""
    shape = (40, 36, 30)[:ndim]
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1)
    centre = np.array([15.3, 17.8, 12.1])[:ndim]
    shift = np.array([4, -3, 2])[:ndim]
    blob = lambda c: np.exp(-((grid - c) ** 2).sum(-1) / (2 * 2.0**2))  # noqa: E731
    v2w = oblique_vox2world(ndim, [1.2, 0.9, 2.0][:ndim], [-30.0, 12.0, 4.0][:ndim],
                            [0.2, 0.1, -0.4])
    fixed, moving = Image(blob(centre), v2w), Image(blob(centre + shift), v2w)
    m = center_of_mass(fixed, moving)
    assert m.shape == (ndim + 1, ndim + 1)
    np.testing.assert_allclose(m[:ndim, :ndim], np.eye(ndim))
    np.testing.assert_allclose(m[:ndim, ndim], v2w[:ndim, :ndim] @ shift, atol=1e-6)
    # same grid: geometric centres and origins coincide
    np.testing.assert_allclose(geometric_centers(fixed, moving), np.eye(ndim + 1), atol=1e-12)
    np.testing.assert_allclose(origins(fixed, moving), np.eye(ndim + 1), atol=1e-12)


@pytest.mark.parametrize("ndim", [2, 3])
def test_grid_initialisers_known_answer(ndim):
    f2w = oblique_vox2world(ndim, [1.0, 2.0, 3.0][:ndim], [5.0, -6.0, 7.0][:ndim],
                            [0.0, 0.3, 0.5])
    m2w = oblique_vox2world(ndim, [0.5, 1.5, 1.0][:ndim], [-1.0, 2.0, 9.0][:ndim],
                            [0.4, 0.0, -0.2])
    fixed = Image(np.ones((11, 9, 7)[:ndim]), f2w)
    moving = Image(np.ones((8, 13, 5)[:ndim]), m2w)
    f_center = world(f2w, [5.0, 4.0, 3.0][:ndim])
    m_center = world(m2w, [3.5, 6.0, 2.0][:ndim])
    np.testing.assert_allclose(image_center(fixed), f_center, atol=1e-12)
    np.testing.assert_allclose(geometric_centers(fixed, moving)[:ndim, ndim],
                               m_center - f_center, atol=1e-12)
    np.testing.assert_allclose(origins(fixed, moving)[:ndim, ndim],
                               m2w[:ndim, ndim] - f2w[:ndim, ndim], atol=1e-12)
    for init in (center_of_mass, geometric_centers, origins):
        m = init(fixed, moving)
        np.testing.assert_array_equal(m[:ndim, :ndim], np.eye(ndim))
        np.testing.assert_array_equal(m[ndim], np.eye(ndim + 1)[ndim])
    # uniform images: the centre of mass is the grid centre
    np.testing.assert_allclose(center_of_mass(fixed, moving), geometric_centers(fixed, moving),
                               atol=1e-9)


def test_center_of_mass_real_volume_translated():
    paths = sorted(T1_DIR.glob("*.nii*")) if T1_DIR.is_dir() else []
    if not paths:
        pytest.skip(f"no IXI T1 volumes in {T1_DIR}")
    fixed = parareg.load(paths[0])
    shift = np.array([12.5, -7.25, 3.0])
    world_shift = np.eye(4)
    world_shift[:3, 3] = shift
    moving = Image(fixed.data, world_shift @ fixed.vox2world)
    np.testing.assert_allclose(center_of_mass(fixed, moving)[:3, 3], shift, atol=1e-6)
    np.testing.assert_allclose(geometric_centers(fixed, moving)[:3, 3], shift, atol=1e-9)
    np.testing.assert_allclose(origins(fixed, moving)[:3, 3], shift, atol=1e-9)
    # zero-pad the moving grid unevenly (same world content, shifted): only the
    # centre of mass still recovers the shift
    pad = ((7, 0), (0, 5), (3, 2))
    vox_shift = np.eye(4)
    vox_shift[:3, 3] = [-before for before, _ in pad]
    padded = Image(np.pad(fixed.data, pad), world_shift @ fixed.vox2world @ vox_shift)
    np.testing.assert_allclose(center_of_mass(fixed, padded)[:3, 3], shift, atol=1e-6)
    assert np.linalg.norm(geometric_centers(fixed, padded)[:3, 3] - shift) > 5.0
    assert np.linalg.norm(origins(fixed, padded)[:3, 3] - shift) > 5.0


def test_initialiser_bad_inputs():
    ok = Image(np.ones((5, 6, 7)), np.eye(4))
    with pytest.raises(ValueError, match="fixed is all zero"):
        center_of_mass(Image(np.zeros((5, 6, 7)), np.eye(4)), ok)
    with pytest.raises(ValueError, match="moving has no positive intensity.*geometric_centers"):
        center_of_mass(ok, Image(-np.ones((5, 6, 7)), np.eye(4)))
    with pytest.raises(ValueError, match="same number of dimensions"):
        origins(ok, Image(np.ones((5, 6)), np.eye(3)))
    with pytest.raises(TypeError, match=r"moving is an ndarray without a grid: pass parareg.Image"):
        geometric_centers(ok, np.ones((5, 6, 7)))
