"""One call from two images to a warped image and its mapping: affine pipeline, then SyN."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .._options import accepted_options, choice
from ..dipy._order import refuse_dipy_order
from .._config import DEFAULT_GRAIN_VOXELS
from ..image import Image, as_image, as_image_or_path, check_matrix, trusted_image
from ..memory import check_registration
from ..metrics import AFFINE_METRICS
from ..metrics.syn import SYN_METRICS
from .affine import DEFAULT_LEVELS, AffineMap, affine_registration
from .channels import Channel, LoadedChannel, check_channels
from .initialise import SEARCH_METHODS, initialised_affine
from .pyramid import check_level_shapes
from .syn import DEFAULT_SYN_LEVELS, SymmetricDiffeomorphicRegistration

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from .._typing import ImageLike, MaskLike, MatrixLike

    #: what register(initial_transform=) takes: a name, a matrix, an AffineMap or a file
    InitialTransform = str | MatrixLike | AffineMap | None

#: register(transform=...) -> the affine pipeline run before (and, for "syn", the SyN step)
AFFINE_PIPELINES = {
    "rigid": ("center_of_mass", "translation", "rigid"),
    "affine": ("center_of_mass", "translation", "rigid", "affine"),
    "syn": ("center_of_mass", "translation", "rigid", "affine"),
}
#: every stage register can run, in the only order they run in
STAGE_ORDER = ("translation", "rigid", "similarity", "affine", "syn")
#: initial_transform names -> the affine pipeline's initialiser (None: start at the identity)
INITIALISERS = {"com": "center_of_mass", "center_of_mass": "center_of_mass",
                "geometric": "geometric_centers", "geometric_centers": "geometric_centers",
                "origin": "origins", "origins": "origins", "identity": None,
                "moments": "moments", "search": "search"}  # the last two: initialise.py
#: the start without initial_transform: the global search, which starts exactly at the centres
#: of mass whenever its best start lies in their basin (BENCHMARKS.md, "Robust initialisation")
DEFAULT_START = "search"

#: the affine stage before SyN stops at half resolution: SyN refines at full resolution anyway
#: (IXI013->IXI012: Dice 0.673 vs 0.674 with a full-resolution affine, 0.35 s less)
SYN_PREALIGN_LEVELS = DEFAULT_LEVELS[:-1]

#: the presets' regularisation: sigmas in mm of the fixed grid (the same regularity at any voxel
#: size, and in 2D as in 3D), chosen from the Dice-SDlogJ curve of benchmarks/pareto.py
#: (BENCHMARKS.md, "Accuracy vs regularity"); "fast" keeps the looser field of earlier versions
_MM = {"sigma_units": "mm", "update_sigma": 2.4, "step": 0.5,
       # CC's exact gradient in 2D, where it moves the whole Dice-SDlogJ curve up (the 2D curve
       # then passes greedy's point) and costs little; in 3D it only moves along the curve
       # (IXI: 0.647/0.186 vs 0.654/0.192) and costs ~20% per iteration (BENCHMARKS.md, "The
       # exact CC gradient"). A dict value is per image dimension (see preset_options)
       "gradient": {2: "exact", 3: "center"}}
#: named SyN settings (see BENCHMARKS.md for how they compare with greedy and ANTs)
SYN_PRESETS = {
    "fast": {"levels": ((4, 1.0, 60), (2, 0.5, 30), (1, 0.0, 0)), "radius": 2,
             "field_sigma": 1.0, **_MM},
    "default": {"levels": DEFAULT_SYN_LEVELS, "radius": 2, "field_sigma": 1.6, **_MM},
    "accurate": {"levels": ((4, 1.0, 100), (2, 0.5, 70), (1, 0.0, 30)), "radius": 2,
                 "field_sigma": 1.6, **_MM},
}


def preset_options(preset: str, ndim: int) -> dict:
    """The SyN options of :data:`SYN_PRESETS` ``[preset]`` for ``ndim``-D images (a value
    given per dimension, ``{2: ..., 3: ...}``, resolved)."""
    return {key: value[ndim] if isinstance(value, dict) else value
            for key, value in SYN_PRESETS[preset].items()}


def check_stages(stages: Sequence[str] | str | None, transform: str) -> tuple[str, ...]:
    """``stages`` checked (known, in :data:`STAGE_ORDER`, each once), or ``transform``'s."""
    if stages is None:
        linear = tuple(s for s in AFFINE_PIPELINES[transform] if s in STAGE_ORDER)
        return linear + (("syn",) if transform == "syn" else ())
    if isinstance(stages, str):
        stages = [part for part in stages.replace(",", " ").split() if part]
    stages = tuple(str(stage).lower() for stage in stages)
    unknown = [stage for stage in stages if stage not in STAGE_ORDER]
    if unknown or not stages:
        raise ValueError(f"stages must be one or more of {list(STAGE_ORDER)}, got "
                         f"{list(stages)!r}")
    order = [STAGE_ORDER.index(stage) for stage in stages]
    if order != sorted(set(order)):
        raise ValueError(f"stages {list(stages)} must each appear once, in the order "
                         f"{', '.join(STAGE_ORDER)} (each stage starts where the previous "
                         "one stopped)")
    return stages


