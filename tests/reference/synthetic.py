"""Small synthetic image pairs and matrices shared by the metric tests."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

import parareg


def oblique_grid(ndim: int, seed: int, *, spacing=1.5, offset=-20.0) -> np.ndarray:
    """A vox2world with anisotropic spacing, a little shear and an offset origin."""
    rng = np.random.default_rng(seed)
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = np.diag(spacing * np.linspace(0.8, 1.2, ndim)) \
        + 0.05 * rng.normal(size=(ndim, ndim))
    m[:ndim, ndim] = offset + rng.normal(size=ndim)
    return m


def smooth_random(shape, seed: int, sigma: float = 1.5) -> np.ndarray:
    """Low-pass random intensities in [0, 100], float32."""
    data = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    data = (data - data.min()) / (data.max() - data.min())
    return (100 * data).astype(np.float32)


def synthetic_pair(ndim: int, *, seed: int = 0):
    """A fixed/moving pair on different oblique grids with related, non-linear contrast."""
    fixed_shape = (30, 27, 24)[:ndim] if ndim == 3 else (70, 64)
    moving_shape = (28, 30, 25)[:ndim] if ndim == 3 else (66, 72)
    fixed = parareg.Image(smooth_random(fixed_shape, seed), oblique_grid(ndim, seed))
    base = smooth_random(moving_shape, seed + 1)
    moving = parareg.Image(np.sqrt(base) * 10 + 0.2 * smooth_random(moving_shape, seed + 2),
                           oblique_grid(ndim, seed + 1, spacing=1.4, offset=-19.0))
    return fixed, moving


def near_identity(ndim: int, seed: int = 0, *, degrees: float = 3.0, shift_mm=1.5,
                  center=None) -> np.ndarray:
    """A rotation by ``degrees`` about an oblique axis through ``center``, then a translation."""
    rng = np.random.default_rng(seed)
    if ndim == 3:
        axis = rng.normal(size=3)
        rotation = Rotation.from_rotvec(np.deg2rad(degrees) * axis / np.linalg.norm(axis))
        linear = rotation.as_matrix()
    else:
        a = np.deg2rad(degrees)
        linear = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    center = np.zeros(ndim) if center is None else np.asarray(center, float)
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = linear
    m[:ndim, ndim] = center - linear @ center + shift_mm * rng.uniform(-1, 1, size=ndim)
    return m


def image_center(image) -> np.ndarray:
    """World coordinates of the centre of the voxel grid."""
    return (image.vox2world @ np.r_[(np.array(image.shape) - 1) / 2.0, 1.0])[:-1]


def translation(t) -> np.ndarray:
    t = np.asarray(t, float)
    m = np.eye(len(t) + 1)
    m[:-1, -1] = t
    return m


def finite_difference_cosine(metric, state, matrix, *, step_mm=0.5, radius_mm=100.0):
    """Cosine between the analytic and central-difference matrix gradients.

    Both are expressed per millimetre of displacement: the linear columns are
    scaled by ``radius_mm`` (a unit change of such a parameter moves a point
    ``radius_mm`` away by that many mm), so translation and linear entries
    weigh alike. Returns ``(cosine, |analytic| / |finite difference|)``.
    """
    ndim = state.ndim
    _, grad = metric.value_and_gradient(state, matrix)
    scale = np.array([radius_mm] * ndim + [1.0])
    fd = np.zeros_like(grad)
    for r in range(ndim):
        for c in range(ndim + 1):
            h = step_mm / scale[c]
            plus, minus = matrix.copy(), matrix.copy()
            plus[r, c] += h
            minus[r, c] -= h
            fd[r, c] = (metric.value(state, plus) - metric.value(state, minus)) / (2 * h)
    a = (grad * scale).ravel()
    b = (fd * scale).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), float(
        np.linalg.norm(a) / np.linalg.norm(b))


def central_box(shape, margin: int) -> np.ndarray:
    """Boolean mask of the grid minus ``margin`` voxels on every side."""
    mask = np.zeros(shape, bool)
    mask[tuple(slice(margin, n - margin) for n in shape)] = True
    return mask


def inner_overlap_mask(fixed, moving, margin: int) -> np.ndarray:
    """Fixed voxels that map (at the identity) at least ``margin`` voxels inside ``moving``.

    Dense samples restricted to this mask never enter or leave the moving
    image under small perturbations, so the metric is differentiable there.
    """
    ndim = fixed.ndim
    vox = np.stack(np.meshgrid(*[np.arange(n) for n in fixed.shape], indexing="ij"), axis=-1)
    fixed_vox2moving_vox = moving.world2vox @ fixed.vox2world
    y = vox @ fixed_vox2moving_vox[:ndim, :ndim].T + fixed_vox2moving_vox[:ndim, ndim]
    upper = np.array(moving.shape) - 1 - margin
    return np.all((y >= margin) & (y <= upper), axis=-1)
