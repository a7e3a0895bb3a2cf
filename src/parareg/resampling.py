"""Public resampling: an image through a world-space affine and/or a displacement field."""

from __future__ import annotations

import numpy as np

from ._config import DEFAULT_GRAIN_VOXELS
from .image import Image, all_finite, as_grid, as_image, check_matrix, trusted_image
from .kernels.lift import lift_affine, lift_array
from .kernels.resample import resample_affine_3d, warp_3d
from .parallel import for_each_slab, resolve_num_threads

INTERPOLATIONS = ("linear", "nearest")
#: accepted spellings (any case; ANTs' names included) -> parareg's
INTERPOLATION_ALIASES = {"linear": "linear", "nearest": "nearest", "nearestneighbor": "nearest"}


def check_interpolation(interpolation) -> bool:
    """Return ``True`` for nearest-neighbour, ``False`` for linear; reject anything else.

    Names are case-insensitive, and ANTs' ``NearestNeighbor`` means nearest.
    """
    key = interpolation.lower() if isinstance(interpolation, str) else None
    if key not in INTERPOLATION_ALIASES:
        raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)} (any case; "
                         f"ANTs' NearestNeighbor too), got {interpolation!r}")
    return INTERPOLATION_ALIASES[key] == "nearest"


def check_field(field, shape, *, name: str = "field") -> np.ndarray:
    """Return ``field`` as a finite C-contiguous float32 array of shape ``(*shape, len(shape))``."""
    f = np.asarray(field)
    expected = (*shape, len(shape))
    if f.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (the reference grid plus one "
                         f"displacement component per axis), got {f.shape}")
    if not np.issubdtype(f.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point displacements, got dtype {f.dtype}")
    f = np.ascontiguousarray(f, dtype=np.float32)
    if not all_finite(f):
        raise ValueError(f"{name} contains NaN or inf displacements")
    return f


def resample(moving, reference, *, affine=None, field=None, interpolation: str = "linear",
             num_threads=None, moving_affine=None, reference_affine=None) -> Image:
    """Resample ``moving`` onto the grid of ``reference``.

    Each reference voxel ``p`` with world position ``x = reference.vox2world @ p``
    takes the value of ``moving`` at world point ``affine @ (x + field[p])``
    (the "pull" convention of ITK and DIPY). Values outside ``moving`` are 0.

    Parameters
    ----------
    moving : Image, path, nibabel image, ants.ANTsImage or ndarray
        The image to resample.
    reference : same types
        Defines the output grid (shape and ``vox2world``); its data is unused.
    affine : ndarray, shape (ndim + 1, ndim + 1), optional
        World (mm) matrix from reference points to moving points; ``None``
        means the identity.
    field : ndarray, shape (*reference.shape, ndim), optional
        Displacement in millimetres added to each reference world point
        before ``affine`` is applied.
    interpolation : {"linear", "nearest"}
        Linear gives float32; nearest keeps the dtype of ``moving`` (use it
        for label maps).
    num_threads : int, optional
        Threads; ``None`` means :func:`parareg.get_num_threads`. The result
        is bit-identical at any thread count.
    moving_affine, reference_affine : ndarray, optional
        vox2world (RAS mm) of an ndarray ``moving`` / ``reference``.

    Returns
    -------
    Image
        On the reference grid.

    Examples
    --------
    >>> import numpy as np, parareg
    >>> img = parareg.Image(np.arange(16, dtype=np.float32).reshape(4, 4), np.eye(3))
    >>> shift = np.array([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]])  # x -> x + 1 along axis 0
    >>> parareg.resample(img, img, affine=shift).data[0].tolist()
    [4.0, 5.0, 6.0, 7.0]
    """
    moving = as_image(moving, name="moving", affine=moving_affine)
    reference = as_grid(reference, name="reference", affine=reference_affine)
    if moving.ndim != reference.ndim:
        raise ValueError(f"moving is {moving.ndim}D but reference is {reference.ndim}D; "
                         "both must have the same number of dimensions")
    ndim = reference.ndim
    nearest = check_interpolation(interpolation)
    ref2mov = np.eye(ndim + 1) if affine is None else check_matrix(affine, ndim, name="affine")
    num_threads = resolve_num_threads(num_threads)
    src = np.ascontiguousarray(moving.data)
    if not nearest and src.dtype != np.float32:
        src = src.astype(np.float32)
    world2moving_vox = moving.world2vox @ ref2mov
    if nearest and src.dtype not in _DIRECT_DTYPES:
        return _resample_by_index(src, reference, world2moving_vox, field, num_threads)
    out = np.empty(reference.shape, dtype=src.dtype)
    _map(src, reference, world2moving_vox, field, nearest, out, num_threads)
    return trusted_image(out, reference.vox2world)


def _map(src, reference, world2moving_vox, field, nearest, out, num_threads) -> None:
    """Fill ``out`` (on the reference grid) with ``src`` through the affine and/or field."""
    if field is None:
        ndim = reference.ndim
        out2moving_vox = lift_affine(world2moving_vox @ reference.vox2world)
        src3, out3 = lift_array(src, ndim), lift_array(out, ndim)
        for_each_slab(
            lambda start, stop: resample_affine_3d(src3, out2moving_vox, nearest, out3, start,
                                                   stop),
            out.shape, grain=DEFAULT_GRAIN_VOXELS, num_threads=num_threads)
    else:
        fld = check_field(field, reference.shape)
        warp_unchecked(src, fld, reference.vox2world, world2moving_vox, nearest, out,
                       num_threads)


#: dtypes the nearest-neighbour kernels copy directly; other labels are gathered by index
_DIRECT_DTYPES = (np.dtype(np.float32), np.dtype(np.int32))


def _resample_by_index(src, reference, world2moving_vox, field, num_threads) -> Image:
    """Nearest-neighbour resampling of labels of any integer dtype, exactly.

    The kernels map an int32 image of voxel numbers (1-based; 0 outside the
    moving grid), and the labels are gathered by those numbers: every value
    and the dtype (uint8, uint32 of 4e9, int64...) come through unchanged,
    with the one kernel specialisation int32 label maps already use.
    """
    if src.size >= np.iinfo(np.int32).max:
        raise ValueError(f"nearest-neighbour resampling of {src.dtype} labels supports images "
                         f"of up to {np.iinfo(np.int32).max - 1} voxels, got {src.size}")
    numbers = np.arange(1, src.size + 1, dtype=np.int32).reshape(src.shape)
    out = np.empty(reference.shape, dtype=np.int32)
    _map(numbers, reference, world2moving_vox, field, True, out, num_threads)
    values = np.concatenate([np.zeros(1, dtype=src.dtype), src.ravel()])
    return trusted_image(values[out], reference.vox2world)


def warp_unchecked(src, field, out_vox2world, world2moving_vox, nearest, out, num_threads):
    """Fill ``out`` with ``src`` sampled at ``world2moving_vox @ (out_vox2world @ p + field[p])``.

    The driver behind :func:`resample` with a field, without validation, for
    loops whose arrays are already checked (C-contiguous, float32 field).
    """
    ndim = out.ndim
    src3, field3, out3 = (lift_array(a, ndim) for a in (src, field, out))
    out_vox2world, world2moving_vox = lift_affine(out_vox2world), lift_affine(world2moving_vox)
    for_each_slab(
        lambda start, stop: warp_3d(src3, field3, out_vox2world, world2moving_vox, nearest,
                                    out3, start, stop),
        out.shape, grain=DEFAULT_GRAIN_VOXELS, num_threads=num_threads)
    return out
