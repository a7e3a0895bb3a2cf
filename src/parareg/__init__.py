"""parareg: fast, multi-threaded, reproducible medical image registration.

Results are bit-identical whatever the thread count: work is split into
units fixed by the data, never by the threads, and reduced in unit order.
"""

from .gradients import gradient
from .image import Image
from .io.nifti import load, save
from .parallel import get_num_threads, set_num_threads, threads
from .registration import (
    AffineMap,
    AffineRegistration,
    RegistrationResult,
    SymmetricDiffeomorphicRegistration,
    affine_registration,
    register,
    syn_registration,
)
from .transforms.diffeomorphic import DiffeomorphicMap
from .resampling import resample

__version__ = "0.1.0"

__all__ = [
    "AffineMap",
    "AffineRegistration",
    "DiffeomorphicMap",
    "RegistrationResult",
    "SymmetricDiffeomorphicRegistration",
    "register",
    "syn_registration",
    "affine_registration",
    "Image",
    "__version__",
    "get_num_threads",
    "gradient",
    "load",
    "resample",
    "save",
    "set_num_threads",
    "threads",
]
