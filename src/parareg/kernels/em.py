"""Expectation-maximisation (Arce-Santana et al. 2014, as DIPY's ``EMMetric``) kernels for SyN.

Arrays are 3D ``(X, Y, Z)`` (a 2D image as ``(X, Y, 1)``); every kernel
works on rows ``start:stop`` of axis 0 and writes only there (or to its own
per-unit buffer). See :mod:`parareg.metrics.syn_em` for the model.

``forward`` and ``backward`` are the update fields of the fixed image's
displacement ``u_s`` and of the moving image's ``u_m`` (the names of
:meth:`parareg.metrics.syn_base.SyNMetric.compute`), each ``(X, Y, Z, ndim)``
float32 with 2 or 3 components.
"""

from __future__ import annotations

import numpy as np

from ._jit import inline_helper, kernel
from .ssd import store_demons_step
from .stencil import diff, neighbours, to_world, world_gradient_at

#: DIPY's quantisation epsilon (intensity units)
QUANTIZE_EPS = 1e-8


@kernel
def positive_range(img, partial, start, stop):
    """``partial = [min, max, count]`` of the positive values of ``img[start:stop]``."""
    _, ny, nz = img.shape
    lo = 0.0
    hi = 0.0
    count = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                v = np.float64(img[i, j, k])
                if v > 0.0:
                    if count == 0.0 or v < lo:
                        lo = v
                    if count == 0.0 or v > hi:
                        hi = v
                    count += 1.0
    partial[0] = lo
    partial[1] = hi
    partial[2] = count


@kernel
def quantize_positive(img, lo, delta, levels, labels, start, stop):
    """``labels = 0`` where ``img <= 0``, else ``1 + floor((img - lo + eps) / delta)``.

    Labels are clipped to ``levels - 1``.
    """
    _, ny, nz = img.shape
    top = levels - 2
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                v = np.float64(img[i, j, k])
                if v > 0.0:
                    q = int((v - lo + QUANTIZE_EPS) / delta)
                    labels[i, j, k] = 1 + min(max(q, 0), top)
                else:
                    labels[i, j, k] = 0


@kernel
def class_sums(labels, values, mask, use_mask, stats, start, stop):
    """``stats[l] = [count, sum, sum of squares]`` of ``values`` where ``labels == l`` (in mask)."""
    _, ny, nz = labels.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                if use_mask and mask[i, j, k] == 0:
                    continue
                v = np.float64(values[i, j, k])
                q = labels[i, j, k]
                stats[q, 0] += 1.0
                stats[q, 1] += v
                stats[q, 2] += v * v


@inline_helper
def lookup_gradient_at(labels, table, g, i, j, k, im, ip, jm, jp, km, kp):
    """World gradient ``(gx, gy, gz)`` of the field ``table[labels]`` at ``(i, j, k)``.

    Neighbour indices as in :func:`parareg.kernels.stencil.world_gradient_at`.
    """
    nx, ny, nz = labels.shape
    v = table[labels[i, j, k]]
    return to_world(g,
                    diff(table[labels[im, j, k]], v, table[labels[ip, j, k]], i, nx),
                    diff(table[labels[i, jm, k]], v, table[labels[i, jp, k]], j, ny),
                    diff(table[labels[i, j, km]], v, table[labels[i, j, kp]], k, nz))


@kernel
def em_steps(fixed, moving, fixed_labels, moving_labels, fixed_means, fixed_vars,
             moving_means, moving_vars, grad2world, sigma_x_sq, double_gradient, mask,
             use_mask, forward, backward, partial, start, stop):
    """EM demons updates for rows ``start:stop``.

    ``fixed_means[l]``/``fixed_vars[l]``: mean/variance of the fixed image
    over the voxels whose moving label is ``l`` (and vice versa). With
    ``I_hat = fixed_means[moving_labels]`` and
    ``J_hat = moving_means[fixed_labels]``: ``forward`` is the demons step of
    ``I_hat - I`` along ``grad I`` (averaged with ``grad I_hat`` when
    ``double_gradient``) with ``sigma^2 = fixed_vars[moving_labels]``;
    ``backward`` likewise for ``J``.
    ``partial = [sum (I - I_hat)^2 + (J - J_hat)^2, voxels]``.
    """
    nx, ny, nz = fixed.shape
    nd = forward.shape[3]
    g = grad2world
    total = 0.0
    count = 0.0
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
                lm = moving_labels[i, j, k]
                ls = fixed_labels[i, j, k]
                delta_fixed = fixed_means[lm] - np.float64(fixed[i, j, k])
                delta_moving = moving_means[ls] - np.float64(moving[i, j, k])
                total += delta_fixed * delta_fixed + delta_moving * delta_moving
                count += 1.0
                g_fixed = world_gradient_at(fixed, g, i, j, k, im, ip, jm, jp, km, kp)
                g_moving = world_gradient_at(moving, g, i, j, k, im, ip, jm, jp, km, kp)
                if double_gradient:
                    h_fixed = lookup_gradient_at(moving_labels, fixed_means, g, i, j, k,
                                                  im, ip, jm, jp, km, kp)
                    h_moving = lookup_gradient_at(fixed_labels, moving_means, g, i, j, k,
                                                  im, ip, jm, jp, km, kp)
                    g_fixed = (0.5 * (g_fixed[0] + h_fixed[0]),
                                0.5 * (g_fixed[1] + h_fixed[1]),
                                0.5 * (g_fixed[2] + h_fixed[2]))
                    g_moving = (0.5 * (g_moving[0] + h_moving[0]),
                                0.5 * (g_moving[1] + h_moving[1]),
                                0.5 * (g_moving[2] + h_moving[2]))
                store_demons_step(delta_fixed, fixed_vars[lm], sigma_x_sq, g_fixed, forward,
                                  i, j, k)
                store_demons_step(delta_moving, moving_vars[ls], sigma_x_sq, g_moving, backward,
                                  i, j, k)
    partial[0] = total
    partial[1] = count
