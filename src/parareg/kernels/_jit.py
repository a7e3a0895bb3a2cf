"""The two numba decorators of the kernel layer (see :mod:`parareg.kernels`).

``kernel``
    A top-level kernel, called from Python by a driver: ``nogil`` and cached
    on disk (its cache entry holds the helpers it calls, linked in).
``fast_kernel``
    A kernel that may reassociate float sums (``fastmath``; the smoothing
    passes, whose tap order is fixed per output element).
``helper``
    A function called only from kernels: no Python or C wrapper to build and
    no cache entry of its own (nothing loads it but the kernels that link
    it), which saves a good part of its compile. Call ``f.py_func`` to run
    one from Python (tests).
``inline_helper``
    A ``helper`` spliced into each caller by numba (``inline="always"``), for
    large helpers in hot loops that LLVM would not inline.
"""

from __future__ import annotations

from numba import njit

kernel = njit(nogil=True, cache=True)
fast_kernel = njit(nogil=True, cache=True, fastmath=True)
helper = njit(nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
inline_helper = njit(nogil=True, no_cpython_wrapper=True, no_cfunc_wrapper=True,
                     inline="always")
