"""Displacement fields on a grid: composition, inversion, Jacobian determinant, consistency.

The building blocks of diffeomorphic (SyN) registration. Every function is
parallel on the pool and bit-identical at any thread count.

Conventions
-----------
field
    ``ndarray, shape (*grid, ndim)``, float32: displacements in world
    millimetres on a grid given by ``vox2world`` (as a :class:`parareg.Image`'s).
    Voxel ``p`` sits at world point ``x_p = vox2world @ p``; the field's map
    is ``phi_u(x) = x + u(x)`` (the pull convention of :func:`parareg.resample`).
between and outside grid points
    Each component is interpolated linearly in voxel space, and ``u`` is
    **zero outside** ``[0, n - 1]`` on any axis: points outside the grid do not
    move (as in ANTs and DIPY). There is no clamping to the boundary voxel, so
    near the grid edge, where ``x + u(x)`` leaves the grid, compositions and
    inverses see the identity; trust them away from the border.
composition
    ``compose(outer, inner)`` is the field of ``phi_outer o phi_inner``: a
    point moves by ``inner`` first, then by ``outer``:
    ``w(x) = inner(x) + outer(x + inner(x))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._config import DEFAULT_GRAIN_VOXELS, as_index
from .image import check_matrix
from .kernels.fields import (
    composed_norms_3d,
    compose_3d,
    invert_step_3d,
    jacobian_determinant_3d,
    max_scaled_norm,
)
from .kernels.lift import lift_array, lift_linear
from .kernels.smooth import convolve_middle, convolve_middle_narrow
from .parallel import (
    axis0_ranges,
    for_each_unit,
    partition_range,
    reduce_units,
    resolve_num_threads,
    unit_buffers,
)
from .resampling import check_field

__all__ = [
    "InversionStats",
    "max_norm",
    "compose",
    "inverse_consistency_error",
    "invert",
    "jacobian_determinant",
    "smooth_field",
]


# --- validation --------------------------------------------------------------------------


def _check_vox2world(vox2world) -> tuple[np.ndarray, int]:
    """``vox2world`` as a float64 3x3 or 4x4 invertible matrix, and the grid's ndim."""
    shape = np.shape(vox2world)
    if shape not in ((3, 3), (4, 4)):
        raise ValueError("vox2world must be a 3x3 (2D grid) or 4x4 (3D grid) homogeneous "
                         f"matrix, got shape {shape}")
    ndim = shape[0] - 1
    return check_matrix(vox2world, ndim, name="vox2world"), ndim


def _check_vector_field(field, ndim: int, *, name: str, shape=None,
                        num_threads=None) -> np.ndarray:
    """``field`` as a finite C-contiguous float32 ``(*grid, ndim)`` array.

    ``grid`` must equal ``shape`` when given; otherwise any non-empty
    ``ndim``-dimensional grid is accepted.
    """
    f = np.asarray(field)
    if shape is None:
        if f.ndim != ndim + 1 or f.shape[-1] != ndim:
            axes = "(X, Y, 2)" if ndim == 2 else "(X, Y, Z, 3)"
            raise ValueError(f"{name} must have shape {axes} to match a {ndim}D vox2world "
                             f"({ndim + 1}x{ndim + 1}), got {f.shape}")
        shape = f.shape[:-1]
        if 0 in shape:
            raise ValueError(f"{name} has an empty grid (shape {f.shape})")
    return check_field(f, tuple(shape), name=name, num_threads=num_threads)


def _disp2vox(vox2world: np.ndarray, ndim: int) -> np.ndarray:
    """Inverse of the linear part of ``vox2world``: mm displacement -> voxel displacement."""
    return np.ascontiguousarray(np.linalg.inv(vox2world[:ndim, :ndim]))


def _lifted(ndim: int, *arrays):
    """The arrays (fields, masks, ...) on their 3D grid, for the kernels (views, no copy)."""
    return tuple(lift_array(a, ndim) for a in arrays)


