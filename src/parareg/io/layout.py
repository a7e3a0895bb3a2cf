"""Drivers of :mod:`parareg.kernels.layout`: NIfTI's Fortran-ordered arrays <-> C-ordered ones.

nibabel hands over a NIfTI array as stored (Fortran order); parareg's images
and fields are C-ordered. NumPy converts between the two with a transpose
copy that is not cache-blocked (over a second for a 1 mm displacement
field); these drivers do it in one threaded, blocked pass, applying the LPS
sign of a displacement field's components on the way.
"""

from __future__ import annotations

import numpy as np

from ..kernels.layout import BLOCK, field_to_planes, planes_to_field

#: source dtypes the kernels take (native byte order); anything else goes through NumPy
_PLANE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _blocks(n: int) -> list[tuple[int, int]]:
    return [(start, min(start + BLOCK, n)) for start in range(0, n, BLOCK)]


def fortran_to_field(data: np.ndarray, sign, *, num_threads=None) -> tuple[np.ndarray, bool]:
    """``data * sign`` as a C-ordered float32 array, and whether all its values are finite.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z, C), float32 or float64
        Typically Fortran-ordered (as nibabel reads a vector NIfTI).
    sign : array_like, shape (C,)
        Factor of each component (``±1``).
    num_threads : int, optional

    Returns
    -------
    field : ndarray, shape (X, Y, Z, C), float32, C-contiguous
    finite : bool
    """
    from ..parallel import for_each_unit

    sign = np.asarray(sign, dtype=np.float32)
    if data.dtype not in _PLANE_DTYPES or not data.flags.f_contiguous:
        field = np.ascontiguousarray(data, dtype=np.float32) * sign
        return field, bool(np.isfinite(field).all())
    planes = data.T  # (C, Z, Y, X), C-contiguous
    out = np.empty(data.shape, dtype=np.float32)
    finite = for_each_unit(lambda unit, start, stop: planes_to_field(planes, sign, out,
                                                                     start, stop),
                           _blocks(data.shape[0]), num_threads=num_threads)
    return out, all(finite)


def field_to_fortran(field: np.ndarray, sign, *, num_threads=None) -> np.ndarray:
    """``field * sign`` as a Fortran-ordered float32 array (what a NIfTI file stores).

    Parameters
    ----------
    field : ndarray, shape (X, Y, Z, C), float32, C-contiguous
    sign : array_like, shape (C,)

    Returns
    -------
    ndarray, shape (X, Y, Z, C), float32, Fortran-contiguous
    """
    from ..parallel import for_each_unit

    sign = np.asarray(sign, dtype=np.float32)
    if field.dtype != np.float32 or not field.flags.c_contiguous:
        return np.asfortranarray(field * sign, dtype=np.float32)
    nx, ny, nz, nc = field.shape
    planes = np.empty((nc, nz, ny, nx), dtype=np.float32)
    for_each_unit(lambda unit, start, stop: field_to_planes(field, sign, planes, start, stop),
                  _blocks(nz), num_threads=num_threads)
    return planes.T


def stack_to_fortran(volumes, *, num_threads=None) -> np.ndarray:
    """Same-shape 2D/3D arrays stacked on a new last axis, Fortran-ordered (a NIfTI series).

    Parameters
    ----------
    volumes : sequence of ndarray, shape (X, Y[, Z])
        Float32 C-contiguous ones are laid out by the kernel, in parallel;
        anything else by NumPy.

    Returns
    -------
    ndarray, shape (X, Y[, Z], T), Fortran-contiguous
    """
    from ..parallel import for_each_unit

    first = volumes[0]
    if not all(v.dtype == np.float32 and v.flags.c_contiguous and v.shape == first.shape
               for v in volumes):
        return np.asfortranarray(np.stack(volumes, axis=-1))
    spatial = (*first.shape, *([1] * (3 - first.ndim)))
    fields = [v.reshape(*spatial, 1) for v in volumes]
    planes = np.empty((len(volumes), *spatial[::-1]), dtype=np.float32)  # (T, Z, Y, X)
    one = np.ones(1, np.float32)
    units = [(t, start, stop) for t in range(len(volumes)) for start, stop in _blocks(spatial[2])]
    for_each_unit(lambda unit, t, start, stop: field_to_planes(fields[t], one, planes[t:t + 1],
                                                              start, stop),
                  units, num_threads=num_threads)
    return planes.T.reshape(*first.shape, len(volumes), order="F")


__all__ = ["field_to_fortran", "fortran_to_field", "stack_to_fortran"]
