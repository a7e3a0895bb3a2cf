"""Local cross-correlation (box window) for SyN, after Avants et al. 2008 and DIPY.

At each voxel ``x`` take the window ``W(x)`` of ``n = (2r + 1)^ndim`` voxels
centred on ``x``, the local means ``Ī``, ``J̄`` of ``I = fixed_warped`` and
``J = moving_warped`` over it, ``Ĩ = I(x) - Ī``, ``J̃ = J(x) - J̄`` and::

    A = sum_W (I - Ī)(J - J̄) = sum IJ - sum I sum J / n
    B = sum_W (I - Ī)^2      = sum I^2 - (sum I)^2 / n
    C = sum_W (J - J̄)^2      = sum J^2 - (sum J)^2 / n
    cc(x) = A^2 / (B C)

The update fields are the derivatives of the centre window's ``cc`` with
respect to the displacement of each image (the approximation of Avants et
al. and of DIPY's ``compute_cc_forward_step``/``backward_step``, which keep
only the window centred on ``x``)::

    forward(x)  = d cc / d I(x) * grad I(x) = 2A/(BC) (J̃ - (A/B) Ĩ) grad I(x)
    backward(x) = d cc / d J(x) * grad J(x) = 2A/(BC) (Ĩ - (A/C) J̃) grad J(x)

so ``forward`` uses the gradient of ``fixed_warped`` and ``backward`` that of
``moving_warped`` (world axes, ``inv(A).T``). Adding ``step * forward`` to
the fixed displacement (pull convention) raises the correlation; these are
``-1`` times DIPY's steps. ``energy = -sum_x cc(x) / N``, ``N`` the voxels
evaluated (the interior, intersected with ``mask``), in ``[-1, 0]``.

``gradient="exact"`` (:class:`CCMetric`) differentiates the whole energy
instead: ``I(x)`` lies in every window ``W(y)`` with ``x in W(y)``, and with
``alpha = 2A/(BC)``, ``beta_f = alpha A/B``, ``beta_m = alpha A/C`` of each
window::

    d cc(y) / d I(x) = alpha(y) (J(x) - J̄(y)) - beta_f(y) (I(x) - Ī(y))
    forward(x)  = sum_{y: x in W(y)} d cc(y) / d I(x) * grad I(x)
                = (J(x) S[alpha] - S[alpha J̄] - I(x) S[beta_f] + S[beta_f Ī]) grad I(x)
    backward(x) = (I(x) S[alpha] - S[alpha Ī] - J(x) S[beta_m] + S[beta_m J̄]) grad J(x)

``S[.]`` a window sum of the seven coefficient maps (zero where a window is
not evaluated), computed with the same running sums: about twice the work of
the centre approximation. The variances are regularised first,
``B <- B + kappa n var(I)`` and ``C <- C + kappa n var(J)`` (``kappa`` =
``CC_EXACT_REGULARIZATION``, the variances over the whole images), in the
energy too: without it a window that holds one faint voxel of brain next to
background has ``B`` near 0, and its huge coefficients, spread over the
window, set the largest update and so (max-norm scaling) shrink every other
one. With ``kappa = 0`` the fields are the exact gradient of ``-N * energy``
(tested against finite differences); with ``kappa > 0`` that of the
regularised energy with the two variances held constant. Fields are nonzero
up to ``r`` voxels outside the evaluated region, and 0 outside ``mask``. It is smoother than the centre term (a box
average of the coefficients), so the same smoothing gives a better-conditioned
update (measured in BENCHMARKS.md, "The exact CC gradient").

Boundaries, as DIPY: window sums are computed everywhere over the window
clipped to the image; fields and energy are evaluated only where the whole
window fits (voxels at least ``r`` from every border; fields are 0 in that
border). Guard: where ``B <= 1e-9 sum I^2`` or ``C <= 1e-9 sum J^2`` (a
variance lost in float64 rounding: a flat window) or ``B C < eps``, the
voxel contributes ``cc = 0`` and zero fields (it still counts in ``N``).

Window sums use separable running sums in float64: along axes Z then Y in
slabs of axis-0 rows, then along axis X in slabs of axis-1 columns fused
with the field computation -- never a loop over each voxel's window.
"""

