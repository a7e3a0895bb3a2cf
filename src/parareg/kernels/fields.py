"""Displacement-field kernels: composition, fixed-point inversion, norms, Jacobian determinant.

Conventions (shared by every kernel here and by :mod:`parareg.fields`):

field
    An array of shape ``(*grid, ndim)``, float32: displacements in world
    millimetres on a grid whose voxel ``p`` sits at world point
    ``x_p = vox2world @ p``. The field maps ``x`` to ``x + u(x)``.
between grid points
    Each component is interpolated linearly in the voxel space of the grid,
    with the boundary rule of :func:`parareg.kernels.interp.linear_3d`
    (float64 arithmetic): defined on ``[0, n - 1]`` along every axis and
    **zero outside** (a point outside the grid does not move; ANTs and DIPY
    do the same). No clamping to the nearest boundary voxel.
sampling position
    A displacement ``d`` (mm) moves the voxel coordinate by ``disp2vox @ d``,
    ``disp2vox`` the inverse of the linear part of ``vox2world``; kernels
    sample at ``p + disp2vox @ d`` and never form large world coordinates.

Every kernel covers axis-0 rows ``start:stop``, writes only those rows of its
output (and its own per-unit accumulator ``norms``), allocates nothing and
validates nothing. Norm accumulators are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .gradient import _diff
from .interp import _lower


@njit(nogil=True, cache=True)
def vector_3d(field, x, y, z):
    """The 3 components of ``field`` at voxel coordinate ``(x, y, z)``; zeros outside the grid.

    Trilinear weights are formed once and shared by the components (twice as
    fast as three scalar interpolations).
    """
    nx, ny, nz, _ = field.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1 and 0.0 <= z <= nz - 1):
        return 0.0, 0.0, 0.0
    i0, i1, fx = _lower(x, nx)
    j0, j1, fy = _lower(y, ny)
    k0, k1, fz = _lower(z, nz)
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
        vz += w0 * field[a, b, k0, 2] + w1 * field[a, b, k1, 2]
    return vx, vy, vz


@njit(nogil=True, cache=True)
def vector_2d(field, x, y):
    """2D twin of :func:`vector_3d`."""
    nx, ny, _ = field.shape
    if not (0.0 <= x <= nx - 1 and 0.0 <= y <= ny - 1):
        return 0.0, 0.0
    i0, i1, fx = _lower(x, nx)
    j0, j1, fy = _lower(y, ny)
    gx = 1.0 - fx
    gy = 1.0 - fy
    vx = 0.0
    vy = 0.0
    for a, wa in ((i0, gx), (i1, fx)):
        w0 = wa * gy
        w1 = wa * fy
        vx += w0 * field[a, j0, 0] + w1 * field[a, j1, 0]
        vy += w0 * field[a, j0, 1] + w1 * field[a, j1, 1]
    return vx, vy


# --- composition -------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def compose_3d(outer, inner, disp2vox, out, start, stop):
    """``out[p] = inner[p] + outer(p + disp2vox @ inner[p])`` for rows ``start:stop``.

    The map of ``out`` is ``phi_outer o phi_inner``. Voxel ``p`` reads
    ``inner`` only at ``p``, so ``out`` may be ``inner`` itself (never ``outer``).
    """
    m = disp2vox
    _, ny, nz, _ = out.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                dx = float(inner[i, j, k, 0])
                dy = float(inner[i, j, k, 1])
                dz = float(inner[i, j, k, 2])
                x = i + (m[0, 0] * dx + m[0, 1] * dy + m[0, 2] * dz)
                y = j + (m[1, 0] * dx + m[1, 1] * dy + m[1, 2] * dz)
                z = k + (m[2, 0] * dx + m[2, 1] * dy + m[2, 2] * dz)
                ox, oy, oz = vector_3d(outer, x, y, z)
                out[i, j, k, 0] = dx + ox
                out[i, j, k, 1] = dy + oy
                out[i, j, k, 2] = dz + oz


@njit(nogil=True, cache=True)
def compose_2d(outer, inner, disp2vox, out, start, stop):
    """2D twin of :func:`compose_3d`."""
    m = disp2vox
    ny = out.shape[1]
    for i in range(start, stop):
        for j in range(ny):
            dx = float(inner[i, j, 0])
            dy = float(inner[i, j, 1])
            x = i + (m[0, 0] * dx + m[0, 1] * dy)
            y = j + (m[1, 0] * dx + m[1, 1] * dy)
            ox, oy = vector_2d(outer, x, y)
            out[i, j, 0] = dx + ox
            out[i, j, 1] = dy + oy


# --- fixed-point inversion step ----------------------------------------------------------


#: smallest per-voxel step of the damped inversion (converges for stretches up to 32)
ALPHA_FLOOR = 0.0625


@njit(nogil=True, cache=True)
def _damped(r, previous, alpha):
    """Update the per-voxel step from the residual's turn; return the step to use."""
    turn = 0.0
    for c in range(r.shape[0]):
        turn += r[c] * previous[c]
    if turn < 0.0:  # overshoot: the residual reversed direction
        alpha[0] = max(alpha[0] * 0.5, ALPHA_FLOOR)
    else:
        alpha[0] = min(alpha[0] * 1.25, 1.0)
    previous[:] = r
    return alpha[0]


