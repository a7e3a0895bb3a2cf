"""The contract of affine (linear-transform) metrics, and what every such metric shares.

A metric is transform-agnostic. :meth:`AffineMetric.setup` validates the
images and masks once and draws the fixed samples; then
:meth:`AffineMetric.value_and_gradient` evaluates it at a world matrix
``fixed2moving`` (fixed world mm -> moving world mm) and returns the
derivative with respect to the top ``ndim`` rows of that matrix::

    dvalue_dmatrix = sum_x g(x) (x, 1)^T,   g(x) = d value / d y  at  y = fixed2moving @ (x, 1)

shape ``(ndim, ndim + 1)``. A transform with parameters ``p`` chains it as
``dvalue/dp_k = sum(dvalue_dmatrix * dM/dp_k[:ndim])``. Lower values are
better for every metric (mutual information and correlation are negated).

Samples are fixed voxels (all of them inside ``fixed_mask``, or a seeded
subset). A sample is *valid* at a matrix when its moving point lies in the
linear-interpolation domain of the moving image (``[0, n - 1]`` voxels on
every axis) and, with a ``moving_mask``, its nearest moving voxel is inside
the mask; invalid samples are skipped and the metric is normalised by the
number of valid ones.

Work units are fixed ranges of the sample list (their size depends only on
the number of samples); per-unit float64 buffers are reduced in unit order,
so every value and gradient is bit-identical at any thread count.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS
from .._options import choice
from ..gradients import gradient as image_gradient
from ..image import Image, as_image, check_matrix
from ..kernels.lift import lift_affine, lift_array, lift_linear
from ..parallel import partition_range, resolve_num_threads

SAMPLING_STRATEGIES = ("random", "regular")
MOVING_GRADIENTS = ("image", "interpolant")

#: at most this many work units over the samples (bounds the per-unit buffers)
_MAX_UNITS = 256


class NoOverlapError(ValueError):
    """No fixed sample maps inside the moving image (and moving mask) at the given matrix."""


@dataclass(frozen=True, eq=False, repr=False)
class AffineMetricState:
    """Everything a metric needs between :meth:`AffineMetric.setup` and its evaluations.

    The state does not depend on the metric's hyperparameters (except that
    only ``moving_gradient="image"`` metrics store the gradient image), so one
    state can serve several metrics built on the same images.

    Attributes
    ----------
    ndim : int
        2 or 3.
    fixed_shape : tuple of int
        Shape of the fixed grid.
    fixed_vox2world, moving_world2vox : ndarray, shape (ndim + 1, ndim + 1)
        Fixed voxel -> world and world -> moving voxel matrices (mm).
    sample_index : ndarray, shape (N,), int32 or int64
        Flat (C-order) fixed voxel index of each sample, increasing.
    fixed_values : ndarray, shape (N,), float32
        Fixed intensity of each sample.
    moving : ndarray, shape (X, Y[, Z]), float32
        Moving intensities.
    moving_gradient : ndarray, shape (X, Y[, Z], ndim), float32
        :func:`parareg.gradient` of the moving image, intensity per mm (a
        one-voxel placeholder when set up by a metric with
        ``moving_gradient="interpolant"``, which does not need it).
    moving_vox_grad2world_grad : ndarray, shape (ndim, ndim)
        ``inv(A).T`` for ``A`` the linear part of the moving ``vox2world``:
        maps voxel-axis derivatives to world-axis derivatives.
    moving_mask : ndarray, uint8
        Moving mask (a 1-voxel placeholder when ``use_moving_mask`` is false).
    use_moving_mask : bool
    fixed_range, moving_range : tuple of float
        ``(min, max)`` intensity inside each image's mask (whole image without one).
    fixed_mean : float
        Mean fixed intensity of the samples.
    moving_mean : float
        Mean moving intensity inside the moving mask.
    units : tuple of (int, int)
        ``[start, stop)`` ranges of the sample list, one per work unit.
    num_threads : int or None
        Threads for every evaluation; ``None`` resolves at each call (so
        ``with parareg.threads(n):`` applies).
    sampling : float
        Fraction of the candidate voxels used (1.0 = dense).
    num_candidates : int
        Fixed voxels inside the fixed mask.
    kernel_view : KernelView
        The same arrays and matrices lifted to 3D for the kernels
        (:mod:`parareg.kernels.lift`; views and 4 x 4 / 3 x 3 matrices).
    """

    ndim: int
    fixed_shape: tuple
    fixed_vox2world: np.ndarray
    moving_world2vox: np.ndarray
    sample_index: np.ndarray
    fixed_values: np.ndarray
    moving: np.ndarray
    moving_gradient: np.ndarray
    moving_vox_grad2world_grad: np.ndarray
    moving_mask: np.ndarray
    use_moving_mask: bool
    fixed_range: tuple
    moving_range: tuple
    fixed_mean: float
    moving_mean: float
    units: tuple
    num_threads: int | None
    sampling: float
    num_candidates: int
    kernel_view: "KernelView"

    @property
    def num_samples(self) -> int:
        return int(self.sample_index.shape[0])

    def __repr__(self) -> str:
        return (f"AffineMetricState(ndim={self.ndim}, fixed_shape={self.fixed_shape}, "
                f"moving_shape={self.moving.shape}, samples={self.num_samples}/"
                f"{self.num_candidates}, units={len(self.units)}, "
                f"moving_mask={self.use_moving_mask})")


@dataclass(frozen=True, eq=False, repr=False)
class KernelView:
    """An :class:`AffineMetricState`'s arrays as the 3D kernels take them (2D lifted to Z = 1).

    Attributes
    ----------
    grid : tuple of int
        ``(ny, nz)`` of the fixed grid (``nz = 1`` in 2D): the kernels unravel
        the flat sample indices with them.
    fixed_vox2world, moving_world2vox : ndarray, shape (4, 4)
    moving : ndarray, shape (X, Y, Z), float32
    moving_gradient : ndarray, shape (X, Y, Z, ndim), float32
    moving_vox_grad2world_grad : ndarray, shape (3, 3)
    moving_mask : ndarray, shape (X, Y, Z), uint8
    """

    grid: tuple
    fixed_vox2world: np.ndarray
    moving_world2vox: np.ndarray
    moving: np.ndarray
    moving_gradient: np.ndarray
    moving_vox_grad2world_grad: np.ndarray
    moving_mask: np.ndarray

    @classmethod
    def of(cls, ndim, fixed_shape, fixed_vox2world, moving_world2vox, moving, moving_gradient,
           moving_vox_grad2world_grad, moving_mask) -> "KernelView":
        shape3 = tuple(fixed_shape) + (1,) * (3 - ndim)
        return cls(grid=shape3[1:], fixed_vox2world=lift_affine(fixed_vox2world),
                   moving_world2vox=lift_affine(moving_world2vox),
                   moving=lift_array(moving, ndim),
                   moving_gradient=lift_array(moving_gradient, ndim),
                   moving_vox_grad2world_grad=lift_linear(moving_vox_grad2world_grad),
                   moving_mask=lift_array(moving_mask, ndim))


def matrix_rows(gradient: np.ndarray, ndim: int) -> np.ndarray:
    """A kernel's ``(..., 3, 4)`` matrix sums as ``(..., ndim, ndim + 1)`` (2D: rows 0-1,
    columns 0, 1 and 3, the lifted matrix's entries that exist in 2D)."""
    if ndim == 3:
        return gradient
    return gradient[..., :2, :][..., [0, 1, 3]]


