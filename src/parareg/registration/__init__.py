"""Registration drivers: pyramids, optimisers, the affine pipeline."""

from .affine import (
    DEFAULT_LEVELS,
    DEFAULT_PIPELINE,
    AffineMap,
    AffineRegistration,
    PreparedPair,
    RegistrationError,
    RegistrationWarning,
    affine_registration,
)
from .channels import Channel
from .pipeline import SYN_PRESETS, RegistrationResult, register
from .syn import (
    DEFAULT_SYN_LEVELS,
    SymmetricDiffeomorphicRegistration,
    SyNError,
    syn_registration,
)

__all__ = [
    "Channel",
    "DEFAULT_SYN_LEVELS",
    "SYN_PRESETS",
    "RegistrationResult",
    "SymmetricDiffeomorphicRegistration",
    "SyNError",
    "register",
    "syn_registration",
    "DEFAULT_LEVELS",
    "DEFAULT_PIPELINE",
    "AffineMap",
    "AffineRegistration",
    "PreparedPair",
    "RegistrationError",
    "RegistrationWarning",
    "affine_registration",
]