@njit(nogil=True, cache=True)
def invert_step_3d(forward, inverse, disp2vox, out, damped, alpha, previous, norms, start, stop):
    """One fixed-point step of the inverse of ``forward``, rows ``start:stop``.

    Measures the residual of the *input* ``inverse``,
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
    m = disp2vox
    _, ny, nz, _ = out.shape
    total = 0.0
    largest = 0.0
    r = np.empty(3)
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                dx = float(inverse[i, j, k, 0])
                dy = float(inverse[i, j, k, 1])
                dz = float(inverse[i, j, k, 2])
                x = i + (m[0, 0] * dx + m[0, 1] * dy + m[0, 2] * dz)
                y = j + (m[1, 0] * dx + m[1, 1] * dy + m[1, 2] * dz)
                z = k + (m[2, 0] * dx + m[2, 1] * dy + m[2, 2] * dz)
                fx, fy, fz = vector_3d(forward, x, y, z)
                r[0] = dx + fx
                r[1] = dy + fy
                r[2] = dz + fz
                norm = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
                total += norm
                if norm > largest:
                    largest = norm
                if damped:
                    a = _damped(r, previous[i, j, k], alpha[i, j, k:k + 1])
                    out[i, j, k, 0] = dx - a * r[0]
                    out[i, j, k, 1] = dy - a * r[1]
                    out[i, j, k, 2] = dz - a * r[2]
                else:
                    out[i, j, k, 0] = -fx
                    out[i, j, k, 1] = -fy
                    out[i, j, k, 2] = -fz
    norms[0] = total
    norms[1] = largest


@njit(nogil=True, cache=True)
def invert_step_2d(forward, inverse, disp2vox, out, damped, alpha, previous, norms, start, stop):
    """2D twin of :func:`invert_step_3d`."""
    m = disp2vox
    ny = out.shape[1]
    total = 0.0
    largest = 0.0
    r = np.empty(2)
    for i in range(start, stop):
        for j in range(ny):
            dx = float(inverse[i, j, 0])
            dy = float(inverse[i, j, 1])
            x = i + (m[0, 0] * dx + m[0, 1] * dy)
            y = j + (m[1, 0] * dx + m[1, 1] * dy)
            fx, fy = vector_2d(forward, x, y)
            r[0] = dx + fx
            r[1] = dy + fy
            norm = math.sqrt(r[0] * r[0] + r[1] * r[1])
            total += norm
            if norm > largest:
                largest = norm
            if damped:
                a = _damped(r, previous[i, j], alpha[i, j:j + 1])
                out[i, j, 0] = dx - a * r[0]
                out[i, j, 1] = dy - a * r[1]
            else:
                out[i, j, 0] = -fx
                out[i, j, 1] = -fy
    norms[0] = total
    norms[1] = largest


# --- norms of a composition (inverse consistency) ----------------------------------------


@njit(nogil=True, cache=True)
def composed_norms_3d(outer, inner, disp2vox, mask, use_mask, norms, start, stop):
    """Sum, max and count of ``|inner[p] + outer(p + disp2vox @ inner[p])|``, rows ``start:stop``.

    Only voxels with ``mask[p] != 0`` count when ``use_mask``; ``norms`` gets
    ``[sum, max, count]``.
    """
    m = disp2vox
    _, ny, nz, _ = inner.shape
    total = 0.0
    largest = 0.0
    count = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                if use_mask and mask[i, j, k] == 0:
                    continue
                dx = float(inner[i, j, k, 0])
                dy = float(inner[i, j, k, 1])
                dz = float(inner[i, j, k, 2])
                x = i + (m[0, 0] * dx + m[0, 1] * dy + m[0, 2] * dz)
                y = j + (m[1, 0] * dx + m[1, 1] * dy + m[1, 2] * dz)
                z = k + (m[2, 0] * dx + m[2, 1] * dy + m[2, 2] * dz)
                ox, oy, oz = vector_3d(outer, x, y, z)
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


@njit(nogil=True, cache=True)
def composed_norms_2d(outer, inner, disp2vox, mask, use_mask, norms, start, stop):
    """2D twin of :func:`composed_norms_3d`."""
    m = disp2vox
    ny = inner.shape[1]
    total = 0.0
    largest = 0.0
    count = 0.0
    for i in range(start, stop):
        for j in range(ny):
            if use_mask and mask[i, j] == 0:
                continue
            dx = float(inner[i, j, 0])
            dy = float(inner[i, j, 1])
            x = i + (m[0, 0] * dx + m[0, 1] * dy)
            y = j + (m[1, 0] * dx + m[1, 1] * dy)
            ox, oy = vector_2d(outer, x, y)
            rx = dx + ox
            ry = dy + oy
            norm = math.sqrt(rx * rx + ry * ry)
            total += norm
            if norm > largest:
                largest = norm
            count += 1.0
    norms[0] = total
    norms[1] = largest
    norms[2] = count


# --- Jacobian determinant ----------------------------------------------------------------


@njit(nogil=True, cache=True)
def _axis_diffs_3d(field, c, i, j, k, im, ip, jm, jp, km, kp):
    """``numpy.gradient``-style derivatives of component ``c`` along the three voxel axes."""
    nx, ny, nz, _ = field.shape
    mid = float(field[i, j, k, c])
    return (_diff(float(field[im, j, k, c]), mid, float(field[ip, j, k, c]), i, nx),
            _diff(float(field[i, jm, k, c]), mid, float(field[i, jp, k, c]), j, ny),
            _diff(float(field[i, j, km, c]), mid, float(field[i, j, kp, c]), k, nz))


@njit(nogil=True, cache=True)
def jacobian_determinant_3d(field, disp2vox, out, start, stop):
    """``out[p] = det(I + du/dx)`` at ``p`` for rows ``start:stop``.

    ``du/dp`` follows ``numpy.gradient`` (central inside, one-sided on the
    edges, 0 along a length-1 axis); ``du/dx = du/dp @ disp2vox``.
    """
    nx, ny, nz, _ = field.shape
    g = disp2vox
    for i in range(start, stop):
        im = max(i - 1, 0)
        ip = min(i + 1, nx - 1)
        for j in range(ny):
            jm = max(j - 1, 0)
            jp = min(j + 1, ny - 1)
            for k in range(nz):
                km = max(k - 1, 0)
                kp = min(k + 1, nz - 1)
                # row c of du/dp: derivatives of component c along voxel axes
                a0, a1, a2 = _axis_diffs_3d(field, 0, i, j, k, im, ip, jm, jp, km, kp)
                b0, b1, b2 = _axis_diffs_3d(field, 1, i, j, k, im, ip, jm, jp, km, kp)
                c0, c1, c2 = _axis_diffs_3d(field, 2, i, j, k, im, ip, jm, jp, km, kp)
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


@njit(nogil=True, cache=True)
def jacobian_determinant_2d(field, disp2vox, out, start, stop):
    """2D twin of :func:`jacobian_determinant_3d`."""
    nx, ny, _ = field.shape
    g = disp2vox
    for i in range(start, stop):
        im = max(i - 1, 0)
        ip = min(i + 1, nx - 1)
        for j in range(ny):
            jm = max(j - 1, 0)
            jp = min(j + 1, ny - 1)
            a0 = _diff(float(field[im, j, 0]), float(field[i, j, 0]), float(field[ip, j, 0]), i, nx)
            a1 = _diff(float(field[i, jm, 0]), float(field[i, j, 0]), float(field[i, jp, 0]), j, ny)
            b0 = _diff(float(field[im, j, 1]), float(field[i, j, 1]), float(field[ip, j, 1]), i, nx)
            b1 = _diff(float(field[i, jm, 1]), float(field[i, j, 1]), float(field[i, jp, 1]), j, ny)
            j00 = 1.0 + a0 * g[0, 0] + a1 * g[1, 0]
            j01 = a0 * g[0, 1] + a1 * g[1, 1]
            j10 = b0 * g[0, 0] + b1 * g[1, 0]
            j11 = 1.0 + b0 * g[0, 1] + b1 * g[1, 1]
            out[i, j] = j00 * j11 - j01 * j10


#: (operation, ndim) -> kernel, for the field drivers in :mod:`parareg.fields`.
FIELD_KERNELS = {
    ("compose", 2): compose_2d,
    ("compose", 3): compose_3d,
    ("invert_step", 2): invert_step_2d,
    ("invert_step", 3): invert_step_3d,
    ("composed_norms", 2): composed_norms_2d,
    ("composed_norms", 3): composed_norms_3d,
    ("jacobian_determinant", 2): jacobian_determinant_2d,
    ("jacobian_determinant", 3): jacobian_determinant_3d,
}


def field_kernel(operation: str, ndim: int):
    """The numba kernel for ``operation`` on ``ndim``-dimensional displacement fields."""
    try:
        return FIELD_KERNELS[(operation, ndim)]
    except KeyError:
        raise ValueError(f"no field kernel {operation!r} for {ndim}D fields") from None


@njit(nogil=True, cache=True)
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
