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


def cc_fields(pair: Pair, radius: int, eps: float, *, num_threads=None,
              grain: int = DEFAULT_GRAIN_VOXELS, return_sums: bool = False):
    """Driver: window sums and CC update fields on the pool.

    Returns ``(forward, backward, energy)`` as kernel fields (3D grid), plus
    the box sums ``(5, X, Y, Z)`` float64 when ``return_sums``.
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


class CCMetric(SyNMetric):
    """Local normalised cross-correlation over a box window (ANTs' ``CC``, DIPY's ``CCMetric``).

    Parameters
    ----------
    radius : int
        Half-width of the box window in voxels (window ``2 * radius + 1``
        along each axis); every image axis must hold at least that many voxels.
    eps : float
        Windows with ``B * C < eps`` (intensity^4) are treated as flat; 1e-5 as DIPY.

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

    def __init__(self, radius: int = 4, *, eps: float = 1e-5):
        self.radius = check_radius(radius)
        self.eps = check_positive(eps, name="eps")

    def _params(self) -> dict:
        return {"radius": self.radius, "eps": self.eps}

    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        pair = Pair(fixed_warped, moving_warped, vox2world, mask)
        window = 2 * self.radius + 1
        if min(pair.shape) < window:
            raise ValueError(f"fixed_warped has shape {pair.shape}: every axis needs at "
                             f"least 2 * radius + 1 = {window} voxels for radius="
                             f"{self.radius}; use a smaller radius or a finer pyramid level")
        forward, backward, energy = cc_fields(pair, self.radius, self.eps,
                                              num_threads=num_threads)
        return pair.unfold(forward), pair.unfold(backward), energy

    compute.__doc__ = SyNMetric.compute.__doc__
