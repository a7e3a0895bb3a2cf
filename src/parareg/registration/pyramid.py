"""Multi-resolution pyramids: smooth, then shrink onto a coarser world-aligned grid."""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import numpy as np

from .._hints import InputError
from .._options import choice
from ..filters import gaussian_smooth
from ..image import Image, trusted_image
from ..resampling import resample, resample_zero_outside

SIGMA_UNITS = ("vox", "mm")
#: the levels :func:`shared_levels` keeps: (id(image), factor, sigma, unit) -> (image, level)
_SHARED: ContextVar[dict | None] = ContextVar("parareg_shared_levels", default=None)


class PyramidTooCoarseError(InputError):
    """An image or mask too small for a pyramid level (``kind`` says how).

    ``kind`` is ``"pyramid_single_value"`` (the level holds one value although
    the image does not), ``"pyramid_cc_window"`` (the level is smaller than the
    CC window) or ``"pyramid_mask_vanishes"`` (no mask voxel survives the
    shrink). ``facts``: ``name``, ``shape``, ``level``, ``factor``,
    ``level_shape`` and, by kind, ``window`` or ``voxels``.
    """


def _refuse_level(name, shape, level, factor, level_shape, *, stage, window, single) -> None:
    """Raise :class:`PyramidTooCoarseError` for a level smaller than ``window`` or ``single``."""
    facts = dict(name=name, shape=tuple(shape), level=level, factor=factor,
                 level_shape=tuple(level_shape))
    where = f"pyramid level {level} (shrink factor {factor}) of {name}, shape {tuple(level_shape)}"
    fix = (f"pass levels whose shrink factors leave more voxels (levels=((2, 1.0, 100), "
           f"(1, 0.0, 25)) for example; {stage}={{'levels': ...}} in parareg.register)")
    if window and min(level_shape) < window:
        raise PyramidTooCoarseError(
            f"{where}, is smaller than the CC window of 2 * radius + 1 = {window} voxels",
            f"{fix}, a smaller radius, or a metric without a window ('ssd', 'em', 'mi')",
            kind="pyramid_cc_window", window=window, **facts)
    if single:
        raise PyramidTooCoarseError(
            f"{name} has shape {tuple(shape)}, too small for {where}: that level holds a single "
            "value, although the image is not constant", fix, kind="pyramid_single_value",
            **facts)


def _constant(image: Image) -> bool:
    return float(image.data.max()) == float(image.data.min())


def check_level_image(level_image: Image, image: Image, *, name: str, level: int, factor: int,
                      stage: str = "levels", window: int = 0) -> None:
    """Refuse a pyramid level too coarse for ``image``: a single value, or smaller than ``window``.

    A constant ``image`` passes: the metric says it is constant, which is then true.
    ``stage`` is the keyword that sets these levels in :func:`parareg.register`
    (``"affine_options"`` or ``"syn_options"``), quoted in the fix.
    """
    single = _constant(level_image) and not _constant(image)
    _refuse_level(name, image.shape, level, factor, level_image.shape, stage=stage,
                  window=window, single=single)


def check_level_shapes(image: Image, levels, *, window: int = 0, name: str = "fixed",
                       stage: str = "levels") -> None:
    """Refuse, before any work, pyramid levels of ``image`` of a single voxel, or smaller than
    a ``window``-voxel window along an axis (shapes only: nothing is smoothed or resampled)."""
    for index, level in enumerate(check_levels(levels)):
        shape = level_shape(image.shape, level.factor)
        single = math.prod(shape) == 1 and not _constant(image)
        _refuse_level(name, image.shape, index, level.factor, shape, stage=stage,
                      window=window, single=single)


def check_level_mask(level_mask: Image, mask: Image, *, name: str, level: int,
                     factor: int) -> None:
    """Refuse a mask none of whose voxels survives the shrink to a pyramid level."""
    if np.any(level_mask.data):
        return
    voxels = int(np.count_nonzero(mask.data))
    raise PyramidTooCoarseError(
        f"{name} has {voxels} non-zero voxel(s) and none of them lies on the grid of pyramid "
        f"level {level} (shrink factor {factor}, shape {tuple(level_mask.shape)}), so that "
        "level would have nothing to measure",
        "use a larger mask, or levels with smaller shrink factors",
        kind="pyramid_mask_vanishes", name=name, shape=tuple(mask.shape), level=level,
        factor=factor, level_shape=tuple(level_mask.shape), voxels=voxels)


