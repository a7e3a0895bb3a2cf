"""Sample-based kernels for affine metrics: point mapping, mean squares, correlation.

Every kernel walks the fixed samples ``start <= s < stop`` of one work unit.
Sample ``s`` is the fixed voxel with flat (C-order) index ``sample_index[s]``
and intensity ``fixed_values[s]``; it maps to the moving voxel coordinate
``fixed_vox2moving_vox @ (i, j[, k], 1)``. A sample is *valid* when that
point lies in the linear-interpolation domain ``[0, n - 1]`` of every moving
axis (the convention of :mod:`parareg.kernels.interp`) and, when
``use_mask`` is true, the nearest voxel of ``moving_mask`` is non-zero.

Kernels return the number of valid samples and add their sums into the
explicit output arrays (per-unit buffers owned by the caller). Gradient
sums are ``sum_x c(x) * grad_m(y) (x, 1)^T`` with ``grad_m`` the moving
gradient in world units linearly interpolated at ``y`` and ``(x, 1)`` the
homogeneous fixed world point: the derivative of a metric with respect to
the top ``ndim`` rows of the world matrix ``fixed2moving``. ``grad_m`` is
either a precomputed gradient image linearly interpolated at ``y``, or (with
``exact_gradient``) the derivative of the linear interpolant of the moving
image itself, mapped to world units by ``vox_grad2world_grad``
(``inv(A).T``, ``A`` the linear part of the moving ``vox2world``).
"""

from __future__ import annotations

from numba import njit

from .interp import _lower, linear_2d, linear_3d, nearest_2d, nearest_3d

# --------------------------------------------------------------------------- #
# shared per-sample helpers


@njit(nogil=True, cache=True)
def unravel_3d(index, ny, nz):
    """Voxel ``(i, j, k)`` of the C-order flat ``index`` in a ``(nx, ny, nz)`` grid."""
    plane = ny * nz
    i = index // plane
    r = index - i * plane
    j = r // nz
    return i, j, r - j * nz


@njit(nogil=True, cache=True)
def unravel_2d(index, ny):
    """Voxel ``(i, j)`` of the C-order flat ``index`` in a ``(nx, ny)`` grid."""
    i = index // ny
    return i, index - i * ny


@njit(nogil=True, cache=True)
def next_voxel_3d(index, previous, i, j, k, ny, nz):
    """:func:`unravel_3d` of ``index``, knowing ``(i, j, k)`` is the voxel of ``previous``.

    Consecutive samples (dense sampling) then cost an increment, not two divisions.
    """
    if index == previous + 1 and k + 1 < nz:
        return i, j, k + 1
    return unravel_3d(index, ny, nz)


@njit(nogil=True, cache=True)
def next_voxel_2d(index, previous, i, j, ny):
    """2D twin of :func:`next_voxel_3d`."""
    if index == previous + 1 and j + 1 < ny:
        return i, j + 1
    return unravel_2d(index, ny)


@njit(nogil=True, cache=True)
def map_point_3d(a, i, j, k):
    """``(a @ (i, j, k, 1))[:3]`` for a 4x4 matrix ``a``."""
    return (a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3],
            a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3],
            a[2, 0] * i + a[2, 1] * j + a[2, 2] * k + a[2, 3])


@njit(nogil=True, cache=True)
def map_point_2d(a, i, j):
    """``(a @ (i, j, 1))[:2]`` for a 3x3 matrix ``a``."""
    return (a[0, 0] * i + a[0, 1] * j + a[0, 2],
            a[1, 0] * i + a[1, 1] * j + a[1, 2])


@njit(nogil=True, cache=True)
def inside_moving_3d(moving, moving_mask, use_mask, x, y, z):
    """True when ``(x, y, z)`` is in the linear domain of ``moving`` (and inside the mask)."""
    nx, ny, nz = moving.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1 and 0.0 <= z <= nz - 1):
        return False
    if use_mask:
        return nearest_3d(moving_mask, x, y, z) != 0
    return True


@njit(nogil=True, cache=True)
def inside_moving_2d(moving, moving_mask, use_mask, x, y):
    """2D twin of :func:`inside_moving_3d`."""
    nx, ny = moving.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1):
        return False
    if use_mask:
        return nearest_2d(moving_mask, x, y) != 0
    return True


@njit(nogil=True, cache=True)
def linear_value_gradient_3d(img, grad, exact, vox_grad2world_grad, x, y, z):
    """Linear interpolation of ``img`` at a point, and a moving gradient there (world units).

    The point must lie in the linear domain. The value equals
    :func:`parareg.kernels.interp.linear_3d` bit for bit (same weights, same
    operation order). The gradient is ``grad[..., 0:3]`` (a gradient image in
    world units) linearly interpolated with the same weights, or, when
    ``exact``, the derivative of the trilinear interpolant itself mapped to
    world units by ``vox_grad2world_grad`` (``grad`` is then unused).
    """
    nx, ny, nz = img.shape
    i0, i1, fx = _lower(x, nx)
    j0, j1, fy = _lower(y, ny)
    k0, k1, fz = _lower(z, nz)
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
    for c in range(3):
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


