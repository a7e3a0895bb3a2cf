"""DIPY's class form of affine registration (``dipy.align.imaffine``, ``dipy.align.transforms``).

``AffineRegistration(metric=MutualInformationMetric(...), level_iters=...,
sigmas=..., factors=...).optimize(static, moving, RigidTransform3D(), None,
...)`` runs one stage of parareg's
:class:`~parareg.registration.affine.AffineRegistration` and returns a
DIPY-shaped :class:`~parareg.dipy.AffineMap`. DIPY's own metric and
transform objects are accepted too (read by their type names and attributes).
"""

from __future__ import annotations


from ..registration.affine import INITIALIZERS
from ..registration.affine import AffineRegistration as _AffineRegistration
from ..transforms import get_transform, image_center
from ._affine_map import AffineMap
from ._compat import warn_unsupported
from ._inputs import read_array
from .affine import _masked, affine_levels
from .syn import syn_levels

__all__ = ["AffineRegistration", "MutualInformationMetric", "transform_centers_of_mass",
           "transform_geometric_centers", "transform_origins"]

#: DIPY transform family (class name without "Transform2D/3D") -> parareg stage
FAMILIES = {"Translation": "translation", "Rigid": "rigid", "RigidIsoScaling": "similarity",
            "Affine": "affine"}
REFUSED_FAMILIES = {
    "RigidScaling": "use AffineTransform (it includes per-axis scaling) or "
                    "RigidIsoScalingTransform",
    "Rotation": "use RigidTransform (rotation about the grid centre plus translation)",
    "Scaling": "use AffineTransform or RigidIsoScalingTransform",
}
#: DIPY's string starting affines -> parareg initialisers
STARTS = {"mass": "center_of_mass", "centers": "geometric_centers", "voxel-origin": "origins"}


class MutualInformationMetric:
    """DIPY's Mattes mutual information: ``nbins`` bins, all voxels or ``sampling_proportion``."""

    def __init__(self, nbins=32, sampling_proportion=None):
        self.nbins = nbins
        self.sampling_proportion = sampling_proportion


def _stage(transform) -> str:
    name = type(transform).__name__
    family = name[:-len("Transform2D")] if name.endswith(("Transform2D", "Transform3D")) else ""
    if family in REFUSED_FAMILIES:
        raise ValueError(f"transform {name} has no parareg equivalent: "
                         f"{REFUSED_FAMILIES[family]}")
    if family not in FAMILIES:
        known = ", ".join(f"{f}Transform3D" for f in FAMILIES)
        raise TypeError(f"transform must be one of DIPY's transforms ({known}, or their 2D "
                        f"forms), got {name}")
    return FAMILIES[family]


def _starting_matrix(start, static, moving, static_mask, moving_mask):
    if start is None:
        return None
    if isinstance(start, str):
        if start not in STARTS:
            raise ValueError(f"starting_affine must be a matrix, None or one of "
                             f"{sorted(STARTS)}, got {start!r}")
        return INITIALIZERS[STARTS[start]](_masked(static, static_mask),
                                           _masked(moving, moving_mask))
    return start


