"""Plain NumPy twin of the dense Parzen MI SyN metric.

Written from the definitions, not from the kernels: the cubic B-spline and
its derivative are evaluated piecewise on *every* bin (no support-bin
bookkeeping), the joint histogram is built with ``np.add.at``, and the
intensity derivatives use the textbook tables ``log(p / p_I)`` and
``log(p / p_J)`` (the metric uses one table ``log(p / (p_I p_J))``).
"""

from __future__ import annotations

import numpy as np

from .syn_metrics_reference import world_gradient

TINY = 1e-16


def bspline3(u):
    """The cubic B-spline ``beta3(u)``, piecewise."""
    a = np.abs(u)
    return np.where(a < 1, 2.0 / 3.0 - a ** 2 + a ** 3 / 2,
                    np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


def bspline3_slope(u):
    """``d beta3 / du``, piecewise."""
    a = np.abs(u)
    s = np.sign(u)
    return np.where(a < 1, s * (-2 * a + 1.5 * a ** 2),
                    np.where(a < 2, -s * 0.5 * (2 - a) ** 2, 0.0))


def parzen(values, bins):
    """Bin coordinates ``t`` (in [2, bins - 2]) and the bin size of ``values``."""
    lo, hi = values.min(), values.max()
    size = (hi - lo) / (bins - 4)
    return (values - lo) / size + 2.0, size


def mi(fixed, moving, vox2world, bins=32, mask=None):
    """Dense MI fields and energy; returns ``(forward, backward, energy, histogram)``."""
    shape = fixed.shape
    ndim = fixed.ndim
    inside = np.ones(shape, bool) if mask is None else np.asarray(mask, bool)
    i_val = fixed.astype(np.float64)[inside]
    j_val = moving.astype(np.float64)[inside]
    n = i_val.size
    t_i, size_i = parzen(i_val, bins)
    t_j, size_j = parzen(j_val, bins)
    centres = np.arange(bins, dtype=np.float64)
    w_i = bspline3(centres[None, :] - t_i[:, None])  # (n, bins)
    w_j = bspline3(centres[None, :] - t_j[:, None])
    d_i = bspline3_slope(centres[None, :] - t_i[:, None])
    d_j = bspline3_slope(centres[None, :] - t_j[:, None])

    hist = np.zeros((bins, bins))
    rows = np.broadcast_to(centres.astype(int)[None, :, None], (n, bins, bins))
    cols = np.broadcast_to(centres.astype(int)[None, None, :], (n, bins, bins))
    np.add.at(hist, (rows.ravel(), cols.ravel()), (w_i[:, :, None] * w_j[:, None, :]).ravel())
    p = hist / n
    p_i = p.sum(axis=1)
    p_j = p.sum(axis=0)
    filled = p > TINY
    with np.errstate(divide="ignore", invalid="ignore"):
        energy = -np.sum(np.where(filled, p * np.log(p / np.outer(p_i, p_j)), 0.0))
        log_p_over_pi = np.where(filled, np.log(p / p_i[:, None]), 0.0)
        log_p_over_pj = np.where(filled, np.log(p / p_j[None, :]), 0.0)

    # dp(i, k)/dI(x) = -(1/(N D_I)) beta3'(i - t_I) beta3(k - t_J): summed over i it vanishes,
    # so the p_J factor of log(p / (p_I p_J)) drops out, leaving log(p / p_I); and vice versa
    dmi_di = -np.einsum("xi,xk,ik->x", d_i, w_j, log_p_over_pi) / (n * size_i)
    dmi_dj = -np.einsum("xi,xk,ik->x", w_i, d_j, log_p_over_pj) / (n * size_j)
    forward = np.zeros((*shape, ndim))
    backward = np.zeros((*shape, ndim))
    forward[inside] = dmi_di[:, None] * world_gradient(fixed, vox2world)[inside]
    backward[inside] = dmi_dj[:, None] * world_gradient(moving, vox2world)[inside]
    return forward, backward, float(energy), hist