def initial_alignment(initial: InitialTransform, ndim: int
                      ) -> tuple[str | None, np.ndarray | None]:
    """``(initialiser name or None, starting matrix or None)`` from ``initial_transform``."""
    if initial is None:
        return INITIALISERS[DEFAULT_START], None
    if isinstance(initial, str) and initial.lower() in INITIALISERS:
        return INITIALISERS[initial.lower()], None
    return None, linear_transform(initial, ndim, name="initial_transform",
                                  hint=f" (or give one of {sorted(INITIALISERS)})")


def linear_transform(value: MatrixLike | AffineMap | str | os.PathLike, ndim: int, *,
                     name: str, hint: str = "") -> np.ndarray:
    """A matrix, an :class:`AffineMap` or a linear transform file (ITK/ANTs, greedy) as a
    ``(ndim + 1, ndim + 1)`` world matrix; ``name`` (and ``hint``, for a missing file) in
    the errors."""
    import os

    if isinstance(value, AffineMap):
        return check_matrix(value.matrix, ndim, name=name)
    if isinstance(value, (str, os.PathLike)):
        from ..transforms.chain import read_transforms

        if not os.path.exists(value):
            raise FileNotFoundError(f"{name}: no such file: {str(value)!r}{hint}")
        steps = read_transforms([value], ndim=ndim, labels=[f"{name} {str(value)!r}"])
        if any(step.is_warp for step in steps):
            raise ValueError(f"{name} {str(value)!r} holds a displacement field; the "
                             "starting transform must be linear")
        total = np.eye(ndim + 1)
        for step in steps:
            total = step.matrix @ total
        return total
    return check_matrix(value, ndim, name=name)


