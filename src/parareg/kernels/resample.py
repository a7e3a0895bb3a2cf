"""Resampling through an affine and warping through a displacement field.

Every kernel fills output rows ``out[start:stop]`` (a slab along axis 0)
and touches nothing else, so slabs run in parallel without sharing state.
``method`` selects the interpolator by its code below (see
:mod:`parareg.kernels.interp` and :mod:`parareg.kernels.interp_itk` for the
rules). Two kernels per mapping keep the compile of the common case small:
``resample_affine_3d`` / ``warp_3d`` (linear and nearest, the ones
registration runs) and ``resample_affine_itk_3d`` / ``warp_itk_3d`` (the
other interpolators, compiled only when asked for; ``params`` holds the
Gaussian's scales and cutoffs). Arrays are 3D; a 2D image is ``(X, Y, 1)``
with 4 x 4 matrices whose third axis is the identity, and its field
``(X, Y, 1, 2)``.
"""

from __future__ import annotations

import numpy as np

from ._jit import helper, inline_helper, kernel
from .interp import linear_3d, lower_corner, nearest_3d, trilinear_component
from .interp_itk import (MAX_TAPS, bspline3_3d, clamped_corner, gaussian_3d, inside, label_3d,
                         lanczos_3d, linear_clamped_3d)
from .stencil import load_vector

#: the registration kernels' linear: 0 outside ``[0, n - 1]`` ("zero outside")
LINEAR_ZERO_OUTSIDE = 0
#: ``floor(x + 0.5)``, 0 outside ``[-0.5, n - 0.5)`` (ITK's rule too)
NEAREST = 1
#: the rest follow ITK: 0 outside ``[-0.5, n - 0.5)``, see :mod:`parareg.kernels.interp_itk`
LINEAR = 2
#: GenericLabel on an image of label ranks; writes rank + 1 (0 outside)
LABEL = 3
#: cubic B-spline on prefiltered coefficients
BSPLINE = 4
GAUSSIAN = 5
LANCZOS = 6
#: the codes ``resample_affine_itk_3d`` / ``warp_itk_3d`` take; the others take the rest
ITK_KERNEL_METHODS = (LABEL, BSPLINE, GAUSSIAN, LANCZOS)


@inline_helper
def affine_point(m, i, j, k):
    """``m @ (i, j, k, 1)`` (the row part first, so loops hoist it)."""
    x = (m[0, 0] * i + m[0, 1] * j + m[0, 3]) + m[0, 2] * k
    y = (m[1, 0] * i + m[1, 1] * j + m[1, 3]) + m[1, 2] * k
    z = (m[2, 0] * i + m[2, 1] * j + m[2, 3]) + m[2, 2] * k
    return x, y, z


@inline_helper
def warp_point(field, a, m, i, j, k):
    """``m @ (a @ (i, j, k, 1) + field[i, j, k])``: a displaced voxel in moving voxels."""
    dx, dy, dz = load_vector(field, i, j, k)
    wx = a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3] + dx
    wy = a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3] + dy
    wz = a[2, 0] * i + a[2, 1] * j + a[2, 2] * k + a[2, 3] + dz
    x = m[0, 0] * wx + m[0, 1] * wy + m[0, 2] * wz + m[0, 3]
    y = m[1, 0] * wx + m[1, 1] * wy + m[1, 2] * wz + m[1, 3]
    z = m[2, 0] * wx + m[2, 1] * wy + m[2, 2] * wz + m[2, 3]
    return x, y, z


@inline_helper
def sample(img, method, x, y, z):
    """``img`` at ``(x, y, z)`` by ``LINEAR_ZERO_OUTSIDE``, ``NEAREST`` or ``LINEAR``."""
    if method == NEAREST:
        return nearest_3d(img, x, y, z)
    if method == LINEAR_ZERO_OUTSIDE:
        return linear_3d(img, x, y, z)
    if not inside(img, x, y, z):
        return 0.0
    return linear_clamped_3d(img, x, y, z)


@inline_helper
def sample_itk(img, method, params, scratch, x, y, z):
    """``img`` at ``(x, y, z)`` by one of ``ITK_KERNEL_METHODS``; 0 outside ``[-0.5, n - 0.5)``."""
    if not inside(img, x, y, z):
        return 0.0
    if method == LABEL:
        return label_3d(img, x, y, z) + 1
    if method == BSPLINE:
        return bspline3_3d(img, x, y, z)
    if method == GAUSSIAN:
        return gaussian_3d(img, params, scratch, x, y, z)
    return lanczos_3d(img, scratch, x, y, z)


