"""Linear transforms (fixed world -> moving world) and their initialisers."""

from .init import center_of_mass, geometric_centers, image_center, origins
from .linear import (
    TRANSFORMS,
    AffineTransform,
    LinearTransform,
    RigidTransform,
    SimilarityTransform,
    TranslationTransform,
    get_transform,
)

__all__ = [
    "TRANSFORMS",
    "AffineTransform",
    "LinearTransform",
    "RigidTransform",
    "SimilarityTransform",
    "TranslationTransform",
    "center_of_mass",
    "geometric_centers",
    "get_transform",
    "image_center",
    "origins",
]
