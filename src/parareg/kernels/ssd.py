"""Demons (SSD) update fields for SyN, one slab of axis-0 rows per call.

Arrays are 3D ``(X, Y, Z)``; a 2D image is passed as ``(X, Y, 1)``. The
demons step of a target difference ``delta`` along an image gradient ``g``
is ``delta * g / (|g|^2 + sigma^2 / sigma_x^2)`` (Vercauteren et al. 2009,
eq. 4), 0 where the denominator is below :data:`DEMONS_TINY`. See
:mod:`parareg.metrics.syn_ssd` and :mod:`parareg.metrics.syn_em`.

``forward`` and ``backward`` are the update fields of the fixed image's
displacement ``u_s`` and of the moving image's ``u_m`` (the names of
:meth:`parareg.metrics.syn_base.SyNMetric.compute`), each ``(X, Y, Z, ndim)``
float32 with 2 or 3 components.
"""

from __future__ import annotations

import numpy as np

from ._jit import inline_helper, kernel
from .stencil import neighbours, store_vector, world_gradient_at

#: denominators below this give a zero step (as DIPY's demons steps)
DEMONS_TINY = 1e-9


@inline_helper
def store_demons_step(delta, sigma_sq, sigma_x_sq, grad, out, i, j, k):
    """``out[i, j, k, :] = delta * grad / (|grad|^2 + sigma_sq / sigma_x_sq)`` (0 if tiny)."""
    gx, gy, gz = grad
    den = gx * gx + gy * gy + gz * gz + sigma_sq / sigma_x_sq
    scale = 0.0 if (den < DEMONS_TINY or delta == 0.0) else delta / den
    store_vector(out, i, j, k, scale * gx, scale * gy, scale * gz)


@kernel
def ssd_steps(fixed, moving, grad2world, sigma_x_sq, mask, use_mask, forward, backward,
              partial, start, stop):
    """Demons updates of the fixed (``forward``) and moving (``backward``) displacements.

    For rows ``start:stop``: with ``delta = J - I``,
    ``forward = delta grad I / (|grad I|^2 + delta^2 / sigma_x_sq)`` and
    ``backward = -delta grad J / (|grad J|^2 + delta^2 / sigma_x_sq)``;
    0 outside ``mask`` (when ``use_mask``). ``partial`` receives
    ``[sum of delta^2, number of voxels evaluated]``.
    """
    nx, ny, nz = fixed.shape
    nd = forward.shape[3]
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
                delta = np.float64(moving[i, j, k]) - np.float64(fixed[i, j, k])
                total += delta * delta
                count += 1.0
                g_fixed = world_gradient_at(fixed, grad2world, i, j, k, im, ip, jm, jp, km, kp)
                g_moving = world_gradient_at(moving, grad2world, i, j, k, im, ip, jm, jp, km, kp)
                store_demons_step(delta, delta * delta, sigma_x_sq, g_fixed, forward, i, j, k)
                store_demons_step(-delta, delta * delta, sigma_x_sq, g_moving, backward, i, j, k)
    partial[0] = total
    partial[1] = count
