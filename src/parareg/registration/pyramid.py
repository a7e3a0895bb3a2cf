"""Multi-resolution pyramids: smooth, then shrink onto a coarser world-aligned grid."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..filters import gaussian_smooth
from ..image import Image
from ..resampling import resample

SIGMA_UNITS = ("vox", "mm")


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


def shrink_grid(image: Image, factor: int) -> Image:
    """An empty image on ``image``'s grid shrunk by ``factor`` (same field of view centre).

    Like ITK's shrink filter: voxel 0 of the coarse grid lies at the centre of
    the first ``factor``-wide block of fine voxels.
    """
    ndim = image.ndim
    shape = tuple(max(1, n // factor) for n in image.shape)
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
    if sigma_unit not in SIGMA_UNITS:
        raise ValueError(f"sigma_unit must be one of {list(SIGMA_UNITS)}, got {sigma_unit!r}")
    sigmas = np.full(image.ndim, float(sigma))
    if sigma_unit == "mm":
        sigmas = sigmas / image.spacing
    data = np.ascontiguousarray(image.data, dtype=np.float32)  # kernels take C order only
    if np.any(sigmas > 0):
        data = gaussian_smooth(data, sigmas, num_threads=num_threads)
    smoothed = Image(data, image.vox2world)
    if factor == 1:
        return smoothed
    return resample(smoothed, shrink_grid(image, factor), num_threads=num_threads)


def shrink_mask(mask: Image, grid: Image, *, num_threads=None) -> Image:
    """A binary mask carried onto a pyramid grid by nearest-neighbour lookup."""
    binary = Image((mask.data != 0).astype(np.uint8), mask.vox2world)
    return resample(binary, grid, interpolation="nearest", num_threads=num_threads)
