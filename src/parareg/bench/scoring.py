"""How well two images on the same grid agree: label overlap, HD95, NCC, MI, regularity.

Plain NumPy, independent of the registration code, so every method in a
benchmark is scored by the same code. The one SciPy helper, :func:`warp_affine`,
resamples a method's fixed->moving world matrix onto the fixed grid with
:func:`scipy.ndimage.affine_transform` (again the same for every method).

The regularity (SDlogJ, det J range) and boundary (HD95) measures come from
:mod:`parareg.measures`, which computes them on the pool.

Conventions: ``fixed`` is the reference, ``moving`` the image already brought
onto the fixed grid. Logarithms are natural (entropies in nats).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "BINS",
    "folded_percent",
    "joint_histogram",
    "label_overlap",
    "mean_dice",
    "mutual_information",
    "ncc",
    "normalized_mutual_information",
    "score_registration",
    "shared_labels",
    "warp_affine",
]

#: histogram bins of :func:`mutual_information` / :func:`normalized_mutual_information`
BINS = 32


# ----------------------------------------------------------------------------------------------
# label overlap


def label_overlap(fixed_labels, moving_labels, *, labels=None):
    """Dice and Jaccard of every label.

    Parameters
    ----------
    fixed_labels, moving_labels : ndarray of int, same shape
        Non-negative label maps on one grid; 0 is background.
    labels : sequence of int, optional
        Labels to score. Default: the non-zero labels present in both maps.
        A listed label absent from both maps scores NaN; absent from one, 0.

    Returns
    -------
    labels : ndarray of int, shape (L,)
    dice : ndarray of float, shape (L,)
        ``2 |F ∩ M| / (|F| + |M|)``.
    jaccard : ndarray of float, shape (L,)
        ``|F ∩ M| / |F ∪ M|``.

    Examples
    --------
    >>> f = np.array([1, 1, 1, 1, 2, 0])
    >>> m = np.array([1, 1, 0, 0, 2, 2])
    >>> labels, dice, jaccard = label_overlap(f, m)
    >>> labels.tolist(), dice.round(3).tolist(), jaccard.round(3).tolist()
    ([1, 2], [0.667, 0.667], [0.5, 0.5])
    """
    f = _as_labels(fixed_labels, "fixed_labels")
    m = _as_labels(moving_labels, "moving_labels")
    if f.shape != m.shape:
        raise ValueError(f"label maps must have one shape, got {f.shape} and {m.shape}; "
                         "resample the moving labels onto the fixed grid first")
    size = int(max(f.max(initial=0), m.max(initial=0))) + 1
    f_count = np.bincount(f.ravel(), minlength=size)
    m_count = np.bincount(m.ravel(), minlength=size)
    both = np.bincount(f[f == m].ravel(), minlength=size)
    if labels is None:
        labels = np.flatnonzero((f_count > 0) & (m_count > 0))
        labels = labels[labels != 0]
    else:
        labels = np.asarray(labels, dtype=np.int64).ravel()
    inside = (labels >= 0) & (labels < size)
    pick = np.where(inside, labels, 0)
    inter = np.where(inside, both[pick], 0).astype(np.float64)
    total = np.where(inside, f_count[pick] + m_count[pick], 0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = 2.0 * inter / total
        jaccard = inter / (total - inter)
    return labels, dice, jaccard


def mean_dice(fixed_labels, moving_labels, *, labels=None) -> float:
    """Mean Dice over ``labels`` (default: the non-zero labels present in both maps).

    >>> mean_dice(np.array([1, 1, 2, 2]), np.array([1, 1, 2, 0]))
    0.8333333333333333
    """
    _, dice, _ = label_overlap(fixed_labels, moving_labels, labels=labels)
    return float(np.nanmean(dice)) if dice.size else float("nan")


def shared_labels(fixed_labels, moving_labels) -> np.ndarray:
    """The non-zero labels present in both maps (any grids), sorted.

    Score a registration over the labels of the fixed map and of the moving map
    *before* warping: a label the warp loses then scores 0 instead of
    dropping out of the mean.

    >>> shared_labels(np.array([0, 1, 2, 5]), np.array([[2, 5], [7, 0]])).tolist()
    [2, 5]
    """
    f = np.unique(_as_labels(fixed_labels, "fixed_labels"))
    m = np.unique(_as_labels(moving_labels, "moving_labels"))
    both = np.intersect1d(f, m)
    return both[both != 0]


def _as_labels(a, name):
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.bool_)):
        if not np.all(a == np.round(a)):
            raise ValueError(f"{name} must hold integer labels, got non-integer {a.dtype} values")
    a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise ValueError(f"{name} has negative labels (min {a.min()}); labels must be >= 0")
    return a


# ----------------------------------------------------------------------------------------------
# intensity similarity


def ncc(fixed, moving, *, mask=None) -> float:
    """Global normalised cross-correlation (Pearson's r) of two images; NaN if one is constant.

    >>> a = np.arange(10.0)
    >>> ncc(a, 3 * a + 1), ncc(a, -a)
    (1.0, -1.0)
    """
    f, m = _pair(fixed, moving, mask)
    f = f - f.mean()
    m = m - m.mean()
    denom = np.sqrt(np.dot(f, f) * np.dot(m, m))
    return float(np.dot(f, m) / denom) if denom > 0 else float("nan")


def joint_histogram(fixed, moving, *, bins=BINS, mask=None):
    """Joint histogram, ``bins`` equal bins spanning each image's own [min, max].

    Returns
    -------
    ndarray of float, shape (bins, bins)
        Voxel counts; rows index ``fixed``, columns ``moving``.
    """
    f, m = _pair(fixed, moving, mask)
    return np.histogram2d(f, m, bins=bins, range=(_span(f), _span(m)))[0]


def mutual_information(fixed, moving, *, bins=BINS, mask=None) -> float:
    """``H(F) + H(M) - H(F, M)`` in nats, from :func:`joint_histogram`.

    >>> a = np.repeat([0.0, 1.0], 8)
    >>> bool(np.isclose(mutual_information(a, a), np.log(2)))
    True
    """
    h_f, h_m, h_fm = _entropies(joint_histogram(fixed, moving, bins=bins, mask=mask))
    return h_f + h_m - h_fm


def normalized_mutual_information(fixed, moving, *, bins=BINS, mask=None) -> float:
    """Studholme's ``(H(F) + H(M)) / H(F, M)``: 1 for independent images, 2 for identical ones.

    >>> a = np.repeat([0.0, 1.0], 8)
    >>> normalized_mutual_information(a, a)
    2.0
    """
    h_f, h_m, h_fm = _entropies(joint_histogram(fixed, moving, bins=bins, mask=mask))
    return (h_f + h_m) / h_fm if h_fm > 0 else float("nan")


def _entropies(joint):
    p = joint / joint.sum()
    return _entropy(p.sum(axis=1)), _entropy(p.sum(axis=0)), _entropy(p)


def _entropy(p):
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def _span(a):
    lo, hi = float(a.min()), float(a.max())
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _pair(fixed, moving, mask):
    f = np.asarray(fixed, dtype=np.float64)
    m = np.asarray(moving, dtype=np.float64)
    if f.shape != m.shape:
        raise ValueError(f"images must have one shape, got {f.shape} and {m.shape}; "
                         "resample the moving image onto the fixed grid first")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        return f[mask], m[mask]
    return f.ravel(), m.ravel()


# ----------------------------------------------------------------------------------------------
# deformation regularity


def folded_percent(jacobian, *, mask=None) -> float:
    """Percentage of voxels whose Jacobian determinant is <= 0 (the map folds there).

    Parameters
    ----------
    jacobian : ndarray, shape (M, N[, P])
        Jacobian determinant of the fixed->moving map on the fixed grid.
        Non-finite values (undefined voxels, e.g. greedy's on the grid's edge)
        are left out of the count and of the total.
    mask : ndarray of bool, same shape, optional
        Count only these voxels (default: the whole grid).

    Returns
    -------
    float
        In percent, 0 to 100; NaN when no voxel is left.

    Examples
    --------
    >>> folded_percent(np.array([[1.0, 0.5], [0.0, -0.2]]))
    50.0
    >>> folded_percent(np.array([1.0, -1.0, np.nan]))
    50.0
    """
    jac = np.asarray(jacobian, dtype=np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != jac.shape:
            raise ValueError(f"mask must have the Jacobian's shape {jac.shape}, got {mask.shape}")
        jac = jac[mask]
    jac = jac[np.isfinite(jac)]
    if jac.size == 0:
        return float("nan")
    return float(100.0 * np.count_nonzero(jac <= 0) / jac.size)


# ----------------------------------------------------------------------------------------------
# one registration, all scores


def score_registration(fixed, fixed_labels, warped, warped_labels, *, labels,
                       jacobian=None, spacing=None, bins=BINS, num_threads=None) -> dict:
    """Every benchmark score of one registration, on the fixed grid.

    Parameters
    ----------
    fixed, warped : ndarray, shape (M, N[, P])
        The fixed image and the moving image resampled onto its grid.
    fixed_labels, warped_labels : ndarray of int, same shape
        The fixed label map and the moving labels resampled (nearest) onto it.
    labels : sequence of int
        Labels to score (typically :func:`shared_labels` of the fixed map and
        the *unwarped* moving map).
    jacobian : ndarray, same shape, optional
        Jacobian determinant of the map (non-finite voxels ignored); without it
        the regularity scores are NaN.
    spacing : sequence of float, optional
        The fixed grid's voxel size in mm; without it the HD95 scores are NaN.
    bins : int
        Histogram bins of NMI.
    num_threads : int, optional
        Threads of the HD95 and Jacobian measures (the scores do not depend on it).

    Returns
    -------
    dict
        ``dice_mean``, ``jaccard_mean``, ``hd95_mean`` (means over ``labels``;
        HD95 in mm, see :func:`parareg.measures.hausdorff95`), ``n_labels``,
        ``ncc``, ``nmi`` (over the whole grid), ``folded_percent``,
        ``jacobian_min``, ``jacobian_max`` (over the whole grid), ``sdlogj``
        (over the fixed foreground ``fixed_labels > 0``, see
        :func:`parareg.measures.jacobian_stats`), and per label ``labels``,
        ``dice``, ``jaccard``, ``hd95`` (lists).
    """
    from ..measures import hausdorff95, jacobian_stats

    labels, dice, jaccard = label_overlap(fixed_labels, warped_labels, labels=labels)
    hd95 = np.full(labels.size, np.nan)
    if spacing is not None:
        hd95 = hausdorff95(_as_labels(fixed_labels, "fixed_labels"),
                           _as_labels(warped_labels, "warped_labels"), labels=labels,
                           spacing=spacing, num_threads=num_threads)
    scores = {
        "dice_mean": float(np.nanmean(dice)) if dice.size else float("nan"),
        "jaccard_mean": float(np.nanmean(jaccard)) if jaccard.size else float("nan"),
        "hd95_mean": float(np.nanmean(hd95)) if np.isfinite(hd95).any() else float("nan"),
        "n_labels": int(labels.size),
        "ncc": ncc(fixed, warped),
        "nmi": normalized_mutual_information(fixed, warped, bins=bins),
        "folded_percent": float("nan"),
        "jacobian_min": float("nan"),
        "jacobian_max": float("nan"),
        "sdlogj": float("nan"),
    }
    if jacobian is not None:
        jac = np.asarray(jacobian)
        if jac.shape != np.shape(fixed):
            raise ValueError(f"jacobian must be on the fixed grid {np.shape(fixed)}, "
                             f"got shape {jac.shape}")
        grid = jacobian_stats(jac, num_threads=num_threads)
        foreground = jacobian_stats(jac, mask=np.asarray(fixed_labels) > 0,
                                    num_threads=num_threads)
        scores.update(folded_percent=grid.folded_percent, jacobian_min=grid.min,
                      jacobian_max=grid.max, sdlogj=foreground.sdlogj)
    scores.update(labels=[int(v) for v in labels], dice=[float(v) for v in dice],
                  jaccard=[float(v) for v in jaccard], hd95=[float(v) for v in hd95])
    return scores


# ----------------------------------------------------------------------------------------------
# the common resampler


def warp_affine(moving, moving_vox2world, fixed_shape, fixed_vox2world, fixed2moving, *,
                order=1):
    """Resample ``moving`` onto the fixed grid through a world matrix (outside: 0).

    Parameters
    ----------
    moving : ndarray, shape (X', Y'[, Z'])
    moving_vox2world, fixed_vox2world : ndarray, shape (ndim + 1, ndim + 1)
        Voxel indices to world millimetres.
    fixed_shape : tuple of int
    fixed2moving : ndarray, shape (ndim + 1, ndim + 1)
        World (mm) matrix taking fixed points to moving points.
    order : {0, 1}
        0: nearest neighbour (labels; dtype kept), 1: (bi/tri)linear (float32).

    Returns
    -------
    ndarray, shape ``fixed_shape``

    Examples
    --------
    >>> img = np.arange(27.0).reshape(3, 3, 3)
    >>> shift = np.eye(4); shift[0, 3] = 1.0  # fixed x -> moving x + 1
    >>> out = warp_affine(img, np.eye(4), img.shape, np.eye(4), shift, order=0)
    >>> bool(np.array_equal(out[:2], img[1:])), float(out[2].max())
    (True, 0.0)
    """
    moving = np.asarray(moving)
    ndim = moving.ndim
    fixed_vox2moving_vox = np.linalg.inv(moving_vox2world) @ fixed2moving @ fixed_vox2world
    dtype = moving.dtype if order == 0 else np.float32
    src = moving if order == 0 else moving.astype(np.float32)
    return ndimage.affine_transform(src, fixed_vox2moving_vox[:ndim, :ndim],
                                    fixed_vox2moving_vox[:ndim, ndim],
                                    output_shape=tuple(fixed_shape), order=order,
                                    mode="constant", cval=0, output=dtype)
