"""The contract of SyN (diffeomorphic) metrics and the checks they share.

Both images are already resampled onto one reference grid (the SyN
midpoint or fixed grid): ``fixed_warped(x) = fixed(x + u_s(x))`` and
``moving_warped(x) = moving(x + u_m(x))`` in the pull convention of
:func:`parareg.resample` (``field=``), ``u_s`` and ``u_m`` in world mm.

:meth:`SyNMetric.compute` returns ``(forward, backward, energy)``:

``forward``
    The update of the *fixed* displacement ``u_s`` (the fixed image moves
    towards the moving one), built from the gradient of ``fixed_warped``.
``backward``
    The update of the *moving* displacement ``u_m``, built from the gradient
    of ``moving_warped``.
``energy``
    The data term, lower is better, reduced in unit order (float64).

Sign convention: ``u_s + step * forward`` and ``u_m + step * backward``
improve the similarity (lower the energy) for a small enough ``step > 0``.
This is the opposite sign of DIPY's ``compute_forward``/``compute_backward``,
whose steps are added to fields that are inverted before warping. Fields
are raw (not smoothed, not normalised): the SyN driver smooths and scales
them. Gradients are ``numpy.gradient`` along voxel axes mapped to world
axes with ``inv(A).T`` (``A`` the linear part of ``vox2world``), as
:func:`parareg.gradient`, so fields are in world axes (intensity-weighted
per mm for CC, mm for the demons steps).

Work units are fixed by the grid and a grain size, never by the thread
count; energies are per-unit float64 partials summed in unit order, so every
output is bit-identical at any thread count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS
from ..image import check_array, check_matrix
from ..parallel import axis0_ranges, partition_range, reduce_units


class SyNMetric(ABC):
    """A similarity metric giving forward/backward update fields for symmetric registration.

    Hyperparameters are set in ``__init__``; :meth:`compute` holds no state
    between calls.
    """

    #: registry name
    name = ""

    @abstractmethod
    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        """Update fields and energy of one SyN iteration.

        Parameters
        ----------
        fixed_warped, moving_warped : ndarray, shape (X, Y[, Z])
            Both images on the reference grid (converted to float32; finite).
        vox2world : ndarray, shape (ndim + 1, ndim + 1)
            Voxel -> world (mm) matrix of the reference grid.
        mask : ndarray of bool, shape (X, Y[, Z]), optional
            Voxels where fields and energy are evaluated (and, for EM, the
            class statistics gathered); elsewhere the fields are 0. ``None``
            means everywhere; an empty mask is an error.
        num_threads : int, optional
            Threads; outputs are bit-identical at any count.

        Returns
        -------
        forward : ndarray, shape (X, Y[, Z], ndim), float32
            Update of the fixed displacement, world axes.
        backward : ndarray, shape (X, Y[, Z], ndim), float32
            Update of the moving displacement, world axes.
        energy : float
            Data term (lower is better); 0.0 when no voxel is evaluated.
        """

    def _params(self) -> dict:
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


def check_radius(radius) -> int:
    """``radius`` as a positive int, or a ``ValueError`` naming it."""
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, (int, np.integer)):
        raise ValueError(f"radius must be a positive integer (voxels), got {radius!r}")
    if radius < 1:
        raise ValueError(f"radius must be a positive integer (voxels), got {radius!r}")
    return int(radius)


def check_positive(value, *, name: str, allow_none: bool = False):
    """``value`` as a finite float > 0 (or ``None`` when allowed), else a ``ValueError``."""
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if isinstance(value, (bool, np.bool_)) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


class Pair:
    """Validated inputs of :meth:`SyNMetric.compute`, viewed as 3D arrays for the kernels.

    Attributes
    ----------
    shape : tuple of int
        The caller's grid shape (2D or 3D).
    ndim : int
    fixed, moving : ndarray, shape (X, Y, Z), float32, C-contiguous
        A 2D image gets a trailing axis of length 1.
    grad2world : ndarray, shape (3, 3), float64
        ``inv(A).T`` (padded with the identity in 2D): voxel gradient -> world gradient.
    mask : ndarray, uint8
        The mask as (X, Y, Z), or a 1-voxel placeholder when ``use_mask`` is false.
    use_mask : bool
    spacing : ndarray, shape (ndim,)
        Voxel sizes, mm.
    """

    def __init__(self, fixed_warped, moving_warped, vox2world, mask):
        fixed = check_array(fixed_warped, name="fixed_warped")
        moving = check_array(moving_warped, name="moving_warped")
        if moving.shape != fixed.shape:
            raise ValueError(f"moving_warped must have the shape of fixed_warped "
                             f"{fixed.shape} (both on the reference grid), got {moving.shape}")
        self.shape = fixed.shape
        self.ndim = fixed.ndim
        ndim = self.ndim
        matrix = check_matrix(vox2world, ndim, name="vox2world")
        linear = matrix[:ndim, :ndim]
        self.spacing = np.sqrt((linear ** 2).sum(axis=0))
        self.grad2world = np.eye(3)
        self.grad2world[:ndim, :ndim] = np.linalg.inv(linear).T
        shape3 = self.shape if ndim == 3 else (*self.shape, 1)
        self.fixed = np.ascontiguousarray(fixed, dtype=np.float32).reshape(shape3)
        self.moving = np.ascontiguousarray(moving, dtype=np.float32).reshape(shape3)
        if mask is None:
            self.mask = np.ones((1, 1, 1), dtype=np.uint8)
            self.use_mask = False
        else:
            m = np.asarray(mask)
            if m.shape != self.shape:
                raise ValueError(f"mask must have the shape of fixed_warped {self.shape}, "
                                 f"got {m.shape}")
            if not (m.dtype == np.bool_ or np.issubdtype(m.dtype, np.number)):
                raise ValueError(f"mask must hold booleans or numbers, got dtype {m.dtype}")
            self.mask = np.ascontiguousarray(m != 0, dtype=np.uint8).reshape(shape3)
            if not self.mask.any():
                raise ValueError("mask is empty (no non-zero voxel); pass a mask that covers "
                                 "part of the reference grid, or None")
            self.use_mask = True

    @property
    def shape3(self) -> tuple:
        return self.fixed.shape

    def empty_field(self) -> np.ndarray:
        """An uninitialised (X, Y, Z, ndim) float32 field (kernels fill every voxel)."""
        return np.empty((*self.shape3, self.ndim), dtype=np.float32)

    def unfold(self, field: np.ndarray) -> np.ndarray:
        """A kernel field back on the caller's shape ``(*shape, ndim)``."""
        return field.reshape((*self.shape, self.ndim))


def rows(shape3, grain: int = DEFAULT_GRAIN_VOXELS) -> list:
    """Work units along axis 0: ``(start, stop)`` slabs of about ``grain`` voxels."""
    return axis0_ranges(shape3, grain=grain)


def columns(shape3, grain: int = DEFAULT_GRAIN_VOXELS) -> list:
    """Work units along axis 1: ``(start, stop)`` slabs of about ``grain`` voxels."""
    plane = shape3[0] * shape3[2]
    return partition_range(0, shape3[1], grain=max(1, grain // max(plane, 1)))


def mean_energy(partials: np.ndarray, sign: float = 1.0) -> float:
    """``sign * sum / count`` from per-unit ``[sum, count]`` partials, reduced in unit order."""
    total, count = reduce_units(partials)
    return float(sign * total / count) if count > 0 else 0.0


__all__ = ["Pair", "SyNMetric", "check_positive", "check_radius", "columns", "mean_energy",
           "rows"]
