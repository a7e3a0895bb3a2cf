"""SyN metrics: forward/backward update fields for the symmetric diffeomorphic scheme.

The contract (:class:`SyNMetric`, sign convention, units) is described in
:mod:`parareg.metrics.syn_base`; each metric's formulas in its own module.

Examples
--------
>>> from parareg.metrics.syn import get_syn_metric
>>> get_syn_metric("cc", radius=2)
CCMetric(radius=2, eps=1e-05)
"""

from __future__ import annotations

from .._options import build
from .syn_base import SyNMetric
from .syn_cc import CCMetric
from .syn_em import EMMetric
from .syn_mi import MIMetric
from .syn_ssd import SSDMetric

#: name -> SyN metric class
SYN_METRICS = {
    "cc": CCMetric,
    "ssd": SSDMetric,
    "em": EMMetric,
    "mi": MIMetric,
}


def get_syn_metric(name: str, **kwargs) -> SyNMetric:
    """Build the SyN metric called ``name`` with hyperparameters ``kwargs``.

    Parameters
    ----------
    name : {"cc", "em", "mi", "ssd"}
        Any case (``"CC"`` is ``"cc"``).
    **kwargs
        Passed to the metric class (e.g. ``radius=2`` for ``"cc"``); ``None``
        means the metric's default. An option the metric does not take
        (``radius`` for ``"mi"``) is refused with a ``ValueError``.

    Returns
    -------
    SyNMetric
    """
    return build(SYN_METRICS, name, kind="SyN metric", **kwargs)


__all__ = ["SYN_METRICS", "CCMetric", "EMMetric", "SSDMetric", "SyNMetric", "get_syn_metric"]