def virtual_fixed(initial_fixed: np.ndarray, loaded: Sequence[LoadedChannel],
                  fixed_mask: MaskLike | None, *, num_threads: int | None = None
                  ) -> tuple[tuple[LoadedChannel, ...], Image | None]:
    """ANTs' ``--initial-fixed-transform``: ``(channels, fixed_mask)`` with every channel's
    fixed image seen through ``initial_fixed`` on the fixed grid (ITK's virtual domain).

    A point ``x`` of the fixed grid takes the fixed value at ``initial_fixed @ x``, as
    ITK's metrics sample ``fixed(FixedInitialTransform(x))``; points sent off the fixed
    image (and, with a fixed mask, outside it) leave the returned mask, as ITK's metrics
    skip them. The mask is ``None`` when every point stays inside and none was given.
    """
    from dataclasses import replace

    from ..resampling import resample
    from .affine import _as_mask

    fixed = loaded[0].fixed

    def seen(image, interpolation="linear"):
        return resample(image, fixed, affine=initial_fixed, interpolation=interpolation,
                        num_threads=num_threads)

    inside = seen(Image(np.ones(fixed.shape, np.uint8), fixed.vox2world), "nearest").data != 0
    mask = _as_mask(fixed_mask, fixed, name="fixed_mask")
    if mask is not None:
        inside &= seen(mask, "nearest").data != 0
    if not inside.any():
        raise ValueError("initial_fixed_transform sends every point of the fixed grid off "
                         + ("the fixed mask" if mask is not None else "the fixed image")
                         + "; it maps fixed-grid (virtual) points to fixed-image points, as "
                         "ANTs reads it: check its direction (invert it) and its units (mm)")
    channels = tuple(replace(channel, fixed=seen(channel.fixed)) for channel in loaded)
    if mask is None and inside.all():
        return channels, None
    return channels, Image(inside.astype(np.uint8), fixed.vox2world)


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
    initial_fixed : ndarray or None
        ``initial_fixed_transform`` as a matrix (fixed-grid points -> fixed-image
        points, mm), when one was given: ``mapping`` then maps the fixed grid's
        (virtual) points to moving points, as ANTs' output transforms do, and
        ``mapping`` after ``inv(initial_fixed)`` maps fixed-image points.
    """

    warped: Image
    mapping: object
    affine: AffineMap
    seconds: dict = field(default_factory=dict)
    initial_fixed: np.ndarray | None = None


#: register's own arguments that ``affine_options`` / ``syn_options`` must not repeat
#: (option key -> the argument of register that sets it)
_AFFINE_CLASHES = {"metric": "affine_metric", "fixed_mask": "fixed_mask",
                   "channels": "channels", "weight": "weight",
                   "moving_mask": "moving_mask", "num_threads": "num_threads", "seed": "seed",
                   "fixed_affine": "fixed_affine", "moving_affine": "moving_affine",
                   "starting_affine": "initial_transform"}
_SYN_CLASHES = {"metric": "syn_metric", "num_threads": "num_threads", "fixed_mask": "fixed_mask",
                "channels": "channels", "weight": "weight",
                "moving_mask": "moving_mask", "fixed_affine": "fixed_affine",
                "moving_affine": "moving_affine"}
#: the images are register's first arguments, never a stage option
_IMAGES = ("fixed", "moving")


def _stage_options(options, *, name: str, accepted, clashes) -> dict:
    """``options`` as a dict of keyword arguments for one stage, or a ``ValueError`` naming
    the key that clashes with one of register's arguments or that the stage does not take."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"{name} must be a dict of keyword arguments or None, got "
                         f"{type(options).__name__}")
    for key in options:
        if key in clashes:
            raise ValueError(f"{name}={{{key!r}: ...}} clashes with register's own "
                             f"{clashes[key]}= argument: pass {clashes[key]}= to register "
                             f"and drop {key!r} from {name}")
        if key in _IMAGES or (accepted is not None and key not in accepted):
            takes = sorted(k for k in (accepted or ()) if k not in (*clashes, *_IMAGES))
            raise ValueError(f"{name} has an unknown key {key!r}; it takes {takes}")
    return dict(options)


def _channel_syn_metrics(channels) -> tuple:
    """Each channel's SyN metric name for the memory estimate (``None``: the registration's;
    a malformed ``channels`` is left to :func:`check_channels`)."""
    if not isinstance(channels, (list, tuple)):
        return ()
    names = []
    for channel in channels:
        metric = getattr(channel, "syn_metric", None)
        name = metric if isinstance(metric, str) or metric is None else getattr(metric, "name",
                                                                                None)
        name = name.lower() if isinstance(name, str) else None
        names.append(name if name in SYN_METRICS else None)
    return tuple(names)


