"""Type aliases of the public API's annotations (for type checkers and readers only).

Modules import them under ``typing.TYPE_CHECKING`` with ``from __future__ import
annotations``, so they cost nothing at run time.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .image import Image

#: a file name
PathLike = Union[str, "os.PathLike[str]"]
#: anything the public functions read as an image: an Image, a path, and (see
#: :func:`parareg.image.as_image`) the other image types it converts
ImageLike = Union["Image", PathLike, Any]
#: a mask: an Image, an array on its image's grid, or a path
MaskLike = Union["Image", ArrayLike, PathLike]
#: a homogeneous matrix, shape (ndim + 1, ndim + 1)
MatrixLike = ArrayLike

__all__ = ["ArrayLike", "ImageLike", "MaskLike", "MatrixLike", "PathLike"]