from __future__ import annotations

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS
from ..kernels import cc as kernels
from ..parallel import for_each_unit, resolve_num_threads, unit_buffers
from .syn_base import (
    Pair,
    SyNMetric,
    check_positive,
    check_radius,
    columns,
    mean_energy,
    rows,
)


#: CCMetric(gradient=...): the centre window's term (Avants et al., DIPY, ANTs) or the exact one
CC_GRADIENTS = ("center", "exact")
#: gradient="exact": each window's variances get this fraction of a window of the whole
#: image's variance added (``B + kappa n var(I)``), so a window with next to no contrast in
#: one image (brain edge against background) cannot dominate its neighbours' updates
CC_EXACT_REGULARIZATION = 1e-2


def cc_fields(pair: Pair, radius: int, eps: float, *, num_threads=None,
              grain: int = DEFAULT_GRAIN_VOXELS, return_sums: bool = False,
              gradient: str = "center", regularization: float = CC_EXACT_REGULARIZATION):
    """Driver: window sums and CC update fields on the pool.

    Returns ``(forward, backward, energy)`` as kernel fields (3D grid), plus
    the box sums ``(5, X, Y, Z)`` float64 when ``return_sums``.
    ``regularization`` is ``kappa`` of ``gradient="exact"`` (module docstring).
    """
    num_threads = resolve_num_threads(num_threads)
    shape3 = pair.shape3
    nz = shape3[2]
    # a 2D image's trailing axis of length 1 has radius 0
    radii = [radius] * pair.ndim + [0] * (3 - pair.ndim)
    rx, ry, rz = radii
    sums = np.empty((5, *shape3), dtype=np.float64)
    forward = pair.empty_field()
    backward = pair.empty_field()

    units = rows(shape3, grain)
    scratch = unit_buffers(len(units), (ry + 2, nz))

    def yz(u, start, stop):
        kernels.cc_box_sums_yz(pair.fixed, pair.moving, ry, rz, sums, scratch[u], start, stop)

    for_each_unit(yz, units, num_threads=num_threads)

    if gradient == "exact":
        forward, backward, energy = _exact_fields(pair, sums, radii, eps, regularization,
                                                  forward, backward, num_threads=num_threads,
                                                  grain=grain)
        return (forward, backward, energy, sums) if return_sums else (forward, backward, energy)

    units = columns(shape3, grain)
    scratch = unit_buffers(len(units), (rx + 2, nz))
    partials = unit_buffers(len(units), 2)

    def x_and_steps(u, start, stop):
        kernels.cc_steps(pair.fixed, pair.moving, sums, rx, ry, rz, pair.grad2world,
                         pair.mask, pair.use_mask, eps, forward, backward, scratch[u],
                         partials[u], start, stop)

    for_each_unit(x_and_steps, units, num_threads=num_threads)
    energy = mean_energy(partials, sign=-1.0)
    if return_sums:
        return forward, backward, energy, sums
    return forward, backward, energy


