"""How regular a deformation is and how close label boundaries lie: SDlogJ, det J range, HD95.

The two measures Learn2Reg reports next to Dice, computed on parareg's pool
and bit-identical at any thread count:

SDlogJ (:func:`jacobian_stats`)
    The standard deviation (``ddof=0``) of ``log det J`` over a mask (the
    fixed foreground). As in Learn2Reg's evaluation, ``det J`` is clipped to
    ``[1e-9, 1e9]`` before the logarithm, so a folding voxel (``det J <= 0``)
    counts at ``log 1e-9``, about -20.7, and weighs heavily; the folded voxels
    are also counted (``folded_percent``). Non-finite values (undefined
    voxels, e.g. greedy's on the grid's edge) are left out. Learn2Reg's code
    adds 3 to its determinant before clipping; that offset is a quirk of its
    implementation and is not reproduced: ``log`` is of ``det J`` itself.
HD95 (:func:`hausdorff95`)
    Per label, the robust (95th percentile) symmetric Hausdorff distance in
    millimetres between the label's surfaces in two label maps: the larger of
    the 95th percentiles of the distances from each surface's voxels to the
    other surface (as Learn2Reg's ``compute_robust_hausdorff``, with every
    surface voxel weighted alike instead of by surfel area). A label's surface
    is its voxels with a face neighbour outside it (the grid's edge counts as
    outside); distances come from :func:`scipy.ndimage.distance_transform_edt`
    with the voxel spacing. Averaged over labels with ``nanmean``, as
    Learn2Reg does.

Both parallelise without changing a bit: SDlogJ sums per work unit (units
fixed by the grid, never by the thread count) and adds the units in order;
HD95 computes each label alone, in its bounding box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ._config import DEFAULT_GRAIN_VOXELS
from .parallel import for_each_unit, parallel_map, partition_range, reduce_units, \
    resolve_num_threads, unit_buffers

__all__ = ["LOG_CLIP", "JacobianStats", "hausdorff95", "jacobian_stats"]

#: ``det J`` is clipped to this range before its logarithm (Learn2Reg's values)
LOG_CLIP = (1e-9, 1e9)


@dataclass(frozen=True)
class JacobianStats:
    """Summary of a Jacobian determinant map over a set of voxels (see :func:`jacobian_stats`).

    Attributes
    ----------
    sdlogj : float
        Standard deviation of ``log(clip(det J, 1e-9, 1e9))``; 0 for a
        volume-preserving or uniformly scaling map.
    min, max : float
        Smallest and largest ``det J``.
    folded_percent : float
        Percentage of the voxels with ``det J <= 0``.
    voxels : int
        Voxels measured (finite values in the mask). With none, every other
        attribute is NaN.
    """

    sdlogj: float
    min: float
    max: float
    folded_percent: float
    voxels: int


def _check_jacobian(jacobian, mask):
    jac = np.asarray(jacobian)
    if jac.ndim not in (2, 3) or not np.issubdtype(jac.dtype, np.floating):
        raise ValueError("jacobian must be a 2D or 3D floating-point array (det J on the fixed "
                         f"grid), got a {jac.ndim}D {jac.dtype} array")
    if mask is None:
        return jac.reshape(-1), None
    mask = np.asarray(mask)
    if mask.shape != jac.shape:
        raise ValueError(f"mask must have the jacobian's shape {jac.shape}, got {mask.shape}")
    return jac.reshape(-1), mask.reshape(-1).astype(bool, copy=False)


def jacobian_stats(jacobian, *, mask=None, num_threads=None) -> JacobianStats:
    """SDlogJ, det J range and folding of a Jacobian determinant map.

    Parameters
    ----------
    jacobian : ndarray, shape (M, N[, P]), float
        ``det J`` of the fixed->moving map on the fixed grid (e.g.
        ``mapping.jacobian_determinant()``).
    mask : ndarray of bool, same shape, optional
        The voxels to measure, e.g. the fixed foreground (``fixed_labels > 0``);
        default: the whole grid.
    num_threads : int, optional
        Threads; the result is bit-identical at any count.

    Returns
    -------
    JacobianStats

    Examples
    --------
    >>> jac = np.array([[1.0, 1.0], [np.e, 1 / np.e]])
    >>> s = jacobian_stats(jac)
    >>> round(s.sdlogj, 6), s.min == 1 / np.e, s.folded_percent, s.voxels
    (0.707107, True, 0.0, 4)
    >>> jacobian_stats(jac, mask=jac == 1.0).sdlogj
    0.0
    """
    flat, keep = _check_jacobian(jacobian, mask)
    ranges = partition_range(0, flat.size, grain=DEFAULT_GRAIN_VOXELS)
    nt = resolve_num_threads(num_threads)
    lo, hi = LOG_CLIP

    def values(start, stop):
        v = flat[start:stop].astype(np.float64)
        ok = np.isfinite(v) if keep is None else np.isfinite(v) & keep[start:stop]
        return v[ok]

    first = unit_buffers(len(ranges), 5)  # count, sum of logs, min, max, folded

    def count(unit, start, stop):
        v = values(start, stop)
        if v.size:
            first[unit] = (v.size, np.log(np.clip(v, lo, hi)).sum(), v.min(), v.max(),
                           np.count_nonzero(v <= 0))
        else:
            first[unit] = (0, 0, math.inf, -math.inf, 0)

    for_each_unit(count, ranges, num_threads=nt)
    n = int(reduce_units(first[:, 0])) if len(ranges) else 0
    if n == 0:
        return JacobianStats(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(reduce_units(first[:, 1])) / n
    second = unit_buffers(len(ranges))

    def spread(unit, start, stop):
        second[unit] = np.square(np.log(np.clip(values(start, stop), lo, hi)) - mean).sum()

    for_each_unit(spread, ranges, num_threads=nt)
    return JacobianStats(sdlogj=math.sqrt(float(reduce_units(second)) / n),
                         min=float(first[:, 2].min()), max=float(first[:, 3].max()),
                         folded_percent=100.0 * float(reduce_units(first[:, 4])) / n,
                         voxels=n)


# --- HD95 --------------------------------------------------------------------------------


def _surface(region: np.ndarray) -> np.ndarray:
    """Voxels of ``region`` with a face neighbour outside it (outside the array counts)."""
    structure = ndimage.generate_binary_structure(region.ndim, 1)
    return region & ~ndimage.binary_erosion(region, structure, border_value=0)


def _boxes(label_map, labels) -> dict:
    """``{label: tuple of (start, stop)}`` bounding box per label present in ``label_map``."""
    top = int(max(labels, default=0))
    found = ndimage.find_objects(np.where(label_map <= top, label_map, 0))
    return {int(v): tuple((s.start, s.stop) for s in found[v - 1])
            for v in labels if 0 < v <= len(found) and found[v - 1] is not None}


def _label_hd95(label, fixed_labels, moving_labels, fixed_box, moving_box, spacing,
                lost) -> float:
    if fixed_box is None and moving_box is None:
        return math.nan
    if fixed_box is None or moving_box is None:
        return lost
    box = tuple(slice(min(a, c), max(b, d)) for (a, b), (c, d) in zip(fixed_box, moving_box))
    # one voxel of background around the box: the surface test and the distances see the
    # label's whole outline, also where it touches the grid's edge
    f = _surface(np.pad(fixed_labels[box] == label, 1))
    m = _surface(np.pad(moving_labels[box] == label, 1))
    to_m = ndimage.distance_transform_edt(~m, sampling=spacing)[f]
    to_f = ndimage.distance_transform_edt(~f, sampling=spacing)[m]
    return float(max(np.percentile(to_m, 95), np.percentile(to_f, 95)))


def hausdorff95(fixed_labels, moving_labels, *, labels, spacing, num_threads=None) -> np.ndarray:
    """95th-percentile symmetric Hausdorff distance of every label, in millimetres.

    Parameters
    ----------
    fixed_labels, moving_labels : ndarray of int, shape (M, N[, P])
        Label maps on one grid (the moving labels already warped onto it).
    labels : sequence of int
        Labels to measure (e.g. :func:`parareg.bench.scoring.shared_labels`
        of the fixed and the *unwarped* moving map).
    spacing : sequence of float, length ndim
        Voxel size in millimetres along each axis (``Image.spacing``).
    num_threads : int, optional
        Labels run in parallel; the result does not depend on the count.

    Returns
    -------
    ndarray of float, shape (L,)
        Per label; NaN for a label absent from both maps. A label present in
        only one map (lost by the warp) scores the grid's diagonal, the
        largest distance the grid holds (Learn2Reg's code would give
        infinity). Average with ``np.nanmean``.

    Examples
    --------
    >>> f = np.zeros((10, 10), int); f[2:5, 2:5] = 1
    >>> m = np.zeros((10, 10), int); m[2:5, 4:7] = 1      # shifted by 2 voxels
    >>> hausdorff95(f, m, labels=[1], spacing=(1.0, 0.5)).tolist()
    [1.0]
    """
    f = np.asarray(fixed_labels)
    m = np.asarray(moving_labels)
    for name, a in (("fixed_labels", f), ("moving_labels", m)):
        if a.ndim not in (2, 3) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be a 2D or 3D integer label map, got a {a.ndim}D "
                             f"{a.dtype} array")
    if f.shape != m.shape:
        raise ValueError(f"label maps must have one shape, got {f.shape} and {m.shape}; "
                         "resample the moving labels onto the fixed grid first")
    spacing = np.asarray(spacing, dtype=np.float64).reshape(-1)
    if spacing.size != f.ndim or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing must be {f.ndim} positive voxel sizes in mm, got "
                         f"{spacing.tolist()}")
    labels = [int(v) for v in np.asarray(labels, dtype=np.int64).reshape(-1)]
    lost = float(np.sqrt(np.sum((np.asarray(f.shape) * spacing) ** 2)))
    fixed_boxes, moving_boxes = _boxes(f, labels), _boxes(m, labels)
    return np.array(parallel_map(
        lambda v: _label_hd95(v, f, m, fixed_boxes.get(v), moving_boxes.get(v), spacing, lost),
        labels, num_threads=num_threads), dtype=np.float64)
