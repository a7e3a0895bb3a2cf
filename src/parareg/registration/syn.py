"""Symmetric diffeomorphic registration (greedy SyN) on a multi-resolution pyramid.

Both images move towards a midpoint on the fixed grid:
``I(x) = fixed(x + u_s(x))`` and ``J(x) = moving(prealign @ (x + u_m(x)))``.
Each iteration the metric gives update fields for ``u_s`` and ``u_m``; each is
Gaussian-smoothed (``update_sigma``, "fluid" regularisation), scaled so its
largest displacement is ``step`` voxels, and composed into its field
(``u <- u o (id + update)``), which is then smoothed (``field_sigma``,
"elastic" regularisation). At the end of each level the fields are inverted
(fixed point, warm-started from the previous level) and the total maps are
``forward = u_m o inv(u_s)`` and ``backward = u_s o inv(u_m)``.

Every step (warps, metric, smoothing, composition, inversion) runs on the
pool in work units fixed by the grid, so the result is bit-identical at any
thread count.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._log import get_logger, log_progress
from ..dipy._order import refuse_dipy_order
from ..fields import compose, compose_unchecked, invert, max_norm, smooth_unchecked
from ..image import as_grid, as_pair, check_matrix
from ..metrics.syn import SyNMetric, get_syn_metric
from ..parallel import resolve_num_threads
from ..kernels.resample import LINEAR_ZERO_OUTSIDE
from ..resampling import resample, warp_unchecked
from ..transforms.diffeomorphic import DiffeomorphicMap, resample_field
from .channels import Channel, LoadedChannel, check_channels, combine_forces
from .pyramid import (check_level_image, check_level_mask, check_level_shapes, check_levels,
                      pyramid_level, shrink_mask)

if TYPE_CHECKING:
    from .._typing import ImageLike, MaskLike, MatrixLike

_logger = get_logger(__name__)

#: (shrink factor, image smoothing sigma in voxels, iterations), coarse to fine
DEFAULT_SYN_LEVELS = ((4, 1.0, 100), (2, 0.5, 30), (1, 0.0, 6))
#: field inversion stops at this mean residual, in voxels
INVERSION_TOLERANCE = 0.01
#: units of ``update_sigma`` and ``field_sigma`` (see SymmetricDiffeomorphicRegistration)
SIGMA_UNITS = ("mm", "voxels")


#: CC window radius (voxels) when a SyN metric is named without one (``CCMetric``'s own
#: default, 4, is for direct use)
DEFAULT_CC_RADIUS = 2


class SyNError(ValueError):
    """A diffeomorphic registration that cannot run: an image with nothing to register (all
    zero or constant), or a metric whose energy is not finite (the built-in metrics
    accumulate in float64 and stay finite on finite float32 images; a user's metric may
    not)."""


def _check_sigma(value, *, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0 (in sigma_units), got {value!r}")
    return value


def _syn_metric(metric, *, radius, bins, gradient=None) -> SyNMetric:
    """The metric a name (any case) and its options give; a metric object as it is."""
    if isinstance(metric, SyNMetric):
        for option, value in (("radius", radius), ("bins", bins), ("gradient", gradient)):
            if value is not None:
                raise ValueError(f"{option}={value!r} is an option of a metric given by name; "
                                 f"the metric object {metric!r} has its own: set it there "
                                 f"or pass the metric's name")
        return metric
    if radius is None and isinstance(metric, str) and metric.casefold() == "cc":
        radius = DEFAULT_CC_RADIUS
    return get_syn_metric(metric, radius=radius, bins=bins, gradient=gradient)


def _zero_boundary(field: np.ndarray) -> None:
    """Pin the grid's outer faces (ANTs' boundary condition): outside the grid the map is
    the identity, so a field that is zero on the faces stays continuous there and
    cannot fold against the outside."""
    for axis in range(field.ndim - 1):
        index = [slice(None)] * field.ndim
        for face in (0, -1):
            index[axis] = face
            field[tuple(index)] = 0.0


def _converged(energies, window: int, tolerance: float) -> bool:
    """ANTs-style: the fitted slope of the last ``window`` energies is no longer negative enough.

    The slope is measured relative to the energy range over the window, so the
    test does not depend on the metric's scale.
    """
    if len(energies) < window:
        return False
    e = np.asarray(energies[-window:], dtype=np.float64)
    scale = max(abs(e).max(), 1e-12)
    slope = np.polyfit(np.arange(window, dtype=np.float64), e / scale, 1)[0]
    return slope > -tolerance


class SymmetricDiffeomorphicRegistration:
    """Greedy symmetric diffeomorphic registration (DIPY-style class form).

    Parameters
    ----------
    metric : {"cc", "ssd", "em", "mi"} or SyNMetric
        Similarity, by name (any case) or as a metric object.
    levels : sequence of (factor, sigma, iterations)
        Pyramid, coarse to fine; ``sigma`` smooths the images, in voxels.
    radius : int, optional
        CC window radius in voxels (default ``DEFAULT_CC_RADIUS`` = 2); only
        for ``metric="cc"``: the other metrics refuse it.
    bins : int, optional
        Histogram bins for ``metric="mi"`` (default 32); the other metrics
        refuse it.
    gradient : {"center", "exact"}, optional
        CC's update (:class:`parareg.metrics.syn_cc.CCMetric`; default
        ``"center"``); only for ``metric="cc"``: the other metrics refuse it.
    step : float
        Largest update displacement per iteration, in voxels.
    update_sigma, field_sigma : float
        Gaussian smoothing of each update and of the total fields, in ``sigma_units``.
    sigma_units : {"voxels", "mm"}
        ``"voxels"`` (as ANTs and DIPY give them): voxels of each pyramid
        level's grid. ``"mm"``: millimetres of the fixed image's full-resolution
        grid, per axis; every level then smooths with the same number of its own
        voxels, so one setting gives the same regularity at any voxel size
        (measured in BENCHMARKS.md; the presets of :func:`parareg.register` use it).
    convergence : (tolerance, window)
        Stop a level when the fitted relative energy slope over the last
        ``window`` iterations is above ``-tolerance``.
    inversion_iterations : int
        Fixed-point iterations per field inversion.
    num_threads : int, optional
    callback : callable, optional
        Called after every iteration with a dict (level, iteration, energy).
    """

    def __init__(self, metric: str | SyNMetric = "cc", *,
                 levels: Sequence[tuple[int, float, int]] = DEFAULT_SYN_LEVELS,
                 radius: int | None = None, bins: int | None = None, step: float = 0.5,
                 update_sigma: float = 1.2, field_sigma: float = 0.5,
                 sigma_units: str = "voxels",
                 convergence: tuple[float, int] = (1e-4, 10), inversion_iterations: int = 20,
                 num_threads: int | None = None,
                 callback: Callable[[dict], None] | None = None,
                 gradient: str | None = None):
        self.metric = _syn_metric(metric, radius=radius, bins=bins, gradient=gradient)
        #: the options a channel's metric given by name takes (when it accepts them)
        self._channel_options = {"radius": radius, "bins": bins, "gradient": gradient}
        self.levels = check_levels(levels)
        step = float(step)
        if not np.isfinite(step) or step <= 0:
            raise ValueError(f"step must be a positive number of voxels, got {step!r}")
        self.step = step
        self.update_sigma = _check_sigma(update_sigma, name="update_sigma")
        self.field_sigma = _check_sigma(field_sigma, name="field_sigma")
        if sigma_units not in SIGMA_UNITS:
            raise ValueError(f"sigma_units must be one of {sorted(SIGMA_UNITS)}, "
                             f"got {sigma_units!r}")
        self.sigma_units = sigma_units
        tolerance, window = convergence
        if int(window) < 2 or not float(tolerance) >= 0:
            raise ValueError(f"convergence must be (tolerance >= 0, window >= 2), "
                             f"got {convergence!r}")
        self.convergence = (float(tolerance), int(window))
        self.inversion_iterations = int(inversion_iterations)
        self.num_threads = None if num_threads is None else resolve_num_threads(num_threads)
        self.callback = callback

    # -- one iteration ------------------------------------------------------------------
    def _voxel_sigmas(self, fixed) -> tuple[np.ndarray, np.ndarray]:
        """``update_sigma`` and ``field_sigma`` per axis in voxels of every level."""
        per_mm = 1.0 / fixed.spacing if self.sigma_units == "mm" else np.ones(fixed.ndim)
        return self.update_sigma * per_mm, self.field_sigma * per_mm

    def _scaled_update(self, force, spacing, scratch, sigma):
        nt = self.num_threads
        if self.update_sigma > 0:
            force = smooth_unchecked(force, sigma, 4.0, nt, scratch=scratch)
        norm = max_norm(force, scale=1.0 / spacing, num_threads=nt)
        if norm <= 0:
            return None
        force *= np.float32(self.step / norm)
        return force

    def _advance(self, field, update, disp2vox, scratch, sigma):
        """``smooth(field o (id + update))`` written into ``scratch`` or ``update`` (both are
        overwritten; ``field`` is not)."""
        nt = self.num_threads
        moved = compose_unchecked(field, update, disp2vox, scratch, nt)
        if self.field_sigma > 0:
            moved = smooth_unchecked(moved, sigma, 4.0, nt, scratch=update)
        _zero_boundary(moved)
        return moved

    def check_grid(self, fixed: ImageLike, *,
                   metrics: Sequence[SyNMetric] | None = None) -> None:
        """Refuse a ``fixed`` image whose pyramid levels are smaller than the metric's window
        (CC: ``2 * radius + 1`` voxels), or the largest window of ``metrics`` (the channels');
        cheap, so callers may check before other work."""
        radius = max(getattr(metric, "radius", 0) for metric in (metrics or (self.metric,)))
        if radius:
            check_level_shapes(as_grid(fixed, name="fixed"), self.levels,
                               window=2 * radius + 1, stage="syn_options")

    def channel_metric(self, channel: LoadedChannel) -> SyNMetric:
        """A channel's SyN metric: its own (a name takes this registration's ``radius``,
        ``bins`` or ``gradient`` when that metric has the option), or this registration's."""
        metric = channel.syn_metric
        if metric is None:
            return self.metric
        if isinstance(metric, SyNMetric):
            return metric
        from .._options import accepted_options, choice
        from ..metrics.syn import SYN_METRICS

        name = choice(metric, sorted(SYN_METRICS), name=f"{channel.label}.syn_metric")
        accepted = accepted_options(SYN_METRICS[name]) or ()
        options = {k: v for k, v in self._channel_options.items() if k in accepted}
        return _syn_metric(name, radius=options.get("radius"), bins=options.get("bins"),
                           gradient=options.get("gradient"))

    def _forces(self, metrics, weights, warped, v2w, mask, level, iteration):
        """``(forward, backward, energy)`` of one iteration: the metric's, or the channels'
        combination (:func:`~parareg.registration.channels.combine_forces`)."""
        nt = self.num_threads
        results = []
        for metric, weight, (warped_fixed, warped_moving) in zip(metrics, weights, warped):
            if weight == 0.0 and len(metrics) > 1:
                continue
            forward, backward, energy = metric.compute(
                warped_fixed, warped_moving, vox2world=v2w, mask=mask, num_threads=nt)
            energy = float(energy)
            if not np.isfinite(energy):
                raise SyNError(
                    f"the metric {metric!r} returned a non-finite energy ({energy}) "
                    f"at level {level}, iteration {iteration + 1}, so no update can be "
                    "trusted; rescale the images (e.g. to [0, 1]) or fix the metric")
            results.append((forward, backward, energy, weight))
        if len(metrics) == 1:
            return results[0][:3]
        used = [weight for *_, weight in results]
        forward = combine_forces([r[0] for r in results], used, num_threads=nt)
        backward = combine_forces([r[1] for r in results], used, num_threads=nt)
        energy = 0.0
        for *_, part, weight in results:
            energy += weight * part
        return forward, backward, energy

    def optimize(self, fixed: ImageLike, moving: ImageLike, *,
                 prealign: MatrixLike | None = None, fixed_mask: MaskLike | None = None,
                 fixed_affine: MatrixLike | None = None,
                 moving_affine: MatrixLike | None = None,
                 moving_mask: MaskLike | None = None,
                 channels: Sequence[Channel] | None = None,
                 weight: float = 1.0) -> DiffeomorphicMap:
        """Register ``moving`` to ``fixed``.

        Parameters
        ----------
        fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
        prealign : ndarray, shape (ndim + 1, ndim + 1), optional
            Fixed-world -> moving-world affine (e.g. ``affine_registration(...).matrix``).
        fixed_mask : Image, ndarray or path, optional
            Updates are zero outside the (warped) mask.
        moving_mask : Image, ndarray or path, optional
            On the moving grid; updates are also zero where the moving point
            falls outside it (both masks drive the metric, as in ANTs).
        fixed_affine, moving_affine : ndarray, optional
            vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
            / ``moving``; required for ndarrays, refused for anything else.
        channels : sequence of Channel, optional
            More (fixed, moving) pairs driving the same fields, each with its
            own ``syn_metric`` (default: this registration's metric) and
            weight, on the grids of ``fixed`` and ``moving``; each side's
            update is the weighted sum of the channels' normalised forces
            (:mod:`parareg.registration.channels`). The masks are shared.
        weight : float
            The weight of ``(fixed, moving)`` among the channels.

        Returns
        -------
        DiffeomorphicMap
        """
        fixed, moving = as_pair(fixed, moving, fixed_affine=fixed_affine,
                                moving_affine=moving_affine, num_threads=self.num_threads)
        ndim = fixed.ndim
        prealign = np.eye(ndim + 1) if prealign is None else check_matrix(
            prealign, ndim, name="prealign")
        loaded = check_channels(channels, fixed, moving, weight=weight,
                                num_threads=self.num_threads)
        metrics = [self.channel_metric(channel) for channel in loaded]
        for channel in loaded:
            prefix = "" if channel is loaded[0] else f"{channel.label}."
            for name, image in (("fixed", channel.fixed), ("moving", channel.moving)):
                if not np.any(image.data):
                    raise SyNError(f"{prefix}{name} is all zero; nothing to register")
                if float(image.data.max()) == float(image.data.min()):
                    raise SyNError(f"{prefix}{name} is constant; nothing to register")
        self.check_grid(fixed, metrics=metrics)
        weights = [channel.weight for channel in loaded]
        mask = moving_mask_image = None
        if fixed_mask is not None or moving_mask is not None:
            from .affine import _as_mask

            mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
            moving_mask_image = _as_mask(moving_mask, moving, name="moving_mask")
        nt = self.num_threads
        update_sigma, field_sigma = self._voxel_sigmas(fixed)
        u_s = u_m = v_s = v_m = None
        grid_prev = None
        history = []
        n_levels = len(self.levels)
        metric_name = "+".join(m.name or type(m).__name__ for m in metrics)
        debug = _logger.isEnabledFor(logging.DEBUG)
        for index, level in enumerate(self.levels):
            t0 = time.perf_counter()
            shrunk = []  # (fixed level, moving level) per channel
            for channel in loaded:
                f_c = pyramid_level(channel.fixed, factor=level.factor, sigma=level.sigma,
                                    num_threads=nt)
                m_c = pyramid_level(channel.moving, factor=level.factor, sigma=level.sigma,
                                    num_threads=nt)
                prefix = "" if channel is loaded[0] else f"{channel.label}."
                check_level_image(f_c, channel.fixed, name=prefix + "fixed", level=index,
                                  factor=level.factor, stage="syn_options")
                shrunk.append((f_c, m_c))
            f_l, m_l = shrunk[0]
            mask_l = None if mask is None else shrink_mask(mask, f_l, num_threads=nt)
            if mask_l is not None:
                check_level_mask(mask_l, mask, name="fixed_mask", level=index,
                                 factor=level.factor)
            moving_mask_l = None if moving_mask_image is None else shrink_mask(
                moving_mask_image, m_l, num_threads=nt)
            if moving_mask_l is not None:
                check_level_mask(moving_mask_l, moving_mask_image, name="moving_mask",
                                 level=index, factor=level.factor)
            v2w = f_l.vox2world
            if u_s is None:
                u_s, u_m, v_s, v_m = (np.zeros((*f_l.shape, ndim), np.float32) for _ in range(4))
            else:
                u_s, u_m, v_s, v_m = (resample_field(f, grid_prev, f_l, num_threads=nt)
                                      for f in (u_s, u_m, v_s, v_m))
            spacing = f_l.spacing
            disp2vox = np.ascontiguousarray(np.linalg.inv(v2w[:ndim, :ndim]))
            world2moving_vox = m_l.world2vox @ prealign
            warped = [(np.empty(f_l.shape, np.float32), np.empty(f_l.shape, np.float32))
                      for _ in loaded]
            scratch_s = np.empty_like(u_s)
            scratch_m = np.empty_like(u_m)
            energies = []
            iterations = 0
            for iteration in range(level.iterations):
                for (f_c, m_c), (warped_fixed, warped_moving) in zip(shrunk, warped):
                    warp_unchecked(f_c.data, u_s, v2w, f_l.world2vox, LINEAR_ZERO_OUTSIDE,
                                   warped_fixed, nt)
                    warp_unchecked(m_c.data, u_m, v2w, world2moving_vox, LINEAR_ZERO_OUTSIDE,
                                   warped_moving, nt)
                mask_now = None
                if mask_l is not None:
                    mask_now = resample(mask_l, f_l, field=u_s, interpolation="nearest",
                                        num_threads=nt).data
                if moving_mask_l is not None:  # the moving mask at the moving points
                    seen = resample(moving_mask_l, f_l, affine=prealign, field=u_m,
                                    interpolation="nearest", num_threads=nt).data
                    mask_now = seen if mask_now is None else mask_now & seen
                if mask_now is not None and not np.any(mask_now):
                    mask_now = None
                forward, backward, energy = self._forces(metrics, weights, warped, v2w,
                                                         mask_now, index, iteration)
                energies.append(energy)
                iterations = iteration + 1
                if self.callback is not None:
                    self.callback({"level": index, "iteration": iterations,
                                   "energy": float(energy)})
                if debug:
                    log_progress(_logger, logging.DEBUG, "syn level %d/%d (shrink %d) iteration "
                                 "%d/%d %s energy %.6g", index + 1, n_levels, level.factor,
                                 iterations, level.iterations, metric_name, energy,
                                 progress={"kind": "syn", "level": index,
                                           "iteration": iterations, "energy": energy,
                                           "levels": n_levels, "factor": level.factor,
                                           "max_iterations": level.iterations,
                                           "metric": metric_name})
                if _converged(energies, self.convergence[1], self.convergence[0]):
                    break
                step_s = self._scaled_update(forward, spacing, scratch_s, update_sigma)
                step_m = self._scaled_update(backward, spacing, scratch_m, update_sigma)
                if step_s is None and step_m is None:
                    break
                # buffers rotate: per side the force, one scratch and the field; nothing is
                # allocated here but the metric's forces
                if step_s is not None:
                    free = scratch_s if step_s is forward else forward
                    u_s, scratch_s = (self._advance(u_s, step_s, disp2vox, free, field_sigma),
                                      u_s)
                if step_m is not None:
                    free = scratch_m if step_m is backward else backward
                    u_m, scratch_m = (self._advance(u_m, step_m, disp2vox, free, field_sigma),
                                      u_m)
            tolerance = INVERSION_TOLERANCE * float(spacing.min())
            v_s, stats_s = invert(u_s, vox2world=v2w, initial=v_s, tolerance=tolerance,
                                  iterations=self.inversion_iterations, damped=True,
                                  num_threads=nt)
            v_m, stats_m = invert(u_m, vox2world=v2w, initial=v_m, tolerance=tolerance,
                                  iterations=self.inversion_iterations, damped=True,
                                  num_threads=nt)
            grid_prev = v2w
            history.append({"level": index, "factor": level.factor, "shape": f_l.shape,
                            "iterations": iterations,
                            "energy": energies[-1] if energies else None,
                            "first_energy": energies[0] if energies else None,
                            "inversion_residual_mm": max(stats_s.mean_residual,
                                                         stats_m.mean_residual),
                            "seconds": time.perf_counter() - t0})
            entry = history[-1]
            log_progress(_logger, logging.INFO, "syn level %d/%d (shrink %d): %d iterations, %s "
                         "energy %.6g -> %.6g, inversion residual %.3g mm, %.2f s", index + 1,
                         n_levels, level.factor, iterations, metric_name,
                         *(np.nan if e is None else e
                           for e in (entry["first_energy"], entry["energy"])),
                         entry["inversion_residual_mm"], entry["seconds"],
                         progress={"kind": "syn", **entry}, level_done=True)
        if grid_prev is not None and u_s.shape[:-1] != fixed.shape:  # levels ended coarse
            u_s, u_m, v_s, v_m = (resample_field(f, grid_prev, fixed, num_threads=nt)
                                  for f in (u_s, u_m, v_s, v_m))
        forward = compose(u_m, v_s, vox2world=fixed.vox2world, num_threads=nt)
        backward = compose(u_s, v_m, vox2world=fixed.vox2world, num_threads=nt)
        result = DiffeomorphicMap(forward, backward, fixed=fixed, moving=moving,
                                  prealign=prealign, num_threads=nt)
        result.history = history
        return result