def _exact_fields(pair: Pair, sums, radii, eps, kappa, forward, backward, *, num_threads,
                  grain):
    """The exact gradient (module docstring), from the box sums along axes 2 and 1: the
    windows' coefficients (units along axis 1), their window sums along axes 2 and 1 (units
    along axis 0), then along axis 0 and the fields (units along axis 1)."""
    rx, ry, rz = radii
    shape3 = pair.shape3
    nz = shape3[2]
    coef = np.empty((kernels.CC_EXACT_CHANNELS, *shape3), dtype=np.float64)
    n = float(np.prod([2 * r + 1 for r in radii]))
    delta_f = kappa * n * float(np.var(pair.fixed, dtype=np.float64))
    delta_m = kappa * n * float(np.var(pair.moving, dtype=np.float64))
    units = columns(shape3, grain)
    scratch = unit_buffers(len(units), (rx + 2, nz))
    partials = unit_buffers(len(units), 2)

    def coefficients(u, start, stop):
        kernels.cc_exact_coefficients(pair.fixed, pair.moving, sums, rx, ry, rz, pair.mask,
                                      pair.use_mask, eps, delta_f, delta_m, coef, scratch[u],
                                      partials[u], start, stop)

    for_each_unit(coefficients, units, num_threads=num_threads)
    row_units = rows(shape3, grain)
    keep = unit_buffers(len(row_units), rz + 1)
    row_scratch = unit_buffers(len(row_units), (ry + 2, nz))

    def yz(u, start, stop):
        kernels.box_sums_yz(coef, ry, rz, keep[u], row_scratch[u], start, stop)

    for_each_unit(yz, row_units, num_threads=num_threads)

    def x_and_steps(u, start, stop):
        kernels.cc_exact_steps(pair.fixed, pair.moving, coef, rx, pair.grad2world, pair.mask,
                               pair.use_mask, forward, backward, scratch[u], start, stop)

    for_each_unit(x_and_steps, units, num_threads=num_threads)
    return forward, backward, mean_energy(partials, sign=-1.0)


class CCMetric(SyNMetric):
    """Local normalised cross-correlation over a box window (ANTs' ``CC``, DIPY's ``CCMetric``).

    Parameters
    ----------
    radius : int
        Half-width of the box window in voxels (window ``2 * radius + 1``
        along each axis); every image axis must hold at least that many voxels.
    eps : float
        Windows with ``B * C < eps`` (intensity^4) are treated as flat; 1e-5 as DIPY.
    gradient : {"center", "exact"}
        ``"center"`` (DIPY's and ANTs' approximation): each voxel's update
        from its own window only. ``"exact"``: the derivative of the summed
        local CC of every window containing the voxel (about twice the
        metric's work; a smoother, better-conditioned update; the presets of
        :func:`parareg.register` use it). Formulas in :mod:`parareg.metrics.syn_cc`.

    Notes
    -----
    Formulas, sign convention and boundary handling are in the module
    docstring of :mod:`parareg.metrics.syn_cc`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> fixed = rng.random((12, 12)).astype(np.float32)
    >>> forward, backward, energy = CCMetric(radius=2).compute(
    ...     fixed, fixed, vox2world=np.eye(3))
    >>> forward.shape, round(energy, 6)
    ((12, 12, 2), -1.0)
    """

    name = "cc"

    def __init__(self, radius: int = 4, *, eps: float = 1e-5, gradient: str = "center"):
        self.radius = check_radius(radius)
        self.eps = check_positive(eps, name="eps")
        if gradient not in CC_GRADIENTS:
            raise ValueError(f"gradient must be one of {list(CC_GRADIENTS)}, got {gradient!r}")
        self.gradient = gradient

    def _params(self) -> dict:
        params = {"radius": self.radius, "eps": self.eps}
        if self.gradient != "center":
            params["gradient"] = self.gradient
        return params

    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        pair = Pair(fixed_warped, moving_warped, vox2world, mask)
        window = 2 * self.radius + 1
        if min(pair.shape) < window:
            raise ValueError(f"fixed_warped has shape {pair.shape}: every axis needs at "
                             f"least 2 * radius + 1 = {window} voxels for radius="
                             f"{self.radius}; use a smaller radius or a finer pyramid level")
        forward, backward, energy = cc_fields(pair, self.radius, self.eps,
                                              num_threads=num_threads, gradient=self.gradient)
        return pair.unfold(forward), pair.unfold(backward), energy

    compute.__doc__ = SyNMetric.compute.__doc__
