"""Dense Parzen-window mutual information for SyN (a dense, symmetric Mattes MI).

Every voxel ``x`` of the grid (inside ``mask``) is a sample. With
``I = fixed_warped`` and ``J = moving_warped``, each image's range
``[lo, hi]`` (over the evaluated voxels) is binned as the affine Mattes MI
(:mod:`parareg.metrics.mi`, ITK's convention): ``B`` bins, 2 of them padding
on each side, bin size ``D = (hi - lo) / (B - 4)`` and Parzen coordinate
``t(x) = v(x) / D - (lo / D - 2)`` in ``[2, B - 2]``. Unlike the affine
metric, where only the moving image moves and the fixed one gets a box window, here both
images move, so *both* axes use the cubic B-spline ``beta3`` window; then
both marginals are smooth functions of the intensities and both update
fields are exact derivatives::

    p(i, k) = (1 / N) sum_x beta3(i - t_I(x)) beta3(k - t_J(x))
    p_I(i) = sum_k p(i, k),   p_J(k) = sum_i p(i, k)
    L(i, k) = log(p(i, k) / (p_I(i) p_J(k)))     (0 where p(i, k) <= 1e-16)
    MI = sum_{i,k} p(i, k) L(i, k),   energy = -MI

Each sample's Parzen weights sum to 1 along each axis, so the mass is
conserved and ``dMI = sum_{i,k} dp(i, k) L(i, k)``. The B-spline slopes of
one sample also sum to 0 along an axis, so the ``p_I`` part of ``L`` drops
out of the derivative w.r.t. ``J`` (it equals the textbook
``log(p / p_J)`` form) and the ``p_J`` part out of the one w.r.t. ``I``::

    dMI/dJ(x) = -1 / (N D_J) sum_{i,k} beta3(i - t_I(x)) beta3'(k - t_J(x)) L(i, k)
    dMI/dI(x) = -1 / (N D_I) sum_{i,k} beta3'(i - t_I(x)) beta3(k - t_J(x)) L(i, k)

(only the 4 x 4 support bins of ``x`` are visited). With world gradients
``grad I``, ``grad J`` (``numpy.gradient`` mapped by ``inv(A).T``, as every
SyN metric)::

    forward(x)  = dMI/dI(x) grad I(x) = -d energy / d u_s(x)
    backward(x) = dMI/dJ(x) grad J(x) = -d energy / d u_m(x)

so, to first order, ``u_s + step * forward`` and ``u_m + step * backward``
raise MI (lower the energy), the SyN sign convention. These are the exact
per-voxel gradients of the energy, including the ``1 / N``, so their size
shrinks with the grid; the SyN driver rescales every update anyway. The
range ``[lo, hi]`` and the sample set are held fixed when differentiating
(as in ITK). Voxels outside ``mask`` get zero fields and are not samples.

Pass 1 finds the ranges, pass 2 builds per-unit joint histograms (reduced in
unit order) and the table ``L``, pass 3 computes the fields; units are
slabs of axis-0 rows fixed by the grid, so every output is bit-identical at
any thread count.
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS, as_index
from ..kernels import syn_mi as kernels
from ..parallel import for_each_unit, reduce_units, resolve_num_threads, unit_buffers
from .mi import _TINY, _binning
from .syn_base import Pair, SyNMetric, rows


def mi_ranges(pair: Pair, units, num_threads) -> tuple[tuple, tuple, int]:
    """``((I min, I max), (J min, J max), count)`` over the voxels in the mask."""
    partials = unit_buffers(len(units), 5)
    for_each_unit(lambda u, a, b: kernels.masked_range(pair.fixed, pair.moving, pair.mask,
                                                       pair.use_mask, partials[u], a, b),
                  units, num_threads=num_threads)
    filled = partials[partials[:, 4] > 0]
    fixed_range = (float(filled[:, 0].min()), float(filled[:, 1].max()))
    moving_range = (float(filled[:, 2].min()), float(filled[:, 3].max()))
    return fixed_range, moving_range, int(partials[:, 4].sum())


def check_ranges(fixed_range, moving_range, use_mask) -> None:
    """A ``ValueError`` naming the image that is constant (over the mask)."""
    where = " inside mask" if use_mask else ""
    for name, (lo, hi) in (("fixed_warped", fixed_range), ("moving_warped", moving_range)):
        if not hi > lo:
            raise ValueError(f"{name} is constant{where} (all values {lo!r}); mutual "
                             "information needs intensity variation in both images")


def mi_fields(pair: Pair, bins: int, *, num_threads=None, grain: int = DEFAULT_GRAIN_VOXELS,
              return_histogram: bool = False):
    """Driver: dense MI fields ``(forward, backward, energy)`` on the kernel (3D) grid.

    With ``return_histogram`` also the joint histogram ``(bins, bins)`` (fixed
    bin x moving bin, float64, summing to N).
    """
    num_threads = resolve_num_threads(num_threads)
    units = rows(pair.shape3, grain)
    fixed_range, moving_range, count = mi_ranges(pair, units, num_threads)
    check_ranges(fixed_range, moving_range, pair.use_mask)
    fixed_size, fixed_min = _binning(*fixed_range, bins)
    moving_size, moving_min = _binning(*moving_range, bins)
    binning = np.array([fixed_size, fixed_min, *fixed_range,
                        moving_size, moving_min, *moving_range], dtype=np.float64)

    hist = unit_buffers(len(units), (bins, bins))
    for_each_unit(lambda u, a, b: kernels.mi_joint_histogram(
        pair.fixed, pair.moving, pair.mask, pair.use_mask, binning, hist[u], a, b),
        units, num_threads=num_threads)
    joint_counts = reduce_units(hist)
    joint = joint_counts / count
    fixed_pdf = joint.sum(axis=1)
    moving_pdf = joint.sum(axis=0)
    filled = joint > _TINY
    filled_rows, filled_cols = np.nonzero(filled)
    log_ratio = np.zeros_like(joint)
    log_ratio[filled] = np.log(joint[filled] / (fixed_pdf[filled_rows] * moving_pdf[filled_cols]))
    energy = -float(np.sum(joint[filled] * log_ratio[filled]))

    forward = pair.empty_field()
    backward = pair.empty_field()
    scale_fixed = -1.0 / (count * fixed_size)
    scale_moving = -1.0 / (count * moving_size)
    for_each_unit(lambda u, a, b: kernels.mi_steps(
        pair.fixed, pair.moving, pair.grad2world, pair.mask, pair.use_mask, binning, log_ratio,
        scale_fixed, scale_moving, forward, backward, a, b), units, num_threads=num_threads)
    if return_histogram:
        return forward, backward, energy, joint_counts
    return forward, backward, energy


class MIMetric(SyNMetric):
    """Dense mutual information with cubic B-spline Parzen windows on both images.

    For multi-modal pairs with a global (not necessarily monotone or local)
    intensity relation, e.g. FLAIR to T1 with contrast.

    Parameters
    ----------
    bins : int
        Histogram bins per image, 2 of them padding on each side (ITK's
        convention, as :class:`~parareg.metrics.MattesMutualInformation`);
        at least 5.

    Notes
    -----
    Formulas, sign convention and units are in :mod:`parareg.metrics.syn_mi`.
    The fields are the exact gradients of ``energy = -MI`` (they include
    ``1 / N``), so they are small; the SyN driver rescales them.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fixed = rng.random((20, 20)).astype(np.float32)
    >>> forward, backward, energy = MIMetric(bins=16).compute(
    ...     fixed, 1 - fixed, vox2world=np.eye(3))      # J a function of I: high MI
    >>> forward.shape, forward.dtype, bool(energy < -1)
    ((20, 20, 2), dtype('float32'), True)
    """

    name = "mi"

    def __init__(self, bins: int = 32):
        b = as_index(bins)
        if b is None or b < 5:
            raise ValueError(f"bins must be an integer >= 5 (2 padding bins each side), "
                             f"got {bins!r}")
        self.bins = b

    def _params(self) -> dict:
        return {"bins": self.bins}

    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        pair = Pair(fixed_warped, moving_warped, vox2world, mask)
        forward, backward, energy = mi_fields(pair, self.bins, num_threads=num_threads)
        return pair.unfold(forward), pair.unfold(backward), energy

    compute.__doc__ = SyNMetric.compute.__doc__
