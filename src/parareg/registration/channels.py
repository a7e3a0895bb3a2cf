"""Multi-channel registration: several (fixed, moving, metric, weight) channels, one transform.

The positional ``(fixed, moving)`` pair of :func:`parareg.register`,
:func:`parareg.affine_registration` and :func:`parareg.syn_registration` is
channel 0 (its weight is their ``weight=``); each :class:`Channel` in
``channels=`` adds one more pair, e.g. a T2 pair next to the T1 pair.

* **Grids.** Every channel's fixed image is on the grid of ``fixed`` and
  every moving image on the grid of ``moving`` (resample them first,
  ``parareg.resample(image, grid)``): the transform, the masks and the
  outputs are defined on one fixed and one moving grid.
* **Weights** are 0 or more and must sum to more than 0; they are
  normalised to sum to 1 (only their ratios matter).
* **Linear stages** (as ANTs' several ``-m`` metrics and greedy's weighted
  ``-i`` pairs) minimise ``sum_c w_c metric_c``, whose matrix gradient is
  ``sum_c w_c gradient_c``: an exact objective for the quasi-Newton
  optimiser. The metrics' values add as they are: Mattes MI and correlation
  are both about ``-1 .. 0``; mean squares is in intensity squared, so weigh
  it accordingly.
* **SyN** combines each side's update forces as ITK's
  ``ObjectToObjectMultiMetricv4`` (which ANTs' SyN uses) does:
  ``force = sum_c w_c force_c / ||force_c||`` (``||.||`` the L2 norm over the
  grid; a zero force adds nothing), so a channel's weight sets its share of
  the update whatever its metric's units (CC forces are intensity-weighted,
  SSD forces are millimetres). The overall scale does not matter: each update
  is rescaled to ``step``. The energy is ``sum_c w_c energy_c``.
* **One channel** (no ``channels``) runs exactly the single-pair code: the
  same bits as without this feature.

Everything runs on the pool in work units fixed by the data (norms are
per-unit float64 partials reduced in unit order), so results are
bit-identical at any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .._config import DEFAULT_GRAIN_VOXELS
from ..image import Image, as_image
from ..kernels.channels import scale_add, sum_of_squares
from ..metrics.base import NoOverlapError
from ..parallel import for_each_unit, partition_range, resolve_num_threads

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._typing import ImageLike

#: grids agree when their vox2world matrices differ by at most this (mm), as masks' do
GRID_ATOL = 1e-4


@dataclass(frozen=True)
class Channel:
    """One more (fixed, moving) pair that drives the same transform as the positional pair.

    Parameters
    ----------
    fixed : Image, path, nibabel image or ants.ANTsImage
        On the grid of the registration's ``fixed`` image (same shape and vox2world).
    moving : Image, path, nibabel image or ants.ANTsImage
        On the grid of the registration's ``moving`` image.
    weight : float
        0 or more; the weights of all channels (the positional pair's is
        ``weight=``) are normalised to sum to 1.
    affine_metric : {"mi", "meansquares", "correlation"}, optional
        This channel's metric in the linear stages; ``None``: the
        registration's own (``affine_metric=`` of :func:`parareg.register`,
        ``metric=`` of :func:`parareg.affine_registration`). Its ``bins``
        option is the registration's.
    syn_metric : {"cc", "ssd", "em", "mi"} or SyNMetric, optional
        This channel's metric in SyN; ``None``: the registration's own. A
        name takes the registration's ``radius`` (CC) or ``bins`` (MI) when
        given there, else the metric's default (CC: radius 2).

    Examples
    --------
    >>> import parareg
    >>> t2 = Channel("t2_fixed.nii.gz", "t2_moving.nii.gz", weight=0.5, syn_metric="mi")
    >>> result = parareg.register("t1_fixed.nii.gz", "t1_moving.nii.gz",
    ...                           channels=[t2])  # doctest: +SKIP
    """

    fixed: ImageLike
    moving: ImageLike
    weight: float = 1.0
    affine_metric: str | None = None
    syn_metric: object = None


@dataclass(frozen=True, eq=False)
class LoadedChannel:
    """A checked channel: images loaded, weight normalised (the weights sum to 1).

    ``label`` names it in messages (``"fixed/moving"`` for channel 0,
    ``"channels[i]"`` for the others).
    """

    fixed: Image
    moving: Image
    weight: float
    affine_metric: str | None
    syn_metric: object
    label: str


def check_weights(weights: Sequence, *, names: Sequence[str] | None = None) -> list[float]:
    """The channel weights checked and normalised to sum to 1.

    Parameters
    ----------
    weights : sequence of float
        One per channel.
    names : sequence of str, optional
        The argument that gave each weight, for messages.

    Raises
    ------
    ValueError
        A weight that is not a finite number of 0 or more, or weights that sum to 0.

    Examples
    --------
    >>> check_weights([1, 0.5, 0.5])
    [0.5, 0.25, 0.25]
    >>> check_weights([0, 0])
    Traceback (most recent call last):
    ...
    ValueError: the channel weights 0, 0 sum to 0; they must sum to more than 0: give at least one channel a positive weight
    """
    checked = []
    for index, value in enumerate(weights):
        name = f"weight #{index + 1}" if names is None else names[index]
        try:
            weight = float(value)
        except (TypeError, ValueError):
            weight = math.nan
        if isinstance(value, (bool, np.bool_)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{name} must be a finite number of 0 or more (a negative "
                             f"weight would reward misalignment), got {value!r}")
        checked.append(weight)
    total = math.fsum(checked)
    if not total > 0:
        listing = ", ".join(f"{w:g}" if names is None else f"{n}={w:g}"
                            for n, w in zip(names or checked, checked))
        raise ValueError(f"the channel weights {listing} sum to {total:g}; they must sum to "
                         "more than 0: give at least one channel a positive weight")
    return [w / total for w in checked]


def _same_grid(image: Image, reference: Image) -> bool:
    return (image.shape == reference.shape
            and np.allclose(image.vox2world, reference.vox2world, rtol=0, atol=GRID_ATOL))


def _grid_error(name: str, image: Image, reference_name: str, reference: Image) -> ValueError:
    return ValueError(
        f"{name} is not on the grid of {reference_name}: shape {image.shape} vs "
        f"{reference.shape}, vox2world\n{np.round(image.vox2world, 4)}\nvs\n"
        f"{np.round(reference.vox2world, 4)}\nevery channel's {reference_name} image must "
        f"share one grid; resample it onto {reference_name} first "
        f"(parareg.resample(image, {reference_name}))")


def check_channels(channels: Sequence[Channel] | None, fixed: Image, moving: Image, *,
                   weight: float = 1.0,
                   num_threads: int | None = None) -> tuple[LoadedChannel, ...]:
    """Every channel, the positional pair first, checked and loaded (before any work).

    Parameters
    ----------
    channels : sequence of Channel, optional
    fixed, moving : Image
        The positional pair (channel 0).
    weight : float
        Channel 0's weight.
    num_threads : int, optional
        Threads of the images' NaN scan.

    Returns
    -------
    tuple of LoadedChannel
        One per channel, weights normalised to sum to 1; ``len == 1`` without
        ``channels``.

    Raises
    ------
    ValueError
        Naming the argument: a channel that is not a :class:`Channel`, an
        image on another grid than ``fixed`` / ``moving`` or of another
        dimensionality, a negative or non-finite weight, weights summing to 0.
    """
    if channels is None:
        channels = ()
    if isinstance(channels, (Channel, str)) or not hasattr(channels, "__iter__"):
        raise ValueError("channels must be a list of parareg.Channel(fixed, moving, ...) or "
                         f"None, got {type(channels).__name__}")
    channels = list(channels)
    for index, channel in enumerate(channels):
        if not isinstance(channel, Channel):
            raise ValueError(f"channels[{index}] must be a parareg.Channel(fixed, moving, "
                             f"weight=..., ...), got {type(channel).__name__}")
    weights = check_weights([weight] + [channel.weight for channel in channels],
                            names=["weight"] + [f"channels[{i}].weight"
                                                for i in range(len(channels))])
    loaded = [LoadedChannel(fixed, moving, weights[0], None, None, "fixed/moving")]
    for index, channel in enumerate(channels):
        label = f"channels[{index}]"
        images = {}
        for role, reference in (("fixed", fixed), ("moving", moving)):
            image = as_image(getattr(channel, role), name=f"{label}.{role}",
                             num_threads=num_threads)
            if image.ndim != reference.ndim:
                raise ValueError(f"{label}.{role} is {image.ndim}D but {role} is "
                                 f"{reference.ndim}D; every channel has the dimensionality "
                                 "of the registration")
            if not _same_grid(image, reference):
                raise _grid_error(f"{label}.{role}", image, role, reference)
            images[role] = image
        loaded.append(LoadedChannel(images["fixed"], images["moving"],
                                    weights[index + 1], channel.affine_metric,
                                    channel.syn_metric, label))
    return tuple(loaded)


# --- linear stages: one objective over the channels -----------------------------------------


class WeightedMetricSum:
    """``sum_c w_c metric_c`` over channel states, with the :class:`AffineMetric` calls that
    :func:`~parareg.registration.optimize.optimize_stage` makes.

    Parameters
    ----------
    terms : sequence of (AffineMetric, float)
        Each channel's metric and normalised weight, in channel order.
    """

    def __init__(self, terms):
        self.terms = tuple(terms)
        self.name = "+".join(metric.name for metric, _ in self.terms)

    def _each(self, states, fixed2moving, gradient: bool):
        value = 0.0
        total = None
        for (metric, weight), state in zip(self.terms, states):
            if weight == 0.0:
                continue
            result = metric.evaluate(state, fixed2moving, gradient=gradient)
            value += weight * float(result.value)
            if gradient:
                part = weight * np.asarray(result.gradient, dtype=np.float64)
                total = part if total is None else total + part
        if total is None and gradient:
            raise NoOverlapError("no channel has a positive weight")
        return value, total

    def value(self, states, fixed2moving) -> float:
        return self._each(states, fixed2moving, False)[0]

    def value_and_gradient(self, states, fixed2moving):
        return self._each(states, fixed2moving, True)

    def __repr__(self) -> str:
        return "WeightedMetricSum(" + ", ".join(f"{w:.4g} * {m!r}" for m, w in self.terms) + ")"


# --- SyN: combined update forces -------------------------------------------------------------


def _flat_units(size: int):
    return partition_range(0, size, grain=DEFAULT_GRAIN_VOXELS)


def field_norm(field: np.ndarray, *, num_threads: int | None = None) -> float:
    """L2 norm of all of ``field``'s values (float64 partials per work unit, unit order)."""
    values = field.reshape(-1)
    partials = for_each_unit(lambda unit, start, stop: sum_of_squares(values, start, stop),
                             _flat_units(values.size),
                             num_threads=resolve_num_threads(num_threads))
    return math.sqrt(math.fsum(partials)) if partials else 0.0


