"""NIfTI reading and writing through nibabel, with atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from ..image import Image


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".img", ".hdr"):
        if name.endswith(suffix):
            return suffix
    return path.suffix


def _reduce_to_2d(affine: np.ndarray, kept: list[int]) -> np.ndarray:
    """3x3 in-plane vox2world from a 4x4 one, for the two kept voxel axes.

    The two world rows kept are those the voxel axes mostly span, in world
    order (x before y before z), so the in-plane world frame does not depend
    on how the voxel axes are stored (a transposed slice gets the same frame)
    and a saved 2D image reads back with the matrix it was saved with.
    """
    a, b = kept
    row_a = int(np.argmax(np.abs(affine[:3, a])))
    rows_b = [r for r in range(3) if r != row_a]
    row_b = rows_b[int(np.argmax(np.abs(affine[rows_b, b])))]
    rows = [*sorted((row_a, row_b)), 3]
    return affine[np.ix_(rows, [a, b, 3])]


def load(path, *, labels: bool = False) -> Image:
    """Read a NIfTI (or other nibabel-readable) image.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``, ``.nii.gz`` (or ``.mgz``) file.
    labels : bool
        Keep integer label values (for segmentations) instead of converting to
        float32 intensities.

    Returns
    -------
    Image
        3D for volumes; 2D for 2D files and single-slice volumes. Trailing
        singleton dimensions (X, Y, Z, 1) are dropped; a true 4D series is an error.

    Examples
    --------
    >>> img = load("t1.nii.gz")  # doctest: +SKIP
    """
    return _load(path, labels=labels, name="path")


def _load(path, *, labels: bool, name: str) -> Image:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a directory, not an image file")
    try:
        img = nib.load(str(path))
        raw = np.asanyarray(img.dataobj) if labels else None
        data = raw if labels else img.get_fdata(dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ValueError(f"{name}: could not read {str(path)!r} as an image: {exc}") from exc
    affine = np.asarray(img.affine, dtype=np.float64)
    shape = data.shape
    while len(shape) > 3 and shape[-1] == 1:
        data = data.reshape(shape[:-1])
        shape = data.shape
    if len(shape) > 3:
        raise ValueError(
            f"{name}: {str(path)!r} is {len(shape)}D with shape {shape}; parareg registers "
            "2D or 3D images: extract one volume first (e.g. nibabel.funcs.four_to_three)"
        )
    if len(shape) == 3 and 1 in shape:
        kept = [axis for axis, n in enumerate(shape) if n > 1]
        if len(kept) != 2:
            raise ValueError(f"{name}: {str(path)!r} has shape {shape}; need a 2D or 3D image")
        data = data.reshape([shape[axis] for axis in kept])
        vox2world = _reduce_to_2d(affine, kept)
    elif len(shape) == 2:
        vox2world = _reduce_to_2d(affine, [0, 1])
    elif len(shape) == 3:
        vox2world = affine
    else:
        raise ValueError(f"{name}: {str(path)!r} has shape {shape}; need a 2D or 3D image")
    if labels:
        if not np.issubdtype(data.dtype, np.integer):
            if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
                raise ValueError(f"{name}: {str(path)!r} holds non-integer values; "
                                 "load it with labels=False")
            data = data.astype(np.int32)
    try:
        return Image(data, vox2world)
    except ValueError as exc:
        raise ValueError(f"{name}: {str(path)!r}: {exc}") from exc


def _embed_affine(image: Image) -> np.ndarray:
    if image.ndim == 3:
        return image.vox2world
    affine = np.eye(4)
    affine[np.ix_([0, 1, 3], [0, 1, 3])] = image.vox2world
    return affine


def atomic_write(path, write) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file onto ``path``.

    A crash leaves either the old file or none, never a half-written one.
    """
    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"path: the folder {str(path.parent)!r} does not exist")
    suffix = _suffix(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save(image: Image, path) -> Path:
    """Write ``image`` to ``path`` as NIfTI (``.nii`` or ``.nii.gz``), atomically.

    Label maps are written as int32, intensities as float32.
    """
    if not isinstance(image, Image):
        raise TypeError(f"image must be a parareg.Image, got {type(image).__name__}")
    path = Path(path)
    if _suffix(path) not in (".nii", ".nii.gz"):
        raise ValueError(f"path must end in .nii or .nii.gz, got {str(path)!r}")
    data = image.data.astype(np.int32 if image.is_labels else np.float32, copy=False)
    nifti = nib.Nifti1Image(data, _embed_affine(image))
    nifti.set_qform(nifti.affine, code=1)
    nifti.set_sform(nifti.affine, code=1)
    return atomic_write(path, lambda tmp: nib.save(nifti, tmp))
