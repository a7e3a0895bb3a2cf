"""Initial alignment of two images: world-space centring, principal axes, rotation grids.

Each centring initialiser returns a pure-translation fixed-world -> moving-world
homogeneous matrix that maps a chosen point of ``fixed`` (its intensity
centre of mass, the centre of its voxel grid, or its voxel 0) onto the
matching point of ``moving``. It is the starting point of rigid/affine
registration; convert it with ``transform.params_from_matrix``.

The rest is the pure geometry of :mod:`parareg.registration.initialise` (which
scores these starts with a metric): :func:`principal_axes` and
:func:`principal_axes_alignments` (every sign choice of the axes),
:func:`rotation_grid` (starts covering every rotation) and
:func:`extent_shifts` (field-of-view-aware shifts).
"""

from __future__ import annotations

import numpy as np

from .._hints import InputError
from ..image import Image, as_grid, as_image, as_pair

__all__ = ["UndefinedCenterError", "center_of_mass", "extent_shifts", "geometric_centers",
           "image_center", "origins", "principal_axes", "principal_axes_alignments",
           "rotation_grid"]


def _pair(fixed, moving) -> tuple[Image, Image]:
    return as_pair(fixed, moving)


def _translation(offset: np.ndarray) -> np.ndarray:
    n = offset.shape[0]
    out = np.eye(n + 1)
    out[:n, n] = offset
    return out


def _vox2world_point(image: Image, index: np.ndarray) -> np.ndarray:
    n = image.ndim
    return image.vox2world[:n, :n] @ index + image.vox2world[:n, n]


def image_center(image) -> np.ndarray:
    """World position of the centre of an image's voxel grid.

    The centre is voxel index ``(shape - 1) / 2`` (voxel centres convention).

    Parameters
    ----------
    image : Image or path

    Returns
    -------
    center : ndarray, shape (ndim,), float64, mm

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> image_center(Image(np.zeros((5, 11)), np.diag([2.0, 1.0, 1.0]))).tolist()
    [4.0, 5.0]
    """
    image = as_grid(image, name="image")  # the grid only: its voxels are not scanned
    return _vox2world_point(image, (np.asarray(image.shape, dtype=np.float64) - 1.0) / 2.0)


class UndefinedCenterError(InputError):
    """An image without positive intensity, so without a centre of mass.

    ``kind`` is ``"all_zero"`` or ``"no_positive_intensity"``; ``facts``: ``name``, ``maximum``.
    """


def _mass_center(image: Image, *, name: str) -> np.ndarray:
    weights = np.clip(image.data.astype(np.float64), 0.0, None)
    if not weights.sum() > 0.0:
        if not np.any(image.data):
            raise UndefinedCenterError(f"{name} is all zero; nothing to register",
                                       kind="all_zero", name=name, maximum=0.0)
        maximum = float(np.max(image.data))
        raise UndefinedCenterError(
            f"{name} has no positive intensity (its maximum is {maximum:g}), so its centre of "
            "mass is undefined",
            "start the pipeline with 'geometric_centers' instead of 'center_of_mass', or "
            "shift the intensities so that the object is brighter than 0",
            kind="no_positive_intensity", name=name, maximum=maximum)
    from scipy import ndimage  # lazily: parareg apply imports this module, never calls it

    index = np.asarray(ndimage.center_of_mass(weights), dtype=np.float64)
    return _vox2world_point(image, index)


def center_of_mass(fixed, moving) -> np.ndarray:
    """Translation that aligns the intensity centres of mass.

    Negative intensities are clipped to 0 before weighting (background noise
    and e.g. CT air then carry no mass).

    Parameters
    ----------
    fixed, moving : Image or path
        Images of the same dimension.

    Returns
    -------
    fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64
        Pure translation by ``com(moving) - com(fixed)`` in world mm.

    Raises
    ------
    ValueError
        If ``fixed`` or ``moving`` has no positive intensity (the message
        names which one).

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> a = np.zeros((8, 8)); a[2, 3] = 1.0
    >>> b = np.zeros((8, 8)); b[5, 3] = 1.0
    >>> center_of_mass(Image(a, np.eye(3)), Image(b, np.eye(3)))[:2, 2].tolist()
    [3.0, 0.0]
    """
    fixed, moving = _pair(fixed, moving)
    fixed_com = _mass_center(fixed, name="fixed")
    moving_com = _mass_center(moving, name="moving")
    return _translation(moving_com - fixed_com)


def geometric_centers(fixed, moving) -> np.ndarray:
    """Translation that aligns the centres of the two voxel grids.

    Parameters
    ----------
    fixed, moving : Image or path
        Images of the same dimension.

    Returns
    -------
    fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64
        Pure translation by ``image_center(moving) - image_center(fixed)``, mm.

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> f = Image(np.ones((4, 4)), np.eye(3))
    >>> m = Image(np.ones((8, 4)), np.eye(3))
    >>> geometric_centers(f, m)[:2, 2].tolist()
    [2.0, 0.0]
    """
    fixed, moving = _pair(fixed, moving)
    return _translation(image_center(moving) - image_center(fixed))


