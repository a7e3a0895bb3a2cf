"""Plain-text matrices: greedy's and c3d's RAS matrices, and FSL FLIRT's.

greedy (``-o affine.mat``) and ``c3d_affine_tool`` write a (ndim+1)x(ndim+1)
text matrix in RAS millimetres that maps **fixed** points to **moving**
points: parareg's own convention (``parareg.resample(moving, fixed,
affine=M)``), so it is read as is.

An FSL FLIRT matrix looks the same but means something else: it maps
*source* to *reference* in FSL's scaled-voxel coordinates, which depend on
both images' grids (and flip x when a header's determinant is positive). It
is converted with nitransforms, a well-kept library that does exactly this
(as ``c3d_affine_tool -ref REF -src SRC flirt.mat -fsl2ras`` does), never
guessed from the file alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..image import check_matrix

#: text matrices larger than this are not matrices (a binary or other file)
_MAX_TEXT_BYTES = 4096


def numeric_rows(path) -> np.ndarray | None:
    """The file's numbers as rows when it is plain text of numbers only, else ``None``."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_TEXT_BYTES:
            return None
        text = path.read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        return None
    try:
        values = [[float(token) for token in row] for row in rows]
    except ValueError:
        return None
    if len({len(row) for row in values}) != 1:
        raise ValueError(f"{str(path)!r} holds rows of {sorted({len(r) for r in values})} "
                         "numbers; a greedy/c3d RAS matrix is 4 rows of 4 (3 of 3 in 2D)")
    return np.array(values, dtype=np.float64)


def read_ras_matrix(path, *, ndim: int | None = None) -> np.ndarray:
    """Read greedy's / c3d's RAS text matrix (fixed world -> moving world).

    Raises
    ------
    ValueError
        Not plain numbers, or not (ndim+1)x(ndim+1) with last row [0, ..., 1].
    """
    rows = numeric_rows(path)
    if rows is None:
        raise ValueError(f"{str(path)!r} is not a plain-text matrix of numbers")
    size = rows.shape
    if size not in ((4, 4), (3, 3)) or (ndim is not None and size != (ndim + 1, ndim + 1)):
        want = "4x4" if ndim in (None, 3) else "3x3"
        raise ValueError(f"{str(path)!r} is a {size[0]}x{size[1]} text matrix; a greedy/c3d RAS "
                         f"matrix for {'3D' if want == '4x4' else '2D'} images is {want}")
    return check_matrix(rows, size[0] - 1, name=f"the matrix in {str(path)!r}")


def read_fsl(path, *, reference, moving) -> np.ndarray:
    """An FSL FLIRT matrix as a parareg world matrix (RAS, reference -> moving points).

    Parameters
    ----------
    path : str or os.PathLike
        The ``-omat`` file of ``flirt -in MOVING -ref REFERENCE``.
    reference, moving : path or nibabel image
        FLIRT's ``-ref`` and ``-in`` images (their headers define FSL's
        coordinates; the voxels are not read).

    Returns
    -------
    ndarray, shape (4, 4)
        To pass as ``affine`` to ``parareg.resample(moving, reference, ...)``
        or in a transform list.
    """
    try:
        from nitransforms.io.fsl import FSLLinearTransform
    except ImportError:  # pragma: no cover - nitransforms is a dependency
        raise ImportError("FSL matrices need nitransforms: pip install nitransforms") from None
    import nibabel as nib

    def header(image, name):
        if isinstance(image, (str, Path)):
            if not Path(image).exists():
                raise FileNotFoundError(f"{name}: no such file: {str(image)!r}")
            return nib.load(str(image))
        if hasattr(image, "affine") and hasattr(image, "header"):
            return image
        raise TypeError(f"{name} must be a path or a nibabel image (FSL's coordinates need "
                        f"its header), got {type(image).__name__}")

    rows = numeric_rows(path)
    if rows is None or rows.shape != (4, 4):
        raise ValueError(f"{str(path)!r} is not a 4x4 FSL FLIRT matrix")
    ref, mov = header(reference, "reference"), header(moving, "moving")
    ras = FSLLinearTransform.from_filename(str(path)).to_ras(reference=ref, moving=mov)
    return check_matrix(ras, 3, name=f"the FSL matrix in {str(path)!r}")


__all__ = ["numeric_rows", "read_fsl", "read_ras_matrix"]
