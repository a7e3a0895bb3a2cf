"""Image gradients in world units (the stencil of :mod:`parareg.kernels.stencil`)."""

from __future__ import annotations

from ._jit import kernel
from .stencil import neighbours, store_vector, world_gradient_at


@kernel
def gradient_3d(img, vox_grad2world_grad, out, start, stop):
    """``out[i, j, k, :]`` = world gradient of ``img`` at ``(i, j, k)`` for rows ``start:stop``.

    ``out`` has 3 components, or 2 for a 2D image passed as ``(X, Y, 1)``.
    """
    nx, ny, nz = img.shape
    g = vox_grad2world_grad
    for i in range(start, stop):
        im, ip = neighbours(i, nx)
        for j in range(ny):
            jm, jp = neighbours(j, ny)
            for k in range(nz):
                km, kp = neighbours(k, nz)
                gx, gy, gz = world_gradient_at(img, g, i, j, k, im, ip, jm, jp, km, kp)
                store_vector(out, i, j, k, gx, gy, gz)
