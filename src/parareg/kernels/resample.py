"""Resampling through an affine and warping through a displacement field.

Every kernel fills output rows ``out[start:stop]`` (a slab along axis 0)
and touches nothing else, so slabs run in parallel without sharing state.
``nearest`` selects nearest-neighbour instead of linear interpolation (see
:mod:`parareg.kernels.interp` for the boundary conventions).
"""

from __future__ import annotations

from numba import njit

from .interp import linear_2d, linear_3d, nearest_2d, nearest_3d


@njit(nogil=True, cache=True)
def resample_affine_3d(moving, out2moving_vox, nearest, out, start, stop):
    """``out[i, j, k] = moving(out2moving_vox @ (i, j, k, 1))`` for ``start <= i < stop``."""
    m = out2moving_vox
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            bx = m[0, 0] * i + m[0, 1] * j + m[0, 3]
            by = m[1, 0] * i + m[1, 1] * j + m[1, 3]
            bz = m[2, 0] * i + m[2, 1] * j + m[2, 3]
            for k in range(nz):
                x = bx + m[0, 2] * k
                y = by + m[1, 2] * k
                z = bz + m[2, 2] * k
                if nearest:
                    out[i, j, k] = nearest_3d(moving, x, y, z)
                else:
                    out[i, j, k] = linear_3d(moving, x, y, z)


@njit(nogil=True, cache=True)
def resample_affine_2d(moving, out2moving_vox, nearest, out, start, stop):
    """``out[i, j] = moving(out2moving_vox @ (i, j, 1))`` for ``start <= i < stop``."""
    m = out2moving_vox
    ny = out.shape[1]
    for i in range(start, stop):
        for j in range(ny):
            x = m[0, 0] * i + m[0, 1] * j + m[0, 2]
            y = m[1, 0] * i + m[1, 1] * j + m[1, 2]
            if nearest:
                out[i, j] = nearest_2d(moving, x, y)
            else:
                out[i, j] = linear_2d(moving, x, y)


@njit(nogil=True, cache=True)
def warp_3d(moving, field, out_vox2world, world2moving_vox, nearest, out, start, stop):
    """``out[p] = moving(world2moving_vox @ (out_vox2world @ p + field[p]))`` for rows ``start:stop``.

    ``field`` has shape ``(*out.shape, 3)``: displacements in world millimetres.
    """
    a = out_vox2world
    m = world2moving_vox
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                wx = a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3] + field[i, j, k, 0]
                wy = a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3] + field[i, j, k, 1]
                wz = a[2, 0] * i + a[2, 1] * j + a[2, 2] * k + a[2, 3] + field[i, j, k, 2]
                x = m[0, 0] * wx + m[0, 1] * wy + m[0, 2] * wz + m[0, 3]
                y = m[1, 0] * wx + m[1, 1] * wy + m[1, 2] * wz + m[1, 3]
                z = m[2, 0] * wx + m[2, 1] * wy + m[2, 2] * wz + m[2, 3]
                if nearest:
                    out[i, j, k] = nearest_3d(moving, x, y, z)
                else:
                    out[i, j, k] = linear_3d(moving, x, y, z)


@njit(nogil=True, cache=True)
def warp_2d(moving, field, out_vox2world, world2moving_vox, nearest, out, start, stop):
    """2D twin of :func:`warp_3d`; ``field`` has shape ``(*out.shape, 2)``."""
    a = out_vox2world
    m = world2moving_vox
    ny = out.shape[1]
    for i in range(start, stop):
        for j in range(ny):
            wx = a[0, 0] * i + a[0, 1] * j + a[0, 2] + field[i, j, 0]
            wy = a[1, 0] * i + a[1, 1] * j + a[1, 2] + field[i, j, 1]
            x = m[0, 0] * wx + m[0, 1] * wy + m[0, 2]
            y = m[1, 0] * wx + m[1, 1] * wy + m[1, 2]
            if nearest:
                out[i, j] = nearest_2d(moving, x, y)
            else:
                out[i, j] = linear_2d(moving, x, y)
