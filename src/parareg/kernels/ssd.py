"""Demons (SSD) update fields for SyN, one slab of axis-0 rows per call.

Arrays are 3D ``(X, Y, Z)``; a 2D image is passed as ``(X, Y, 1)``. The
demons step of a target difference ``delta`` along an image gradient ``g``
is ``delta * g / (|g|^2 + sigma^2 / sigma_x^2)`` (Vercauteren et al. 2009,
eq. 4), 0 where the denominator is below :data:`DEMONS_TINY`. See
:mod:`parareg.metrics.syn_ssd` and :mod:`parareg.metrics.syn_em`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gradient import _diff

#: denominators below this give a zero step (as DIPY's demons steps)
DEMONS_TINY = 1e-9


@njit(nogil=True, cache=True, inline="always")
def world_gradient_at(img, g, i, j, k, im, ip, jm, jp, km, kp):
    """World gradient ``(gx, gy, gz)`` of ``img`` at ``(i, j, k)`` (``gz = 0`` in 2D).

    ``im, ip, ...`` are the neighbour indices clamped to the image (``max(i - 1, 0)``,
    ``min(i + 1, nx - 1)``, ...), hoisted out of the inner loops by the caller.
    """
    nx, ny, nz = img.shape
    f64 = np.float64
    v = f64(img[i, j, k])
    dx = _diff(f64(img[im, j, k]), v, f64(img[ip, j, k]), i, nx)
    dy = _diff(f64(img[i, jm, k]), v, f64(img[i, jp, k]), j, ny)
    dz = _diff(f64(img[i, j, km]), v, f64(img[i, j, kp]), k, nz)
    return (g[0, 0] * dx + g[0, 1] * dy + g[0, 2] * dz,
            g[1, 0] * dx + g[1, 1] * dy + g[1, 2] * dz,
            g[2, 0] * dx + g[2, 1] * dy + g[2, 2] * dz)


@njit(nogil=True, cache=True, inline="always")
def store_demons_step(delta, sigma_sq, sigma_x_sq, grad, out, i, j, k):
    """``out[i, j, k, :] = delta * grad / (|grad|^2 + sigma_sq / sigma_x_sq)`` (0 if tiny)."""
    gx, gy, gz = grad
    den = gx * gx + gy * gy + gz * gz + sigma_sq / sigma_x_sq
    scale = 0.0 if (den < DEMONS_TINY or delta == 0.0) else delta / den
    out[i, j, k, 0] = scale * gx
    out[i, j, k, 1] = scale * gy
    if out.shape[3] == 3:
        out[i, j, k, 2] = scale * gz


@njit(nogil=True, cache=True)
def ssd_steps(static, moving, grad2world, sigma_x_sq, mask, use_mask, forward, backward,
              partial, start, stop):
    """Demons updates of the static (``forward``) and moving (``backward``) displacements.

    For rows ``start:stop``: with ``delta = J - I``,
    ``forward = delta grad I / (|grad I|^2 + delta^2 / sigma_x_sq)`` and
    ``backward = -delta grad J / (|grad J|^2 + delta^2 / sigma_x_sq)``;
    0 outside ``mask`` (when ``use_mask``). ``partial`` receives
    ``[sum of delta^2, number of voxels evaluated]``.
    """
    nx, ny, nz = static.shape
    nd = forward.shape[3]
    total = 0.0
    count = 0.0
    for i in range(start, stop):
        im, ip = max(i - 1, 0), min(i + 1, nx - 1)
        for j in range(ny):
            jm, jp = max(j - 1, 0), min(j + 1, ny - 1)
            for k in range(nz):
                km, kp = max(k - 1, 0), min(k + 1, nz - 1)
                if use_mask and mask[i, j, k] == 0:
                    for d in range(nd):
                        forward[i, j, k, d] = 0.0
                        backward[i, j, k, d] = 0.0
                    continue
                delta = np.float64(moving[i, j, k]) - np.float64(static[i, j, k])
                total += delta * delta
                count += 1.0
                g_static = world_gradient_at(static, grad2world, i, j, k, im, ip, jm, jp, km, kp)
                g_moving = world_gradient_at(moving, grad2world, i, j, k, im, ip, jm, jp, km, kp)
                store_demons_step(delta, delta * delta, sigma_x_sq, g_static, forward, i, j, k)
                store_demons_step(-delta, delta * delta, sigma_x_sq, g_moving, backward, i, j, k)
    partial[0] = total
    partial[1] = count
