"""Similarity metrics. Affine metrics share :class:`AffineMetric`'s contract.

Examples
--------
>>> from parareg.metrics import get_affine_metric
>>> get_affine_metric("mi", bins=64)
MattesMutualInformation(bins=64, moving_gradient='interpolant')
"""

from __future__ import annotations

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
    **kwargs
        Passed to the metric class (e.g. ``bins=32`` for ``"mi"``).

    Returns
    -------
    AffineMetric
    """
    if name not in AFFINE_METRICS:
        raise ValueError(f"metric must be one of {sorted(AFFINE_METRICS)}, got {name!r}")
    return AFFINE_METRICS[name](**kwargs)


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
