"""ITK HDF5 transform files (``.h5``): ANTs' ``*Composite.h5`` and ``*InverseComposite.h5``.

The container is read and written with h5py; each linear transform inside is
decoded by the same ITK type table as the text and ``.mat`` files
(:data:`parareg.io.itk.LINEAR_TRANSFORM_TYPES`), so every linear type ANTs
writes is understood, plus ``DisplacementFieldTransform``.

Layout (ITK's ``HDF5TransformIO``)
    ``/TransformGroup/<i>/TransformType`` (a string such as
    ``AffineTransform_double_3_3``), ``.../TransformParameters`` and
    ``.../TransformFixedParameters``. Group 0 of a composite file is
    ``CompositeTransform_<scalar>_N_N`` and holds no parameters; groups 1.. are
    its queue. A displacement field stores its vectors (LPS mm, ITK buffer
    order: x fastest, components interleaved) as the parameters, and its grid
    as the fixed parameters: size, origin, spacing, direction (row-major).

Order
    ITK's composite applies its queue **last first** to a point, so a queue
    ``[Q1, ..., Qk]`` is the chain ``[Qk, ..., Q1]`` of
    :mod:`parareg.transforms.chain` (first acts first). ANTs' forward
    ``Composite.h5`` holds ``[affine, warp]``: the chain ``[warp, affine]``,
    the same as ``-t 1Warp.nii.gz -t 0GenericAffine.mat``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..image import check_matrix
from .itk import _lps_matrix, _parse_type, ras_to_lps
from .outputs import staging_in, write_bytes

#: ITK types of the displacement fields read (base name, before ``_double_N_N``)
FIELD_TYPES = ("DisplacementFieldTransform",)


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise ImportError("reading .h5 transforms needs h5py: pip install h5py") from None
    return h5py


def _text(value) -> str:
    value = np.asarray(value).ravel()
    item = value[0] if value.size else b""
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)


def _lps_sign(ndim: int) -> np.ndarray:
    return np.array([-1.0, -1.0, 1.0][:ndim])


def _field(params, fixed, ndim: int, *, where: str):
    """RAS field ``(*shape, ndim)`` float32 and its RAS vox2world, from ITK parameters."""
    fixed = np.asarray(fixed, dtype=np.float64).ravel()
    expected = ndim + ndim + ndim + ndim * ndim
    if fixed.size != expected:
        raise ValueError(f"{where}: a {ndim}D displacement field needs {expected} fixed "
                         f"parameters (size, origin, spacing, direction), got {fixed.size}")
    size = fixed[:ndim].astype(np.int64)
    origin = fixed[ndim:2 * ndim]
    spacing = fixed[2 * ndim:3 * ndim]
    direction = fixed[3 * ndim:].reshape(ndim, ndim)
    params = np.asarray(params)
    if np.any(size < 1) or params.size != int(np.prod(size)) * ndim:
        raise ValueError(f"{where}: a field of size {size.tolist()} needs "
                         f"{int(np.prod(size)) * ndim} parameters, got {params.size}")
    # ITK buffer order: x fastest, so the C-order shape is reversed; components last
    lps = params.reshape(*size[::-1], ndim).transpose(*range(ndim - 1, -1, -1), ndim)
    field = np.ascontiguousarray(lps * _lps_sign(ndim), dtype=np.float32)
    if not np.all(np.isfinite(field)):
        raise ValueError(f"{where}: the displacement field holds NaN or inf")
    grid = np.eye(ndim + 1)
    grid[:ndim, :ndim] = direction * spacing
    grid[:ndim, ndim] = origin
    flip = np.diag([*_lps_sign(ndim), 1.0])
    try:
        vox2world = check_matrix(flip @ grid, ndim, name="its grid")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return field, vox2world


def read_h5(path, *, ndim: int | None = None) -> list[tuple]:
    """Read an ITK HDF5 transform file as a chain (first acts first on points).

    Parameters
    ----------
    path : str or os.PathLike
        ``.h5``/``.hdf5``: a composite (ANTs ``--write-composite-transform``,
        ANTsPy's ``*Composite.h5``) or a single transform.
    ndim : {2, 3}, optional
        Expected dimension.

    Returns
    -------
    list of tuple
        ``("affine", matrix)`` (RAS, fixed -> moving) or ``("warp", field,
        vox2world)`` (RAS mm on its grid), in chain order.

    Raises
    ------
    ValueError
        A file that is not ITK HDF5, or holds a transform type parareg does not
        read (named).
    """
    h5py = _h5py()
    path = Path(path)
    where = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"path: no such transform file: {where}")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{where} could not be read as an ITK HDF5 transform file: "
                         f"{exc}") from None
    with handle:
        group = handle.get("TransformGroup")
        if group is None:
            raise ValueError(f"{where} is HDF5 but holds no 'TransformGroup': not an ITK "
                             "transform file")
        keys = sorted(group, key=lambda key: int(key) if key.isdigit() else -1)
        entries = []
        for key in keys:
            item = group[key]
            try:
                name = _text(item["TransformType"][()])
            except KeyError:
                raise ValueError(f"{where} group {key} has no TransformType") from None
            params = item["TransformParameters"][()] if "TransformParameters" in item else []
            fixed = (item["TransformFixedParameters"][()]
                     if "TransformFixedParameters" in item else [])
            entries.append((key, name, params, fixed))
    if not entries:
        raise ValueError(f"{where} holds no transform")
    if entries[0][1].startswith("CompositeTransform"):
        entries = entries[1:]
    chain = []
    for key, name, params, fixed in reversed(entries):  # ITK applies the queue last first
        at = f"{where} transform {key} ({name})"
        base, found = _parse_type(name, where=at)
        if ndim is not None and found != ndim:
            raise ValueError(f"{where} holds a {found}D transform ({name}), expected {ndim}D")
        if base in FIELD_TYPES:
            chain.append(("warp", *_field(params, fixed, found, where=at)))
        else:
            lps = _lps_matrix(name, params, fixed, where=at)
            chain.append(("affine", ras_to_lps(lps)))
    return chain


def _string(h5py, handle, name, text) -> None:
    # ITK reads variable-length ASCII strings (a UTF-8 one fails in H5Dread)
    handle.create_dataset(name, data=np.array([text.encode("ascii")], dtype=object),
                          dtype=h5py.string_dtype("ascii"))


def write_h5(chain, path, *, outputs=None) -> Path:
    """Write a chain of affines and displacement fields as an ITK composite ``.h5``.

    Parameters
    ----------
    chain : list of tuple
        As :func:`read_h5` returns: ``("affine", matrix)`` and ``("warp",
        field, vox2world)``, first acting first on points. ANTs reads the file
        back as the same map (``antsApplyTransforms -t path``).
    path : str or os.PathLike
        Ends in ``.h5``. Replaced atomically.
    outputs : parareg.io.OutputSet, optional
        Stage the file in this output set.
    """
    h5py = _h5py()
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(f"path must end in .h5, got {str(path)!r}")
    if not chain:
        raise ValueError("chain is empty: nothing to write")
    ndims = {entry[1].shape[0] - 1 if entry[0] == "affine" else entry[1].shape[-1]
             for entry in chain}
    if len(ndims) != 1:
        raise ValueError(f"chain mixes dimensions {sorted(ndims)}")
    ndim = ndims.pop()
    blocks = []
    for entry in reversed(chain):  # the queue: last to act first
        if entry[0] == "affine":
            lps = ras_to_lps(check_matrix(entry[1], ndim, name="matrix"))
            params = np.concatenate([lps[:ndim, :ndim].ravel(), lps[:ndim, ndim]])
            blocks.append((f"AffineTransform_double_{ndim}_{ndim}", params, np.zeros(ndim)))
        else:
            _, field, vox2world = entry
            vox2world = check_matrix(vox2world, ndim, name="vox2world")
            lps_grid = np.diag([*_lps_sign(ndim), 1.0]) @ vox2world
            spacing = np.sqrt((lps_grid[:ndim, :ndim] ** 2).sum(axis=0))
            direction = lps_grid[:ndim, :ndim] / spacing
            shape = np.asarray(field.shape[:-1])
            fixed = np.concatenate([shape, lps_grid[:ndim, ndim], spacing, direction.ravel()])
            lps = np.asarray(field, np.float64) * _lps_sign(ndim)
            params = lps.transpose(*range(ndim - 1, -1, -1), ndim).ravel()
            blocks.append((f"DisplacementFieldTransform_double_{ndim}_{ndim}", params, fixed))

    buffer = io.BytesIO()  # built in memory: the writer then handles it like any bytes
    with h5py.File(buffer, "w") as handle:
        _string(h5py, handle, "ITKVersion", "parareg")
        _string(h5py, handle, "HDFVersion", f"HDF5 library version: {h5py.version.hdf5_version}")
        group = handle.create_group("TransformGroup")
        head = group.create_group("0")
        _string(h5py, head, "TransformType", f"CompositeTransform_double_{ndim}_{ndim}")
        for number, (name, params, fixed) in enumerate(blocks, start=1):
            item = group.create_group(str(number))
            _string(h5py, item, "TransformType", name)
            item.create_dataset("TransformParameters", data=np.asarray(params, np.float64))
            item.create_dataset("TransformFixedParameters",
                                data=np.asarray(fixed, np.float64))

    if staging_in(outputs) is not None:
        return outputs.add_bytes(path, buffer.getvalue())
    return write_bytes(path, buffer.getvalue())


__all__ = ["FIELD_TYPES", "read_h5", "write_h5"]
