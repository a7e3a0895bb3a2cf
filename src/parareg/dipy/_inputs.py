"""DIPY's image inputs: an array with its affine, a nibabel image or a path.

DIPY's rule (``dipy.io.utils.read_img_arr_or_path``): an array needs its
affine; for a nibabel image or a path, an affine given explicitly overrides
the one stored in the image. Everything else is :func:`parareg.image.as_image`.
"""

from __future__ import annotations

import numpy as np

from ..image import Image, as_image, check_matrix, trusted_image
from ..io.nifti import image_from_array

__all__ = ["grid", "read_array", "read_image"]


def read_image(obj, affine=None, *, name: str) -> Image:
    """``obj`` (ndarray, nibabel/ANTs image, path or Image) as a checked Image.

    ``name`` is DIPY's argument name (``"moving"``, ``"static"``); an array
    without ``affine`` is refused with a message naming ``<name>_affine=``.
    """
    if affine is None or isinstance(obj, np.ndarray):
        return as_image(obj, name=name, affine=affine)
    # DIPY: an explicit affine overrides the image's own
    return image_from_array(as_image(obj, name=name).data, affine, labels=False, where=name)


def read_array(obj, grid2world, *, name: str) -> Image:
    """An input of DIPY's ``optimize`` methods: an array's ``None`` grid2world is the identity."""
    if grid2world is None and isinstance(obj, np.ndarray):
        grid2world = np.eye(obj.ndim + 1)
    return read_image(obj, grid2world, name=name)


def grid(shape, grid2world, *, name: str) -> Image:
    """A data-free Image (zero-stride) on the grid ``shape``, ``grid2world`` (None: identity)."""
    shape = tuple(int(n) for n in shape)
    ndim = len(shape)
    if ndim not in (2, 3):
        raise ValueError(f"{name} must describe a 2D or 3D grid, got shape {shape}")
    v2w = np.eye(ndim + 1) if grid2world is None else check_matrix(grid2world, ndim,
                                                                    name=f"{name} grid2world")
    return trusted_image(np.broadcast_to(np.zeros((), np.float32), shape), v2w)
