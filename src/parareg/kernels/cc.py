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
    for p in range((n - 1 if n - 1 < r else r) + 1):
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
            for k in range((nz - 1 if nz - 1 < rz else rz) + 1):
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
    hi = n - 1 if n - 1 < p + r else p + r
    lo = 0 if 0 > p - r else p - r
    return hi - lo + 1


@inline_helper  # two kernels, one call site each: inline
def window_statistics(sums, i, j, k, cxy, rz, nz, eps):
    """The centred statistics of the window of voxel ``(i, j, k)`` from its box sums.

    ``cxy`` is the window's sample count in the ``(x, y)`` plane. Returns
    ``(flat, a, b, c, mean_i, mean_j)``: ``a``, ``b``, ``c`` the module's ``A``,
    ``B``, ``C`` (float64), the window means of ``I`` and ``J``, and ``flat``,
    true where the guard zeroes the voxel (``B`` or ``C`` lost in rounding, or
    ``B C < eps``).
    """
    n = np.float64(cxy * _count(k, rz, nz))
    s_i = sums[0, i, j, k]
    s_j = sums[1, i, j, k]
    s_ii = sums[2, i, j, k]
    s_jj = sums[3, i, j, k]
    a = sums[4, i, j, k] - s_i * s_j / n
    b = s_ii - s_i * s_i / n
    c = s_jj - s_j * s_j / n
    flat = b <= CC_FLAT_RTOL * s_ii or c <= CC_FLAT_RTOL * s_jj or b * c < eps
    return flat, a, b, c, s_i / n, s_j / n


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
                flat, a, b, c, mean_i, mean_j = window_statistics(sums, i, j, k, cxy, rz, nz,
                                                                  eps)
                if flat:
                    continue
                total += a * a / (b * c)
                ic = np.float64(fixed[i, j, k]) - mean_i
                jc = np.float64(moving[i, j, k]) - mean_j
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


# ----------------------------------------------------------------------------------------------
# the exact gradient of the mean local CC (every window containing a voxel, not only its own)

#: channels of the exact gradient's coefficients (see :func:`cc_exact_coefficients`)
CC_EXACT_CHANNELS = 7


@inline_helper
def slide_line_inplace(line, r, keep):
    """``line[p] <- sum(line[q] for max(0, p - r) <= q <= min(n - 1, p + r))``, in place.

    The running sum of :func:`box_slide_inplace` along a 1D ``line`` (float64);
    ``keep`` (at least ``r + 1`` float64) holds the last ``r + 1`` original values.
    """
    n = line.shape[0]
    acc = 0.0
    for p in range((n - 1 if n - 1 < r else r) + 1):
        acc += line[p]
    for p in range(n):
        keep[p % (r + 1)] = line[p]
        line[p] = acc
        q = p + r + 1
        if q < n:
            acc += line[q]
        q = p - r
        if q >= 0:
            acc -= keep[q % (r + 1)]


@kernel
def box_sums_yz(channels, ry, rz, keep, scratch, start, stop):
    """Window sums along axes 2 then 1 of every channel, in place, rows ``start:stop``.

    ``channels`` has shape ``(C, X, Y, Z)``, float64; ``keep`` at least
    ``rz + 1`` and ``scratch`` at least ``(ry + 2, Z)``, float64, owned by the unit.
    """
    n_channels, _, ny, _ = channels.shape
    for i in range(start, stop):
        for c in range(n_channels):
            if rz > 0:
                for j in range(ny):
                    slide_line_inplace(channels[c, i, j], rz, keep)
            box_slide_inplace(channels[c, i], ry, scratch)


