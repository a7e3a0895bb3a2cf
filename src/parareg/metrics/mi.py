"""Mattes mutual information with a Parzen-window joint histogram (ITK v4 style).

With ``N`` valid samples, fixed bins ``iota(x)`` (box window), moving
Parzen coordinates ``t(x) = m(y) / dm - (m_min / dm - 2)`` (``dm`` the moving
bin size) and the cubic B-spline ``beta3``::

    p(i, k) = (1 / N) sum_x [iota(x) = i] beta3(k - t(x))
    p_f(i) = sum_k p(i, k),   p_m(k) = sum_i p(i, k)
    MI = sum_{p(i, k) > 0} p(i, k) log(p(i, k) / (p_f(i) p_m(k)))
    value = -MI

The fixed marginal does not move and each sample's Parzen weights sum to
1, so ``dMI = sum_{i,k} dp(i, k) log(p(i, k) / p_m(k))`` and::

    d value / d m(y_x) = 1 / (N dm) sum_{k = b-1}^{b+2} log(p(iota(x), k) / p_m(k)) beta3'(k - t(x))
    d value / d fixed2moving[:ndim] = sum_x (d value / d m(y_x)) grad_m(y_x) (x, 1)^T

with ``grad_m(y)`` the moving gradient at ``y`` in world units (the
interpolated gradient image, or the derivative of the linear interpolant:
see ``moving_gradient`` in :class:`~parareg.metrics.base.AffineMetric`).
A moving value outside the moving range (only next to a moving mask) is
clamped and contributes no derivative. The set of valid samples is held
fixed when differentiating (as in ITK).

Pass 1 builds the joint histogram per work unit; the histograms are reduced
in unit order and give the table ``log(p / p_m)``; pass 2 visits each
sample's four support bins only.
"""

from __future__ import annotations

import numpy as np

from ..parallel import for_each_unit, reduce_units, unit_buffers
from ..kernels.histogram import joint_histogram_3d, mattes_gradient_3d
from .base import AffineMetric, AffineMetricState, MetricEvaluation, matrix_rows

#: joint-pdf entries at or below this are treated as empty (ITK's closeToZero)
_TINY = 1e-16
#: padding bins on each side of both intensity ranges (ITK)
_PADDING = 2


def _binning(lo: float, hi: float, bins: int) -> tuple[float, float]:
    """``(bin_size, normalized_min)`` of an intensity range with 2 padding bins per side."""
    bin_size = (hi - lo) / (bins - 2 * _PADDING)
    return bin_size, lo / bin_size - _PADDING


class MattesMutualInformation(AffineMetric):
    """Negative Mattes mutual information (lower is better).

    Parameters
    ----------
    bins : int
        Histogram bins per image, 2 of them padding on each side (ITK
        convention); at least 5.
    moving_gradient : {"image", "interpolant"}
        See :class:`~parareg.metrics.base.AffineMetric`.

    Examples
    --------
    >>> import numpy as np, parareg
    >>> from parareg.metrics import MattesMutualInformation
    >>> rng = np.random.default_rng(0)
    >>> img = parareg.Image(rng.random((32, 32, 32)), np.eye(4))
    >>> mi = MattesMutualInformation(bins=32)
    >>> state = mi.setup(img, img, num_threads=2)
    >>> value, grad = mi.value_and_gradient(state, np.eye(4))
    >>> grad.shape
    (3, 4)
    >>> bool(mi.value(state, np.eye(4)) < mi.value(state, np.diag([1.0, 1, 1.1, 1])))
    True
    """

    name = "MI"

    def __init__(self, bins: int = 32, *, moving_gradient: str = "interpolant"):
        super().__init__(moving_gradient=moving_gradient)
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 5:
            raise ValueError(f"bins must be an integer >= 5 (2 padding bins each side), "
                             f"got {bins!r}")
        self.bins = int(bins)

    def __repr__(self) -> str:
        return (f"MattesMutualInformation(bins={self.bins}, "
                f"moving_gradient={self.moving_gradient!r})")

    def _binning_args(self, state: AffineMetricState) -> tuple:
        fixed_size, fixed_min = _binning(*state.fixed_range, self.bins)
        moving_size, moving_min = _binning(*state.moving_range, self.bins)
        return (fixed_size, fixed_min, moving_size, moving_min, *state.moving_range)

    def joint_histogram(self, state: AffineMetricState, fixed2moving) -> tuple[np.ndarray, int]:
        """Parzen joint histogram at ``fixed2moving``.

        Returns
        -------
        histogram : ndarray, shape (bins, bins), float64
            Fixed bin x moving bin; sums to the number of valid samples.
        num_valid : int
        """
        return self._histogram(state, self._prepare(state, fixed2moving))

    def _histogram(self, state, fixed_vox2moving_vox):
        binning = self._binning_args(state)
        hist = unit_buffers(len(state.units), (self.bins, self.bins))
        view = state.kernel_view
        counts = for_each_unit(lambda unit, start, stop: joint_histogram_3d(
            state.fixed_values, state.sample_index, *view.grid, fixed_vox2moving_vox,
            view.moving, view.moving_mask, state.use_moving_mask, *binning,
            hist[unit], start, stop), state.units, num_threads=state.num_threads)
        return reduce_units(hist), int(sum(counts))

    def evaluate(self, state: AffineMetricState, fixed2moving, *,
                 gradient: bool = True) -> MetricEvaluation:
        fixed_vox2moving_vox = self._prepare(state, fixed2moving)
        hist, num_valid = self._histogram(state, fixed_vox2moving_vox)
        if num_valid == 0:
            raise self._no_overlap(state, fixed2moving)
        joint = hist / num_valid
        fixed_pdf = joint.sum(axis=1)
        moving_pdf = joint.sum(axis=0)
        filled = joint > _TINY
        p = joint[filled]
        rows, cols = np.nonzero(filled)
        mi = float(np.sum(p * np.log(p / (fixed_pdf[rows] * moving_pdf[cols]))))
        if not gradient:
            return MetricEvaluation(-mi, None, num_valid, state.num_samples)

        log_ratio = np.zeros_like(joint)
        log_ratio[filled] = np.log(p / moving_pdf[cols])
        binning = self._binning_args(state)
        partials = unit_buffers(len(state.units), (3, 4))
        view = state.kernel_view
        moving = self._moving_args(state)
        for_each_unit(lambda unit, start, stop: mattes_gradient_3d(
            state.fixed_values, state.sample_index, *view.grid, view.fixed_vox2world,
            fixed_vox2moving_vox, *moving, *binning, log_ratio, partials[unit], start, stop),
            state.units, num_threads=state.num_threads)
        moving_bin_size = binning[2]
        grad = (matrix_rows(reduce_units(partials), state.ndim)
                * (1.0 / (num_valid * moving_bin_size)))
        return MetricEvaluation(-mi, grad, num_valid, state.num_samples)
