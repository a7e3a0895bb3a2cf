"""Images in world space: an array plus the matrix from voxel indices to millimetres.

Conventions follow DIPY: a 3D image has a 4x4 ``vox2world``; a 2D image has
the 3x3 in-plane matrix (rows and columns of the two in-plane axes plus the
homogeneous one). World coordinates are the NIfTI RAS+ millimetres of the file.
"""

from __future__ import annotations

import math
import os

import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ants
    import nibabel

    from ._typing import ArrayLike, ImageLike, MatrixLike, PathLike

#: smallest |det| of a vox2world linear part accepted as invertible (mm^ndim per voxel)
_MIN_ABS_DET = 1e-12


def check_matrix(matrix: MatrixLike, ndim: int, *, name: str) -> np.ndarray:
    """Return ``matrix`` as a float64 ``(ndim+1, ndim+1)`` invertible homogeneous matrix.

    Raises a ``ValueError`` naming ``name`` when it has the wrong shape, holds
    NaN/inf, has a last row other than ``[0, ..., 0, 1]`` or is not invertible.
    """
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric matrix: {exc}") from None
    size = ndim + 1
    if m.shape != (size, size):
        raise ValueError(
            f"{name} must be a {size}x{size} homogeneous matrix for a {ndim}D image, "
            f"got shape {m.shape}"
        )
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains NaN or inf values")
    if np.abs(m[-1, :-1]).max() > 1e-8 or abs(m[-1, -1] - 1.0) > 1e-8:
        last = [0.0] * ndim + [1.0]
        raise ValueError(f"{name} must have last row {last}, got {m[-1].tolist()}")
    if abs(np.linalg.det(m[:ndim, :ndim])) < _MIN_ABS_DET:
        raise ValueError(f"{name} is not invertible (its linear part has determinant ~0)")
    return m


#: arrays up to this many elements are checked for NaN/inf in one serial pass
_SERIAL_CHECK = 1 << 20


def all_finite(array: np.ndarray, *, num_threads: int | None = None) -> bool:
    """True when ``array`` (floating point) holds no NaN or inf.

    One pass without temporaries: the float64 sum of finite float32/float64
    values cannot overflow at any realistic size, while NaN and inf
    propagate. Large arrays are summed in axis-0 slabs on ``num_threads``
    threads (NumPy releases the GIL in reductions; ``None`` means
    :func:`parareg.get_num_threads`), so validation is not the serial part
    of a parallel call.
    """
    if array.size <= _SERIAL_CHECK or array.ndim == 0 or array.shape[0] < 2:
        return math.isfinite(float(np.sum(array, dtype=np.float64)))
    from .parallel import axis0_ranges, for_each_unit

    sums = for_each_unit(lambda unit, start, stop: np.sum(array[start:stop], dtype=np.float64),
                         axis0_ranges(array.shape, grain=_SERIAL_CHECK), num_threads=num_threads)
    return bool(np.all(np.isfinite(sums)))


def check_array(data: ArrayLike, *, name: str, num_threads: int | None = None) -> np.ndarray:
    """Return ``data`` as a finite 2D/3D array (float32, or integer for label maps).

    Raises a ``ValueError`` naming ``name`` on a wrong number of dimensions, an
    empty axis, a non-numeric dtype or NaN/inf values. ``num_threads`` is
    the NaN scan's (see :func:`all_finite`).
    """
    a = np.asarray(data)
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must be a 2D or 3D array, got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return a
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    if not all_finite(a, num_threads=num_threads):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise ValueError(f"{name} contains {bad} NaN or inf values; replace them (e.g. np.nan_to_num)")
    return a


