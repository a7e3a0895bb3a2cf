"""How much memory a registration needs, checked before the big arrays are allocated.

:func:`estimate` predicts the peak resident memory (RSS) of a registration from
the two grids, the pyramid levels and the transform model; :func:`check` compares
it with the memory this process may still use (:func:`available_memory`) and
with a user limit (``max_memory``), and raises :class:`InsufficientMemoryError`
naming the estimate, the limit and what to change.

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
fewer threads do not help (measured: the same peak RSS with 1 and 2 threads).
"""

from __future__ import annotations

import math
import os
import re
import resource
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "ENV_MEMORY_CHECK",
    "InsufficientMemoryError",
    "MemoryEstimate",
    "available_memory",
    "check",
    "advice",
    "check_registration",
    "estimate",
    "estimate_registration",
    "format_bytes",
    "measure_peak_rss",
    "parse_size",
]

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
#: virtual memory a run maps beyond its RSS after the check (numba code, thread stacks and
#: malloc arenas; measured 0-136 MiB with 2 threads), kept free under an address-space limit
VIRTUAL_RESERVE = 256 * MiB
#: set to 0 to skip the comparison with the memory available (max_memory still applies)
ENV_MEMORY_CHECK = "PARAREG_MEMORY_CHECK"

TRANSFORMS = ("rigid", "affine", "syn")
#: as parareg.registration.affine.AUTO_SAMPLES (a sparse level's sample count)
AUTO_SAMPLES = 2**18
SYN_METRICS = ("cc", "ssd", "em", "mi")


class InsufficientMemoryError(MemoryError):
    """A registration whose estimated peak memory exceeds what it may use.

    Attributes
    ----------
    estimate : MemoryEstimate
    limit : int
        Bytes the registration may use.
    source : str
        What sets ``limit`` (``"max_memory"``, ``"MemAvailable"``, a cgroup, a ulimit).
    """

    def __init__(self, message, *, estimate, limit, source):
        super().__init__(message)
        self.estimate = estimate
        self.limit = limit
        self.source = source


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
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": MiB, "mib": MiB,
          "mb": 10**6, "g": GiB, "gib": GiB, "gb": 10**9, "t": 2**40, "tib": 2**40,
          "tb": 10**12}
_SIZE = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-z]*)\s*$", re.I)


