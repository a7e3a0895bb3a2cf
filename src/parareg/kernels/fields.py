"""Displacement-field kernels: composition, fixed-point inversion, norms, Jacobian determinant.

Conventions (shared by every kernel here and by :mod:`parareg.fields`):

field
    An array of shape ``(X, Y, Z, nd)``, float32, ``nd`` = 3 (a 2D field is
    ``(X, Y, 1, 2)``, see :mod:`parareg.kernels.lift`): displacements in
    world millimetres on a grid whose voxel ``p`` sits at world point
    ``x_p = vox2world @ p``. The field maps ``x`` to ``x + u(x)``.
between grid points
    Each component is interpolated linearly in the voxel space of the grid
    (:func:`parareg.kernels.interp.vector_at`, float64 arithmetic): defined
    on ``[0, n - 1]`` along every axis and **zero outside** (a point outside
    the grid does not move; ANTs and DIPY do the same). No clamping to the
    nearest boundary voxel.
sampling position
    A displacement ``d`` (mm) moves the voxel coordinate by ``disp2vox @ d``,
    ``disp2vox`` (3 x 3) the inverse of the linear part of ``vox2world``;
    kernels sample at ``p + disp2vox @ d`` and never form large world
    coordinates.

Every kernel covers axis-0 rows ``start:stop``, writes only those rows of its
output (and its own per-unit accumulator ``norms``), allocates nothing and
validates nothing. Norm accumulators are float64.
"""

from __future__ import annotations

import math

import numpy as np

from ._jit import inline_helper, kernel
from .interp import vector_at
from .stencil import component_diffs, load_vector, neighbours, store_vector

#: component indices (int64 values, not literals)
X_AXIS, Y_AXIS, Z_AXIS = np.int64(0), np.int64(1), np.int64(2)

#: smallest per-voxel step of the damped inversion (converges for stretches up to 32)
ALPHA_FLOOR = 0.0625


@inline_helper
def composed_at(outer, inner, disp2vox, i, j, k):
    """``inner[p]`` and ``outer(p + disp2vox @ inner[p])`` at voxel ``p = (i, j, k)``.

    Their sum is the displacement of ``phi_outer o phi_inner`` at ``p``.
    Returns six float64 values ``(dx, dy, dz, ox, oy, oz)``.
    """
    m = disp2vox
    dx, dy, dz = load_vector(inner, i, j, k)
    x = i + (m[0, 0] * dx + m[0, 1] * dy + m[0, 2] * dz)
    y = j + (m[1, 0] * dx + m[1, 1] * dy + m[1, 2] * dz)
    z = k + (m[2, 0] * dx + m[2, 1] * dy + m[2, 2] * dz)
    ox, oy, oz = vector_at(outer, x, y, z)
    return dx, dy, dz, ox, oy, oz


@kernel
def compose_3d(outer, inner, disp2vox, out, start, stop):
    """``out[p] = inner[p] + outer(p + disp2vox @ inner[p])`` for rows ``start:stop``.

    The map of ``out`` is ``phi_outer o phi_inner``. Voxel ``p`` reads
    ``inner`` only at ``p``, so ``out`` may be ``inner`` itself (never ``outer``).
    """
    _, ny, nz, _ = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                dx, dy, dz, ox, oy, oz = composed_at(outer, inner, disp2vox, i, j, k)
                store_vector(out, i, j, k, dx + ox, dy + oy, dz + oz)


@kernel
def invert_step_3d(forward, inverse, disp2vox, out, damped, alpha, previous, norms, start, stop):
    """One fixed-point step of the inverse of ``forward``, rows ``start:stop``.

    ``forward`` is the field being inverted and ``inverse`` the current
    estimate of its inverse. Measures the residual of the *input* ``inverse``,
    ``r[p] = inverse[p] + forward(p + disp2vox @ inverse[p])`` (the
    displacement of ``phi_forward o phi_inverse``, in mm), and stores
    ``norms[0] = sum |r|`` and ``norms[1] = max |r|`` over the rows.
    Plain step: ``out[p] = inverse[p] - r[p] = -forward(...)``. ``damped``:
    ``out[p] = inverse[p] - alpha[p] * r[p]``, with ``alpha`` halved (not below
    ``ALPHA_FLOOR``) where ``r`` reverses direction against ``previous[p]``
    and grown by 1.25 (up to 1) otherwise -- plain iteration overshoots where
    ``phi_forward`` stretches space by more than 2. ``alpha``/``previous`` are
    unused when not ``damped``; ``out`` may be ``inverse`` itself.
    """
    _, ny, nz, nd = out.shape
    total = 0.0
    largest = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                dx, dy, dz, fx, fy, fz = composed_at(forward, inverse, disp2vox, i, j, k)
                rx = dx + fx
                ry = dy + fy
                rz = dz + fz
                norm = math.sqrt(rx * rx + ry * ry + rz * rz)
                total += norm
                if norm > largest:
                    largest = norm
                if not damped:
                    store_vector(out, i, j, k, -fx, -fy, -fz)
                    continue
                px, py, pz = load_vector(previous, i, j, k)
                turn = rx * px + ry * py + rz * pz
                if turn < 0.0:  # overshoot: the residual reversed direction
                    half = alpha[i, j, k] * 0.5
                    alpha[i, j, k] = ALPHA_FLOOR if ALPHA_FLOOR > half else half
                else:
                    grown = alpha[i, j, k] * 1.25
                    alpha[i, j, k] = 1.0 if 1.0 < grown else grown
                a = alpha[i, j, k]
                store_vector(previous, i, j, k, rx, ry, rz)
                store_vector(out, i, j, k, dx - a * rx, dy - a * ry, dz - a * rz)
    norms[0] = total
    norms[1] = largest


