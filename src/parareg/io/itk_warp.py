"""ITK/ANTs displacement fields as vector NIfTI (``*Warp.nii.gz``).

Conventions
-----------
file layout
    ITK writes a displacement field as a 5D NIfTI of shape ``(X, Y, Z, 1, 3)``
    (2D: ``(X, Y, 1, 1, 2)``) with intent code 1007 (``NIFTI_INTENT_VECTOR``).
    The grid (``affine``) is NIfTI RAS+, but the vector components are ITK's
    **LPS** millimetres: x and y are negated against parareg's RAS field. A
    4D ``(X, Y, Z, 3)`` file is read too.
meaning
    The field ``u`` on the fixed grid maps a fixed point ``x`` to the moving
    point ``x + u(x)``: ANTs ``antsApplyTransforms -r fixed -i moving -t warp``
    equals ``parareg.resample(moving, fixed, field=u)``. With an affine ``A``
    as well, ``resample(moving, fixed, affine=A, field=u)`` samples at
    ``A (x + u(x))``, which is ANTs' ``-t warp.nii.gz -t A.mat`` (the order
    ``antsRegistration`` lists its forward transforms in: the warp acts on the
    fixed point first). Beware: antspyx's ``apply_transforms`` inverts the
    ``.mat`` of a two-item list ``[mat, non-mat]`` unless ``whichtoinvert``
    is given.
2D
    ITK's 2D plane is NIfTI's x-y plane with both axes flipped; a 2D field's
    grid is stored like :func:`parareg.save` stores a 2D image.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from ..image import as_grid, check_matrix
from ..resampling import check_field
from .layout import field_to_fortran, fortran_to_field
from .nifti import _reduce_to_2d, check_nifti_path, stored_array
from .outputs import staging_in, write_nifti

__all__ = ["read_warp", "warp_to_nifti", "write_warp"]

#: NIFTI_INTENT_VECTOR
_INTENT_VECTOR = 1007
#: largest difference (mm) accepted between a warp's vox2world and a reference's
#: (NIfTI stores float32 matrices, so exact equality is too strict)
_GRID_ATOL_MM = 1e-3


def _lps_sign(ndim: int) -> np.ndarray:
    return np.array([-1.0, -1.0, 1.0][:ndim], dtype=np.float32)


def read_warp(path, *, reference=None) -> tuple[np.ndarray, np.ndarray]:
    """Read an ITK/ANTs displacement field (``*Warp.nii.gz``) in parareg's convention.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz`` holding ``(X, Y, Z, 1, 3)``, ``(X, Y, Z, 3)`` or
        (2D) ``(X, Y, 1, 1, 2)`` displacements in LPS millimetres.
    reference : Image or path, optional
        When given, the field's grid must be this image's (shape and
        ``vox2world`` within 1e-3 mm), e.g. the fixed image of the registration.

    Returns
    -------
    field : ndarray, shape (X, Y, Z, 3) or (X, Y, 2), float32, millimetres
        RAS displacements, ready for ``parareg.resample(..., field=field)``.
    vox2world : ndarray, shape (4, 4) or (3, 3)
        The field's grid.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A file that is not a displacement field (wrong shape or components),
        NaN/inf displacements, or a grid that does not match ``reference``.

    Examples
    --------
    >>> field, vox2world = read_warp("out1Warp.nii.gz", reference=fixed)  # doctest: +SKIP
    >>> moved = parareg.resample(moving, fixed, field=field)              # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no such displacement field file: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a directory, not a displacement field")
    try:
        img = nib.load(str(path))
        data = stored_array(img)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ValueError(f"path: could not read {str(path)!r} as NIfTI: {exc}") from exc
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise ValueError(f"{str(path)!r} holds {data.dtype} values, not real displacements")
    shape = data.shape
    if len(shape) == 5 and shape[3] == 1:
        data = data.reshape(shape[:3] + shape[4:])
    elif len(shape) != 4:
        raise ValueError(f"{str(path)!r} has shape {shape}; an ITK displacement field is "
                         "(X, Y, Z, 1, 3) or, in 2D, (X, Y, 1, 1, 2)")
    components = data.shape[-1]
    affine = np.asarray(img.affine, dtype=np.float64)
    if components == 3:
        ndim, vox2world = 3, affine
    elif components == 2 and data.shape[2] == 1:
        ndim, vox2world = 2, _reduce_to_2d(affine, [0, 1])
    else:
        raise ValueError(f"{str(path)!r} has shape {shape}: {components} components per voxel; "
                         "a displacement field has 3 (3D) or 2 (2D, with Z = 1)")
    try:
        vox2world = check_matrix(vox2world, ndim, name="vox2world")
        if not np.issubdtype(data.dtype, np.floating):
            check_field(data, data.shape[:-1], name="the displacement field")  # its message
        # one threaded pass: Fortran planes -> C-ordered float32, LPS -> RAS, NaN/inf scan
        field, finite = fortran_to_field(data, _lps_sign(ndim))
        if not finite:
            raise ValueError("the displacement field contains NaN or inf displacements")
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from exc
    if ndim == 2:
        field = field[:, :, 0, :]
    if reference is not None:
        _check_reference(field.shape[:-1], vox2world, reference, path)
    return field, vox2world


