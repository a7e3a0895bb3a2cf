"""Sum of squared differences for SyN with the demons step (Thirion; Vercauteren et al. 2009).

With ``I = fixed_warped``, ``J = moving_warped``, ``delta = J - I`` and
world gradients ``grad I``, ``grad J`` (``inv(A).T``, as :func:`parareg.gradient`)::

    forward(x)  =  delta grad I / (|grad I|^2 + delta^2 / sigma_x^2)
    backward(x) = -delta grad J / (|grad J|^2 + delta^2 / sigma_x^2)
    energy      =  sum_x delta^2 / N           (N voxels in mask, or all)

``forward`` moves the fixed image towards the moving one: to first order
``I(x + forward) = I + grad I . forward`` is closer to ``J`` (pull
convention, step added to the fixed displacement), and ``backward`` moves
``J`` towards ``I``. These are ``-1`` times DIPY's ``compute_demons_step``.
The step is bounded, ``|forward| <= sigma_x / 2`` mm, and 0 where the
denominator is below 1e-9. ``sigma_x`` (mm) defaults to DIPY's
``sqrt(mean(spacing^2))``. Every voxel is evaluated (no border).
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS
from ..kernels import ssd as kernels
from ..parallel import for_each_unit, resolve_num_threads, unit_buffers
from .syn_base import Pair, SyNMetric, check_positive, mean_energy, rows


def default_sigma_x_sq(pair: Pair) -> float:
    """DIPY's demons regularisation ``sigma_x^2 = mean(spacing^2)``, mm^2."""
    return float(np.mean(pair.spacing ** 2))


def ssd_fields(pair: Pair, sigma_x_sq: float, *, num_threads=None,
               grain: int = DEFAULT_GRAIN_VOXELS):
    """Driver: demons fields ``(forward, backward, energy)`` on the kernel (3D) grid."""
    num_threads = resolve_num_threads(num_threads)
    forward = pair.empty_field()
    backward = pair.empty_field()
    units = rows(pair.shape3, grain)
    partials = unit_buffers(len(units), 2)

    def unit(u, start, stop):
        kernels.ssd_steps(pair.fixed, pair.moving, pair.grad2world, sigma_x_sq, pair.mask,
                          pair.use_mask, forward, backward, partials[u], start, stop)

    for_each_unit(unit, units, num_threads=num_threads)
    return forward, backward, mean_energy(partials)


class SSDMetric(SyNMetric):
    """Sum of squared differences with the demons step (mono-modal images).

    Parameters
    ----------
    sigma_x : float, optional
        Demons regularisation in mm: the step length is at most
        ``sigma_x / 2``. ``None`` uses ``sqrt(mean(spacing^2))`` of the grid.

    Notes
    -----
    Formulas and sign convention are in :mod:`parareg.metrics.syn_ssd`.

    Examples
    --------
    >>> import numpy as np
    >>> ramp = np.tile(np.arange(8.0, dtype=np.float32), (6, 1))
    >>> forward, backward, energy = SSDMetric().compute(ramp, ramp + 1, vox2world=np.eye(3))
    >>> forward[3, 4].tolist(), energy    # I(x + 0.5) = I + 0.5: half way to J
    ([0.0, 0.5], 1.0)
    """

    name = "ssd"

    def __init__(self, sigma_x=None):
        self.sigma_x = check_positive(sigma_x, name="sigma_x", allow_none=True)

    def _params(self) -> dict:
        return {"sigma_x": self.sigma_x}

    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        pair = Pair(fixed_warped, moving_warped, vox2world, mask)
        sigma_x_sq = default_sigma_x_sq(pair) if self.sigma_x is None else self.sigma_x ** 2
        forward, backward, energy = ssd_fields(pair, sigma_x_sq, num_threads=num_threads)
        return pair.unfold(forward), pair.unfold(backward), energy

    compute.__doc__ = SyNMetric.compute.__doc__
