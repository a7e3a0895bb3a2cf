"""Separable convolution along the middle axis of a C-contiguous (outer, n, inner) view.

Any axis ``k`` of a C-contiguous array of shape ``S`` is the middle axis of
the free reshape ``(prod(S[:k]), S[k], prod(S[k+1:]))``, so one kernel
convolves a vector field ``(X, Y, Z, 3)`` along X, Y or Z with every
component handled in the contiguous inner loop. Boundaries follow
``scipy.ndimage``'s ``mode="reflect"`` (``d c b a | a b c d | d c b a``).

Sums are float32 (at most a few dozen positive taps: relative error ~1e-7)
so LLVM vectorises the streaming loop; every output element is summed in the
same tap order wherever its work unit starts, so results do not depend on
the partition or the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True)
def _reflect(j, n):
    while j < 0 or j >= n:
        if j < 0:
            j = -j - 1
        if j >= n:
            j = 2 * n - j - 1
    return j


@njit(nogil=True, cache=True, fastmath=True)
def convolve_middle(src, dst, weights, outer_start, outer_stop, inner_start, inner_stop):
    """``dst[o, i, q] = sum_t weights[t] * src[o, reflect(i + t - r), q]``, ``r = len(weights)//2``.

    Covers ``outer_start <= o < outer_stop`` and ``inner_start <= q < inner_stop``.
    The taps loop runs outside the contiguous ``q`` loop (streaming rows).
    """
    n = src.shape[1]
    taps = weights.shape[0]
    r = taps // 2
    width = inner_stop - inner_start
    acc = np.empty(width, np.float32)
    for o in range(outer_start, outer_stop):
        for i in range(n):
            acc[:] = 0.0
            for t in range(taps):
                w = np.float32(weights[t])
                row = src[o, _reflect(i + t - r, n), inner_start:inner_stop]
                for q in range(width):
                    acc[q] += w * row[q]
            dst[o, i, inner_start:inner_stop] = acc


@njit(nogil=True, cache=True, fastmath=True)
def convolve_middle_narrow(src, dst, weights, outer_start, outer_stop, inner_start, inner_stop):
    """:func:`convolve_middle` for a short inner axis (the last grid axis of a vector field).

    Each ``(n, inner)`` plane is contiguous, so tap ``t`` adds the plane
    shifted by ``(t - r) * inner`` elements: one long streaming loop per tap.
    Only the ``r`` samples at each end need the reflected index. The whole
    inner range is always computed (``inner_start``/``inner_stop`` must cover it).
    """
    n = src.shape[1]
    width = src.shape[2]
    taps = weights.shape[0]
    r = taps // 2
    size = n * width
    acc = np.empty(size, np.float32)
    for o in range(outer_start, outer_stop):
        flat = src[o].reshape(size)
        acc[:] = 0.0
        for t in range(taps):
            w = np.float32(weights[t])
            i_lo = min(max(0, r - t), n)  # first output whose source index is >= 0
            i_hi = max(min(n, n + r - t), i_lo)  # first output whose source index is >= n
            out = acc[i_lo * width:i_hi * width]
            source = flat[(i_lo + t - r) * width:(i_hi + t - r) * width]
            for k in range(out.shape[0]):
                out[k] += w * source[k]
            for i in range(0, i_lo):
                j = _reflect(i + t - r, n)
                for q in range(width):
                    acc[i * width + q] += w * flat[j * width + q]
            for i in range(i_hi, n):
                j = _reflect(i + t - r, n)
                for q in range(width):
                    acc[i * width + q] += w * flat[j * width + q]
        dst[o].reshape(size)[:] = acc
