"""ANTsPy's ``type_of_transform`` names as parareg registration recipes, in one table.

Each recipe copies the stages and the hard-coded settings ANTsPy 0.6 passes to
``antsRegistration`` for that name (``ants/registration/registration.py``);
a field left ``None`` is taken from the ANTsPy argument named in
:data:`ARGUMENTS_OF`, as ANTsPy does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: ANTsPy's affine settings of "SyN", "SyNRA", "SyNAggro" (shrink 4x2x2x1, sigmas 3x2x1x0)
_SYN_FAMILY_LINEAR = ((4, 3.0, 2100), (2, 2.0, 1200), (2, 1.0, 1200), (1, 0.0, 0))
#: ANTsPy's affine settings of "AffineFast", "QuickRigid", "BOLD*"
_AFFINE_FAST_ITERATIONS = (2100, 1200, 0, 0)
_QUICK_RIGID_ITERATIONS = (20, 20, 0, 0)
_BOLD_LINEAR = ((2, 1.0, 100), (1, 0.0, 20))


@dataclass(frozen=True)
class Recipe:
    """How one ``type_of_transform`` registers.

    Attributes
    ----------
    linear : tuple of str
        parareg linear stages, in order ("translation", "rigid", "similarity", "affine").
    deformable : bool
        A SyN stage follows.
    center_of_mass : bool
        Start from the centre-of-mass alignment (ANTs ``[fixed,moving,1]``)
        when no ``initial_transform`` is given; else from the identity.
    linear_levels, linear_iterations : optional
        ``(factor, sigma_vox, iterations)`` per level, or only the iterations
        over ANTsPy's ``aff_shrink_factors``/``aff_smoothing_sigmas``; both
        ``None``: all three from the ``aff_*`` arguments.
    linear_metric : (ANTs metric name, bins) or None
        ``None``: ``aff_metric`` and ``aff_sampling``.
    linear_sampling : float or None
        Fraction of voxels sampled on a regular grid; ``None``: ``aff_random_sampling_rate``.
    syn_levels : tuple or None
        ``None``: from ``reg_iterations`` (shrink ``2**k``, sigma ``k`` voxels).
    syn_metric : (ANTs metric name, bins or radius) or None
        ``None``: ``syn_metric`` and ``syn_sampling``.
    syn_transform : (gradient step, update variance, total variance) or None
        ANTs' ``SyN[step,flow,total]`` (variances in voxels^2); ``None``:
        ``grad_step``, ``flow_sigma``, ``total_sigma``.
    syn_convergence : (threshold, window)
        ANTs' convergence ``[iterations,threshold,window]`` of the SyN stage.
    dense : bool
        Sample every voxel in the linear stages (ANTsPy's "DenseRigid").
    late_masks : bool
        ANTsPy gives the masks to the last stage only, unless
        ``mask_all_stages`` (the "SyN" family); else to every stage.
    multivariate : bool
        ANTsPy adds ``multivariate_extras`` as more metrics of the SyN stage
        ("SyNOnly" and the deformable antsRegistrationSyN* types); the others
        ignore them.
    """

    linear: tuple = ()
    deformable: bool = False
    center_of_mass: bool = True
    linear_levels: tuple | None = None
    linear_iterations: tuple | None = None
    linear_metric: tuple | None = None
    linear_sampling: float | None = None
    syn_levels: tuple | None = None
    syn_metric: tuple | None = None
    syn_transform: tuple | None = None
    syn_convergence: tuple = (1e-7, 8)
    dense: bool = False
    late_masks: bool = False
    multivariate: bool = False

    def arguments(self) -> frozenset:
        """The ANTsPy arguments this recipe reads (the others ANTsPy ignores for it)."""
        used = {"fixed", "moving", "initial_transform", "mask", "moving_mask", "outprefix",
                "write_composite_transform"}
        if self.late_masks:
            used.add("mask_all_stages")
        if self.linear:
            if self.linear_levels is None:
                used.update({"aff_shrink_factors", "aff_smoothing_sigmas"})
                used.update(() if self.deformable else {"smoothing_in_mm"})
                if self.linear_iterations is None:
                    used.add("aff_iterations")
            if self.linear_metric is None:
                used.update({"aff_metric", "aff_sampling"})
            if self.linear_sampling is None and not self.dense:
                used.add("aff_random_sampling_rate")
        if self.multivariate:
            used.add("multivariate_extras")
        if self.deformable:
            if self.syn_levels is None:
                used.add("reg_iterations")
            if self.syn_metric is None:
                used.update({"syn_metric", "syn_sampling"})
            if self.syn_transform is None:
                used.update({"grad_step", "flow_sigma", "total_sigma"})
        return frozenset(used)


def _syn_script(letter: str, *, quick: bool, repro: bool) -> Recipe:
    """antsRegistrationSyN[Quick][Repro].sh as ANTsPy recreates it."""
    linear_its = (1000, 500, 250, 0) if quick else (1000, 500, 250, 100)
    linear_levels = tuple(zip((8, 4, 2, 1), (3.0, 2.0, 1.0, 0.0), linear_its))
    if letter in ("sr",):
        syn_its, syn_grid = ((50, 0) if quick else (50, 20)), ((2, 1.0), (1, 0.0))
    else:
        syn_its = (100, 70, 50, 0) if quick else (100, 70, 50, 20)
        syn_grid = ((8, 3.0), (4, 2.0), (2, 1.0), (1, 0.0))
    syn_levels = tuple((f, s, n) for (f, s), n in zip(syn_grid, syn_its))
    linear = {"t": ("translation",), "r": ("rigid",), "a": ("rigid", "affine"),
              "s": ("rigid", "affine"), "sr": ("rigid",), "so": ()}[letter]
    return Recipe(linear=linear, deformable=letter in ("s", "sr", "so"),
                  center_of_mass=letter != "so", linear_levels=linear_levels,
                  linear_metric=("gc", 1) if repro else ("mattes", 32), linear_sampling=0.25,
                  syn_levels=syn_levels,
                  syn_metric=("mattes", 32) if quick and not repro else ("cc", 2),
                  syn_transform=(0.2, 3.0, 0.0), syn_convergence=(1e-6, 10),
                  multivariate=letter in ("s", "sr", "so"))


_SYN_FAMILY = {"linear_levels": _SYN_FAMILY_LINEAR, "deformable": True, "late_masks": True}

#: type_of_transform -> recipe (the antsRegistrationSyN* names are added below)
RECIPES = {
    "Translation": Recipe(linear=("translation",)),
    "Rigid": Recipe(linear=("rigid",)),
    "Similarity": Recipe(linear=("similarity",)),
    "Affine": Recipe(linear=("affine",)),
    "AffineFast": Recipe(linear=("affine",), linear_iterations=_AFFINE_FAST_ITERATIONS),
    "BOLDAffine": Recipe(linear=("affine",), linear_levels=_BOLD_LINEAR),
    "QuickRigid": Recipe(linear=("rigid",), linear_iterations=_QUICK_RIGID_ITERATIONS),
    "DenseRigid": Recipe(linear=("rigid",), dense=True),
    "BOLDRigid": Recipe(linear=("rigid",), linear_levels=_BOLD_LINEAR),
    "SyN": Recipe(linear=("affine",), **_SYN_FAMILY),
    "SyNRA": Recipe(linear=("rigid", "affine"), **_SYN_FAMILY),
    "SyNOnly": Recipe(deformable=True, center_of_mass=False, multivariate=True),
    "SyNAggro": Recipe(linear=("affine",), **{**_SYN_FAMILY, "linear_levels":
                                              _SYN_FAMILY_LINEAR[:3] + ((1, 0.0, 100),)}),
}
RECIPES["SyNLessAggro"] = RECIPES["SyNAggro"]  # ANTsPy runs the same stages for both
for _quick in (False, True):
    for _repro in (False, True):
        for _letter in ("t", "r", "a", "s", "sr", "so"):
            _name = (f"antsRegistrationSyN{'Quick' * _quick}{'Repro' * _repro}[{_letter}]")
            RECIPES[_name] = _syn_script(_letter, quick=_quick, repro=_repro)

#: ANTsPy names parareg does not run, with the reason given in the error
REFUSED = {
    "Elastic": "a Gaussian displacement field (not SyN)",
    "ElasticSyN": "an elastic SyN variant",
    "SyNBold": "SyN tuned for BOLD with its own stages",
    "SyNBoldAff": "SyN tuned for BOLD with its own stages",
    "SyNabp": "the antsBrainExtraction stages",
    "SyNCC": "rigid and affine stages on different pyramids",
    "TRSAA": "translation, rigid, similarity and two affine stages with reg_iterations",
    "TVMSQ": "a time-varying velocity field",
    "TVMSQC": "a time-varying velocity field",
}
_TV = re.compile(r"^TV\[\d\]$")
_SCRIPT = re.compile(r"^antsRegistrationSyN(Quick)?(Repro)?\[(?P<args>[^\]]*)\]$")


def get_recipe(type_of_transform) -> Recipe:
    """The recipe of ANTsPy's ``type_of_transform``; a clear ``ValueError`` for the others."""
    name = type_of_transform
    if isinstance(name, (tuple, list)) and len(name) == 1:  # ANTsPy accepts ["SyN"]
        name = name[0]
    if name == "":
        name = "SyN"  # as ANTsPy
    if not isinstance(name, str):
        raise TypeError(f"type_of_transform must be a string such as 'SyN', got "
                        f"{type(type_of_transform).__name__}")
    if name in RECIPES:
        return RECIPES[name]
    supported = "; supported: " + ", ".join(n for n in RECIPES if "[" not in n) + \
        ", antsRegistrationSyN[Quick][Repro][t|r|a|s|sr|so]"
    reason = REFUSED.get(name) or ("a time-varying velocity field" if _TV.match(name) else None)
    script = _SCRIPT.match(name)
    if script and script["args"] in ("b", "br", "bo"):
        reason = "B-spline SyN (parareg's SyN is the dense, Gaussian-regularised one)"
    elif script and "," in script["args"]:
        raise ValueError(f"type_of_transform={name!r}: parareg.ants takes no extra parameters "
                         f"in antsRegistrationSyN[...] (ANTsPy 0.6 ignores them too); drop the "
                         f"',...' part")
    if reason:
        raise ValueError(f"type_of_transform={name!r} is {reason}, which parareg does not "
                         f"implement{supported}")
    raise ValueError(f"type_of_transform={name!r} is not an ANTsPy transform type{supported}")


__all__ = ["RECIPES", "REFUSED", "Recipe", "get_recipe"]