def _check_out(out, shape, *, name: str = "out") -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a NumPy array, got {type(out).__name__}")
    if out.shape != tuple(shape) or out.dtype != np.float32:
        raise ValueError(f"{name} must be a float32 array of shape {tuple(shape)}, "
                         f"got {out.dtype} {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable")
    return out


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def max_norm(field, *, scale=None, num_threads=None) -> float:
    """Largest displacement length of ``field``, each component first multiplied by ``scale``.

    With ``scale = 1 / spacing`` the result is in voxels. Per-unit maxima are
    combined with ``max``, so the result does not depend on the thread count.
    """
    f = np.asarray(field)
    ndim = f.shape[-1]
    rows = f.reshape(-1, ndim)
    s = np.ones(ndim) if scale is None else np.asarray(scale, dtype=np.float64)
    best = for_each_unit(lambda unit, start, stop: max_scaled_norm(rows, s, start, stop),
                         partition_range(0, rows.shape[0], grain=DEFAULT_GRAIN_VOXELS),
                         num_threads=resolve_num_threads(num_threads))
    return float(max(best)) if best else 0.0


# --- composition -------------------------------------------------------------------------


def compose(outer, inner, *, vox2world, out=None, num_threads=None) -> np.ndarray:
    """The field of ``phi_outer o phi_inner``: move by ``inner`` first, then by ``outer``.

    ``w(x) = inner(x) + outer(x + inner(x))`` at every grid point ``x``, with
    ``outer`` interpolated linearly and zero outside the grid. Resampling an
    image ``I`` with ``w`` gives ``I(phi_outer(phi_inner(x)))``.

    Parameters
    ----------
    outer : ndarray, shape (*grid, ndim), millimetres
        Applied second (evaluated at the displaced points).
    inner : ndarray, shape (*grid, ndim), millimetres
        Applied first (evaluated at the grid points).
    vox2world : ndarray, shape (ndim + 1, ndim + 1)
        The grid both fields live on.
    out : ndarray, shape (*grid, ndim), float32, optional
        Where to write the result. It may be ``inner`` itself (in-place
        update of ``inner``) but must not overlap ``outer``.
    num_threads : int, optional
        Threads; ``None`` means :func:`parareg.get_num_threads`. The result is
        bit-identical at any count.

    Returns
    -------
    ndarray, shape (*grid, ndim), float32, millimetres
        ``out`` when given.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4, 2), np.float32); a[..., 0] = 1.0   # +1 mm along axis 0
    >>> b = np.zeros((4, 4, 2), np.float32); b[..., 1] = 2.0   # +2 mm along axis 1
    >>> compose(a, b, vox2world=np.eye(3))[0, 0].tolist()
    [1.0, 2.0]
    >>> compose(a, b, vox2world=np.eye(3))[0, 2].tolist()      # x + b(x) left the grid
    [0.0, 2.0]
    """
    matrix, ndim = _check_vox2world(vox2world)
    outer = _check_vector_field(outer, ndim, name="outer", num_threads=num_threads)
    inner = _check_vector_field(inner, ndim, name="inner", shape=outer.shape[:-1],
                                num_threads=num_threads)
    if out is None:
        out = np.empty_like(inner)
    else:
        _check_out(out, inner.shape)
        if np.may_share_memory(out, outer):
            raise ValueError("out must not overlap outer (outer is read at displaced points "
                             "while out is written); pass out=inner or a fresh array")
        if np.may_share_memory(out, inner) and not _same_memory(out, inner):
            raise ValueError("out may be inner itself but must not partly overlap it")
    return compose_unchecked(outer, inner, _disp2vox(matrix, ndim), out,
                             resolve_num_threads(num_threads))


