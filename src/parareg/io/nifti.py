"""NIfTI reading and writing through nibabel; files are written by :mod:`parareg.io.outputs`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from ..image import Image
from .outputs import staging_in, write_nifti

if TYPE_CHECKING:
    from .._typing import ArrayLike, MatrixLike, PathLike
    from .outputs import OutputSet

#: integer dtypes a NIfTI-1 file can hold (label maps keep theirs)
_LABEL_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32,
                                              np.int32, np.uint64, np.int64))


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in (".nii.gz", ".nii", ".mgz", ".mgh", ".img", ".hdr"):
        if name.endswith(suffix):
            return suffix
    return path.suffix


def _reduce_to_2d(affine: np.ndarray, kept: list[int]) -> np.ndarray:
    """3x3 in-plane vox2world from a 4x4 one, for the two kept voxel axes.

    The two world rows kept are those the voxel axes mostly span, in world
    order (x before y before z), so the in-plane world frame does not depend
    on how the voxel axes are stored (a transposed slice gets the same frame)
    and a saved 2D image reads back with the matrix it was saved with.
    """
    a, b = kept
    row_a = int(np.argmax(np.abs(affine[:3, a])))
    rows_b = [r for r in range(3) if r != row_a]
    row_b = rows_b[int(np.argmax(np.abs(affine[rows_b, b])))]
    rows = [*sorted((row_a, row_b)), 3]
    return affine[np.ix_(rows, [a, b, 3])]


def load(path: PathLike, *, labels: bool = False) -> Image:
    """Read a NIfTI (or other nibabel-readable) image.

    Parameters
    ----------
    path : str or os.PathLike
        ``.nii``, ``.nii.gz`` (or ``.mgz``) file.
    labels : bool
        Keep integer label values (for segmentations) instead of converting to
        float32 intensities.

    Returns
    -------
    Image
        3D for volumes; 2D for 2D files and single-slice volumes. Trailing
        singleton dimensions (X, Y, Z, 1) are dropped; a true 4D series is an error.

    Examples
    --------
    >>> img = load("t1.nii.gz")  # doctest: +SKIP
    """
    return _load(path, labels=labels, name="path")


def _check_readable(path: Path, name: str) -> None:
    """Raise the error a person can act on for a missing, unreadable or non-file ``path``."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file: {str(path)!r}") from None
    except PermissionError:
        raise PermissionError(f"{name}: permission denied: cannot reach {str(path)!r} (a folder "
                              "on the way is not searchable by this user)") from None
    if path.is_dir():
        raise ValueError(f"{name}: {str(path)!r} is a directory, not an image file")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise PermissionError(f"{name}: permission denied: cannot read {str(path)!r} (check "
                              "its permissions and owner)") from None


class ImageTooLargeError(MemoryError, ValueError):
    """An image whose header declares more voxels than this machine can hold."""


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


