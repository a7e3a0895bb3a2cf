"""Label fusion: several atlases' label maps on one target grid -> one label map + posteriors.

Three methods, one registry (:data:`FUSIONS`):

``"majority"``
    Each voxel takes the label most atlases give it. **Ties go to the
    smallest label value** (deterministic, whatever the atlas order). The
    posteriors are the vote fractions.
``"jlf"``
    Joint label fusion (Wang et al., *Multi-atlas segmentation with joint
    label fusion*, IEEE TPAMI 2013), as ANTs' ``antsJointFusion``
    (``itk::WeightedVotingFusionImageFilter``): per voxel, each atlas's
    best-matching patch within ``search_radius`` (``patch_metric``: ANTs'
    Pearson score, or its mean squares of the raw patches as antspyx),
    the pairwise dependency matrix ``M[i, j] = (d_i . d_j / (P - 1)) ** beta``
    of the absolute differences of the normalised patches, weights
    ``(M + alpha I)^-1 1`` (negatives set to 0, normalised to sum 1), and
    every voxel of each patch votes for the label found at the atlas's
    best offset (see :mod:`parareg.kernels.fusion`). Defaults are ANTs':
    patch radius 2, search radius 3, ``alpha=0.1``, ``beta=2``, ``"pc"``
    (antspyx's default metric is ``"msq"``). The
    posteriors are the normalised vote totals; ties go to the smallest
    label value.
``"staple"``
    Multi-label STAPLE (Warfield et al., IEEE TMI 2004), as ITK's
    ``MultiLabelSTAPLEImageFilter``: each atlas's confusion matrix and the
    true labels' posteriors by expectation-maximisation (see
    :mod:`parareg.population.staple`); no intensities.

Where JLF differs from ANTs, and why:

* patch voxels outside the image are left out of the differences (ANTs'
  NaN makes ``M`` zero there, so boundary voxels get equal weights);
* a singular ``M + alpha I`` (possible only with ``beta`` that is not an
  even integer) gives equal weights, where ANTs uses an SVD solve;
* JLF runs only where it can change the answer: a voxel where every atlas
  has one and the same label within ``search_radius`` gets that label with
  posterior 1 whatever the weights (all its votes go to it), so only
  centre voxels within ``patch_radius`` of a voxel that sees two labels
  are computed (the tests check that the result is the full
  computation's, bit for bit).

Intensities are used as given: as in ANTs, patch standard deviations are
floored at 1 (intensity units), so images should span tens of units or
more (MRI scanners' ranges do), not [0, 1].

Both methods are threaded on parareg's pool (work units are slabs fixed by
the image, every voxel's sums run in a fixed order): the results are
bit-identical at any thread count.

Examples
--------
>>> import numpy as np
>>> from parareg.population.fusion import majority_vote
>>> a = np.array([[1, 2], [3, 3]]); b = np.array([[1, 2], [0, 3]]); c = np.array([[2, 0], [0, 3]])
>>> result = majority_vote([a, b, c])
>>> result.labels.tolist()
[[1, 2], [0, 3]]
>>> result.label_values.tolist(), (result.posteriors[1, 0] * 3).round(3).tolist()
([0, 1, 2, 3], [2.0, 0.0, 0.0, 1.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS, as_index
from ..image import check_array
from ..kernels.lift import lift_array
from ..parallel import axis0_ranges, for_each_unit, partition_range, resolve_num_threads

#: voxels per work unit of JLF's weight pass (each voxel costs atlases x search x patch)
JLF_GRAIN_VOXELS = 4096
#: ANTs' antsJointFusion defaults
DEFAULT_PATCH_RADIUS = 2
DEFAULT_SEARCH_RADIUS = 3
DEFAULT_ALPHA = 0.1
DEFAULT_BETA = 2.0
#: JLF's patch metrics of the search -> the kernels' codes: ANTs' Pearson correlation
#: (antsJointFusion's default) and mean squares (antspyx's default)
PATCH_METRICS = {"pc": 0, "msq": 1}
#: Pearson, as antsJointFusion: insensitive to the atlases' intensity scale. (Mean squares,
#: antspyx's default, won on Mindboggle's slices, JLF Dice 0.603 against 0.586 over 12
#: leave-one-out targets, and lost on IXI at 2 mm, 0.780 against 0.796 on IXI012; BENCHMARKS.md,
#: "Multi-atlas segmentation, round 3".)
DEFAULT_PATCH_METRIC = "pc"


@dataclass
class FusionResult:
    """What the fusion functions return.

    Attributes
    ----------
    labels : ndarray, shape (X, Y[, Z])
        The fused label map, in the atlases' label dtype.
    posteriors : ndarray, shape (X, Y[, Z], L), float32, or None
        ``posteriors[..., l]`` is the posterior of ``label_values[l]``
        (``None`` when not asked for).
    label_values : ndarray, shape (L,)
        Every label found in the atlases, ascending.
    """

    labels: np.ndarray
    posteriors: np.ndarray | None
    label_values: np.ndarray


def _check_labels(labels, *, name: str = "labels"):
    """The label maps as one stack and their common shape; integer maps of one shape only."""
    if isinstance(labels, np.ndarray) or not hasattr(labels, "__len__"):
        raise ValueError(f"{name} must be a sequence of label maps (one per atlas), got "
                         f"{type(labels).__name__}")
    if len(labels) == 0:
        raise ValueError(f"{name} is empty: give one label map per atlas")
    arrays = []
    for index, item in enumerate(labels):
        a = check_array(getattr(item, "data", item), name=f"{name}[{index}]")
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name}[{index}] must hold integer labels, got dtype {a.dtype}; "
                             "pass label maps (e.g. data.astype(np.int32), or a file read "
                             "with labels=True)")
        if arrays and a.shape != arrays[0].shape:
            raise ValueError(f"{name}[{index}] has shape {a.shape} but {name}[0] has "
                             f"{arrays[0].shape}; every label map must be on the target grid")
        arrays.append(a)
    return arrays


def _ranks(arrays):
    """``(label_values, ranks (A, X, Y, Z) int32, rank of label 0 or -1)``."""
    from ..resampling import _label_ranks

    stack = np.stack(arrays)
    values, ranks = _label_ranks(stack)
    ndim = stack.ndim - 1
    ranks = np.ascontiguousarray(ranks.reshape(stack.shape[:1] + lift_array(stack[0], ndim).shape))
    zero = np.flatnonzero(values == 0)
    return values, ranks, int(zero[0]) if zero.size else -1


def majority_vote(labels, *, posteriors: bool = True,
                  num_threads: int | None = None) -> FusionResult:
    """Fuse label maps by majority vote; ties go to the smallest label value.

    Parameters
    ----------
    labels : sequence of ndarray or Image, each shape (X, Y[, Z])
        Integer label maps on one grid (the atlases' labels warped to the
        target).
    posteriors : bool
        Also return each label's vote fraction.
    num_threads : int, optional
        ``None`` means :func:`parareg.get_num_threads`; the result is
        bit-identical at any thread count.

    Returns
    -------
    FusionResult

    Examples
    --------
    >>> import numpy as np
    >>> majority_vote([np.array([[1, 2]]), np.array([[2, 1]])], posteriors=False).labels
    array([[1, 1]])
    """
    arrays = _check_labels(labels)
    values, ranks, _ = _ranks(arrays)
    fused, post = majority_ranks(ranks, len(values), posteriors=posteriors,
                                 num_threads=resolve_num_threads(num_threads))
    return _result(fused, post, values, arrays[0].shape)


def majority_ranks(ranks, n_labels: int, *, posteriors: bool, num_threads: int):
    """Majority vote of label ranks ``(A, X, Y, Z)``: ``(fused ranks (X, Y, Z) int32,
    vote fractions (X, Y, Z, n_labels) float32 or None)``; ties to the smallest rank."""
    from ..kernels.fusion import majority_vote_3d

    shape3 = ranks.shape[1:]
    fused = np.empty(shape3, dtype=np.int32)
    post = np.zeros((*shape3, n_labels) if posteriors else (1, 1, 1, 1), dtype=np.float32)

    def run(unit, start, stop):
        counts = np.empty(n_labels, dtype=np.int64)
        touched = np.empty(ranks.shape[0], dtype=np.int64)
        majority_vote_3d(ranks, n_labels, post, posteriors, fused, counts, touched,
                         start, stop)

    for_each_unit(run, axis0_ranges(shape3, grain=DEFAULT_GRAIN_VOXELS), num_threads=num_threads)
    return fused, post if posteriors else None


def _result(fused, post, values, shape) -> FusionResult:
    """Ranks back to labels, 3D-lifted arrays back to ``shape``."""
    table = np.concatenate([values, np.zeros(1, dtype=values.dtype)])  # rank -1 -> label 0
    labels = table[fused.reshape(shape)]
    if post is not None:
        post = post.reshape(*shape, len(values))
    return FusionResult(labels=labels, posteriors=post, label_values=values)


def _check_radius(radius, ndim: int, *, name: str, minimum: int) -> tuple[int, int, int]:
    """An int or one int per axis, each >= ``minimum``, as a 3-tuple (0 on a lifted axis)."""
    items = [radius] * ndim if as_index(radius) is not None else radius
    try:
        values = [as_index(r) for r in items]
    except TypeError:
        values = [None]
    if len(values) != ndim or any(v is None or v < minimum for v in values):
        raise ValueError(f"{name} must be an integer >= {minimum} or {ndim} of them (one per "
                         f"axis), got {radius!r}")
    return tuple(values) + (0,) * (3 - ndim)


def _offsets(radius, spacing=None) -> np.ndarray:
    """Every offset of the box of ``radius`` (3 per axis), shape (n, 3) int64: in raster
    order, or with ``spacing`` sorted by physical distance, ties in raster order (the zero
    offset first; the search order, which decides between equally good patches)."""
    axes = [np.arange(-r, r + 1) for r in radius]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    if spacing is not None:
        distance = ((grid * np.asarray(spacing, dtype=np.float64)) ** 2).sum(axis=1)
        grid = grid[np.argsort(distance, kind="stable")]
    return np.ascontiguousarray(grid, dtype=np.int64)


def check_jlf_options(ndim: int, *, patch_radius=DEFAULT_PATCH_RADIUS,
                      search_radius=DEFAULT_SEARCH_RADIUS, alpha: float = DEFAULT_ALPHA,
                      beta: float = DEFAULT_BETA,
                      patch_metric: str = DEFAULT_PATCH_METRIC) -> tuple:
    """JLF's options checked for images of ``ndim`` axes (a ``ValueError`` naming the bad one).

    Returns ``(patch, search, alpha, beta, patch_metric)``: the radii as
    3-tuples (0 on the axis a 2D image is lifted to), ``alpha`` and ``beta``
    as floats, ``patch_metric`` in lower case.
    """
    patch = _check_radius(patch_radius, ndim, name="patch_radius", minimum=1)
    search = _check_radius(search_radius, ndim, name="search_radius", minimum=0)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                or not 0 < float(value) < np.inf:
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    metric = patch_metric.lower() if isinstance(patch_metric, str) else patch_metric
    if metric not in PATCH_METRICS:
        raise ValueError(f"patch_metric must be one of {sorted(PATCH_METRICS)} (Pearson "
                         f"correlation or mean squares), got {patch_metric!r}")
    return patch, search, float(alpha), float(beta), metric


def joint_label_fusion(target, atlases, labels, *, patch_radius=DEFAULT_PATCH_RADIUS,
                       search_radius=DEFAULT_SEARCH_RADIUS, alpha: float = DEFAULT_ALPHA,
                       beta: float = DEFAULT_BETA, patch_metric: str = DEFAULT_PATCH_METRIC,
                       posteriors: bool = True, num_threads: int | None = None) -> FusionResult:
    """Fuse label maps by joint label fusion (Wang et al. 2013, as ``antsJointFusion``).

    Parameters
    ----------
    target : ndarray or Image, shape (X, Y[, Z])
        The image to segment (intensities).
    atlases : sequence of ndarray or Image
        The atlas images resampled onto the target grid (same shape).
    labels : sequence of ndarray or Image
        Their integer label maps on the target grid, one per atlas.
    patch_radius : int or sequence of int
        Patch radius in voxels (one per axis or one for all), 1 or more
        (ANTs' ``-p``, default 2).
    search_radius : int or sequence of int
        Radius in voxels of the search for each atlas's best patch, 0 or
        more (ANTs' ``-s``, default 3).
    alpha : float
        Added to the diagonal of ``M`` before it is inverted; > 0
        (ANTs' ``-a``, default 0.1).
    beta : float
        Exponent mapping patch differences to the joint error; > 0
        (ANTs' ``-b``, default 2).
    patch_metric : {"pc", "msq"}
        How the search scores an atlas patch (ANTs' ``-m``): ``"pc"``,
        Pearson correlation with the normalised target patch (the default,
        as antsJointFusion's), or ``"msq"``, the mean squared difference of
        the raw patches (antspyx's default; it wants atlas and target
        intensities on one scale). The weights always come from the
        normalised patches.
    posteriors : bool
        Also return each label's posterior.
    num_threads : int, optional
        As :func:`majority_vote`'s.

    Returns
    -------
    FusionResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> target = rng.random((12, 12)).astype(np.float32) * 100
    >>> lab = (target > 50).astype(np.int32)
    >>> fused = joint_label_fusion(target, [target, target], [lab, lab], posteriors=False)
    >>> bool((fused.labels == lab).all())
    True
    """
    target_data = check_array(getattr(target, "data", target), name="target")
    if not np.issubdtype(target_data.dtype, np.floating):
        target_data = target_data.astype(np.float32)
    ndim = target_data.ndim
    label_arrays = _check_labels(labels)
    if isinstance(atlases, np.ndarray) or not hasattr(atlases, "__len__"):
        raise ValueError(f"atlases must be a sequence of images (one per atlas), got "
                         f"{type(atlases).__name__}")
    if len(atlases) != len(label_arrays):
        raise ValueError(f"got {len(atlases)} atlases but {len(label_arrays)} label maps; "
                         "give one label map per atlas")
    images = []
    for index, item in enumerate(atlases):
        a = check_array(getattr(item, "data", item), name=f"atlases[{index}]")
        if a.shape != target_data.shape:
            raise ValueError(f"atlases[{index}] has shape {a.shape} but the target has "
                             f"{target_data.shape}; resample the atlases onto the target grid")
        images.append(a.astype(np.float32, copy=False))
    if label_arrays[0].shape != target_data.shape:
        raise ValueError(f"labels[0] has shape {label_arrays[0].shape} but the target has "
                         f"{target_data.shape}; resample the labels onto the target grid")
    patch, search, alpha, beta, metric = check_jlf_options(
        ndim, patch_radius=patch_radius, search_radius=search_radius, alpha=alpha, beta=beta,
        patch_metric=patch_metric)
    spacing = getattr(target, "spacing", None)
    spacing = np.ones(3) if spacing is None else np.concatenate([spacing, np.ones(3 - ndim)])
    return _jlf(target_data, images, label_arrays, patch, search, alpha, beta, posteriors,
                spacing, resolve_num_threads(num_threads), restrict=True, metric=metric)


def _patch_sums(stack, patch):
    """Each atlas's sums of values and of squares over the patch around every voxel
    (float64, zeros outside the image), shape ``stack.shape``."""
    from scipy import ndimage

    size = [2 * r + 1 for r in patch]
    n_patch = int(np.prod(size))
    box_sum = np.empty(stack.shape)
    box_squares = np.empty(stack.shape)
    for a, image in enumerate(stack):
        image = image.astype(np.float64)
        box_sum[a] = ndimage.uniform_filter(image, size, mode="constant") * n_patch
        box_squares[a] = ndimage.uniform_filter(image * image, size, mode="constant") * n_patch
    return box_sum, box_squares


def _jlf_weights(target3, stack, centres, patch, search, alpha, beta, spacing, num_threads,
                 metric: str = DEFAULT_PATCH_METRIC):
    """Pass 1 of JLF on 3D-lifted arrays: ``(weights, best)``, shape ``(X, Y, Z, A)`` each
    (float64 weights; int32 indices into the search offsets)."""
    from ..kernels.fusion import jlf_search_3d, jlf_weights_3d

    shape3 = target3.shape
    n_atlases = stack.shape[0]
    patch_offsets = _offsets(patch)
    search_offsets = _offsets(search, spacing)
    n_patch = len(patch_offsets)
    box_sum, box_squares = _patch_sums(stack, patch)
    patch_radius = np.array(patch, dtype=np.int64)
    search_radius = np.array(search, dtype=np.int64)
    code = PATCH_METRICS[metric]
    weights = np.empty((*shape3, n_atlases), dtype=np.float64)
    best = np.zeros((*shape3, n_atlases), dtype=np.int32)
    # units of whole rows, at least 2 patches thick (the box sums' halo is a patch radius)
    rows = max(2 * (2 * patch[0] + 1), -(-JLF_GRAIN_VOXELS // int(np.prod(shape3[1:]))))

    def weigh(unit, start, stop):
        plane = (stop - start, *shape3[1:])
        halo = (stop - start + 2 * patch[0], *shape3[1:])
        jlf_search_3d(target3, stack, box_sum, box_squares, centres, patch_radius,
                      search_offsets, search_radius, code, best, np.empty(plane),
                      np.empty(plane), np.empty(plane), np.empty(halo), np.empty(halo),
                      np.empty(halo), np.empty((6, *halo[:2]), dtype=np.int64), start, stop)
        jlf_weights_3d(target3, stack, centres, patch_offsets, patch_radius, search_offsets,
                       search_radius, code, alpha, beta, weights, best, np.empty(n_patch),
                       np.empty(n_patch), np.empty(n_patch, dtype=np.uint8),
                       np.empty((n_atlases, n_patch)), np.empty(n_patch),
                       np.empty(n_patch, dtype=np.uint8), np.empty((n_atlases, n_atlases)),
                       start, stop)

    for_each_unit(weigh, partition_range(0, shape3[0], grain=rows), num_threads=num_threads)
    return weights, best


def _jlf(target, images, label_arrays, patch, search, alpha, beta, posteriors, spacing,
         num_threads, *, restrict: bool, metric: str = DEFAULT_PATCH_METRIC) -> FusionResult:
    """The driver of :func:`joint_label_fusion`: both passes over axis-0 slabs.

    ``restrict=False`` computes every centre voxel (the tests check that the
    restriction described in the module docstring changes nothing). A 2D
    image is lifted to ``(X, 1, Y)``, its radii to ``(r0, 0, r1)``: the same
    sums in the same order as on ``(X, Y, 1)`` (offsets in raster order stay
    in that order), with the long axis innermost.
    """
    from scipy import ndimage

    from ..kernels.fusion import jlf_vote_3d

    ndim = target.ndim
    values, ranks, background = _ranks(label_arrays)
    target3 = np.ascontiguousarray(lift_array(target, ndim), dtype=np.float32)
    stack = np.ascontiguousarray(np.stack([lift_array(a, ndim) for a in images]))
    if ndim == 2:  # (X, 1, Y), not (X, Y, 1): the kernels' inner loops then run along Y
        target3, stack, ranks = (a.reshape(*a.shape[:-2], 1, a.shape[-2])
                                 for a in (target3, stack, ranks))
        patch, search, spacing = ((v[0], v[2], v[1]) for v in (patch, search, spacing))
    shape3 = target3.shape
    if restrict:  # only centres whose patch holds a voxel that sees several labels
        box = [2 * s + 1 for s in search]
        low = np.min([ndimage.minimum_filter(r, box, mode="nearest") for r in ranks], axis=0)
        high = np.max([ndimage.maximum_filter(r, box, mode="nearest") for r in ranks], axis=0)
        uniform = low == high
        centres = ndimage.maximum_filter((~uniform).view(np.uint8), [2 * p + 1 for p in patch],
                                         mode="constant")
        fallback = np.where(uniform, low, background).astype(np.int32)
    else:
        centres = np.ones(shape3, dtype=np.uint8)
        fallback = np.full(shape3, background, dtype=np.int32)
    centres = np.ascontiguousarray(centres, dtype=np.uint8)
    weights, best = _jlf_weights(target3, stack, centres, patch, search, alpha, beta, spacing,
                                 num_threads, metric)
    patch_offsets = _offsets(patch)
    search_offsets = _offsets(search, spacing)
    fused = np.empty(shape3, dtype=np.int32)
    n_labels = len(values)
    post = np.zeros((*shape3, n_labels) if posteriors else (1, 1, 1, 1), dtype=np.float32)

    def vote(unit, start, stop):
        jlf_vote_3d(ranks, weights, best, centres, patch_offsets, search_offsets, n_labels,
                    fallback, post, posteriors, fused, np.empty(n_labels),
                    np.empty(n_labels, dtype=np.int64), start, stop)

    for_each_unit(vote, axis0_ranges(shape3, grain=DEFAULT_GRAIN_VOXELS),
                  num_threads=num_threads)
    return _result(fused, post if posteriors else None, values, target.shape)


def _staple(target, atlases, labels, **options) -> FusionResult:
    from .staple import staple

    return staple(labels, **options)


#: fusion name -> function(target, atlases, labels, **options)
FUSIONS = {
    "majority": lambda target, atlases, labels, **options: majority_vote(labels, **options),
    "jlf": joint_label_fusion,
    "staple": _staple,
}


def check_fusion(fusion: str) -> str:
    """``fusion`` (any case) checked against :data:`FUSIONS`."""
    key = fusion.lower() if isinstance(fusion, str) else fusion
    if key not in FUSIONS:
        raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {fusion!r}")
    return key
