"""Public resampling: an image through a world-space affine and/or a displacement field."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._config import DEFAULT_GRAIN_VOXELS
from .image import Image, all_finite, as_grid, as_image, check_matrix, trusted_image
from .kernels.lift import lift_affine, lift_array
from .kernels.resample import (BSPLINE, GAUSSIAN, ITK_KERNEL_METHODS, LABEL, LANCZOS, LINEAR,
                               LINEAR_ZERO_OUTSIDE, NEAREST, resample_affine_3d,
                               resample_field_affine_3d,
                               resample_affine_itk_3d, warp_3d, warp_itk_3d)
from .parallel import axis0_ranges, for_each_unit, resolve_num_threads

if TYPE_CHECKING:
    from ._typing import ArrayLike, ImageLike, MatrixLike

#: accepted interpolation names (any case; ANTs' spellings) -> parareg's name. ITK's rules
#: throughout (see :mod:`parareg.kernels.interp_itk`): 0 outside ``[-0.5, n - 0.5)`` voxels.
INTERPOLATIONS = {
    "linear": "linear",
    "nearest": "nearest", "nearestneighbor": "nearest",
    "genericlabel": "genericlabel",
    "bspline": "bspline", "bspline[3]": "bspline",
    "gaussian": "gaussian",
    "lanczoswindowedsinc": "lanczoswindowedsinc",
}
#: parareg's name -> the kernels' interpolator code
_METHODS = {"linear": LINEAR, "nearest": NEAREST, "genericlabel": LABEL, "bspline": BSPLINE,
            "gaussian": GAUSSIAN, "lanczoswindowedsinc": LANCZOS,
            "linear-zero-outside": LINEAR_ZERO_OUTSIDE}
#: interpolators that keep the image's dtype (label maps); the others give float32
LABEL_INTERPOLATIONS = ("nearest", "genericlabel")
#: ANTs' Gaussian defaults: sigma = the image's spacing (1 voxel), cutoff alpha = 1 sigma
GAUSSIAN_SIGMA_VOXELS = 1.0
GAUSSIAN_ALPHA = 1.0


def check_interpolation(interpolation: str) -> str:
    """Return parareg's name of an interpolator (see ``INTERPOLATIONS``); reject anything else.

    Names are case-insensitive; ANTs' spellings (``Linear``, ``NearestNeighbor``,
    ``GenericLabel``, ``BSpline``, ``BSpline[3]``, ``Gaussian``,
    ``LanczosWindowedSinc``) are accepted.
    """
    key = interpolation.lower().replace(" ", "") if isinstance(interpolation, str) else None
    if key is not None and key.startswith("bspline[") and key not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r}: only B-splines of order 3 are "
                         "supported; use 'BSpline' or 'BSpline[3]'")
    if key not in INTERPOLATIONS:
        names = sorted(set(INTERPOLATIONS.values()))
        raise ValueError(f"interpolation must be one of {names} (any case; ANTs' "
                         f"NearestNeighbor, GenericLabel, BSpline[3], LanczosWindowedSinc "
                         f"too), got {interpolation!r}")
    return INTERPOLATIONS[key]


def check_field(field: ArrayLike, shape: tuple[int, ...], *, name: str = "field",
                num_threads: int | None = None) -> np.ndarray:
    """Return ``field`` as a finite C-contiguous float32 array of shape ``(*shape, len(shape))``."""
    f = np.asarray(field)
    expected = (*shape, len(shape))
    if f.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (the reference grid plus one "
                         f"displacement component per axis), got {f.shape}")
    if not np.issubdtype(f.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point displacements, got dtype {f.dtype}")
    f = np.ascontiguousarray(f, dtype=np.float32)
    if not all_finite(f, num_threads=num_threads):
        raise ValueError(f"{name} contains NaN or inf displacements")
    return f


def resample(moving: ImageLike, reference: ImageLike, *, affine: MatrixLike | None = None,
             field: ArrayLike | None = None, interpolation: str = "linear",
             num_threads: int | None = None, moving_affine: MatrixLike | None = None,
             reference_affine: MatrixLike | None = None) -> Image:
    """Resample ``moving`` onto the grid of ``reference``.

    Each reference voxel ``p`` with world position ``x = reference.vox2world @ p``
    takes the value of ``moving`` at world point ``affine @ (x + field[p])``
    (the "pull" convention of ITK and DIPY). Interpolation follows
    ``antsApplyTransforms`` (ITK's interpolators): a point takes a value when
    it lies within half a voxel of the moving grid (its continuous index in
    ``[-0.5, n - 0.5)`` per axis), the edge voxels' within that half voxel;
    farther out it is 0.

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
    interpolation : {"linear", "nearest", "genericlabel", "bspline", "gaussian", \
"lanczoswindowedsinc"}
        Any case; ANTs' spellings (``NearestNeighbor``, ``GenericLabel``,
        ``BSpline[3]``, ``LanczosWindowedSinc``) too. ``nearest`` and
        ``genericlabel`` (each label's indicator interpolated linearly, the
        largest wins: smooth label boundaries) keep the dtype of ``moving``,
        for label maps; ``genericlabel`` needs integer labels. The others give
        float32: ``bspline`` is the cubic B-spline (prefiltered, mirror
        boundary), ``gaussian`` ITK's Gaussian (sigma one voxel, cutoff one
        sigma, ANTs' defaults), ``lanczoswindowedsinc`` the windowed sinc of
        radius 3.
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
    moving = as_image(moving, name="moving", affine=moving_affine, num_threads=num_threads)
    reference = as_grid(reference, name="reference", affine=reference_affine)
    if moving.ndim != reference.ndim:
        raise ValueError(f"moving is {moving.ndim}D but reference is {reference.ndim}D; "
                         "both must have the same number of dimensions")
    ndim = reference.ndim
    name = check_interpolation(interpolation)
    ref2mov = np.eye(ndim + 1) if affine is None else check_matrix(affine, ndim, name="affine")
    return _resample(moving, reference, ref2mov, field, name, resolve_num_threads(num_threads))


