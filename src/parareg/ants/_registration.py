"""``parareg.ants.registration``: ANTsPy's ``ants.registration`` over :func:`parareg.register`."""

from __future__ import annotations

import inspect
import logging
import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ._images import as_input, as_output
from ._recipes import get_recipe

_log = logging.getLogger("parareg.ants")

#: ANTs linear metric (lower case) -> parareg affine metric
LINEAR_METRICS = {"mattes": "mi", "mi": "mi", "meansquares": "meansquares", "gc": "correlation"}
#: ANTs SyN metric (lower case) -> parareg SyN metric
SYN_METRICS = {"mattes": "mi", "mi": "mi", "cc": "cc", "meansquares": "ssd"}
#: bins of parareg's SyN mutual information
SYN_MI_BINS = 32


def registration(fixed, moving, type_of_transform="SyN", initial_transform=None, outprefix="",
                 mask=None, moving_mask=None, mask_all_stages=False, grad_step=0.2,
                 flow_sigma=3, total_sigma=0, aff_metric="mattes", aff_sampling=32,
                 aff_random_sampling_rate=0.2, syn_metric="mattes", syn_sampling=32,
                 reg_iterations=(40, 20, 0), aff_iterations=(2100, 1200, 1200, 10),
                 aff_shrink_factors=(6, 4, 2, 1), aff_smoothing_sigmas=(3, 2, 1, 0),
                 write_composite_transform=False, verbose=False, multivariate_extras=None,
                 restrict_transformation=None, smoothing_in_mm=False, singleprecision=True,
                 use_legacy_histogram_matching=False, **kwargs) -> dict:
    """Register ``moving`` to ``fixed`` as ``ants.registration`` does, with parareg.

    Names, order and defaults are ANTsPy 0.6's (positional use works as in
    ANTsPy scripts); docs/ants.md tables what each maps to in parareg. An
    argument parareg cannot honour raises a ``ValueError`` (or, where the
    result is still meaningful, warns); none is dropped silently.

    Parameters
    ----------
    fixed, moving : ANTsImage, ants.ANTsImage, parareg.Image or path
        2D or 3D scalar images.
    type_of_transform : str
        "Translation", "Rigid", "Similarity", "Affine", "AffineFast",
        "BOLDAffine", "QuickRigid", "DenseRigid", "BOLDRigid", "SyN", "SyNRA",
        "SyNOnly", "SyNAggro", "SyNLessAggro" or
        "antsRegistrationSyN[Quick][Repro][t|r|a|s|sr|so]".
    initial_transform : str, list of one str, or "Identity", optional
        A linear ITK/ANTs transform file (fixed -> moving) to start from;
        without one the images' centres of mass are aligned first (the
        deformable-only types start from the identity).
    outprefix : str
        Written files are ``{outprefix}0GenericAffine.mat`` and, for
        deformable types, ``{outprefix}1Warp.nii.gz`` and
        ``{outprefix}1InverseWarp.nii.gz`` (the prefix used as is, as ANTs
        does). ``""``: a new temporary folder. Transform files of an earlier
        run with this prefix that this run does not write are removed.
    mask, moving_mask : image, optional
        Non-zero voxels drive the metric (fixed grid, moving grid).
    multivariate_extras : sequence of (str, image, image, float, int), optional
        More metrics of the SyN stage, as ANTsPy's ``(("CC", fixed2, moving2,
        weight, radius), ...)`` (``"MeanSquares"``, ``"Mattes"``/``"MI"``
        with 32 bins, ``"CC"`` with its radius): each is a
        :class:`parareg.Channel` of the SyN stage only, weighted against the
        ``(fixed, moving)`` pair's weight 1 (the weights are normalised; each
        channel's force is divided by its norm, as ITK's multi-metric does).
        ``fixed2`` must be on the grid of ``fixed``, ``moving2`` on that of
        ``moving``. Used by "SyNOnly" and the deformable
        antsRegistrationSyN* types, as in ANTsPy; the others warn.
    **kwargs
        ``random_seed`` (older ANTsPy's name) seeds the affine sampling;
        ``num_threads`` sets parareg's thread count. Other names warn, as
        ANTsPy ignores them.

    Returns
    -------
    dict
        ``warpedmovout`` (moving on the fixed grid), ``warpedfixout`` (fixed
        on the moving grid), ``fwdtransforms`` (``[warp, affine]`` or
        ``[affine]``: moving -> fixed for ``apply_transforms``) and
        ``invtransforms`` (``[affine, inverse warp]``, with the affine inverted
        by ``apply_transforms``' default). Images are of the kind ``fixed``
        is: real ``ants.ANTsImage`` for real ones, else :class:`ANTsImage`.

    Examples
    --------
    >>> import parareg.ants as ants
    >>> fi = ants.image_read("fixed.nii.gz")  # doctest: +SKIP
    >>> mi = ants.image_read("moving.nii.gz")  # doctest: +SKIP
    >>> tx = ants.registration(fi, mi, "SyN", outprefix="out/sub01_")  # doctest: +SKIP
    >>> warped = ants.apply_transforms(fi, mi, tx["fwdtransforms"])  # doctest: +SKIP
    """
    given = {name: value for name, value in locals().items() if name != "kwargs"}
    recipe = get_recipe(type_of_transform)
    seed = kwargs.pop("random_seed", None)
    num_threads = kwargs.pop("num_threads", None)
    _refuse_unsupported(given)
    _warn_unused(given, kwargs, recipe, type_of_transform)
    fixed_image = _image(fixed, "fixed")
    moving_image = _image(moving, "moving")
    if fixed_image.ndim != moving_image.ndim:
        raise ValueError(f"fixed is {fixed_image.ndim}D but moving is {moving_image.ndim}D; "
                         "register images of the same dimension")
    extras = _extras(multivariate_extras, fixed_image, moving_image) \
        if recipe.multivariate else None
    prefix = _check_prefix(outprefix)
    masks = _masks(recipe, mask, moving_mask, mask_all_stages, fixed_image, moving_image,
                   type_of_transform)
    start = _initial_matrix(initial_transform, fixed_image.ndim)
    linear_levels = _linear_levels(recipe, aff_iterations, aff_shrink_factors,
                                   aff_smoothing_sigmas)
    callbacks = _progress_callbacks() if verbose else {}
    syn_options = _syn_options(recipe, reg_iterations, syn_metric, syn_sampling, grad_step,
                               flow_sigma, total_sigma) if recipe.deformable else None
    if syn_options is not None:
        syn_options.update(callbacks.get("syn", {}))
    affine_options = {"full_resolution": "all",
                      **_linear_options(recipe, aff_metric, aff_sampling,
                                        aff_random_sampling_rate, smoothing_in_mm),
                      **callbacks.get("affine", {})}
    if recipe.linear and linear_levels:
        affine_options["levels"] = linear_levels
    elif recipe.linear:  # every linear level has 0 iterations: the start alone, as ANTs
        affine_options["pipeline"] = ("center_of_mass",) if start is None else ()
    if start is None:
        start = "com" if recipe.center_of_mass else "identity"
    stages = recipe.linear + (("syn",) if recipe.deformable else ())
    from ..registration import register

    common = {"fixed_mask": masks[0], "moving_mask": masks[1], "num_threads": num_threads,
              "seed": 0 if seed is None else int(seed)}
    affine_metric = affine_options.pop("metric")
    syn_metric = syn_options.pop("metric") if syn_options else "cc"
    if extras and recipe.linear:  # the extras drive the SyN stage only, as in ANTs(Py)
        linear = register(fixed_image, moving_image, stages=recipe.linear,
                          initial_transform=start, affine_metric=affine_metric,
                          affine_options=affine_options, **common)
        result = register(fixed_image, moving_image, stages=("syn",),
                          initial_transform=linear.affine.matrix, syn_metric=syn_metric,
                          syn_options=syn_options, channels=extras, **common)
        result.seconds = {**linear.seconds, "syn": result.seconds.get("syn", 0.0),
                          "warp": result.seconds.get("warp", 0.0)}
    else:
        result = register(fixed_image, moving_image, stages=stages, initial_transform=start,
                          affine_metric=affine_metric, syn_metric=syn_metric,
                          affine_options=affine_options, syn_options=syn_options,
                          channels=extras, **common)
    warped_fixed = result.mapping.transform_inverse(fixed_image, num_threads=num_threads)
    paths = _write(result, prefix, deformable=recipe.deformable,
                   composite=bool(write_composite_transform), num_threads=num_threads)
    if write_composite_transform:  # ANTsPy then returns the two file names, not lists
        forward, inverse = str(paths["composite"]), str(paths["inverse_composite"])
    elif recipe.deformable:
        affine = str(paths["affine"])
        forward, inverse = [str(paths["warp"]), affine], [affine, str(paths["inverse_warp"])]
    else:
        forward, inverse = [str(paths["affine"])], [str(paths["affine"])]
    return {"warpedmovout": as_output(result.warped, fixed),
            "warpedfixout": as_output(warped_fixed, fixed),
            "fwdtransforms": forward, "invtransforms": inverse}


