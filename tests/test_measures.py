"""SDlogJ, det J range and HD95 (parareg.measures) against plain NumPy/SciPy and known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.spatial.distance import cdist

from parareg.fields import jacobian_determinant
from parareg.measures import LOG_CLIP, hausdorff95, jacobian_stats


# --- naive twins ---------------------------------------------------------------------------


def numpy_sdlogj(jac, mask):
    v = jac[mask & np.isfinite(jac)].astype(np.float64)
    return np.log(np.clip(v, *LOG_CLIP)).std()


def naive_surface_points(region, spacing):
    """Millimetre coordinates of the voxels of ``region`` with a face neighbour outside it."""
    padded = np.pad(region, 1)
    inner = np.ones_like(region)
    for axis in range(region.ndim):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[(slice(1, -1),) * region.ndim]
    return np.argwhere(region & ~inner) * np.asarray(spacing)


def naive_hd95(fixed, moving, label, spacing):
    f = naive_surface_points(fixed == label, spacing)
    m = naive_surface_points(moving == label, spacing)
    d = cdist(f, m)
    return max(np.percentile(d.min(axis=1), 95), np.percentile(d.min(axis=0), 95))


def blobs(shape, seed, n_labels=4):
    """A label map of smooth random blobs (labels 1..n_labels), some touching the grid's edge."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.normal(size=(n_labels, *shape)), (0, 2, 2, 2)[: len(shape) + 1])
    labels = noise.argmax(axis=0) + 1
    return np.where(noise.max(axis=0) > 0.05, labels, 0).astype(np.int32)


# --- SDlogJ --------------------------------------------------------------------------------


def test_sdlogj_matches_numpy_with_folds_and_nan_and_is_thread_invariant():
    rng = np.random.default_rng(0)
    jac = rng.lognormal(0.0, 0.4, size=(48, 40, 36)).astype(np.float32)  # several work units
    jac[3, :5, 0] = [0.0, -0.5, -3.0, 1e-12, np.nan]  # folds, a tiny value, an undefined voxel
    jac[4, 0, 0] = np.inf
    mask = rng.random(jac.shape) < 0.7
    mask[3, :5, 0] = True
    stats = [jacobian_stats(jac, mask=mask, num_threads=n) for n in (1, 2, 3)]
    assert stats[0] == stats[1] == stats[2]  # identical bits
    s = stats[0]
    keep = mask & np.isfinite(jac)
    assert s.sdlogj == pytest.approx(numpy_sdlogj(jac, mask), rel=1e-12)
    assert s.voxels == int(keep.sum())
    assert (s.min, s.max) == (float(jac[keep].min()), float(jac[keep].max()))
    assert s.folded_percent == pytest.approx(100.0 * 3 / keep.sum())
    whole = jacobian_stats(jac)
    assert whole.sdlogj == pytest.approx(numpy_sdlogj(jac, np.ones(jac.shape, bool)), rel=1e-12)
    empty = jacobian_stats(jac, mask=np.zeros(jac.shape, bool))
    assert empty.voxels == 0 and math.isnan(empty.sdlogj)


def test_sdlogj_of_a_smooth_field_matches_the_analytic_value():
    """u_x = a sin(2 pi i / N): central differences give det J = 1 + b cos(2 pi i / N) exactly,
    b = a sin(2 pi / N) / h; over one period the std of log det J is an integral over theta."""
    n, a, h = 64, 9.0, 2.0
    i = np.arange(n + 2, dtype=np.float64)
    field = np.zeros((n + 2, 6, 5, 3), np.float32)
    field[..., 0] = (a * np.sin(2 * np.pi * i / n))[:, None, None]
    vox2world = np.diag([h, h, h, 1.0])
    jac = jacobian_determinant(field, vox2world=vox2world)
    mask = np.zeros(jac.shape, bool)
    mask[1:n + 1] = True  # one full period; the one-sided edge rows left out
    b = a * np.sin(2 * np.pi / n) / h
    mean = math.log((1 + math.sqrt(1 - b * b)) / 2)
    second = integrate.quad(lambda t: math.log(1 + b * math.cos(t)) ** 2, 0, 2 * np.pi)[0]
    expected = math.sqrt(second / (2 * np.pi) - mean ** 2)
    assert b == pytest.approx(0.441, abs=1e-3)  # a strong but unfolded stretch
    assert jacobian_stats(jac, mask=mask).sdlogj == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("jac, mask, message", [
    (np.ones((4, 4), np.int32), None, "floating-point"),
    (np.ones(4), None, "2D or 3D"),
    (np.ones((4, 4)), np.ones((4, 5), bool), r"mask must have the jacobian's shape \(4, 4\)"),
])
def test_jacobian_stats_bad_input(jac, mask, message):
    with pytest.raises(ValueError, match=message):
        jacobian_stats(jac, mask=mask)


# --- HD95 ----------------------------------------------------------------------------------


def test_hd95_of_shifted_squares_by_hand():
    f = np.zeros((12, 12), np.int32)
    m = np.zeros((12, 12), np.int32)
    f[2:7, 2:7] = 1
    m[2:7, 5:10] = 1  # label 1 shifted by 3 voxels along axis 1
    f[0:3, 10:12] = 2  # label 2 at the grid's corner, not in moving: lost
    hd = hausdorff95(f, m, labels=[1, 2, 3], spacing=(1.0, 0.5))
    assert hd[0] == pytest.approx(1.5)  # 3 voxels of 0.5 mm
    assert hd[1] == pytest.approx(math.hypot(12 * 1.0, 12 * 0.5))  # the grid's diagonal
    assert math.isnan(hd[2])  # in neither map
    assert hausdorff95(f, f, labels=[1, 2], spacing=(1, 1)).tolist() == [0.0, 0.0]


def test_hd95_matches_a_brute_force_twin_and_is_thread_invariant():
    fixed = blobs((20, 18, 16), seed=1)
    moving = blobs((20, 18, 16), seed=2)
    spacing = (1.0, 1.5, 2.0)
    labels = [1, 2, 3, 4]
    runs = [hausdorff95(fixed, moving, labels=labels, spacing=spacing, num_threads=n)
            for n in (1, 2, 3)]
    assert runs[0].tobytes() == runs[1].tobytes() == runs[2].tobytes()
    expected = [naive_hd95(fixed, moving, v, spacing) for v in labels]
    np.testing.assert_allclose(runs[0], expected, rtol=1e-12)
    assert np.all(runs[0] > 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"fixed_labels": np.ones((4, 4))}, "fixed_labels must be a 2D or 3D integer label map"),
    ({"moving_labels": np.ones((4, 5), int)}, r"one shape, got \(4, 4\) and \(4, 5\)"),
    ({"spacing": (1.0,)}, "spacing must be 2 positive voxel sizes in mm"),
    ({"spacing": (1.0, -2.0)}, "spacing must be 2 positive voxel sizes in mm"),
    ({"spacing": (1.0, np.nan)}, "spacing must be 2 positive voxel sizes in mm"),
])
def test_hd95_bad_input(kwargs, message):
    args = {"fixed_labels": np.ones((4, 4), int), "moving_labels": np.ones((4, 4), int),
            "labels": [1], "spacing": (1.0, 1.0), **kwargs}
    with pytest.raises(ValueError, match=message):
        hausdorff95(**args)
