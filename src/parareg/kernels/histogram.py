"""Parzen-window joint histograms and Mattes mutual-information gradient sums.

Binning follows ITK's ``MattesMutualInformationImageToImageMetricv4`` with
``B`` bins and 2 padding bins on each side. For an intensity range
``[lo, hi]`` the bin size is ``(hi - lo) / (B - 4)`` and an intensity ``v``
has the continuous bin coordinate ``t = v / bin_size - (lo / bin_size - 2)``,
which lies in ``[2, B - 2]``.

fixed (zero-order, box window)
    the sample goes to bin ``clip(floor(t_f), 2, B - 3)``.
moving (cubic B-spline window)
    with ``b = clip(floor(t_m), 2, B - 3)``, bins ``b - 1 .. b + 2`` get
    ``beta3(bin - t_m)``; these four weights sum to 1 (they are evaluated as
    cubic polynomials of ``r = t_m - b``, with no branches). A moving value outside
    ``[moving_min, moving_max]`` (possible only next to a moving mask, whose
    range is taken inside the mask) is clamped to the range, and its
    intensity derivative is then 0.

Sample validity and point mapping are those of
:mod:`parareg.kernels.samples`; gradient sums those of
:mod:`parareg.kernels.affine_metrics`. The B-spline and binning helpers
serve :mod:`parareg.kernels.syn_mi` too.
"""

from __future__ import annotations

import math

from ._jit import helper, kernel
from .interp import linear_3d, linear_value_gradient_3d
from .samples import add_outer_3d, first_state, inside_moving_3d, map_point_3d, next_voxel_3d


@helper
def cubic_bspline_weights(r):
    """``beta3(b - 1 - t), beta3(b - t), beta3(b + 1 - t), beta3(b + 2 - t)`` for ``r = t - b``.

    ``r`` lies in ``[0, 1]``; the four weights sum to 1.
    """
    s = 1.0 - r
    r2 = r * r
    r3 = r2 * r
    return (s * s * s / 6.0,
            (3.0 * r3 - 6.0 * r2 + 4.0) / 6.0,
            (-3.0 * r3 + 3.0 * r2 + 3.0 * r + 1.0) / 6.0,
            r3 / 6.0)


@helper
def cubic_bspline_slopes(r):
    """``beta3'(b - 1 - t), ..., beta3'(b + 2 - t)`` for ``r = t - b`` (``beta3' = dbeta3/du``)."""
    s = 1.0 - r
    r2 = r * r
    return (0.5 * s * s,
            2.0 * r - 1.5 * r2,
            1.5 * r2 - r - 0.5,
            -0.5 * r2)


@helper
def fixed_bin(value, bin_size, normalized_min, nbins):
    """Box-window bin of a fixed intensity.

    ``clip(floor(value / bin_size - normalized_min), 2, nbins - 3)``.
    """
    b = int(math.floor(value / bin_size - normalized_min))
    if b < 2:
        return 2
    if b > nbins - 3:
        return nbins - 3
    return b


@helper
def moving_term(value, bin_size, normalized_min, lo, hi, nbins):
    """Parzen coordinate of a moving intensity.

    Returns ``(t, b, inside)``: the continuous bin coordinate ``t``, the
    clipped ``b = clip(floor(t), 2, nbins - 3)`` (support bins ``b - 1 .. b + 2``)
    and ``inside``, false when ``value`` was clamped to ``[lo, hi]`` (its
    intensity derivative is then 0).
    """
    inside = True
    if value < lo:
        value = lo
        inside = False
    elif value > hi:
        value = hi
        inside = False
    t = value / bin_size - normalized_min
    b = int(math.floor(t))
    if b < 2:
        b = 2
    elif b > nbins - 3:
        b = nbins - 3
    return t, b, inside


@helper
def _add_parzen(joint, fbin, t, b):
    """``joint[fbin, b - 1 + q] += beta3(b - 1 + q - t)`` for ``q = 0..3``."""
    w0, w1, w2, w3 = cubic_bspline_weights(t - b)
    joint[fbin, b - 1] += w0
    joint[fbin, b] += w1
    joint[fbin, b + 1] += w2
    joint[fbin, b + 2] += w3


@helper
def _parzen_slope(log_ratio, fbin, t, b):
    """``sum_q log_ratio[fbin, b - 1 + q] * beta3'(b - 1 + q - t)`` over the 4 support bins."""
    d0, d1, d2, d3 = cubic_bspline_slopes(t - b)
    return (log_ratio[fbin, b - 1] * d0 + log_ratio[fbin, b] * d1
            + log_ratio[fbin, b + 1] * d2 + log_ratio[fbin, b + 2] * d3)


@kernel
def joint_histogram_3d(fixed_values, sample_index, ny, nz, fixed_vox2moving_vox,
                       moving, moving_mask, use_mask,
                       fixed_bin_size, fixed_normalized_min,
                       moving_bin_size, moving_normalized_min, moving_min, moving_max,
                       joint, start, stop):
    """Add samples ``start:stop`` to ``joint`` (shape (B, B), fixed bin x moving bin).

    Returns the number of valid samples; each adds a total weight of 1.
    """
    nbins = joint.shape[0]
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
        m = linear_3d(moving, x, y, z)
        t, b, _ = moving_term(m, moving_bin_size, moving_normalized_min, moving_min,
                              moving_max, nbins)
        fbin = fixed_bin(fixed_values[s], fixed_bin_size, fixed_normalized_min, nbins)
        _add_parzen(joint, fbin, t, b)
    return count


@kernel
def mattes_gradient_3d(fixed_values, sample_index, ny, nz, fixed_vox2world, fixed_vox2moving_vox,
                       moving, moving_gradient, exact_gradient, vox_grad2world_grad,
                       moving_mask, use_mask,
                       fixed_bin_size, fixed_normalized_min,
                       moving_bin_size, moving_normalized_min, moving_min, moving_max,
                       log_ratio, out, start, stop):
    """``out += sum_x s(x) grad_m(y) (x, 1)^T`` over samples ``start:stop`` (``out`` (3, 4)).

    ``s(x) = sum_{kappa = b-1}^{b+2} log_ratio[fixed_bin(x), kappa] * beta3'(kappa - t(x))``
    (only the four support bins are visited). Returns the number of valid samples.
    """
    nbins = log_ratio.shape[0]
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
        m, g0, g1, g2 = linear_value_gradient_3d(moving, moving_gradient, exact_gradient,
                                                  vox_grad2world_grad, x, y, z)
        t, b, inside = moving_term(m, moving_bin_size, moving_normalized_min, moving_min,
                                   moving_max, nbins)
        if not inside:
            continue
        fbin = fixed_bin(fixed_values[s], fixed_bin_size, fixed_normalized_min, nbins)
        d = _parzen_slope(log_ratio, fbin, t, b)
        if d == 0.0:
            continue
        w0, w1, w2 = map_point_3d(fixed_vox2world, i, j, k)
        add_outer_3d(out, d, g0, g1, g2, w0, w1, w2)
    return count