# --- arguments ---------------------------------------------------------------------------

_DEFAULTS = {name: p.default for name, p in inspect.signature(registration).parameters.items()
             if p.default is not inspect.Parameter.empty}


def _refuse_unsupported(given: dict) -> None:
    refused = {
        "restrict_transformation": "per-component restriction of the transform is not offered",
        "use_legacy_histogram_matching": "histogram matching is not offered; match the images "
                                         "first (e.g. skimage.exposure.match_histograms)",
    }
    for name, why in refused.items():
        value = given[name]
        if value is not None and not (isinstance(value, (bool, int)) and not value):
            raise ValueError(f"registration: {name}={given[name]!r}: {why} by parareg.ants; "
                             f"pass {name}={_DEFAULTS[name]!r}")
    for name in ("fixed", "moving"):
        if isinstance(given[name], (list, tuple)):
            raise ValueError(f"registration: {name} is a {type(given[name]).__name__}; "
                             "ANTsPy's raw antsRegistration argument list is not offered: "
                             "pass images")
    if not given["singleprecision"]:
        warnings.warn("registration: singleprecision=False: parareg computes in float32 "
                      "(with float64 accumulators) whatever this option says",
                      UserWarning, stacklevel=3)


def _same(value, default) -> bool:
    value = tuple(value) if isinstance(value, (list, tuple)) else value
    default = tuple(default) if isinstance(default, (list, tuple)) else default
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # e.g. an array compared with a number
        return False