def _check_reference(shape, vox2world, reference, path: Path) -> None:
    grid = as_grid(reference, name="reference")
    if tuple(grid.shape) != tuple(shape):
        raise ValueError(f"{str(path)!r} is a field on a grid of shape {tuple(shape)} but "
                         f"reference has shape {tuple(grid.shape)}; the warp must be written "
                         "on the reference (fixed) grid")
    if grid.vox2world.shape != vox2world.shape or not np.allclose(
            grid.vox2world, vox2world, rtol=0.0, atol=_GRID_ATOL_MM):
        raise ValueError(f"{str(path)!r} has vox2world {np.round(vox2world, 4).tolist()} but "
                         f"reference has {np.round(grid.vox2world, 4).tolist()}; the warp "
                         "must be written on the reference (fixed) grid")


def write_warp(field, vox2world, path, *, num_threads=None, outputs=None) -> Path:
    """Write a parareg displacement field as an ITK/ANTs vector NIfTI, atomically.

    Parameters
    ----------
    field : ndarray, shape (X, Y, Z, 3) or (X, Y, 2), millimetres
        RAS displacements on the grid ``vox2world`` (pull convention: the
        fixed point ``x`` maps to the moving point ``x + field[x]``).
    vox2world : ndarray, shape (4, 4) or (3, 3)
        The field's grid (for a registration: the fixed image's).
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz``; written as float32 ``(X, Y, Z, 1, 3)``
        (2D: ``(X, Y, 1, 1, 2)``), intent ``vector``, components in LPS.
    num_threads : int, optional
        Compression threads (``None``: :func:`parareg.get_num_threads`).
    outputs : parareg.io.OutputSet, optional
        Stage the file in this output set instead of writing it at once.

    Returns
    -------
    Path

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((4, 5, 6, 3), np.float32)
    >>> write_warp(u, np.eye(4), "1Warp.nii.gz")  # doctest: +SKIP
    """
    path = check_nifti_path(path)
    nifti = warp_to_nifti(field, vox2world)
    if staging_in(outputs) is not None:
        return outputs.add_nifti(path, nifti)
    return write_nifti(path, nifti, num_threads=num_threads)


def warp_to_nifti(field, vox2world):
    """A parareg displacement field as the nibabel image :func:`write_warp` writes."""
    shape = np.shape(vox2world)
    if shape not in ((3, 3), (4, 4)):
        raise ValueError(f"vox2world must be a 3x3 (2D) or 4x4 (3D) homogeneous matrix, "
                         f"got shape {shape}")
    ndim = shape[0] - 1
    vox2world = check_matrix(vox2world, ndim, name="vox2world")
    f = np.asarray(field)
    if f.ndim != ndim + 1:
        raise ValueError(f"field must have shape {'(X, Y, 2)' if ndim == 2 else '(X, Y, Z, 3)'} "
                         f"for a {ndim}D vox2world, got {f.shape}")
    f = check_field(f, f.shape[:-1], name="field")
    # LPS components in NIfTI's (Fortran) order, so nibabel writes them without a transpose
    lps = field_to_fortran(f if ndim == 3 else f[:, :, None, :], _lps_sign(ndim))
    data = lps[:, :, :, None, :]
    if ndim == 2:
        affine = np.eye(4)
        affine[np.ix_([0, 1, 3], [0, 1, 3])] = vox2world
    else:
        affine = vox2world
    nifti = nib.Nifti1Image(data, affine)
    nifti.header.set_intent(_INTENT_VECTOR)
    nifti.header.set_xyzt_units("mm")
    nifti.set_qform(affine, code=1)
    nifti.set_sform(affine, code=1)
    return nifti