def c_ordered(image: Image, *, num_threads: int | None = None) -> Image:
    """``image`` with its data in C order (itself when it already is), copied once on the pool.

    Every kernel takes C-ordered arrays, and NIfTI files are read in Fortran
    order: without this each pyramid level and resampling of an image copies
    it again (a transposing copy, serial). The copy runs in slabs along the
    last axis, each one contiguous in the Fortran-ordered source (~3.5x less
    CPU than ``np.ascontiguousarray``); the values are the same.
    """
    data = image.data
    if data.flags.c_contiguous:
        return image
    if not data.flags.f_contiguous:
        return trusted_image(np.ascontiguousarray(data), image.vox2world)
    from ..parallel import for_each_unit, partition_range

    out = np.empty(data.shape, data.dtype)
    plane = max(1, data.size // data.shape[-1])

    def copy(unit, start, stop):
        np.copyto(out[..., start:stop], data[..., start:stop])

    for_each_unit(copy, partition_range(0, data.shape[-1],
                                        grain=max(1, DEFAULT_GRAIN_VOXELS // plane)),
                  num_threads=num_threads)
    return trusted_image(out, image.vox2world)


@refuse_dipy_order
def register(fixed: ImageLike, moving: ImageLike, *, transform: str = "syn",
             affine_metric: str = "mi", syn_metric: str = "cc", preset: str = "default",
             fixed_mask: MaskLike | None = None, moving_mask: MaskLike | None = None,
             num_threads: int | None = None, seed: int = 0,
             affine_options: dict | None = None, syn_options: dict | None = None,
             max_memory: int | str | None = None, fixed_affine: MatrixLike | None = None,
             moving_affine: MatrixLike | None = None,
             initial_transform: InitialTransform = None,
             initial_fixed_transform: MatrixLike | AffineMap | str | None = None,
             stages: Sequence[str] | str | None = None,
             channels: Sequence[Channel] | None = None,
             weight: float = 1.0) -> RegistrationResult:
    """Register ``moving`` to ``fixed``: the affine pipeline, then (for ``"syn"``) SyN.

    Parameters
    ----------
    fixed, moving : Image, path, nibabel image, ants.ANTsImage or ndarray
    transform : {"rigid", "affine", "syn"}
        Names here are case-insensitive (``"SyN"``, ``"MI"``).
    affine_metric : {"mi", "meansquares", "correlation"}
    syn_metric : {"cc", "ssd", "em", "mi"}
        Local cross-correlation, squared differences, EM, or mutual
        information (any contrasts).
    preset : {"fast", "default", "accurate"}
        SyN pyramid, iterations and regularisation (:data:`SYN_PRESETS`; sigmas in
        mm; CC's exact gradient for 2D images, its centre term for 3D; the preset's
        CC ``radius`` and ``gradient`` apply to ``syn_metric="cc"`` only).
    fixed_mask, moving_mask : Image, ndarray or path, optional
        Non-zero voxels drive the metric; same grid as their image; NaN is refused.
        Both drive every stage (SyN uses the points inside both masks).
    num_threads : int, optional
        The result is bit-identical at any thread count.
    seed : int
        Seed of the affine stage's sparse sampling.
    affine_options, syn_options : dict, optional
        Extra keyword arguments for :func:`affine_registration` and
        :func:`syn_registration` (they override the defaults and the preset).
        Before SyN the affine pyramid stops at half resolution
        (``SYN_PREALIGN_LEVELS``); pass ``affine_options={"levels": ...}`` to change it.
        A key that repeats one of register's own arguments (``"metric"``,
        ``"fixed_mask"``, ``"num_threads"``...) or that the stage does not take
        is refused with a ``ValueError`` naming both.
    max_memory : int or str, optional
        Stop before any work if the estimated peak memory exceeds this many bytes
        (or a size such as ``"8G"``). The estimate is always checked against the
        memory available (see :mod:`parareg.memory`).
    initial_transform : str, ndarray, AffineMap or path, optional
        Where the first stage starts: ``"search"`` (the default: a global
        rotation and translation search on the coarsest level, starting at
        the centres of mass when its best start lies in their basin, then a
        wrong-basin check that reruns from the next-best start; see
        :mod:`parareg.registration.initialise`), ``"com"`` (centres of
        mass), ``"geometric"`` (image centres), ``"origin"``,
        ``"identity"``, ``"moments"`` (principal axes, the metric choosing
        their signs);
        or a fixed-world -> moving-world matrix, an
        :class:`AffineMap`, or a transform file (ITK/ANTs ``.mat``/``.txt``/
        ``.h5``, greedy's RAS matrix) as ANTs' ``--initial-moving-transform``.
    initial_fixed_transform : ndarray, AffineMap or path, optional
        ANTs' ``--initial-fixed-transform``: a linear transform (matrix or file
        as for ``initial_transform``) from the fixed grid's points to fixed-image
        points. Every stage (and the initialisers) compares ``fixed`` at
        ``initial_fixed_transform(x)`` with ``moving`` at ``mapping(x)`` for the
        points ``x`` of the fixed grid (ITK's virtual domain); points it sends
        off the fixed image are left out. As in ANTs, ``mapping`` (and the
        files written from it) then maps those virtual points to moving points
        and does not contain this transform; ``warped`` is ``moving`` in the
        virtual space. To put ``moving`` onto ``fixed`` itself, apply the
        inverse of this transform first (antsApplyTransforms / ``parareg apply``
        ``-t [FILE,1] PREFIX_1Warp.nii.gz PREFIX_0GenericAffine.mat``).
    stages : sequence of str, optional
        Which of ``"translation"``, ``"rigid"``, ``"similarity"``,
        ``"affine"``, ``"syn"`` run (in that order), e.g. ``("syn",)`` for SyN
        alone from ``initial_transform``. Default: those of ``transform``.
    fixed_affine, moving_affine : ndarray, optional
        vox2world (RAS mm, as nibabel's ``img.affine``) of an ndarray ``fixed``
        / ``moving``; required for ndarrays, refused for anything else.
    channels : sequence of Channel, optional
        More (fixed, moving) pairs driving the same transform in every
        stage, e.g. ``[parareg.Channel(t2_fixed, t2_moving, weight=0.5,
        syn_metric="mi")]`` next to a T1 pair (ANTs' several ``-m``
        metrics, greedy's several ``-i`` pairs). Each channel's fixed image
        is on the grid of ``fixed``, each moving image on that of
        ``moving``; its ``affine_metric`` / ``syn_metric`` default to
        ``affine_metric`` / ``syn_metric``. Masks and initialisers are
        shared (the initialisers use ``fixed`` and ``moving``). How the
        channels combine: :mod:`parareg.registration.channels`.
    weight : float
        The weight of ``(fixed, moving)`` among the channels; weights are 0
        or more, sum to more than 0 and are normalised to sum to 1.

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
    transform = choice(transform, sorted(AFFINE_PIPELINES), name="transform")
    stages = check_stages(stages, transform)
    if "syn" in stages:
        transform = "syn"
    elif transform == "syn":
        transform = "rigid" if stages[-1] in ("translation", "rigid") else "affine"
    preset = choice(preset, sorted(SYN_PRESETS), name="preset")
    affine_metric = choice(affine_metric, sorted(AFFINE_METRICS), name="affine_metric")
    syn_metric = choice(syn_metric, sorted(SYN_METRICS), name="syn_metric")
    affine_options = _stage_options(affine_options, name="affine_options",
                                    accepted=accepted_options(affine_registration),
                                    clashes=_AFFINE_CLASHES)
    syn_options = _stage_options(syn_options, name="syn_options",
                                 accepted=accepted_options(SymmetricDiffeomorphicRegistration),
                                 clashes=_SYN_CLASHES)
    fixed = as_image_or_path(fixed, name="fixed", affine=fixed_affine, num_threads=num_threads)
    moving = as_image_or_path(moving, name="moving", affine=moving_affine,
                              num_threads=num_threads)
    check_registration(fixed, moving, transform=transform, preset=preset, metric=syn_metric,
                       levels=syn_options.get("levels"),
                       fixed_mask=fixed_mask is not None, max_memory=max_memory,
                       channels=_channel_syn_metrics(channels))
    fixed = as_image(fixed, name="fixed", num_threads=num_threads)
    moving = as_image(moving, name="moving", num_threads=num_threads)
    loaded = check_channels(channels, fixed, moving, weight=weight, num_threads=num_threads)
    initial_fixed = None if initial_fixed_transform is None else linear_transform(
        initial_fixed_transform, fixed.ndim, name="initial_fixed_transform")
    if initial_fixed is not None and not np.array_equal(initial_fixed, np.eye(fixed.ndim + 1)):
        loaded, fixed_mask = virtual_fixed(initial_fixed, loaded, fixed_mask,
                                           num_threads=num_threads)
        fixed = loaded[0].fixed
    # loaded once here; the stages get them as Images
    channel_options = {"weight": loaded[0].weight,
                       "channels": [Channel(c.fixed, c.moving, c.weight, c.affine_metric,
                                            c.syn_metric) for c in loaded[1:]] or None}
    initialiser, start = initial_alignment(initial_transform, fixed.ndim)
    linear = tuple(stage for stage in stages if stage != "syn")
    options = {"pipeline": ((initialiser,) if initialiser else ()) + linear,
               "starting_affine": start}
    if transform == "syn":
        options["levels"] = SYN_PREALIGN_LEVELS
    options.update(affine_options)
    # shapes checked before any work: a pyramid too coarse for the images fails at once
    for name, image in (("fixed", fixed), ("moving", moving)):
        check_level_shapes(image, options.get("levels", DEFAULT_LEVELS), name=name,
                           stage="affine_options")
    syn = None
    if transform == "syn":
        chosen = preset_options(preset, fixed.ndim)
        for key in ("radius", "gradient"):  # a preset's window and gradient are CC's
            if key not in (accepted_options(SYN_METRICS[syn_metric]) or (key,)):
                chosen.pop(key, None)
        syn = SymmetricDiffeomorphicRegistration(
            syn_metric, num_threads=num_threads, **{**chosen, **syn_options})
        syn.check_grid(fixed, metrics=[syn.channel_metric(c) for c in loaded])
    seconds = {}
    t0 = time.perf_counter()
    # scored starts and a wrong-basin check (an affine_options pipeline names its own start)
    if initialiser in SEARCH_METHODS and "pipeline" not in affine_options:
        affine = initialised_affine(initialiser, fixed, moving, metric=affine_metric,
                                    fixed_mask=fixed_mask, moving_mask=moving_mask,
                                    num_threads=num_threads, seed=seed, **channel_options,
                                    **options)
    elif options["pipeline"]:
        affine = affine_registration(fixed, moving, metric=affine_metric, fixed_mask=fixed_mask,
                                     moving_mask=moving_mask, num_threads=num_threads,
                                     seed=seed, **channel_options, **options)
    else:  # SyN alone, from the given start
        affine = AffineMap(np.eye(fixed.ndim + 1) if start is None else start, fixed=fixed,
                           moving=moving)
    seconds["affine"] = time.perf_counter() - t0
    mapping = affine
    # SyN and the warp see C-ordered copies, made once (each pyramid level and resampling would
    # copy again); the affine stage sees the images as given: its numpy reductions (the centre
    # of mass) round in memory order, and its result keeps its bits
    moving = c_ordered(moving, num_threads=num_threads)
    if transform == "syn":
        t0 = time.perf_counter()
        mapping = syn.optimize(c_ordered(fixed, num_threads=num_threads), moving,
                               prealign=affine.matrix, fixed_mask=fixed_mask,
                               moving_mask=moving_mask, **channel_options)
        seconds["syn"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    warped = mapping.transform(moving, num_threads=num_threads)
    seconds["warp"] = time.perf_counter() - t0
    return RegistrationResult(warped=warped, mapping=mapping, affine=affine, seconds=seconds,
                              initial_fixed=initial_fixed)