class Image:
    """An image array with its voxel-to-world matrix.

    Parameters
    ----------
    data : ndarray, shape (X, Y) or (X, Y, Z)
        Intensities (stored as float32) or labels (any integer dtype, kept).
    vox2world : ndarray, shape (ndim + 1, ndim + 1)
        Maps voxel indices ``(i, j[, k], 1)`` to world millimetres.

    Examples
    --------
    >>> import numpy as np
    >>> img = Image(np.zeros((4, 5, 6)), np.diag([2.0, 2.0, 3.0, 1.0]))
    >>> img.shape, img.ndim, img.spacing.tolist()
    ((4, 5, 6), 3, [2.0, 2.0, 3.0])
    """

    __slots__ = ("data", "vox2world")

    def __init__(self, data: ArrayLike, vox2world: MatrixLike):
        self.data = check_array(data, name="data")
        self.vox2world = check_matrix(vox2world, self.data.ndim, name="vox2world")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along each array axis, millimetres."""
        return np.sqrt((self.vox2world[: self.ndim, : self.ndim] ** 2).sum(axis=0))

    @property
    def world2vox(self) -> np.ndarray:
        return np.linalg.inv(self.vox2world)

    @property
    def is_labels(self) -> bool:
        """True for integer (label map) data."""
        return bool(np.issubdtype(self.data.dtype, np.integer))

    def with_data(self, data: ArrayLike) -> Image:
        """A new image on the same grid holding ``data``."""
        return Image(data, self.vox2world)

    def to_nibabel(self) -> nibabel.Nifti1Image:
        """This image as a ``nibabel.Nifti1Image`` (see :func:`parareg.io.nifti.to_nifti`)."""
        from .io.nifti import to_nifti

        return to_nifti(self)

    def to_ants(self) -> ants.ANTsImage:
        """This image as an ``ants.ANTsImage`` (needs antspyx; see :mod:`parareg.io.ants_image`)."""
        from .io.ants_image import to_ants

        return to_ants(self)

    def __repr__(self) -> str:
        return (f"Image(shape={self.shape}, dtype={self.data.dtype}, "
                f"spacing={np.round(self.spacing, 4).tolist()})")


#: what the public functions accept as an image (for messages)
ACCEPTED = ("a parareg.Image, a path to a NIfTI file, a nibabel image, an ants.ANTsImage, "
            "or an ndarray with its vox2world matrix")


def _is_nibabel_image(obj) -> bool:
    return (type(obj).__module__.split(".")[0] == "nibabel"
            and hasattr(obj, "dataobj") and hasattr(obj, "affine"))


class _NotOffered:
    """The default of :func:`as_image`'s ``affine``: the caller has no ``<name>_affine`` keyword."""

    def __repr__(self) -> str:
        return "NOT_OFFERED"


NOT_OFFERED = _NotOffered()