class Level(NamedTuple):
    """One pyramid level: shrink ``factor``, smoothing ``sigma`` and an iteration limit."""

    factor: int
    sigma: float
    iterations: int


def check_levels(levels) -> tuple[Level, ...]:
    """Validate a sequence of ``(factor, sigma, iterations)`` triples."""
    try:
        out = tuple(Level(*level) for level in levels)
    except TypeError:
        raise ValueError("levels must be a sequence of (factor, sigma, iterations) triples, "
                         f"got {levels!r}") from None
    if not out:
        raise ValueError("levels must hold at least one (factor, sigma, iterations) triple")
    for level in out:
        if int(level.factor) != level.factor or level.factor < 1:
            raise ValueError(f"levels: factor must be an integer >= 1, got {level.factor!r}")
        if not np.isfinite(level.sigma) or level.sigma < 0:
            raise ValueError(f"levels: sigma must be >= 0, got {level.sigma!r}")
        if int(level.iterations) != level.iterations or level.iterations < 0:
            raise ValueError(f"levels: iterations must be an integer >= 0, "
                             f"got {level.iterations!r}")
    return tuple(Level(int(lv.factor), float(lv.sigma), int(lv.iterations)) for lv in out)


def level_shape(shape, factor: int) -> tuple[int, ...]:
    """The shape of a grid shrunk by ``factor`` (:func:`shrink_grid`), without making it."""
    return tuple(max(1, n // factor) for n in shape)


def shrink_grid(image: Image, factor: int) -> Image:
    """An empty image on ``image``'s grid shrunk by ``factor`` (same field of view centre).

    Like ITK's shrink filter: voxel 0 of the coarse grid lies at the centre of
    the first ``factor``-wide block of fine voxels.
    """
    ndim = image.ndim
    shape = level_shape(image.shape, factor)
    coarse2fine = np.eye(ndim + 1)
    for axis in range(ndim):
        f = factor if image.shape[axis] >= factor else 1
        coarse2fine[axis, axis] = f
        coarse2fine[axis, ndim] = (f - 1) / 2.0
    return Image(np.zeros(shape, np.float32), image.vox2world @ coarse2fine)


def pyramid_level(image: Image, *, factor: int, sigma: float, sigma_unit: str = "vox",
                  num_threads=None) -> Image:
    """``image`` smoothed by ``sigma`` and shrunk by ``factor``.

    Parameters
    ----------
    image : Image
    factor : int
        Shrink factor (1 keeps the grid).
    sigma : float
        Gaussian standard deviation, in voxels of ``image`` or in mm.
    sigma_unit : {"vox", "mm"}
    num_threads : int, optional
    """
    sigma_unit = choice(sigma_unit, SIGMA_UNITS, name="sigma_unit")
    shared = _SHARED.get()
    key = (id(image), int(factor), float(sigma), sigma_unit)
    if shared is not None and key in shared and shared[key][0] is image:
        return shared[key][1]
    level = _pyramid_level(image, factor=factor, sigma=sigma, sigma_unit=sigma_unit,
                           num_threads=num_threads)
    if shared is not None:
        shared[key] = (image, level)  # the image is kept: its id stays its own
    return level


@contextmanager
def shared_levels():
    """Within the block, :func:`pyramid_level` builds each level of an image once (in this
    thread): the initial search and the affine stage after it share their coarsest level.

    A level depends only on its image and settings, at any thread count, so a shared level
    has the bits of a rebuilt one.
    """
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def _pyramid_level(image: Image, *, factor, sigma, sigma_unit, num_threads) -> Image:
    sigmas = np.full(image.ndim, float(sigma))
    if sigma_unit == "mm":
        sigmas = sigmas / image.spacing
    data = np.ascontiguousarray(image.data, dtype=np.float32)  # kernels take C order only
    if np.any(sigmas > 0):
        data = gaussian_smooth(data, sigmas, num_threads=num_threads)
    smoothed = trusted_image(data, image.vox2world)  # smoothed from a checked image: no re-scan
    if factor == 1:
        return smoothed
    return resample_zero_outside(smoothed, shrink_grid(image, factor), num_threads=num_threads)


def shrink_mask(mask: Image, grid: Image, *, num_threads=None) -> Image:
    """A binary mask carried onto a pyramid grid by nearest-neighbour lookup."""
    binary = Image((mask.data != 0).astype(np.uint8), mask.vox2world)
    return resample(binary, grid, interpolation="nearest", num_threads=num_threads)
