"""Separable Gaussian smoothing run on the pool, bit-identical to ``scipy.ndimage``.

Each 1D pass along axis ``a`` is split into slabs along another axis, so the
work units are independent line sets and the result equals
``scipy.ndimage.gaussian_filter(data, sigma, output=np.float32)`` exactly.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._config import DEFAULT_GRAIN_VOXELS
from .parallel import for_each_unit, partition_range, resolve_num_threads


def _pass(src, dst, sigma, axis, truncate, num_threads):
    split = 0 if axis != 0 else 1
    n = src.shape[split]
    plane = src.size // n
    ranges = partition_range(0, n, grain=max(1, DEFAULT_GRAIN_VOXELS // max(plane, 1)))

    def unit(u, start, stop):
        index = [slice(None)] * src.ndim
        index[split] = slice(start, stop)
        index = tuple(index)
        ndimage.gaussian_filter1d(src[index], sigma, axis=axis, output=dst[index],
                                  mode="reflect", truncate=truncate)

    for_each_unit(unit, ranges, num_threads=num_threads)


def gaussian_smooth(data, sigma, *, truncate: float = 4.0, num_threads=None) -> np.ndarray:
    """Gaussian-smooth an array with per-axis ``sigma`` in voxels.

    Parameters
    ----------
    data : ndarray, shape (X, Y[, Z])
    sigma : float or sequence of float
        Standard deviation in voxels along each axis (0 leaves an axis alone).
    truncate : float
        Kernel radius in standard deviations, as in SciPy.
    num_threads : int, optional

    Returns
    -------
    ndarray, float32, same shape
        Equal to ``scipy.ndimage.gaussian_filter(data, sigma, output=np.float32,
        truncate=truncate)``.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((9, 9), np.float32); a[4, 4] = 1
    >>> round(float(gaussian_smooth(a, 1.0).sum()), 4)
    1.0
    """
    data = np.asarray(data)
    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (data.ndim,))
    if np.any(sigmas < 0) or not np.all(np.isfinite(sigmas)):
        raise ValueError(f"sigma must be finite and >= 0, got {sigma!r}")
    num_threads = resolve_num_threads(num_threads)
    current = np.ascontiguousarray(data, dtype=np.float32)
    for axis, s in enumerate(sigmas):
        if s == 0:
            continue
        out = np.empty_like(current)
        _pass(current, out, float(s), axis, truncate, num_threads)
        current = out
    return current if current is not data else current.copy()
