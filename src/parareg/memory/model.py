"""The memory model: the peak resident memory of a registration, from grids, levels and transform.

:func:`estimate` adds up, for each step of a run, the arrays alive at its worst
moment, plus the interpreter's baseline and the allocator's slack; the largest
step is the peak.

How the model was derived
-------------------------
Every term below is a set of arrays read off the code, in bytes per voxel of
the grid it lives on (``Nf`` fixed voxels, ``Nm`` moving voxels, ``n`` the
fixed grid of a pyramid level, ``F = 4 * ndim`` bytes per voxel of a float32
displacement field, 12 in 3D). The peak is the largest phase, each phase the
arrays alive at its worst moment. Traced with ``tracemalloc`` (NumPy reports its
allocations to it) on the IXI 2 mm and the 1 mm pairs, every array term matched
to within 1 %; the peak RSS of whole runs (SyN default and fast, SSD, affine)
then matched the model to within 5 % (``benchmarks/memory.py``, BENCHMARKS.md).

``images``
    fixed and moving as float32: ``4 Nf + 4 Nm`` (integer arrays keep their
    itemsize and get a float32 working copy for every pyramid level).
load (command line)
    nibabel reads the raw bytes, scales them (float64 when the header has a
    scale factor) and converts to float32: ``(itemsize + 4 [+ 8]) N`` of the
    image being read (measured: 2.1 x the float32 size for a float32 .nii.gz,
    3 x for a scaled uint8 one).
affine stage (``registration/affine.py``, ``transforms/init.py``)
    center of mass: a float64 copy plus one float64 temporary
    (``scipy.ndimage.center_of_mass``): ``16 N`` of the larger image. Each level
    with ``sigma > 0`` smooths a float32 copy in two ping-pong buffers
    (``filters.gaussian_smooth``): ``8 N``; the shrunk level images and at most
    ``AUTO_SAMPLES`` samples (value + index, 8 bytes each) stay until the
    stage ends.
SyN, per level (``registration/syn.py``)
    fields ``u_s, u_m, v_s, v_m``: ``4 F n``; per side one scratch buffer and,
    from the second iteration on, the metric's previous update, both kept in
    the buffer rotation: ``2 F n + 2 F n``; the two warped images ``8 n``; the
    shrunk level images (``4 n`` fixed, ``4 n_moving``; none at full resolution
    without smoothing). During the metric (``metrics/syn_*.py``) two new update
    fields ``2 F n`` and for CC the five float64 box sums ``40 n``
    (``kernels/cc.py``), for EM two int32 label maps ``8 n``. Field inversion
    (``fields.invert``, damped): current, next, step size and the float64
    previous residual, ``2 F n + 4 n + 2 F n``. A fixed mask adds ``3 n``
    (level mask, warped mask, the metric's uint8 copy). At the end the two
    total maps ``2 F Nf`` are composed while the level's buffers are alive.
    ``np.empty`` pages never written are not resident: a level with 0
    iterations (``preset="fast"``'s last level) has no scratch, warped images
    or metric buffers.
outputs (``cli/register.py``; absent from :func:`parareg.register`)
    the warped image ``4 Nf`` and the two total fields ``2 F Nf`` stay; writing a
    warp makes its LPS copy and nibabel's copy, ``2 F Nf``; the inverse-warped
    image samples the backward field onto the moving grid and multiplies it
    by the prealignment, ``(2 F + 4) Nm + 4 Nf``; the Jacobian ``4 Nf``; the
    summary's NCC works in float64, ``4 Nf + 24 Nf``.
channels (``registration/channels.py``)
    each extra (fixed, moving) channel keeps its float32 images ``4 Nf + 4 Nm``,
    its own affine pyramid and samples, its own SyN level images and warped
    images ``8 n``, and during the metric its two update fields ``2 F n``
    (all channels' forces are alive when they are combined); the metrics run
    one after the other, so the largest metric buffer counts once.
baseline
    measured: the peak RSS of ``parareg register`` on a 24^3 pair (Python,
    NumPy, SciPy, nibabel, numba and every kernel loaded from numba's cache),
    ``BASELINE_BYTES``; before the kernels are loaded (reading, center of mass)
    the RSS after the imports, ``IMPORT_BYTES``. The first run after an install
    compiles the kernels and peaks about 120 MiB higher (measured on the 2 mm
    pair); any registration fills numba's cache for the next ones.
allocator slack
    glibc serves arrays below its mmap threshold (at most 32 MiB) from the heap
    and keeps their pages when they are freed. Smoothing the fixed image leaves
    its two buffers there while the moving one is smoothed (measured 54 MiB at
    1 mm); each SyN level leaves ``RETAINED`` of the previous level's heap
    arrays (1 mm pair: all of them when the finest level starts, 0.44 six
    iterations later); after SyN ``8 Nf``, at most ``SLACK_MAX`` (measured
    ~50 MiB at 1 mm). Large grids are mmapped and give their pages back.

Threads do not change the estimate: work units own only tiny scratch buffers
(one window line per unit) and every thread works on the same arrays, so
fewer threads do not help (2 mm pair: 449,208 kB peak RSS with 1 thread, 449,172 kB
with 2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MiB = 2**20
GiB = 2**30
#: peak RSS of `parareg register` on a 24^3 pair with warm numba caches (measured, 2 threads,
#: Python 3.11, NumPy 2, numba 0.6x: 198-204 MiB)
BASELINE_BYTES = 200 * MiB
#: RSS after the imports, before any kernel is loaded (measured 143-145 MiB)
IMPORT_BYTES = 145 * MiB
#: glibc's largest mmap threshold: smaller arrays come from the heap, whose freed blocks
#: stay resident (the allocator slack of the module docstring)
MMAP_THRESHOLD_MAX = 32 * MiB
#: share of the previous level's heap arrays still resident at the next level (1 mm pair:
#: measured 1.0 at the start of the finest level, 0.44 six iterations later)
RETAINED = 0.7
#: slack after SyN, at most (measured ~50 MiB in the 1 mm pair's output phase)
SLACK_MAX = 64 * MiB

TRANSFORMS = ("rigid", "affine", "syn")
#: as parareg.registration.affine.AUTO_SAMPLES (a sparse level's sample count)
AUTO_SAMPLES = 2**18
SYN_METRICS = ("cc", "ssd", "em", "mi")


@dataclass(frozen=True)
class MemoryEstimate:
    """The predicted peak memory of a registration.

    Attributes
    ----------
    peak : int
        Bytes of resident memory at the peak, the baseline included.
    phase : str
        The step where the peak falls, e.g. ``"SyN level 3/3 (shrink 1): metric"``.
    parts : dict of str to int
        What is alive at the peak, in bytes; sums to ``peak``.
    phases : dict of str to int
        The peak of every step, in bytes.
    voxels : int
        Fixed voxels (the peak grows about linearly with them).
    """

    peak: int
    phase: str
    parts: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)
    voxels: int = 0

    def describe(self) -> str:
        """``"2.3 GiB at SyN level 3/3 (shrink 1): metric (fields 1.1 GiB, ...)"``."""
        top = sorted(((v, k) for k, v in self.parts.items() if v > 0), reverse=True)[:4]
        detail = ", ".join(f"{k} {format_bytes(v)}" for v, k in top)
        return f"{format_bytes(self.peak)} at {self.phase} ({detail})"

    def __str__(self) -> str:
        return self.describe()


def format_bytes(n) -> str:
    """``1536 * 2**20 -> "1.5 GiB"``."""
    n = float(n)
    for unit, size in (("TiB", 2**40), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"



# --- the model -----------------------------------------------------------------------------


def _level_shape(shape, factor: int) -> tuple:
    """The grid of ``pyramid.shrink_grid``."""
    return tuple(max(1, n // factor) for n in shape)


def _check_levels(levels):
    from ..registration.pyramid import check_levels

    return check_levels(levels)


def _syn_levels(preset, levels):
    if levels is not None:
        return _check_levels(levels)
    from ..registration.pipeline import SYN_PRESETS

    if preset not in SYN_PRESETS:
        raise ValueError(f"preset must be one of {sorted(SYN_PRESETS)}, got {preset!r}")
    return _check_levels(SYN_PRESETS[preset]["levels"])


def _affine_levels(transform):
    from ..registration.affine import DEFAULT_LEVELS
    from ..registration.pipeline import SYN_PREALIGN_LEVELS

    return _check_levels(SYN_PREALIGN_LEVELS if transform == "syn" else DEFAULT_LEVELS)


class _Phases:
    """Peaks of the steps of a run: ``add(name, **parts)`` keeps each step's parts."""

    def __init__(self):
        self.steps = {}

    def add(self, name, *, baseline=BASELINE_BYTES, slack=0, **parts):
        parts = {"baseline": baseline, "allocator_slack": slack, **parts}
        self.steps[name] = {k.replace("_", " "): int(v) for k, v in parts.items() if v}