def origins(fixed, moving) -> np.ndarray:
    """Translation that maps the world position of fixed voxel 0 to that of moving voxel 0.

    Parameters
    ----------
    fixed, moving : Image or path
        Images of the same dimension.

    Returns
    -------
    fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64
        Pure translation by ``moving.vox2world[:n, n] - fixed.vox2world[:n, n]``, mm.

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> f = Image(np.ones((4, 4)), [[1.0, 0, 5], [0, 1, 0], [0, 0, 1]])
    >>> origins(f, Image(np.ones((4, 4)), np.eye(3)))[:2, 2].tolist()
    [-5.0, 0.0]
    """
    fixed, moving = _pair(fixed, moving)
    n = fixed.ndim
    return _translation(moving.vox2world[:n, n] - fixed.vox2world[:n, n])


# ----------------------------------------------------------------------------------------------
# principal axes, rotation grids, field-of-view-aware shifts (pure geometry)


def _clipped_mass(image: Image, *, name: str) -> np.ndarray:
    """Non-negative float32 weights of ``image`` (``UndefinedCenterError`` when all zero)."""
    _mass_center(image, name=name)  # the same refusal as center_of_mass
    return np.clip(np.asarray(image.data, dtype=np.float32), 0.0, None)


def principal_axes(image, *, name: str = "image") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intensity centre of mass and principal axes (second moments) in world mm.

    Weights are the intensities clipped at 0, as in :func:`center_of_mass`.
    The moments are accumulated in float64 from per-axis and per-axis-pair
    marginal sums (no coordinate array of the image's size is built).

    Parameters
    ----------
    image : Image or path
    name : str
        Named in the error of an image without positive intensity.

    Returns
    -------
    center : ndarray, shape (ndim,), mm
    axes : ndarray, shape (ndim, ndim)
        Unit eigenvectors of the weighted world covariance, as columns, by
        decreasing variance; ``det(axes) = +1``.
    variances : ndarray, shape (ndim,), mm^2
        Decreasing.

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> a = np.zeros((9, 9)); a[4, 1:8] = 1.0   # a bar along the second axis
    >>> center, axes, variances = principal_axes(Image(a, np.eye(3)))
    >>> center.tolist(), np.abs(axes[:, 0]).round(6).tolist()
    ([4.0, 4.0], [0.0, 1.0])
    """
    image = image if isinstance(image, Image) else as_image(image, name=name)
    weights = _clipped_mass(image, name=name)
    n = image.ndim
    total = float(np.sum(weights, dtype=np.float64))
    index = [np.arange(size, dtype=np.float64) for size in image.shape]
    mean = np.empty(n)
    second = np.empty((n, n))
    for a in range(n):
        others = tuple(axis for axis in range(n) if axis != a)
        marginal = np.sum(weights, axis=others, dtype=np.float64)
        mean[a] = marginal @ index[a] / total
        second[a, a] = marginal @ (index[a] ** 2) / total
        for b in range(a + 1, n):
            rest = tuple(axis for axis in range(n) if axis not in (a, b))
            pair = np.sum(weights, axis=rest, dtype=np.float64) if rest else weights.astype(
                np.float64)
            second[a, b] = second[b, a] = index[a] @ pair @ index[b] / total
    cov_vox = second - np.outer(mean, mean)
    linear = image.vox2world[:n, :n]
    cov = linear @ cov_vox @ linear.T
    variances, axes = np.linalg.eigh(0.5 * (cov + cov.T))
    order = np.argsort(variances)[::-1]
    variances, axes = variances[order], axes[:, order]
    # a deterministic sign per axis (largest component positive), then a proper rotation
    axes = axes * np.where(axes[np.argmax(np.abs(axes), axis=0), np.arange(n)] < 0, -1.0, 1.0)
    if np.linalg.det(axes) < 0:
        axes[:, -1] = -axes[:, -1]
    return _vox2world_point(image, mean), axes, variances


def principal_axes_alignments(fixed, moving) -> list[np.ndarray]:
    """Every rigid matrix that maps the principal axes of ``fixed`` onto those of ``moving``.

    An eigenvector's sign is arbitrary, so the axes match in 4 proper ways in
    3D (2 in 2D): ``R = V_m S V_f^T`` with ``S`` a diagonal of signs and
    ``det S = +1``; each maps the fixed centre of mass onto the moving one.
    Which is right is for a metric to say
    (:func:`parareg.registration.initialise.initial_search`).

    Parameters
    ----------
    fixed, moving : Image or path

    Returns
    -------
    list of ndarray, shape (ndim + 1, ndim + 1)
        Fixed-world -> moving-world matrices, the all-positive signs first.

    Examples
    --------
    >>> import numpy as np
    >>> from parareg import Image
    >>> a = np.zeros((9, 9)); a[4, 1:8] = 1.0; a[3, 1] = 1.0
    >>> len(principal_axes_alignments(Image(a, np.eye(3)), Image(a.T.copy(), np.eye(3))))
    2
    """
    fixed, moving = _pair(fixed, moving)
    fixed_center, fixed_axes, _ = principal_axes(fixed, name="fixed")
    moving_center, moving_axes, _ = principal_axes(moving, name="moving")
    n = fixed.ndim
    if n == 2:
        signs = [(1.0, 1.0), (-1.0, -1.0)]
    else:
        signs = [(1.0, 1.0, 1.0), (1.0, -1.0, -1.0), (-1.0, 1.0, -1.0), (-1.0, -1.0, 1.0)]
    out = []
    for sign in signs:
        rotation = moving_axes @ np.diag(sign) @ fixed_axes.T
        matrix = np.eye(n + 1)
        matrix[:n, :n] = rotation
        matrix[:n, n] = moving_center - rotation @ fixed_center
        out.append(matrix)
    return out


#: no rotation is farther than this from one of the rotations of :func:`rotation_grid` in 3D
ICOSAHEDRAL_COVERING_DEG = 44.5


def rotation_grid(ndim: int, *, step_deg: float = 30.0) -> list[np.ndarray]:
    """Rotation matrices that cover every rotation: the starts of a global search.

    2D: every ``step_deg`` degrees from 0. 3D: the 60 rotations of the
    icosahedral group (SciPy's ``Rotation.create_group("I")``), the most even
    small set, with no rotation farther than :data:`ICOSAHEDRAL_COVERING_DEG`
    degrees from one of them, and the 12 rotations of the octahedral group it
    lacks (90 degrees about each axis and their kin: the reorientations of a
    scan); the identity first. The order is fixed, so a search over it breaks
    ties the same way on every run.

    Parameters
    ----------
    ndim : {2, 3}
    step_deg : float
        2D angle step, degrees (0 < step <= 180).

    Returns
    -------
    list of ndarray, shape (ndim, ndim)
        The identity first.

    Examples
    --------
    >>> len(rotation_grid(2, step_deg=30.0)), len(rotation_grid(3))
    (12, 72)
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
    if not 0.0 < float(step_deg) <= 180.0:
        raise ValueError(f"step_deg must be in (0, 180], got {step_deg!r}")
    if ndim == 2:
        step = np.deg2rad(float(step_deg))
        count = int(np.floor(2.0 * np.pi / step + 1e-9))
        return [np.array([[np.cos(k * step), -np.sin(k * step)],
                          [np.sin(k * step), np.cos(k * step)]]) for k in range(count)]
    from scipy.spatial.transform import Rotation

    group = list(Rotation.create_group("I").as_matrix())
    # and the octahedral rotations it lacks (90 degrees about the axes: reoriented acquisitions)
    group += [r for r in Rotation.create_group("O").as_matrix()
              if min(np.abs(r - g).max() for g in group) > 1e-6]
    first = int(np.argmin([np.abs(g - np.eye(3)).sum() for g in group]))
    return [np.eye(3)] + [np.array(g) for k, g in enumerate(group) if k != first]


#: an axis where one foreground is shorter than this fraction of the other is a partial view
PARTIAL_VIEW = 0.85


def extent_shifts(fixed_points, moving_points, rotation, *,
                  partial: float = PARTIAL_VIEW) -> list[np.ndarray]:
    """Field-of-view-aware shifts: align the overlapping extent, not the whole-image centres.

    Both point sets are foreground positions relative to their image's centre
    of mass, in mm. ``moving_points`` is seen through ``rotation`` (as the
    start ``M(x) = R (x - c_f + s) + c_m`` sees it). Along a fixed axis where
    the two extents are alike the shift is 0 (the centres of mass meet); along
    an axis where one extent is shorter than ``partial`` times the other (a
    brain-only slab against a head and neck) it is also either end of the
    shorter extent put on the same end of the longer one.

    Parameters
    ----------
    fixed_points : ndarray, shape (N, ndim), mm
    moving_points : ndarray, shape (M, ndim), mm
    rotation : ndarray, shape (ndim, ndim)
    partial : float
        Extent ratio below which an axis counts as partially covered.

    Returns
    -------
    list of ndarray, shape (ndim,)
        The zero shift first, then every combination of the alternatives.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.array([[0.0, -50.0], [0.0, 50.0]]); m = np.array([[0.0, -20.0], [0.0, 20.0]])
    >>> [s.tolist() for s in extent_shifts(f, m, np.eye(2))]
    [[0.0, 0.0], [0.0, 30.0], [0.0, -30.0]]
    """
    import itertools

    seen = np.asarray(moving_points, dtype=np.float64) @ np.asarray(rotation)  # R^T y
    fixed_points = np.asarray(fixed_points, dtype=np.float64)
    lo_f, hi_f = fixed_points.min(axis=0), fixed_points.max(axis=0)
    lo_m, hi_m = seen.min(axis=0), seen.max(axis=0)
    choices = []
    for axis in range(fixed_points.shape[1]):
        ext_f, ext_m = hi_f[axis] - lo_f[axis], hi_m[axis] - lo_m[axis]
        options = [0.0]
        if min(ext_f, ext_m) < partial * max(ext_f, ext_m):
            options += [lo_m[axis] - lo_f[axis], hi_m[axis] - hi_f[axis]]
        choices.append(options)
    return [np.array(combo) for combo in itertools.product(*choices)]
