"""DIPY's ``SymmetricDiffeomorphicRegistration`` and ``syn_registration`` over parareg's SyN.

DIPY's names, argument order and defaults; ``optimize`` returns a
:class:`DiffeomorphicMap` that behaves as the object DIPY returns
(``transform``, ``transform_inverse``, ``get_forward_field``,
``get_backward_field``, and DIPY's attributes, including its stored
``prealign``, the inverse of the one passed in).
"""

from __future__ import annotations

import inspect

import numpy as np

from ..registration.syn import INVERSION_TOLERANCE
from ..registration.syn import SymmetricDiffeomorphicRegistration as _SyN
from ..transforms.diffeomorphic import DiffeomorphicMap as _NativeMap
from ._compat import refuse_unknown, warn_unsupported
from ._inputs import read_array, read_image
from .metrics import CCMetric, EMMetric, SSDMetric, check_dim, syn_metric

__all__ = ["DiffeomorphicMap", "SymmetricDiffeomorphicRegistration", "syn_levels",
           "syn_registration"]

DIPY_LEVEL_ITERS = (100, 100, 25)
#: iterations DIPY fits its energy profile over (SymmetricDiffeomorphicRegistration.energy_window)
DIPY_ENERGY_WINDOW = 12
DIPY_INV_TOL = 1e-3
#: syn_registration(metric=...) names, as DIPY's ``syn_metric_dict``
METRICS = {"CC": CCMetric, "EM": EMMetric, "SSD": SSDMetric}


def syn_levels(level_iters, ss_sigma_factor) -> tuple:
    """DIPY's ``level_iters`` (coarse to fine) and ``ss_sigma_factor`` as parareg ``levels``.

    Level ``i`` counted from the finest (``i = 0``) is shrunk by ``2**i`` and
    smoothed by ``ss_sigma_factor * (2**i - 1)`` voxels, as DIPY's scale space.

    Examples
    --------
    >>> syn_levels([10, 10, 5], 0.2)
    ((4, 0.6000000000000001, 10), (2, 0.2, 10), (1, 0.0, 5))
    """
    n = len(level_iters)
    return tuple((2 ** (n - 1 - j), ss_sigma_factor * (2 ** (n - 1 - j) - 1), int(iterations))
                 for j, iterations in enumerate(level_iters))


class DiffeomorphicMap:
    """The mapping DIPY's SyN returns (static -> moving), over a parareg ``DiffeomorphicMap``.

    Parameters
    ----------
    native : parareg.DiffeomorphicMap
        Kept as :attr:`native`; fixed = DIPY's static, moving = DIPY's moving.

    Notes
    -----
    DIPY's SyN result has ``is_inverse=True`` and stores ``inv(prealign)`` as
    its ``prealign``; its ``backward`` array is parareg's ``forward`` field and
    the other way round. ``get_forward_field()`` and ``get_backward_field()``
    hide this, as in DIPY.
    """

    is_inverse = True

    def __init__(self, native: _NativeMap):
        self.native = native
        self.dim = native.ndim

    # -- DIPY's attributes -------------------------------------------------------------
    prealign = property(lambda self: np.linalg.inv(self.native.prealign))
    prealign_inv = property(lambda self: self.native.prealign)
    forward = property(lambda self: self.native.backward)
    backward = property(lambda self: self.native.forward)
    domain_shape = property(lambda self: np.asarray(self.native.moving_grid.shape, np.int32))
    domain_grid2world = property(lambda self: self.native.moving_grid.vox2world)
    codomain_shape = property(lambda self: np.asarray(self.native.fixed_grid.shape, np.int32))
    codomain_grid2world = property(lambda self: self.native.fixed_grid.vox2world)
    disp_shape = codomain_shape
    disp_grid2world = codomain_grid2world

    def get_forward_field(self) -> np.ndarray:
        """Displacements (mm) on the static grid that warp the moving image (:meth:`transform`)."""
        return self.native.forward

    def get_backward_field(self) -> np.ndarray:
        """Displacements (mm) on the static grid that warp the static image onto the moving."""
        return self.native.backward

    def _warp(self, image, *, inverse, interpolation, image_world2grid, out_shape,
              out_grid2world):
        source = self.native.fixed_grid if inverse else self.native.moving_grid
        target = self.native.moving_grid if inverse else self.native.fixed_grid
        if out_shape is not None and tuple(out_shape) != target.shape or \
                out_grid2world is not None and not np.allclose(out_grid2world, target.vox2world):
            raise ValueError("out_shape/out_grid2world: parareg samples a mapping on its own "
                             f"{'moving' if inverse else 'static'} grid only; leave them None "
                             "and resample the result with parareg.resample")
        data = np.asarray(image)
        grid2world = source.vox2world if image_world2grid is None else \
            np.linalg.inv(image_world2grid)
        method = self.native.transform_inverse if inverse else self.native.transform
        return method(read_image(data, grid2world, name="image"),
                      interpolation=interpolation).data

    def transform(self, image, *, interpolation="linear", image_world2grid=None,
                  out_shape=None, out_grid2world=None) -> np.ndarray:
        """``image`` (on the moving grid) warped onto the static grid."""
        return self._warp(image, inverse=False, interpolation=interpolation,
                          image_world2grid=image_world2grid, out_shape=out_shape,
                          out_grid2world=out_grid2world)

    def transform_inverse(self, image, *, interpolation="linear", image_world2grid=None,
                          out_shape=None, out_grid2world=None) -> np.ndarray:
        """``image`` (on the static grid) warped onto the moving grid."""
        return self._warp(image, inverse=True, interpolation=interpolation,
                          image_world2grid=image_world2grid, out_shape=out_shape,
                          out_grid2world=out_grid2world)

    def __repr__(self) -> str:
        return f"parareg.dipy.DiffeomorphicMap({self.native!r})"


