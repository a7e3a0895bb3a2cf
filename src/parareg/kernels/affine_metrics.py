"""Sample-based kernels for affine metrics: mean squares and correlation.

Every kernel walks the fixed samples ``start <= s < stop`` of one work unit
(the prologue of :mod:`parareg.kernels.samples`: fixed voxel, moving
point, validity). Kernels return the number of valid samples and add
their sums into the explicit output arrays (per-unit buffers owned by the
caller). Gradient sums are ``sum_x c(x) * grad_m(y) (x, 1)^T`` with
``grad_m`` the moving gradient in world units at ``y`` and ``(x, 1)`` the
homogeneous fixed world point: the derivative of a metric with respect to
the top rows of the world matrix ``fixed2moving`` (3 x 4; a 2D metric keeps
rows 0-1 and columns 0, 1, 3). ``grad_m`` is either a precomputed gradient
image linearly interpolated at ``y``, or (with ``exact_gradient``) the
derivative of the linear interpolant of the moving image itself, mapped to
world units by ``vox_grad2world_grad`` (``inv(A).T``, ``A`` the linear part
of the moving ``vox2world``); see
:func:`parareg.kernels.interp.linear_value_gradient_3d`.
"""

from __future__ import annotations

from ._jit import kernel
from .interp import linear_3d, linear_value_gradient_3d
from .samples import add_outer_3d, first_state, inside_moving_3d, map_point_3d, next_voxel_3d


@kernel
def mean_squares_3d(fixed_values, sample_index, ny, nz, fixed_vox2world, fixed_vox2moving_vox,
                    moving, moving_gradient, exact_gradient, vox_grad2world_grad, moving_mask,
                    use_mask, with_gradient, sums, out, start, stop):
    """Mean-squares sums over samples ``start:stop``; returns the number of valid samples.

    ``sums`` has shape (1,): ``sum (m(y) - f(x))^2``. ``out`` has shape (3, 4):
    ``sum (m(y) - f(x)) grad_m(y) (x, 1)^T`` (only when ``with_gradient``).
    """
    count = 0
    previous, i, j, k = first_state()
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


@kernel
def correlation_3d(fixed_values, sample_index, ny, nz, fixed_vox2world, fixed_vox2moving_vox,
                   moving, moving_gradient, exact_gradient, vox_grad2world_grad, moving_mask,
                   use_mask, with_gradient, fixed_shift, moving_shift, sums, out, start, stop):
    """Correlation moments over samples ``start:stop``; returns the number of valid samples.

    With ``a = f(x) - fixed_shift`` and ``b = m(y) - moving_shift``, ``sums``
    (shape (5,)) gets ``sum a, sum b, sum a^2, sum b^2, sum a b`` and ``out``
    (shape (3, 3, 4), only when ``with_gradient``) gets ``sum G``, ``sum a G``
    and ``sum b G`` with ``G = grad_m(y) (x, 1)^T``.
    """
    count = 0
    previous, i, j, k = first_state()
    for s in range(start, stop):
        index = sample_index[s]
        i, j, k = next_voxel_3d(index, previous, i, j, k, ny, nz)
        previous = index
        x, y, z = map_point_3d(fixed_vox2moving_vox, i, j, k)
        if not inside_moving_3d(moving, moving_mask, use_mask, x, y, z):
            continue
        count += 1
        a = fixed_values[s] - fixed_shift
        g0 = g1 = g2 = 0.0
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
