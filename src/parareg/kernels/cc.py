"""Local (box-window) cross-correlation for SyN: window sums and update fields.

Every kernel sees 3D arrays ``(X, Y, Z)``; a 2D image is passed as
``(X, Y, 1)`` with radius 0 along the last axis, so one set of kernels
serves both. Window sums run in float64 with running (sliding) sums along
one axis at a time -- never a loop over the window of each voxel:

1. :func:`cc_box_sums_yz` (units: slabs of rows along axis 0) fills
   ``sums[c, i]`` with the sums over the window along axes 2 then 1;
2. :func:`cc_steps` (units: slabs along axis 1) finishes the sums along
   axis 0 in place and turns them into the update fields of its slab.

The five channels of ``sums`` are ``sum I``, ``sum J``, ``sum I^2``,
``sum J^2`` and ``sum I J`` (``I`` fixed, ``J`` moving) over the window
``[p - r, p + r]`` clipped to the image (truncated at the border, as DIPY's
``precompute_cc_factors``). See :mod:`parareg.metrics.syn_cc` for the
formulas.

``forward`` and ``backward`` are the update fields of the fixed image's
displacement ``u_s`` and of the moving image's ``u_m`` (the names of
:meth:`parareg.metrics.syn_base.SyNMetric.compute`), each ``(X, Y, Z, ndim)``
float32 with 2 or 3 components.
"""

from __future__ import annotations

import numpy as np

from ._jit import helper, inline_helper, kernel
from .stencil import neighbours, store_vector, world_gradient_at

#: a local variance below this fraction of the window's sum of squares is rounding noise
CC_FLAT_RTOL = 1e-9


@inline_helper  # two layouts, two call sites: inline
def box_slide_inplace(lines, r, scratch):
    """``lines[p, :] <- sum(lines[q, :] for max(0, p - r) <= q <= min(n - 1, p + r))``.

    A running sum along axis 0 of ``lines`` (shape ``(n, m)``, float64),
    computed in place: ``scratch`` (at least ``(r + 2, m)``, float64) keeps
    the last ``r + 1`` original rows and the running sum.
    """
    n, m = lines.shape
    acc = r + 1
    for t in range(m):
        scratch[acc, t] = 0.0
    for p in range(min(r, n - 1) + 1):
        for t in range(m):
            scratch[acc, t] += lines[p, t]
    for p in range(n):
        slot = p % (r + 1)
        for t in range(m):
            scratch[slot, t] = lines[p, t]
            lines[p, t] = scratch[acc, t]
        q = p + r + 1
        if q < n:
            for t in range(m):
                scratch[acc, t] += lines[q, t]
        q = p - r
        if q >= 0:
            # slot q % (r + 1) still holds original row q: it is rewritten at step q + r + 1
            old = q % (r + 1)
            for t in range(m):
                scratch[acc, t] -= scratch[old, t]


@kernel
def cc_box_sums_yz(fixed, moving, ry, rz, sums, scratch, start, stop):
    """Window sums along axes 2 and 1 of the five CC channels, rows ``start:stop``.

    ``sums`` has shape ``(5, X, Y, Z)``, float64; ``scratch`` at least
    ``(ry + 2, Z)``, float64, owned by the unit.
    """
    _, ny, nz = fixed.shape
    for i in range(start, stop):
        for j in range(ny):
            s0 = 0.0
            s1 = 0.0
            s2 = 0.0
            s3 = 0.0
            s4 = 0.0
            for k in range(min(rz, nz - 1) + 1):
                a = np.float64(fixed[i, j, k])
                b = np.float64(moving[i, j, k])
                s0 += a
                s1 += b
                s2 += a * a
                s3 += b * b
                s4 += a * b
            for k in range(nz):
                sums[0, i, j, k] = s0
                sums[1, i, j, k] = s1
                sums[2, i, j, k] = s2
                sums[3, i, j, k] = s3
                sums[4, i, j, k] = s4
                q = k + rz + 1
                if q < nz:
                    a = np.float64(fixed[i, j, q])
                    b = np.float64(moving[i, j, q])
                    s0 += a
                    s1 += b
                    s2 += a * a
                    s3 += b * b
                    s4 += a * b
                q = k - rz
                if q >= 0:
                    a = np.float64(fixed[i, j, q])
                    b = np.float64(moving[i, j, q])
                    s0 -= a
                    s1 -= b
                    s2 -= a * a
                    s3 -= b * b
                    s4 -= a * b
        for c in range(5):
            box_slide_inplace(sums[c, i], ry, scratch)


@helper
def _count(p, r, n):
    """Samples of the window ``[p - r, p + r]`` clipped to ``[0, n - 1]``."""
    return min(p + r, n - 1) - max(p - r, 0) + 1


@kernel
def cc_steps(fixed, moving, sums, rx, ry, rz, grad2world, mask, use_mask, eps,
             forward, backward, scratch, partial, start, stop):
    """Finish the window sums along axis 0 and write the CC update fields, columns ``start:stop``.

    For ``start <= j < stop``: ``sums[:, :, j, :]`` becomes the full box sums,
    and ``forward[:, j]`` / ``backward[:, j]`` (shape ``(X, Y, Z, ndim)``,
    float32) the updates of the fixed / moving displacement. Voxels closer
    than the radius to a border, outside ``mask`` (when ``use_mask``) or whose
    window is flat (guard) get 0. ``partial`` (float64, length 2) receives
    ``[sum of local CC, number of voxels evaluated]``.
    """
    nx, ny, nz = fixed.shape
    nd = forward.shape[3]
    g = grad2world
    total = 0.0
    count = 0.0
    for j in range(start, stop):
        for c in range(5):
            box_slide_inplace(sums[c, :, j, :], rx, scratch)
        cy = _count(j, ry, ny)
        inside_j = j >= ry and j < ny - ry
        jm, jp = neighbours(j, ny)
        for i in range(nx):
            cxy = _count(i, rx, nx) * cy
            inside_ij = inside_j and i >= rx and i < nx - rx
            im, ip = neighbours(i, nx)
            for k in range(nz):
                for d in range(nd):
                    forward[i, j, k, d] = 0.0
                    backward[i, j, k, d] = 0.0
                if not (inside_ij and k >= rz and k < nz - rz):
                    continue
                if use_mask and mask[i, j, k] == 0:
                    continue
                count += 1.0
                n = np.float64(cxy * _count(k, rz, nz))
                s_i = sums[0, i, j, k]
                s_j = sums[1, i, j, k]
                s_ii = sums[2, i, j, k]
                s_jj = sums[3, i, j, k]
                s_ij = sums[4, i, j, k]
                a = s_ij - s_i * s_j / n
                b = s_ii - s_i * s_i / n
                c = s_jj - s_j * s_j / n
                if b <= CC_FLAT_RTOL * s_ii or c <= CC_FLAT_RTOL * s_jj or b * c < eps:
                    continue
                total += a * a / (b * c)
                ic = np.float64(fixed[i, j, k]) - s_i / n
                jc = np.float64(moving[i, j, k]) - s_j / n
                scale = 2.0 * a / (b * c)
                f_fixed = scale * (jc - a / b * ic)
                f_moving = scale * (ic - a / c * jc)
                km, kp = neighbours(k, nz)
                gx, gy, gz = world_gradient_at(fixed, g, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(forward, i, j, k, f_fixed * gx, f_fixed * gy, f_fixed * gz)
                gx, gy, gz = world_gradient_at(moving, g, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(backward, i, j, k, f_moving * gx, f_moving * gy, f_moving * gz)
    partial[0] = total
    partial[1] = count