class SymmetricDiffeomorphicRegistration:
    """DIPY's SyN class: DIPY's parameters, mapped onto parareg's SyN.

    Parameters
    ----------
    metric : CCMetric, SSDMetric or EMMetric
        DIPY's objects (duck-typed) or :mod:`parareg.dipy`'s lookalikes; the
        metric's update smoothing (``sigma_diff`` or ``smooth``, voxels)
        becomes parareg's ``update_sigma``.
    level_iters : list of int, optional
        Iterations per level, coarse to fine (default ``[100, 100, 25]``).
    step_length : float
        Largest update per iteration, voxels of the level (as DIPY).
    ss_sigma_factor : float
        Level ``i`` (0 finest) is smoothed by ``ss_sigma_factor * (2**i - 1)``
        voxels.
    opt_tol : float
        A level stops when the energy falls by less than ``opt_tol`` of its
        sum over DIPY's 12-iteration window per iteration (a linear fit where
        DIPY fits a quadratic).
    inv_iter : int
        Fixed-point iterations per field inversion.
    inv_tol : float
        Only DIPY's default is honoured; parareg stops inverting at a mean
        residual of ``INVERSION_TOLERANCE`` voxel (another value warns).
    callback : None
        DIPY's ``callback(sdr, stage)`` reads DIPY's internal state; refused.
        :attr:`full_energy_profile` holds the energies after ``optimize``.
    """

    def __init__(self, metric, *, level_iters=None, step_length=0.25, ss_sigma_factor=0.2,
                 opt_tol=1e-5, inv_iter=20, inv_tol=DIPY_INV_TOL, callback=None):
        if callback is not None:
            raise TypeError("callback: DIPY's callback(sdr, stage) reads DIPY's internal state, "
                            "which parareg does not have; pass callback=None (energies are in "
                            ".full_energy_profile after optimize) or use "
                            "parareg.SymmetricDiffeomorphicRegistration(callback=f), which "
                            "calls f with a dict per iteration")
        level_iters = list(DIPY_LEVEL_ITERS if level_iters is None else level_iters)
        if not level_iters:
            raise ValueError("level_iters cannot be empty (one iteration count per level)")
        if inv_tol != DIPY_INV_TOL:
            warn_unsupported("inv_tol", inv_tol, "not used: parareg stops each field inversion "
                             f"at a mean residual of {INVERSION_TOLERANCE} voxel (or inv_iter "
                             "iterations)")
        self.metric = metric
        self._metric, self._update_sigma = syn_metric(metric)
        self.level_iters = level_iters
        self.levels = len(level_iters)  # DIPY's meaning: the number of levels
        self.step_length = step_length
        self.ss_sigma_factor = ss_sigma_factor
        self.opt_tol = opt_tol
        self.inv_iter = inv_iter
        self.inv_tol = inv_tol
        self.energy_window = DIPY_ENERGY_WINDOW
        self.full_energy_profile: list[float] = []
        self.static_to_moving = None

    def native(self, dim: int) -> _SyN:
        """The parareg :class:`~parareg.registration.syn.SymmetricDiffeomorphicRegistration`
        these settings map to, for ``dim``-D images."""
        check_dim(self.metric, dim)
        return _SyN(self._metric, levels=syn_levels(self.level_iters, self.ss_sigma_factor),
                    step=self.step_length, update_sigma=self._update_sigma, field_sigma=0.0,
                    convergence=(self.opt_tol * self.energy_window, self.energy_window),
                    inversion_iterations=self.inv_iter,
                    callback=lambda info: self.full_energy_profile.append(info["energy"]))

    def optimize(self, static, moving, *, static_grid2world=None, moving_grid2world=None,
                 prealign=None) -> DiffeomorphicMap:
        """Register ``moving`` to ``static`` (arrays; grid2world ``None`` is the identity).

        Returns
        -------
        DiffeomorphicMap
            ``transform(moving)`` puts the moving image on the static grid.
        """
        static_image = read_array(static, static_grid2world, name="static")
        moving_image = read_array(moving, moving_grid2world, name="moving")
        self.full_energy_profile = []
        native = self.native(static_image.ndim).optimize(static_image, moving_image,
                                                         prealign=prealign)
        self.static_to_moving = DiffeomorphicMap(native)
        return self.static_to_moving

    def get_map(self) -> DiffeomorphicMap:
        """The mapping of the last :meth:`optimize` call."""
        if self.static_to_moving is None:
            raise ValueError("no mapping yet: call optimize(static, moving, ...) first")
        return self.static_to_moving