@refuse_dipy_order
def syn_registration(fixed: ImageLike, moving: ImageLike, *, metric: str | SyNMetric = "cc",
                     prealign: MatrixLike | None = None,
                     levels: Sequence[tuple[int, float, int]] = DEFAULT_SYN_LEVELS,
                     radius: int | None = None, bins: int | None = None, step: float = 0.5,
                     update_sigma: float = 1.2, field_sigma: float = 0.5,
                     sigma_units: str = "voxels",
                     convergence: tuple[float, int] = (1e-4, 10),
                     fixed_mask: MaskLike | None = None, moving_mask: MaskLike | None = None,
                     num_threads: int | None = None,
                     callback: Callable[[dict], None] | None = None,
                     fixed_affine: MatrixLike | None = None,
                     moving_affine: MatrixLike | None = None,
                     gradient: str | None = None,
                     channels: Sequence[Channel] | None = None,
                     weight: float = 1.0) -> DiffeomorphicMap:
    """Symmetric diffeomorphic registration of ``moving`` to ``fixed``.

    Parameters
    ----------
    fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
    metric : {"cc", "ssd", "em", "mi"} or SyNMetric
        Local cross-correlation (the default; contrasts related linearly in a
        small window), sum of squared differences, EM, or mutual information
        (any contrasts, e.g. FLAIR to T1); any case.
    prealign : ndarray, shape (ndim + 1, ndim + 1), optional
        Fixed-world -> moving-world affine, e.g. from :func:`parareg.affine_registration`.
    levels : sequence of (factor, sigma, iterations)
    radius : int, optional
        CC window radius in voxels (default 2); refused by the other metrics.
    bins : int, optional
        Histogram bins of ``"mi"`` (default 32); refused by the other metrics.
    gradient : {"center", "exact"}, optional
        CC's update (default ``"center"``); refused by the other metrics.
    step : float
        Largest update per iteration, voxels.
    update_sigma, field_sigma : float
        Smoothing of updates and of total fields, in ``sigma_units``.
    sigma_units : {"voxels", "mm"}
        See :class:`SymmetricDiffeomorphicRegistration`.
    convergence : (tolerance, window)
    fixed_mask, moving_mask : Image, ndarray or path, optional
        Each on its image's grid; the metric uses the points inside both.
    num_threads : int, optional
        The result is bit-identical at any thread count.
    callback : callable, optional
    fixed_affine, moving_affine : ndarray, optional
        vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
        / ``moving``; required for ndarrays, refused for anything else.
    channels : sequence of Channel, optional
        More (fixed, moving) pairs driving the same fields (e.g. T2 next to
        T1), each with its own ``syn_metric`` (default ``metric``; a name
        takes ``radius`` / ``bins`` when it has that option) and weight, on
        the grids of ``fixed`` and ``moving``. Each side's update is the
        weighted sum of the channels' forces, each divided by its L2 norm, as
        ITK's multi-metric does for ANTs (see
        :mod:`parareg.registration.channels`).
    weight : float
        The weight of ``(fixed, moving)`` among the channels (weights are 0
        or more, sum to more than 0 and are normalised to sum to 1).

    Returns
    -------
    DiffeomorphicMap

    Raises
    ------
    SyNError
        When an image is all zero or constant, or the energy stops being finite.

    Examples
    --------
    >>> import parareg
    >>> mapping = parareg.syn_registration("fixed.nii.gz", "moving.nii.gz")  # doctest: +SKIP
    >>> warped = mapping.transform(parareg.load("moving.nii.gz"))  # doctest: +SKIP
    """
    registration = SymmetricDiffeomorphicRegistration(
        metric, levels=levels, radius=radius, bins=bins, step=step, update_sigma=update_sigma,
        field_sigma=field_sigma, sigma_units=sigma_units, convergence=convergence,
        num_threads=num_threads, callback=callback, gradient=gradient)
    return registration.optimize(fixed, moving, prealign=prealign, fixed_mask=fixed_mask,
                                 moving_mask=moving_mask,
                                 fixed_affine=fixed_affine, moving_affine=moving_affine,
                                 channels=channels, weight=weight)