@dataclass(frozen=True)
class MetricEvaluation:
    """One evaluation of a metric.

    Attributes
    ----------
    value : float
        The metric (lower is better).
    gradient : ndarray, shape (ndim, ndim + 1), or None
        ``d value / d fixed2moving[:ndim]`` (``None`` when not requested).
    num_valid : int
        Samples that mapped inside the moving image (and mask).
    num_samples : int
        Samples drawn at set-up.
    """

    value: float
    gradient: np.ndarray | None
    num_valid: int
    num_samples: int

    @property
    def overlap(self) -> float:
        """Fraction of the samples that were valid."""
        return self.num_valid / self.num_samples


# --------------------------------------------------------------------------- #
# validation and sampling (pure helpers)


def check_mask(mask, image: Image, *, name: str, image_name: str) -> np.ndarray:
    """Return ``mask`` as a boolean array on the grid of ``image``; reject bad or empty masks."""
    if isinstance(mask, Image):
        if mask.shape != image.shape:
            raise ValueError(f"{name} must have the shape of {image_name} {image.shape}, "
                             f"got {mask.shape}")
        if not np.allclose(mask.vox2world, image.vox2world, rtol=0, atol=1e-4):
            raise ValueError(f"{name} is not on the grid of {image_name}: their vox2world "
                             "matrices differ; resample the mask onto the image first "
                             "(parareg.resample(mask, image, interpolation='nearest'))")
        data = mask.data
    else:
        data = np.asarray(mask)
        if data.shape != image.shape:
            raise ValueError(f"{name} must have the shape of {image_name} {image.shape}, "
                             f"got {data.shape}")
        if not (data.dtype == np.bool_ or np.issubdtype(data.dtype, np.number)):
            raise ValueError(f"{name} must hold booleans or numbers, got dtype {data.dtype}")
    inside = data != 0
    if not inside.any():
        raise ValueError(f"{name} is empty (no non-zero voxel); pass a mask that covers "
                         f"part of {image_name}, or None")
    return inside


