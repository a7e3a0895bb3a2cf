"""Reading and writing images (NIfTI via nibabel) and ITK/ANTs transform files."""

from .itk import affine_map_from_itk, affine_map_to_itk, read_affine, write_affine
from .itk_warp import read_warp, write_warp
from .nifti import load, save
from .outputs import (
    OutputSet,
    OutputWriteError,
    recover,
    write_bytes,
    write_file,
    write_nifti,
    write_text,
)

__all__ = [
    "affine_map_from_itk",
    "affine_map_to_itk",
    "OutputSet",
    "OutputWriteError",
    "load",
    "read_affine",
    "read_warp",
    "recover",
    "save",
    "write_affine",
    "write_bytes",
    "write_file",
    "write_nifti",
    "write_text",
    "write_warp",
]
