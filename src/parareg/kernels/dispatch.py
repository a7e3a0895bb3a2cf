"""(operation, ndim) -> kernel, in one table, so callers never branch on 2D/3D."""

from __future__ import annotations

from . import gradient, resample

KERNELS = {
    ("resample_affine", 2): resample.resample_affine_2d,
    ("resample_affine", 3): resample.resample_affine_3d,
    ("warp", 2): resample.warp_2d,
    ("warp", 3): resample.warp_3d,
    ("gradient", 2): gradient.gradient_2d,
    ("gradient", 3): gradient.gradient_3d,
}


def kernel(operation: str, ndim: int):
    """The numba kernel for ``operation`` on ``ndim``-dimensional images."""
    try:
        return KERNELS[(operation, ndim)]
    except KeyError:
        raise ValueError(f"no kernel {operation!r} for {ndim}D images") from None
