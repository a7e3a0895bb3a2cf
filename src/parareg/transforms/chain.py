"""The transform chain: an image resampled through a list of transforms, as antsApplyTransforms does.

The one transform-chain engine of parareg: ``parareg apply`` and the
Python entry points (:func:`parareg.apply_transforms`, ``parareg.ants``)
all call it.

Order
    The list means what it means to ``antsApplyTransforms``: for each point
    ``x`` of the reference grid the **first** transform acts first, so
    ``[T1, T2, ..., Tn]`` samples the image at ``Tn(...T2(T1(x)))``. Seen as
    moving the image the order reverses (the image moves by ``Tn`` first):
    the "last transform is applied first" of the ANTs documentation, and why
    the forward list of a registration is ``[PREFIX_1Warp.nii.gz,
    PREFIX_0GenericAffine.mat]`` (``x -> x + warp(x) -> affine``).

Items of a list
    - a path: an affine file (``.mat``, ``.txt``, ``.tfm``: ITK/ANTs, or
      written by parareg), a displacement field (``.nii``, ``.nii.gz``, ITK
      vector NIfTI) or an ITK HDF5 composite (``.h5``, e.g. ANTs'
      ``*Composite.h5``: see :mod:`parareg.io.itk_h5`);
    - an ``(ndim + 1, ndim + 1)`` matrix: a world (RAS mm) map of points from
      the reference side to the image side, as ``parareg.resample(affine=)``;
    - an :class:`~parareg.AffineMap` or :class:`~parareg.DiffeomorphicMap`:
      fixed points to moving points (``invert``: moving to fixed).

A displacement field is zero outside its grid (edge values within half a
voxel, like ITK); it cannot be inverted on the fly, as in ANTs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..image import as_grid, as_image, check_matrix, grid_points

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._typing import ImageLike, MatrixLike
    from ..image import Image

#: suffix -> kind of transform file
AFFINE_SUFFIXES = (".mat", ".txt", ".tfm")
WARP_SUFFIXES = (".nii", ".nii.gz")
H5_SUFFIXES = (".h5", ".hdf5")
#: reference points mapped per work unit (bounds the memory of the point arrays)
_POINTS_PER_UNIT = 1 << 18
#: below this fraction of reference points inside a warp's grid, warn
MIN_COVERAGE = 0.5


@dataclass
class Step:
    """One read transform: ``matrix`` for an affine, ``field`` + ``vox2world`` for a warp.

    ``label`` names it in messages (``"transforms[1] ('a.mat')"``, or the
    CLI's ``"-t a.mat"``); ``inverse`` says whether it was asked inverted.
    """

    label: str
    matrix: np.ndarray | None = None
    field: np.ndarray | None = None
    vox2world: np.ndarray | None = None
    inverse: bool = False

    @property
    def is_warp(self) -> bool:
        return self.field is not None

    @property
    def kind(self) -> str:
        if self.is_warp:
            return "displacement field"
        return "inverse affine" if self.inverse else "affine"


def file_kind(path: Path, *, label: str) -> str:
    """``"affine"``, ``"warp"`` or ``"h5"`` from a transform file's name; ValueError otherwise."""
    name = Path(path).name.lower()
    if name.endswith(WARP_SUFFIXES):
        return "warp"
    if name.endswith(AFFINE_SUFFIXES):
        return "affine"
    if name.endswith(H5_SUFFIXES):
        return "h5"
    raise ValueError(f"{label}: unknown transform type; expected an affine "
                     f"({', '.join(AFFINE_SUFFIXES)}), a displacement field "
                     f"({', '.join(WARP_SUFFIXES)}) or an ITK HDF5 composite (.h5)")


def _read_file(path: Path, *, ndim: int, inverse: bool, label: str) -> list[Step]:
    from ..io.itk import read_affine
    from ..io.itk_warp import read_warp

    kind = file_kind(path, label=label)
    if not path.exists():
        raise FileNotFoundError(f"{label}: no such transform file")
    if kind == "h5":
        return _read_h5(path, ndim=ndim, inverse=inverse, label=label)
    if kind == "affine":
        try:
            matrix = read_affine(path, ndim=ndim)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from exc
        return [Step(label, matrix=np.linalg.inv(matrix) if inverse else matrix,
                     inverse=inverse)]
    if inverse:
        raise ValueError(f"{label}: a displacement field cannot be inverted on the fly; use "
                         "its inverse field (e.g. PREFIX_1InverseWarp.nii.gz) as ANTs does")
    try:
        field, vox2world = read_warp(path)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc
    if field.shape[-1] != ndim:
        raise ValueError(f"{label} is a {field.shape[-1]}D displacement field but "
                         f"the reference is {ndim}D")
    return [Step(label, field=field, vox2world=vox2world)]


def _read_h5(path: Path, *, ndim: int, inverse: bool, label: str) -> list[Step]:
    from ..io.itk_h5 import read_h5

    try:
        chain = read_h5(path, ndim=ndim)
    except ValueError as exc:
        raise ValueError(f"{label}: {exc}") from exc
    if inverse:
        if any(entry[0] == "warp" for entry in chain):
            raise ValueError(f"{label}: this composite holds a displacement field, which cannot "
                             "be inverted on the fly; use the InverseComposite.h5 ANTs writes "
                             "next to it")
        return [Step(label, matrix=np.linalg.inv(entry[1]), inverse=True)
                for entry in reversed(chain)]
    return [Step(label, matrix=entry[1]) if entry[0] == "affine"
            else Step(label, field=entry[1], vox2world=entry[2]) for entry in chain]


def _read_mapping(mapping, *, ndim: int, inverse: bool, label: str) -> list[Step]:
    from ..registration.affine import AffineMap
    from .diffeomorphic import DiffeomorphicMap

    if mapping.ndim != ndim:
        raise ValueError(f"{label} is a {mapping.ndim}D mapping but the reference is {ndim}D")
    if isinstance(mapping, AffineMap):
        matrix = np.linalg.inv(mapping.matrix) if inverse else mapping.matrix
        return [Step(label, matrix=matrix, inverse=inverse)]
    assert isinstance(mapping, DiffeomorphicMap)
    if inverse:  # moving y -> z = inv(P) y -> z + backward(z)
        return [Step(label, matrix=np.linalg.inv(mapping.prealign), inverse=True),
                Step(label, field=mapping.backward, vox2world=mapping.vox2world)]
    return [Step(label, field=mapping.forward, vox2world=mapping.vox2world),
            Step(label, matrix=mapping.prealign)]


def _mappings() -> tuple[type, type]:
    """``(AffineMap, DiffeomorphicMap)``, imported only for a list that holds one (the
    registration modules take a good part of a second to import: files need none of it)."""
    from ..registration.affine import AffineMap
    from .diffeomorphic import DiffeomorphicMap

    return AffineMap, DiffeomorphicMap


def read_transforms(transforms: Sequence, *, ndim: int, invert: Sequence[bool] | None = None,
                    labels: Sequence[str] | None = None) -> list[Step]:
    """Read a transform list (see the module docstring) for a ``ndim``-D reference.

    Parameters
    ----------
    transforms : sequence of path, matrix, AffineMap or DiffeomorphicMap
    ndim : {2, 3}
    invert : sequence of bool, optional
        Per transform, use its inverse (affines and mappings only).
    labels : sequence of str, optional
        How errors name each transform (default ``"transforms[i] ('file')"``).

    Returns
    -------
    list of Step
        A DiffeomorphicMap gives two steps (its field and its prealignment).
    """
    if isinstance(transforms, (str, os.PathLike, np.ndarray)) or (
            not isinstance(transforms, (list, tuple)) and isinstance(transforms, _mappings())):
        transforms = [transforms]
    transforms = list(transforms)
    invert = [False] * len(transforms) if invert is None else list(invert)
    if len(invert) != len(transforms):
        raise ValueError(f"invert has {len(invert)} entries but there are {len(transforms)} "
                         "transforms; give one True/False per transform")
    steps = []
    for i, (item, inverse) in enumerate(zip(transforms, invert)):
        if not isinstance(inverse, (bool, np.bool_)):
            raise TypeError(f"invert[{i}] must be True or False, got {inverse!r}")
        if labels is not None:
            label = labels[i]
        elif isinstance(item, (str, os.PathLike)):
            label = f"transforms[{i}] ({str(item)!r})"
        else:
            label = f"transforms[{i}] (a {type(item).__name__})"
        if isinstance(item, (str, os.PathLike)):
            steps += _read_file(Path(item), ndim=ndim, inverse=bool(inverse), label=label)
        elif isinstance(item, np.ndarray):
            matrix = check_matrix(item, ndim, name=label)
            steps.append(Step(label, matrix=np.linalg.inv(matrix) if inverse else matrix,
                              inverse=bool(inverse)))
        elif isinstance(item, _mappings()):
            steps += _read_mapping(item, ndim=ndim, inverse=bool(inverse), label=label)
        else:
            raise TypeError(f"{label} must be a transform file path, an (ndim+1)x(ndim+1) "
                            "matrix, an AffineMap or a DiffeomorphicMap")
    return steps


# --- mapping points --------------------------------------------------------------------------


def sample_field(field: np.ndarray, vox2world: MatrixLike,
                 points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A displacement field's value at world ``points``, and which points lie on its grid.

    Like ITK's displacement-field transform: linear interpolation, edge values
    within half a voxel of the grid, zero displacement farther out.

    Parameters
    ----------
    field : ndarray, shape (*grid, ndim), millimetres
    vox2world : ndarray, shape (ndim + 1, ndim + 1)
        The field's grid.
    points : ndarray, shape (N, ndim), world millimetres

    Returns
    -------
    displacement : ndarray, shape (N, ndim), float64
    inside : ndarray, shape (N,), bool
    """
    from scipy import ndimage

    ndim = points.shape[1]
    world2vox = np.linalg.inv(vox2world)
    vox = points @ world2vox[:ndim, :ndim].T + world2vox[:ndim, ndim]
    shape = np.asarray(field.shape[:-1])
    inside = np.all((vox >= -0.5) & (vox < shape - 0.5), axis=1)
    displacement = np.zeros(points.shape, dtype=np.float64)
    coords = vox[inside].T
    if coords.shape[1]:
        for axis in range(ndim):
            displacement[inside, axis] = ndimage.map_coordinates(
                field[..., axis], coords, order=1, mode="nearest")
    return displacement, inside


def world_points(image: Image) -> np.ndarray:
    """World coordinates (mm) of every voxel centre of ``image``, shape (N, ndim), C order."""
    ndim = image.ndim
    index = grid_points(image.shape).reshape(-1, ndim)
    return index @ image.vox2world[:ndim, :ndim].T + image.vox2world[:ndim, ndim]


def map_points(steps: Sequence[Step],
               points: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """World ``points`` (N, ndim) through the chain; per warp, which points were on its grid."""
    ndim = points.shape[1]
    inside = []
    for step in steps:
        if step.is_warp:
            disp, on_grid = sample_field(step.field, step.vox2world, points)
            points = points + disp
            inside.append(on_grid)
        else:
            points = points @ step.matrix[:ndim, :ndim].T + step.matrix[:ndim, ndim]
    return points, inside


def displacement_field(steps: Sequence[Step], reference: Image, *,
                       num_threads: int | None = None) -> tuple[np.ndarray, list[float]]:
    """Displacement ``T(x) - x`` of the chain at every reference world point ``x``.

    Returns
    -------
    field : ndarray, shape (*reference.shape, ndim), float32, millimetres
    coverage : list of float
        Per warp step, the fraction of reference points that landed inside its grid.
    """
    from ..parallel import parallel_map

    shape = tuple(reference.shape)
    ndim = len(shape)
    vox2world = reference.vox2world
    plane = int(np.prod(shape[1:]))
    rows = max(1, _POINTS_PER_UNIT // max(plane, 1))
    slabs = [(start, min(start + rows, shape[0])) for start in range(0, shape[0], rows)]
    warps = sum(step.is_warp for step in steps)

    def map_slab(slab):
        start, stop = slab
        axes = [np.arange(start, stop, dtype=np.float64)] + [
            np.arange(n, dtype=np.float64) for n in shape[1:]]
        index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, ndim)
        world = index @ vox2world[:ndim, :ndim].T + vox2world[:ndim, ndim]
        points, inside = map_points(steps, world)
        return (points - world).astype(np.float32), [int(np.count_nonzero(i)) for i in inside]

    results = parallel_map(map_slab, slabs, num_threads=num_threads)
    field = np.concatenate([r[0] for r in results]).reshape(*shape, ndim)
    total = float(np.prod(shape))
    coverage = [sum(r[1][k] for r in results) / total for k in range(warps)]
    return field, coverage


def _grid_matches(step: Step, reference) -> bool:
    return (step.field.shape[:-1] == tuple(reference.shape)
            and step.vox2world.shape == reference.vox2world.shape
            and np.allclose(step.vox2world, reference.vox2world, rtol=0.0, atol=1e-6))


def _compose_affines(steps) -> np.ndarray:
    """The matrix of affine steps applied to points in list order (first first)."""
    total = np.eye(steps[0].matrix.shape[0])
    for step in steps:
        total = step.matrix @ total
    return total


def plan(steps: Sequence[Step], reference: Image, *, num_threads: int | None = None
         ) -> tuple[np.ndarray | None, np.ndarray | None, list[float]]:
    """The chain as one ``resample`` call's ``(affine, field)``, and the warps' coverage.

    Affines alone compose into one matrix; a first warp on the reference grid
    followed by affines is resample's own affine + field path (the computation
    of :meth:`parareg.DiffeomorphicMap.transform`); anything else is collapsed
    into one displacement field on the reference grid (:func:`displacement_field`).
    Computed once, it serves every volume of a series.
    """
    if not any(step.is_warp for step in steps):
        return (_compose_affines(steps) if steps else None), None, []
    first = steps[0]
    if first.is_warp and _grid_matches(first, reference) and not any(
            step.is_warp for step in steps[1:]):
        matrix = _compose_affines(steps[1:]) if len(steps) > 1 else None
        return matrix, first.field, [1.0]
    field, coverage = displacement_field(steps, reference, num_threads=num_threads)
    return None, field, coverage


def resample_through(image: Image, reference: Image, steps: Sequence[Step], *,
                     interpolation: str = "linear",
                     num_threads: int | None = None) -> tuple[Image, list[float]]:
    """``image`` sampled at ``Tn(...T1(x))`` for every point ``x`` of ``reference``.

    Returns
    -------
    Image
        On the reference grid.
    coverage : list of float
        Per warp step, the fraction of reference points inside its grid.
    """
    from ..resampling import resample

    matrix, field, coverage = plan(steps, reference, num_threads=num_threads)
    return resample(image, reference, affine=matrix, field=field, interpolation=interpolation,
                    num_threads=num_threads), coverage


def resample_series(volumes: Sequence[Image], reference: Image, steps: Sequence[Step], *,
                    interpolation: str = "linear",
                    num_threads: int | None = None) -> tuple[list[Image], list[float]]:
    """Every image of ``volumes`` through the same chain (a time series, or vector components).

    The chain is planned once (:func:`plan`); volumes run in parallel, each
    on one thread (a single volume gets every thread), so each equals
    :func:`resample_through` of that volume alone, bit for bit, at any thread
    count.

    Returns
    -------
    list of Image
        On the reference grid, in the order of ``volumes``.
    coverage : list of float
    """
    from ..parallel import parallel_map
    from ..resampling import resample

    matrix, field, coverage = plan(steps, reference, num_threads=num_threads)
    if len(volumes) == 1:  # its own threads: the kernel's bits do not depend on them
        return [resample(volumes[0], reference, affine=matrix, field=field,
                         interpolation=interpolation, num_threads=num_threads)], coverage

    def one(volume):
        return resample(volume, reference, affine=matrix, field=field,
                        interpolation=interpolation, num_threads=1)

    return parallel_map(one, list(volumes), num_threads=num_threads), coverage


def check_coverage(steps: Sequence[Step], coverage: Sequence[float], *,
                   hint: str = "check the reference and the order of the transforms") -> None:
    """Refuse a warp no reference point falls in; warn when fewer than half do."""
    warps = [step for step in steps if step.is_warp]
    for step, fraction in zip(warps, coverage):
        if fraction == 0.0:
            raise ValueError(f"{step.label}: no reference point falls inside this displacement "
                             f"field's grid; the reference does not match the warp ({hint})")
        if fraction < MIN_COVERAGE:
            warnings.warn(f"only {100 * fraction:.0f} % of the reference points fall inside the "
                          f"grid of {step.label} (zero displacement outside); {hint}",
                          UserWarning, stacklevel=3)


def apply_transforms(image: ImageLike, reference: ImageLike, transforms: Sequence, *,
                     interpolation: str = "linear", invert: Sequence[bool] | None = None,
                     num_threads: int | None = None, image_affine: MatrixLike | None = None,
                     reference_affine: MatrixLike | None = None) -> Image:
    """Resample ``image`` onto the grid of ``reference`` through a list of transforms.

    The list is read as ``antsApplyTransforms`` reads its ``-t`` list (see
    :mod:`parareg.transforms.chain`): for each reference point the first
    transform acts first.

    Parameters
    ----------
    image : Image, path, nibabel image, ants.ANTsImage or ndarray
        The image to resample (an ndarray needs ``image_affine``).
    reference : same types
        Its grid (shape, voxel size, orientation) is the output's; data unused.
    transforms : path, matrix, AffineMap, DiffeomorphicMap, or a list of them
        E.g. ``["out_1Warp.nii.gz", "out_0GenericAffine.mat"]`` (moving onto
        fixed, from ``parareg register -o out_`` or ANTs).
    interpolation : str
        A name :func:`parareg.resample` takes (ANTs' spellings too); nearest
        and genericlabel keep integer labels (a path is then read as a label map).
    invert : list of bool, optional
        Per transform, use its inverse (affines and mappings; a displacement
        field cannot be inverted: use its InverseWarp).
    num_threads : int, optional
        The result is bit-identical at any thread count.
    image_affine, reference_affine : ndarray, optional
        vox2world (RAS mm) of an ndarray ``image`` / ``reference``.

    Returns
    -------
    Image

    Raises
    ------
    ValueError
        A transform file that cannot be read, an inverted displacement field,
        or a warp no reference point falls inside (a mismatched reference or
        order). A warp that covers less than half of the reference warns.

    Examples
    --------
    >>> import numpy as np, parareg
    >>> img = parareg.Image(np.arange(16, dtype=np.float32).reshape(4, 4), np.eye(3))
    >>> shift = np.array([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]])  # x -> x + 1 along axis 0
    >>> parareg.apply_transforms(img, img, [shift, shift]).data[0].tolist()
    [8.0, 9.0, 10.0, 11.0]
    >>> parareg.apply_transforms(img, img, [shift, shift], invert=[False, True]).data[0].tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    from ..resampling import LABEL_INTERPOLATIONS, check_interpolation

    interpolation = check_interpolation(interpolation)
    path = isinstance(image, (str, os.PathLike)) and image_affine is None
    if path and interpolation == "nearest":  # a label map keeps its labels, else intensities
        from ..io.nifti import load_labels_or_intensities

        image = load_labels_or_intensities(image, name="image")
    else:
        image = as_image(image, name="image", affine=image_affine,
                         labels=path and interpolation in LABEL_INTERPOLATIONS)
    reference = as_grid(reference, name="reference", affine=reference_affine)
    if image.ndim != reference.ndim:
        raise ValueError(f"image is {image.ndim}D but reference is {reference.ndim}D; both "
                         "must have the same number of dimensions")
    steps = read_transforms(transforms, ndim=reference.ndim, invert=invert)
    result, coverage = resample_through(image, reference, steps, interpolation=interpolation,
                                        num_threads=num_threads)
    check_coverage(steps, coverage)
    return result


__all__ = ["Step", "apply_transforms", "check_coverage", "displacement_field", "map_points",
           "plan", "read_transforms", "resample_series", "resample_through", "sample_field",
           "world_points"]