@kernel
def composed_norms_3d(outer, inner, disp2vox, mask, use_mask, norms, start, stop):
    """Sum, max and count of ``|inner[p] + outer(p + disp2vox @ inner[p])|``, rows ``start:stop``.

    Only voxels with ``mask[p] != 0`` count when ``use_mask``; ``norms`` gets
    ``[sum, max, count]``.
    """
    _, ny, nz, _ = inner.shape
    total = 0.0
    largest = 0.0
    count = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                if use_mask and mask[i, j, k] == 0:
                    continue
                dx, dy, dz, ox, oy, oz = composed_at(outer, inner, disp2vox, i, j, k)
                rx = dx + ox
                ry = dy + oy
                rz = dz + oz
                norm = math.sqrt(rx * rx + ry * ry + rz * rz)
                total += norm
                if norm > largest:
                    largest = norm
                count += 1.0
    norms[0] = total
    norms[1] = largest
    norms[2] = count


@kernel
def jacobian_determinant_3d(field, disp2vox, out, start, stop):
    """``out[p] = det(I + du/dx)`` at ``p`` for rows ``start:stop``.

    ``du/dp`` follows ``numpy.gradient`` (central inside, one-sided on the
    edges, 0 along a length-1 axis); ``du/dx = du/dp @ disp2vox``. A
    2-component field has a zero third component (``det`` is then the 2D one).
    """
    nx, ny, nz, _ = field.shape
    g = disp2vox
    for i in range(start, stop):
        im, ip = neighbours(i, nx)
        for j in range(ny):
            jm, jp = neighbours(j, ny)
            for k in range(nz):
                km, kp = neighbours(k, nz)
                # row c of du/dp: derivatives of component c along voxel axes
                # (components as int64, not literals: one specialisation of the helper)
                a0, a1, a2 = component_diffs(field, X_AXIS, i, j, k, im, ip, jm, jp, km, kp)
                b0, b1, b2 = component_diffs(field, Y_AXIS, i, j, k, im, ip, jm, jp, km, kp)
                c0, c1, c2 = component_diffs(field, Z_AXIS, i, j, k, im, ip, jm, jp, km, kp)
                # I + du/dp @ disp2vox
                j00 = 1.0 + a0 * g[0, 0] + a1 * g[1, 0] + a2 * g[2, 0]
                j01 = a0 * g[0, 1] + a1 * g[1, 1] + a2 * g[2, 1]
                j02 = a0 * g[0, 2] + a1 * g[1, 2] + a2 * g[2, 2]
                j10 = b0 * g[0, 0] + b1 * g[1, 0] + b2 * g[2, 0]
                j11 = 1.0 + b0 * g[0, 1] + b1 * g[1, 1] + b2 * g[2, 1]
                j12 = b0 * g[0, 2] + b1 * g[1, 2] + b2 * g[2, 2]
                j20 = c0 * g[0, 0] + c1 * g[1, 0] + c2 * g[2, 0]
                j21 = c0 * g[0, 1] + c1 * g[1, 1] + c2 * g[2, 1]
                j22 = 1.0 + c0 * g[0, 2] + c1 * g[1, 2] + c2 * g[2, 2]
                out[i, j, k] = (j00 * (j11 * j22 - j12 * j21)
                                - j01 * (j10 * j22 - j12 * j20)
                                + j02 * (j10 * j21 - j11 * j20))


@kernel
def max_scaled_norm(rows, scale, start, stop):
    """``max_r sqrt(sum_c (rows[r, c] * scale[c]) ** 2)`` over rows ``start:stop``."""
    best = 0.0
    width = rows.shape[1]
    for r in range(start, stop):
        total = 0.0
        for c in range(width):
            v = rows[r, c] * scale[c]
            total += v * v
        if total > best:
            best = total
    return math.sqrt(best)
