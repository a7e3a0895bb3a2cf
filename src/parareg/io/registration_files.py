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


def transform_paths(prefix, *, deformable: bool) -> dict[str, Path]:
    """The transform files of a registration with output prefix ``prefix`` (used as is).

    Examples
    --------
    >>> sorted(transform_paths("out/sub01_", deformable=False).items())
    [('affine', PosixPath('out/sub01_0GenericAffine.mat'))]
    """
    roles = ("affine", "warp", "inverse_warp") if deformable else ("affine",)
    return {role: Path(f"{prefix}{TRANSFORM_NAMES[role]}") for role in roles}


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


__all__ = ["TRANSFORM_NAMES", "stage_transforms", "transform_paths"]