def compose_unchecked(outer, inner, disp2vox, out, num_threads) -> np.ndarray:
    """:func:`compose` without validation, for drivers whose fields are already checked.

    ``outer``/``inner``/``out`` C-contiguous float32 ``(*grid, ndim)``;
    ``disp2vox`` the inverse linear part of the grid's ``vox2world``.
    """
    ndim = inner.shape[-1]
    outer3, inner3, out3 = _lifted(ndim, outer, inner, out)
    d2v = lift_linear(disp2vox)
    for_each_unit(lambda unit, start, stop: compose_3d(outer3, inner3, d2v, out3, start, stop),
                  axis0_ranges(inner.shape[:-1], grain=DEFAULT_GRAIN_VOXELS),
                  num_threads=num_threads)
    return out


# --- inversion ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InversionStats:
    """How a fixed-point inversion went.

    Attributes
    ----------
    iterations : int
        Fixed-point updates applied (0 when the initial guess already met
        the tolerance).
    mean_residual, max_residual : float
        Mean and max over the grid of ``|v(x) + u(x + v(x))|`` in millimetres
        for the returned inverse ``v`` (the displacement of
        ``phi_u o phi_v``, zero for an exact inverse).
    converged : bool
        ``mean_residual < tolerance``.
    """

    iterations: int
    mean_residual: float
    max_residual: float
    converged: bool


def invert(field, *, vox2world, initial=None, iterations: int = 20, tolerance: float = 1e-3,
           damped: bool = False, num_threads=None) -> tuple[np.ndarray, InversionStats]:
    """Invert a displacement field by fixed-point iteration (Chen et al. 2008, as DIPY).

    Iterates ``v_{k+1}(x) = -u(x + v_k(x))`` from ``v_0 = initial`` (or 0).
    Each pass is one fused parallel kernel that measures the residual of
    ``v_k``, ``r_k(x) = v_k(x) + u(x + v_k(x))`` (per-unit float64 sums and
    maxima, reduced in unit order), and writes ``v_{k+1} = v_k - r_k``. The
    iteration stops as soon as the **mean** residual norm of the current
    ``v_k`` is below ``tolerance`` (mm), or after ``iterations`` updates;
    the returned field is the one whose residual ``stats`` reports.

    The iteration converges where ``u`` is a contraction (``|du/dx| < 1``,
    true of the small smooth steps of SyN). With ``u`` zero outside the grid,
    voxels whose preimage lies outside the grid cannot be inverted and keep a
    residual; a field that does not vanish at the border may therefore
    never reach a small ``tolerance`` on the mean -- check the interior, or
    read ``stats``.

    Parameters
    ----------
    field : ndarray, shape (*grid, ndim), millimetres
        The forward field ``u``.
    vox2world : ndarray, shape (ndim + 1, ndim + 1)
        Its grid.
    initial : ndarray, shape (*grid, ndim), millimetres, optional
        Starting guess, e.g. the previous inverse of a slowly changing field
        (warm start). Not modified. ``None`` starts from zero.
    iterations : int
        Most fixed-point updates (each costs one pass over the grid; one more
        pass measures the final residual).
    tolerance : float
        Stop when the mean residual norm is below this, in millimetres.
    damped : bool
        Per-voxel step ``v <- v - alpha * r`` with ``alpha`` halved wherever the
        residual reverses direction (overshoot). Plain iteration diverges where ``u`` stretches space
        by more than 2 (common at 1 mm around ventricles); the damped one
        converges there and is identical elsewhere.
    num_threads : int, optional
        Threads; the inverse and the stats are bit-identical at any count.

    Returns
    -------
    inverse : ndarray, shape (*grid, ndim), float32, millimetres
    stats : InversionStats

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((32, 32, 2), np.float32); u[..., 0] = 1.5   # a translation
    >>> v, stats = invert(u, vox2world=np.eye(3), iterations=5)
    >>> float(v[10, 10, 0]), stats.iterations
    (-1.5, 5)
    """
    matrix, ndim = _check_vox2world(vox2world)
    forward = _check_vector_field(field, ndim, name="field", num_threads=num_threads)
    shape = forward.shape[:-1]
    steps = as_index(iterations)
    if steps is None or steps < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    try:
        tol = float(tolerance)
    except (TypeError, ValueError):
        raise ValueError(f"tolerance must be a number of millimetres, got {tolerance!r}") from None
    if not math.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance must be finite and >= 0 (millimetres), got {tolerance!r}")
    if initial is None:
        current = np.zeros_like(forward)
    else:
        current = np.array(_check_vector_field(initial, ndim, name="initial", shape=shape,
                                               num_threads=num_threads),
                           dtype=np.float32, copy=True)
    num_threads = resolve_num_threads(num_threads)
    disp2vox = lift_linear(_disp2vox(matrix, ndim))
    if damped:
        alpha = np.ones(shape, np.float32)
        previous = np.zeros(forward.shape, np.float64)  # last residual per voxel
    else:  # unused by the plain step
        alpha = np.ones((1,) * ndim, np.float32)
        previous = np.zeros((1,) * ndim + (ndim,), np.float64)
    alpha, previous = _lifted(ndim, alpha, previous)

    def run(fwd, inv, d2v, out, row, start, stop):
        fwd, inv, out = _lifted(ndim, fwd, inv, out)
        invert_step_3d(fwd, inv, d2v, out, bool(damped), alpha, previous, row, start, stop)

    following = np.empty_like(forward)
    n_voxels = math.prod(shape)
    ranges = axis0_ranges(shape, grain=DEFAULT_GRAIN_VOXELS)
    done = 0
    while True:
        # one pass: the residual of `current` and the next iterate, into `following`
        src, dst = current, following
        norms = unit_buffers(len(ranges), 2)
        for_each_unit(
            lambda unit, start, stop: run(forward, src, disp2vox, dst, norms[unit], start, stop),
            ranges, num_threads=num_threads)
        mean = float(reduce_units(norms[:, 0])) / n_voxels
        largest = float(norms[:, 1].max())
        if mean < tol or done == steps:
            return current, InversionStats(iterations=done, mean_residual=mean,
                                           max_residual=largest, converged=mean < tol)
        current, following = following, current
        done += 1


