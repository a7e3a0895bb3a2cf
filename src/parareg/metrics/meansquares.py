"""Mean squared intensity difference for same-modality linear registration.

With ``N`` valid samples and ``d(x) = m(y_x) - f(x)``::

    value = (1 / N) sum_x d(x)^2
    d value / d fixed2moving[:ndim] = (2 / N) sum_x d(x) grad_m(y_x) (x, 1)^T

``grad_m(y)`` is the moving gradient at ``y`` in world units (the
interpolated gradient image, or the derivative of the linear interpolant:
see ``moving_gradient`` in :class:`~parareg.metrics.base.AffineMetric`).
"""

from __future__ import annotations

from ..parallel import for_each_unit, reduce_units, unit_buffers
from ..kernels.affine_metrics import mean_squares_3d
from .base import AffineMetric, AffineMetricState, MetricEvaluation, matrix_rows


class MeanSquares(AffineMetric):
    """Mean squared difference ``mean((m(y) - f(x))^2)`` (lower is better).

    Parameters
    ----------
    moving_gradient : {"image", "interpolant"}
        See :class:`~parareg.metrics.base.AffineMetric`.

    Examples
    --------
    >>> import numpy as np, parareg
    >>> from parareg.metrics import MeanSquares
    >>> img = parareg.Image(np.random.default_rng(0).random((24, 24)), np.eye(3))
    >>> ms = MeanSquares()
    >>> state = ms.setup(img, img)
    >>> ms.value(state, np.eye(3))
    0.0
    """

    name = "mean squares"

    def __repr__(self) -> str:
        return f"MeanSquares(moving_gradient={self.moving_gradient!r})"

    def evaluate(self, state: AffineMetricState, fixed2moving, *,
                 gradient: bool = True) -> MetricEvaluation:
        fixed_vox2moving_vox = self._prepare(state, fixed2moving)
        ndim = state.ndim
        n_units = len(state.units)
        sums = unit_buffers(n_units, 1)
        partials = unit_buffers(n_units, (3, 4))
        view = state.kernel_view
        moving = self._moving_args(state)
        counts = for_each_unit(lambda unit, start, stop: mean_squares_3d(
            state.fixed_values, state.sample_index, *view.grid, view.fixed_vox2world,
            fixed_vox2moving_vox, *moving, gradient, sums[unit], partials[unit], start, stop),
            state.units, num_threads=state.num_threads)
        num_valid = int(sum(counts))
        if num_valid == 0:
            raise self._no_overlap(state, fixed2moving)
        value = float(reduce_units(sums)[0]) / num_valid
        grad = matrix_rows(reduce_units(partials), ndim) * (2.0 / num_valid) if gradient else None
        return MetricEvaluation(value, grad, num_valid, state.num_samples)
