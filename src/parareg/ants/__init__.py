"""ANTsPy-shaped entry points: a script written for ``import ants`` runs on parareg.

Change only the import::

    import parareg.ants as ants

    fixed = ants.image_read("fixed.nii.gz")
    moving = ants.image_read("moving.nii.gz")
    tx = ants.registration(fixed, moving, type_of_transform="SyN", outprefix="out/sub01_")
    warped = ants.apply_transforms(fixed, moving, transformlist=tx["fwdtransforms"])

The files are those ``antsRegistration`` writes (``0GenericAffine.mat``,
``1Warp.nii.gz``, ``1InverseWarp.nii.gz``), so ANTs applies them too.
antspyx is not needed; real ``ants.ANTsImage`` objects are accepted when it
is installed. docs/ants.md says how each ANTsPy argument maps onto parareg.
"""

from ._apply import apply_transforms, create_jacobian_determinant_image
from ._images import ANTsImage, from_numpy, image_read, image_write
from ._registration import registration

__all__ = [
    "ANTsImage",
    "apply_transforms",
    "create_jacobian_determinant_image",
    "from_numpy",
    "image_read",
    "image_write",
    "registration",
]


def __getattr__(name):
    """Other ANTsPy names: an AttributeError saying what parareg.ants offers instead."""
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(f"parareg.ants has no {name!r}: it offers {', '.join(__all__)}; "
                         "for ANTsPy's other functions use antspyx alongside (import ants): "
                         "given its ANTsImages, parareg.ants returns ANTsImages")