def check_sampling(sampling) -> float:
    """``sampling`` as a float in ``(0, 1]``; ``None`` means 1.0 (dense)."""
    if sampling is None:
        return 1.0
    if isinstance(sampling, bool) or not isinstance(sampling, (int, float, np.integer,
                                                               np.floating)):
        raise ValueError(f"sampling must be a fraction in (0, 1] or None, got {sampling!r}")
    value = float(sampling)
    if not (0.0 < value <= 1.0):
        raise ValueError(f"sampling must be a fraction in (0, 1] (1.0 or None = every voxel), "
                         f"got {sampling!r}")
    return value


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def select_samples(candidates: int | np.ndarray, sampling: float, strategy: str,
                   seed: int) -> np.ndarray:
    """Flat fixed indices of the samples, increasing.

    Parameters
    ----------
    candidates : int or ndarray, shape (C,)
        Either the number of fixed voxels (every voxel is a candidate) or the
        increasing flat indices of the candidate voxels.
    sampling : float
        Fraction in ``(0, 1]``; 1.0 keeps every candidate.
    strategy : {"random", "regular"}
        ``"random"``: ``round(sampling * C)`` candidates drawn without
        replacement by ``numpy.random.default_rng(seed)``, sorted.
        ``"regular"``: the candidates at positions ``floor(i * C / n)``, every
        ``1 / sampling``-th one.
    seed : int

    Returns
    -------
    ndarray, shape (N,), int32 (int64 beyond 2**31 - 1 voxels)
    """
    if isinstance(candidates, (int, np.integer)):
        total, count = int(candidates), int(candidates)
    else:
        total, count = int(candidates[-1]) + 1, int(candidates.shape[0])
    dtype = np.int32 if total <= np.iinfo(np.int32).max else np.int64
    if sampling >= 1.0:
        positions = None
    else:
        n = max(1, round(sampling * count))
        if strategy == "random":
            positions = np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
        else:
            positions = (np.arange(n, dtype=np.int64) * count) // n
    if isinstance(candidates, (int, np.integer)):
        return (np.arange(count, dtype=dtype) if positions is None
                else positions.astype(dtype))
    chosen = candidates if positions is None else candidates[positions]
    return np.ascontiguousarray(chosen, dtype=dtype)


def _masked_stats(data: np.ndarray, inside: np.ndarray | None) -> tuple[float, float, float]:
    values = data if inside is None else data[inside]
    return float(values.min()), float(values.max()), float(values.mean(dtype=np.float64))


#: samples per work unit: a sample costs 35-80 ns (two passes), so a unit is ~1 ms of work,
#: well above the pool's hand-off cost, and a 4 mm level still splits into ~10 units
SAMPLE_GRAIN = DEFAULT_GRAIN_VOXELS // 2


def _sample_grain(num_samples: int) -> int:
    """Samples per work unit: a function of the sample count only (never the thread count)."""
    return max(SAMPLE_GRAIN, math.ceil(num_samples / _MAX_UNITS))


# --------------------------------------------------------------------------- #
# the contract


