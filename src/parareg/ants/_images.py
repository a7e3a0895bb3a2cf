"""The part of ANTsPy's image API a registration script touches, without antspyx.

:class:`ANTsImage` is a thin view of a :class:`parareg.Image` with ANTsPy's
attribute names and meanings: ``origin``, ``spacing`` and ``direction`` are
ITK's (LPS millimetres), ``numpy()`` gives the voxels in the file's order.
A parareg image is not given these attributes itself because parareg's world
is RAS: ``image.vox2world`` and ``ANTsImage.origin`` differ by a flip of the
first two axes, and one object carrying both would invite mixing them.

A real ``ants.ANTsImage`` is accepted wherever an image is (antspyx is then
already imported by the caller); functions given one return real ones.
"""

from __future__ import annotations

import numpy as np

from ..image import Image, as_image
from ..io.ants_image import _lps_to_ras, is_ants_image

#: ANTsPy pixel types parareg reads as label maps (the others as float32 intensities)
_LABEL_PIXELTYPES = ("unsigned char", "unsigned int")
_PIXELTYPES = ("float", "double", *_LABEL_PIXELTYPES)


class ANTsImage:
    """A parareg image seen through ANTsPy's ``ANTsImage`` attributes.

    Parameters
    ----------
    image : parareg.Image

    Attributes
    ----------
    image : parareg.Image
        The image itself (RAS ``vox2world``), for the native API.

    Examples
    --------
    >>> import numpy as np
    >>> img = from_numpy(np.zeros((4, 5), np.float32), spacing=(2.0, 1.0))
    >>> img.shape, img.dimension, img.spacing, img.origin
    ((4, 5), 2, (2.0, 1.0), (0.0, 0.0))
    """

    __slots__ = ("image",)

    def __init__(self, image: Image):
        if not isinstance(image, Image):
            raise TypeError(f"image must be a parareg.Image, got {type(image).__name__}")
        self.image = image

    @property
    def _lps(self) -> np.ndarray:
        return _lps_to_ras(self.image.ndim) @ self.image.vox2world

    @property
    def shape(self) -> tuple[int, ...]:
        return self.image.shape

    @property
    def dimension(self) -> int:
        return self.image.ndim

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size along each axis, millimetres."""
        return tuple(float(s) for s in self.image.spacing)

    @property
    def origin(self) -> tuple[float, ...]:
        """World position of voxel 0, ITK's LPS millimetres."""
        return tuple(float(v) for v in self._lps[:-1, -1])

    @property
    def direction(self) -> np.ndarray:
        """Unit axis directions as columns, ITK's LPS frame, shape (dimension, dimension)."""
        ndim = self.image.ndim
        return self._lps[:ndim, :ndim] / self.image.spacing

    @property
    def pixeltype(self) -> str:
        return "unsigned int" if self.image.is_labels else "float"

    @property
    def dtype(self) -> str:
        return str(self.image.data.dtype)

    components = 1
    has_components = False
    is_rgb = False

    def numpy(self) -> np.ndarray:
        """A copy of the voxels, shape :attr:`shape` (ANTsPy's array order)."""
        return np.array(self.image.data, copy=True)

    def view(self) -> np.ndarray:
        """The voxels themselves (writing to it changes the image)."""
        return self.image.data

    def clone(self, pixeltype=None) -> "ANTsImage":
        """A copy; ``pixeltype`` as ANTsPy's ("float", "double", "unsigned char"/"int")."""
        return ANTsImage(_with_pixeltype(self.image.with_data(self.image.data.copy()),
                                         pixeltype, name="pixeltype"))

    def to_file(self, filename) -> None:
        """Write the image as NIfTI (:func:`image_write`)."""
        image_write(self, filename)

    def to_parareg(self) -> Image:
        """The :class:`parareg.Image` (also :attr:`image`)."""
        return self.image

    def __repr__(self) -> str:
        return (f"parareg.ants.ANTsImage (pixeltype {self.pixeltype}, dimension "
                f"{self.dimension}, shape {self.shape}, spacing {self.spacing}, origin "
                f"{tuple(round(v, 4) for v in self.origin)})")


def _with_pixeltype(image: Image, pixeltype, *, name: str) -> Image:
    if pixeltype is None:
        return image
    if pixeltype not in _PIXELTYPES:
        raise ValueError(f"{name} must be one of {list(_PIXELTYPES)} or None, got {pixeltype!r}")
    if pixeltype in _LABEL_PIXELTYPES:
        dtype = np.uint8 if pixeltype == "unsigned char" else np.uint32
        return image.with_data(np.clip(np.rint(image.data), 0, np.iinfo(dtype).max).astype(dtype))
    return image.with_data(image.data.astype(np.float32, copy=False))


