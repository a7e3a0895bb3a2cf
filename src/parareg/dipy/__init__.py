"""DIPY-shaped entry points: a DIPY script runs after changing only its imports.

``from dipy.align import affine_registration`` becomes
``from parareg.dipy import affine_registration``; the arguments keep DIPY's
order (``moving`` first, then ``static``), names and defaults, and the
results DIPY's types (arrays, DIPY's affine convention, mappings with
``transform``/``transform_inverse``/``get_forward_field``). Everything runs
on parareg's own registration code; DIPY is never imported, except by
:func:`to_dipy` and :func:`from_dipy`, which convert mappings to and from
DIPY's own classes. ``docs/dipy.md`` lists what maps to what.

Names are imported on first use (PEP 562), as in :mod:`parareg`.
"""

import importlib

#: public name -> the module of this package that defines it
_LAZY = {
    "AffineMap": "._affine_map",
    "AffineRegistration": ".imaffine",
    "MutualInformationMetric": ".imaffine",
    "transform_centers_of_mass": ".imaffine",
    "transform_geometric_centers": ".imaffine",
    "transform_origins": ".imaffine",
    "TranslationTransform2D": ".imaffine",
    "TranslationTransform3D": ".imaffine",
    "RigidTransform2D": ".imaffine",
    "RigidTransform3D": ".imaffine",
    "RigidIsoScalingTransform2D": ".imaffine",
    "RigidIsoScalingTransform3D": ".imaffine",
    "RigidScalingTransform2D": ".imaffine",
    "RigidScalingTransform3D": ".imaffine",
    "AffineTransform2D": ".imaffine",
    "AffineTransform3D": ".imaffine",
    "CCMetric": ".metrics",
    "DiffeomorphicMap": ".syn",
    "DipyCompatWarning": "._compat",
    "DipyOrderError": "._order",
    "EMMetric": ".metrics",
    "SSDMetric": ".metrics",
    "SymmetricDiffeomorphicRegistration": ".syn",
    "affine": ".affine",
    "affine_registration": ".affine",
    "center_of_mass": ".affine",
    "from_dipy": ".convert",
    "resample": "._affine_map",
    "rigid": ".affine",
    "rigid_isoscaling": ".affine",
    "rigid_scaling": ".affine",
    "syn_registration": ".syn",
    "to_dipy": ".convert",
    "translation": ".affine",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