class AffineRegistration:
    """DIPY's ``AffineRegistration``: one transform family per :meth:`optimize` call.

    ``level_iters``, ``sigmas``, ``factors`` as in
    :func:`parareg.dipy.affine_registration` (read at each ``optimize``, so they may
    be changed in between, as DIPY's tutorial does); ``ss_sigma_factor`` gives
    DIPY's anisotropic scale space levels (:func:`parareg.dipy.syn.syn_levels`).
    ``method`` other than ``"L-BFGS-B"`` and ``options`` warn (not used).
    """

    def __init__(self, metric=None, level_iters=None, sigmas=None, factors=None,
                 method="L-BFGS-B", ss_sigma_factor=None, options=None, verbosity=None):
        self.metric = MutualInformationMetric() if metric is None else metric
        if not hasattr(self.metric, "sampling_proportion"):
            raise TypeError(f"metric must be a MutualInformationMetric (DIPY's only affine "
                            f"metric), got {type(self.metric).__name__}")
        self.level_iters = [1000, 500, 100] if level_iters is None else list(level_iters)
        if not self.level_iters:
            raise ValueError("level_iters cannot be empty (one iteration count per level)")
        self.sigmas, self.factors, self.ss_sigma_factor = sigmas, factors, ss_sigma_factor
        if method != "L-BFGS-B":
            warn_unsupported("method", method, "not used: parareg optimises with L-BFGS-B")
        if options is not None:
            warn_unsupported("options", options, "not used: parareg's L-BFGS-B is stopped by "
                             "level_iters and a relative tolerance")
        self.verbosity = verbosity

    def _levels(self):
        if self.ss_sigma_factor is not None:
            return syn_levels(self.level_iters, self.ss_sigma_factor)
        return affine_levels(self.level_iters, self.sigmas, self.factors)

    def optimize(self, static, moving, transform, params0, static_grid2world=None,
                 moving_grid2world=None, starting_affine=None, ret_metric=False,
                 static_mask=None, moving_mask=None):
        """Register ``moving`` to ``static`` with one transform family; a DIPY-shaped AffineMap.

        ``params0`` must be ``None`` (parareg starts from ``starting_affine``:
        a matrix, ``None`` or DIPY's ``"mass"``, ``"centers"``, ``"voxel-origin"``).
        With ``ret_metric=True`` also parareg's final parameters and metric value.
        The grid2world matrices may be given by position, as DIPY before 1.10.
        """
        stage = _stage(transform)
        if params0 is not None:
            raise ValueError("params0: parareg starts from starting_affine, not from DIPY's "
                             "parameter vector; pass params0=None and give the start as "
                             "starting_affine (a matrix)")
        static = read_array(static, static_grid2world, name="static")
        moving = read_array(moving, moving_grid2world, name="moving")
        dim = transform.get_dim()
        if dim != static.ndim:
            raise ValueError(f"transform {type(transform).__name__} is {dim}D but static is "
                             f"{static.ndim}D: use the {static.ndim}D form")
        sampling = self.metric.sampling_proportion
        nbins = getattr(self.metric, "nbins", None) or self.metric.histogram.nbins
        registration = _AffineRegistration(metric="mi", bins=int(nbins),
                                           sampling=1.0 if sampling is None else sampling,
                                           levels=self._levels())
        native = registration.optimize(
            static, moving, stage, fixed_mask=static_mask, moving_mask=moving_mask,
            starting_affine=_starting_matrix(starting_affine, static, moving, static_mask,
                                             moving_mask))
        result = AffineMap(native.matrix, domain_grid_shape=static.shape,
                           domain_grid2world=static.vox2world, codomain_grid_shape=moving.shape,
                           codomain_grid2world=moving.vox2world)
        if not ret_metric:
            return result
        params = get_transform(stage, static.ndim).params_from_matrix(
            native.matrix, center=image_center(static))
        return result, params, native.history[-1]["value"]


def _initial_map(name, static, static_grid2world, moving, moving_grid2world) -> AffineMap:
    static = read_array(static, static_grid2world, name="static")
    moving = read_array(moving, moving_grid2world, name="moving")
    return AffineMap(INITIALIZERS[name](static, moving), domain_grid_shape=static.shape,
                     domain_grid2world=static.vox2world, codomain_grid_shape=moving.shape,
                     codomain_grid2world=moving.vox2world)


def transform_centers_of_mass(static, static_grid2world, moving, moving_grid2world):
    """DIPY's: the translation that aligns the intensity centres of mass (an AffineMap)."""
    return _initial_map("center_of_mass", static, static_grid2world, moving, moving_grid2world)


def transform_geometric_centers(static, static_grid2world, moving, moving_grid2world):
    """DIPY's: the translation that aligns the grid centres (an AffineMap)."""
    return _initial_map("geometric_centers", static, static_grid2world, moving,
                        moving_grid2world)


def transform_origins(static, static_grid2world, moving, moving_grid2world):
    """DIPY's: the translation that aligns the voxel-(0, 0, 0) points (an AffineMap)."""
    return _initial_map("origins", static, static_grid2world, moving, moving_grid2world)


def _transform_class(family: str, dim: int) -> type:
    """A lookalike of DIPY's ``<family>Transform<dim>D`` (it only names the family)."""
    return type(f"{family}Transform{dim}D", (), {
        "__doc__": f"DIPY's {family}Transform{dim}D, as a name for AffineRegistration.optimize.",
        "__module__": __name__, "get_dim": lambda self: dim})


TranslationTransform2D = _transform_class("Translation", 2)
TranslationTransform3D = _transform_class("Translation", 3)
RigidTransform2D = _transform_class("Rigid", 2)
RigidTransform3D = _transform_class("Rigid", 3)
RigidIsoScalingTransform2D = _transform_class("RigidIsoScaling", 2)
RigidIsoScalingTransform3D = _transform_class("RigidIsoScaling", 3)
RigidScalingTransform2D = _transform_class("RigidScaling", 2)
RigidScalingTransform3D = _transform_class("RigidScaling", 3)
AffineTransform2D = _transform_class("Affine", 2)
AffineTransform3D = _transform_class("Affine", 3)
__all__ += [name for name in list(globals()) if name.endswith(("Transform2D", "Transform3D"))]