def _heap(*sizes) -> int:
    """Bytes of the arrays ``sizes`` that glibc serves from its heap (below the mmap threshold)."""
    return sum(size for size in sizes if size < MMAP_THRESHOLD_MAX)


def _shape(value, *, name):
    try:
        shape = tuple(int(n) for n in value)
    except TypeError:
        raise ValueError(f"{name} must be a grid shape such as (160, 192, 224), "
                         f"got {value!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{name} must be a 2D or 3D shape of positive sizes, got {value!r}")
    return shape


def estimate(fixed_shape, moving_shape, *, transform: str = "syn", preset: str = "default",
             levels=None, metric: str = "cc", fixed_mask: bool = False,
             fixed_dtype="float32", moving_dtype="float32", outputs: bool = False,
             summary: bool = False, load: bool = False, read_bytes=(8, 8),
             channels=()) -> MemoryEstimate:
    """Peak resident memory of a registration, from the grids and the transform model.

    Parameters
    ----------
    fixed_shape, moving_shape : tuple of int
        The two grids, ``(X, Y[, Z])``.
    transform : {"rigid", "affine", "syn"}
    preset : {"fast", "default", "accurate"}
        SyN levels (see ``parareg.registration.pipeline.SYN_PRESETS``).
    levels : sequence of (factor, sigma, iterations), optional
        SyN levels instead of the preset's.
    metric : {"cc", "ssd", "em", "mi"}
        The SyN metric.
    fixed_mask : bool
        Whether a fixed mask is given.
    fixed_dtype, moving_dtype : dtype
        Of the arrays in memory (float32 unless integer arrays are passed).
    outputs : bool
        Include the output phase of ``parareg register`` (inverse-warped
        image, Jacobian, writing the warps).
    summary : bool
        Include the NCC summary ``parareg register`` prints without ``-q``.
    load : bool
        Include reading the images (the command line loads them itself).
    read_bytes : (float, float)
        Bytes per voxel while reading fixed and moving: the raw data, nibabel's
        float64 scaling when the header has a scale factor, and the float32 result.
    channels : sequence of str or None
        One entry per extra channel (``register(channels=...)``, ``-i`` pairs):
        its SyN metric, ``None`` for ``metric``. Each channel's images are on
        the grids of ``fixed_shape`` / ``moving_shape``.

    Returns
    -------
    MemoryEstimate

    Examples
    --------
    >>> need = estimate((160, 192, 224), (256, 256, 256))
    >>> need.phase
    'SyN level 3/3 (shrink 1): metric'
    >>> round(need.peak / 2**30, 2)
    1.44
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {list(TRANSFORMS)}, got {transform!r}")
    if metric not in SYN_METRICS:
        raise ValueError(f"metric must be one of {list(SYN_METRICS)}, got {metric!r}")
    fixed_shape = _shape(fixed_shape, name="fixed_shape")
    moving_shape = _shape(moving_shape, name="moving_shape")
    if len(fixed_shape) != len(moving_shape):
        raise ValueError(f"fixed_shape {fixed_shape} and moving_shape {moving_shape} must have "
                         "the same number of dimensions")
    syn_levels = _syn_levels(preset, levels) if transform == "syn" else ()
    channel_metrics = [metric if m is None else m for m in channels]
    for m in channel_metrics:
        if m not in SYN_METRICS:
            raise ValueError(f"channels: each channel's SyN metric must be one of "
                             f"{list(SYN_METRICS)} or None, got {m!r}")
    extra = len(channel_metrics)
    pairs = 1 + extra  # image pairs, the (fixed, moving) one first
    ndim = len(fixed_shape)
    nf, nm = math.prod(fixed_shape), math.prod(moving_shape)
    f_item, m_item = np.dtype(fixed_dtype).itemsize, np.dtype(moving_dtype).itemsize
    f_copy = 4 if np.dtype(fixed_dtype) != np.float32 else 0  # float32 working copy
    m_copy = 4 if np.dtype(moving_dtype) != np.float32 else 0
    F = 4 * ndim
    steps = _Phases()
    images = f_item * nf + m_item * nm
    channel_images = extra * 4 * (nf + nm)
    mask = 5 * nf if fixed_mask else 0  # the float32 mask and its uint8 copy

    if load:  # fixed is read first, then moving while fixed is held
        steps.add("reading fixed", baseline=IMPORT_BYTES, read_buffers=read_bytes[0] * nf)
        steps.add("reading moving", baseline=IMPORT_BYTES, images=4 * nf,
                  read_buffers=read_bytes[1] * nm)
        if extra:  # then the channels' images, the last while all others are held
            steps.add("reading the channels", baseline=IMPORT_BYTES, images=4 * (nf + nm),
                      channel_images=channel_images - 4 * nm,
                      read_buffers=max(read_bytes) * max(nf, nm))

    # --- affine stage -----------------------------------------------------------------
    big = max(nf, nm)
    steps.add("affine: center of mass", baseline=IMPORT_BYTES, images=images,
              channel_images=channel_images, fixed_mask=2 * mask, float64_weights=16 * big)
    # the fixed image's smoothing buffers stay in the heap while the moving one is smoothed
    slack = _heap(4 * nf, 4 * nf)
    kept = 0  # the stage builds every level's images and samples before optimising
    affine_levels = _affine_levels(transform)
    for index, level in enumerate(affine_levels):
        n = math.prod(_level_shape(fixed_shape, level.factor))
        n_m = math.prod(_level_shape(moving_shape, level.factor))
        smoothing = 8 * big if level.sigma > 0 else 0
        samples = min(n, AUTO_SAMPLES)
        # Generator.choice without replacement shuffles an int64 arange of all candidates
        # when more than 1/50 of them are drawn (Floyd's algorithm otherwise)
        drawing = 8 * n if AUTO_SAMPLES < n < 50 * AUTO_SAMPLES else 0
        steps.add(f"affine level {index + 1}/{len(affine_levels)} (shrink {level.factor})",
                  slack=slack, images=images, channel_images=channel_images, fixed_mask=mask,
                  affine_pyramid=kept, smoothing=smoothing, sample_drawing=drawing)
        if level.factor > 1 or level.sigma > 0:
            kept += 4 * (n + n_m) * pairs
        else:
            kept += f_copy * nf + m_copy * nm
        kept += 8 * samples * pairs  # every channel's metric state holds its samples

    # --- SyN ---------------------------------------------------------------------------
    live = dict(images=images, channel_images=channel_images, fixed_mask=mask)
    if transform == "syn":
        per_voxel = {"cc": 40, "ssd": 0, "mi": 0, "em": 8}
        # the channels' metrics run one after the other: the largest buffer counts
        biggest = max([metric, *channel_metrics], key=per_voxel.get)
        metric_bytes = per_voxel[biggest]
        metric_name = {"cc": "CC_box_sums", "em": "EM_label_maps"}.get(biggest,
                                                                        "metric_buffers")
        previous = 0  # bytes the previous level still holds at the next level's start
        total = len(syn_levels)
        for index, level in enumerate(syn_levels):
            name = f"SyN level {index + 1}/{total} (shrink {level.factor})"
            n = math.prod(_level_shape(fixed_shape, level.factor))
            n_m = math.prod(_level_shape(moving_shape, level.factor))
            copied = level.factor > 1 or level.sigma > 0
            level_images = 4 * (n + n_m) * pairs if copied else f_copy * nf + m_copy * nm
            if level.sigma > 0:
                steps.add(f"{name}: smoothing", slack=slack, **live, previous_level=previous,
                          smoothing=8 * big)
            steps.add(f"{name}: fields from the previous level", slack=slack, **live,
                      level_images=level_images, previous_level=previous,
                      displacement_fields=4 * F * n)
            fields = 4 * F * n
            iterating = level.iterations >= 1
            # scratch + every channel's two warped images
            buffers = (2 * F * n + 8 * n * pairs) if iterating else 0
            updates = 2 * F * n if level.iterations >= 2 else 0
            level_mask = (3 * n if fixed_mask else 0)
            if iterating:
                steps.add(f"{name}: metric", slack=slack, **live, level_images=level_images,
                          displacement_fields=fields, scratch_and_warped=buffers,
                          previous_updates=updates, metric_updates=2 * F * n * pairs,
                          level_mask=level_mask, **{metric_name: metric_bytes * n})
            steps.add(f"{name}: field inversion", slack=slack, **live,
                      level_images=level_images,
                      displacement_fields=fields, scratch_and_warped=buffers,
                      previous_updates=updates, inversion_buffers=4 * F * n + 4 * n,
                      level_mask=level_mask)
            previous = fields + buffers + updates + level_images + level_mask
            # what the next level finds freed but still resident in the heap
            arrays = [F * n] * (6 + 2 * iterating + 2 * (level.iterations >= 2))
            arrays += [4 * n] * 2 * pairs * iterating + [metric_bytes * n] * iterating
            arrays += [F * n] * 2 * extra * iterating  # the other channels' forces
            arrays += [4 * n, 4 * n_m] * pairs if copied else []
            level_slack, slack = slack, int(RETAINED * _heap(*arrays))
        last, slack = syn_levels[-1], level_slack  # the last level's arrays are still alive
        if last.factor > 1:
            steps.add("SyN: fields to full resolution", slack=slack, **live,
                      previous_level=previous,
                      displacement_fields=4 * F * nf)
            previous = 4 * F * nf
        steps.add("SyN: total maps", slack=slack, **live, previous_level=previous,
                  total_maps=2 * F * nf)
        maps = 2 * F * nf
    else:
        maps = 0
    slack = min(8 * nf, SLACK_MAX)
    steps.add("warping moving", slack=slack, **live, total_maps=maps,
              warped=4 * nf + m_copy * nm)
    results = maps + 4 * nf  # the result: warped image and mapping

    # --- outputs of `parareg register` -------------------------------------------------
    if outputs:
        if transform == "syn":
            steps.add("writing the warps", slack=slack, **live, results=results,
                      warp_copies=2 * F * nf)
            steps.add("inverse-warped image", slack=slack, **live, results=results,
                      backward_on_moving_grid=(2 * F + 4) * nm + 4 * nf)
            results += 4 * nm + 4 * nf  # inverse-warped image, Jacobian
        else:
            steps.add("inverse-warped image", slack=slack, **live, results=results,
                      inverse_warped=4 * nm)
            results += 4 * nm
        if summary:
            steps.add("summary (NCC)", slack=slack, **live, results=results,
                      ncc_float64=28 * nf)

    phases = {name: sum(parts.values()) for name, parts in steps.steps.items()}
    best = max(phases, key=phases.get)
    return MemoryEstimate(peak=phases[best], phase=best, parts=steps.steps[best], phases=phases,
                          voxels=nf)
