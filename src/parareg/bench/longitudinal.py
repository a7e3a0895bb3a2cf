"""A two-visit, two-contrast case with a reference answer: open_ms patient01 (Lesjak et al.).

Each visit has a FLAIR and a T2W image on different grids, the reference
``*_T2W_intrastudy_to_FLAIR.txt`` (FLAIR points -> T2W points) and
``*_FLAIR_to_common_space.txt`` (common-space points -> that visit's FLAIR
points), ITK files in LPS, read with :func:`parareg.transforms.chain.read_transforms`.

:func:`load_visit` puts a visit's T2W on its FLAIR grid (optionally a coarser
one), so the two contrasts of a visit are two channels on one grid;
:func:`reference_fixed2moving` composes the visit-1 -> visit-2 point map; and
:func:`displacement_error` scores a registration against it.

The reference of that map comes from the FLAIR images and the T2W channel
carries the error of the reference intrastudy transforms, so the real case
cannot show a second channel adding accuracy (BENCHMARKS.md). The simulated
case has an exact reference: :func:`simulated_visits` makes two visits
from one with a known rigid motion (:func:`rigid_about_centre`) and
degrades each channel its own way, so that each alone is incomplete.

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
               num_threads: int | None = None,
               intrastudy: np.ndarray | None = None) -> tuple[Image, Image]:
    """``(flair, t2w)`` of one visit on its FLAIR grid shrunk by ``shrink`` (T2W put there
    with the reference intrastudy transform, or ``intrastudy``).

    Parameters
    ----------
    folder : path
        ``.../open_ms/patient01``.
    study : {"study1", "study2"}
    shrink : sequence of int
        Shrink factor per axis of the FLAIR grid (the slices are 3-4 mm
        thick: e.g. ``(4, 4, 1)``).
    num_threads : int, optional
    intrastudy : ndarray, shape (4, 4), optional
        FLAIR world -> T2W world matrix (RAS mm) instead of the reference file
        (e.g. a registration's, to see how much of the T2W channel's error the
        reference intrastudy transform brings).
    """
    from ..io.nifti import load

    folder = Path(folder)
    flair = load(folder / f"{study}_FLAIR.nii.gz")
    t2w = load(folder / f"{study}_T2W.nii.gz")
    if intrastudy is None:
        intrastudy = reference_intrastudy(folder, study)
    grid = coarse_grid(flair, shrink)
    return (_downsampled(flair, grid, num_threads=num_threads),
            _downsampled(t2w, grid, affine=intrastudy, num_threads=num_threads))


def reference_intrastudy(folder, study: str) -> np.ndarray:
    """The reference FLAIR world -> T2W world matrix of one visit (RAS mm)."""
    from ..transforms.chain import read_transforms

    (step,) = read_transforms([Path(folder) / f"{study}_T2W_intrastudy_to_FLAIR.txt"], ndim=3)
    return step.matrix


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


def rigid_about_centre(image: Image, *, degrees: Sequence[float],
                       shift: Sequence[float]) -> np.ndarray:
    """A rigid world matrix (RAS mm) turning about ``image``'s centre by ``degrees`` about the
    world x, y, z axes (applied in that order), then shifting by ``shift`` mm."""
    matrix = np.eye(4)
    for axis, angle in enumerate(np.deg2rad(np.asarray(degrees, np.float64))):
        i, j = [a for a in range(3) if a != axis]
        turn = np.eye(4)
        turn[[i, i, j, j], [i, j, i, j]] = [np.cos(angle), -np.sin(angle), np.sin(angle),
                                            np.cos(angle)]
        matrix = turn @ matrix
    centre = (image.vox2world @ np.r_[(np.asarray(image.shape) - 1) / 2.0, 1.0])[:3]
    matrix[:3, 3] = centre - matrix[:3, :3] @ centre + np.asarray(shift, np.float64)
    return matrix


def simulated_visits(anatomy: Sequence[Image], grid: Image, fixed2moving, *, seed: int = 0,
                     num_threads: int | None = None) -> tuple[tuple[Image, Image],
                                                             tuple[Image, Image]]:
    """Two visits ``((flair1, t2w1), (flair2, t2w2))`` on ``grid``, sampled from one
    ``anatomy`` = ``(flair, t2w)`` on a finer grid (``load_visit`` with ``shrink=(1, 1,
    1)``): visit 2's anatomy moved by the known ``fixed2moving`` (visit-1 world ->
    visit-2 world, so registering visit 2 to visit 1 should find exactly it), and each
    channel degraded its own way, so that each alone is incomplete:

    * FLAIR lacks the upper 40 % of the anatomy's slices (its last axis; zero there,
      in both visits, moving with the anatomy) and carries Gaussian noise of 20 % of
      its 99th percentile;
    * T2W lacks the first 40 % of the anatomy's first axis (likewise) and carries
      noise of 20 %.

    Both visits are sampled alike (smoothed to the grid's voxel size, then
    interpolated, each at a pose off the anatomy's grid), so neither is
    smoother than the other; the noise is independent per visit and image and
    zero-mean everywhere (not clipped: a centre-of-mass start would otherwise
    be pulled by the background).

    Parameters
    ----------
    anatomy : (Image, Image)
        FLAIR and T2W on one grid.
    grid : Image
        The visits' grid (e.g. :func:`coarse_grid` of the anatomy's).
    fixed2moving : ndarray, shape (4, 4)
        The motion, e.g. :func:`rigid_about_centre`.
    seed : int
        Seed of the noise.
    """
    from ..image import Image

    rng = np.random.default_rng(seed)
    flair, t2w = (np.array(image.data, np.float32) for image in anatomy)
    flair[..., int(0.6 * flair.shape[-1]):] = 0.0
    t2w[: int(0.4 * t2w.shape[0])] = 0.0
    parts = [Image(flair, anatomy[0].vox2world), Image(t2w, anatomy[1].vox2world)]
    # visit 1 samples the anatomy at pose @ x; visit 2 at pose @ inv(fixed2moving) @ y
    pose = rigid_about_centre(grid, degrees=(0.5, -0.4, 0.3), shift=(0.37, -0.29, 0.61))
    visits = []
    for where in (pose, pose @ np.linalg.inv(np.asarray(fixed2moving, np.float64))):
        images = []
        for part in parts:
            data = _downsampled(part, grid, affine=where, num_threads=num_threads).data
            data = data + rng.normal(0.0, 0.2 * float(np.percentile(data, 99)), data.shape)
            images.append(Image(data.astype(np.float32), grid.vox2world))
        visits.append(tuple(images))
    return visits[0], visits[1]


__all__ = ["coarse_grid", "displacement_error", "head_mask", "load_visit",
           "reference_fixed2moving", "reference_intrastudy", "rigid_about_centre",
           "simulated_visits"]