@njit(nogil=True, cache=True)
def linear_value_gradient_2d(img, grad, exact, vox_grad2world_grad, x, y):
    """2D twin of :func:`linear_value_gradient_3d` (value equals ``linear_2d`` bit for bit)."""
    nx, ny = img.shape
    i0, i1, fx = _lower(x, nx)
    j0, j1, fy = _lower(y, ny)
    gx = 1.0 - fx
    gy = 1.0 - fy
    v00 = float(img[i0, j0])
    v10 = float(img[i1, j0])
    v01 = float(img[i0, j1])
    v11 = float(img[i1, j1])
    c0 = v00 * gx + v10 * fx
    c1 = v01 * gx + v11 * fx
    value = c0 * gy + c1 * fy
    if exact:
        dx = (v10 - v00) * gy + (v11 - v01) * fy
        dy = c1 - c0
        g = vox_grad2world_grad
        return value, g[0, 0] * dx + g[0, 1] * dy, g[1, 0] * dx + g[1, 1] * dy
    w00 = gx * gy
    w10 = fx * gy
    w01 = gx * fy
    w11 = fx * fy
    d0 = (grad[i0, j0, 0] * w00 + grad[i1, j0, 0] * w10
          + grad[i0, j1, 0] * w01 + grad[i1, j1, 0] * w11)
    d1 = (grad[i0, j0, 1] * w00 + grad[i1, j0, 1] * w10
          + grad[i0, j1, 1] * w01 + grad[i1, j1, 1] * w11)
    return value, d0, d1


@njit(nogil=True, cache=True)
def add_outer_3d(out, c, g0, g1, g2, x0, x1, x2):
    """``out += c * g (x, 1)^T`` for a 3x4 ``out``."""
    cg0 = c * g0
    cg1 = c * g1
    cg2 = c * g2
    out[0, 0] += cg0 * x0
    out[0, 1] += cg0 * x1
    out[0, 2] += cg0 * x2
    out[0, 3] += cg0
    out[1, 0] += cg1 * x0
    out[1, 1] += cg1 * x1
    out[1, 2] += cg1 * x2
    out[1, 3] += cg1
    out[2, 0] += cg2 * x0
    out[2, 1] += cg2 * x1
    out[2, 2] += cg2 * x2
    out[2, 3] += cg2


@njit(nogil=True, cache=True)
def add_outer_2d(out, c, g0, g1, x0, x1):
    """``out += c * g (x, 1)^T`` for a 2x3 ``out``."""
    cg0 = c * g0
    cg1 = c * g1
    out[0, 0] += cg0 * x0
    out[0, 1] += cg0 * x1
    out[0, 2] += cg0
    out[1, 0] += cg1 * x0
    out[1, 1] += cg1 * x1
    out[1, 2] += cg1


# --------------------------------------------------------------------------- #
# mean squares: sums[0] += sum (m - f)^2, out += sum (m - f) grad_m (x, 1)^T


@njit(nogil=True, cache=True)
def mean_squares_3d(fixed_values, sample_index, ny, nz, fixed_vox2world, fixed_vox2moving_vox,
                    moving, moving_gradient, exact_gradient, vox_grad2world_grad, moving_mask,
                    use_mask, with_gradient,
                    sums, out, start, stop):
    """Mean-squares sums over samples ``start:stop``; returns the number of valid samples.

    ``sums`` has shape (1,): ``sum (m(y) - f(x))^2``. ``out`` has shape (3, 4):
    ``sum (m(y) - f(x)) grad_m(y) (x, 1)^T`` (only when ``with_gradient``).
    """
    count = 0
    previous, i, j, k = -2, 0, 0, 0
    for s in range(start, stop):
        index = sample_index[s]
        i, j, k = next_voxel_3d(index, previous, i, j, k, ny, nz)
        previous = index
        x, y, z = map_point_3d(fixed_vox2moving_vox, i, j, k)
        if not inside_moving_3d(moving, moving_mask, use_mask, x, y, z):
            continue
        count += 1
        if with_gradient:
            m, g0, g1, g2 = linear_value_gradient_3d(moving, moving_gradient, exact_gradient,
                                                      vox_grad2world_grad, x, y, z)
            d = m - fixed_values[s]
            sums[0] += d * d
            w0, w1, w2 = map_point_3d(fixed_vox2world, i, j, k)
            add_outer_3d(out, d, g0, g1, g2, w0, w1, w2)
        else:
            d = linear_3d(moving, x, y, z) - fixed_values[s]
            sums[0] += d * d
    return count