def _warn_unused(given: dict, extra: dict, recipe, type_of_transform) -> None:
    used = recipe.arguments() | {"type_of_transform", "verbose", "singleprecision"}
    unused = sorted(name for name, value in given.items()
                    if name not in used and name in _DEFAULTS and not _same(value,
                                                                            _DEFAULTS[name]))
    if unused:
        warnings.warn(f"registration: {', '.join(unused)} not used by type_of_transform="
                      f"{type_of_transform!r} (ANTsPy ignores them for this type, and so does "
                      "parareg.ants)", UserWarning, stacklevel=3)
    if extra:
        warnings.warn(f"registration: unknown keyword argument(s) {', '.join(sorted(extra))} "
                      "ignored (as ANTsPy ignores them); parareg.ants also takes random_seed "
                      "and num_threads", UserWarning, stacklevel=3)


def _image(obj, name: str):
    if obj is None:
        raise TypeError(f"registration: {name} is None; pass an image")
    return as_input(obj, name=name)


def _extras(multivariate_extras, fixed, moving):
    """ANTsPy's ``multivariate_extras`` as :class:`parareg.Channel` s of the SyN stage (checked
    before any work, each entry named by its index), or ``None``."""
    if multivariate_extras is None:
        return None
    from ..registration.channels import GRID_ATOL, Channel
    from ..metrics.syn import get_syn_metric
    from ..registration.pipeline import preset_options

    form = "(metric name, fixed2, moving2, weight, sampling parameter)"
    if isinstance(multivariate_extras, (str, bytes)) or not hasattr(multivariate_extras,
                                                                     "__len__"):
        raise TypeError(f"multivariate_extras must be a list of {form}, as ANTsPy's "
                        f"(('CC', f2, m2, 1, 2),), got {type(multivariate_extras).__name__}")
    channels = []
    for index, entry in enumerate(multivariate_extras):
        where = f"multivariate_extras[{index}]"
        if isinstance(entry, (str, bytes)) or not hasattr(entry, "__len__") or len(entry) != 5:
            raise ValueError(f"{where} must be {form}, e.g. ('CC', fixed2, moving2, 1, 2), "
                             f"got {entry!r}")
        name, fixed2, moving2, weight, parameter = entry
        metric = _metric(SYN_METRICS, name, argument=f"{where}[0]")
        images = []
        for position, image, reference, role in ((1, fixed2, fixed, "fixed"),
                                                 (2, moving2, moving, "moving")):
            loaded = _image(image, f"{where}[{position}]")
            if loaded.shape != reference.shape or not np.allclose(
                    loaded.vox2world, reference.vox2world, rtol=0, atol=GRID_ATOL):
                raise ValueError(f"{where}[{position}] is not on the grid of {role} (shape "
                                 f"{loaded.shape} vs {reference.shape}, or another origin, "
                                 f"spacing or direction); parareg's channels share the grids "
                                 f"of fixed and moving: resample it first, e.g. "
                                 f"ants.resample_image_to_target(image, {role}) or "
                                 f"parareg.resample(image, {role})")
            images.append(loaded)
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)) \
                or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{where}[3], the weight, must be a finite number of 0 or more, "
                             f"got {weight!r}")
        if not isinstance(parameter, (int, float, np.number)) or isinstance(parameter, bool):
            raise ValueError(f"{where}[4], the sampling parameter (CC radius, MI bins), must "
                             f"be a number, got {parameter!r}")
        if metric == "cc":
            if int(parameter) < 1 or int(parameter) != parameter:
                raise ValueError(f"{where}[4] is the CC radius: a whole number of 1 or more "
                                 f"voxels, got {parameter!r}")
            # the CC update of the pair's own metric (the default preset's, per dimension)
            gradient = preset_options("default", fixed.ndim).get("gradient")
            syn_metric = get_syn_metric("cc", radius=int(parameter), gradient=gradient)
        elif metric == "mi" and int(parameter) != SYN_MI_BINS:
            raise ValueError(f"{where}[4]={parameter!r} with {name!r}: parareg's SyN mutual "
                             f"information has {SYN_MI_BINS} bins; pass {SYN_MI_BINS}")
        else:
            syn_metric = metric
        channels.append(Channel(images[0], images[1], weight=float(weight),
                                syn_metric=syn_metric))
    return channels or None