def resample_zero_outside(moving: Image, reference: Image, *, affine: MatrixLike | None = None,
                          field: ArrayLike | None = None,
                          num_threads: int | None = None) -> Image:
    """Linear resampling by the registration kernels' rule: 0 outside ``[0, n - 1]`` voxels.

    The rule the metrics and SyN's own warps use (see
    :mod:`parareg.kernels.interp`), for the registration's internal resampling
    (pyramid levels, fields carried between levels), whose results it keeps.
    Everything user-facing uses :func:`resample` (ITK's rule: edge values
    within half a voxel of the grid). Arguments as :func:`resample`, trusted
    (already checked) images.
    """
    ndim = reference.ndim
    ref2mov = np.eye(ndim + 1) if affine is None else affine
    return _resample(moving, reference, ref2mov, field, "linear-zero-outside",
                     resolve_num_threads(num_threads))


def _resample(moving, reference, ref2mov, field, name, num_threads) -> Image:
    """The driver of :func:`resample`: prepare the source for ``name``, map, convert back."""
    src = np.ascontiguousarray(moving.data)
    world2moving_vox = moving.world2vox @ ref2mov
    if name == "nearest" and src.dtype not in _DIRECT_DTYPES:
        return _resample_by_index(src, reference, world2moving_vox, field, num_threads)
    if name == "genericlabel":
        return _resample_labels(src, reference, world2moving_vox, field, num_threads)
    params = np.zeros(6)
    if name != "nearest":
        src = src.astype(np.float32, copy=False)
    if name == "bspline":
        from scipy import ndimage  # here: scipy.ndimage's import costs every other call

        src = np.ascontiguousarray(ndimage.spline_filter(src, order=3, mode="mirror",
                                                         output=np.float32))
    elif name == "gaussian":
        params[:3] = 1.0 / (np.sqrt(2.0) * GAUSSIAN_SIGMA_VOXELS)
        params[3:] = GAUSSIAN_ALPHA * GAUSSIAN_SIGMA_VOXELS
    out = np.empty(reference.shape, dtype=src.dtype)
    _map(src, reference, world2moving_vox, field, _METHODS[name], params, out, num_threads)
    return trusted_image(out, reference.vox2world)


def _map(src, reference, world2moving_vox, field, method, params, out, num_threads) -> None:
    """Fill ``out`` (on the reference grid) with ``src`` through the affine and/or field."""
    if field is None:
        ndim = reference.ndim
        out2moving_vox = lift_affine(world2moving_vox @ reference.vox2world)
        src3, out3 = lift_array(src, ndim), lift_array(out, ndim)
        if method in ITK_KERNEL_METHODS:
            def run(unit, start, stop):
                resample_affine_itk_3d(src3, out2moving_vox, method, params, out3, start, stop)
        else:
            def run(unit, start, stop):
                resample_affine_3d(src3, out2moving_vox, method, out3, start, stop)
        for_each_unit(run, axis0_ranges(out.shape, grain=DEFAULT_GRAIN_VOXELS),
                      num_threads=num_threads)
    else:
        fld = check_field(field, reference.shape, num_threads=num_threads)
        warp_unchecked(src, fld, reference.vox2world, world2moving_vox, method, out,
                       num_threads, params=params)


