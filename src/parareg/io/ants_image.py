"""``ants.ANTsImage`` <-> :class:`parareg.Image`, without antspyx as a requirement.

An ANTsImage keeps ITK's geometry: ``origin``, ``spacing`` and a
``direction`` matrix in LPS millimetres. parareg's ``vox2world`` is RAS (as
NIfTI and nibabel), so the two differ by a flip of the first two world axes:
``vox2world = diag(-1, -1[, 1], 1) @ [[direction * spacing, origin], [0, 1]]``.
A 2D ANTsImage lives in ITK's 2D physical space (the x, y rows of the
volume's frame), which both flip.

antspyx is imported only to build an ANTsImage (:func:`to_ants`); reading one
(:func:`from_ants`) needs nothing but the object.
"""

from __future__ import annotations

import numpy as np

from ..image import Image

#: ANTs pixel types that hold label maps (unsigned char, unsigned int)
_LABEL_PIXELTYPES = ("unsigned char", "unsigned int")


def is_ants_image(obj) -> bool:
    """True for an ``ants.ANTsImage`` (checked by type name: antspyx need not be imported)."""
    return any(cls.__name__ == "ANTsImage" and cls.__module__.split(".")[0] == "ants"
               for cls in type(obj).__mro__)


def _lps_to_ras(ndim: int) -> np.ndarray:
    flip = np.ones(ndim + 1)
    flip[:2] = -1.0
    return np.diag(flip)


def from_ants(img, *, name: str = "image", labels: bool | None = None) -> Image:
    """An ``ants.ANTsImage`` as an :class:`Image` (data copied, RAS vox2world).

    Parameters
    ----------
    img : ants.ANTsImage
        Scalar, 2D or 3D.
    name : str
        Names the image in error messages.
    labels : bool, optional
        Keep integer labels. ``None``: labels for the integer pixel types
        (unsigned char, unsigned int), float32 intensities otherwise.
    """
    where = f"{name} (an ANTsImage)"
    components = int(getattr(img, "components", 1))
    if components != 1 or getattr(img, "has_components", False):
        raise ValueError(f"{where} has {components} components per voxel; parareg registers "
                         "scalar images: take one channel first (e.g. ants.split_channels(img)[0])")
    ndim = int(img.dimension)
    if ndim not in (2, 3):
        raise ValueError(f"{where} is {ndim}D; parareg registers 2D or 3D images: take one "
                         "volume first (e.g. ants.ndimage_to_list(img)[0])")
    if labels is None:
        labels = img.pixeltype in _LABEL_PIXELTYPES
    data = np.array(img.numpy(), copy=True)
    data = data if labels else data.astype(np.float32, copy=False)
    spacing = np.asarray(img.spacing, dtype=np.float64)
    lps = np.eye(ndim + 1)
    lps[:ndim, :ndim] = np.asarray(img.direction, dtype=np.float64) * spacing
    lps[:ndim, ndim] = np.asarray(img.origin, dtype=np.float64)
    try:
        return Image(data, _lps_to_ras(ndim) @ lps)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def to_ants(image: Image):
    """``image`` as an ``ants.ANTsImage`` (needs antspyx).

    Intensities become ANTs ``float`` images. Label maps become ``unsigned
    int`` (``unsigned char`` for uint8) when their values are non-negative and
    fit; other label dtypes are refused, as ANTs has no signed integer pixel type.
    """
    try:
        import ants
    except ImportError:
        raise ImportError("Image.to_ants() needs antspyx: pip install antspyx") from None
    ndim = image.ndim
    lps = _lps_to_ras(ndim) @ image.vox2world
    spacing = image.spacing
    direction = lps[:ndim, :ndim] / spacing
    data = image.data
    if image.is_labels:
        if data.dtype != np.uint8:
            low = int(data.min())
            high = int(data.max())
            if low < 0 or high > np.iinfo(np.uint32).max:
                raise ValueError(f"labels in [{low}, {high}] do not fit ANTs' unsigned int "
                                 "pixel type; relabel them to non-negative values first")
            data = data.astype(np.uint32)
    else:
        data = data.astype(np.float32, copy=False)
    return ants.from_numpy(np.ascontiguousarray(data), origin=lps[:ndim, ndim].tolist(),
                           spacing=spacing.tolist(), direction=direction)


__all__ = ["from_ants", "is_ants_image", "to_ants"]
