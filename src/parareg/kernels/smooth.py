"""Separable convolution along the middle axis of a C-contiguous (outer, n, inner) array.

Any axis ``k`` of a C-contiguous array of shape ``S`` is the middle axis of
the free reshape ``(prod(S[:k]), S[k], prod(S[k+1:]))``, so one kernel
convolves a vector field ``(X, Y, Z, 3)`` along X, Y or Z with every
component handled in the contiguous inner loop. The kernels take that view
flattened to ``(outer, n * inner)`` (``src[o, i * inner + q]``) plus
``inner``, and index it with plain loops over 1D views: no reshaping,
slice assignment or array expressions, which would pull numba's
error-message machinery (shape checks, formatted messages) into the compile. Boundaries follow ``scipy.ndimage``'s ``mode="reflect"``
(``d c b a | a b c d | d c b a``).

Sums are float32 (at most a few dozen positive taps: relative error ~1e-7),
accumulated in a per-call float32 row so LLVM vectorises the streaming
loop; every output element is summed in the same
tap order wherever its work unit starts, so results do not depend on the
partition or the thread count.
"""

from __future__ import annotations

import numpy as np

from ._jit import fast_kernel, helper


@helper
def _reflect(j, n):
    while j < 0 or j >= n:
        if j < 0:
            j = -j - 1
        if j >= n:
            j = 2 * n - j - 1
    return j


@fast_kernel
def convolve_middle(src, dst, inner, weights, outer_start, outer_stop, inner_start, inner_stop):
    """``dst[o, i, q] = sum_t weights[t] * src[o, reflect(i + t - r), q]``, ``r = len(weights)//2``.

    On the flat ``(outer, n * inner)`` views; covers ``outer_start <= o < outer_stop``
    and ``inner_start <= q < inner_stop``. The taps loop runs outside the
    contiguous ``q`` loop (streaming rows) into a fresh accumulator row (no
    aliasing with ``src``, so LLVM vectorises it).
    """
    n = src.shape[1] // inner
    taps = weights.shape[0]
    r = taps // 2
    width = inner_stop - inner_start
    acc = np.empty(width, np.float32)
    for o in range(outer_start, outer_stop):
        out = dst[o]
        for i in range(n):
            for q in range(width):
                acc[q] = 0.0
            for t in range(taps):
                w = np.float32(weights[t])
                row = src[o, _reflect(i + t - r, n) * inner + inner_start:]
                for q in range(width):
                    acc[q] += w * row[q]
            base = i * inner + inner_start
            for q in range(width):
                out[base + q] = acc[q]


@fast_kernel
def convolve_middle_narrow(src, dst, inner, weights, outer_start, outer_stop, inner_start,
                           inner_stop):
    """:func:`convolve_middle` for a short inner axis (the last grid axis of a vector field).

    Each ``(n, inner)`` plane is contiguous, so tap ``t`` adds the plane
    shifted by ``(t - r) * inner`` elements: one long streaming loop per tap
    into a fresh accumulator. Only the ``r`` samples at each end need the
    reflected index. The whole inner range is always computed
    (``inner_start``/``inner_stop`` must cover it).
    """
    size = src.shape[1]
    n = size // inner
    taps = weights.shape[0]
    r = taps // 2
    acc = np.empty(size, np.float32)
    for o in range(outer_start, outer_stop):
        flat = src[o]
        for e in range(size):
            acc[e] = 0.0
        for t in range(taps):
            w = np.float32(weights[t])
            i_lo = r - t if r - t > 0 else 0  # first output whose source index is >= 0
            i_lo = n if n < i_lo else i_lo
            i_hi = n + r - t if n + r - t < n else n  # first output whose source index is >= n
            i_hi = i_hi if i_hi > i_lo else i_lo
            out = acc[i_lo * inner:i_hi * inner]
            source = flat[(i_lo + t - r) * inner:]
            for e in range(out.shape[0]):
                out[e] += w * source[e]
            for i in range(0, i_lo):
                j = _reflect(i + t - r, n)
                for q in range(inner):
                    acc[i * inner + q] += w * flat[j * inner + q]
            for i in range(i_hi, n):
                j = _reflect(i + t - r, n)
                for q in range(inner):
                    acc[i * inner + q] += w * flat[j * inner + q]
        out = dst[o]
        for e in range(size):
            out[e] = acc[e]
