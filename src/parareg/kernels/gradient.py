"""Image gradients in world units.

Voxel-space derivatives follow ``numpy.gradient`` (second-order central
differences inside, first-order one-sided differences on the first and last
voxel of each axis); they are then mapped to world millimetres by
``vox_grad2world_grad = inv(A).T``, ``A`` the linear part of ``vox2world``.
"""

from __future__ import annotations

from numba import njit


@njit(nogil=True, cache=True)
def _diff(lo, mid, hi, idx, n):
    """d/dx at index ``idx`` of a line with ``n`` samples, given neighbours and centre."""
    if n == 1:
        return 0.0
    if idx == 0:
        return hi - mid
    if idx == n - 1:
        return mid - lo
    return 0.5 * (hi - lo)


@njit(nogil=True, cache=True)
def gradient_3d(img, vox_grad2world_grad, out, start, stop):
    """``out[i, j, k, :]`` = world gradient of ``img`` at ``(i, j, k)`` for rows ``start:stop``."""
    nx, ny, nz = img.shape
    g = vox_grad2world_grad
    for i in range(start, stop):
        im = max(i - 1, 0)
        ip = min(i + 1, nx - 1)
        for j in range(ny):
            jm = max(j - 1, 0)
            jp = min(j + 1, ny - 1)
            for k in range(nz):
                km = max(k - 1, 0)
                kp = min(k + 1, nz - 1)
                c = float(img[i, j, k])
                dx = _diff(float(img[im, j, k]), c, float(img[ip, j, k]), i, nx)
                dy = _diff(float(img[i, jm, k]), c, float(img[i, jp, k]), j, ny)
                dz = _diff(float(img[i, j, km]), c, float(img[i, j, kp]), k, nz)
                out[i, j, k, 0] = g[0, 0] * dx + g[0, 1] * dy + g[0, 2] * dz
                out[i, j, k, 1] = g[1, 0] * dx + g[1, 1] * dy + g[1, 2] * dz
                out[i, j, k, 2] = g[2, 0] * dx + g[2, 1] * dy + g[2, 2] * dz


@njit(nogil=True, cache=True)
def gradient_2d(img, vox_grad2world_grad, out, start, stop):
    """2D twin of :func:`gradient_3d`."""
    nx, ny = img.shape
    g = vox_grad2world_grad
    for i in range(start, stop):
        im = max(i - 1, 0)
        ip = min(i + 1, nx - 1)
        for j in range(ny):
            jm = max(j - 1, 0)
            jp = min(j + 1, ny - 1)
            c = float(img[i, j])
            dx = _diff(float(img[im, j]), c, float(img[ip, j]), i, nx)
            dy = _diff(float(img[i, jm]), c, float(img[i, jp]), j, ny)
            out[i, j, 0] = g[0, 0] * dx + g[0, 1] * dy
            out[i, j, 1] = g[1, 0] * dx + g[1, 1] * dy
