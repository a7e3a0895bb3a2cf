"""Affine registration: a pipeline of linear stages over a multi-resolution pyramid.

Layers: :func:`affine_registration` (validates, runs the pipeline) ->
:class:`AffineRegistration` (one stage over every level, DIPY-style) ->
:func:`~parareg.registration.optimize.optimize_stage` (L-BFGS-B) -> the
metric's parallel kernels.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .._hints import InputError
from ..dipy._order import refuse_dipy_order
from .._log import get_logger, log_progress
from .._options import choice
from ..image import Image, as_image, as_pair, check_matrix
from ..metrics import AFFINE_METRICS, get_affine_metric
from ..metrics.base import SAMPLING_STRATEGIES, NoOverlapError
from ..parallel import resolve_num_threads
from ..resampling import resample
from ..transforms import center_of_mass, geometric_centers, get_transform, image_center, origins
from .channels import Channel, WeightedMetricSum, check_channels
from .optimize import optimize_stage
from .pyramid import (SIGMA_UNITS, check_level_image, check_level_mask, check_levels,
                      pyramid_level, shrink_mask)

if TYPE_CHECKING:
    from .._typing import ArrayLike, ImageLike, MaskLike, MatrixLike

_logger = get_logger(__name__)

#: initialisers: (fixed, moving) -> fixed-world -> moving-world translation matrix
INITIALIZERS = {
    "center_of_mass": center_of_mass,
    "geometric_centers": geometric_centers,
    "origins": origins,
}
#: optimised stages, each a transform family of parareg.transforms
STAGES = ("translation", "rigid", "similarity", "affine")
DEFAULT_PIPELINE = ("center_of_mass", "translation", "rigid", "affine")
#: (shrink factor, smoothing sigma in voxels, max iterations) per level, coarse to fine
DEFAULT_LEVELS = ((4, 2.0, 100), (2, 1.0, 50), (1, 0.0, 25))
#: a sparse level keeps at least this many samples (coarse levels have few voxels)
MIN_SAMPLES = 20_000
#: with ``sampling=None`` a level samples every voxel up to this many, else a random subset
#: of this size (ANTs samples 20-25 %; 2**18 samples pin a 12-parameter affine to well under
#: a voxel while keeping a full-resolution iteration of a 1 mm brain in a few ms)
AUTO_SAMPLES = 2**18


class RegistrationError(InputError):
    """A registration that cannot proceed (e.g. the images do not overlap)."""


class RegistrationWarning(UserWarning):
    """A registration that finished but did not improve its metric."""


class AffineMap:
    """A world-space affine between a fixed grid (domain) and a moving grid (codomain).

    Parameters
    ----------
    matrix : ndarray, shape (ndim + 1, ndim + 1)
        Maps fixed world points (mm) to moving world points (mm).
    fixed : Image
        Grid that :meth:`transform` resamples onto.
    moving : Image
        Grid that :meth:`transform_inverse` resamples onto.
    """

    def __init__(self, matrix: MatrixLike, *, fixed: Image, moving: Image):
        self.matrix = check_matrix(matrix, fixed.ndim, name="matrix")
        self.fixed_grid = _grid(fixed)
        self.moving_grid = _grid(moving)
        #: per stage and level: dict(stage, level, initial_value, value, iterations)
        self.history: list[dict] = []

    @property
    def ndim(self) -> int:
        return self.fixed_grid.ndim

    def transform(self, image: ImageLike, *, interpolation: str = "linear",
                  num_threads: int | None = None,
                  image_affine: MatrixLike | None = None) -> Image:
        """``image`` (on the moving grid's world space) resampled onto the fixed grid.

        ``image`` is any image :func:`parareg.resample` takes (an ndarray with
        ``image_affine``, its vox2world).
        """
        return resample(image, self.fixed_grid, affine=self.matrix, interpolation=interpolation,
                        num_threads=num_threads, moving_affine=image_affine)

    def transform_inverse(self, image: ImageLike, *, interpolation: str = "linear",
                          num_threads: int | None = None,
                          image_affine: MatrixLike | None = None) -> Image:
        """``image`` (in the fixed world space) resampled onto the moving grid."""
        return resample(image, self.moving_grid, affine=np.linalg.inv(self.matrix),
                        interpolation=interpolation, num_threads=num_threads,
                        moving_affine=image_affine)

    def transform_points(self, points: ArrayLike) -> np.ndarray:
        """Map fixed world points, shape (N, ndim), to moving world points (mm)."""
        points = np.asarray(points, dtype=np.float64)
        return points @ self.matrix[:-1, :-1].T + self.matrix[:-1, -1]

    def __repr__(self) -> str:
        return f"AffineMap(ndim={self.ndim}, matrix={np.round(self.matrix, 4).tolist()})"


def _grid(image: Image) -> Image:
    """A grid-only copy of ``image`` (zero-stride data, so it holds no voxels in memory)."""
    grid = object.__new__(Image)
    grid.data = np.broadcast_to(np.zeros((), np.float32), image.shape)
    grid.vox2world = image.vox2world
    return grid


def _as_mask(mask, image: Image, *, name: str) -> Image | None:
    if mask is None:
        return None
    if isinstance(mask, Image):
        data = mask.data
        vox2world = mask.vox2world
    elif isinstance(mask, np.ndarray):
        data, vox2world = mask, image.vox2world
    else:
        loaded = as_image(mask, name=name)
        data, vox2world = loaded.data, loaded.vox2world
    if data.shape != image.shape:
        raise ValueError(f"{name} has shape {data.shape} but its image has shape {image.shape}; "
                         "a mask must be on the same grid as its image")
    data = np.asarray(data)
    if np.issubdtype(data.dtype, np.floating) and np.isnan(data).any():
        bad = int(np.count_nonzero(np.isnan(data)))
        raise ValueError(f"{name} holds {bad} NaN voxel(s) of {data.size}; a mask is 0 outside "
                         "and non-zero inside, and NaN is neither: replace NaN by 0 or 1 "
                         "(np.nan_to_num(mask) makes it 0)")
    if not np.any(data):
        raise InputError(f"{name} is empty (no non-zero voxel)", "pass a mask that covers "
                         "part of the image, or None", kind="mask_empty", name=name)
    return Image((data != 0).astype(np.uint8), vox2world)


def _check_pipeline(pipeline) -> tuple[str, ...]:
    if isinstance(pipeline, str):
        pipeline = (pipeline,)
    known = sorted({*INITIALIZERS, *STAGES})
    pipeline = tuple(choice(step, known, name="pipeline step") for step in pipeline)
    if not pipeline:
        raise ValueError("pipeline must hold at least one step")
    return pipeline


class AffineRegistration:
    """Optimise one linear transform over a pyramid (the DIPY-style class form).

    Parameters
    ----------
    metric : {"mi", "meansquares", "correlation"}
        Mattes mutual information (any contrasts) or same-modality metrics;
        any case.
    bins : int, optional
        Histogram bins for ``"mi"`` (default 32); refused by the other metrics.
    sampling : float, optional
        Fraction of fixed voxels sampled per level: 1.0 samples every voxel
        (dense); a smaller fraction a seeded subset, never fewer than
        ``MIN_SAMPLES`` samples. ``None`` (auto): dense on levels with at most
        ``AUTO_SAMPLES`` voxels, a subset of ``AUTO_SAMPLES`` on larger ones.
    sampling_strategy : {"random", "regular"}
    levels : sequence of (factor, sigma, iterations)
        Coarse to fine.
    sigma_unit : {"vox", "mm"}
    tolerance : float
        Relative value change that ends a level.
    seed : int
        Seed of the sparse sample set: the same seed gives the same result.
    num_threads : int, optional
    callback : callable, optional
        Called after every iteration with a dict (stage, level, iteration, value, matrix).

    Examples
    --------
    >>> reg = AffineRegistration(metric="mi", levels=((4, 2.0, 50), (2, 1.0, 20)))
    >>> affine_map = reg.optimize(fixed, moving, "rigid")  # doctest: +SKIP
    """

    def __init__(self, *, metric: str = "mi", bins: int | None = None,
                 sampling: float | None = None, sampling_strategy: str = "random",
                 levels: Sequence[tuple[int, float, int]] = DEFAULT_LEVELS,
                 sigma_unit: str = "vox", tolerance: float = 1e-5, seed: int = 0,
                 num_threads: int | None = None,
                 callback: Callable[[dict], None] | None = None):
        self.metric = get_affine_metric(metric, bins=bins)
        self.metric_name = choice(metric, AFFINE_METRICS, name="metric")
        self.bins = bins
        if sampling is not None and not (0.0 < float(sampling) <= 1.0):
            raise ValueError(f"sampling must be in (0, 1] or None, got {sampling!r}")
        self.sampling = sampling
        self.sampling_strategy = choice(sampling_strategy, SAMPLING_STRATEGIES,
                                        name="sampling_strategy")
        self.levels = check_levels(levels)
        self.sigma_unit = choice(sigma_unit, SIGMA_UNITS, name="sigma_unit")
        self.tolerance = float(tolerance)
        self.seed = seed
        self.num_threads = None if num_threads is None else resolve_num_threads(num_threads)
        self.callback = callback

    # -- pyramid and metric states, built once and shared by every stage ---------------
    def prepare(self, fixed: ImageLike, moving: ImageLike, *, fixed_mask: MaskLike | None = None,
                moving_mask: MaskLike | None = None, fixed_affine: MatrixLike | None = None,
                moving_affine: MatrixLike | None = None,
                channels: Sequence[Channel] | None = None,
                weight: float = 1.0) -> PreparedPair:
        """Build the pyramids and metric states of one image pair, once for every stage.

        Parameters
        ----------
        fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
        fixed_mask, moving_mask : Image, ndarray or path, optional
            Non-zero voxels are used; same grid as their image. NaN is refused
            (it is neither inside nor outside).
        fixed_affine, moving_affine : ndarray, optional
            vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
            / ``moving``; required for ndarrays, refused for anything else.
        channels : sequence of Channel, optional
            More (fixed, moving) pairs driving the same transform, each with
            its own metric and weight (:mod:`parareg.registration.channels`);
            the masks and samples are shared.
        weight : float
            The weight of the ``(fixed, moving)`` pair among the channels.

        Returns
        -------
        PreparedPair
            Pass it to :meth:`run` for each stage (e.g. rigid, then affine).
            It holds this registration's levels, sampling and metric: it is
            built for this instance only.
        """
        fixed, moving = as_pair(fixed, moving, fixed_affine=fixed_affine,
                                moving_affine=moving_affine, num_threads=self.num_threads)
        loaded = check_channels(channels, fixed, moving, weight=weight,
                                num_threads=self.num_threads)
        metrics = [self._channel_metric(channel) for channel in loaded]
        fixed_mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
        moving_mask = _as_mask(moving_mask, moving, name="moving_mask")
        levels = []
        for level in self.levels:
            shrunk_pairs = []
            for channel in loaded:
                f = pyramid_level(channel.fixed, factor=level.factor, sigma=level.sigma,
                                  sigma_unit=self.sigma_unit, num_threads=self.num_threads)
                m = pyramid_level(channel.moving, factor=level.factor, sigma=level.sigma,
                                  sigma_unit=self.sigma_unit, num_threads=self.num_threads)
                prefix = "" if channel is loaded[0] else f"{channel.label}."
                for name, image, shrunk in (("fixed", channel.fixed, f),
                                            ("moving", channel.moving, m)):
                    check_level_image(shrunk, image, name=prefix + name, level=len(levels),
                                      factor=level.factor, stage="affine_options")
                shrunk_pairs.append((f, m))
            f, m = shrunk_pairs[0]
            fm = None if fixed_mask is None else shrink_mask(fixed_mask, f,
                                                             num_threads=self.num_threads)
            mm = None if moving_mask is None else shrink_mask(moving_mask, m,
                                                              num_threads=self.num_threads)
            for name, full, shrunk in (("fixed_mask", fixed_mask, fm),
                                       ("moving_mask", moving_mask, mm)):
                if shrunk is not None:
                    check_level_mask(shrunk, full, name=name, level=len(levels),
                                     factor=level.factor)
            sampling = self.sampling
            if sampling is None:
                n = f.data.size if fm is None else int(np.count_nonzero(fm.data))
                sampling = None if n <= AUTO_SAMPLES else AUTO_SAMPLES / n
            elif sampling < 1.0:
                n = f.data.size if fm is None else int(np.count_nonzero(fm.data))
                sampling = min(1.0, max(sampling, MIN_SAMPLES / max(n, 1)))
            states = tuple(
                metric.setup(f_c, m_c, fixed_mask=fm, moving_mask=mm, sampling=sampling,
                             sampling_strategy=self.sampling_strategy, seed=self.seed,
                             num_threads=self.num_threads)
                for metric, (f_c, m_c) in zip(metrics, shrunk_pairs))
            levels.append((level, states[0] if len(states) == 1 else states))
        objective = self.metric if len(loaded) == 1 else WeightedMetricSum(
            zip(metrics, (channel.weight for channel in loaded)))
        return PreparedPair(fixed, moving, tuple(levels), owner=self, metric=objective)

    def _channel_metric(self, channel):
        """A channel's affine metric: its own by name (with this registration's ``bins`` when
        it is MI), or this registration's."""
        if channel.affine_metric is None:
            return self.metric
        name = choice(channel.affine_metric, AFFINE_METRICS, name=f"{channel.label}.affine_metric")
        return get_affine_metric(name, bins=self.bins if name == "mi" else None)

    def optimize(self, fixed: ImageLike, moving: ImageLike, transform: str = "affine", *,
                 starting_affine: MatrixLike | None = None, fixed_mask: MaskLike | None = None,
                 moving_mask: MaskLike | None = None, levels: int | None = None,
                 fixed_affine: MatrixLike | None = None,
                 moving_affine: MatrixLike | None = None,
                 channels: Sequence[Channel] | None = None,
                 weight: float = 1.0) -> AffineMap:
        """Register ``moving`` to ``fixed`` with one transform family.

        ``optimize(fixed, moving, ...)`` is ``run(prepare(fixed, moving, ...), ...)``:
        to run several stages on one pair, call :meth:`prepare` once and
        :meth:`run` per stage.

        Parameters
        ----------
        fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
        transform : {"translation", "rigid", "similarity", "affine"}
        starting_affine : ndarray, shape (ndim + 1, ndim + 1), optional
            Initial fixed-world -> moving-world matrix; identity when omitted.
        fixed_mask, moving_mask : Image, ndarray or path, optional
            Non-zero voxels are used; same grid as their image. NaN is refused
            (it is neither inside nor outside).
        levels : int, optional
            Run only the first (coarsest) ``levels`` pyramid levels.
        fixed_affine, moving_affine : ndarray, optional
            vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
            / ``moving``; required for ndarrays, refused for anything else.
        channels : sequence of Channel, optional
        weight : float
            More pairs and the ``(fixed, moving)`` pair's weight, as in :meth:`prepare`.

        Returns
        -------
        AffineMap
        """
        transform = choice(transform, STAGES, name="transform")
        prepared = self.prepare(fixed, moving, fixed_mask=fixed_mask, moving_mask=moving_mask,
                                fixed_affine=fixed_affine, moving_affine=moving_affine,
                                channels=channels, weight=weight)
        return self.run(prepared, transform, starting_affine=starting_affine, levels=levels)

    def run(self, prepared: PreparedPair, transform: str = "affine", *,
            starting_affine: MatrixLike | None = None, levels: int | None = None) -> AffineMap:
        """Optimise one transform family on a pair built by :meth:`prepare`.

        Parameters
        ----------
        prepared : PreparedPair
            From this instance's :meth:`prepare`.
        transform : {"translation", "rigid", "similarity", "affine"}
        starting_affine : ndarray, shape (ndim + 1, ndim + 1), optional
            Initial fixed-world -> moving-world matrix; identity when omitted.
        levels : int, optional
            Run only the first (coarsest) ``levels`` pyramid levels.

        Returns
        -------
        AffineMap
        """
        if not isinstance(prepared, PreparedPair) or prepared.owner is not self:
            raise TypeError("prepared must come from this AffineRegistration's prepare(); "
                            f"got {type(prepared).__name__}")
        transform = choice(transform, STAGES, name="transform")
        fixed = prepared.fixed
        ndim = fixed.ndim
        start = np.eye(ndim + 1) if starting_affine is None else check_matrix(
            starting_affine, ndim, name="starting_affine")
        family = get_transform(transform, ndim)
        center = image_center(fixed)
        extent = np.asarray(fixed.shape) * fixed.spacing
        scales = family.param_scales(extent)
        matrix = start
        history = []
        n_levels = len(self.levels)
        for index, (level, state) in enumerate(prepared.levels[:levels]):
            info = {"stage": transform, "level": index}
            try:
                result = optimize_stage(prepared.metric, state, family, matrix, center=center,
                                        scales=scales, iterations=level.iterations,
                                        tolerance=self.tolerance,
                                        callback=self._iteration_callback(level, n_levels),
                                        info=info)
            except NoOverlapError as exc:
                raise RegistrationError(
                    f"{transform} stage, level {index}: fixed and moving do not overlap at the "
                    f"start ({exc})", "check their vox2world matrices or give starting_affine",
                    kind="no_overlap", stage=transform, level=index) from exc
            matrix = result.matrix
            history.append({**info, "initial_value": result.initial_value,
                            "value": result.value, "iterations": result.iterations})
            log_progress(_logger, logging.INFO, "affine %s level %d/%d: %d iterations, %s "
                         "%.6g -> %.6g", transform, index + 1, n_levels, result.iterations,
                         prepared.metric.name if prepared.metric is not self.metric
                         else self.metric_name, result.initial_value, result.value,
                         progress={"kind": "affine", **history[-1]}, level_done=True)
        affine_map = AffineMap(matrix, fixed=fixed, moving=prepared.moving)
        affine_map.history = history
        return affine_map


    def _iteration_callback(self, level, n_levels: int):
        """The user's callback, preceded by a DEBUG progress record when those are wanted."""
        user = self.callback
        if not _logger.isEnabledFor(logging.DEBUG):
            return user

        def on_iteration(info):
            log_progress(_logger, logging.DEBUG, "affine %s level %d/%d iteration %d/%d %s %.6g",
                         info["stage"], info["level"] + 1, n_levels, info["iteration"],
                         level.iterations, self.metric_name, info["value"],
                         progress={"kind": "affine", "stage": info["stage"],
                                   "level": info["level"], "iteration": info["iteration"],
                                   "value": info["value"], "levels": n_levels,
                                   "max_iterations": level.iterations,
                                   "metric": self.metric_name})
            if user is not None:
                user(info)

        return on_iteration


