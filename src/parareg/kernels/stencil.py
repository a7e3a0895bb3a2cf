"""The finite-difference stencil of every gradient kernel, and vector loads and stores.

Voxel-axis derivatives follow ``numpy.gradient``: second-order central
differences inside, first-order one-sided differences on the first and
last voxel of an axis, and 0 along an axis of length 1 (the third axis of a
2D image passed as ``(X, Y, 1)``). They are mapped to world millimetres by
``g = vox_grad2world_grad = inv(A).T``, ``A`` the linear part of
``vox2world`` (3 x 3; for a 2D image padded with the identity, so the third
world component is 0).

Callers hoist the clamped neighbour indices out of their inner loops
(:func:`neighbours`). Vector fields and gradient images have 2 or 3
components on a 3D grid: :func:`load_vector` and :func:`store_vector` read
and write the first ``nd`` of three values.
"""

from __future__ import annotations

import numpy as np

from ._jit import helper, inline_helper


@helper
def diff(lo, mid, hi, idx, n):
    """d/dx at index ``idx`` of a line with ``n`` samples, given neighbours and centre."""
    if n == 1:
        return 0.0
    if idx == 0:
        return hi - mid
    if idx == n - 1:
        return mid - lo
    return 0.5 * (hi - lo)


@helper
def neighbours(i, n):
    """``(max(i - 1, 0), min(i + 1, n - 1))``: the stencil's neighbours of ``i`` on ``n`` samples."""
    return (0 if 0 > i - 1 else i - 1), (n - 1 if n - 1 < i + 1 else i + 1)


@helper
def to_world(g, dx, dy, dz):
    """``g @ (dx, dy, dz)``: voxel-axis derivatives -> world-axis derivatives."""
    return (g[0, 0] * dx + g[0, 1] * dy + g[0, 2] * dz,
            g[1, 0] * dx + g[1, 1] * dy + g[1, 2] * dz,
            g[2, 0] * dx + g[2, 1] * dy + g[2, 2] * dz)


@inline_helper
def world_gradient_at(img, g, i, j, k, im, ip, jm, jp, km, kp):
    """World gradient ``(gx, gy, gz)`` of ``img`` at ``(i, j, k)`` (float64).

    ``im, ip, ...`` are the :func:`neighbours` of ``i``, ``j`` and ``k``.
    """
    nx, ny, nz = img.shape
    f64 = np.float64
    v = f64(img[i, j, k])
    return to_world(g,
                    diff(f64(img[im, j, k]), v, f64(img[ip, j, k]), i, nx),
                    diff(f64(img[i, jm, k]), v, f64(img[i, jp, k]), j, ny),
                    diff(f64(img[i, j, km]), v, f64(img[i, j, kp]), k, nz))


@inline_helper
def component_diffs(field, c, i, j, k, im, ip, jm, jp, km, kp):
    """Voxel-axis derivatives of component ``c`` of ``field``; zeros when ``c >= nd``."""
    nx, ny, nz, nd = field.shape
    if c >= nd:
        return 0.0, 0.0, 0.0
    f64 = np.float64
    v = f64(field[i, j, k, c])
    return (diff(f64(field[im, j, k, c]), v, f64(field[ip, j, k, c]), i, nx),
            diff(f64(field[i, jm, k, c]), v, f64(field[i, jp, k, c]), j, ny),
            diff(f64(field[i, j, km, c]), v, f64(field[i, j, kp, c]), k, nz))


@helper
def load_vector(field, i, j, k):
    """``field[i, j, k]`` as three float64 values (the third 0 for a 2-component field)."""
    vz = float(field[i, j, k, 2]) if field.shape[3] == 3 else 0.0
    return float(field[i, j, k, 0]), float(field[i, j, k, 1]), vz


@helper
def store_vector(out, i, j, k, vx, vy, vz):
    """``out[i, j, k] = (vx, vy[, vz])``: the first ``out.shape[3]`` of the three values."""
    out[i, j, k, 0] = vx
    out[i, j, k, 1] = vy
    if out.shape[3] == 3:
        out[i, j, k, 2] = vz
