"""Point interpolation of images and vector fields at continuous voxel coordinates.

Every kernel is 3D: a 2D image is passed as ``(X, Y, 1)`` and a 2D vector
field as ``(X, Y, 1, 2)`` (see :mod:`parareg.kernels.lift`). Along a
1-voxel axis the only point inside the domain is 0, where both rules
below reduce exactly to the 2D ones.

linear (the registration kernels' rule, "zero outside")
    Defined for coordinates inside ``[0, n - 1]`` on every axis (like
    ``scipy.ndimage.map_coordinates(order=1, mode="constant", cval=0)``);
    0 outside. User-facing resampling uses ITK's rule instead (edge values
    within half a voxel: :mod:`parareg.kernels.interp_itk`).
nearest
    The voxel ``floor(x + 0.5)``; defined for ``[-0.5, n - 0.5)`` on every
    axis (every point of a voxel's footprint gets that voxel's value); 0 outside.

These are helpers of the kernels (see :mod:`parareg.kernels` for how they are compiled).
"""

from __future__ import annotations

import math

from ._jit import helper, inline_helper



@helper
def lower_corner(x, n):
    """Lower corner index and weight for linear interpolation along one axis."""
    last = 0 if 0 > n - 2 else n - 2
    i0 = int(x)
    i0 = last if last < i0 else i0
    i1 = n - 1 if n - 1 < i0 + 1 else i0 + 1
    return i0, i1, x - i0


@helper
def linear_3d(img, x, y, z):
    """Trilinear value of ``img`` at ``(x, y, z)``; 0 outside ``[0, n - 1]``."""
    nx, ny, nz = img.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1 and 0.0 <= z <= nz - 1):
        return 0.0
    i0, i1, fx = lower_corner(x, nx)
    j0, j1, fy = lower_corner(y, ny)
    k0, k1, fz = lower_corner(z, nz)
    return trilinear(img, i0, i1, fx, j0, j1, fy, k0, k1, fz)


@helper
def blend(v000, v100, v010, v110, v001, v101, v011, v111, fx, fy, fz):
    """The trilinear blend of 8 corner values (``v`` + the x, y, z bits), upper weights ``f``."""
    c00 = v000 * (1.0 - fx) + v100 * fx
    c01 = v001 * (1.0 - fx) + v101 * fx
    c10 = v010 * (1.0 - fx) + v110 * fx
    c11 = v011 * (1.0 - fx) + v111 * fx
    c0 = c00 * (1.0 - fy) + c10 * fy
    c1 = c01 * (1.0 - fy) + c11 * fy
    return c0 * (1.0 - fz) + c1 * fz


@helper
def trilinear(img, i0, i1, fx, j0, j1, fy, k0, k1, fz):
    """The trilinear blend of the 8 corners ``(i0|i1, j0|j1, k0|k1)`` with upper weights ``f``."""
    return blend(img[i0, j0, k0], img[i1, j0, k0], img[i0, j1, k0], img[i1, j1, k0],
                 img[i0, j0, k1], img[i1, j0, k1], img[i0, j1, k1], img[i1, j1, k1], fx, fy, fz)


@helper
def trilinear_component(field, c, i0, i1, fx, j0, j1, fy, k0, k1, fz):
    """:func:`trilinear` of component ``c`` of a vector field ``(X, Y, Z, nd)``."""
    return blend(field[i0, j0, k0, c], field[i1, j0, k0, c], field[i0, j1, k0, c],
                 field[i1, j1, k0, c], field[i0, j0, k1, c], field[i1, j0, k1, c],
                 field[i0, j1, k1, c], field[i1, j1, k1, c], fx, fy, fz)


@helper
def nearest_3d(img, x, y, z):
    """Value of the voxel ``floor(p + 0.5)`` of ``img``; 0 outside the footprint of the grid."""
    i = math.floor(x + 0.5)
    j = math.floor(y + 0.5)
    k = math.floor(z + 0.5)
    nx, ny, nz = img.shape
    if 0 <= i < nx and 0 <= j < ny and 0 <= k < nz:
        return img[int(i), int(j), int(k)]
    return img.dtype.type(0)


