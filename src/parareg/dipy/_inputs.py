"""DIPY's image inputs: an array with its affine, a nibabel image or a path.

DIPY's rule (``dipy.io.utils.read_img_arr_or_path``): an array needs its
affine; for a nibabel image or a path, an affine given explicitly overrides
the one stored in the image.
"""

from __future__ import annotations

import os

import numpy as np

from ..image import Image, as_image, check_array, check_matrix, trusted_image
from ..io.nifti import _reduce_to_2d

__all__ = ["grid", "read_image"]


def read_image(obj, affine=None, *, name: str, affine_name: str) -> Image:
    """``obj`` (array, nibabel image, path or :class:`parareg.Image`) as a checked Image.

    ``name`` and ``affine_name`` are the DIPY argument names quoted in errors.
    """
    if isinstance(obj, np.ndarray):
        if affine is None:
            raise ValueError(f"{name} is an array, so {affine_name}= must give its voxel-to-"
                             f"world matrix (DIPY's rule too); pass {affine_name}=..., or a "
                             "nibabel image or a path, whose affine is stored with it")
        return _image(check_array(obj, name=name), affine)
    if isinstance(obj, (str, os.PathLike)):
        image = as_image(obj, name=name)
    elif isinstance(obj, Image):
        image = obj
    elif hasattr(obj, "affine") and hasattr(obj, "get_fdata"):  # a nibabel spatial image
        image = _image(check_array(np.asarray(obj.get_fdata(dtype=np.float32)), name=name),
                       obj.affine)
    else:
        raise TypeError(f"{name} must be an array (with {affine_name}=), a nibabel image or a "
                        f"path to a NIfTI file, got {type(obj).__name__}")
    if affine is not None:
        image = _image(image.data, affine)
    return image


def _image(data: np.ndarray, affine) -> Image:
    """An Image; a 2D array with a NIfTI 4x4 affine keeps the in-plane part, as parareg.load."""
    affine = np.asarray(affine, dtype=np.float64)
    if data.ndim == 2 and affine.shape == (4, 4):
        affine = _reduce_to_2d(affine, [0, 1])
    return Image(data, affine)


def grid(shape, grid2world, *, name: str) -> Image:
    """A data-free Image (zero-stride) on the grid ``shape``, ``grid2world`` (None: identity)."""
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if ndim not in (2, 3):
        raise ValueError(f"{name} must describe a 2D or 3D grid, got shape {shape}")
    v2w = np.eye(ndim + 1) if grid2world is None else check_matrix(grid2world, ndim,
                                                                    name=f"{name} grid2world")
    return trusted_image(np.broadcast_to(np.zeros((), np.float32), shape), v2w)
