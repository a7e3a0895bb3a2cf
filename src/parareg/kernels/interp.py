"""Point interpolation of 2D/3D arrays at continuous voxel coordinates.

Conventions (shared by every kernel that samples an image):

linear
    Defined for coordinates inside ``[0, n - 1]`` on every axis (like
    ``scipy.ndimage.map_coordinates(order=1, mode="constant", cval=0)``);
    0 outside.
nearest
    The voxel ``floor(x + 0.5)``; defined for ``[-0.5, n - 0.5)`` on every
    axis (every point of a voxel's footprint gets that voxel's value); 0 outside.
"""

from __future__ import annotations

import math

from numba import njit


@njit(nogil=True, cache=True)
def _lower(x, n):
    """Lower corner index and weight for linear interpolation along one axis."""
    i0 = min(int(x), max(n - 2, 0))
    i1 = min(i0 + 1, n - 1)
    return i0, i1, x - i0


@njit(nogil=True, cache=True)
def linear_3d(img, x, y, z):
    nx, ny, nz = img.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1 and 0.0 <= z <= nz - 1):
        return 0.0
    i0, i1, fx = _lower(x, nx)
    j0, j1, fy = _lower(y, ny)
    k0, k1, fz = _lower(z, nz)
    c00 = img[i0, j0, k0] * (1.0 - fx) + img[i1, j0, k0] * fx
    c01 = img[i0, j0, k1] * (1.0 - fx) + img[i1, j0, k1] * fx
    c10 = img[i0, j1, k0] * (1.0 - fx) + img[i1, j1, k0] * fx
    c11 = img[i0, j1, k1] * (1.0 - fx) + img[i1, j1, k1] * fx
    c0 = c00 * (1.0 - fy) + c10 * fy
    c1 = c01 * (1.0 - fy) + c11 * fy
    return c0 * (1.0 - fz) + c1 * fz


@njit(nogil=True, cache=True)
def linear_2d(img, x, y):
    nx, ny = img.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1):
        return 0.0
    i0, i1, fx = _lower(x, nx)
    j0, j1, fy = _lower(y, ny)
    c0 = img[i0, j0] * (1.0 - fx) + img[i1, j0] * fx
    c1 = img[i0, j1] * (1.0 - fx) + img[i1, j1] * fx
    return c0 * (1.0 - fy) + c1 * fy


@njit(nogil=True, cache=True)
def nearest_3d(img, x, y, z):
    i = math.floor(x + 0.5)
    j = math.floor(y + 0.5)
    k = math.floor(z + 0.5)
    nx, ny, nz = img.shape
    if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz:
        return img[int(i), int(j), int(k)]
    return img.dtype.type(0)


@njit(nogil=True, cache=True)
def nearest_2d(img, x, y):
    i = math.floor(x + 0.5)
    j = math.floor(y + 0.5)
    nx, ny = img.shape
    if 0 <= i < nx and 0 <= j < ny:
        return img[int(i), int(j)]
    return img.dtype.type(0)