@inline_helper
def vector_at(field, x, y, z):
    """The components of ``field`` (``(X, Y, Z, 2 or 3)``) at ``(x, y, z)``, linearly.

    Returns 3 values (the third 0 for a 2-component field); zeros outside
    the grid. Trilinear weights are formed once and shared by the components
    (twice as fast as three scalar interpolations).
    """
    nx, ny, nz, nd = field.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1 and 0.0 <= z <= nz - 1):
        return 0.0, 0.0, 0.0
    i0, i1, fx = lower_corner(x, nx)
    j0, j1, fy = lower_corner(y, ny)
    k0, k1, fz = lower_corner(z, nz)
    gx = 1.0 - fx
    gy = 1.0 - fy
    gz = 1.0 - fz
    vx = 0.0
    vy = 0.0
    vz = 0.0
    for a, b, wab in ((i0, j0, gx * gy), (i1, j0, fx * gy), (i0, j1, gx * fy), (i1, j1, fx * fy)):
        w0 = wab * gz
        w1 = wab * fz
        vx += w0 * field[a, b, k0, 0] + w1 * field[a, b, k1, 0]
        vy += w0 * field[a, b, k0, 1] + w1 * field[a, b, k1, 1]
        if nd == 3:
            vz += w0 * field[a, b, k0, 2] + w1 * field[a, b, k1, 2]
    return vx, vy, vz


@inline_helper
def linear_value_gradient_3d(img, grad, exact, vox_grad2world_grad, x, y, z):
    """Linear interpolation of ``img`` at a point, and a gradient there (world units).

    The point must lie in the linear domain. The value equals
    :func:`linear_3d` bit for bit (same weights, same operation order). The
    gradient is ``grad`` (a gradient image ``(X, Y, Z, 2 or 3)`` in world
    units) linearly interpolated with the same weights, or, when ``exact``,
    the derivative of the trilinear interpolant itself mapped to world units
    by ``vox_grad2world_grad`` (3 x 3; ``grad`` is then unused).
    """
    nx, ny, nz = img.shape
    i0, i1, fx = lower_corner(x, nx)
    j0, j1, fy = lower_corner(y, ny)
    k0, k1, fz = lower_corner(z, nz)
    gx = 1.0 - fx
    gy = 1.0 - fy
    gz = 1.0 - fz
    v000 = float(img[i0, j0, k0])
    v100 = float(img[i1, j0, k0])
    v001 = float(img[i0, j0, k1])
    v101 = float(img[i1, j0, k1])
    v010 = float(img[i0, j1, k0])
    v110 = float(img[i1, j1, k0])
    v011 = float(img[i0, j1, k1])
    v111 = float(img[i1, j1, k1])
    c00 = v000 * gx + v100 * fx
    c01 = v001 * gx + v101 * fx
    c10 = v010 * gx + v110 * fx
    c11 = v011 * gx + v111 * fx
    c0 = c00 * gy + c10 * fy
    c1 = c01 * gy + c11 * fy
    value = c0 * gz + c1 * fz
    if exact:
        dx = (((v100 - v000) * gy + (v110 - v010) * fy) * gz
              + ((v101 - v001) * gy + (v111 - v011) * fy) * fz)
        dy = (c10 - c00) * gz + (c11 - c01) * fz
        dz = c1 - c0
        g = vox_grad2world_grad
        return (value,
                g[0, 0] * dx + g[0, 1] * dy + g[0, 2] * dz,
                g[1, 0] * dx + g[1, 1] * dy + g[1, 2] * dz,
                g[2, 0] * dx + g[2, 1] * dy + g[2, 2] * dz)
    w000 = gx * gy * gz
    w100 = fx * gy * gz
    w010 = gx * fy * gz
    w110 = fx * fy * gz
    w001 = gx * gy * fz
    w101 = fx * gy * fz
    w011 = gx * fy * fz
    w111 = fx * fy * fz
    d0 = 0.0
    d1 = 0.0
    d2 = 0.0
    for c in range(grad.shape[3]):
        d = (grad[i0, j0, k0, c] * w000 + grad[i1, j0, k0, c] * w100
             + grad[i0, j1, k0, c] * w010 + grad[i1, j1, k0, c] * w110
             + grad[i0, j0, k1, c] * w001 + grad[i1, j0, k1, c] * w101
             + grad[i0, j1, k1, c] * w011 + grad[i1, j1, k1, c] * w111)
        if c == 0:
            d0 = d
        elif c == 1:
            d1 = d
        else:
            d2 = d
    return value, d0, d1, d2
