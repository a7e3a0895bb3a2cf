"""Registration drivers: pyramids, optimisers, the affine pipeline."""

from .affine import (
    DEFAULT_LEVELS,
    DEFAULT_PIPELINE,
    AffineMap,
    AffineRegistration,
    RegistrationError,
    RegistrationWarning,
    affine_registration,
)

__all__ = [
    "DEFAULT_LEVELS",
    "DEFAULT_PIPELINE",
    "AffineMap",
    "AffineRegistration",
    "RegistrationError",
    "RegistrationWarning",
    "affine_registration",
]