class AffineMetric(ABC):
    """A similarity metric for linear registration (lower is better).

    Subclasses set :attr:`name`, take their hyperparameters in ``__init__``
    and implement :meth:`evaluate`; set-up (validation, masks, sampling, the
    moving gradient) is shared.

    Parameters
    ----------
    moving_gradient : {"image", "interpolant"}
        How ``d m / d y`` is obtained at a moving point ``y``. ``"image"``
        (ITK's choice): the gradient image :func:`parareg.gradient` of the
        moving image (central differences), precomputed at set-up and
        linearly interpolated at ``y`` -- smooth across voxel boundaries.
        ``"interpolant"`` (the default): the exact derivative of the linear interpolant
        that the value uses (piecewise constant, jumps at voxel boundaries),
        so the gradient is the true derivative of the value wherever it
        exists -- what a quasi-Newton line search needs (cosine with finite
        differences >= 0.999 on IXI, against 0.95-0.99 for ``"image"``).
    """

    #: short name used in messages
    name = "metric"

    def __init__(self, *, moving_gradient: str = "interpolant"):
        self.moving_gradient = choice(moving_gradient, MOVING_GRADIENTS, name="moving_gradient")

    def setup(self, fixed, moving, *, fixed_mask=None, moving_mask=None, sampling=None,
              sampling_strategy: str = "random", seed: int = 0,
              num_threads=None) -> AffineMetricState:
        """Validate the images, draw the fixed samples and precompute the moving gradient.

        Parameters
        ----------
        fixed, moving : Image or path
            2D or 3D images with the same number of dimensions (any grids).
        fixed_mask : Image or ndarray, shape fixed.shape, optional
            Samples are drawn only where it is non-zero.
        moving_mask : Image or ndarray, shape moving.shape, optional
            Samples whose moving point's nearest voxel is zero here are skipped.
        sampling : float in (0, 1], optional
            Fraction of the fixed voxels (inside ``fixed_mask``) to use;
            ``None`` or 1.0 uses every one (dense).
        sampling_strategy : {"random", "regular"}
            How a sparse subset is drawn (see :func:`select_samples`).
        seed : int
            Seed of ``numpy.random.default_rng`` for ``"random"`` sampling.
        num_threads : int, optional
            Threads for set-up and every evaluation; ``None`` means
            :func:`parareg.get_num_threads` at each call. Results are
            bit-identical at any count.

        Returns
        -------
        AffineMetricState

        Raises
        ------
        ValueError
            Naming the argument: mismatched dimensions, a mask of the wrong
            shape or empty, ``sampling`` outside (0, 1], an unknown
            ``sampling_strategy``, or an image constant inside its mask.
        """
        fixed = as_image(fixed, name="fixed", num_threads=num_threads)
        moving = as_image(moving, name="moving", num_threads=num_threads)
        if moving.ndim != fixed.ndim:
            raise ValueError(f"moving is {moving.ndim}D but fixed is {fixed.ndim}D; both "
                             "must have the same number of dimensions")
        ndim = fixed.ndim
        sampling = check_sampling(sampling)
        sampling_strategy = choice(sampling_strategy, SAMPLING_STRATEGIES,
                                   name="sampling_strategy")
        seed = check_seed(seed)
        if num_threads is not None:
            resolve_num_threads(num_threads)

        fixed_data = np.ascontiguousarray(fixed.data, dtype=np.float32)
        moving_data = np.ascontiguousarray(moving.data, dtype=np.float32)
        fixed_inside = (None if fixed_mask is None else
                        check_mask(fixed_mask, fixed, name="fixed_mask", image_name="fixed"))
        moving_inside = (None if moving_mask is None else
                         check_mask(moving_mask, moving, name="moving_mask",
                                    image_name="moving"))
        fixed_lo, fixed_hi, _ = _masked_stats(fixed_data, fixed_inside)
        moving_lo, moving_hi, moving_mean = _masked_stats(moving_data, moving_inside)
        self._check_not_constant("fixed", fixed_lo, fixed_hi, fixed_inside is not None)
        self._check_not_constant("moving", moving_lo, moving_hi, moving_inside is not None)

        if fixed_inside is None:
            candidates = fixed_data.size
        else:
            candidates = np.flatnonzero(fixed_inside)
        sample_index = select_samples(candidates, sampling, sampling_strategy, seed)
        fixed_values = fixed_data.reshape(-1)[sample_index]
        units = tuple(partition_range(0, sample_index.shape[0],
                                      grain=_sample_grain(sample_index.shape[0])))
        if moving_inside is None:
            mask_array = np.zeros((1,) * ndim, dtype=np.uint8)
        else:
            mask_array = np.ascontiguousarray(moving_inside, dtype=np.uint8)
        if self.moving_gradient == "image":
            moving_gradient = image_gradient(Image(moving_data, moving.vox2world),
                                             num_threads=num_threads)
        else:  # not needed: a placeholder saves ndim floats per moving voxel
            moving_gradient = np.zeros((1,) * ndim + (ndim,), dtype=np.float32)
        fixed_vox2world = np.ascontiguousarray(fixed.vox2world, dtype=np.float64)
        moving_world2vox = np.ascontiguousarray(moving.world2vox, dtype=np.float64)
        moving_vox_grad2world_grad = np.ascontiguousarray(
            np.linalg.inv(moving.vox2world[:ndim, :ndim]).T)
        return AffineMetricState(
            ndim=ndim,
            fixed_shape=tuple(fixed.shape),
            fixed_vox2world=fixed_vox2world,
            moving_world2vox=moving_world2vox,
            sample_index=sample_index,
            fixed_values=fixed_values,
            moving=moving_data,
            moving_gradient=moving_gradient,
            moving_vox_grad2world_grad=moving_vox_grad2world_grad,
            moving_mask=mask_array,
            use_moving_mask=moving_inside is not None,
            fixed_range=(fixed_lo, fixed_hi),
            moving_range=(moving_lo, moving_hi),
            fixed_mean=float(fixed_values.mean(dtype=np.float64)),
            moving_mean=moving_mean,
            units=units,
            num_threads=num_threads,
            sampling=sampling,
            num_candidates=int(fixed_data.size if fixed_inside is None else candidates.size),
            kernel_view=KernelView.of(ndim, fixed.shape, fixed_vox2world, moving_world2vox,
                                      moving_data, moving_gradient, moving_vox_grad2world_grad,
                                      mask_array),
        )

    @abstractmethod
    def evaluate(self, state: AffineMetricState, fixed2moving, *,
                 gradient: bool = True) -> MetricEvaluation:
        """The metric (and its matrix gradient) at ``fixed2moving``.

        Parameters
        ----------
        state : AffineMetricState
            From :meth:`setup`.
        fixed2moving : ndarray, shape (ndim + 1, ndim + 1)
            Fixed world (mm) -> moving world (mm).
        gradient : bool
            Also compute ``d value / d fixed2moving[:ndim]``.

        Returns
        -------
        MetricEvaluation

        Raises
        ------
        NoOverlapError
            When no sample maps inside the moving image (and moving mask).
        """

    def value_and_gradient(self, state: AffineMetricState,
                           fixed2moving) -> tuple[float, np.ndarray]:
        """``(value, dvalue_dmatrix)`` at ``fixed2moving``.

        Returns
        -------
        value : float
            Lower is better.
        dvalue_dmatrix : ndarray, shape (ndim, ndim + 1), float64
            Derivative with respect to the top ``ndim`` rows of ``fixed2moving``
            (the last column is the translation; units value per mm).
        """
        result = self.evaluate(state, fixed2moving, gradient=True)
        return result.value, result.gradient

    def value(self, state: AffineMetricState, fixed2moving) -> float:
        """The metric at ``fixed2moving`` (lower is better), without the gradient."""
        return self.evaluate(state, fixed2moving, gradient=False).value

    # helpers for subclasses ---------------------------------------------------

    def _check_not_constant(self, label: str, lo: float, hi: float, masked: bool) -> None:
        if lo == hi:
            where = f" inside {label}_mask" if masked else ""
            raise ValueError(f"{label} is constant ({lo:g}){where}; {self.name} is undefined "
                             "for a constant image")

    @staticmethod
    def _prepare(state, fixed2moving) -> np.ndarray:
        """Check the state and matrix; return the fixed voxel -> moving voxel matrix (4 x 4)."""
        if not isinstance(state, AffineMetricState):
            raise TypeError(f"state must be the AffineMetricState returned by setup(), "
                            f"got {type(state).__name__}")
        matrix = check_matrix(fixed2moving, state.ndim, name="fixed2moving")
        view = state.kernel_view
        return view.moving_world2vox @ lift_affine(matrix) @ view.fixed_vox2world

    def _moving_args(self, state) -> tuple:
        """The moving-image arguments every gradient kernel takes, in kernel order (lifted)."""
        if (self.moving_gradient == "image"
                and state.moving_gradient.shape[:-1] != state.moving.shape):
            raise ValueError("state was set up without the moving gradient image (by a "
                             "metric with moving_gradient='interpolant'); call setup() on "
                             "this metric")
        view = state.kernel_view
        return (view.moving, view.moving_gradient, self.moving_gradient == "interpolant",
                view.moving_vox_grad2world_grad, view.moving_mask, state.use_moving_mask)

    @staticmethod
    def _no_overlap(state, fixed2moving) -> NoOverlapError:
        return NoOverlapError(
            f"no overlap: none of the {state.num_samples} fixed samples maps inside the "
            "moving image" + (" and moving_mask" if state.use_moving_mask else "")
            + f" at fixed2moving=\n{np.asarray(fixed2moving)}\nstart from a better initial "
            "alignment (e.g. the centres of mass) or use a smaller step")