def syn_registration(moving, static, *, moving_affine=None, static_affine=None,
                     step_length=0.25, metric="CC", dim=3, level_iters=None, prealign=None,
                     **metric_kwargs):
    """DIPY's ``syn_registration`` (moving first): returns ``(warped_moving, mapping)``.

    Parameters
    ----------
    moving, static : ndarray, nibabel image or path
        An array needs its ``*_affine``.
    moving_affine, static_affine : ndarray, optional
    step_length : float
    metric : {"CC", "EM", "SSD"}
        Any case; built as ``CCMetric(dim, **metric_kwargs)`` etc.
    dim : {2, 3}
    level_iters : list of int, optional
        Default DIPY's ``[10, 10, 5]``.
    prealign : ndarray, optional
        Static-world -> moving-world affine (e.g. from :func:`affine_registration`).
    **metric_kwargs
        The metric's parameters (``sigma_diff``, ``radius`` for CC...).

    Returns
    -------
    warped_moving : ndarray
    mapping : DiffeomorphicMap
    """
    kind = METRICS.get(metric.upper()) if isinstance(metric, str) else None
    if kind is None:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    allowed = [p for p in inspect.signature(kind).parameters if p != "dim"]
    refuse_unknown(metric_kwargs, allowed, where=f"syn_registration (metric {metric!r})")
    static = read_image(static, static_affine, name="static")
    moving = read_image(moving, moving_affine, name="moving")
    if dim != static.ndim:
        raise ValueError(f"dim={dim!r} but static is {static.ndim}D; pass dim={static.ndim} "
                         "(DIPY's default is 3)")
    sdr = SymmetricDiffeomorphicRegistration(
        kind(dim, **metric_kwargs), level_iters=list(level_iters or [10, 10, 5]),
        step_length=step_length)
    mapping = sdr.optimize(static.data, moving.data, static_grid2world=static.vox2world,
                           moving_grid2world=moving.vox2world, prealign=prealign)
    return mapping.transform(moving.data), mapping
