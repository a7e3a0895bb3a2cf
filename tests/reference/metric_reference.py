"""Plain NumPy/SciPy twins of the affine metrics (Mattes MI, mean squares, correlation).

Written for clarity, not speed: SciPy interpolation, ``np.add.at`` for the
histogram, explicit loops over bins, and the cubic B-spline in its
truncated-power form (an independent formula from the kernels' piecewise one).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _plus(u, power):
    return np.where(u > 0, u, 0.0) ** power


def bspline3(u):
    """Cubic B-spline as a sum of truncated powers."""
    u = np.asarray(u, dtype=np.float64)
    return (_plus(u + 2, 3) - 4 * _plus(u + 1, 3) + 6 * _plus(u, 3) - 4 * _plus(u - 1, 3)
            + _plus(u - 2, 3)) / 6.0


def bspline3_derivative(u):
    u = np.asarray(u, dtype=np.float64)
    return (_plus(u + 2, 2) - 4 * _plus(u + 1, 2) + 6 * _plus(u, 2) - 4 * _plus(u - 1, 2)
            + _plus(u - 2, 2)) / 2.0


def world_gradient(image):
    """np.gradient in voxel units mapped to world axes, shape (*shape, ndim)."""
    ndim = image.ndim
    vox = np.stack(np.gradient(image.data.astype(np.float64)), axis=-1)
    return vox @ np.linalg.inv(image.vox2world[:ndim, :ndim])


def interpolant_gradient(moving, y):
    """Exact derivative of the linear interpolant of ``moving`` at voxel points ``y`` (world)."""
    ndim = moving.ndim
    img = moving.data.astype(np.float64)
    shape = np.array(img.shape)
    lower = np.clip(np.floor(y).astype(int), 0, np.maximum(shape - 2, 0))
    frac = y - lower
    grad_vox = np.zeros_like(y)
    for corner in np.ndindex(*(2,) * ndim):
        corner = np.array(corner)
        idx = np.minimum(lower + corner, shape - 1)
        value = img[tuple(idx.T)]
        weights = np.where(corner == 1, frac, 1 - frac)
        for axis in range(ndim):
            w = np.prod(np.delete(weights, axis, axis=1), axis=1)
            sign = 1.0 if corner[axis] == 1 else -1.0
            if shape[axis] > 1:
                grad_vox[:, axis] += sign * value * w
    return grad_vox @ np.linalg.inv(moving.vox2world[:ndim, :ndim])


def samples(fixed, moving, fixed2moving, sample_index, moving_mask=None,
            moving_gradient="image"):
    """Per-sample fixed values, world points, moving values and gradients (valid samples only)."""
    ndim = fixed.ndim
    vox = np.stack(np.unravel_index(np.asarray(sample_index), fixed.shape), axis=1).astype(float)
    homog = np.concatenate([vox, np.ones((len(vox), 1))], axis=1)
    world = homog @ fixed.vox2world.T
    fixed2moving_vox = moving.world2vox @ np.asarray(fixed2moving, float) @ fixed.vox2world
    y = homog @ fixed2moving_vox.T
    y = y[:, :ndim]
    upper = np.array(moving.shape) - 1
    valid = np.all((y >= 0) & (y <= upper), axis=1)
    if moving_mask is not None:
        nearest = np.clip(np.floor(y + 0.5).astype(int), 0, upper)
        valid &= np.asarray(moving_mask)[tuple(nearest.T)] != 0
    y = y[valid]
    m = ndimage.map_coordinates(moving.data.astype(np.float64), y.T, order=1, mode="nearest")
    if moving_gradient == "interpolant":
        g = interpolant_gradient(moving, y)
    else:
        g_img = world_gradient(moving)
        g = np.stack([ndimage.map_coordinates(g_img[..., c], y.T, order=1, mode="nearest")
                      for c in range(ndim)], axis=1)
    f = fixed.data.reshape(-1)[np.asarray(sample_index)].astype(np.float64)[valid]
    return f, world[valid], m, g


def _range(image, mask):
    data = image.data if mask is None else image.data[np.asarray(mask) != 0]
    return float(data.min()), float(data.max())


def mattes_mi(fixed, moving, fixed2moving, sample_index, *, bins=32, fixed_mask=None,
              moving_mask=None, moving_gradient="image"):
    """(-MI, d(-MI)/d fixed2moving[:ndim], number of valid samples)."""
    f, world, m, g = samples(fixed, moving, fixed2moving, sample_index, moving_mask,
                             moving_gradient)
    n = len(f)
    flo, fhi = _range(fixed, fixed_mask)
    mlo, mhi = _range(moving, moving_mask)
    fsize = (fhi - flo) / (bins - 4)
    msize = (mhi - mlo) / (bins - 4)
    fbin = np.clip(np.floor(f / fsize - (flo / fsize - 2)), 2, bins - 3).astype(int)
    inside = (m >= mlo) & (m <= mhi)
    mc = np.clip(m, mlo, mhi)
    t = mc / msize - (mlo / msize - 2)
    b = np.clip(np.floor(t), 2, bins - 3).astype(int)
    hist = np.zeros((bins, bins))
    for offset in (-1, 0, 1, 2):
        np.add.at(hist, (fbin, b + offset), bspline3(b + offset - t))
    p = hist / n
    pf = p.sum(axis=1)
    pm = p.sum(axis=0)
    mi = 0.0
    ratio = np.zeros((bins, bins))
    for i in range(bins):
        for k in range(bins):
            if p[i, k] > 1e-16:
                mi += p[i, k] * np.log(p[i, k] / (pf[i] * pm[k]))
                ratio[i, k] = np.log(p[i, k] / pm[k])
    slope = np.zeros(n)
    for offset in (-1, 0, 1, 2):
        slope += ratio[fbin, b + offset] * bspline3_derivative(b + offset - t)
    dvalue_dm = np.where(inside, slope, 0.0) / (n * msize)
    homog = world  # (x, 1), the homogeneous fixed world points
    grad = np.einsum("n,ni,nj->ij", dvalue_dm, g, homog)
    return -mi, grad, n


def mean_squares(fixed, moving, fixed2moving, sample_index, *, moving_mask=None,
                 moving_gradient="image"):
    f, world, m, g = samples(fixed, moving, fixed2moving, sample_index, moving_mask,
                             moving_gradient)
    n = len(f)
    d = m - f
    homog = world  # (x, 1), the homogeneous fixed world points
    return np.mean(d * d), 2.0 / n * np.einsum("n,ni,nj->ij", d, g, homog), n


def correlation(fixed, moving, fixed2moving, sample_index, *, moving_mask=None,
                moving_gradient="image"):
    f, world, m, g = samples(fixed, moving, fixed2moving, sample_index, moving_mask,
                             moving_gradient)
    n = len(f)
    a = f - f.mean()
    b = m - m.mean()
    sff, smm, sfm = a @ a, b @ b, a @ b
    ncc = sfm / np.sqrt(sff * smm)
    dncc_dm = a / np.sqrt(sff * smm) - sfm * b / (np.sqrt(sff) * smm ** 1.5)
    homog = world  # (x, 1), the homogeneous fixed world points
    return -ncc, -np.einsum("n,ni,nj->ij", dncc_dm, g, homog), n
