"""Normalised cross-correlation (global, over all samples) for same-modality registration.

With ``N`` valid samples, ``a = f(x) - f̄`` and ``b = m(y_x) - m̄`` (means over
the valid samples), ``S_ff = sum a^2``, ``S_mm = sum b^2``, ``S_fm = sum a b``::

    value = -S_fm / sqrt(S_ff S_mm)
    d value / d m(y_x) = -(a / sqrt(S_ff S_mm) - S_fm b / (sqrt(S_ff) S_mm^(3/2)))
    d value / d fixed2moving[:ndim] = sum_x (d value / d m(y_x)) grad_m(y_x) (x, 1)^T

(the mean terms drop out because ``sum a = sum b = 0``), with ``grad_m(y)``
the moving gradient at ``y`` in world units (see ``moving_gradient`` in
:class:`~parareg.metrics.base.AffineMetric`). Moments are
accumulated about fixed shifts (the sample and moving-image means from
set-up) in float64 to avoid cancellation. When the valid samples of either
image are constant (to round-off) the correlation is undefined; the value
is then 0 and the gradient 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..parallel import for_each_unit, reduce_units, unit_buffers
from ..kernels.affine_metrics import correlation_3d
from .base import AffineMetric, AffineMetricState, MetricEvaluation, matrix_rows

#: the valid samples of an image count as constant when their centred sum of
#: squares is below this fraction of the shifted raw one (the round-off level
#: of the one-pass moments, far below any float32 image's real contrast)
_FLAT = 1e-10


class Correlation(AffineMetric):
    """Negative normalised cross-correlation ``-NCC`` in ``[-1, 1]`` (lower is better).

    Parameters
    ----------
    moving_gradient : {"image", "interpolant"}
        See :class:`~parareg.metrics.base.AffineMetric`.

    Examples
    --------
    >>> import numpy as np, parareg
    >>> from parareg.metrics import Correlation
    >>> img = parareg.Image(np.random.default_rng(0).random((24, 24)), np.eye(3))
    >>> cc = Correlation()
    >>> state = cc.setup(img, img.with_data(2 * img.data + 1))
    >>> round(cc.value(state, np.eye(3)), 6)
    -1.0
    """

    name = "correlation"

    def __repr__(self) -> str:
        return f"Correlation(moving_gradient={self.moving_gradient!r})"

    def evaluate(self, state: AffineMetricState, fixed2moving, *,
                 gradient: bool = True) -> MetricEvaluation:
        fixed_vox2moving_vox = self._prepare(state, fixed2moving)
        ndim = state.ndim
        n_units = len(state.units)
        sums = unit_buffers(n_units, 5)
        partials = unit_buffers(n_units, (3, 3, 4))
        view = state.kernel_view
        moving = self._moving_args(state)
        counts = for_each_unit(lambda unit, start, stop: correlation_3d(
            state.fixed_values, state.sample_index, *view.grid, view.fixed_vox2world,
            fixed_vox2moving_vox, *moving, gradient, state.fixed_mean, state.moving_mean,
            sums[unit], partials[unit], start, stop), state.units, num_threads=state.num_threads)
        n = int(sum(counts))
        if n == 0:
            raise self._no_overlap(state, fixed2moving)
        sa, sb, saa, sbb, sab = reduce_units(sums)
        mean_a, mean_b = sa / n, sb / n
        s_ff = saa - sa * mean_a
        s_mm = sbb - sb * mean_b
        s_fm = sab - sa * mean_b
        if s_ff <= _FLAT * saa or s_mm <= _FLAT * sbb:
            grad = np.zeros((ndim, ndim + 1)) if gradient else None
            return MetricEvaluation(0.0, grad, n, state.num_samples)
        norm = math.sqrt(s_ff * s_mm)
        value = float(-s_fm / norm)
        if not gradient:
            return MetricEvaluation(value, None, n, state.num_samples)
        g_one, g_a, g_b = matrix_rows(reduce_units(partials), ndim)
        alpha = 1.0 / norm
        beta = s_fm / (norm * s_mm)
        grad = -(alpha * (g_a - mean_a * g_one) - beta * (g_b - mean_b * g_one))
        return MetricEvaluation(value, grad, n, state.num_samples)
