"""Resampling through an affine and warping through a displacement field.

Every kernel fills output rows ``out[start:stop]`` (a slab along axis 0)
and touches nothing else, so slabs run in parallel without sharing state.
``nearest`` selects nearest-neighbour instead of linear interpolation (see
:mod:`parareg.kernels.interp` for the boundary conventions). Arrays are 3D;
a 2D image is ``(X, Y, 1)`` with 4 x 4 matrices whose third axis is the
identity, and its field ``(X, Y, 1, 2)``.
"""

from __future__ import annotations

from ._jit import kernel
from .interp import linear_3d, nearest_3d
from .stencil import load_vector


@kernel
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


@kernel
def warp_3d(moving, field, out_vox2world, world2moving_vox, nearest, out, start, stop):
    """``out[p] = moving(world2moving_vox @ (out_vox2world @ p + field[p]))`` for rows ``start:stop``.

    ``field`` has shape ``(*out.shape, 3)`` (``(X, Y, 1, 2)`` in 2D):
    displacements in world millimetres.
    """
    a = out_vox2world
    m = world2moving_vox
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                dx, dy, dz = load_vector(field, i, j, k)
                wx = a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3] + dx
                wy = a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3] + dy
                wz = a[2, 0] * i + a[2, 1] * j + a[2, 2] * k + a[2, 3] + dz
                x = m[0, 0] * wx + m[0, 1] * wy + m[0, 2] * wz + m[0, 3]
                y = m[1, 0] * wx + m[1, 1] * wy + m[1, 2] * wz + m[1, 3]
                z = m[2, 0] * wx + m[2, 1] * wy + m[2, 2] * wz + m[2, 3]
                if nearest:
                    out[i, j, k] = nearest_3d(moving, x, y, z)
                else:
                    out[i, j, k] = linear_3d(moving, x, y, z)
