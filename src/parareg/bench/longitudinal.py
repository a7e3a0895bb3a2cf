"""A two-visit, two-contrast case with a reference answer: open_ms patient01 (Lesjak et al.).

Each visit has a FLAIR and a T2W image on different grids, the reference
``*_T2W_intrastudy_to_FLAIR.txt`` (FLAIR points -> T2W points) and
``*_FLAIR_to_common_space.txt`` (common-space points -> that visit's FLAIR
points), ITK files in LPS, read with :func:`parareg.transforms.chain.read_transforms`.

:func:`load_visit` puts a visit's T2W on its FLAIR grid (optionally a coarser
one), so the two contrasts of a visit are two channels on one grid;
:func:`reference_fixed2moving` composes the visit-1 -> visit-2 point map; and
:func:`displacement_error` scores a registration against it.

Examples
--------
>>> from parareg.bench.longitudinal import load_visit  # doctest: +SKIP
>>> flair, t2w = load_visit("data/multimodal/open_ms/patient01", "study1", shrink=(4, 4, 1))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..image import Image


def coarse_grid(image: Image, shrink: Sequence[int]) -> Image:
    """An empty image on ``image``'s grid shrunk by ``shrink[axis]`` along each axis (the same
    field of view: coarse voxel 0 sits at the centre of the first block of fine voxels)."""
    from ..image import Image

    ndim = image.ndim
    coarse2fine = np.eye(ndim + 1)
    shape = []
    for axis, factor in enumerate(shrink):
        coarse2fine[axis, axis] = factor
        coarse2fine[axis, ndim] = (factor - 1) / 2.0
        shape.append(max(1, image.shape[axis] // factor))
    return Image(np.zeros(shape, np.float32), image.vox2world @ coarse2fine)


def _downsampled(image: Image, grid: Image, *, affine=None, num_threads=None) -> Image:
    """``image`` smoothed (sigma half the grid's voxel size per axis, in ``image``'s voxels)
    and resampled linearly onto ``grid`` through ``affine`` (grid points -> image points)."""
    from ..filters import gaussian_smooth
    from ..image import Image
    from ..resampling import resample

    sigmas = 0.5 * np.maximum(grid.spacing / image.spacing - 1.0, 0.0)
    data = image.data
    if np.any(sigmas > 0):
        data = gaussian_smooth(np.ascontiguousarray(data, np.float32), sigmas,
                               num_threads=num_threads)
    return resample(Image(data, image.vox2world), grid, affine=affine, num_threads=num_threads)


def load_visit(folder, study: str, *, shrink: Sequence[int] = (1, 1, 1),
               num_threads: int | None = None) -> tuple[Image, Image]:
    """``(flair, t2w)`` of one visit on its FLAIR grid shrunk by ``shrink`` (T2W put there
    with the reference intrastudy transform).

    Parameters
    ----------
    folder : path
        ``.../open_ms/patient01``.
    study : {"study1", "study2"}
    shrink : sequence of int
        Shrink factor per axis of the FLAIR grid (the slices are 3-4 mm
        thick: e.g. ``(4, 4, 1)``).
    num_threads : int, optional
    """
    from ..io.nifti import load
    from ..transforms.chain import read_transforms

    folder = Path(folder)
    flair = load(folder / f"{study}_FLAIR.nii.gz")
    t2w = load(folder / f"{study}_T2W.nii.gz")
    (step,) = read_transforms([folder / f"{study}_T2W_intrastudy_to_FLAIR.txt"], ndim=3)
    grid = coarse_grid(flair, shrink)
    return (_downsampled(flair, grid, num_threads=num_threads),
            _downsampled(t2w, grid, affine=step.matrix, num_threads=num_threads))


def reference_fixed2moving(folder) -> np.ndarray:
    """The reference visit-1 FLAIR world -> visit-2 FLAIR world matrix (RAS mm):
    ``study2_FLAIR_to_common_space o inverse(study1_FLAIR_to_common_space)``, read as the
    transform chain ``[study1 file (inverted), study2 file]`` (the first acts first)."""
    from ..transforms.chain import read_transforms

    folder = Path(folder)
    steps = read_transforms([folder / "study1_FLAIR_to_common_space.txt",
                             folder / "study2_FLAIR_to_common_space.txt"],
                            ndim=3, invert=[True, False])
    matrix = np.eye(4)
    for step in steps:
        matrix = step.matrix @ matrix
    return matrix


def head_mask(image: Image, *, fraction: float = 0.1) -> np.ndarray:
    """Voxels brighter than ``fraction`` of the 99th intensity percentile (the head)."""
    data = image.data
    return data > fraction * float(np.percentile(data, 99))


def displacement_error(fixed2moving, reference, grid: Image, mask) -> tuple[float, float]:
    """``(mean, max)`` distance in mm between where two fixed -> moving world matrices send
    the world points of ``grid``'s voxels inside ``mask``."""
    from ..transforms.chain import world_points

    points = world_points(grid)[np.asarray(mask).reshape(-1)]
    difference = np.asarray(fixed2moving, np.float64) - np.asarray(reference, np.float64)
    error = np.linalg.norm(points @ difference[:3, :3].T + difference[:3, 3], axis=1)
    return float(error.mean()), float(error.max())


__all__ = ["coarse_grid", "displacement_error", "head_mask", "load_visit",
           "reference_fixed2moving"]
