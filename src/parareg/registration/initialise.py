"""Robust starts for the affine pipeline: principal axes, a global rotation search, a translation
search over the overlap, a field-of-view-aware centring, and a wrong-basin check.

``register(initial_transform="moments")`` and ``initial_transform="search"`` (``--init`` on
the command line; ``"search"`` is register's default start) run here
(:func:`initialised_affine`). Both work on one coarse pyramid level (the affine pyramid's
coarsest, at most :data:`SEARCH_SAMPLES` fixed samples; the affine stage reuses that level,
see :func:`~parareg.registration.pyramid.shared_levels`) and score their candidate starts
with the registration's own affine metric.

``"moments"``
    The principal axes of both images matched in every sign choice
    (:func:`~parareg.transforms.init.principal_axes_alignments`); the metric picks one.
``"search"``
    1. Rotations that cover every rotation (:func:`~parareg.transforms.init.rotation_grid`:
       every :data:`ROTATION_STEP_DEG` in 2D, the icosahedral and octahedral rotations in 3D) and the
       principal-axes candidates, about the fixed centre of mass. When one image's foreground covers less than ``PARTIAL_VIEW`` of the other's
       volume (a brain-only slab against a head and neck), each rotation also gets the
       shifts of :func:`~parareg.transforms.init.extent_shifts`: along an axis covered only in
       part, either end of the shorter extent meets the same end of the longer one.
    2. Every start is scored by the metric, in parallel on the pool; starts whose overlap
       (valid samples) is under :data:`MIN_OVERLAP` of the best overlap are set aside.
    3. The best :data:`REFINED` starts that lie in distinct basins each get a translation
       search over the overlap (a ``3**ndim`` grid of shifts of :data:`SHIFT_FRACTION` of the
       fixed extent), then a short rigid optimisation (:data:`REFINE_ITERATIONS`).
    4. The best refined start begins the affine pipeline; when it lies in the basin of the
       centres-of-mass start (:func:`~parareg.transforms.init.center_of_mass`, the default),
       that start is used instead, so a pair the default already suits gets its result bit
       for bit.

Every evaluation is independent and deterministic, results come back in input order and
ties break by position in the candidate list, so the start is bit-identical at any thread
count.

After the affine stage :func:`check_basin` scores the result on the search level: a start
the search saw in another basin (more than :data:`BASIN_DEGREES` of rotation or
:data:`BASIN_MM` away at the fixed centre) that scores better than the result means the
pipeline probably ended in a wrong basin. ``"search"`` then reruns the pipeline from that
start and keeps the run with the better final metric; a :class:`WrongBasinWarning` says so
when the kept result is still suspect (``"moments"`` warns at once).
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._log import get_logger
from .._options import choice
from ..image import Image, as_pair
from ..metrics import get_affine_metric
from ..metrics.base import NoOverlapError
from ..parallel import parallel_map
from ..transforms import get_transform
from ..transforms.init import (PARTIAL_VIEW, center_of_mass, extent_shifts, principal_axes,
                               principal_axes_alignments, rotation_grid)
from ..transforms.linear import _nearest_rotation
from .affine import (DEFAULT_LEVELS, AffineMap, RegistrationError, RegistrationWarning, _as_mask,
                     affine_registration)
from .optimize import one_blas_thread, optimize_stage
from .pyramid import check_level_mask, check_levels, pyramid_level, shared_levels, shrink_mask

_logger = get_logger(__name__)

#: the starts this module makes (``register(initial_transform=...)`` names)
SEARCH_METHODS = ("moments", "search")
#: fixed samples of the search level (a seeded random subset above this many)
SEARCH_SAMPLES = 3000
#: angle step of the 2D rotation grid, degrees (3D: the icosahedral and octahedral rotations)
ROTATION_STEP_DEG = 30.0
#: distinct starts refined by a translation search and a short rigid optimisation (FLIRT
#: optimises its best 3 candidates too)
REFINED = 3
#: iterations of each refinement (L-BFGS-B, at the search level)
REFINE_ITERATIONS = 8
#: translation search: shifts of this fraction of the fixed foreground extent per axis
SHIFT_FRACTION = 0.125
#: a start whose valid samples are under this fraction of the best start's is set aside
MIN_OVERLAP = 0.5
#: two matrices lie in different basins beyond this rotation (degrees) or centre shift (mm)
BASIN_DEGREES = 20.0
BASIN_MM = 15.0
#: a start must beat the result by this fraction of its metric to call the result suspect
BASIN_MARGIN = 0.01
#: foreground: voxels above this fraction of the 99th intensity percentile
FOREGROUND = 0.15
#: at most this many foreground points enter the field-of-view extents
_MAX_POINTS = 20_000


class WrongBasinWarning(RegistrationWarning):
    """The affine result scores worse, on the search level, than a start in another basin."""


@dataclass(frozen=True)
class Start:
    """One scored start: a fixed-world -> moving-world matrix and its metric on the search level.

    Attributes
    ----------
    matrix : ndarray, shape (ndim + 1, ndim + 1)
    value : float
        The metric (lower is better); ``inf`` without overlap.
    overlap : int
        Valid samples at ``matrix``.
    """

    matrix: np.ndarray
    value: float
    overlap: int


@dataclass(frozen=True)
class StartSearch:
    """What :func:`initial_search` tried and found.

    Attributes
    ----------
    method : {"moments", "search"}
    starts : tuple of Start
        Best first: the refined starts (``"search"``) or the sign candidates (``"moments"``).
    tried : int
        Starts scored.
    what : str
        The starts tried, in words (quoted by errors and warnings).
    metric, state
        The metric and its state on the search level (see :func:`check_basin`).
    center : ndarray, shape (ndim,)
        Fixed centre of mass (the pivot of every start), mm.
    """

    method: str
    starts: tuple
    tried: int
    what: str
    metric: object
    state: object
    center: np.ndarray

    @property
    def best(self) -> Start:
        return self.starts[0]

    def score(self, matrix) -> Start:
        """``matrix`` scored on the search level."""
        return _score(self.metric, self.state, np.asarray(matrix, dtype=np.float64))


def _score(metric, state, matrix) -> Start:
    try:
        evaluation = metric.evaluate(state, matrix, gradient=False)
    except NoOverlapError:
        return Start(matrix, float("inf"), 0)
    return Start(matrix, float(evaluation.value), int(evaluation.num_valid))


def _ranked(starts: list) -> list:
    """Starts with enough overlap, best first; ties keep the candidate order."""
    most = max((start.overlap for start in starts), default=0)
    if most == 0:
        return []
    keep = [i for i, start in enumerate(starts) if start.overlap >= MIN_OVERLAP * most]
    keep.sort(key=lambda i: (starts[i].value, i))
    return [starts[i] for i in keep]


def _apart(a: np.ndarray, b: np.ndarray, center: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` lie in different basins (rotation or centre shift)."""
    n = center.shape[0]
    ra, _ = _nearest_rotation(a[:n, :n])
    rb, _ = _nearest_rotation(b[:n, :n])
    cosine = (np.trace(ra.T @ rb) - (n - 2)) / 2.0
    degrees = np.rad2deg(np.arccos(np.clip(cosine, -1.0, 1.0)))
    shift = np.linalg.norm((a[:n, :n] - b[:n, :n]) @ center + a[:n, n] - b[:n, n])
    return bool(degrees > BASIN_DEGREES or shift > BASIN_MM)


