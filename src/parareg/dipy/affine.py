"""DIPY's ``affine_registration(moving, static, ...)`` over :func:`parareg.affine_registration`.

DIPY's argument order (moving first), names and defaults; the result is
DIPY's ``(resampled, affine)``: the moving array on the static grid and the
static-world -> moving-world matrix (what DIPY's ``AffineMap`` holds, and
parareg's ``AffineMap.matrix``).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ..image import Image
from ..registration.affine import affine_registration as _affine_registration
from ..resampling import resample
from ..transforms import center_of_mass as _center_of_mass
from ..transforms import get_transform, image_center
from ._compat import refuse_unknown, warn_unsupported
from ._inputs import read_image

__all__ = ["affine", "affine_levels", "affine_registration", "center_of_mass", "dipy_pipeline",
           "rigid", "rigid_isoscaling", "rigid_scaling", "translation"]

DIPY_PIPELINE = ("center_of_mass", "translation", "rigid", "affine")
#: DIPY pipeline step -> parareg pipeline step (same transform family)
STEPS = {
    "center_of_mass": "center_of_mass",
    "translation": "translation",
    "rigid": "rigid",
    "rigid_isoscaling": "similarity",  # rotation, translation and one isotropic scale
    "affine": "affine",
}
#: DIPY steps parareg has no transform for -> what to use instead
REFUSED_STEPS = {
    "rigid_scaling": "rigid with one scale per axis (9 parameters) has no parareg transform; "
                     "use 'affine' (12 parameters, which include it) or 'rigid_isoscaling'",
}
#: DIPY's scale space defaults, coarse to fine
DIPY_LEVEL_ITERS = (1000, 500, 100)
DIPY_SIGMAS = (3.0, 1.0, 0.0)
DIPY_FACTORS = (4, 2, 1)
#: keyword arguments of DIPY's MutualInformationMetric
MI_KWARGS = ("nbins", "sampling_proportion")


def dipy_pipeline(pipeline) -> tuple[str, ...]:
    """DIPY's ``pipeline`` (names or DIPY's/our partial functions) as parareg pipeline steps."""
    names = list(pipeline) if pipeline else list(DIPY_PIPELINE)
    steps = []
    for index, step in enumerate(names):
        if callable(step):  # dipy.align.rigid and friends are partials naming their pipeline
            wrapped = getattr(step, "keywords", {}).get("pipeline")
            step = wrapped[0] if wrapped and len(wrapped) == 1 else step
        if step in REFUSED_STEPS:
            raise ValueError(f"pipeline[{index}] = {step!r}: {REFUSED_STEPS[step]}")
        if not isinstance(step, str) or step not in STEPS:
            raise ValueError(f"pipeline[{index}] must be one of "
                             f"{sorted([*STEPS, *REFUSED_STEPS])}, got {step!r}")
        steps.append(STEPS[step])
    return tuple(steps)


def affine_levels(level_iters=None, sigmas=None, factors=None) -> tuple:
    """DIPY's ``level_iters``, ``sigmas`` (voxels), ``factors`` as parareg ``levels``.

    All three run coarse to fine, one entry per level, as DIPY's; missing ones
    take DIPY's defaults.

    Examples
    --------
    >>> affine_levels([100, 50], [1.0, 0.0], [2, 1])
    ((2, 1.0, 100), (1, 0.0, 50))
    """
    level_iters = list(level_iters or DIPY_LEVEL_ITERS)
    sigmas = list(sigmas or DIPY_SIGMAS)
    factors = list(factors or DIPY_FACTORS)
    if not len(level_iters) == len(sigmas) == len(factors):
        raise ValueError(f"level_iters, sigmas and factors need one entry per pyramid level, "
                         f"got {len(level_iters)}, {len(sigmas)} and {len(factors)} (DIPY's "
                         f"defaults have 3: {list(DIPY_LEVEL_ITERS)}, {list(DIPY_SIGMAS)}, "
                         f"{list(DIPY_FACTORS)}); give all three")
    for factor in factors:
        if float(factor) != int(factor):
            raise ValueError(f"factors must be whole numbers (parareg shrinks the grid by "
                             f"integer factors), got {factor!r} in {factors}")
    return tuple((int(f), float(s), int(n)) for f, s, n in zip(factors, sigmas, level_iters))


def _masked(image: Image, mask) -> Image:
    return image if mask is None else Image(image.data * (np.asarray(mask) != 0), image.vox2world)


def affine_registration(moving, static, *, moving_affine=None, static_affine=None,
                        pipeline=None, starting_affine=None, metric="MI", level_iters=None,
                        sigmas=None, factors=None, ret_metric=False, moving_mask=None,
                        static_mask=None, optimizer_options=None, **metric_kwargs):
    """DIPY's affine registration (moving first) on parareg's pipeline.

    Parameters
    ----------
    moving, static : ndarray, nibabel image or path
        2D or 3D; an array needs its ``*_affine``, which otherwise overrides
        the image's own.
    moving_affine, static_affine : ndarray, shape (dim + 1, dim + 1), optional
        Voxel-to-world matrices.
    pipeline : list of str or DIPY step functions, optional
        ``"center_of_mass"``, ``"translation"``, ``"rigid"``,
        ``"rigid_isoscaling"`` (parareg's ``"similarity"``) and ``"affine"``;
        ``"rigid_scaling"`` is refused (no parareg transform). Default
        DIPY's ``["center_of_mass", "translation", "rigid", "affine"]``.
    starting_affine : ndarray, optional
        Static-world -> moving-world start (replaced by ``center_of_mass``,
        with DIPY's warning).
    metric : {"MI"}
        Mattes mutual information, DIPY's only affine metric (any case).
    level_iters, sigmas, factors : sequence, optional
        Per level, coarse to fine (:func:`affine_levels`); DIPY's defaults
        ``[1000, 500, 100]``, ``[3, 1, 0]`` voxels, ``[4, 2, 1]``. Every stage
        runs every level, as in DIPY.
    ret_metric : bool
        Also return ``xopt`` (parareg's parameters of the last stage: rotation
        vector/angles, scale or matrix entries, then translation in mm, about
        the static grid centre) and ``fopt`` (its final metric value).
    moving_mask, static_mask : ndarray, optional
        Non-zero voxels drive the metric (and the centre of mass, as DIPY).
    optimizer_options : dict, optional
        Not used (parareg's own L-BFGS-B); a :class:`DipyCompatWarning` says so.
    **metric_kwargs
        ``nbins`` (32) and ``sampling_proportion`` (``None``: every voxel, as
        DIPY; a fraction in (0, 1]: a seeded random subset).

    Returns
    -------
    resampled : ndarray, float32
        ``moving`` on the static grid.
    affine : ndarray, shape (dim + 1, dim + 1)
        Static-world -> moving-world matrix.
    xopt, fopt
        Only with ``ret_metric=True``.

    Examples
    --------
    >>> from parareg.dipy import affine_registration
    >>> resampled, affine = affine_registration(moving, static, moving_affine=moving_affine,
    ...                                         static_affine=static_affine)  # doctest: +SKIP
    """
    steps = dipy_pipeline(pipeline)
    if not isinstance(metric, str) or metric.upper() != "MI":
        raise ValueError(f"metric must be 'MI' (DIPY's only affine metric), got {metric!r}; "
                         "for same-modality metrics use parareg.affine_registration(fixed, "
                         "moving, metric='meansquares' or 'correlation')")
    refuse_unknown(metric_kwargs, MI_KWARGS, where="affine_registration (metric 'MI')")
    if ret_metric and set(steps) == {"center_of_mass"}:
        raise ValueError("center of mass registration cannot return any quality metric "
                         "(DIPY's rule): pass ret_metric=False or add an optimised step")
    if optimizer_options is not None:
        warn_unsupported("optimizer_options", optimizer_options,
                         "not used: parareg runs its own L-BFGS-B, stopped by level_iters "
                         "and a relative tolerance")
    levels = affine_levels(level_iters, sigmas, factors)
    static = read_image(static, static_affine, name="static")
    moving = read_image(moving, moving_affine, name="moving")
    if starting_affine is not None and "center_of_mass" in steps:
        warnings.warn("starting_affine overwritten by center_of_mass transform", UserWarning,
                      stacklevel=2)
    if "center_of_mass" in steps and (static_mask is not None or moving_mask is not None):
        # DIPY centres the masked images; a centre of mass ignores what came before it
        last = len(steps) - 1 - steps[::-1].index("center_of_mass")
        starting_affine = _center_of_mass(_masked(static, static_mask),
                                          _masked(moving, moving_mask))
        steps = steps[last + 1:]
    sampling = 1.0 if metric_kwargs.get("sampling_proportion") is None else \
        metric_kwargs["sampling_proportion"]
    if not steps:  # only (masked) centres of mass
        return resample(moving, static, affine=starting_affine).data, starting_affine
    result = _affine_registration(static, moving, pipeline=steps, metric="mi",
                                  bins=metric_kwargs.get("nbins", 32), sampling=sampling,
                                  levels=levels, fixed_mask=static_mask,
                                  moving_mask=moving_mask, starting_affine=starting_affine,
                                  full_resolution="all")
    resampled = result.transform(moving).data
    if not ret_metric:
        return resampled, result.matrix
    stage = [h for h in result.history if "value" in h][-1]
    family = get_transform(stage["stage"], static.ndim)
    xopt = family.params_from_matrix(result.matrix, center=image_center(static))
    return resampled, result.matrix, xopt, stage["value"]


center_of_mass = functools.partial(affine_registration, pipeline=["center_of_mass"])
translation = functools.partial(affine_registration, pipeline=["translation"])
rigid = functools.partial(affine_registration, pipeline=["rigid"])
rigid_isoscaling = functools.partial(affine_registration, pipeline=["rigid_isoscaling"])
rigid_scaling = functools.partial(affine_registration, pipeline=["rigid_scaling"])
affine = functools.partial(affine_registration, pipeline=["affine"])