def parse_size(value, *, name: str = "max_memory") -> int:
    """A memory size in bytes from ``8G``, ``512M``, ``1.5GiB``, ``2e9`` or a number of bytes.

    ``K``, ``M``, ``G``, ``T`` and ``KiB`` ... ``TiB`` are powers of 1024; ``KB`` ...
    ``TB`` powers of 1000; no unit means bytes. Raises ``ValueError`` naming
    ``name`` for anything else, zero or a negative size.

    Examples
    --------
    >>> parse_size("1.5GiB") == parse_size("1536M") == 1536 * 2**20
    True
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a size such as 8G, 512M or 1.5GiB, got {value!r}")
    if isinstance(value, (int, np.integer, float, np.floating)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        match = _SIZE.match(value)
        if match is None:
            raise ValueError(f"{name} must be a size such as 8G, 512M or 1.5GiB, "
                             f"got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
        if unit not in _UNITS:
            raise ValueError(f"{name}: unknown unit {match.group(2)!r} in {value!r}; use B, "
                             "K, M, G, T (powers of 1024, also KiB ... TiB) or KB ... TB")
    else:
        raise ValueError(f"{name} must be a number of bytes or a size such as 8G, "
                         f"got {type(value).__name__}")
    size = number * _UNITS[unit]
    if not math.isfinite(size) or size < 1:
        raise ValueError(f"{name} must be a positive size (at least 1 byte), got {value!r}")
    return int(size)


# --- the model -----------------------------------------------------------------------------


def _level_shape(shape, factor: int) -> tuple:
    """The grid of ``pyramid.shrink_grid``."""
    return tuple(max(1, n // factor) for n in shape)


def _check_levels(levels):
    from .registration.pyramid import check_levels

    return check_levels(levels)


def _syn_levels(preset, levels):
    if levels is not None:
        return _check_levels(levels)
    from .registration.pipeline import SYN_PRESETS

    if preset not in SYN_PRESETS:
        raise ValueError(f"preset must be one of {sorted(SYN_PRESETS)}, got {preset!r}")
    return _check_levels(SYN_PRESETS[preset]["levels"])


def _affine_levels(transform):
    from .registration.affine import DEFAULT_LEVELS
    from .registration.pipeline import SYN_PREALIGN_LEVELS

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
             summary: bool = False, load: bool = False, read_bytes=(8, 8)) -> MemoryEstimate:
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

    Returns
    -------
    MemoryEstimate

    Examples
    --------
    >>> need = estimate((160, 192, 224), (256, 256, 256))
    >>> need.phase
    'SyN level 3/3 (shrink 1): metric'
    >>> round(need.peak / 2**30, 2)
    1.42
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
    ndim = len(fixed_shape)
    nf, nm = math.prod(fixed_shape), math.prod(moving_shape)
    f_item, m_item = np.dtype(fixed_dtype).itemsize, np.dtype(moving_dtype).itemsize
    f_copy = 4 if np.dtype(fixed_dtype) != np.float32 else 0  # float32 working copy
    m_copy = 4 if np.dtype(moving_dtype) != np.float32 else 0
    F = 4 * ndim
    steps = _Phases()
    images = f_item * nf + m_item * nm
    mask = 5 * nf if fixed_mask else 0  # the float32 mask and its uint8 copy

    if load:  # fixed is read first, then moving while fixed is held
        steps.add("reading fixed", baseline=IMPORT_BYTES, read_buffers=read_bytes[0] * nf)
        steps.add("reading moving", baseline=IMPORT_BYTES, images=4 * nf,
                  read_buffers=read_bytes[1] * nm)

    # --- affine stage -----------------------------------------------------------------
    big = max(nf, nm)
    steps.add("affine: center of mass", baseline=IMPORT_BYTES, images=images,
              fixed_mask=2 * mask, float64_weights=16 * big)
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
                  slack=slack, images=images, fixed_mask=mask, affine_pyramid=kept,
                  smoothing=smoothing, sample_drawing=drawing)
        if level.factor > 1 or level.sigma > 0:
            kept += 4 * (n + n_m)
        else:
            kept += f_copy * nf + m_copy * nm
        kept += 8 * samples

    # --- SyN ---------------------------------------------------------------------------
    live = dict(images=images, fixed_mask=mask)
    if transform == "syn":
        metric_bytes = {"cc": 40, "ssd": 0, "mi": 0, "em": 8}[metric]
        metric_name = {"cc": "CC_box_sums", "em": "EM_label_maps"}.get(metric, "metric_buffers")
        previous = 0  # bytes the previous level still holds at the next level's start
        total = len(syn_levels)
        for index, level in enumerate(syn_levels):
            name = f"SyN level {index + 1}/{total} (shrink {level.factor})"
            n = math.prod(_level_shape(fixed_shape, level.factor))
            n_m = math.prod(_level_shape(moving_shape, level.factor))
            copied = level.factor > 1 or level.sigma > 0
            level_images = 4 * (n + n_m) if copied else f_copy * nf + m_copy * nm
            if level.sigma > 0:
                steps.add(f"{name}: smoothing", slack=slack, **live, previous_level=previous,
                          smoothing=8 * big)
            steps.add(f"{name}: fields from the previous level", slack=slack, **live,
                      level_images=level_images, previous_level=previous,
                      displacement_fields=4 * F * n)
            fields = 4 * F * n
            iterating = level.iterations >= 1
            buffers = (2 * F * n + 8 * n) if iterating else 0  # scratch + warped images
            updates = 2 * F * n if level.iterations >= 2 else 0
            level_mask = (3 * n if fixed_mask else 0)
            if iterating:
                steps.add(f"{name}: metric", slack=slack, **live, level_images=level_images,
                          displacement_fields=fields, scratch_and_warped=buffers,
                          previous_updates=updates, metric_updates=2 * F * n,
                          level_mask=level_mask, **{metric_name: metric_bytes * n})
            steps.add(f"{name}: field inversion", slack=slack, **live,
                      level_images=level_images,
                      displacement_fields=fields, scratch_and_warped=buffers,
                      previous_updates=updates, inversion_buffers=4 * F * n + 4 * n,
                      level_mask=level_mask)
            previous = fields + buffers + updates + level_images + level_mask
            # what the next level finds freed but still resident in the heap
            arrays = [F * n] * (6 + 2 * iterating + 2 * (level.iterations >= 2))
            arrays += [4 * n] * 2 * iterating + [metric_bytes * n] * iterating
            arrays += [4 * n, 4 * n_m] if copied else []
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


# --- what the process may use --------------------------------------------------------------


def _kib_field(path: str, key: str) -> int | None:
    """Bytes of the ``key: N kB`` line of ``/proc/self/status`` or ``/proc/meminfo``."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value < 2**60 else None  # cgroup v1 "no limit" is ~2**63


