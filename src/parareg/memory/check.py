"""The check before allocating: compare an estimate with the limits and say what to change."""

from __future__ import annotations

import os

import numpy as np

from .limits import ENV_MEMORY_CHECK, available_memory, parse_size
from .model import SYN_METRICS, TRANSFORMS, MemoryEstimate, estimate, format_bytes


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




# --- the check -----------------------------------------------------------------------------


def advice(need: MemoryEstimate, remedies: dict, style: str, limit=None) -> str:
    """"; try ..." naming what lowers the peak, worded for the Python API or the CLI."""
    cli = style == "cli"
    tips = []
    fast = remedies.get("fast")
    if fast is not None and fast.peak < need.peak:
        option = "--preset fast" if cli else 'preset="fast"'
        over = ", still over the limit" if limit is not None and fast.peak > limit else ""
        tips.append(f"{option} (about {format_bytes(fast.peak)}{over})")
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
                       + advice(need, remedies, style, limit))
            raise InsufficientMemoryError(message, estimate=need, limit=limit, source=source)
    return need


def _grid_info(image):
    """``(shape, dtype in memory, bytes per voxel while reading)`` of an Image or of an image
    file's header (no voxel is read); ``None`` when it cannot be told."""
    from ..image import Image

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
                          levels=None, fixed_mask=False, cli=False, summary=False,
                          channels=()):
    """:func:`estimate` for ``fixed`` and ``moving`` given as Images or paths.

    Paths are measured from their headers, before any voxel is read. ``cli``
    estimates ``parareg register`` (reading the files, the outputs).
    ``channels``: the SyN metric (or ``None``) of each extra channel, as
    :func:`estimate` takes them.

    Returns
    -------
    need : MemoryEstimate or None
        ``None`` when a grid cannot be read or an option is bad (the
        registration itself then reports why).
    remedies : dict
        ``{"fast": MemoryEstimate or None, "integer": bool}`` for the advice.
    """
    channels = tuple(channels)
    if transform not in TRANSFORMS or (transform == "syn" and any(
            m not in SYN_METRICS for m in (metric, *(c for c in channels if c is not None)))):
        return None, {}
    info = [_grid_info(fixed), _grid_info(moving)]
    if None in info or len(info[0][0]) != len(info[1][0]):
        return None, {}
    (f_shape, f_dtype, f_read), (m_shape, m_dtype, m_read) = info
    options = dict(transform=transform, metric=metric if transform == "syn" else "cc",
                   levels=levels, fixed_mask=bool(fixed_mask), fixed_dtype=f_dtype,
                   moving_dtype=m_dtype, outputs=cli, summary=summary, load=cli,
                   read_bytes=(f_read, m_read),
                   channels=channels if transform == "syn" else (None,) * len(channels))
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