def _masks(recipe, mask, moving_mask, mask_all_stages, fixed, moving, type_of_transform):
    fixed_mask = None if mask is None else as_input(mask, name="mask")
    moving_mask = None if moving_mask is None else as_input(moving_mask, name="moving_mask")
    for name, value, image in (("mask", fixed_mask, fixed), ("moving_mask", moving_mask, moving)):
        if value is not None and value.shape != image.shape:
            other = "fixed" if name == "mask" else "moving"
            raise ValueError(f"registration: {name} has shape {value.shape} but {other} has "
                             f"shape {image.shape}; the mask must be on the {other} grid")
    where = f"type_of_transform={type_of_transform!r}"
    if (fixed_mask is not None or moving_mask is not None) and recipe.late_masks \
            and recipe.linear and not mask_all_stages:
        warnings.warn(f"registration: with {where} ANTsPy gives the masks to the SyN stage only "
                      "(mask_all_stages=False); parareg masks the linear stages too, as "
                      "mask_all_stages=True does", UserWarning, stacklevel=4)
    return fixed_mask, moving_mask


def _initial_matrix(initial_transform, ndim: int):
    """The start matrix (fixed world -> moving world), or ``None`` for the recipe's own start."""
    if initial_transform is None:
        return None
    value = initial_transform
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"initial_transform holds {len(value)} transforms; parareg.ants "
                             "starts from one linear transform file (or 'Identity')")
        value = value[0]
    if isinstance(value, str) and value == "Identity":
        return np.eye(ndim + 1)
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"initial_transform must be a transform file name or 'Identity', got "
                        f"{type(value).__name__}")
    if str(value).lower().endswith((".nii", ".nii.gz")):
        raise ValueError(f"initial_transform {str(value)!r} is a displacement field; parareg "
                         "starts registrations from a linear transform (.mat/.txt) only")
    from ..io.itk import read_affine

    return read_affine(value, ndim=ndim)