def _cgroup_headroom() -> int | None:
    """Smallest ``limit - usage`` of this process's memory cgroup and its parents."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2
            root, limit_file, usage_file = Path("/sys/fs/cgroup"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):  # cgroup v1
            root = Path("/sys/fs/cgroup/memory")
            limit_file, usage_file = "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        folder = root / path.lstrip("/")
        while True:
            limit = _read_int(folder / limit_file)
            usage = _read_int(folder / usage_file)
            if limit is not None and usage is not None:
                room = max(0, limit - usage)
                best = room if best is None else min(best, room)
            if folder == root or root not in folder.parents:
                break
            folder = folder.parent
    return best


def available_memory() -> tuple[int | None, str]:
    """Peak RSS this process can reach, and what sets it; ``(None, "")`` when unknown.

    The smallest of: the current RSS plus ``MemAvailable`` (/proc/meminfo); plus
    the room left under the memory cgroup's limit (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``, minus usage, for the cgroup and its parents);
    the address-space limit (``RLIMIT_AS``, ``ulimit -v``) and the data limit
    (``RLIMIT_DATA``, ``ulimit -d``) less the virtual memory mapped beyond the RSS
    and ``VIRTUAL_RESERVE``.
    """
    rss = _kib_field("/proc/self/status", "VmRSS") or 0
    limits = []
    free = _kib_field("/proc/meminfo", "MemAvailable")
    if free is not None:
        limits.append((rss + free, "MemAvailable in /proc/meminfo"))
    room = _cgroup_headroom()
    if room is not None:
        limits.append((rss + room, "the memory cgroup's limit"))
    for which, key, text in ((resource.RLIMIT_AS, "VmSize", "the address-space limit "
                              "(ulimit -v)"),
                             (resource.RLIMIT_DATA, "VmData", "the data-size limit (ulimit -d)")):
        soft = resource.getrlimit(which)[0]
        if soft == resource.RLIM_INFINITY:
            continue
        mapped = _kib_field("/proc/self/status", key)
        beyond = max(0, (mapped or rss) - rss)
        limits.append((max(0, soft - beyond - VIRTUAL_RESERVE), text))
    if not limits:
        return None, ""
    return min(limits)


#: forks ``argv[2:]`` from this small interpreter and writes "exit-code peak-bytes" to argv[1]
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss * 1024}")
"""


def measure_peak_rss(command, **popen_options) -> tuple[int, int]:
    """Run ``command`` (a list) in a child; return its exit code and peak RSS in bytes.

    A child's ``ru_maxrss`` starts from the resident size of the process it was
    forked from (Linux keeps the high-water mark across ``exec``), so a large
    caller would inflate it: the command is forked from a small launcher
    interpreter instead. ``popen_options`` go to :class:`subprocess.Popen` (e.g.
    ``stdout``, ``stderr``, ``env``, ``timeout``).
    """
    import subprocess
    import sys
    import tempfile

    timeout = popen_options.pop("timeout", None)
    with tempfile.TemporaryDirectory(prefix="parareg-rss-") as folder:
        result = Path(folder) / "result"
        subprocess.run([sys.executable, "-c", _LAUNCHER, str(result), *map(str, command)],
                       check=True, timeout=timeout, **popen_options)
        code, peak = result.read_text().split()
    return int(code), int(peak)


# --- the check -----------------------------------------------------------------------------


def advice(need: MemoryEstimate, remedies: dict, style: str) -> str:
    """"; try ..." naming what lowers the peak, worded for the Python API or the CLI."""
    cli = style == "cli"
    tips = []
    fast = remedies.get("fast")
    if fast is not None and fast.peak < need.peak:
        option = "--preset fast" if cli else 'preset="fast"'
        tips.append(f"{option} (about {format_bytes(fast.peak)})")
    per_voxel = (need.peak - need.parts.get("baseline", 0)) / max(need.voxels, 1)
    tips.append("crop the images to the region you need (the peak grows with the fixed "
                f"image's voxels, about {per_voxel:.0f} bytes each)")
    if remedies.get("integer"):
        tips.append("pass float32 images (integer arrays get float32 working copies)")
    threads = "--threads" if cli else "num_threads"
    return ("; try " + ", or ".join(tips) + f" (fewer {threads} would not help: all threads "
            "share the same arrays)")


