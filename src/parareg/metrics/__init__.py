"""Similarity metrics. Affine metrics share :class:`AffineMetric`'s contract.

Examples
--------
>>> from parareg.metrics import get_affine_metric
>>> get_affine_metric("mi", bins=64)
MattesMutualInformation(bins=64, moving_gradient='interpolant')
"""

from __future__ import annotations

from .._options import build
from .base import (
    AffineMetric,
    AffineMetricState,
    MetricEvaluation,
    NoOverlapError,
    select_samples,
)
from .correlation import Correlation
from .meansquares import MeanSquares
from .mi import MattesMutualInformation

#: name -> affine metric class
AFFINE_METRICS = {
    "mi": MattesMutualInformation,
    "meansquares": MeanSquares,
    "correlation": Correlation,
}


def get_affine_metric(name: str, **kwargs) -> AffineMetric:
    """Build the affine metric called ``name`` with hyperparameters ``kwargs``.

    Parameters
    ----------
    name : {"mi", "meansquares", "correlation"}
        Any case (``"MI"`` is ``"mi"``).
    **kwargs
        Passed to the metric class (e.g. ``bins=32`` for ``"mi"``); ``None``
        means the metric's default. An option the metric does not take
        (``bins`` for ``"correlation"``) is refused with a ``ValueError``.

    Returns
    -------
    AffineMetric
    """
    return build(AFFINE_METRICS, name, kind="affine metric", **kwargs)


__all__ = [
    "AFFINE_METRICS",
    "AffineMetric",
    "AffineMetricState",
    "Correlation",
    "MattesMutualInformation",
    "MeanSquares",
    "MetricEvaluation",
    "NoOverlapError",
    "get_affine_metric",
    "select_samples",
]