# --- Jacobian determinant ----------------------------------------------------------------


def jacobian_determinant(field, *, vox2world, num_threads=None) -> np.ndarray:
    """Determinant of the Jacobian of ``x -> x + u(x)``: ``det(I + du/dx)``.

    ``du/dp`` along voxel axes follows ``numpy.gradient`` (central differences
    inside, one-sided on the first and last voxel); it is mapped to world
    millimetres by ``du/dx = du/dp @ inv(A)``, ``A`` the linear part of
    ``vox2world`` (the same chain rule as :func:`parareg.gradient`). Values
    <= 0 mark folding.

    Parameters
    ----------
    field : ndarray, shape (*grid, ndim), millimetres
    vox2world : ndarray, shape (ndim + 1, ndim + 1)
    num_threads : int, optional
        Threads; the result is bit-identical at any count.

    Returns
    -------
    ndarray, shape grid, float32
        Local volume change (1 where the map preserves volume).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(6.0)[:, None] * np.ones((1, 5))
    >>> u = np.stack([0.1 * x, np.zeros_like(x)], axis=-1)   # stretch axis 0 by 10 %
    >>> round(float(jacobian_determinant(u, vox2world=np.eye(3))[3, 2]), 6)
    1.1
    """
    matrix, ndim = _check_vox2world(vox2world)
    field = _check_vector_field(field, ndim, name="field", num_threads=num_threads)
    shape = field.shape[:-1]
    disp2vox = lift_linear(_disp2vox(matrix, ndim))
    out = np.empty(shape, dtype=np.float32)
    field3, out3 = _lifted(ndim, field, out)
    for_each_unit(lambda unit, start, stop: jacobian_determinant_3d(field3, disp2vox, out3,
                                                                    start, stop),
                  axis0_ranges(shape, grain=DEFAULT_GRAIN_VOXELS),
                  num_threads=resolve_num_threads(num_threads))
    return out