@kernel
def resample_affine_3d(moving, out2moving_vox, method, out, start, stop):
    """``out[i, j, k] = moving(out2moving_vox @ (i, j, k, 1))`` for ``start <= i < stop``."""
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                x, y, z = affine_point(out2moving_vox, i, j, k)
                out[i, j, k] = sample(moving, method, x, y, z)


@helper
def field_corners(field, method, x, y, z):
    """Whether ``field`` (``(X, Y, Z, nd)``) is sampled at ``(x, y, z)`` by ``method``, and the
    corners and weights there: ``LINEAR_ZERO_OUTSIDE`` as :func:`linear_3d`, ``LINEAR`` as
    :func:`inside` with :func:`linear_clamped_3d` (10 values)."""
    nx, ny, nz, _ = field.shape
    if method == LINEAR_ZERO_OUTSIDE:
        if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1 and 0.0 <= z <= nz - 1):
            return False, 0, 0, 0.0, 0, 0, 0.0, 0, 0, 0.0
        i0, i1, fx = lower_corner(x, nx)
        j0, j1, fy = lower_corner(y, ny)
        k0, k1, fz = lower_corner(z, nz)
        return True, i0, i1, fx, j0, j1, fy, k0, k1, fz
    if not (-0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5 and -0.5 <= z < nz - 0.5):
        return False, 0, 0, 0.0, 0, 0, 0.0, 0, 0, 0.0
    i0, i1, fx = clamped_corner(x, nx)
    j0, j1, fy = clamped_corner(y, ny)
    k0, k1, fz = clamped_corner(z, nz)
    return True, i0, i1, fx, j0, j1, fy, k0, k1, fz


@kernel
def resample_field_affine_3d(field, out2field_vox, method, out, start, stop):
    """Every component of a vector field resampled through an affine, rows ``start:stop``.

    ``out[i, j, k, c] = field[..., c](out2field_vox @ (i, j, k, 1))`` by
    ``LINEAR_ZERO_OUTSIDE`` or ``LINEAR``: each component bit for bit as
    :func:`resample_affine_3d` resamples it as a scalar image, with the point
    and the corners found once for all components. ``field`` has shape
    ``(X, Y, Z, nd)``, ``out`` ``(X', Y', Z', nd)``, both float32.
    """
    _, ny, nz, nd = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                x, y, z = affine_point(out2field_vox, i, j, k)
                ok, i0, i1, fx, j0, j1, fy, k0, k1, fz = field_corners(field, method, x, y, z)
                for c in range(nd):
                    out[i, j, k, c] = (trilinear_component(field, c, i0, i1, fx, j0, j1, fy,
                                                           k0, k1, fz) if ok else 0.0)


@kernel
def warp_3d(moving, field, out_vox2world, world2moving_vox, method, out, start, stop):
    """``out[p] = moving(world2moving_vox @ (out_vox2world @ p + field[p]))`` for rows ``start:stop``.

    ``field`` has shape ``(*out.shape, 3)`` (``(X, Y, 1, 2)`` in 2D):
    displacements in world millimetres.
    """
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                x, y, z = warp_point(field, out_vox2world, world2moving_vox, i, j, k)
                out[i, j, k] = sample(moving, method, x, y, z)


@kernel
def resample_affine_itk_3d(moving, out2moving_vox, method, params, out, start, stop):
    """:func:`resample_affine_3d` for the ``ITK_KERNEL_METHODS``."""
    scratch = np.empty((3, MAX_TAPS))
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                x, y, z = affine_point(out2moving_vox, i, j, k)
                out[i, j, k] = sample_itk(moving, method, params, scratch, x, y, z)


@kernel
def warp_itk_3d(moving, field, out_vox2world, world2moving_vox, method, params, out, start,
                stop):
    """:func:`warp_3d` for the ``ITK_KERNEL_METHODS``."""
    scratch = np.empty((3, MAX_TAPS))
    _, ny, nz = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                x, y, z = warp_point(field, out_vox2world, world2moving_vox, i, j, k)
                out[i, j, k] = sample_itk(moving, method, params, scratch, x, y, z)
