"""Dense Parzen mutual information for SyN: range, joint histogram and update fields.

Every kernel sees 3D arrays ``(X, Y, Z)`` (a 2D image is ``(X, Y, 1)``) and
one slab of axis-0 rows ``start:stop``. Both images get a cubic B-spline
Parzen window; the binning (``bin_size``, ``normalized_min``, 2 padding bins
each side) and the B-spline helpers are those of
:mod:`parareg.kernels.histogram`, whose :func:`~parareg.kernels.histogram.moving_term`
gives the Parzen coordinate ``(t, b, inside)`` of either image here. See
:mod:`parareg.metrics.syn_mi` for the formulas.

``forward`` and ``backward`` are the update fields of the fixed image's
displacement ``u_s`` and of the moving image's ``u_m`` (the names of
:meth:`parareg.metrics.syn_base.SyNMetric.compute`), each ``(X, Y, Z, ndim)``
float32 with 2 or 3 components.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .histogram import cubic_bspline_slopes, cubic_bspline_weights, moving_term
from .stencil import neighbours, store_vector, world_gradient_at


@kernel
def masked_range(fixed, moving, mask, use_mask, partial, start, stop):
    """``partial = [min I, max I, min J, max J, count]`` over the voxels in ``mask``."""
    _, ny, nz = fixed.shape
    lo_f = 0.0
    hi_f = 0.0
    lo_m = 0.0
    hi_m = 0.0
    count = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                if use_mask and mask[i, j, k] == 0:
                    continue
                a = np.float64(fixed[i, j, k])
                b = np.float64(moving[i, j, k])
                if count == 0.0:
                    lo_f = a
                    hi_f = a
                    lo_m = b
                    hi_m = b
                else:
                    lo_f = min(lo_f, a)
                    hi_f = max(hi_f, a)
                    lo_m = min(lo_m, b)
                    hi_m = max(hi_m, b)
                count += 1.0
    partial[0] = lo_f
    partial[1] = hi_f
    partial[2] = lo_m
    partial[3] = hi_m
    partial[4] = count


@kernel
def mi_joint_histogram(fixed, moving, mask, use_mask, binning, joint, start, stop):
    """Add the 4 x 4 Parzen weights of each voxel in ``mask`` to ``joint`` (fixed x moving bin).

    ``binning = [I bin size, I normalized min, I min, I max, J bin size, J normalized min,
    J min, J max]``; ``joint`` has shape (B, B), float64, owned by the unit.
    Each voxel adds a total weight of 1.
    """
    _, ny, nz = fixed.shape
    nbins = joint.shape[0]
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                if use_mask and mask[i, j, k] == 0:
                    continue
                tf, bf, _ = moving_term(np.float64(fixed[i, j, k]), binning[0], binning[1],
                                        binning[2], binning[3], nbins)
                tm, bm, _ = moving_term(np.float64(moving[i, j, k]), binning[4], binning[5],
                                        binning[6], binning[7], nbins)
                wf = cubic_bspline_weights(tf - bf)
                wm = cubic_bspline_weights(tm - bm)
                for a in range(4):
                    for c in range(4):
                        joint[bf - 1 + a, bm - 1 + c] += wf[a] * wm[c]


@kernel
def mi_steps(fixed, moving, grad2world, mask, use_mask, binning, log_ratio, scale_fixed,
             scale_moving, forward, backward, start, stop):
    """MI update fields of rows ``start:stop``.

    With the support bins ``bf - 1 .. bf + 2`` of ``I`` and ``bm - 1 .. bm + 2``
    of ``J`` and ``L = log_ratio`` (``log(p / (p_I p_J))``, 0 on empty bins)::

        dMI/dI = scale_fixed * sum_{a,c} beta3'(bf - 1 + a - t_I) beta3(bm - 1 + c - t_J) L
        dMI/dJ = scale_moving * sum_{a,c} beta3(bf - 1 + a - t_I) beta3'(bm - 1 + c - t_J) L
        forward = dMI/dI grad I,   backward = dMI/dJ grad J

    ``scale_* = -1 / (N bin_size)``. A value clamped to its range has a zero
    derivative; voxels outside ``mask`` get zero fields.
    """
    nx, ny, nz = fixed.shape
    nd = forward.shape[3]
    nbins = log_ratio.shape[0]
    for i in range(start, stop):
        im, ip = neighbours(i, nx)
        for j in range(ny):
            jm, jp = neighbours(j, ny)
            for k in range(nz):
                km, kp = neighbours(k, nz)
                if use_mask and mask[i, j, k] == 0:
                    for d in range(nd):
                        forward[i, j, k, d] = 0.0
                        backward[i, j, k, d] = 0.0
                    continue
                tf, bf, in_f = moving_term(np.float64(fixed[i, j, k]), binning[0], binning[1],
                                           binning[2], binning[3], nbins)
                tm, bm, in_m = moving_term(np.float64(moving[i, j, k]), binning[4], binning[5],
                                           binning[6], binning[7], nbins)
                wf = cubic_bspline_weights(tf - bf)
                df = cubic_bspline_slopes(tf - bf)
                wm = cubic_bspline_weights(tm - bm)
                dm = cubic_bspline_slopes(tm - bm)
                d_fixed = 0.0
                d_moving = 0.0
                for a in range(4):
                    for c in range(4):
                        value = log_ratio[bf - 1 + a, bm - 1 + c]
                        d_fixed += df[a] * wm[c] * value
                        d_moving += wf[a] * dm[c] * value
                d_fixed = scale_fixed * d_fixed if in_f else 0.0
                d_moving = scale_moving * d_moving if in_m else 0.0
                gx, gy, gz = world_gradient_at(fixed, grad2world, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(forward, i, j, k, d_fixed * gx, d_fixed * gy, d_fixed * gz)
                gx, gy, gz = world_gradient_at(moving, grad2world, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(backward, i, j, k, d_moving * gx, d_moving * gy, d_moving * gz)
