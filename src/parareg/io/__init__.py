"""Reading and writing images (NIfTI via nibabel)."""

from .nifti import atomic_write, load, save

__all__ = ["atomic_write", "load", "save"]
