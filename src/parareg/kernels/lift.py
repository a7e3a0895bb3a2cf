"""The one 2D strategy: every kernel is 3D, and a 2D problem is lifted to a 1-voxel-thick 3D one.

A 2D image ``(X, Y)`` is passed as the view ``(X, Y, 1)``, a 2D vector field
``(X, Y, 2)`` as ``(X, Y, 1, 2)`` (still 2 components: kernels read and
write ``field.shape[3]`` of them) and a homogeneous 3 x 3 matrix as the
4 x 4 one whose third axis is the identity. On the 1-voxel axis the only
coordinate is 0, where linear and nearest interpolation and the
finite-difference stencil reduce exactly to their 2D forms (see
:mod:`parareg.kernels.interp` and :mod:`parareg.kernels.stencil`), so one
kernel serves both dimensions and compiles once.

These are NumPy helpers for the drivers; they never copy an array.
"""

from __future__ import annotations

import numpy as np


def lift_array(a: np.ndarray, ndim: int) -> np.ndarray:
    """``a`` (shape ``(*grid, ...)``, ``grid`` of ``ndim`` axes) as a view with a 3D grid."""
    if ndim == 3:
        return a
    return a.reshape(a.shape[:2] + (1,) + a.shape[2:])


def lift_affine(matrix: np.ndarray) -> np.ndarray:
    """A homogeneous ``(ndim + 1, ndim + 1)`` matrix as a C-contiguous float64 4 x 4 one."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (4, 4):
        return np.ascontiguousarray(m)
    out = np.eye(4)
    out[:2, :2] = m[:2, :2]
    out[:2, 3] = m[:2, 2]
    return out


def lift_linear(matrix: np.ndarray) -> np.ndarray:
    """A linear ``(ndim, ndim)`` matrix as a C-contiguous float64 3 x 3 one."""
    m = np.asarray(matrix, dtype=np.float64)
    out = np.eye(3)
    out[:m.shape[0], :m.shape[1]] = m
    return out
