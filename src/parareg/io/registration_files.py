"""The transform files of a registration, named and written as ``antsRegistration`` does.

Both ``parareg register`` and :func:`parareg.ants.registration` stage these
files in one :class:`~parareg.io.OutputSet`, so the set is replaced as a whole
and antsApplyTransforms reads it as it reads ANTs' own.

``{prefix}0GenericAffine.mat``
    fixed -> moving affine (ITK, LPS), written for every registration.
``{prefix}1Warp.nii.gz``
    deformable registrations: displacement field on the fixed grid, applied
    to fixed points before the affine.
``{prefix}1InverseWarp.nii.gz``
    its inverse, on the fixed grid, applied after the inverse affine.

Or, as ``antsRegistration --write-composite-transform 1`` writes them, two ITK
HDF5 composites: ``{prefix}Composite.h5`` (fixed -> moving: warp, then
affine) and ``{prefix}InverseComposite.h5`` (moving -> fixed).
"""

from __future__ import annotations

from pathlib import Path

from .itk import affine_map_to_itk
from .itk_warp import write_warp

#: role -> file name after the prefix, as antsRegistration names them
TRANSFORM_NAMES = {
    "affine": "0GenericAffine.mat",
    "warp": "1Warp.nii.gz",
    "inverse_warp": "1InverseWarp.nii.gz",
}
#: role -> file name after the prefix of the composite transforms
COMPOSITE_NAMES = {"composite": "Composite.h5", "inverse_composite": "InverseComposite.h5"}


def transform_paths(prefix, *, deformable: bool) -> dict[str, Path]:
    """The transform files of a registration with output prefix ``prefix`` (used as is).

    Examples
    --------
    >>> sorted(transform_paths("out/sub01_", deformable=False).items())
    [('affine', PosixPath('out/sub01_0GenericAffine.mat'))]
    """
    roles = ("affine", "warp", "inverse_warp") if deformable else ("affine",)
    return {role: Path(f"{prefix}{TRANSFORM_NAMES[role]}") for role in roles}


def composite_paths(prefix) -> dict[str, Path]:
    """The composite transform files of a registration with output prefix ``prefix``."""
    return {role: Path(f"{prefix}{name}") for role, name in COMPOSITE_NAMES.items()}


def stage_composites(result, paths, outputs) -> None:
    """Stage ``result``'s forward and inverse maps as ITK composites at :func:`composite_paths`."""
    import numpy as np

    from ..transforms.diffeomorphic import DiffeomorphicMap
    from .itk_h5 import write_h5

    matrix = result.affine.matrix
    forward, inverse = [("affine", matrix)], [("affine", np.linalg.inv(matrix))]
    mapping = result.mapping
    if isinstance(mapping, DiffeomorphicMap):  # x -> x + u(x) -> affine, and back
        forward.insert(0, ("warp", mapping.forward, mapping.vox2world))
        inverse.append(("warp", mapping.backward, mapping.vox2world))
    write_h5(forward, paths["composite"], outputs=outputs)
    write_h5(inverse, paths["inverse_composite"], outputs=outputs)


def stage_transforms(result, paths, outputs) -> None:
    """Stage the transforms of ``result`` (a :class:`parareg.RegistrationResult`) in ``outputs``.

    ``paths`` maps the roles of :data:`TRANSFORM_NAMES` to file names, as
    :func:`transform_paths` gives them; the warps are written when it names
    them (``result.mapping`` is then a :class:`parareg.DiffeomorphicMap`).
    """
    affine_map_to_itk(result.affine, paths["affine"], outputs=outputs)
    if "warp" in paths:
        mapping = result.mapping
        write_warp(mapping.forward, mapping.vox2world, paths["warp"], outputs=outputs)
        write_warp(mapping.backward, mapping.vox2world, paths["inverse_warp"], outputs=outputs)


__all__ = ["COMPOSITE_NAMES", "TRANSFORM_NAMES", "composite_paths", "stage_composites",
           "stage_transforms", "transform_paths"]
