"""Affine registration: a pipeline of linear stages over a multi-resolution pyramid.

Layers: :func:`affine_registration` (validates, runs the pipeline) ->
:class:`AffineRegistration` (one stage over every level, DIPY-style) ->
:func:`~parareg.registration.optimize.optimize_stage` (L-BFGS-B) -> the
metric's parallel kernels.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._hints import InputError
from ..image import Image, as_image, as_pair, check_matrix
from ..metrics import get_affine_metric
from ..metrics.base import NoOverlapError
from ..parallel import resolve_num_threads
from ..resampling import resample
from ..transforms import center_of_mass, geometric_centers, get_transform, image_center, origins
from .optimize import optimize_stage
from .pyramid import (check_level_image, check_level_mask, check_levels, pyramid_level,
                      shrink_mask)

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

    def __init__(self, matrix, *, fixed: Image, moving: Image):
        self.matrix = check_matrix(matrix, fixed.ndim, name="matrix")
        self.fixed_grid = _grid(fixed)
        self.moving_grid = _grid(moving)
        #: per stage and level: dict(stage, level, initial_value, value, iterations)
        self.history: list[dict] = []

    @property
    def ndim(self) -> int:
        return self.fixed_grid.ndim

    def transform(self, image, *, interpolation: str = "linear", num_threads=None,
                  image_affine=None) -> Image:
        """``image`` (on the moving grid's world space) resampled onto the fixed grid.

        ``image`` is any image :func:`parareg.resample` takes (an ndarray with
        ``image_affine``, its vox2world).
        """
        return resample(image, self.fixed_grid, affine=self.matrix, interpolation=interpolation,
                        num_threads=num_threads, moving_affine=image_affine)

    def transform_inverse(self, image, *, interpolation: str = "linear",
                          num_threads=None, image_affine=None) -> Image:
        """``image`` (in the fixed world space) resampled onto the moving grid."""
        return resample(image, self.moving_grid, affine=np.linalg.inv(self.matrix),
                        interpolation=interpolation, num_threads=num_threads,
                        moving_affine=image_affine)

    def transform_points(self, points) -> np.ndarray:
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
    pipeline = tuple(pipeline)
    known = set(INITIALIZERS) | set(STAGES)
    for step in pipeline:
        if step not in known:
            raise ValueError(f"pipeline step must be one of {sorted(known)}, got {step!r}")
    if not pipeline:
        raise ValueError("pipeline must hold at least one step")
    return pipeline


class AffineRegistration:
    """Optimise one linear transform over a pyramid (the DIPY-style class form).

    Parameters
    ----------
    metric : {"mi", "meansquares", "correlation"}
        Mattes mutual information (any contrasts) or same-modality metrics.
    bins : int
        Histogram bins for ``"mi"``.
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

    def __init__(self, *, metric: str = "mi", bins: int = 32, sampling=None,
                 sampling_strategy: str = "random", levels=DEFAULT_LEVELS,
                 sigma_unit: str = "vox", tolerance: float = 1e-5, seed: int = 0,
                 num_threads=None, callback=None):
        self.metric_name = metric
        self.metric = get_affine_metric(metric, bins=bins) if metric == "mi" else \
            get_affine_metric(metric)
        if sampling is not None and not (0.0 < float(sampling) <= 1.0):
            raise ValueError(f"sampling must be in (0, 1] or None, got {sampling!r}")
        self.sampling = sampling
        self.sampling_strategy = sampling_strategy
        self.levels = check_levels(levels)
        self.sigma_unit = sigma_unit
        self.tolerance = float(tolerance)
        self.seed = seed
        self.num_threads = None if num_threads is None else resolve_num_threads(num_threads)
        self.callback = callback
        self._cache_key = None
        self._states = None

    # -- pyramid and metric states, built once and shared by every stage ---------------
    def _prepare(self, fixed, moving, fixed_mask, moving_mask):
        key = (id(fixed), id(moving), id(fixed_mask), id(moving_mask))
        if key == self._cache_key:
            return self._states
        states = []
        for level in self.levels:
            f = pyramid_level(fixed, factor=level.factor, sigma=level.sigma,
                              sigma_unit=self.sigma_unit, num_threads=self.num_threads)
            m = pyramid_level(moving, factor=level.factor, sigma=level.sigma,
                              sigma_unit=self.sigma_unit, num_threads=self.num_threads)
            for name, image, shrunk in (("fixed", fixed, f), ("moving", moving, m)):
                check_level_image(shrunk, image, name=name, level=len(states),
                                  factor=level.factor, stage="affine_options")
            fm = None if fixed_mask is None else shrink_mask(fixed_mask, f,
                                                             num_threads=self.num_threads)
            mm = None if moving_mask is None else shrink_mask(moving_mask, m,
                                                              num_threads=self.num_threads)
            for name, full, shrunk in (("fixed_mask", fixed_mask, fm),
                                       ("moving_mask", moving_mask, mm)):
                if shrunk is not None:
                    check_level_mask(shrunk, full, name=name, level=len(states),
                                     factor=level.factor)
            sampling = self.sampling
            if sampling is None:
                n = f.data.size if fm is None else int(np.count_nonzero(fm.data))
                sampling = None if n <= AUTO_SAMPLES else AUTO_SAMPLES / n
            elif sampling < 1.0:
                n = f.data.size if fm is None else int(np.count_nonzero(fm.data))
                sampling = min(1.0, max(sampling, MIN_SAMPLES / max(n, 1)))
            state = self.metric.setup(f, m, fixed_mask=fm, moving_mask=mm, sampling=sampling,
                                      sampling_strategy=self.sampling_strategy, seed=self.seed,
                                      num_threads=self.num_threads)
            states.append((level, f, state))
        self._cache_key, self._states = key, states
        return states

    def optimize(self, fixed, moving, transform: str = "affine", *, starting_affine=None,
                 fixed_mask=None, moving_mask=None, levels=None, fixed_affine=None,
                 moving_affine=None) -> AffineMap:
        """Register ``moving`` to ``fixed`` with one transform family.

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

        Returns
        -------
        AffineMap
        """
        fixed, moving = as_pair(fixed, moving, fixed_affine=fixed_affine,
                                moving_affine=moving_affine)
        if transform not in STAGES:
            raise ValueError(f"transform must be one of {list(STAGES)}, got {transform!r}")
        ndim = fixed.ndim
        start = np.eye(ndim + 1) if starting_affine is None else check_matrix(
            starting_affine, ndim, name="starting_affine")
        fixed_mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
        moving_mask = _as_mask(moving_mask, moving, name="moving_mask")
        states = self._prepare(fixed, moving, fixed_mask, moving_mask)
        family = get_transform(transform, ndim)
        center = image_center(fixed)
        extent = np.asarray(fixed.shape) * fixed.spacing
        scales = family.param_scales(extent)
        matrix = start
        history = []
        for index, (level, _grid_image, state) in enumerate(states[:levels]):
            info = {"stage": transform, "level": index}
            try:
                result = optimize_stage(self.metric, state, family, matrix, center=center,
                                        scales=scales, iterations=level.iterations,
                                        tolerance=self.tolerance, callback=self.callback,
                                        info=info)
            except NoOverlapError as exc:
                raise RegistrationError(
                    f"{transform} stage, level {index}: fixed and moving do not overlap at the "
                    f"start ({exc})", "check their vox2world matrices or give starting_affine",
                    kind="no_overlap", stage=transform, level=index) from exc
            matrix = result.matrix
            history.append({**info, "initial_value": result.initial_value,
                            "value": result.value, "iterations": result.iterations})
        affine_map = AffineMap(matrix, fixed=fixed, moving=moving)
        affine_map.history = history
        return affine_map


def affine_registration(fixed, moving, *, pipeline=DEFAULT_PIPELINE, metric: str = "mi",
                        bins: int = 32, sampling=None, sampling_strategy: str = "random",
                        levels=DEFAULT_LEVELS, sigma_unit: str = "vox",
                        tolerance: float = 1e-5, fixed_mask=None, moving_mask=None,
                        starting_affine=None, num_threads=None, seed: int = 0,
                        full_resolution: str = "last", callback=None, fixed_affine=None,
                        moving_affine=None) -> AffineMap:
    """Register ``moving`` to ``fixed`` with a pipeline of linear stages.

    Parameters
    ----------
    fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
        2D or 3D images in a shared world space (their ``vox2world``).
    pipeline : sequence of str
        Initialisers (``"center_of_mass"``, ``"geometric_centers"``,
        ``"origins"``) and stages (``"translation"``, ``"rigid"``,
        ``"similarity"``, ``"affine"``), run in order, each starting where the
        previous one stopped.
    metric : {"mi", "meansquares", "correlation"}
    bins : int
        Histogram bins for mutual information.
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
        Initial matrix (identity if omitted); initialisers replace it.
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
    if full_resolution not in ("last", "all"):
        raise ValueError(f"full_resolution must be 'last' or 'all', got {full_resolution!r}")
    fixed, moving = as_pair(fixed, moving, fixed_affine=fixed_affine, moving_affine=moving_affine)
    ndim = fixed.ndim
    matrix = np.eye(ndim + 1) if starting_affine is None else check_matrix(
        starting_affine, ndim, name="starting_affine")
    fixed_mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
    moving_mask = _as_mask(moving_mask, moving, name="moving_mask")
    registration = AffineRegistration(metric=metric, bins=bins, sampling=sampling,
                                      sampling_strategy=sampling_strategy, levels=levels,
                                      sigma_unit=sigma_unit, tolerance=tolerance, seed=seed,
                                      num_threads=num_threads, callback=callback)
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
        stage_map = registration.optimize(fixed, moving, step, starting_affine=matrix,
                                          fixed_mask=fixed_mask, moving_mask=moving_mask,
                                          levels=levels_used)
        matrix = stage_map.matrix
        history.extend(stage_map.history)
    optimised = [h for h in history if "value" in h]
    if optimised and not any(h["value"] < h["initial_value"] for h in optimised):
        warnings.warn("affine registration did not improve the metric at any stage; the "
                      "images may not overlap or may need another initialiser",
                      RegistrationWarning, stacklevel=2)
    result = AffineMap(matrix, fixed=fixed, moving=moving)
    result.history = history
    return result
