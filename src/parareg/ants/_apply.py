"""``apply_transforms`` and ``create_jacobian_determinant_image`` as ANTsPy's, on parareg.

Both read the files ``antsRegistration`` (or :func:`parareg.ants.registration`)
writes; the transform chain is :func:`parareg.apply_transforms`, the one
engine ``parareg apply`` also runs.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ._images import as_input, as_output

_log = logging.getLogger("parareg.ants")

#: ANTsPy interpolator -> parareg interpolation (:data:`parareg.resampling.INTERPOLATIONS`)
INTERPOLATORS = {"linear": "linear", "nearestNeighbor": "nearest", "genericLabel": "genericlabel",
                 "bSpline": "bspline", "gaussian": "gaussian",
                 "lanczosWindowedSinc": "lanczoswindowedsinc"}
#: ANTsPy's other interpolators (refused: parareg does not have them)
_OTHER_INTERPOLATORS = ("multiLabel", "cosineWindowedSinc", "welchWindowedSinc",
                        "hammingWindowedSinc")


def _as_labels(image, interpolator: str):
    """``image`` as an integer label map for ``interpolator`` (ANTsPy reads labels as float)."""
    if np.issubdtype(image.data.dtype, np.integer):
        return image
    data = image.data
    whole = np.isfinite(data).all() and np.array_equal(data, np.round(data))
    if not whole:
        raise ValueError(f"interpolator={interpolator!r} needs a label map (whole-number "
                         "values), but moving holds fractional values; use "
                         "interpolator='linear' for an intensity image")
    from ..image import trusted_image

    fits = data.size == 0 or (data.min() >= np.iinfo(np.int32).min
                              and data.max() <= np.iinfo(np.int32).max)
    return trusted_image(data.astype(np.int32 if fits else np.int64), image.vox2world)


def _which_to_invert(transformlist, whichtoinvert) -> list[bool]:
    """ANTsPy's rule: ``[matrix, warp]`` (an inverse list) inverts the matrix; else nothing."""
    if whichtoinvert is None or (isinstance(whichtoinvert, (tuple, list))
                                 and all(w is None for w in whichtoinvert)):
        if (len(transformlist) == 2 and ".mat" in str(transformlist[0])
                and ".mat" not in str(transformlist[1])):
            return [True, False]
        return [False] * len(transformlist)
    if isinstance(whichtoinvert, (bool, np.bool_)):
        whichtoinvert = [whichtoinvert]
    whichtoinvert = list(whichtoinvert)
    if len(whichtoinvert) != len(transformlist):
        raise ValueError(f"whichtoinvert has {len(whichtoinvert)} entries but transformlist has "
                         f"{len(transformlist)}; give one True/False per transform")
    for i, (path, invert) in enumerate(zip(transformlist, whichtoinvert)):
        if invert and ".mat" not in str(path):
            raise ValueError(f"whichtoinvert[{i}] is True but transformlist[{i}] ({str(path)!r}) "
                             "is not a matrix (.mat): a warp cannot be inverted; use its "
                             "InverseWarp file, as in the registration's invtransforms")
    return [bool(w) for w in whichtoinvert]