def check(need: MemoryEstimate, *, max_memory=None, remedies=None,
          style: str = "python") -> MemoryEstimate:
    """Raise :class:`InsufficientMemoryError` if ``need`` does not fit.

    Parameters
    ----------
    need : MemoryEstimate
    max_memory : int or str, optional
        A limit of the user's (bytes, or a size such as ``"8G"``, see :func:`parse_size`).
    remedies : dict, optional
        ``{"fast": MemoryEstimate, "integer": bool}`` for the advice.
    style : {"python", "cli"}
        Name options as keyword arguments or as command-line options.

    Returns
    -------
    MemoryEstimate
        ``need``, when it fits.
    """
    remedies = remedies or {}
    limits = []
    if max_memory is not None:
        limits.append((parse_size(max_memory, name="--max-memory" if style == "cli"
                                  else "max_memory"),
                       "--max-memory" if style == "cli" else "max_memory"))
    if os.environ.get(ENV_MEMORY_CHECK, "").strip() != "0":
        available, source = available_memory()
        if available is not None:
            limits.append((available, source))
    for limit, source in sorted(limits):
        if need.peak > limit:
            what = (f"the limit is {format_bytes(limit)} ({source})" if source.startswith(
                ("max_memory", "--max-memory")) else
                f"only {format_bytes(limit)} can be used ({source})")
            message = (f"not enough memory: this registration needs about "
                       f"{need.describe()}, but {what}"
                       + advice(need, remedies, style))
            raise InsufficientMemoryError(message, estimate=need, limit=limit, source=source)
    return need


def _grid_info(image):
    """``(shape, dtype in memory, bytes per voxel while reading)`` of an Image or of an image
    file's header (no voxel is read); ``None`` when it cannot be told."""
    from .image import Image

    if isinstance(image, Image):
        return tuple(image.shape), image.data.dtype, 0
    if not isinstance(image, (str, os.PathLike)):
        return None
    try:
        import nibabel as nib

        img = nib.load(str(image))
        shape = tuple(int(n) for n in img.shape)
        itemsize = img.get_data_dtype().itemsize
        slope, inter = img.header.get_slope_inter()
    except Exception:  # the loader reports unreadable files with a clear message
        return None
    scaled = not (slope in (None, 1.0) or np.isnan(slope)) or not (
        inter in (None, 0.0) or np.isnan(inter))
    read = itemsize + 4 + (8 if scaled else 0)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 3 and 1 in shape:
        shape = tuple(n for n in shape if n > 1)
    if len(shape) not in (2, 3):
        return None
    return shape, np.dtype(np.float32), read  # loaded as float32


def estimate_registration(fixed, moving, *, transform="syn", preset="default", metric="cc",
                          levels=None, fixed_mask=False, cli=False, summary=False):
    """:func:`estimate` for ``fixed`` and ``moving`` given as Images or paths.

    Paths are measured from their headers, before any voxel is read. ``cli``
    estimates ``parareg register`` (reading the files, the outputs).

    Returns
    -------
    need : MemoryEstimate or None
        ``None`` when a grid cannot be read or an option is bad (the
        registration itself then reports why).
    remedies : dict
        ``{"fast": MemoryEstimate or None, "integer": bool}`` for the advice.
    """
    if transform not in TRANSFORMS or (transform == "syn" and metric not in SYN_METRICS):
        return None, {}
    info = [_grid_info(fixed), _grid_info(moving)]
    if None in info or len(info[0][0]) != len(info[1][0]):
        return None, {}
    (f_shape, f_dtype, f_read), (m_shape, m_dtype, m_read) = info
    options = dict(transform=transform, metric=metric if transform == "syn" else "cc",
                   levels=levels, fixed_mask=bool(fixed_mask), fixed_dtype=f_dtype,
                   moving_dtype=m_dtype, outputs=cli, summary=summary, load=cli,
                   read_bytes=(f_read, m_read))
    need = estimate(f_shape, m_shape, preset=preset, **options)
    remedies = {"integer": f_dtype != np.float32 or m_dtype != np.float32, "fast": None}
    if transform == "syn" and levels is None and preset != "fast":
        remedies["fast"] = estimate(f_shape, m_shape, preset="fast", **options)
    return need, remedies


def check_registration(fixed, moving, *, max_memory=None, cli=False,
                       **options) -> MemoryEstimate | None:
    """:func:`estimate_registration`, then :func:`check`; returns the estimate or ``None``.

    Raises
    ------
    InsufficientMemoryError
        When the estimate exceeds ``max_memory`` or the memory available.
    ValueError
        For a ``max_memory`` that is not a size.
    """
    if max_memory is not None:
        max_memory = parse_size(max_memory, name="--max-memory" if cli else "max_memory")
    need, remedies = estimate_registration(fixed, moving, cli=cli, **options)
    if need is None:
        return None
    return check(need, max_memory=max_memory, remedies=remedies,
                 style="cli" if cli else "python")