def _sequence(value, name: str) -> tuple:
    if isinstance(value, (int, float, np.integer, np.floating)):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a sequence of numbers, got "
                        f"{type(value).__name__}") from None


def _linear_levels(recipe, aff_iterations, aff_shrink_factors, aff_smoothing_sigmas) -> tuple:
    """``(factor, sigma, iterations)`` per level; trailing levels without iterations dropped."""
    if recipe.linear_levels is not None:
        levels = recipe.linear_levels
    else:
        names = ("aff_shrink_factors", "aff_smoothing_sigmas", "aff_iterations")
        iterations = recipe.linear_iterations or aff_iterations
        columns = [_sequence(v, n) for v, n in zip((aff_shrink_factors, aff_smoothing_sigmas,
                                                     iterations), names)]
        if len({len(c) for c in columns}) != 1:
            raise ValueError("aff_shrink_factors, aff_smoothing_sigmas and aff_iterations must "
                             f"have the same length, got {[len(c) for c in columns]}")
        levels = tuple(zip(*columns))
    levels = list(levels)
    while levels and levels[-1][2] == 0:
        levels.pop()
    return tuple(levels)


def _metric(table: dict, name, *, argument: str) -> str:
    key = name.lower() if isinstance(name, str) else name
    if key not in table:
        raise ValueError(f"{argument} must be one of {sorted(table)} (any case), got {name!r}")
    return table[key]


def _linear_options(recipe, aff_metric, aff_sampling, aff_random_sampling_rate,
                    smoothing_in_mm) -> dict:
    name, bins = recipe.linear_metric or (aff_metric, aff_sampling)
    metric = _metric(LINEAR_METRICS, name, argument="aff_metric")
    rate = 1.0 if recipe.dense else (recipe.linear_sampling or aff_random_sampling_rate)
    if not isinstance(rate, (int, float)) or not 0.0 < float(rate) <= 1.0:
        raise ValueError(f"aff_random_sampling_rate must be in (0, 1], got {rate!r}")
    options = {"metric": metric, "sampling": float(rate), "sampling_strategy": "regular"}
    if metric == "mi":
        options["bins"] = int(bins)
    if smoothing_in_mm and recipe.linear_levels is None:
        options["sigma_unit"] = "mm"
    return options