def apply_transforms(fixed, moving, transformlist, interpolator="linear", imagetype=0,
                     whichtoinvert=None, compose=None, defaultvalue=0, singleprecision=False,
                     verbose=False, **kwargs):
    """Map ``moving`` onto the grid of ``fixed`` through ``transformlist``, as ANTsPy does.

    Parameters
    ----------
    fixed : image
        Defines the output grid (and the kind and pixel type of the output).
    moving : image
        The image to resample.
    transformlist : str or list of str
        Transform files in antsApplyTransforms order, e.g. a registration's
        ``fwdtransforms`` (moving -> fixed) or ``invtransforms`` (with
        ``fixed`` and ``moving`` swapped).
    interpolator : {"linear", "nearestNeighbor", "genericLabel", "bSpline", "gaussian", \
"lanczosWindowedSinc"}
        As antsApplyTransforms (ITK's rules). genericLabel interpolates label by
        label; it takes a label map read as float (``ants.image_read``'s
        default) when its values are whole numbers. multiLabel and the cosine,
        Welch and Hamming windowed sincs are refused.
    imagetype : 0
        Scalar images only.
    whichtoinvert : list of bool, optional
        Per transform, invert it (matrices only). Default as ANTsPy: ``(True,
        False)`` for a ``[matrix, warp]`` list, else nothing inverted.
    compose : None
        Writing the composed field is not offered.
    defaultvalue : 0
        Points outside the moving image get 0.
    singleprecision : bool
        parareg interpolates in float32 either way.
    verbose : bool
        Log the transform list on the ``parareg.ants`` logger.
    **kwargs
        ``num_threads`` (parareg's thread count); other names warn, as ANTsPy
        ignores them.

    Returns
    -------
    ANTsImage or ants.ANTsImage
        On the fixed grid.

    Examples
    --------
    >>> tx = ants.registration(fi, mi, "SyN")  # doctest: +SKIP
    >>> warped = ants.apply_transforms(fi, mi, tx["fwdtransforms"])  # doctest: +SKIP
    >>> back = ants.apply_transforms(mi, fi, tx["invtransforms"])  # doctest: +SKIP
    """
    from ..transforms.chain import apply_transforms as apply_chain

    num_threads = kwargs.pop("num_threads", None)
    if kwargs:
        warnings.warn(f"apply_transforms: unknown keyword argument(s) "
                      f"{', '.join(sorted(kwargs))} ignored (as ANTsPy ignores them)",
                      UserWarning, stacklevel=2)
    if interpolator not in INTERPOLATORS:
        known = list(INTERPOLATORS)
        if interpolator in _OTHER_INTERPOLATORS:
            raise ValueError(f"interpolator={interpolator!r} is not offered by parareg.ants; "
                             f"use one of {known}")
        raise ValueError(f"interpolator must be one of {known}, got {interpolator!r}")
    if imagetype != 0:
        raise ValueError(f"imagetype={imagetype!r}: parareg.ants applies transforms to scalar "
                         "images only (imagetype=0)")
    if compose is not None:
        raise ValueError("compose: writing the composed transform is not offered by "
                         "parareg.ants; pass compose=None")
    if defaultvalue != 0:
        raise ValueError(f"defaultvalue={defaultvalue!r}: parareg fills points outside the "
                         "moving image with 0; pass defaultvalue=0")
    if transformlist is None:
        raise TypeError("transformlist is None; pass a transform file or a list of them")
    if isinstance(transformlist, (str, os.PathLike)):
        transformlist = [transformlist]
    transformlist = list(transformlist)
    for path in transformlist:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"transformlist must hold file names, got {type(path).__name__}")
        if not Path(path).exists():
            raise FileNotFoundError(f"transformlist: transform {str(path)!r} does not exist")
    invert = _which_to_invert(transformlist, whichtoinvert)
    if verbose:
        _log.info("apply_transforms: %s", " ".join(
            f"[{p},1]" if inv else str(p) for p, inv in zip(transformlist, invert)))
    interpolation = INTERPOLATORS[interpolator]
    is_path = isinstance(moving, (str, os.PathLike))
    source = as_input(moving, name="moving", labels=interpolation == "nearest" and is_path)
    if interpolation == "genericlabel":
        source = _as_labels(source, interpolator)
    warped = apply_chain(source, as_input(fixed, name="fixed"), transformlist,
                         interpolation=interpolation, invert=invert,
                         num_threads=num_threads)
    return as_output(warped, fixed)  # ANTsPy's: the kind and pixel type of fixed


def create_jacobian_determinant_image(domain_image, tx, do_log=False, geom=False):
    """Jacobian determinant of a displacement field file, as ANTsPy's.

    Parameters
    ----------
    domain_image : image
        The field's domain (the fixed image of the registration); the output
        is of its kind.
    tx : str or os.PathLike
        A displacement field file, e.g. ``fwdtransforms[0]`` (``1Warp.nii.gz``).
    do_log : bool
        Return ``log(det)`` (voxels with ``det <= 0``, folds, become NaN, with a warning).
    geom : False
        ANTs' geometric Jacobian is not offered.

    Returns
    -------
    ANTsImage or ants.ANTsImage
        ``det(I + du/dx)`` on the field's grid.
    """
    from ..fields import jacobian_determinant
    from ..image import trusted_image
    from ..io.itk_warp import read_warp

    if geom:
        raise ValueError("geom=True: the geometric Jacobian is not offered by parareg.ants; "
                         "pass geom=False (finite differences, as ANTs' default)")
    if not isinstance(tx, (str, os.PathLike)):
        raise TypeError(f"tx must be a displacement field file name, got {type(tx).__name__}")
    domain = as_input(domain_image, name="domain_image")
    field, vox2world = read_warp(tx, reference=domain)
    jac = jacobian_determinant(field, vox2world=vox2world)
    if do_log:
        folded = int(np.count_nonzero(jac <= 0))
        if folded:
            warnings.warn(f"create_jacobian_determinant_image: {folded} voxel(s) have det <= 0 "
                          "(folds); their log is NaN", UserWarning, stacklevel=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            jac = np.where(jac > 0, np.log(np.maximum(jac, 1e-30)), np.nan).astype(np.float32)
    # produced from a checked field; a log Jacobian may hold NaN where the field folds
    return as_output(trusted_image(jac, vox2world), domain_image, same_pixeltype=False)


__all__ = ["apply_transforms", "create_jacobian_determinant_image"]
