"""Reading and writing images (NIfTI via nibabel) and ITK/ANTs transform files."""

from .itk import affine_map_from_itk, affine_map_to_itk, read_affine, write_affine
from .itk_warp import read_warp, write_warp
from .nifti import atomic_write, load, save

__all__ = [
    "affine_map_from_itk",
    "affine_map_to_itk",
    "atomic_write",
    "load",
    "read_affine",
    "read_warp",
    "save",
    "write_affine",
    "write_warp",
]