def _syn_options(recipe, reg_iterations, syn_metric, syn_sampling, grad_step, flow_sigma,
                 total_sigma) -> dict:
    if recipe.syn_levels is not None:
        levels = recipe.syn_levels
    else:
        iterations = _sequence(reg_iterations, "reg_iterations")
        if not iterations:
            raise ValueError("reg_iterations must hold one or more iteration counts, e.g. "
                             "(40, 20, 0)")
        n = len(iterations)
        levels = tuple((2 ** (n - 1 - i), float(n - 1 - i), int(its))
                       for i, its in enumerate(iterations))
    name, parameter = recipe.syn_metric or (syn_metric, syn_sampling)
    if isinstance(name, str) and name.lower() == "demons":
        raise ValueError("syn_metric='demons' is not offered by parareg.ants; use "
                         "'meansquares' (parareg's SSD) or 'CC'")
    metric = _metric(SYN_METRICS, name, argument="syn_metric")
    options = {"metric": metric, "levels": levels}
    if metric == "cc":
        options["radius"] = int(parameter)
    elif metric == "mi" and int(parameter) != SYN_MI_BINS:
        raise ValueError(f"syn_sampling={parameter!r} with syn_metric={name!r}: parareg's SyN "
                         f"mutual information has {SYN_MI_BINS} bins; pass "
                         f"syn_sampling={SYN_MI_BINS}")
    step, update_variance, total_variance = recipe.syn_transform or (grad_step, flow_sigma,
                                                                     total_sigma)
    for label, value in (("grad_step", step), ("flow_sigma", update_variance),
                         ("total_sigma", total_variance)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{label} must be a finite number >= 0, got {value!r}")
    # ANTs' SyN[step, flow, total] takes variances in voxels^2; parareg takes sigmas in voxels
    options.update(step=float(step), update_sigma=math.sqrt(update_variance),
                   field_sigma=math.sqrt(total_variance), convergence=recipe.syn_convergence)
    if "sigma_units" in _syn_parameters():  # where the SyN sigmas may be in mm, say voxels
        options["sigma_units"] = "voxels"
    return options


def _syn_parameters():
    from ..registration.syn import SymmetricDiffeomorphicRegistration

    return inspect.signature(SymmetricDiffeomorphicRegistration).parameters


# --- running -----------------------------------------------------------------------------


def _progress_callbacks() -> dict:
    """verbose=True: per-iteration progress on the ``parareg.ants`` logger (INFO)."""

    def affine(info):
        _log.info("%s level %d iteration %d: metric %.6g", info.get("stage"),
                  info.get("level", 0) + 1, info.get("iteration", 0), info.get("value", 0.0))

    def syn(info):
        _log.info("SyN level %d iteration %d: energy %.6g", info["level"] + 1,
                  info["iteration"], info["energy"])

    return {"affine": {"callback": affine}, "syn": {"callback": syn}}


def _check_prefix(outprefix) -> str:
    """``outprefix`` as a string whose folder exists (``""``: a temporary folder, made later)."""
    if not isinstance(outprefix, (str, os.PathLike)):
        raise TypeError(f"outprefix must be a string, got {type(outprefix).__name__}")
    prefix = str(outprefix)
    folder = Path(prefix + "x").parent
    if prefix and not folder.is_dir():
        raise FileNotFoundError(f"outprefix: the folder {str(folder)!r} does not exist; "
                                "create it first")
    return prefix


def _write(result, prefix: str, *, deformable: bool, composite: bool, num_threads) -> dict:
    """Write the transform files through parareg's writer (one transaction)."""
    from ..io.outputs import OutputSet
    from ..io.registration_files import (composite_paths, stage_composites, stage_transforms,
                                         transform_paths)

    if not prefix:
        prefix = tempfile.mkdtemp(prefix="parareg_ants_") + os.sep
    every = [*transform_paths(prefix, deformable=True).values(),
             *composite_paths(prefix).values()]
    paths = composite_paths(prefix) if composite else transform_paths(prefix,
                                                                      deformable=deformable)
    stale = [p for p in every if p not in paths.values()]
    with OutputSet(remove=stale, num_threads=num_threads) as outputs:
        (stage_composites if composite else stage_transforms)(result, paths, outputs)
    return paths


__all__ = ["registration"]