def combine_forces(forces: Sequence[np.ndarray], weights: Sequence[float], *,
                   num_threads: int | None = None) -> np.ndarray:
    """``sum_c weights[c] * forces[c] / ||forces[c]||`` written into ``forces[0]`` (returned).

    Parameters
    ----------
    forces : sequence of ndarray, shape (X, Y[, Z], ndim), float32, C-contiguous
        One update field per channel, on one grid; ``forces[0]`` is overwritten.
    weights : sequence of float
        Normalised channel weights.
    num_threads : int, optional
        The result is bit-identical at any count.

    Returns
    -------
    ndarray
        ``forces[0]``, holding the combination (all zero when every force is).
    """
    nt = resolve_num_threads(num_threads)
    out = forces[0]
    flat_out = out.reshape(-1)
    units = _flat_units(flat_out.size)
    scales = []
    for force, weight in zip(forces, weights):
        norm = field_norm(force, num_threads=nt)
        scales.append(weight / norm if norm > 0 and weight > 0 else 0.0)
    for index in range(1, len(forces)):
        values = forces[index].reshape(-1)
        out_scale = scales[0] if index == 1 else 1.0

        def step(unit, start, stop, values=values, out_scale=out_scale, scale=scales[index]):
            scale_add(flat_out, out_scale, values, scale, start, stop)

        for_each_unit(step, units, num_threads=nt)
    return out


__all__ = ["Channel", "LoadedChannel", "WeightedMetricSum", "check_channels", "check_weights",
           "combine_forces", "field_norm"]