def _distinct(ranked: list, count: int, center: np.ndarray) -> list:
    """The best ``count`` starts, each in a basin apart from every better one kept."""
    picked = []
    for start in ranked:
        if all(_apart(start.matrix, other.matrix, center) for other in picked):
            picked.append(start)
            if len(picked) == count:
                break
    return picked


def _start(rotation, shift, fixed_center, moving_center) -> np.ndarray:
    """``M(x) = R (x - c_f + s) + c_m``."""
    n = fixed_center.shape[0]
    matrix = np.eye(n + 1)
    matrix[:n, :n] = rotation
    matrix[:n, n] = moving_center + rotation @ (shift - fixed_center)
    return matrix


def _foreground(image: Image) -> np.ndarray:
    """The bright voxels of ``image`` (its field of view's content; masks play no part)."""
    data = np.asarray(image.data)
    inside = data > FOREGROUND * float(np.percentile(data, 99))
    return inside if inside.any() else np.ones(data.shape, dtype=bool)


def _foreground_points(image: Image, inside: np.ndarray, center: np.ndarray) -> np.ndarray:
    """World positions (mm, relative to ``center``) of the corners of the ``inside`` voxels'
    convex hull (of at most ``_MAX_POINTS`` of them, evenly taken): every rotated extent of the
    foreground is that of these few points (all of them where the hull is flat)."""
    from scipy.spatial import ConvexHull, QhullError

    index = np.argwhere(inside)
    index = index[:: max(1, len(index) // _MAX_POINTS)].astype(np.float64)
    n = image.ndim
    points = index @ image.vox2world[:n, :n].T + image.vox2world[:n, n] - center
    try:
        return points[np.sort(ConvexHull(points).vertices)]
    except (QhullError, ValueError):  # fewer than n + 1 points, or all in a plane
        return points


def _partial_view(fixed: Image, fixed_inside, moving: Image, moving_inside) -> bool:
    """Whether one image's foreground covers less than ``PARTIAL_VIEW`` of the other's volume."""
    n = fixed.ndim
    volumes = [np.count_nonzero(inside) * abs(np.linalg.det(image.vox2world[:n, :n]))
               for image, inside in ((fixed, fixed_inside), (moving, moving_inside))]
    return bool(min(volumes) < PARTIAL_VIEW * max(volumes))


def _search_level(fixed, moving, *, metric, bins, fixed_mask, moving_mask, level, sigma_unit,
                  num_threads, seed):
    factor, sigma = level
    images, masks = [], []
    for image, mask in ((fixed, fixed_mask), (moving, moving_mask)):
        coarse = pyramid_level(image, factor=factor, sigma=sigma, sigma_unit=sigma_unit,
                               num_threads=num_threads)
        images.append(coarse)
        masks.append(None if mask is None else shrink_mask(mask, coarse,
                                                           num_threads=num_threads))
        if mask is not None:  # the pipeline's own refusal of a mask that vanishes
            check_level_mask(masks[-1], mask, name=f"{'moving' if masks[1:] else 'fixed'}_mask",
                             level=0, factor=factor)
    metric = get_affine_metric(metric, bins=bins)
    candidates = images[0].data.size if masks[0] is None else int(np.count_nonzero(masks[0].data))
    sampling = None if candidates <= SEARCH_SAMPLES else SEARCH_SAMPLES / max(candidates, 1)
    # one thread per evaluation: the starts run in parallel instead (few samples make an
    # evaluation too short to split)
    state = metric.setup(images[0], images[1], fixed_mask=masks[0], moving_mask=masks[1],
                         sampling=sampling, seed=seed, num_threads=1)
    return images, masks, metric, state


def initial_search(fixed, moving, *, method: str = "search", metric: str = "mi",
                   bins: int | None = None, fixed_mask=None, moving_mask=None,
                   level: tuple[int, float] | None = None, sigma_unit: str = "vox",
                   num_threads: int | None = None, seed: int = 0) -> StartSearch:
    """Score starts of the affine pipeline on one coarse level; return them ranked.

    Parameters
    ----------
    fixed, moving : Image, path, nibabel image, ants.ANTsImage
    method : {"moments", "search"}
        See the module docstring.
    metric : {"mi", "meansquares", "correlation"}
    bins : int, optional
        Mutual-information bins (the metric's default when omitted).
    fixed_mask, moving_mask : Image, ndarray or path, optional
        As in :func:`~parareg.registration.affine.affine_registration`.
    level : (int, float), optional
        Shrink factor and smoothing sigma of the search level (default: the
        coarsest of ``DEFAULT_LEVELS``).
    sigma_unit : {"vox", "mm"}
    num_threads : int, optional
        The result is bit-identical at any thread count.
    seed : int
        Seed of the search level's samples.

    Returns
    -------
    StartSearch
        ``.best.matrix`` is the start (fixed world -> moving world).

    Raises
    ------
    RegistrationError
        When fixed and moving overlap at none of the starts tried (the message says which).

    Examples
    --------
    >>> search = initial_search("fixed.nii.gz", "moving.nii.gz")  # doctest: +SKIP
    >>> search.best.matrix.shape  # doctest: +SKIP
    (4, 4)
    """
    method = choice(method, SEARCH_METHODS, name="method")
    fixed, moving = as_pair(fixed, moving, num_threads=num_threads)
    fixed_mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
    moving_mask = _as_mask(moving_mask, moving, name="moving_mask")
    level = DEFAULT_LEVELS[0][:2] if level is None else level
    try:
        level = check_levels([(*level, 0)])[0][:2]
    except TypeError:
        raise ValueError(f"level must be a (shrink factor, sigma) pair, got {level!r}") from None
    # the centres of mass first: the default start's refusals (an all-zero image, no positive
    # intensity) come first, as they do with "com"; the search starts there when it agrees
    com = center_of_mass(fixed, moving)
    (f, m), _, metric_obj, state = _search_level(
        fixed, moving, metric=metric, bins=bins, fixed_mask=fixed_mask, moving_mask=moving_mask,
        level=level, sigma_unit=sigma_unit, num_threads=num_threads, seed=seed)
    ndim = fixed.ndim
    fixed_center = principal_axes(f, name="fixed")[0]
    moving_center = principal_axes(m, name="moving")[0]
    moments = principal_axes_alignments(f, m)

    def score_all(matrices):
        return parallel_map(lambda matrix: _score(metric_obj, state, matrix), matrices,
                            num_threads=num_threads)

    where = f"on the search level (shrink factor {level[0]})"
    if method == "moments":
        what = f"the {len(moments)} principal-axes alignments {where}"
        ranked = _ranked(score_all(moments))
        if not ranked:
            raise _no_overlap(what)
        return StartSearch(method, tuple(ranked), len(moments), what, metric_obj, state,
                           fixed_center)

    rotations = (rotation_grid(ndim, step_deg=ROTATION_STEP_DEG)
                 + [matrix[:ndim, :ndim] for matrix in moments])
    fixed_inside, moving_inside = _foreground(f), _foreground(m)
    fixed_points = _foreground_points(f, fixed_inside, fixed_center)
    moving_points = _foreground_points(m, moving_inside, moving_center)
    partial = _partial_view(f, fixed_inside, m, moving_inside)
    starts = [_start(rotation, shift, fixed_center, moving_center) for rotation in rotations
              for shift in (extent_shifts(fixed_points, moving_points, rotation) if partial
                            else [np.zeros(ndim)])]
    grid = (f"rotations every {ROTATION_STEP_DEG:g} degrees" if ndim == 2
            else "icosahedral and octahedral rotations")
    what = (f"{len(starts)} starts ({len(rotations) - len(moments)} {grid} and {len(moments)} "
            "principal-axes alignments about the centres of mass"
            + (", each with field-of-view-aware shifts" if partial else "") + ") " + where)
    ranked = _ranked(score_all(starts))
    if not ranked:
        raise _no_overlap(what)
    picked = _distinct(ranked, REFINED, fixed_center)
    # translation search over the overlap around each picked start: M(x) = P(x + d)
    extent = fixed_points.max(axis=0) - fixed_points.min(axis=0)
    offsets = [SHIFT_FRACTION * extent * np.array(signs)
               for signs in itertools.product((0.0, -1.0, 1.0), repeat=ndim)]
    shifted = []
    for start in picked:
        for offset in offsets:
            matrix = start.matrix.copy()
            matrix[:ndim, ndim] += matrix[:ndim, :ndim] @ offset
            shifted.append(matrix)
    scored = score_all(shifted)
    most = max(start.overlap for start in scored)
    bests = []
    for k in range(len(picked)):
        group = [s for s in scored[k * len(offsets):(k + 1) * len(offsets)]
                 if s.overlap >= MIN_OVERLAP * most] or [picked[k]]
        bests.append(min(enumerate(group), key=lambda item: (item[1].value, item[0]))[1].matrix)
    family = get_transform("rigid", ndim)
    scales = family.param_scales(np.asarray(f.shape) * f.spacing)

    def refine(matrix):
        result = optimize_stage(metric_obj, state, family, matrix, center=fixed_center,
                                scales=scales, iterations=REFINE_ITERATIONS, tolerance=1e-5)
        return _score(metric_obj, state, result.matrix)

    with one_blas_thread():
        refined = _ranked(parallel_map(refine, bests, num_threads=num_threads)) or picked
    # the search agrees with the centres of mass: start exactly where "com" starts, so that a
    # pair the centres of mass already suit gives their result, bit for bit
    if not _apart(refined[0].matrix, com, fixed_center):
        refined = [_score(metric_obj, state, com), *refined[1:]]
    tried = len(starts) + len(shifted)
    _logger.info("initial search: %d starts, %d refined; best %s %.6g", tried, len(bests),
                 metric_obj.name, refined[0].value)
    return StartSearch(method, tuple(refined), tried, what, metric_obj, state, fixed_center)


def _no_overlap(what: str) -> RegistrationError:
    return RegistrationError(
        f"fixed and moving overlap (with their masks) at none of {what}",
        "check the images' vox2world matrices and masks (do they describe overlapping "
        "regions of the world?), or give initial_transform a starting matrix",
        kind="search_no_overlap", tried=what)


def check_basin(search: StartSearch, matrix) -> Start | None:
    """A start of ``search`` in another basin that scores better than ``matrix``, or ``None``.

    Parameters
    ----------
    search : StartSearch
    matrix : ndarray, shape (ndim + 1, ndim + 1)
        A registration result (fixed world -> moving world), scored on the search level.

    Returns
    -------
    Start or None
        The best such start: the result probably lies in a wrong basin.
    """
    result = search.score(matrix)
    for start in search.starts:
        if (start.value < result.value - BASIN_MARGIN * abs(result.value)
                and _apart(start.matrix, result.matrix, search.center)):
            return start
    return None


def _final_value(affine_map: AffineMap) -> float:
    values = [entry["value"] for entry in affine_map.history if "value" in entry]
    return values[-1] if values else float("inf")


def initialised_affine(method: str, fixed: Image, moving: Image, *, pipeline, metric="mi",
                       fixed_mask=None, moving_mask=None, num_threads=None, seed=0,
                       starting_affine=None, **options) -> AffineMap:
    """The affine pipeline from a ``"moments"`` or ``"search"`` start, checked for a wrong basin.

    ``pipeline`` is ``(method, stage, ...)`` as :func:`parareg.register` builds it; the
    other arguments are :func:`~parareg.registration.affine.affine_registration`'s.
    ``starting_affine`` is ignored (the search replaces it, as any initialiser does).
    """
    with shared_levels():  # the search's level is the affine stage's coarsest
        return _initialised_affine(method, fixed, moving, pipeline=pipeline, metric=metric,
                                   fixed_mask=fixed_mask, moving_mask=moving_mask,
                                   num_threads=num_threads, seed=seed, **options)


def _initialised_affine(method, fixed, moving, *, pipeline, metric, fixed_mask, moving_mask,
                        num_threads, seed, **options) -> AffineMap:
    stages = tuple(pipeline[1:])
    levels = check_levels(options.get("levels", DEFAULT_LEVELS))
    started = time.perf_counter()
    search = initial_search(fixed, moving, method=method, metric=metric,
                            bins=options.get("bins"), fixed_mask=fixed_mask,
                            moving_mask=moving_mask, level=levels[0][:2],
                            sigma_unit=options.get("sigma_unit", "vox"),
                            num_threads=num_threads, seed=seed)
    entry = {"stage": method, "tried": search.tried, "search_value": search.best.value,
             "seconds": time.perf_counter() - started}
    if not stages:
        result = AffineMap(search.best.matrix, fixed=fixed, moving=moving)
        result.history = [entry]
        return result

    def run(start):
        return affine_registration(fixed, moving, pipeline=stages, starting_affine=start,
                                   metric=metric, fixed_mask=fixed_mask, moving_mask=moving_mask,
                                   num_threads=num_threads, seed=seed, **options)

    result = run(search.best.matrix)
    rival = check_basin(search, result.matrix)
    if rival is not None and method == "search":
        retry = run(rival.matrix)
        entry["retried"] = True
        if _final_value(retry) < _final_value(result):
            result = retry
        rival = check_basin(search, result.matrix)
    if rival is not None:
        warnings.warn(
            f"the affine result may lie in a wrong basin: on the search level it scores "
            f"{search.score(result.matrix).value:.4g}, worse than a start {method!r} saw in "
            f"another basin ({rival.value:.4g}); check the result"
            + ("" if method == "search" else ", or start with initial_transform='search'"),
            WrongBasinWarning, stacklevel=5)
    result.history = [entry, *result.history]
    return result