def _check_header(img, where: str, *, labels: bool, name: str = "image",
                  path: Path | None = None) -> None:
    """Refuse, before reading any voxel, images parareg cannot hold or that a header misdescribes.

    ``where`` names the image in messages (``"fixed: 'a.nii.gz'"``); ``path``
    (files only) enables the truncation check.
    """
    dtype = img.get_data_dtype()
    get_intent = getattr(img.header, "get_intent", None)
    intent = get_intent()[0] if get_intent is not None else ""
    if dtype.fields is not None or intent in ("vector", "rgb vector", "rgba vector"):
        what = (f"channels {', '.join(dtype.names)}" if dtype.fields is not None
                else f"intent {intent}")
        raise ValueError(f"{where} is an RGB/vector image ({what}); parareg "
                         "registers scalar images: convert it to grey first (e.g. average the "
                         "channels with nibabel)")
    shape = tuple(int(n) for n in img.shape)
    itemsize = dtype.itemsize if labels else 4  # intensities are read as float32
    needed = float(np.prod(shape, dtype=np.float64)) * itemsize
    on_disk = float(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if path is not None and str(path).lower().endswith(".nii"):  # uncompressed: sizes comparable
        size = path.stat().st_size
        offset = int(getattr(img.dataobj, "offset", 0) or 0)
        if size < offset + on_disk:
            raise ValueError(f"{name}: could not read {str(path)!r} as an image: "
                             f"its header declares shape {shape} of {dtype} ({_gib(on_disk)} of "
                             f"data) but the file holds {_gib(size)} in all: the file is "
                             "truncated or its header is corrupt")
    memory = _physical_memory()
    if memory is not None and needed > memory:
        raise ImageTooLargeError(f"{where} declares shape {shape}, "
                                 f"{_gib(needed)} in memory, more than this machine has "
                                 f"({_gib(memory)}): check the header, or crop/downsample "
                                 "the image first")


def _label_data(data: np.ndarray, where: str) -> np.ndarray:
    """Integer label data from what the image holds, never narrowed below what the values need."""
    if np.issubdtype(data.dtype, np.integer):
        return data
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(f"{where} holds {data.dtype} values, not labels")
    if not np.all(np.isfinite(data)) or not np.all(data == np.round(data)):
        raise ValueError(f"{where} holds non-integer values; "
                         "load it with labels=False")
    low, high = float(data.min()), float(data.max())
    for dtype in (np.int32, np.int64, np.uint64):
        info = np.iinfo(dtype)
        if low >= info.min and high <= info.max:
            if high > 2**53 or low < -(2**53):  # beyond float's exact integers
                break
            return data.astype(dtype)
    raise ValueError(f"{where} holds label values in [{low:.17g}, {high:.17g}], "
                     "which its floating-point storage cannot represent exactly as integers; "
                     "store the labels as an integer NIfTI")


def image_from_array(data: ArrayLike, affine: MatrixLike, *, labels: bool,
                     where: str) -> Image:
    """An :class:`Image` from a NIfTI-shaped array and its 4x4 (or in-plane 3x3) vox2world.

    The rules of :func:`load`: trailing singleton axes beyond the third are
    dropped, a single-slice volume becomes 2D (its in-plane matrix taken from
    the 4x4, see :func:`_reduce_to_2d`), a true 4D series is refused, and
    intensities become float32 unless ``labels``. ``where`` names the image in
    messages.
    """
    data = np.asanyarray(data)
    affine = np.asarray(affine, dtype=np.float64)
    shape = data.shape
    while len(shape) > 3 and shape[-1] == 1:
        data = data.reshape(shape[:-1])
        shape = data.shape
    if len(shape) > 3:
        raise ValueError(
            f"{where} is {len(shape)}D with shape {shape}; parareg registers "
            "2D or 3D images: extract one volume first (e.g. nibabel.funcs.four_to_three)"
        )
    if len(shape) == 3 and 1 in shape:
        kept = [axis for axis, n in enumerate(shape) if n > 1]
        if len(kept) != 2:
            raise ValueError(f"{where} has shape {shape}; need a 2D or 3D image")
        data = data.reshape([shape[axis] for axis in kept])
        vox2world = _reduce_to_2d(affine, kept) if affine.shape == (4, 4) else affine
    elif len(shape) == 2:
        vox2world = _reduce_to_2d(affine, [0, 1]) if affine.shape == (4, 4) else affine
    elif len(shape) == 3:
        vox2world = affine
    else:
        raise ValueError(f"{where} has shape {shape}; need a 2D or 3D image")
    if labels:
        data = _label_data(data, where)
    elif data.dtype != np.float32:
        if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
            raise ValueError(f"{where} must hold real numbers, got dtype {data.dtype}")
        data = data.astype(np.float32)
    try:
        return Image(data, vox2world)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def from_nibabel(img: nib.spatialimages.SpatialImage, *, name: str = "image",
                 labels: bool = False, path: Path | None = None) -> Image:
    """A nibabel spatial image (``Nifti1Image``, ``MGHImage``...) as an :class:`Image`.

    The same rules as :func:`load` (which reads a file, then calls this).

    Parameters
    ----------
    img : nibabel.spatialimages.SpatialImage
    name : str
        Names the image in error messages.
    labels : bool
        Keep integer label values instead of float32 intensities.
    path : Path, optional
        The file ``img`` was read from (for messages and the truncation check).
    """
    where = f"{name}: {str(path)!r}" if path is not None else f"{name} (a {type(img).__name__})"
    _check_header(img, where, labels=labels, name=name, path=path)
    data = _read(img, name=name, path=path, dtype=None if labels else np.float32)
    return image_from_array(data, img.affine, labels=labels, where=where)


def _read(img, *, name: str, path: Path | None, dtype) -> np.ndarray:
    """:func:`stored_array` with the errors of :func:`load`."""
    source = repr(str(path)) if path is not None else "it"
    try:
        return stored_array(img, dtype=dtype)
    except MemoryError:
        needed = float(np.prod(img.shape, dtype=np.float64)) * 4
        raise ImageTooLargeError(f"{name}: not enough memory to read {source}: shape "
                                 f"{tuple(img.shape)} needs {_gib(needed)}") from None
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ValueError(f"{name}: could not read {source} as an image: "
                         f"{exc or type(exc).__name__}") from exc


def load_labels_or_intensities(path: PathLike, *, name: str = "path") -> Image:
    """``path`` as a label map if it holds integer values, else as float32 intensities.

    What nearest-neighbour resampling reads (it keeps a label map's integer
    type); the file is read once. Errors as :func:`load` (``name`` names the
    argument).
    """
    path = Path(path)
    _check_readable(path, name)
    img = _open(path, name)
    where = f"{name}: {str(path)!r}"
    _check_header(img, where, labels=False, name=name, path=path)
    data = _read(img, name=name, path=path, dtype=None)
    try:
        return image_from_array(data, img.affine, labels=True, where=where)
    except ValueError:  # non-integer values: intensities
        pass
    proxy = img.dataobj
    if nib.is_proxy(proxy) and proxy.slope == 1.0 and proxy.inter == 0.0:
        data = _as_dtype(data, np.float32)  # unscaled: converted as nibabel converts it
    else:
        data = _read(img, name=name, path=path, dtype=np.float32)
    return image_from_array(data, img.affine, labels=False, where=where)


def _as_dtype(data: np.ndarray, dtype) -> np.ndarray:
    """Unscaled stored data as nibabel's ``get_fdata(dtype=dtype)`` converts it."""
    return data.astype(np.promote_types(data.dtype, dtype), copy=False).astype(dtype, copy=False)


def stored_array(img: nib.Nifti1Image, *,
                 dtype: np.typing.DTypeLike | None = None) -> np.ndarray:
    """``np.asanyarray(img.dataobj)``, or with ``dtype`` ``img.get_fdata(dtype=dtype)``.

    A gzipped file without scaling is inflated in one pass into one buffer
    (:func:`parareg.io.gzip_chunks.read_gzip`: large GIL-free steps, no
    ``GzipFile``) and converted as nibabel converts it; anything else, or a
    file that pass cannot read, goes through nibabel (and its error messages).
    The array is in the file's (Fortran) order.
    """
    proxy = img.dataobj
    raw = None
    if (nib.is_proxy(proxy) and isinstance(proxy.file_like, (str, os.PathLike))
            and str(proxy.file_like).lower().endswith(".gz") and proxy.dtype.fields is None
            and proxy.slope == 1.0 and proxy.inter == 0.0):
        from .gzip_chunks import read_gzip

        shape, offset = tuple(int(n) for n in proxy.shape), int(proxy.offset)
        try:
            raw = read_gzip(proxy.file_like, offset + math.prod(shape) * proxy.dtype.itemsize)
        except (ValueError, OSError):
            raw = None
    if raw is None:
        return np.asanyarray(proxy) if dtype is None else img.get_fdata(dtype=dtype)
    data = np.ndarray(shape, dtype=proxy.dtype, buffer=raw, offset=offset, order=proxy.order)
    return data if dtype is None else _as_dtype(data, dtype)


def _open(path: Path, name: str):
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise ValueError(f"{name}: could not read {str(path)!r} as an image: "
                         f"{exc or type(exc).__name__}") from exc


def load_grid(path: PathLike, *, name: str = "path") -> Image:
    """The grid of the image file ``path`` (shape and vox2world), its voxels not read.

    What a reference image is read for. The rules and errors of :func:`load`
    that the header decides apply (a single-slice volume is 2D, a 4D series
    or a vector image is refused); the image's ``data`` is a read-only array
    of zeros that takes no memory.

    Examples
    --------
    >>> load_grid("fixed.nii.gz", name="reference").shape  # doctest: +SKIP
    (256, 256, 256)
    """
    path = Path(path)
    _check_readable(path, name)
    img = _open(path, name)
    where = f"{name}: {str(path)!r}"
    _check_header(img, where, labels=False, name=name, path=path)
    zeros = np.broadcast_to(np.zeros((), dtype=np.float32), tuple(int(n) for n in img.shape))
    return image_from_array(zeros, img.affine, labels=False, where=where)


def _load(path, *, labels: bool, name: str) -> Image:
    path = Path(path)
    _check_readable(path, name)
    return from_nibabel(_open(path, name), name=name, labels=labels, path=path)


def _embed_affine(image: Image) -> np.ndarray:
    if image.ndim == 3:
        return image.vox2world
    affine = np.eye(4)
    affine[np.ix_([0, 1, 3], [0, 1, 3])] = image.vox2world
    return affine


def _fortran_copy(data: np.ndarray) -> np.ndarray:
    """A C-ordered 2D/3D float32 array in NIfTI's (Fortran) order, by one threaded blocked pass."""
    if not data.flags.c_contiguous or data.flags.f_contiguous:
        return data
    from .layout import field_to_fortran

    spatial = data.reshape(*data.shape, *([1] * (3 - data.ndim)), 1)  # (X, Y, Z, 1)
    return field_to_fortran(spatial, np.ones(1, np.float32)).reshape(data.shape, order="F")


def to_nifti(image: Image) -> nib.Nifti1Image:
    """``image`` as a nibabel ``Nifti1Image`` (qform and sform set).

    Intensities are float32, copied into NIfTI's (Fortran) order so that
    nibabel writes them without a transpose of its own; label maps keep their
    integer dtype (uint8 stays uint8, uint32 stays uint32: every integer type
    NIfTI-1 has) and their array (not copied).
    """
    if not isinstance(image, Image):
        raise TypeError(f"image must be a parareg.Image, got {type(image).__name__}")
    if image.is_labels:
        data = image.data
        if data.dtype not in _LABEL_DTYPES:
            raise ValueError(f"label maps of dtype {data.dtype} cannot be stored in NIfTI; "
                             f"use one of {sorted(str(np.dtype(d)) for d in _LABEL_DTYPES)}")
    else:
        data = _fortran_copy(image.data.astype(np.float32, copy=False))
    nifti = nib.Nifti1Image(data, _embed_affine(image), dtype=data.dtype)
    nifti.set_qform(nifti.affine, code=1)
    nifti.set_sform(nifti.affine, code=1)
    return nifti


def check_nifti_path(path: PathLike, *, name: str = "path") -> Path:
    """``path`` as a Path, which must end in ``.nii`` or ``.nii.gz``."""
    path = Path(path)
    if _suffix(path) not in (".nii", ".nii.gz"):
        raise ValueError(f"{name} must end in .nii or .nii.gz, got {str(path)!r}")
    return path


def save(image: Image, path: PathLike, *, num_threads: int | None = None,
         outputs: OutputSet | None = None) -> Path:
    """Write ``image`` to ``path`` as NIfTI (``.nii`` or ``.nii.gz``), atomically.

    Intensities are written as float32; label maps keep their integer dtype.
    The file is replaced as described in :mod:`parareg.io.outputs` (a crash
    leaves the earlier file or the new one, never a torn one; the mode
    follows the umask).

    Parameters
    ----------
    image : Image
    path : str or os.PathLike
        ``.nii`` or ``.nii.gz``.
    num_threads : int, optional
        Compression threads (``None``: :func:`parareg.get_num_threads`).
    outputs : parareg.io.OutputSet, optional
        Stage the file in this output set instead of writing it at once.

    Returns
    -------
    Path

    Examples
    --------
    >>> save(img, "out.nii.gz")  # doctest: +SKIP
    """
    path = check_nifti_path(path)
    nifti = to_nifti(image)
    if staging_in(outputs) is not None:
        return outputs.add_nifti(path, nifti)
    return write_nifti(path, nifti, num_threads=num_threads)
