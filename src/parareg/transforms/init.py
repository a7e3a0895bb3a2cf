"""Initial alignment of two images by world-space centring.

Each initialiser returns a pure-translation fixed-world -> moving-world
homogeneous matrix that maps a chosen point of ``fixed`` (its intensity
centre of mass, the centre of its voxel grid, or its voxel 0) onto the
matching point of ``moving``. It is the starting point of rigid/affine
registration; convert it with ``transform.params_from_matrix``.
"""

from __future__ import annotations

import numpy as np

from .._hints import InputError
from ..image import Image, as_grid, as_pair

__all__ = ["UndefinedCenterError", "center_of_mass", "geometric_centers", "image_center",
           "origins"]


def _pair(fixed, moving) -> tuple[Image, Image]:
    return as_pair(fixed, moving)


def _translation(offset: np.ndarray) -> np.ndarray:
    n = offset.shape[0]
    out = np.eye(n + 1)
    out[:n, n] = offset
    return out


def _vox2world_point(image: Image, index: np.ndarray) -> np.ndarray:
    n = image.ndim
    return image.vox2world[:n, :n] @ index + image.vox2world[:n, n]


def image_center(image) -> np.ndarray:
    """World position of the centre of an image's voxel grid.

    The centre is voxel index ``(shape - 1) / 2`` (voxel centres convention).

    Parameters
    ----------
    image : Image or path

    Returns
    -------
    center : ndarray, shape (ndim,), float64, mm

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> image_center(Image(np.zeros((5, 11)), np.diag([2.0, 1.0, 1.0]))).tolist()
    [4.0, 5.0]
    """
    image = as_grid(image, name="image")  # the grid only: its voxels are not scanned
    return _vox2world_point(image, (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0)


class UndefinedCenterError(InputError):
    """An image without positive intensity, so without a centre of mass.

    ``kind`` is ``"all_zero"`` or ``"no_positive_intensity"``; ``facts``: ``name``, ``maximum``.
    """


def _mass_center(image: Image, *, name: str) -> np.ndarray:
    weights = np.clip(image.data.astype(np.float64), 0.0, None)
    if not weights.sum() > 0.0:
        if not np.any(image.data):
            raise UndefinedCenterError(f"{name} is all zero; nothing to register",
                                       kind="all_zero", name=name, maximum=0.0)
        maximum = float(np.max(image.data))
        raise UndefinedCenterError(
            f"{name} has no positive intensity (its maximum is {maximum:g}), so its centre of "
            "mass is undefined",
            "start the pipeline with 'geometric_centers' instead of 'center_of_mass', or "
            "shift the intensities so that the object is brighter than 0",
            kind="no_positive_intensity", name=name, maximum=maximum)
    from scipy import ndimage  # lazily: parareg apply imports this module, never calls it

    index = np.asarray(ndimage.center_of_mass(weights), dtype=np.float64)
    return _vox2world_point(image, index)


def center_of_mass(fixed, moving) -> np.ndarray:
    """Translation that aligns the intensity centres of mass.

    Negative intensities are clipped to 0 before weighting (background noise
    and e.g. CT air then carry no mass).

    Parameters
    ----------
    fixed, moving : Image or path
        Images of the same dimension.

    Returns
    -------
    fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64
        Pure translation by ``com(moving) - com(fixed)`` in world mm.

    Raises
    ------
    ValueError
        If ``fixed`` or ``moving`` has no positive intensity (the message
        names which one).

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> a = np.zeros((8, 8)); a[2, 3] = 1.0
    >>> b = np.zeros((8, 8)); b[5, 3] = 1.0
    >>> center_of_mass(Image(a, np.eye(3)), Image(b, np.eye(3)))[:2, 2].tolist()
    [3.0, 0.0]
    """
    fixed, moving = _pair(fixed, moving)
    fixed_com = _mass_center(fixed, name="fixed")
    moving_com = _mass_center(moving, name="moving")
    return _translation(moving_com - fixed_com)


def geometric_centers(fixed, moving) -> np.ndarray:
    """Translation that aligns the centres of the two voxel grids.

    Parameters
    ----------
    fixed, moving : Image or path
        Images of the same dimension.

    Returns
    -------
    fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64
        Pure translation by ``image_center(moving) - image_center(fixed)``, mm.

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> f = Image(np.ones((4, 4)), np.eye(3))
    >>> m = Image(np.ones((8, 4)), np.eye(3))
    >>> geometric_centers(f, m)[:2, 2].tolist()
    [2.0, 0.0]
    """
    fixed, moving = _pair(fixed, moving)
    return _translation(image_center(moving) - image_center(fixed))


def origins(fixed, moving) -> np.ndarray:
    """Translation that maps the world position of fixed voxel 0 to that of moving voxel 0.

    Parameters
    ----------
    fixed, moving : Image or path
        Images of the same dimension.

    Returns
    -------
    fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64
        Pure translation by ``moving.vox2world[:n, n] - fixed.vox2world[:n, n]``, mm.

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> f = Image(np.ones((4, 4)), [[1.0, 0, 5], [0, 1, 0], [0, 0, 1]])
    >>> origins(f, Image(np.ones((4, 4)), np.eye(3)))[:2, 2].tolist()
    [-5.0, 0.0]
    """
    fixed, moving = _pair(fixed, moving)
    n = fixed.ndim
    return _translation(moving.vox2world[:n, n] - fixed.vox2world[:n, n])
