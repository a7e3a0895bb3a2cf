"""DIPY's SyN metrics (``dipy.align.metrics``): lookalikes, and their translation to parareg.

:func:`syn_metric` reads a metric object by its DIPY attributes (duck-typed,
so DIPY's own ``CCMetric``/``SSDMetric``/``EMMetric`` objects work without
importing DIPY) and gives the parareg SyN metric plus the update smoothing
(``update_sigma``, voxels) that DIPY's metric applies to its steps.
"""

from __future__ import annotations

from ..metrics.syn import get_syn_metric
from ._compat import warn_unsupported

__all__ = ["CCMetric", "EMMetric", "SSDMetric", "check_dim", "syn_metric"]

STEP_TYPES = ("demons", "gauss_newton")


class _Metric:
    def __init__(self, dim):
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        self.dim = int(dim)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "dim")
        return f"{type(self).__name__}({self.dim}, {params})"


class CCMetric(_Metric):
    """DIPY's local cross-correlation: ``radius`` (voxels) window, ``sigma_diff`` update smoothing.

    Examples
    --------
    >>> CCMetric(3, radius=2)
    CCMetric(3, sigma_diff=2.0, radius=2)
    """

    def __init__(self, dim, *, sigma_diff=2.0, radius=4):
        super().__init__(dim)
        self.sigma_diff = sigma_diff
        self.radius = radius


class SSDMetric(_Metric):
    """DIPY's sum of squared differences; ``smooth`` (voxels) smooths each demons step."""

    def __init__(self, dim, *, smooth=4, inner_iter=10, step_type="demons"):
        super().__init__(dim)
        self.smooth = smooth
        self.inner_iter = inner_iter
        self.step_type = step_type


class EMMetric(_Metric):
    """DIPY's expectation-maximisation metric over ``q_levels`` intensity classes."""

    def __init__(self, dim, *, smooth=1.0, inner_iter=5, q_levels=256, double_gradient=True,
                 step_type="gauss_newton"):
        super().__init__(dim)
        self.smooth = smooth
        self.inner_iter = inner_iter
        self.q_levels = q_levels
        self.use_double_gradient = double_gradient  # DIPY's attribute name
        self.step_type = step_type


def _step_type(metric, name: str) -> None:
    step_type = getattr(metric, "step_type", "demons")
    if step_type not in STEP_TYPES:
        raise ValueError(f"{name}.step_type must be one of {list(STEP_TYPES)}, "
                         f"got {step_type!r}")
    if step_type == "gauss_newton":
        warn_unsupported(f"{name}.step_type", step_type,
                         "parareg has no Gauss-Newton (multi-resolution Gauss-Seidel) step; it "
                         f"takes a demons-type gradient step smoothed by smooth="
                         f"{metric.smooth!r} voxels, and inner_iter is not used "
                         "(step_type='demons' says this without the warning)", stacklevel=5)


def check_dim(metric, dim: int) -> None:
    """Refuse a DIPY metric made for another dimension than the images'."""
    if getattr(metric, "dim", dim) != dim:
        kind = type(metric).__name__
        raise ValueError(f"{kind} was made for {metric.dim}D images but the images are "
                         f"{dim}D: make it with {kind}({dim}, ...)")


def syn_metric(metric):
    """A DIPY metric object as ``(parareg SyN metric, update_sigma in voxels)``.

    Parameters
    ----------
    metric : CCMetric, SSDMetric or EMMetric
        DIPY's own objects (read by their attributes) or this module's lookalikes.
    """
    kind = type(metric).__name__
    if kind not in ("CCMetric", "SSDMetric", "EMMetric"):
        raise TypeError(f"metric must be a DIPY CCMetric, SSDMetric or EMMetric (from "
                        f"dipy.align.metrics or parareg.dipy), got {kind}")
    if kind == "CCMetric":
        return get_syn_metric("cc", radius=metric.radius), float(metric.sigma_diff)
    _step_type(metric, kind)
    if kind == "SSDMetric":
        return get_syn_metric("ssd"), float(metric.smooth)
    return (get_syn_metric("em", q_levels=metric.q_levels,
                           double_gradient=metric.use_double_gradient), float(metric.smooth))