def as_input(obj, *, name: str, labels: bool = False) -> Image:
    """Any image parareg.ants accepts (its own, a real ANTsImage, a path...) as a parareg Image."""
    if isinstance(obj, ANTsImage):
        return obj.image
    if isinstance(obj, np.ndarray):
        raise TypeError(f"{name} is an ndarray without a grid; make it an image as in ANTsPy: "
                        "from_numpy(array, origin=..., spacing=..., direction=...)")
    return as_image(obj, name=name, labels=labels)


def as_output(image: Image, like, *, same_pixeltype: bool = True):
    """``image`` as the kind of image the caller holds: a real ANTsImage for a real ``like``.

    With ``same_pixeltype`` it takes ``like``'s pixel type, as ANTsPy's outputs
    take the fixed image's.
    """
    out = image.to_ants() if is_ants_image(like) else ANTsImage(image)
    pixeltype = getattr(like, "pixeltype", None)
    if same_pixeltype and pixeltype not in (None, out.pixeltype):
        out = out.clone(pixeltype)
    return out


def image_read(filename, dimension=None, pixeltype="float", reorient=False) -> ANTsImage:
    """Read a NIfTI image as :class:`ANTsImage`, as ``ants.image_read`` does.

    Parameters
    ----------
    filename : str or os.PathLike
        ``.nii`` or ``.nii.gz``; a single-slice volume is read as 2D (as
        :func:`parareg.load`).
    dimension : {2, 3}, optional
        Expected dimension; another one is an error (ANTsPy would convert).
    pixeltype : {"float", "double", "unsigned char", "unsigned int"}
        The integer types read a label map (integers kept).
    reorient : False
        ANTsPy's reorientation is not offered.

    Examples
    --------
    >>> img = image_read("t1.nii.gz")  # doctest: +SKIP
    """
    if reorient:
        raise ValueError(f"image_read: reorient={reorient!r} is not offered by parareg.ants; "
                         "read the image as stored (reorient=False)")
    if pixeltype not in _PIXELTYPES:
        raise ValueError(f"pixeltype must be one of {list(_PIXELTYPES)}, got {pixeltype!r}")
    image = as_image(filename, name="filename", labels=pixeltype in _LABEL_PIXELTYPES)
    if dimension is not None and dimension != image.ndim:
        raise ValueError(f"dimension={dimension!r} but {str(filename)!r} holds a "
                         f"{image.ndim}D image; pass dimension=None")
    return ANTsImage(image)


def image_write(image, filename, ri: bool = False):
    """Write ``image`` (an :class:`ANTsImage`, a real one or a parareg Image) as NIfTI.

    The file is written atomically by parareg's writer (:func:`parareg.save`).
    Returns ``image`` when ``ri`` is true, as ANTsPy does.
    """
    from ..io.nifti import save

    save(as_input(image, name="image"), filename)
    return image if ri else None


def from_numpy(data, origin=None, spacing=None, direction=None, has_components=False,
               is_rgb=False) -> ANTsImage:
    """An :class:`ANTsImage` from an array and ITK geometry (LPS), as ``ants.from_numpy``.

    Parameters
    ----------
    data : ndarray, shape (X, Y) or (X, Y, Z)
    origin : sequence of float, optional
        LPS millimetres of voxel 0 (default zeros).
    spacing : sequence of float, optional
        Millimetres (default ones).
    direction : ndarray, shape (ndim, ndim), optional
        Axis directions as columns, LPS (default identity).
    has_components, is_rgb : False
        Vector images are not offered (parareg registers scalar images).
    """
    if has_components or is_rgb:
        raise ValueError("from_numpy: has_components/is_rgb images are not offered by "
                         "parareg.ants, which registers scalar images; pass one channel "
                         "(e.g. data[..., 0])")
    data = np.asarray(data)
    ndim = data.ndim
    if ndim not in (2, 3):
        raise ValueError(f"from_numpy: data must be 2D or 3D, got shape {data.shape}")
    values = {}
    for key, value, default in (("origin", origin, 0.0), ("spacing", spacing, 1.0)):
        value = np.full(ndim, default) if value is None else np.asarray(value, np.float64)
        if value.shape != (ndim,):
            raise ValueError(f"from_numpy: {key} must hold {ndim} numbers for a {ndim}D array, "
                             f"got {np.shape(value)}")
        values[key] = value
    direction = np.eye(ndim) if direction is None else np.asarray(direction, np.float64)
    if direction.shape != (ndim, ndim):
        raise ValueError(f"from_numpy: direction must be {ndim}x{ndim}, got {direction.shape}")
    lps = np.eye(ndim + 1)
    lps[:ndim, :ndim] = direction * values["spacing"]
    lps[:ndim, ndim] = values["origin"]
    return ANTsImage(Image(data, _lps_to_ras(ndim) @ lps))


__all__ = ["ANTsImage", "as_input", "as_output", "from_numpy", "image_read", "image_write"]
