"""Expectation-maximisation metric for SyN (Arce-Santana et al. 2014; DIPY's ``EMMetric``).

A simplified, multi-modal variant of the demons step. Each image is
quantised into ``q_levels`` classes (DIPY's ``quantize_positive``: class 0
holds the values ``<= 0``; the positive range ``[lo, hi]`` is split into
``q_levels - 1`` equal bins). The hidden variables are the class-conditional
means of the *other* image (one E-step, no iterated conditional modes, no
Gauss-Newton V-cycle)::

    I_hat(x) = mean(I | label_J = label_J(x)),   s_I(x) = var(I | label_J = label_J(x))
    J_hat(x) = mean(J | label_I = label_I(x)),   s_J(x) = var(J | label_I = label_I(x))

with ``I = fixed_warped``, ``J = moving_warped``, statistics over ``mask``
(or all voxels), means of class 0 set to 0 and variances of classes with
fewer than 2 voxels infinite (zero step), as DIPY. The updates are demons
steps towards the predicted intensities, with the class variance as the
demons' ``sigma_i^2`` (Vercauteren et al. 2009, eq. 4)::

    forward(x)  = (I_hat - I) g_I / (|g_I|^2 + s_I / sigma_x^2)
    backward(x) = (J_hat - J) g_J / (|g_J|^2 + s_J / sigma_x^2)
    energy      = sum_x ((I - I_hat)^2 + (J - J_hat)^2) / (2 N)

``g_I = grad I`` (world axes), or with ``double_gradient`` the average
``(grad I + grad I_hat) / 2`` (DIPY adds the two; the average keeps a
demons step's length). Sign convention as every SyN metric: adding
``step * forward`` to the fixed displacement moves ``I`` towards ``I_hat``
and lowers the energy; these are ``-1`` times DIPY's demons steps.
``sigma_x`` defaults to ``sqrt(mean(spacing^2))`` mm.
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS, as_index
from ..kernels import em as kernels
from ..parallel import for_each_unit, reduce_units, resolve_num_threads, unit_buffers
from .syn_base import Pair, SyNMetric, check_positive, mean_energy, rows
from .syn_ssd import default_sigma_x_sq


def quantize(img, q_levels, units, num_threads):
    """Labels (int32, shape of ``img``) of DIPY's positive quantisation into ``q_levels``."""
    partials = unit_buffers(len(units), 3)
    for_each_unit(lambda u, a, b: kernels.positive_range(img, partials[u], a, b), units,
                  num_threads=num_threads)
    positive = partials[partials[:, 2] > 0]
    lo = float(positive[:, 0].min()) if len(positive) else 0.0
    hi = float(positive[:, 1].max()) if len(positive) else 0.0
    delta = (hi - lo + 2 * kernels.QUANTIZE_EPS) / (q_levels - 1)
    labels = np.empty(img.shape, dtype=np.int32)
    for_each_unit(lambda u, a, b: kernels.quantize_positive(img, lo, delta, q_levels, labels,
                                                            a, b),
                  units, num_threads=num_threads)
    return labels


def class_statistics(labels, values, pair, q_levels, units, num_threads):
    """Per-class mean and variance of ``values`` (DIPY's conventions), reduced in unit order."""
    stats = unit_buffers(len(units), (q_levels, 3))
    for_each_unit(lambda u, a, b: kernels.class_sums(labels, values, pair.mask, pair.use_mask,
                                                     stats[u], a, b),
                  units, num_threads=num_threads)
    count, total, squares = reduce_units(stats).T
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(count > 0, total / count, 0.0)
        variances = np.where(count > 1, np.maximum(squares / count - means ** 2, 0.0), np.inf)
    means[0] = 0.0
    return means, variances


def em_fields(pair: Pair, q_levels: int, sigma_x_sq: float, double_gradient: bool, *,
              num_threads=None, grain: int = DEFAULT_GRAIN_VOXELS):
    """Driver: EM fields ``(forward, backward, energy)`` on the kernel (3D) grid."""
    num_threads = resolve_num_threads(num_threads)
    units = rows(pair.shape3, grain)
    fixed_labels = quantize(pair.fixed, q_levels, units, num_threads)
    moving_labels = quantize(pair.moving, q_levels, units, num_threads)
    fixed_means, fixed_vars = class_statistics(moving_labels, pair.fixed, pair, q_levels,
                                                 units, num_threads)
    moving_means, moving_vars = class_statistics(fixed_labels, pair.moving, pair, q_levels,
                                                 units, num_threads)
    forward = pair.empty_field()
    backward = pair.empty_field()
    partials = unit_buffers(len(units), 2)

    def unit(u, start, stop):
        kernels.em_steps(pair.fixed, pair.moving, fixed_labels, moving_labels, fixed_means,
                         fixed_vars, moving_means, moving_vars, pair.grad2world, sigma_x_sq,
                         double_gradient, pair.mask, pair.use_mask, forward, backward, partials[u],
                         start, stop)

    for_each_unit(unit, units, num_threads=num_threads)
    return forward, backward, 0.5 * mean_energy(partials)


class EMMetric(SyNMetric):
    """Expectation-maximisation metric (multi-modal demons), simplified from DIPY's ``EMMetric``.

    Parameters
    ----------
    q_levels : int
        Quantisation levels (classes) per image, at least 2; 256 as DIPY.
    sigma_x : float, optional
        Demons regularisation in mm; ``None`` uses ``sqrt(mean(spacing^2))``.
    double_gradient : bool
        Average the gradient of each image with that of its predicted image.

    Notes
    -----
    The model, formulas and sign convention are in :mod:`parareg.metrics.syn_em`.

    Examples
    --------
    >>> import numpy as np
    >>> fixed = np.tile(np.arange(1.0, 9.0, dtype=np.float32), (6, 1))
    >>> forward, backward, energy = EMMetric(q_levels=9).compute(
    ...     fixed, 10 - fixed, vox2world=np.eye(3))
    >>> forward.shape, energy < 1e-3     # J = 10 - I predicts I exactly
    ((6, 8, 2), True)
    """

    name = "em"

    def __init__(self, q_levels: int = 256, *, sigma_x=None, double_gradient: bool = True):
        q = as_index(q_levels)
        if q is None or q < 2:
            raise ValueError(f"q_levels must be an integer >= 2 (class 0 holds values <= 0), "
                             f"got {q_levels!r}")
        self.q_levels = q
        self.sigma_x = check_positive(sigma_x, name="sigma_x", allow_none=True)
        self.double_gradient = bool(double_gradient)

    def _params(self) -> dict:
        return {"q_levels": self.q_levels, "sigma_x": self.sigma_x,
                "double_gradient": self.double_gradient}

    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        pair = Pair(fixed_warped, moving_warped, vox2world, mask)
        sigma_x_sq = default_sigma_x_sq(pair) if self.sigma_x is None else self.sigma_x ** 2
        forward, backward, energy = em_fields(pair, self.q_levels, sigma_x_sq,
                                              self.double_gradient, num_threads=num_threads)
        return pair.unfold(forward), pair.unfold(backward), energy

    compute.__doc__ = SyNMetric.compute.__doc__