class PreparedPair:
    """One image pair made ready for :meth:`AffineRegistration.run`: its pyramid levels and
    their metric states (samples, masks, moving gradients), built once by
    :meth:`AffineRegistration.prepare` and shared by every stage.

    Attributes
    ----------
    fixed, moving : Image
    levels : tuple of (Level, AffineMetricState or tuple of AffineMetricState)
        Coarse to fine; with channels, one state per channel.
    owner : AffineRegistration
        The registration whose settings built it.
    metric : AffineMetric or WeightedMetricSum
        The objective the stages minimise (the channels' weighted sum with channels).
    """

    __slots__ = ("fixed", "moving", "levels", "owner", "metric")

    def __init__(self, fixed: Image, moving: Image, levels: tuple, *,
                 owner: AffineRegistration, metric):
        self.fixed = fixed
        self.moving = moving
        self.levels = levels
        self.owner = owner
        self.metric = metric

    def __repr__(self) -> str:
        return (f"PreparedPair(fixed={self.fixed.shape}, moving={self.moving.shape}, "
                f"levels={len(self.levels)})")


@refuse_dipy_order
def affine_registration(fixed: ImageLike, moving: ImageLike, *,
                        pipeline: str | Sequence[str] = DEFAULT_PIPELINE,
                        metric: str = "mi", bins: int | None = None,
                        sampling: float | None = None, sampling_strategy: str = "random",
                        levels: Sequence[tuple[int, float, int]] = DEFAULT_LEVELS,
                        sigma_unit: str = "vox", tolerance: float = 1e-5,
                        fixed_mask: MaskLike | None = None, moving_mask: MaskLike | None = None,
                        starting_affine: MatrixLike | None = None,
                        num_threads: int | None = None,
                        seed: int = 0, full_resolution: str = "last",
                        callback: Callable[[dict], None] | None = None,
                        fixed_affine: MatrixLike | None = None,
                        moving_affine: MatrixLike | None = None,
                        channels: Sequence[Channel] | None = None,
                        weight: float = 1.0) -> AffineMap:
    """Register ``moving`` to ``fixed`` with a pipeline of linear stages.

    Parameters
    ----------
    fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
        2D or 3D images in a shared world space (their ``vox2world``).
    pipeline : sequence of str
        Initialisers (``"center_of_mass"``, ``"geometric_centers"``,
        ``"origins"``) and stages (``"translation"``, ``"rigid"``,
        ``"similarity"``, ``"affine"``), run in order, each starting where the
        previous one stopped. Names are case-insensitive here and everywhere.
    metric : {"mi", "meansquares", "correlation"}
    bins : int, optional
        Histogram bins for mutual information (default 32); refused by the
        other metrics.
    sampling : float, optional
        Fraction of fixed voxels sampled per level; 1.0 is dense. ``None``
        (auto) is dense up to ``AUTO_SAMPLES`` voxels per level and a seeded
        random subset of that many above (see :class:`AffineRegistration`).
    sampling_strategy : {"random", "regular"}
    levels : sequence of (factor, sigma, iterations)
        Pyramid, coarse to fine; sigma in ``sigma_unit``.
    sigma_unit : {"vox", "mm"}
    tolerance : float
        Relative value change that ends a level.
    fixed_mask, moving_mask : Image, ndarray or path, optional
        Non-zero voxels are used; same grid as their image; NaN is refused.
    starting_affine : ndarray, shape (ndim + 1, ndim + 1), optional
        Initial matrix (identity if omitted); initialisers replace it (a
        :class:`RegistrationWarning` says so when the pipeline starts with one).
    num_threads : int, optional
        The result is bit-identical at any thread count.
    seed : int
        Seed of the sparse sample set.
    full_resolution : {"last", "all"}
        Which stages run the finest pyramid level. ``"last"`` (default): only
        the last stage; the earlier ones only initialise it, and stopping them
        one level early saves about a third of the time at equal accuracy.
    callback : callable, optional
        Per-iteration callback, see :class:`AffineRegistration`.
    fixed_affine, moving_affine : ndarray, optional
        vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
        / ``moving``; required for ndarrays, refused for anything else.
    channels : sequence of Channel, optional
        More (fixed, moving) pairs driving the same transform (e.g. T2 next
        to T1), each with its own ``affine_metric`` (default ``metric``) and
        weight; on the grids of ``fixed`` and ``moving``. The stages minimise
        the weighted sum of the channels' metrics (see
        :mod:`parareg.registration.channels`); the masks, the samples and
        the initialisers (on the ``(fixed, moving)`` pair) are shared.
    weight : float
        The weight of ``(fixed, moving)`` among the channels (weights are 0
        or more, sum to more than 0 and are normalised to sum to 1).

    Returns
    -------
    AffineMap
        ``matrix`` maps fixed world points to moving world points;
        ``transform(moving)`` gives the moving image on the fixed grid.

    Raises
    ------
    RegistrationError
        When the images do not overlap after initialisation.

    Examples
    --------
    >>> import parareg
    >>> result = parareg.affine_registration("fixed.nii.gz", "moving.nii.gz")  # doctest: +SKIP
    >>> warped = result.transform(parareg.load("moving.nii.gz"))  # doctest: +SKIP
    """
    pipeline = _check_pipeline(pipeline)
    full_resolution = choice(full_resolution, ("last", "all"), name="full_resolution")
    fixed, moving = as_pair(fixed, moving, fixed_affine=fixed_affine, moving_affine=moving_affine,
                            num_threads=num_threads)
    ndim = fixed.ndim
    matrix = np.eye(ndim + 1) if starting_affine is None else check_matrix(
        starting_affine, ndim, name="starting_affine")
    if starting_affine is not None and pipeline[0] in INITIALIZERS:
        # a warning, not an error: "initialisers replace it" is documented behaviour
        warnings.warn(f"starting_affine is not used: the pipeline starts with the initialiser "
                      f"{pipeline[0]!r}, which replaces it; drop the initialiser (e.g. "
                      f"pipeline={tuple(s for s in pipeline if s not in INITIALIZERS)}) to "
                      "start from starting_affine", RegistrationWarning, stacklevel=2)
    fixed_mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
    moving_mask = _as_mask(moving_mask, moving, name="moving_mask")
    loaded = check_channels(channels, fixed, moving, weight=weight, num_threads=num_threads)
    # the images are loaded once: prepare() gets them as Images
    channels = [Channel(c.fixed, c.moving, c.weight, c.affine_metric, c.syn_metric)
                for c in loaded[1:]]
    weight = loaded[0].weight
    registration = AffineRegistration(metric=metric, bins=bins, sampling=sampling,
                                      sampling_strategy=sampling_strategy, levels=levels,
                                      sigma_unit=sigma_unit, tolerance=tolerance, seed=seed,
                                      num_threads=num_threads, callback=callback)
    prepared = None  # built at the first stage (after the initialisers' own checks)
    history = []
    n_levels = len(registration.levels)
    last_stage = max((i for i, step in enumerate(pipeline) if step in STAGES), default=-1)
    for position, step in enumerate(pipeline):
        if step in INITIALIZERS:
            matrix = INITIALIZERS[step](fixed, moving)
            history.append({"stage": step})
            continue
        coarse_only = full_resolution == "last" and position != last_stage and n_levels > 1
        levels_used = n_levels - 1 if coarse_only else n_levels
        if prepared is None:
            prepared = registration.prepare(fixed, moving, fixed_mask=fixed_mask,
                                            moving_mask=moving_mask, channels=channels,
                                            weight=weight)
        stage_map = registration.run(prepared, step, starting_affine=matrix,
                                     levels=levels_used)
        matrix = stage_map.matrix
        history.extend(stage_map.history)
    optimised = [h for h in history if "value" in h]
    if optimised and not any(h["value"] < h["initial_value"] for h in optimised):
        warnings.warn("affine registration did not improve the metric at any stage; the "
                      "images may not overlap or may need another initialiser",
                      RegistrationWarning, stacklevel=3)  # 3: the refuse_dipy_order wrapper
    result = AffineMap(matrix, fixed=fixed, moving=moving)
    result.history = history
    return result