@kernel
def cc_exact_coefficients(fixed, moving, sums, rx, ry, rz, mask, use_mask, eps, delta_f,
                          delta_m, coef, scratch, partial, start, stop):
    """Finish the window sums along axis 0 and write each window's gradient coefficients.

    For ``start <= j < stop``: ``sums[:, :, j, :]`` becomes the full box sums
    (as :func:`cc_steps`) and ``coef[:, :, j, :]`` (shape ``(7, X, Y, Z)``,
    float64) the coefficients of the window centred on each voxel ``y``, with
    ``B' = B + delta_f``, ``C' = C + delta_m`` (the regularised variances),
    ``alpha = 2A / (B'C')``, ``beta_f = alpha A / B'``, ``beta_m = alpha A / C'``
    and the window means ``Ī``, ``J̄``::

        alpha, alpha J̄, alpha Ī, beta_f, beta_f Ī, beta_m, beta_m J̄

    zero where :func:`cc_steps` writes zero fields (border, mask, flat window).
    ``partial`` receives ``[sum of A^2 / (B'C'), number of voxels evaluated]``.
    """
    nx, ny, nz = fixed.shape
    total = 0.0
    count = 0.0
    for j in range(start, stop):
        for c in range(5):
            box_slide_inplace(sums[c, :, j, :], rx, scratch)
        cy = _count(j, ry, ny)
        inside_j = j >= ry and j < ny - ry
        for i in range(nx):
            cxy = _count(i, rx, nx) * cy
            inside_ij = inside_j and i >= rx and i < nx - rx
            for k in range(nz):
                for c in range(CC_EXACT_CHANNELS):
                    coef[c, i, j, k] = 0.0
                if not (inside_ij and k >= rz and k < nz - rz):
                    continue
                if use_mask and mask[i, j, k] == 0:
                    continue
                count += 1.0
                flat, a, b, c, mean_i, mean_j = window_statistics(sums, i, j, k, cxy, rz, nz,
                                                                  eps)
                if flat:
                    continue
                b += delta_f
                c += delta_m
                total += a * a / (b * c)
                alpha = 2.0 * a / (b * c)
                beta_f = alpha * a / b
                beta_m = alpha * a / c
                coef[0, i, j, k] = alpha
                coef[1, i, j, k] = alpha * mean_j
                coef[2, i, j, k] = alpha * mean_i
                coef[3, i, j, k] = beta_f
                coef[4, i, j, k] = beta_f * mean_i
                coef[5, i, j, k] = beta_m
                coef[6, i, j, k] = beta_m * mean_j
    partial[0] = total
    partial[1] = count


@kernel
def cc_exact_steps(fixed, moving, coef, rx, grad2world, mask, use_mask, forward, backward,
                   scratch, start, stop):
    """Finish the coefficients' window sums along axis 0 and write the exact update fields.

    ``coef`` holds the coefficients of :func:`cc_exact_coefficients` summed
    over the window along axes 2 and 1 (:func:`box_sums_yz`); for
    ``start <= j < stop`` the sums along axis 0 are finished in place, so that
    ``coef[c, x]`` is the sum over every window containing ``x``, and::

        d sum_y cc(y) / d I(x) = J(x) S_alpha - S_alpha J̄ - I(x) S_beta_f + S_beta_f Ī
        d sum_y cc(y) / d J(x) = I(x) S_alpha - S_alpha Ī - J(x) S_beta_m + S_beta_m J̄

    times the world gradient of ``I`` (``forward``) or ``J`` (``backward``).
    Voxels outside ``mask`` (when ``use_mask``) get 0.
    """
    nx, ny, nz = fixed.shape
    nd = forward.shape[3]
    g = grad2world
    for j in range(start, stop):
        for c in range(CC_EXACT_CHANNELS):
            box_slide_inplace(coef[c, :, j, :], rx, scratch)
        jm, jp = neighbours(j, ny)
        for i in range(nx):
            im, ip = neighbours(i, nx)
            for k in range(nz):
                for d in range(nd):
                    forward[i, j, k, d] = 0.0
                    backward[i, j, k, d] = 0.0
                if use_mask and mask[i, j, k] == 0:
                    continue
                s_alpha = coef[0, i, j, k]
                f = np.float64(fixed[i, j, k])
                m = np.float64(moving[i, j, k])
                f_fixed = m * s_alpha - coef[1, i, j, k] - f * coef[3, i, j, k] + coef[4, i, j, k]
                f_moving = f * s_alpha - coef[2, i, j, k] - m * coef[5, i, j, k] + coef[6, i, j, k]
                km, kp = neighbours(k, nz)
                gx, gy, gz = world_gradient_at(fixed, g, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(forward, i, j, k, f_fixed * gx, f_fixed * gy, f_fixed * gz)
                gx, gy, gz = world_gradient_at(moving, g, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(backward, i, j, k, f_moving * gx, f_moving * gy, f_moving * gz)