def as_image(obj: ImageLike, *, name: str, affine: MatrixLike | None = NOT_OFFERED,
             labels: bool = False, num_threads: int | None = None) -> Image:
    """Any image a user holds, as a checked :class:`Image`; ``name`` is named in any error.

    Parameters
    ----------
    obj : Image, str, os.PathLike, nibabel image, ants.ANTsImage or ndarray
        Paths and nibabel images follow :func:`parareg.load`'s rules (a
        single-slice volume is 2D; intensities float32 unless ``labels``).
    affine : array_like or None, optional
        Only with an ndarray ``obj``, and then required: its vox2world matrix
        (RAS millimetres, as nibabel's ``img.affine``): 4x4, or 3x3 for a 2D
        array. The public functions call it ``<name>_affine``; callers that
        have no such keyword leave the default, and an ndarray is refused
        with a message pointing to :class:`Image`.
    labels : bool
        Read paths, nibabel and ndarray images as integer label maps.
    num_threads : int, optional
        Threads of the NaN/inf scan of an :class:`Image` (see :func:`all_finite`).

    Examples
    --------
    >>> import numpy as np
    >>> as_image(np.zeros((4, 5, 6)), name="fixed", affine=np.eye(4)).shape
    (4, 5, 6)
    >>> as_image(np.zeros((4, 5, 6)), name="fixed", affine=None)
    Traceback (most recent call last):
    ...
    TypeError: fixed is an ndarray without a grid: pass fixed_affine= (its vox2world matrix, RAS mm, as nibabel's img.affine), or parareg.Image(array, vox2world)
    """
    offered = affine is not NOT_OFFERED
    affine = affine if offered else None
    if isinstance(obj, np.ndarray):
        if affine is None:
            how = (f"pass {name}_affine= (its vox2world matrix, RAS mm, as nibabel's "
                   "img.affine), or " if offered else "pass ")
            raise TypeError(f"{name} is an ndarray without a grid: {how}"
                            "parareg.Image(array, vox2world)")
        from .io.nifti import image_from_array

        where = f"{name} (an ndarray)"
        try:
            matrix = np.asarray(affine, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}_affine must be a numeric matrix: {exc}") from None
        if matrix.shape not in ((4, 4), (3, 3)):
            raise ValueError(f"{name}_affine must be a 4x4 (or, for a 2D array, 3x3) vox2world "
                             f"matrix, got shape {matrix.shape}")
        return image_from_array(obj, matrix, labels=labels, where=where)
    if affine is not None:
        raise TypeError(f"{name}_affine is only for an ndarray {name}; {name} is a "
                        f"{type(obj).__name__}, which carries its own grid: drop {name}_affine")
    if isinstance(obj, Image):
        check_array(obj.data, name=name, num_threads=num_threads)
        return obj
    if isinstance(obj, (str, os.PathLike)):
        from .io.nifti import _load

        return _load(obj, labels=labels, name=name)
    if _is_nibabel_image(obj):
        from .io.nifti import from_nibabel

        return from_nibabel(obj, name=name, labels=labels)
    from .io.ants_image import from_ants, is_ants_image

    if is_ants_image(obj):
        return from_ants(obj, name=name, labels=labels or None)
    raise TypeError(f"{name} must be {ACCEPTED}; got {type(obj).__name__}")


def as_pair(fixed: ImageLike, moving: ImageLike, *, fixed_affine: MatrixLike | None = NOT_OFFERED,
            moving_affine: MatrixLike | None = NOT_OFFERED,
            num_threads: int | None = None) -> tuple[Image, Image]:
    """``fixed`` and ``moving`` as checked images (scanned on ``num_threads``) of one ndim."""
    fixed = as_image(fixed, name="fixed", affine=fixed_affine, num_threads=num_threads)
    moving = as_image(moving, name="moving", affine=moving_affine, num_threads=num_threads)
    if fixed.ndim != moving.ndim:
        raise ValueError(f"fixed is {fixed.ndim}D but moving is {moving.ndim}D; both must "
                         "have the same number of dimensions")
    return fixed, moving


def as_image_or_path(obj: ImageLike, *, name: str, affine: MatrixLike | None = None,
                     num_threads: int | None = None) -> Image | PathLike:
    """A path unchanged (so it can be checked before it is read), anything else as an Image."""
    if isinstance(obj, (str, os.PathLike)) and affine is None:
        return obj
    return as_image(obj, name=name, affine=affine, num_threads=num_threads)


def as_grid(obj: ImageLike, *, name: str, affine: MatrixLike | None = NOT_OFFERED) -> Image:
    """Like :func:`as_image` for an image used only for its grid (data not scanned).

    A path is read for its header only (:func:`parareg.io.nifti.load_grid`).
    """
    if isinstance(obj, Image) and (affine is None or affine is NOT_OFFERED):
        return obj
    if isinstance(obj, (str, os.PathLike)) and (affine is None or affine is NOT_OFFERED):
        from .io.nifti import load_grid

        return load_grid(obj, name=name)
    return as_image(obj, name=name, affine=affine)


def trusted_image(data: np.ndarray, vox2world: np.ndarray) -> Image:
    """An :class:`Image` from arrays a kernel just produced from checked inputs (no re-scan)."""
    image = object.__new__(Image)
    image.data = data
    image.vox2world = vox2world
    return image


def grid_points(shape: tuple[int, ...]) -> np.ndarray:
    """Voxel index coordinates of every voxel, shape ``(*shape, ndim)``, float64."""
    return np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape],
                                indexing="ij"), axis=-1)
