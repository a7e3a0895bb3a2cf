"""Plain NumPy/SciPy twins of the displacement-field kernels (``parareg.kernels.fields``).

Written for clarity, not speed, in float64: interpolation is
``scipy.ndimage.map_coordinates(order=1, mode="constant", cval=0)`` per
component, derivatives are ``numpy.gradient`` and determinants
``numpy.linalg.det`` -- independent of the kernels' formulas.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def grid_world(shape, vox2world):
    """World coordinates of every voxel, shape ``(*shape, ndim)``."""
    ndim = len(shape)
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape],
                               indexing="ij"), axis=-1)
    return idx @ vox2world[:ndim, :ndim].T + vox2world[:ndim, ndim]


def world_to_vox(points, vox2world):
    """Voxel coordinates of world points ``(..., ndim)``, returned as ``(ndim, ...)``."""
    ndim = points.shape[-1]
    world2vox = np.linalg.inv(vox2world)
    vox = points @ world2vox[:ndim, :ndim].T + world2vox[:ndim, ndim]
    return np.moveaxis(vox, -1, 0)


def sample_field(field, vox_coords):
    """Each component of ``field`` at voxel coordinates ``(ndim, ...)``; 0 outside the grid."""
    field = np.asarray(field, dtype=np.float64)
    return np.stack([ndimage.map_coordinates(field[..., c], vox_coords, order=1,
                                             mode="constant", cval=0.0)
                     for c in range(field.shape[-1])], axis=-1)


def sample_coords(inner, vox2world):
    """Voxel coordinates ``(ndim, *grid)`` of ``x + inner(x)`` for every grid point ``x``.

    Formed as ``p + inv(A) @ inner(p)`` (``A`` the linear part of
    ``vox2world``), which equals ``world2vox @ (vox2world @ p + inner(p))``
    but keeps a zero displacement exactly on its grid point: a round trip
    through world coordinates can put an edge voxel 1e-15 outside the grid,
    where the zero-outside convention flips its value.
    """
    inner = np.asarray(inner, dtype=np.float64)
    ndim = inner.shape[-1]
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in inner.shape[:-1]],
                               indexing="ij"), axis=-1)
    vox = idx + inner @ np.linalg.inv(vox2world[:ndim, :ndim]).T
    return np.moveaxis(vox, -1, 0)


def sample_coords_via_world(inner, vox2world):
    """As :func:`sample_coords`, through explicit world points (for an independent check)."""
    inner = np.asarray(inner, dtype=np.float64)
    return world_to_vox(grid_world(inner.shape[:-1], vox2world) + inner, vox2world)


def compose(outer, inner, vox2world):
    """``inner(x) + outer(x + inner(x))`` at every grid point, float64."""
    return np.asarray(inner, np.float64) + sample_field(outer, sample_coords(inner, vox2world))


def invert(field, vox2world, iterations, initial=None):
    """``iterations`` plain fixed-point steps ``v <- -u(x + v)``; float64 throughout.

    Returns the final ``v`` and the list of (mean, max) residual norms of
    ``v_0, ..., v_iterations``.
    """
    v = np.zeros(field.shape) if initial is None else np.asarray(initial, np.float64).copy()
    history = []
    for step in range(iterations + 1):
        norms = np.linalg.norm(compose(field, v, vox2world), axis=-1)
        history.append((norms.mean(), norms.max()))
        if step < iterations:
            v = -sample_field(field, sample_coords(v, vox2world))
    return v, history


def jacobian_determinant(field, vox2world):
    """``det(I + du/dx)`` with ``numpy.gradient`` derivatives chained to world axes."""
    ndim = field.shape[-1]
    field = np.asarray(field, dtype=np.float64)
    # du_c / dp_a, shape (*grid, ndim [c], ndim [a])
    du_dp = np.stack([np.stack(np.gradient(field[..., c]), axis=-1) for c in range(ndim)],
                     axis=-2)
    du_dx = du_dp @ np.linalg.inv(vox2world[:ndim, :ndim])
    return np.linalg.det(np.eye(ndim) + du_dx)


def inverse_consistency_error(forward, backward, vox2world, mask=None):
    """Mean and max of the pooled norms of both compositions, over ``mask``."""
    a = np.linalg.norm(compose(forward, backward, vox2world), axis=-1)
    b = np.linalg.norm(compose(backward, forward, vox2world), axis=-1)
    if mask is not None:
        a, b = a[mask != 0], b[mask != 0]
    both = np.concatenate([a.ravel(), b.ravel()])
    return both.mean(), both.max()


def smooth_field(field, sigma_vox, truncate=4.0):
    """``scipy.ndimage.gaussian_filter`` on each component, float32."""
    return np.stack([ndimage.gaussian_filter(np.asarray(field[..., c], np.float32), sigma_vox,
                                             output=np.float32, truncate=truncate)
                     for c in range(field.shape[-1])], axis=-1)
