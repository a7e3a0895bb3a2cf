"""The per-sample prologue of the affine-metric kernels: fixed voxel -> moving point -> valid?

Sample ``s`` of a work unit is the fixed voxel with flat (C-order) index
``sample_index[s]`` on the 3D fixed grid ``(nx, ny, nz)`` (``nz = 1`` for a
2D image, see :mod:`parareg.kernels.lift`). It maps to the moving voxel
coordinate ``fixed_vox2moving_vox @ (i, j, k, 1)``, and is *valid* when that
point lies in the linear-interpolation domain ``[0, n - 1]`` of every
moving axis (the convention of :mod:`parareg.kernels.interp`) and, when
``use_mask`` is true, the nearest voxel of ``moving_mask`` is non-zero.

Gradient sums of the metrics add ``c * grad_m(y) (x, 1)^T`` into a 3 x 4
buffer (:func:`add_outer_3d`; ``x`` the fixed world point). All helpers
are ``inline="always"``.
"""

from __future__ import annotations

from numba import njit

from .interp import nearest_3d


@njit(nogil=True, cache=True, inline="always")
def unravel_3d(index, ny, nz):
    """Voxel ``(i, j, k)`` of the C-order flat ``index`` in a ``(nx, ny, nz)`` grid."""
    plane = ny * nz
    i = index // plane
    r = index - i * plane
    j = r // nz
    return i, j, r - j * nz


@njit(nogil=True, cache=True, inline="always")
def map_point_3d(a, i, j, k):
    """``(a @ (i, j, k, 1))[:3]`` for a 4x4 matrix ``a``."""
    return (a[0, 0] * i + a[0, 1] * j + a[0, 2] * k + a[0, 3],
            a[1, 0] * i + a[1, 1] * j + a[1, 2] * k + a[1, 3],
            a[2, 0] * i + a[2, 1] * j + a[2, 2] * k + a[2, 3])


@njit(nogil=True, cache=True, inline="always")
def sample_point(sample_index, s, previous, i, j, k, ny, nz, fixed_vox2moving_vox, moving,
                 moving_mask, use_mask):
    """Where sample ``s`` lands: ``(index, i, j, k, x, y, z, valid)``.

    ``(i, j, k)`` is its fixed voxel and ``(x, y, z)`` its moving voxel
    coordinate. ``previous`` is the flat index of the sample before (and
    ``(i, j, k)`` in the arguments its voxel): consecutive samples (dense
    sampling) then cost an increment, not two divisions. Pass the returned
    ``index`` and voxel back in for the next sample.
    """
    index = sample_index[s]
    if index == previous + 1 and k + 1 < nz:
        k += 1
    else:
        i, j, k = unravel_3d(index, ny, nz)
    x, y, z = map_point_3d(fixed_vox2moving_vox, i, j, k)
    nx_m, ny_m, nz_m = moving.shape
    valid = 0.0 <= x <= nx_m - 1 and 0.0 <= y <= ny_m - 1 and 0.0 <= z <= nz_m - 1
    if valid and use_mask:
        valid = nearest_3d(moving_mask, x, y, z) != 0
    return index, i, j, k, x, y, z, valid


@njit(nogil=True, cache=True, inline="always")
def add_outer_3d(out, c, g0, g1, g2, x0, x1, x2):
    """``out += c * g (x, 1)^T`` for a 3x4 ``out``."""
    cg0 = c * g0
    cg1 = c * g1
    cg2 = c * g2
    out[0, 0] += cg0 * x0
    out[0, 1] += cg0 * x1
    out[0, 2] += cg0 * x2
    out[0, 3] += cg0
    out[1, 0] += cg1 * x0
    out[1, 1] += cg1 * x1
    out[1, 2] += cg1 * x2
    out[1, 3] += cg1
    out[2, 0] += cg2 * x0
    out[2, 1] += cg2 * x1
    out[2, 2] += cg2 * x2
    out[2, 3] += cg2