# --- inverse consistency -----------------------------------------------------------------


def inverse_consistency_error(forward, backward, *, vox2world, mask=None,
                              num_threads=None) -> tuple[float, float]:
    """Mean and max of ``|phi_f o phi_b - id|`` and ``|phi_b o phi_f - id|``, millimetres.

    Both compositions are evaluated at every grid point (in ``mask``):
    ``backward(x) + forward(x + backward(x))`` (the displacement of
    :func:`compose` ``(forward, backward)``) and
    ``forward(x) + backward(x + forward(x))``. The two sets of norms are
    pooled: the mean is over both (``2 * n`` values), the max is the larger.
    Exact inverses give (0, 0) away from the border.

    Parameters
    ----------
    forward, backward : ndarray, shape (*grid, ndim), millimetres
        Fields meant to be inverses of each other, on the same grid.
    vox2world : ndarray, shape (ndim + 1, ndim + 1)
    mask : ndarray, shape grid, optional
        Nonzero where to measure (e.g. the brain, or the interior away from
        the border). ``None`` measures everywhere.
    num_threads : int, optional
        Threads; the result is bit-identical at any count.

    Returns
    -------
    mean, max : float
        Millimetres.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((16, 16, 2), np.float32); u[..., 0] = 1.0
    >>> inner = np.zeros((16, 16), bool); inner[2:-2, 2:-2] = True
    >>> inverse_consistency_error(u, -u, vox2world=np.eye(3), mask=inner)
    (0.0, 0.0)
    """
    matrix, ndim = _check_vox2world(vox2world)
    forward = _check_vector_field(forward, ndim, name="forward", num_threads=num_threads)
    shape = forward.shape[:-1]
    backward = _check_vector_field(backward, ndim, name="backward", shape=shape,
                                   num_threads=num_threads)
    if mask is None:
        use_mask, mask_arr = False, np.ones((1,) * ndim, dtype=np.uint8)
    else:
        mask_arr = np.asarray(mask)
        if mask_arr.shape != shape:
            raise ValueError(f"mask must have the grid shape {shape}, got {mask_arr.shape}")
        if not (mask_arr.dtype == np.bool_ or np.issubdtype(mask_arr.dtype, np.number)):
            raise ValueError(f"mask must be boolean or numeric, got dtype {mask_arr.dtype}")
        mask_arr = np.ascontiguousarray(mask_arr != 0, dtype=np.uint8)
        if not mask_arr.any():
            raise ValueError("mask selects no voxel")
        use_mask = True
    num_threads = resolve_num_threads(num_threads)
    disp2vox = lift_linear(_disp2vox(matrix, ndim))
    forward, backward, mask_arr = _lifted(ndim, forward, backward, mask_arr)
    total = 0.0
    largest = 0.0
    count = 0.0
    ranges = axis0_ranges(shape, grain=DEFAULT_GRAIN_VOXELS)
    for outer, inner in ((forward, backward), (backward, forward)):
        norms = unit_buffers(len(ranges), 3)
        for_each_unit(
            lambda unit, start, stop, o=outer, i=inner: composed_norms_3d(
                o, i, disp2vox, mask_arr, use_mask, norms[unit], start, stop),
            ranges, num_threads=num_threads)
        total += float(reduce_units(norms[:, 0]))
        largest = max(largest, float(norms[:, 1].max()))
        count += float(reduce_units(norms[:, 2]))
    return total / count, largest


# --- smoothing ---------------------------------------------------------------------------


