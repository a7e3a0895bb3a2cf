"""One call from two images to a warped image and its mapping: affine pipeline, then SyN."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..image import Image, as_image, as_image_or_path
from ..memory import check_registration
from .affine import DEFAULT_LEVELS, AffineMap, affine_registration
from .pyramid import check_level_shapes
from .syn import DEFAULT_SYN_LEVELS, SymmetricDiffeomorphicRegistration

#: register(transform=...) -> the affine pipeline run before (and, for "syn", the SyN step)
AFFINE_PIPELINES = {
    "rigid": ("center_of_mass", "translation", "rigid"),
    "affine": ("center_of_mass", "translation", "rigid", "affine"),
    "syn": ("center_of_mass", "translation", "rigid", "affine"),
}

#: the affine stage before SyN stops at half resolution: SyN refines at full resolution anyway
#: (IXI013->IXI012: Dice 0.673 vs 0.674 with a full-resolution affine, 0.35 s less)
SYN_PREALIGN_LEVELS = DEFAULT_LEVELS[:-1]

#: named SyN settings (see BENCHMARKS.md for how they compare with greedy and ANTs)
SYN_PRESETS = {
    "fast": {"levels": ((4, 1.0, 60), (2, 0.5, 30), (1, 0.0, 0)), "radius": 2},
    "default": {"levels": DEFAULT_SYN_LEVELS, "radius": 2},
    "accurate": {"levels": ((4, 1.0, 100), (2, 0.5, 70), (1, 0.0, 30)), "radius": 2},
}


@dataclass
class RegistrationResult:
    """What :func:`register` returns.

    Attributes
    ----------
    warped : Image
        The moving image resampled onto the fixed grid.
    mapping : AffineMap or DiffeomorphicMap
        ``mapping.transform(image)`` puts any image of the moving space on the
        fixed grid; ``mapping.transform_inverse(image)`` does the reverse.
    affine : AffineMap
        The affine stage alone (the prealignment of a SyN mapping).
    seconds : dict
        Wall time per stage.
    """

    warped: Image
    mapping: object
    affine: AffineMap
    seconds: dict = field(default_factory=dict)


def register(fixed, moving, *, transform: str = "syn", affine_metric: str = "mi",
             syn_metric: str = "cc", preset: str = "default", fixed_mask=None,
             moving_mask=None, num_threads=None, seed: int = 0, affine_options=None,
             syn_options=None, max_memory=None, fixed_affine=None,
             moving_affine=None) -> RegistrationResult:
    """Register ``moving`` to ``fixed``: the affine pipeline, then (for ``"syn"``) SyN.

    Parameters
    ----------
    fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
    transform : {"rigid", "affine", "syn"}
    affine_metric : {"mi", "meansquares", "correlation"}
    syn_metric : {"cc", "ssd", "em"}
    preset : {"fast", "default", "accurate"}
        SyN pyramid and iteration settings.
    fixed_mask, moving_mask : Image, ndarray or path, optional
        Non-zero voxels drive the metric; same grid as their image; NaN is refused.
    num_threads : int, optional
        The result is bit-identical at any thread count.
    seed : int
        Seed of the affine stage's sparse sampling.
    affine_options, syn_options : dict, optional
        Extra keyword arguments for :func:`affine_registration` and
        :func:`syn_registration` (they override the defaults and the preset).
        Before SyN the affine pyramid stops at half resolution
        (``SYN_PREALIGN_LEVELS``); pass ``affine_options={"levels": ...}`` to change it.
    max_memory : int or str, optional
        Stop before any work if the estimated peak memory exceeds this many bytes
        (or a size such as ``"8G"``). The estimate is always checked against the
        memory available (see :mod:`parareg.memory`).
    fixed_affine, moving_affine : ndarray, optional
        vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
        / ``moving``; required for ndarrays, refused for anything else.

    Returns
    -------
    RegistrationResult

    Raises
    ------
    parareg.registration.pyramid.PyramidTooCoarseError
        Before any work, when a pyramid level of these images would hold a
        single voxel, or (SyN CC) be smaller than the CC window.
    parareg.memory.InsufficientMemoryError
        When the estimate exceeds ``max_memory`` or the memory available
        (before any image is read when ``fixed`` and ``moving`` are paths).

    Examples
    --------
    >>> import parareg
    >>> result = parareg.register("fixed.nii.gz", "moving.nii.gz")  # doctest: +SKIP
    >>> parareg.save(result.warped, "warped.nii.gz")  # doctest: +SKIP
    """
    if transform not in AFFINE_PIPELINES:
        raise ValueError(f"transform must be one of {sorted(AFFINE_PIPELINES)}, "
                         f"got {transform!r}")
    if preset not in SYN_PRESETS:
        raise ValueError(f"preset must be one of {sorted(SYN_PRESETS)}, got {preset!r}")
    fixed = as_image_or_path(fixed, name="fixed", affine=fixed_affine, num_threads=num_threads)
    moving = as_image_or_path(moving, name="moving", affine=moving_affine,
                              num_threads=num_threads)
    check_registration(fixed, moving, transform=transform, preset=preset, metric=syn_metric,
                       levels=(syn_options or {}).get("levels"),
                       fixed_mask=fixed_mask is not None, max_memory=max_memory)
    fixed = as_image(fixed, name="fixed", num_threads=num_threads)
    moving = as_image(moving, name="moving", num_threads=num_threads)
    options = {"pipeline": AFFINE_PIPELINES[transform]}
    if transform == "syn":
        options["levels"] = SYN_PREALIGN_LEVELS
    options.update(affine_options or {})
    # shapes checked before any work: a pyramid too coarse for the images fails at once
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_level_shapes(image, options.get("levels", DEFAULT_LEVELS), name=name,
                           stage="affine_options")
    syn = None
    if transform == "syn":
        syn = SymmetricDiffeomorphicRegistration(
            syn_metric, num_threads=num_threads, **{**SYN_PRESETS[preset], **(syn_options or {})})
        syn.check_grid(fixed)
    seconds = {}
    t0 = time.perf_counter()
    affine = affine_registration(fixed, moving, metric=affine_metric, fixed_mask=fixed_mask,
                                 moving_mask=moving_mask, num_threads=num_threads, seed=seed,
                                 **options)
    seconds["affine"] = time.perf_counter() - t0
    mapping = affine
    if transform == "syn":
        t0 = time.perf_counter()
        mapping = syn.optimize(fixed, moving, prealign=affine.matrix, fixed_mask=fixed_mask)
        seconds["syn"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    warped = mapping.transform(moving, num_threads=num_threads)
    seconds["warp"] = time.perf_counter() - t0
    return RegistrationResult(warped=warped, mapping=mapping, affine=affine, seconds=seconds)
