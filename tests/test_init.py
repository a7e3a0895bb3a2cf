"""Robust starts (registration/initialise.py, transforms/init.py): principal axes against NumPy,
the rotation grid's coverage, the search recovering 120 degrees in 2D and 3D at identical bits on
1, 2 and 3 threads, the search as register's default start (the com result, bit for bit, where the
centres of mass suit), the shared pyramid level, the field-of-view-aware start, and the wrong-basin
check."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import parareg
from parareg import Image
from parareg.registration import initialise
from parareg.registration.initialise import WrongBasinWarning, check_basin, initial_search
from parareg.registration.pyramid import pyramid_level, shared_levels
from parareg.transforms.init import (ICOSAHEDRAL_COVERING_DEG, center_of_mass, principal_axes,
                                     principal_axes_alignments, rotation_grid)
from parareg.transforms.linear import _rotvec_to_matrix

from ._data import IXI_T1, MINDBOGGLE, needs_data


def moved(image: Image, rotation: np.ndarray, shift) -> tuple[Image, np.ndarray]:
    """``image`` with its header rotated about its centre and shifted (no resampling), and the
    true fixed-world -> moving-world matrix when ``image`` itself is the fixed image."""
    n = image.ndim
    center = image.vox2world[:n, :n] @ ((np.asarray(image.shape) - 1) / 2) + image.vox2world[:n, n]
    q = np.eye(n + 1)
    q[:n, :n] = rotation
    q[:n, n] = center + np.asarray(shift, dtype=np.float64) - rotation @ center
    return Image(image.data, q @ image.vox2world), q


def mean_error(a, b, image: Image) -> float:
    """Mean distance (mm) between ``a`` and ``b`` over the bright voxels of ``image``."""
    n = image.ndim
    index = np.argwhere(image.data > 0.2 * np.percentile(image.data, 99)).astype(np.float64)
    points = index @ image.vox2world[:n, :n].T + image.vox2world[:n, n]
    diff = points @ (a[:n, :n] - b[:n, :n]).T + (a[:n, n] - b[:n, n])
    return float(np.linalg.norm(diff, axis=1).mean())


def angle(degrees):
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


# ---------------------------------------------------------------------------------------------
# pure geometry


def test_principal_axes_match_numpy():
    rng = np.random.default_rng(3)
    data = np.zeros((14, 11, 9), np.float32)
    data[2:12, 3:9, 2:7] = rng.random((10, 6, 5)).astype(np.float32)
    data[4, 4, 4] = -5.0  # negative intensities weigh nothing
    vox2world = np.array([[0.0, 1.5, 0.2, -10], [2.0, 0.0, 0.0, 5], [0.1, 0.0, 3.0, 2],
                          [0, 0, 0, 1]])
    image = Image(data, vox2world)
    center, axes, variances = principal_axes(image)
    index = np.argwhere(np.ones(data.shape, bool)).astype(np.float64)
    points = index @ vox2world[:3, :3].T + vox2world[:3, 3]
    weights = np.clip(data.reshape(-1).astype(np.float64), 0, None)
    expected_center = np.average(points, axis=0, weights=weights)
    cov = np.cov(points.T, aweights=weights, bias=True)
    expected_var, expected_axes = np.linalg.eigh(cov)
    np.testing.assert_allclose(center, expected_center, rtol=0, atol=1e-9)
    np.testing.assert_allclose(variances, expected_var[::-1], rtol=1e-9)
    # axes up to sign: the projectors agree
    for k in range(3):
        np.testing.assert_allclose(np.outer(axes[:, k], axes[:, k]),
                                   np.outer(expected_axes[:, 2 - k], expected_axes[:, 2 - k]),
                                   atol=1e-9)
    assert np.linalg.det(axes) == pytest.approx(1.0)


def test_principal_axes_alignments_hold_the_true_rotation():
    rng = np.random.default_rng(1)
    data = np.zeros((20, 16, 12), np.float32)
    data[3:17, 4:12, 3:9] = 1.0 + rng.random((14, 8, 6)).astype(np.float32)
    fixed = Image(data, np.eye(4))
    moving, truth = moved(fixed, _rotvec_to_matrix(np.array([0.3, -1.2, 2.0])), [4.0, -3, 2])
    candidates = principal_axes_alignments(fixed, moving)
    assert len(candidates) == 4
    assert min(mean_error(c, truth, fixed) for c in candidates) < 1e-6


def test_rotation_grid_covers_every_rotation():
    grid = np.stack(rotation_grid(3))
    assert len(grid) == 72 and np.array_equal(grid[0], np.eye(3))
    assert any(np.allclose(r, [[0, -1, 0], [1, 0, 0], [0, 0, 1]]) for r in grid)  # 90 deg
    rng = np.random.default_rng(0)
    quaternions = rng.normal(size=(2000, 4))
    quaternions /= np.linalg.norm(quaternions, axis=1, keepdims=True)
    worst = 0.0
    for w, x, y, z in quaternions:
        r = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        cosines = (np.einsum("kab,ab->k", grid, r) - 1) / 2
        worst = max(worst, np.rad2deg(np.arccos(np.clip(cosines.max(), -1, 1))))
    assert worst < ICOSAHEDRAL_COVERING_DEG
    assert len(rotation_grid(2, step_deg=30.0)) == 12
    with pytest.raises(ValueError, match="step_deg"):
        rotation_grid(3, step_deg=0.0)


def test_initial_search_refuses_bad_values():
    image = Image(np.random.default_rng(0).random((16, 16)).astype(np.float32), np.eye(3))
    with pytest.raises(ValueError, match="method must be one of.*moments.*search"):
        initial_search(image, image, method="spiral")
    with pytest.raises(ValueError, match="factor must be an integer >= 1"):
        initial_search(image, image, level=(0, 1.0))
    with pytest.raises(ValueError, match="level must be a"):
        initial_search(image, image, level=3)


# ---------------------------------------------------------------------------------------------
# the search on real images


@pytest.fixture(scope="module")
def slice_2d():
    return parareg.load(MINDBOGGLE[0])


@pytest.fixture(scope="module")
def ixi_4mm():
    image = parareg.load(IXI_T1[0])
    return pyramid_level(image, factor=2, sigma=1.0)


#: the small 3D volume's pyramid: the search runs at its coarsest level (8 mm)
LEVELS_3D = ((2, 1.0, 30), (1, 0.0, 15))


@needs_data
def test_search_recovers_120_degrees_in_2d_at_identical_bits(slice_2d):
    moving, truth = moved(slice_2d, angle(120.0), [8.0, -6.0])
    com = parareg.register(slice_2d, moving, transform="rigid", initial_transform="com")
    assert mean_error(com.affine.matrix, truth, slice_2d) > 10.0  # the default start fails
    results = [parareg.register(slice_2d, moving, transform="rigid", initial_transform="search",
                                num_threads=n).affine.matrix for n in (1, 2, 3)]
    assert mean_error(results[0], truth, slice_2d) < 1.0
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    # the search is register's default start; an affine_options pipeline keeps its own start
    default = parareg.register(slice_2d, moving, transform="rigid", num_threads=2)
    np.testing.assert_array_equal(default.affine.matrix, results[0])
    own = parareg.register(slice_2d, moving, transform="rigid", affine_options={
        "pipeline": ("center_of_mass", "translation", "rigid")})
    np.testing.assert_array_equal(own.affine.matrix, com.affine.matrix)


@needs_data
def test_search_recovers_120_degrees_in_3d_at_identical_bits(ixi_4mm):
    rotation = _rotvec_to_matrix(np.deg2rad(120.0) * np.array([1.0, 1.0, 0.0]) / np.sqrt(2))
    moving, truth = moved(ixi_4mm, rotation, [10.0, 0.0, -5.0])
    searches = [initial_search(ixi_4mm, moving, level=(2, 1.0), num_threads=n)
                for n in (1, 2, 3)]
    for other in searches[1:]:
        np.testing.assert_array_equal(other.best.matrix, searches[0].best.matrix)
        assert [s.value for s in other.starts] == [s.value for s in searches[0].starts]
    assert mean_error(searches[0].best.matrix, truth, ixi_4mm) < 8.0
    results = [parareg.register(ixi_4mm, moving, transform="rigid", initial_transform="search",
                                affine_options={"levels": LEVELS_3D}, num_threads=n).affine.matrix
               for n in (1, 2, 3)]
    assert mean_error(results[0], truth, ixi_4mm) < 2.0
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


@needs_data
def test_search_on_an_unrotated_pair_starts_exactly_at_the_centres_of_mass(slice_2d):
    other = parareg.load(MINDBOGGLE[1])
    com = parareg.register(slice_2d, other, transform="rigid", initial_transform="com")
    search = parareg.register(slice_2d, other, transform="rigid")  # the default start
    assert search.affine.history[0]["stage"] == "search"
    np.testing.assert_array_equal(search.affine.matrix, com.affine.matrix)


@needs_data
def test_shared_levels_build_each_level_once(ixi_4mm):
    fresh = pyramid_level(ixi_4mm, factor=2, sigma=1.0, num_threads=1)
    with shared_levels():
        first = pyramid_level(ixi_4mm, factor=2, sigma=1.0)
        assert pyramid_level(ixi_4mm, factor=2, sigma=1.0, num_threads=3) is first
        assert pyramid_level(ixi_4mm, factor=2, sigma=0.5) is not first
    np.testing.assert_array_equal(first.data, fresh.data)
    assert pyramid_level(ixi_4mm, factor=2, sigma=1.0) is not first  # outside: built anew


@needs_data
def test_field_of_view_aware_start_on_a_cropped_image(ixi_4mm):
    # keep the top 60 % of the slices along S (IXI is PSR: axis 1 runs inferior -> superior)
    n = ixi_4mm.shape[1]
    keep = int(round(0.6 * n))
    offset = np.eye(4)
    offset[1, 3] = n - keep
    cropped = Image(np.ascontiguousarray(ixi_4mm.data[:, n - keep:, :]),
                    ixi_4mm.vox2world @ offset)
    truth = np.eye(4)  # same world: cropping keeps every voxel where it was
    com = center_of_mass(ixi_4mm, cropped)
    assert mean_error(com, truth, cropped) > 10.0  # the centres of mass are fooled
    search = initial_search(ixi_4mm, cropped, level=(2, 1.0))
    assert mean_error(search.best.matrix, truth, cropped) < 4.0


@needs_data
def test_wrong_basin_is_detected_retried_and_warned(slice_2d, monkeypatch):
    moving, truth = moved(slice_2d, angle(120.0), [0.0, 0.0])
    search = initial_search(slice_2d, moving)
    assert check_basin(search, search.best.matrix) is None
    wrong = search.score(search.best.matrix @ np.linalg.inv(moved(slice_2d, angle(90.0),
                                                                  [0, 0])[1]))
    assert check_basin(search, wrong.matrix) is not None
    # a search whose best start is the wrong one: "search" retries, "moments" warns
    doctored = dataclasses.replace(search, starts=(wrong, *search.starts))
    monkeypatch.setattr(initialise, "initial_search", lambda *a, **k: doctored)
    with warnings.catch_warnings():
        warnings.simplefilter("error", WrongBasinWarning)
        retried = parareg.register(slice_2d, moving, transform="rigid", initial_transform="search")
    assert retried.affine.history[0]["retried"]
    assert mean_error(retried.affine.matrix, truth, slice_2d) < 1.0
    doctored = dataclasses.replace(doctored, method="moments")
    with pytest.warns(WrongBasinWarning, match="wrong basin"):
        warned = parareg.register(slice_2d, moving, transform="rigid",
                                  initial_transform="moments")
    assert mean_error(warned.affine.matrix, truth, slice_2d) > 10.0