def gaussian_weights(sigma: float, truncate: float) -> np.ndarray:
    """Normalised 1D Gaussian taps of radius ``int(truncate * sigma + 0.5)`` (as SciPy's)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return w / w.sum()


def _convolve_axis(src, dst, weights, axis, num_threads):
    """Convolve C-contiguous ``src`` along ``axis`` into ``dst`` on the pool."""
    shape = src.shape
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1:])
    view = (outer, shape[axis] * inner)
    s, d = src.reshape(view), dst.reshape(view)
    run = convolve_middle_narrow if inner <= 8 else convolve_middle
    if outer > 1:
        rows = max(1, DEFAULT_GRAIN_VOXELS // max(shape[axis] * inner, 1))
        units = [(a, b, 0, inner) for a, b in partition_range(0, outer, grain=rows)]
    else:
        cols = max(64, DEFAULT_GRAIN_VOXELS // max(shape[axis], 1))
        units = [(0, 1, a, b) for a, b in partition_range(0, inner, grain=cols)]
    for_each_unit(lambda unit, *bounds: run(s, d, inner, weights, *bounds), units,
                  num_threads=num_threads)


def smooth_field(field, sigma_vox, *, truncate: float = 4.0, num_threads=None) -> np.ndarray:
    """Gaussian-smooth each component of a displacement field.

    One numba pass per grid axis convolves every component at once (the
    components are the contiguous inner loop), in work units fixed by the
    grid. Agrees with ``scipy.ndimage.gaussian_filter(field[..., c],
    sigma_vox, truncate=truncate)`` per component (``mode="reflect"``) to
    float32 rounding.

    Parameters
    ----------
    field : ndarray, shape (X, Y, 2) or (X, Y, Z, 3), millimetres
    sigma_vox : float or sequence of float
        Standard deviation in voxels, per grid axis (0 leaves an axis alone).
    truncate : float
        Kernel radius in standard deviations.
    num_threads : int, optional
        Threads; the result is bit-identical at any count.

    Returns
    -------
    ndarray, same shape, float32

    Examples
    --------
    >>> import numpy as np
    >>> u = np.zeros((9, 9, 2), np.float32); u[4, 4, 0] = 1.0
    >>> s = smooth_field(u, 1.0)
    >>> round(float(s[..., 0].sum()), 4), float(s[..., 1].max())
    (1.0, 0.0)
    """
    f = np.asarray(field)
    if f.ndim not in (3, 4) or f.shape[-1] != f.ndim - 1:
        raise ValueError("field must have shape (X, Y, 2) or (X, Y, Z, 3), "
                         f"got {f.shape}")
    ndim = f.ndim - 1
    f = _check_vector_field(f, ndim, name="field", num_threads=num_threads)
    sigmas = np.broadcast_to(np.asarray(sigma_vox, dtype=np.float64), (ndim,))
    if np.any(sigmas < 0) or not np.all(np.isfinite(sigmas)):
        raise ValueError(f"sigma_vox must be finite and >= 0, got {sigma_vox!r}")
    return smooth_unchecked(f, sigmas, truncate, resolve_num_threads(num_threads))


def smooth_unchecked(f, sigmas, truncate, num_threads, *, scratch=None) -> np.ndarray:
    """:func:`smooth_field` without validation (``sigmas`` one per grid axis).

    With ``scratch`` (an array like ``f``) the passes ping-pong between ``f``
    and ``scratch`` -- ``f`` is overwritten -- and the array holding the
    result is returned; nothing is allocated (loops reuse their buffers
    instead of paying fresh pages every iteration).
    """
    if scratch is None:
        current = f
        for axis, sigma in enumerate(sigmas):
            if sigma == 0:
                continue
            out = np.empty_like(current)
            _convolve_axis(current, out, gaussian_weights(sigma, truncate), axis, num_threads)
            current = out
        return current.copy() if current is f else current
    current, other = f, scratch
    for axis, sigma in enumerate(sigmas):
        if sigma == 0:
            continue
        _convolve_axis(current, other, gaussian_weights(sigma, truncate), axis, num_threads)
        current, other = other, current
    return current
