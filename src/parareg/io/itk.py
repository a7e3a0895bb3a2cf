"""ITK/ANTs linear transform files: text ``.txt``/``.tfm`` and binary MATLAB ``.mat``.

Conventions
-----------
direction
    An ITK transform maps points of the **fixed** (output, reference) space to
    the **moving** space -- the pull convention of :func:`parareg.resample`
    and of :attr:`parareg.AffineMap.matrix`. No inversion happens here: the
    matrix read from a file is the ``affine`` to pass to ``resample(moving,
    fixed, affine=...)``, exactly as ``antsApplyTransforms -t file`` uses it.
    (ANTs' ``[file,1]`` inverse is a command-line matter, not handled here.)
physical space
    ITK works in LPS millimetres, parareg in the NIfTI RAS+ millimetres of the
    file. With ``F = diag(-1, -1, 1, 1)`` (2D: ``diag(-1, -1, 1)``, ITK's 2D
    plane being NIfTI's x-y plane with both axes flipped),
    ``M_ras = F @ M_lps @ F`` and back.
parameters
    A matrix-offset transform is ``y = A (x - c) + c + t`` with ``A`` the
    matrix, ``t`` the translation (``Parameters``) and ``c`` the center
    (``FixedParameters``): ``offset = t + c - A c``. The center changes the
    parameters, not the map.

Files
-----
``.txt``/``.tfm``
    ``#Insight Transform File V1.0`` then, per transform, ``Transform: <type>``,
    ``Parameters: ...``, ``FixedParameters: ...``. Every ITK linear type below
    is read, in ``double`` or ``float``, and a ``CompositeTransform`` of them
    (``T0(T1(...(x)))``, the file order). parareg writes
    ``AffineTransform_double_N_N``.
``.mat``
    MATLAB v4, as ANTs writes ``*GenericAffine.mat``: one variable named after
    the transform type (e.g. ``AffineTransform_double_3_3``, shape (12, 1):
    the matrix row-major then the translation) and ``fixed`` (the center).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..image import as_grid, check_matrix
from .outputs import staging_in, write_bytes, write_file

__all__ = [
    "LINEAR_TRANSFORM_TYPES",
    "affine_map_from_itk",
    "affine_map_to_itk",
    "read_affine",
    "ras_to_lps",
    "write_affine",
]

#: file suffix -> format
_TEXT_SUFFIXES = (".txt", ".tfm")
_MAT_SUFFIXES = (".mat",)

_TYPE_RE = re.compile(
    r"^(?P<base>[A-Za-z0-9]+?)_(?P<scalar>double|float)_(?P<nin>\d)_(?P<nout>\d)$")
_HEADER = "#Insight Transform File V1.0"


# --- LPS <-> RAS -------------------------------------------------------------------------


def ras_to_lps(matrix) -> np.ndarray:
    """Conjugate a homogeneous world matrix between RAS and LPS: ``F @ matrix @ F``.

    ``F = diag(-1, -1, 1, 1)`` (3D) or ``diag(-1, -1, 1)`` (2D) is its own
    inverse, so the same function converts LPS to RAS.

    Parameters
    ----------
    matrix : ndarray, shape (3, 3) or (4, 4)

    Returns
    -------
    ndarray, same shape, float64

    Examples
    --------
    >>> import numpy as np
    >>> shift = np.eye(4); shift[:3, 3] = [1.0, 2.0, 3.0]   # +1 mm towards Right in RAS
    >>> ras_to_lps(shift)[:3, 3].tolist()                     # = -1 mm towards Left in LPS
    [-1.0, -2.0, 3.0]
    """
    m = np.asarray(matrix, dtype=np.float64)
    flip = _flip(m.shape[0] - 1)
    return flip @ m @ flip


def _flip(ndim: int) -> np.ndarray:
    return np.diag([-1.0, -1.0] + [1.0] * (ndim - 2) + [1.0])


# --- parameterisations (ITK, LPS) ---------------------------------------------------------
# Each reader takes (params, fixed, ndim) and returns (A, center, translation), so that
# y = A (x - center) + center + translation.


def _rotation_2d(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _euler_3d(ax: float, ay: float, az: float, zyx: bool) -> np.ndarray:
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
    ry = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    rz = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
    return rz @ ry @ rx if zyx else rz @ rx @ ry


def _quaternion_matrix(x: float, y: float, z: float, w: float) -> np.ndarray:
    """ITK's matrix of the quaternion ``(x, y, z, w)``: ``|q|^2`` times its rotation.

    ITK does not normalise a ``QuaternionRigidTransform``'s quaternion, so a
    non-unit one also scales by ``|q|^2``; a unit one is a pure rotation.
    """
    return np.array([
        [w * w + x * x - y * y - z * z, 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), w * w - x * x + y * y - z * z, 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), w * w - x * x - y * y + z * z],
    ])


def _versor_matrix(v) -> np.ndarray:
    """Rotation of the versor whose vector part is ``v`` (ITK: ``w = sqrt(1 - |v|^2)``)."""
    v = np.asarray(v, dtype=np.float64)
    norm = float(np.sqrt(v @ v))
    if norm >= 1.0 - 1e-10:  # ITK rescales a too-long vector part just inside the unit ball
        v = v / (norm + 1e-10 * norm)
    w = math.sqrt(max(0.0, 1.0 - float(v @ v)))
    return _quaternion_matrix(v[0], v[1], v[2], w)


def _center(fixed, ndim: int) -> np.ndarray:
    return np.asarray(fixed[:ndim], dtype=np.float64) if len(fixed) else np.zeros(ndim)


def _matrix_translation(p, f, n):
    return p[: n * n].reshape(n, n), _center(f, n), p[n * n:]


def _centered_affine(p, f, n):
    return p[: n * n].reshape(n, n), p[n * n: n * n + n], p[n * n + n:]


def _translation(p, f, n):
    return np.eye(n), np.zeros(n), p


def _identity(p, f, n):
    return np.eye(n), np.zeros(n), np.zeros(n)


def _scale(p, f, n):
    return np.diag(p), _center(f, n), np.zeros(n)


def _scale_log(p, f, n):
    return np.diag(np.exp(p)), _center(f, n), np.zeros(n)


def _rigid_2d(p, f, n):
    return _rotation_2d(p[0]), _center(f, 2), p[1:3]


def _similarity_2d(p, f, n):
    return p[0] * _rotation_2d(p[1]), _center(f, 2), p[2:4]


def _centered_rigid_2d(p, f, n):
    return _rotation_2d(p[0]), p[1:3], p[3:5]


def _centered_similarity_2d(p, f, n):
    return p[0] * _rotation_2d(p[1]), p[2:4], p[4:6]


def _euler_3d_params(p, f, n):
    zyx = len(f) > 3 and f[3] != 0.0
    return _euler_3d(p[0], p[1], p[2], zyx), _center(f, 3), p[3:6]


def _centered_euler_3d(p, f, n):
    zyx = len(f) > 3 and f[3] != 0.0
    return _euler_3d(p[0], p[1], p[2], zyx), p[3:6], p[6:9]


def _versor(p, f, n):
    return _versor_matrix(p[:3]), _center(f, 3), np.zeros(3)


def _versor_rigid(p, f, n):
    return _versor_matrix(p[:3]), _center(f, 3), p[3:6]


def _similarity_3d(p, f, n):
    return p[6] * _versor_matrix(p[:3]), _center(f, 3), p[3:6]


def _scale_versor(p, f, n):
    # ITK adds (scale - 1) to the rotation's diagonal; it does not multiply.
    return _versor_matrix(p[:3]) + np.diag(p[6:9] - 1.0), _center(f, 3), p[3:6]


def _quaternion_rigid(p, f, n):
    return _quaternion_matrix(*p[:4]), _center(f, 3), p[4:7]


class _Parameterisation(NamedTuple):
    """How one ITK linear type stores its map (LPS)."""

    dims: tuple[int, ...]  #: dimensions it exists in
    n_params: Callable[[int], int]  #: ndim -> number of Parameters
    n_fixed: Callable[[int], tuple[int, ...]]  #: ndim -> accepted FixedParameters counts
    read: Callable  #: (params, fixed, ndim) -> (matrix, center, translation)


def _fixed(*counts):
    return lambda n: counts


def _center_or_none(n):
    return (0, n)


def _params(count):
    return lambda n: count


_P = _Parameterisation
_BOTH, _2D, _3D = (2, 3), (2,), (3,)

#: ITK type name (without ``_double_N_N``) -> its parameterisation
LINEAR_TRANSFORM_TYPES = {
    "AffineTransform": _P(_BOTH, lambda n: n * n + n, _center_or_none, _matrix_translation),
    "MatrixOffsetTransformBase": _P(_BOTH, lambda n: n * n + n, _center_or_none,
                                    _matrix_translation),
    "CenteredAffineTransform": _P(_BOTH, lambda n: n * n + 2 * n, _center_or_none,
                                  _centered_affine),
    "Rigid3DTransform": _P(_3D, _params(12), _fixed(0, 3), _matrix_translation),
    "TranslationTransform": _P(_BOTH, lambda n: n, _fixed(0), _translation),
    "IdentityTransform": _P(_BOTH, _params(0), _fixed(0), _identity),
    "ScaleTransform": _P(_BOTH, lambda n: n, _center_or_none, _scale),
    "ScaleLogarithmicTransform": _P(_BOTH, lambda n: n, _center_or_none, _scale_log),
    "Rigid2DTransform": _P(_2D, _params(3), _fixed(0, 2), _rigid_2d),
    "Euler2DTransform": _P(_2D, _params(3), _fixed(0, 2), _rigid_2d),
    "Similarity2DTransform": _P(_2D, _params(4), _fixed(0, 2), _similarity_2d),
    "CenteredRigid2DTransform": _P(_2D, _params(5), _fixed(0, 2), _centered_rigid_2d),
    "CenteredSimilarity2DTransform": _P(_2D, _params(6), _fixed(0, 2), _centered_similarity_2d),
    # Euler types store (center, ComputeZYX flag); older files omit the flag
    "Euler3DTransform": _P(_3D, _params(6), _fixed(0, 3, 4), _euler_3d_params),
    "CenteredEuler3DTransform": _P(_3D, _params(9), _fixed(0, 3, 4), _centered_euler_3d),
    "VersorTransform": _P(_3D, _params(3), _fixed(0, 3), _versor),
    "VersorRigid3DTransform": _P(_3D, _params(6), _fixed(0, 3), _versor_rigid),
    "Similarity3DTransform": _P(_3D, _params(7), _fixed(0, 3), _similarity_3d),
    "ScaleVersor3DTransform": _P(_3D, _params(9), _fixed(0, 3), _scale_versor),
    "QuaternionRigidTransform": _P(_3D, _params(7), _fixed(0, 3), _quaternion_rigid),
}


def _parse_type(name: str, *, where: str) -> tuple[str, int]:
    """``(base type, ndim)`` of an ITK type name like ``AffineTransform_double_3_3``."""
    match = _TYPE_RE.match(name)
    if match is None:
        raise ValueError(f"{where}: {name!r} is not an ITK transform type name "
                         "(expected e.g. 'AffineTransform_double_3_3')")
    base, nin, nout = match["base"], int(match["nin"]), int(match["nout"])
    if nin != nout or nin not in (2, 3):
        raise ValueError(f"{where}: {name!r} maps {nin}D to {nout}D points; parareg reads "
                         "2D->2D and 3D->3D transforms")
    return base, nin


def _lps_matrix(name: str, params, fixed, *, where: str) -> np.ndarray:
    """The homogeneous LPS fixed->moving matrix of one linear ITK transform."""
    base, ndim = _parse_type(name, where=where)
    if base not in LINEAR_TRANSFORM_TYPES:
        kind = ("a non-linear transform" if "Displacement" in base or "BSpline" in base
                or "Velocity" in base else "an unsupported transform type")
        raise ValueError(f"{where}: {name!r} is {kind}; parareg reads the linear types "
                         f"{sorted(LINEAR_TRANSFORM_TYPES)}")
    dims, n_params, n_fixed, reader = LINEAR_TRANSFORM_TYPES[base]
    if ndim not in dims:
        raise ValueError(f"{where}: {base} exists only in {dims[0]}D, got {name!r}")
    params = np.asarray(params, dtype=np.float64).ravel()
    fixed = np.asarray(fixed, dtype=np.float64).ravel()
    if params.size != n_params(ndim):
        raise ValueError(f"{where}: {name} needs {n_params(ndim)} parameters, "
                         f"got {params.size}")
    if fixed.size not in n_fixed(ndim):
        raise ValueError(f"{where}: {name} needs {' or '.join(map(str, n_fixed(ndim)))} "
                         f"fixed parameters, got {fixed.size}")
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(fixed))):
        raise ValueError(f"{where}: {name} has NaN or inf parameters")
    linear, center, translation = reader(params, fixed, ndim)
    matrix = np.eye(ndim + 1)
    matrix[:ndim, :ndim] = linear
    matrix[:ndim, ndim] = translation + center - linear @ center
    return matrix


# --- text files ----------------------------------------------------------------------------


def _parse_numbers(text: str, *, where: str) -> np.ndarray:
    try:
        return np.array([float(tok) for tok in text.split()], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: expected numbers, got {text.strip()!r}") from None


def _read_text(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a text ITK transform file (not UTF-8 text); "
                         "a binary ANTs transform must end in .mat") from None
    blocks: list[dict] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{str(path)!r} line {number}"
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or key not in ("Transform", "Parameters", "FixedParameters"):
            raise ValueError(f"{where}: expected 'Transform:', 'Parameters:' or "
                             f"'FixedParameters:', got {line!r}")
        if key == "Transform":
            blocks.append({"name": value.strip(), "where": where,
                           "Parameters": None, "FixedParameters": None})
            continue
        if not blocks:
            raise ValueError(f"{where}: {key} before any 'Transform:' line")
        if blocks[-1][key] is not None:
            raise ValueError(f"{where}: a second {key} line for one transform")
        blocks[-1][key] = _parse_numbers(value, where=where)
    if not blocks:
        raise ValueError(f"{str(path)!r} holds no 'Transform:' line; not an ITK transform file")
    for block in blocks:
        if block["Parameters"] is None:
            block["Parameters"] = np.zeros(0)
        if block["FixedParameters"] is None:
            block["FixedParameters"] = np.zeros(0)
    first = blocks[0]
    if first["name"].startswith("CompositeTransform_"):
        _, ndim = _parse_type(first["name"], where=first["where"])
        components = blocks[1:]
        if not components:
            raise ValueError(f"{first['where']}: an empty CompositeTransform")
    elif len(blocks) > 1:
        raise ValueError(f"{str(path)!r} holds {len(blocks)} transforms without a "
                         "CompositeTransform header; parareg reads one transform or a composite")
    else:
        components = blocks
    # ITK's CompositeTransform applies the last transform of its queue (file order) first.
    matrix = None
    for block in components:
        if block["name"].startswith("CompositeTransform_"):
            raise ValueError(f"{block['where']}: nested CompositeTransform is not supported")
        m = _lps_matrix(block["name"], block["Parameters"], block["FixedParameters"],
                        where=block["where"])
        if matrix is not None and m.shape != matrix.shape:
            raise ValueError(f"{block['where']}: {block['name']} mixes 2D and 3D transforms")
        matrix = m if matrix is None else matrix @ m
    return matrix


def _format_numbers(values) -> str:
    return " ".join(repr(float(v)) for v in values)


def _text(name: str, params, fixed) -> str:
    return (f"{_HEADER}\n#Transform 0\nTransform: {name}\n"
            f"Parameters: {_format_numbers(params)}\n"
            f"FixedParameters: {_format_numbers(fixed)}\n")


# --- MATLAB files --------------------------------------------------------------------------


def _read_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        contents = loadmat(str(path), appendmat=False)
    except Exception as exc:  # scipy raises several types for a corrupt or foreign file
        raise ValueError(f"{str(path)!r} could not be read as a MATLAB transform file: "
                         f"{exc}") from exc
    names = [key for key in contents if not key.startswith("__") and key != "fixed"]
    if len(names) != 1:
        raise ValueError(f"{str(path)!r} must hold one transform variable and 'fixed', "
                         f"got variables {sorted(k for k in contents if not k.startswith('__'))}")
    fixed = contents.get("fixed", np.zeros(0))
    return _lps_matrix(names[0], contents[names[0]], fixed,
                       where=f"{str(path)!r} variable {names[0]!r}")


# --- public API ----------------------------------------------------------------------------


def _format_of(path: Path, *, name: str) -> str:
    suffix = path.suffix.lower()
    if suffix in _TEXT_SUFFIXES:
        return "text"
    if suffix in _MAT_SUFFIXES:
        return "mat"
    raise ValueError(f"{name} must end in .mat (binary, as ANTs writes) or .txt/.tfm "
                     f"(ITK text), got {str(path)!r}")


def read_affine(path, *, ndim: int | None = None) -> np.ndarray:
    """Read an ITK/ANTs linear transform as a parareg world matrix (RAS, fixed -> moving).

    Parameters
    ----------
    path : str or os.PathLike
        ``.mat`` (MATLAB v4, e.g. ANTs' ``*GenericAffine.mat``) or ``.txt``/``.tfm``
        (``#Insight Transform File V1.0``). Any ITK matrix-offset type
        (``AffineTransform``, ``MatrixOffsetTransformBase``, ``Euler3DTransform``,
        ``VersorRigid3DTransform``, ``Similarity3DTransform``,
        ``Euler2DTransform``, ... see :data:`LINEAR_TRANSFORM_TYPES`), or a text
        ``CompositeTransform`` of them. A file of plain numbers is greedy's or
        c3d's RAS matrix (:mod:`parareg.io.matrices`; FSL matrices need their
        images: :func:`parareg.io.matrices.read_fsl`).
    ndim : {2, 3}, optional
        Expected dimension; a file of another dimension is an error.

    Returns
    -------
    ndarray, shape (ndim + 1, ndim + 1), float64
        Maps fixed world points (RAS mm) to moving world points: pass it as
        ``affine`` to ``parareg.resample(moving, fixed, affine=...)``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        An unknown suffix, transform type or dimension, a malformed file
        (naming the line or variable), or a non-invertible matrix.

    Examples
    --------
    >>> m = read_affine("study1_T1W_intrastudy_to_FLAIR.txt")  # doctest: +SKIP
    >>> moved = parareg.resample(t1, flair, affine=m)          # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no such transform file: {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"path: {str(path)!r} is a directory, not a transform file")
    if ndim is not None and ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    from .matrices import numeric_rows, read_ras_matrix

    if numeric_rows(path) is not None:  # greedy / c3d: a RAS text matrix, fixed -> moving
        return read_ras_matrix(path, ndim=ndim)
    lps = _read_mat(path) if _format_of(path, name="path") == "mat" else _read_text(path)
    found = lps.shape[0] - 1
    if ndim is not None and found != ndim:
        raise ValueError(f"{str(path)!r} holds a {found}D transform, expected {ndim}D")
    return check_matrix(ras_to_lps(lps), found, name=f"the transform in {str(path)!r}")


def write_affine(matrix, path, *, center=None, outputs=None) -> Path:
    """Write a parareg world matrix as an ITK ``AffineTransform_double_N_N`` file.

    Parameters
    ----------
    matrix : ndarray, shape (3, 3) or (4, 4)
        Fixed world (RAS mm) -> moving world, as :func:`read_affine` returns.
    path : str or os.PathLike
        ``.mat`` writes MATLAB v4 as ANTs does; ``.txt``/``.tfm`` writes ITK
        text. The file is replaced atomically.
    center : array_like, shape (ndim,), optional
        Center of the ITK parameterisation, RAS mm (stored in LPS). It changes
        the stored translation, not the map; ``None`` is the origin.
    outputs : parareg.io.OutputSet, optional
        Stage the file in this output set instead of writing it at once.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        A matrix that is not a finite invertible homogeneous 3x3/4x4, a bad
        center or suffix.

    Examples
    --------
    >>> import numpy as np
    >>> write_affine(np.eye(4), "identity.mat")  # doctest: +SKIP
    """
    shape = np.shape(matrix)
    if shape not in ((3, 3), (4, 4)):
        raise ValueError(f"matrix must be a 3x3 (2D) or 4x4 (3D) homogeneous matrix, "
                         f"got shape {shape}")
    ndim = shape[0] - 1
    ras = check_matrix(matrix, ndim, name="matrix")
    if center is None:
        center_ras = np.zeros(ndim)
    else:
        center_ras = np.asarray(center, dtype=np.float64)
        if center_ras.shape != (ndim,) or not np.all(np.isfinite(center_ras)):
            raise ValueError(f"center must be {ndim} finite numbers (RAS mm), got {center!r}")
    path = Path(path)
    fmt = _format_of(path, name="path")
    lps = ras_to_lps(ras)
    c = _flip(ndim)[:ndim, :ndim] @ center_ras
    linear = lps[:ndim, :ndim]
    translation = lps[:ndim, ndim] - c + linear @ c
    params = np.concatenate([linear.ravel(), translation])
    name = f"AffineTransform_double_{ndim}_{ndim}"
    staged = staging_in(outputs) is not None
    if fmt == "text":
        data = _text(name, params, c).encode("utf-8")
        return outputs.add_bytes(path, data) if staged else write_bytes(path, data)
    contents = {name: params.reshape(-1, 1), "fixed": c.reshape(-1, 1)}

    def write(target: str) -> None:  # in the writer's thread: scipy.io's import too
        from scipy.io import savemat

        savemat(target, contents, format="4", appendmat=False)

    return outputs.add(path, write) if staged else write_file(path, write, num_threads=1)


def affine_map_to_itk(affine_map, path, *, center=None, outputs=None) -> Path:
    """Write an :class:`parareg.AffineMap` as an ITK/ANTs transform file.

    The file maps fixed points to moving points, so ANTs uses it as
    ``antsApplyTransforms -r fixed -i moving -t path``.

    Parameters
    ----------
    affine_map : AffineMap
    path : str or os.PathLike
        ``.mat`` or ``.txt``/``.tfm``.
    center : array_like, shape (ndim,), optional
        RAS mm; ``None`` uses the center of the fixed grid (as
        ``antsRegistration`` does). It does not change the map.
    outputs : parareg.io.OutputSet, optional
        Stage the file in this output set instead of writing it at once.

    Returns
    -------
    Path

    Examples
    --------
    >>> affine_map_to_itk(parareg.affine_registration(fixed, moving), "0GenericAffine.mat")
    ... # doctest: +SKIP
    """
    from ..registration.affine import AffineMap

    if not isinstance(affine_map, AffineMap):
        raise TypeError(f"affine_map must be a parareg.AffineMap, got "
                        f"{type(affine_map).__name__}")
    if center is None:
        grid = affine_map.fixed_grid
        middle = (np.asarray(grid.shape, dtype=np.float64) - 1.0) / 2.0
        center = grid.vox2world[:-1, :-1] @ middle + grid.vox2world[:-1, -1]
    return write_affine(affine_map.matrix, path, center=center, outputs=outputs)


def affine_map_from_itk(path, *, fixed, moving):
    """Read an ITK/ANTs linear transform file as an :class:`parareg.AffineMap`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.mat`` or ``.txt``/``.tfm`` mapping ``fixed`` points to ``moving``
        points (what ``antsRegistration`` writes for ``-f fixed -m moving``).
    fixed, moving : Image or path
        The grids of the map (their voxels are not kept).

    Returns
    -------
    AffineMap

    Examples
    --------
    >>> amap = affine_map_from_itk("0GenericAffine.mat", fixed="f.nii.gz",
    ...                            moving="m.nii.gz")  # doctest: +SKIP
    >>> moved = amap.transform(moving_image)           # doctest: +SKIP
    """
    from ..registration.affine import AffineMap

    fixed = as_grid(fixed, name="fixed")
    moving = as_grid(moving, name="moving")
    if fixed.ndim != moving.ndim:
        raise ValueError(f"fixed is {fixed.ndim}D but moving is {moving.ndim}D")
    return AffineMap(read_affine(path, ndim=fixed.ndim), fixed=fixed, moving=moving)