@njit(nogil=True, cache=True)
def mean_squares_2d(fixed_values, sample_index, ny, fixed_vox2world, fixed_vox2moving_vox,
                    moving, moving_gradient, exact_gradient, vox_grad2world_grad, moving_mask,
                    use_mask, with_gradient,
                    sums, out, start, stop):
    """2D twin of :func:`mean_squares_3d`; ``out`` has shape (2, 3)."""
    count = 0
    previous, i, j = -2, 0, 0
    for s in range(start, stop):
        index = sample_index[s]
        i, j = next_voxel_2d(index, previous, i, j, ny)
        previous = index
        x, y = map_point_2d(fixed_vox2moving_vox, i, j)
        if not inside_moving_2d(moving, moving_mask, use_mask, x, y):
            continue
        count += 1
        if with_gradient:
            m, g0, g1 = linear_value_gradient_2d(moving, moving_gradient, exact_gradient,
                                                  vox_grad2world_grad, x, y)
            d = m - fixed_values[s]
            sums[0] += d * d
            w0, w1 = map_point_2d(fixed_vox2world, i, j)
            add_outer_2d(out, d, g0, g1, w0, w1)
        else:
            d = linear_2d(moving, x, y) - fixed_values[s]
            sums[0] += d * d
    return count


# --------------------------------------------------------------------------- #
# correlation: shifted raw moments and three gradient moments


@njit(nogil=True, cache=True)
def correlation_3d(fixed_values, sample_index, ny, nz, fixed_vox2world, fixed_vox2moving_vox,
                   moving, moving_gradient, exact_gradient, vox_grad2world_grad, moving_mask,
                    use_mask, with_gradient,
                   fixed_shift, moving_shift, sums, out, start, stop):
    """Correlation moments over samples ``start:stop``; returns the number of valid samples.

    With ``a = f(x) - fixed_shift`` and ``b = m(y) - moving_shift``, ``sums``
    (shape (5,)) gets ``sum a, sum b, sum a^2, sum b^2, sum a b`` and ``out``
    (shape (3, 3, 4), only when ``with_gradient``) gets ``sum G``, ``sum a G``
    and ``sum b G`` with ``G = grad_m(y) (x, 1)^T``.
    """
    count = 0
    previous, i, j, k = -2, 0, 0, 0
    for s in range(start, stop):
        index = sample_index[s]
        i, j, k = next_voxel_3d(index, previous, i, j, k, ny, nz)
        previous = index
        x, y, z = map_point_3d(fixed_vox2moving_vox, i, j, k)
        if not inside_moving_3d(moving, moving_mask, use_mask, x, y, z):
            continue
        count += 1
        a = fixed_values[s] - fixed_shift
        if with_gradient:
            m, g0, g1, g2 = linear_value_gradient_3d(moving, moving_gradient, exact_gradient,
                                                      vox_grad2world_grad, x, y, z)
        else:
            m = linear_3d(moving, x, y, z)
        b = m - moving_shift
        sums[0] += a
        sums[1] += b
        sums[2] += a * a
        sums[3] += b * b
        sums[4] += a * b
        if with_gradient:
            w0, w1, w2 = map_point_3d(fixed_vox2world, i, j, k)
            add_outer_3d(out[0], 1.0, g0, g1, g2, w0, w1, w2)
            add_outer_3d(out[1], a, g0, g1, g2, w0, w1, w2)
            add_outer_3d(out[2], b, g0, g1, g2, w0, w1, w2)
    return count


@njit(nogil=True, cache=True)
def correlation_2d(fixed_values, sample_index, ny, fixed_vox2world, fixed_vox2moving_vox,
                   moving, moving_gradient, exact_gradient, vox_grad2world_grad, moving_mask,
                    use_mask, with_gradient,
                   fixed_shift, moving_shift, sums, out, start, stop):
    """2D twin of :func:`correlation_3d`; ``out`` has shape (3, 2, 3)."""
    count = 0
    previous, i, j = -2, 0, 0
    for s in range(start, stop):
        index = sample_index[s]
        i, j = next_voxel_2d(index, previous, i, j, ny)
        previous = index
        x, y = map_point_2d(fixed_vox2moving_vox, i, j)
        if not inside_moving_2d(moving, moving_mask, use_mask, x, y):
            continue
        count += 1
        a = fixed_values[s] - fixed_shift
        if with_gradient:
            m, g0, g1 = linear_value_gradient_2d(moving, moving_gradient, exact_gradient,
                                                  vox_grad2world_grad, x, y)
        else:
            m = linear_2d(moving, x, y)
        b = m - moving_shift
        sums[0] += a
        sums[1] += b
        sums[2] += a * a
        sums[3] += b * b
        sums[4] += a * b
        if with_gradient:
            w0, w1 = map_point_2d(fixed_vox2world, i, j)
            add_outer_2d(out[0], 1.0, g0, g1, w0, w1)
            add_outer_2d(out[1], a, g0, g1, w0, w1)
            add_outer_2d(out[2], b, g0, g1, w0, w1)
    return count