def resample_vector_field(field: np.ndarray, world2field_vox: np.ndarray, reference: Image,
                          *, itk_edge: bool, num_threads: int) -> np.ndarray:
    """Each component of ``field`` sampled at ``world2field_vox @ x`` for every point ``x``
    of ``reference``'s grid: ``(*reference.shape, ndim)`` float32.

    The driver behind :func:`parareg.transforms.diffeomorphic.resample_field`
    (checked, C-contiguous float32 ``field``). Linear, zero outside
    ``[0, n - 1]`` voxels, or with ``itk_edge`` ITK's rule; every component
    bit for bit as :func:`resample_zero_outside` / :func:`resample` give it
    for that component alone.
    """
    ndim = reference.ndim
    out = np.empty((*reference.shape, ndim), np.float32)
    out2field_vox = lift_affine(world2field_vox @ reference.vox2world)
    field3, out3 = lift_array(field, ndim), lift_array(out, ndim)
    method = LINEAR if itk_edge else LINEAR_ZERO_OUTSIDE

    def run(unit, start, stop):
        resample_field_affine_3d(field3, out2field_vox, method, out3, start, stop)

    for_each_unit(run, axis0_ranges(reference.shape, grain=DEFAULT_GRAIN_VOXELS),
                  num_threads=num_threads)
    return out


#: the kernels' ``params`` for interpolators without any
_NO_PARAMS = np.zeros(6)
#: dtypes the nearest-neighbour kernels copy directly; other labels are gathered by index
_DIRECT_DTYPES = (np.dtype(np.float32), np.dtype(np.int32))
#: label maps whose value range is below this are ranked by a lookup table, others by sorting
_LUT_RANGE = 1 << 24


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
    _map(numbers, reference, world2moving_vox, field, NEAREST, _NO_PARAMS, out, num_threads)
    values = np.concatenate([np.zeros(1, dtype=src.dtype), src.ravel()])
    return trusted_image(values[out], reference.vox2world)


def _label_ranks(src):
    """The sorted labels of an integer image and each voxel's rank among them (int32)."""
    if src.dtype == np.bool_:
        src = src.view(np.uint8)
    low, high = (int(src.min()), int(src.max())) if src.size else (0, 0)
    if high - low < _LUT_RANGE:
        present = np.bincount((src.ravel() - low).astype(np.intp), minlength=high - low + 1) > 0
        rank_of = (np.cumsum(present) - 1).astype(np.int32)
        labels = (np.flatnonzero(present) + low).astype(src.dtype)
        return labels, rank_of[(src - low).astype(np.intp)]
    labels, ranks = np.unique(src, return_inverse=True)
    return labels, ranks.astype(np.int32).reshape(src.shape)


def _resample_labels(src, reference, world2moving_vox, field, num_threads) -> Image:
    """GenericLabel: each label's indicator interpolated linearly, the largest wins.

    The kernels work on label ranks (int32) and write rank + 1 (0 outside);
    the labels are gathered back, in the image's own dtype.
    """
    if not (np.issubdtype(src.dtype, np.integer) or src.dtype == np.bool_):
        raise ValueError(f"interpolation 'genericlabel' needs an integer label image, got dtype "
                         f"{src.dtype}; pass the labels as integers (e.g. "
                         "data.astype(np.int32), or a label file read with labels=True), or use "
                         "'nearest' or 'linear'")
    labels, ranks = _label_ranks(src)
    out = np.empty(reference.shape, dtype=np.int32)
    _map(np.ascontiguousarray(ranks), reference, world2moving_vox, field, LABEL, _NO_PARAMS,
         out, num_threads)
    values = np.concatenate([np.zeros(1, dtype=src.dtype), labels])
    return trusted_image(values[out], reference.vox2world)


def warp_unchecked(src: np.ndarray, field: np.ndarray, out_vox2world: np.ndarray,
                   world2moving_vox: np.ndarray, method: int, out: np.ndarray,
                   num_threads: int | None, *, params: np.ndarray = _NO_PARAMS) -> np.ndarray:
    """Fill ``out`` with ``src`` sampled at ``world2moving_vox @ (out_vox2world @ p + field[p])``.

    The driver behind :func:`resample` with a field, without validation, for
    loops whose arrays are already checked (C-contiguous, float32 field).
    ``method`` is a kernel interpolator code (:mod:`parareg.kernels.resample`;
    SyN's own warps use ``LINEAR_ZERO_OUTSIDE``).
    """
    ndim = out.ndim
    method = int(method)
    src3, field3, out3 = (lift_array(a, ndim) for a in (src, field, out))
    out_vox2world, world2moving_vox = lift_affine(out_vox2world), lift_affine(world2moving_vox)
    if method in ITK_KERNEL_METHODS:
        def run(unit, start, stop):
            warp_itk_3d(src3, field3, out_vox2world, world2moving_vox, method, params, out3,
                        start, stop)
    else:
        def run(unit, start, stop):
            warp_3d(src3, field3, out_vox2world, world2moving_vox, method, out3, start, stop)
    for_each_unit(run, axis0_ranges(out.shape, grain=DEFAULT_GRAIN_VOXELS),
                  num_threads=num_threads)
    return out
