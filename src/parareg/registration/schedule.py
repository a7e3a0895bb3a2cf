"""Registration schedules in the forms ANTs and greedy users type: ``100x50x10``, ``4x2x1``,
``2x1x0vox``, ``1e-6,10``, and the pyramid levels they make.

A pyramid is a tuple of ``(shrink factor, smoothing sigma, iterations)`` per
level, coarse to fine (:data:`parareg.registration.affine.DEFAULT_LEVELS`,
:data:`parareg.registration.syn.DEFAULT_SYN_LEVELS`); sigmas are in voxels
of the full-resolution image (``mm`` values are divided by the smallest
voxel size).

Examples
--------
>>> levels_from(iterations="100x50x10", shrink_factors="4x2x1", smoothing_sigmas="2x1x0vox")
((4, 2.0, 100), (2, 1.0, 50), (1, 0.0, 10))
>>> parse_convergence("1e-6,10")
(1e-06, 10)
>>> levels_from(iterations="100x50", shrink_factors="4x2x1")
Traceback (most recent call last):
...
ValueError: iterations gives 2 levels (100x50) but shrink_factors gives 3 (4x2x1); give one value per level to each
"""

from __future__ import annotations

import math
import re

_SIGMA_RE = re.compile(r"^(?P<values>.*?)\s*(?P<unit>vox|mm)?$", re.IGNORECASE)


def _numbers(text, *, name: str, kind=float) -> tuple:
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        text = str(text).strip()
        if not text:
            raise ValueError(f"{name} is empty; write e.g. 100x50x10")
        parts = text.split("x")
    values = []
    for part in parts:
        try:
            value = kind(part) if kind is float else _int(part)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {part!r} in {text!r} is not a number; write values "
                             "separated by x, e.g. 100x50x10") from None
        values.append(value)
    return tuple(values)


def _int(part) -> int:
    value = float(part)
    if not value.is_integer():
        raise ValueError(part)
    return int(value)


def parse_iterations(text) -> tuple[int, ...]:
    """``"100x50x10"`` -> ``(100, 50, 10)``; 0 skips a level (as in greedy and ANTs)."""
    values = _numbers(text, name="iterations", kind=int)
    if any(v < 0 for v in values):
        raise ValueError(f"iterations must be 0 or more per level, got {text!r}")
    return values


def parse_shrink_factors(text) -> tuple[int, ...]:
    """``"4x2x1"`` -> ``(4, 2, 1)``; each an integer of 1 or more."""
    values = _numbers(text, name="shrink_factors", kind=int)
    if any(v < 1 for v in values):
        raise ValueError(f"shrink_factors must be integers of 1 or more, got {text!r}")
    return values


def parse_sigmas(text, *, spacing=None) -> tuple[float, ...]:
    """``"2x1x0vox"`` or ``"4x2x0mm"`` -> sigmas in voxels (no unit means voxels).

    ``mm`` needs ``spacing`` (the image's voxel sizes): a sigma of ``s`` mm is
    ``s / min(spacing)`` voxels.
    """
    unit = "vox"
    if isinstance(text, str):
        match = _SIGMA_RE.match(text.strip())
        if match is None:
            raise ValueError(f"smoothing_sigmas: {text!r} is not values separated by x with an "
                             "optional unit, e.g. 2x1x0vox or 4x2x0mm")
        text, unit = match["values"], (match["unit"] or "vox").lower()
    values = _numbers(text, name="smoothing_sigmas")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"smoothing_sigmas must be 0 or more, got {text!r}")
    if unit == "mm":
        if spacing is None:
            raise ValueError("smoothing_sigmas in mm need the image's voxel size")
        values = tuple(v / float(min(spacing)) for v in values)
    return tuple(float(v) for v in values)


def parse_convergence(text) -> tuple[float, int]:
    """``"1e-6,10"`` (ANTs ``-c [..., threshold, window]``) -> ``(1e-06, 10)``."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = [p for p in str(text).strip().strip("[]").split(",") if p.strip()]
    if len(parts) != 2:
        raise ValueError(f"convergence must be THRESHOLD,WINDOW (e.g. 1e-6,10), got {text!r}")
    try:
        threshold, window = float(parts[0]), _int(parts[1])
    except (TypeError, ValueError):
        raise ValueError(f"convergence must be THRESHOLD,WINDOW (e.g. 1e-6,10), "
                         f"got {text!r}") from None
    if not (math.isfinite(threshold) and threshold >= 0) or window < 2:
        raise ValueError(f"convergence needs a threshold of 0 or more and a window of 2 or "
                         f"more iterations, got {text!r}")
    return threshold, window


def parse_radius(text) -> int:
    """``"2"`` or ``"2x2x2"`` -> 2 (the CC window is a cube: the values must agree)."""
    values = _numbers(text, name="radius", kind=int)
    if any(v < 1 for v in values):
        raise ValueError(f"radius must be 1 or more voxels, got {text!r} (a radius of 0 is a "
                         "single voxel, where CC is undefined)")
    if len(set(values)) != 1:
        raise ValueError(f"radius {text!r}: parareg's CC window is a cube; give one radius "
                         "(e.g. 2, or 2x2x2)")
    return values[0]


def levels_from(*, iterations=None, shrink_factors=None, smoothing_sigmas=None, base=None,
                spacing=None) -> tuple:
    """A pyramid from schedule strings, each part defaulting to ``base``'s.

    Parameters
    ----------
    iterations, shrink_factors, smoothing_sigmas : str or sequence, optional
        ``"100x50x10"``, ``"4x2x1"``, ``"2x1x0vox"``. All given ones must have
        the same number of levels.
    base : sequence of (factor, sigma, iterations), optional
        The pyramid whose values fill the parts not given (the preset's);
        required unless all three are given.
    spacing : sequence of float, optional
        Voxel sizes, for sigmas in mm.
    """
    given = {}
    if iterations is not None:
        given["iterations"] = (parse_iterations(iterations), iterations)
    if shrink_factors is not None:
        given["shrink_factors"] = (parse_shrink_factors(shrink_factors), shrink_factors)
    if smoothing_sigmas is not None:
        given["smoothing_sigmas"] = (parse_sigmas(smoothing_sigmas, spacing=spacing),
                                     smoothing_sigmas)
    counts = {name: len(values) for name, (values, _) in given.items()}
    if len(set(counts.values())) > 1:
        (a, na), (b, nb) = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)[:2]
        a, b = sorted((a, b))
        raise ValueError(f"{a} gives {counts[a]} levels ({_text(given[a][1])}) but {b} gives "
                         f"{counts[b]} ({_text(given[b][1])}); give one value per level to each")
    if base is None and len(given) < 3:
        missing = sorted({"iterations", "shrink_factors", "smoothing_sigmas"} - set(given))
        raise ValueError(f"give {', '.join(missing)} too, or a base pyramid")
    base = tuple(base) if base is not None else ()
    n = next(iter(counts.values())) if counts else len(base)
    if base and len(base) != n and len(given) < 3:
        raise ValueError(f"the schedule has {n} levels but the preset has {len(base)}; give "
                         "iterations, shrink_factors and smoothing_sigmas together to change "
                         "the number of levels")
    factors = given.get("shrink_factors", (tuple(level[0] for level in base),))[0]
    sigmas = given.get("smoothing_sigmas", (tuple(float(level[1]) for level in base),))[0]
    its = given.get("iterations", (tuple(level[2] for level in base),))[0]
    return tuple((int(f), float(s), int(i)) for f, s, i in zip(factors, sigmas, its))


def _text(value) -> str:
    return value if isinstance(value, str) else "x".join(str(v) for v in value)


def format_levels(levels) -> dict:
    """``{"iterations": "100x50x10", "shrink_factors": "4x2x1", "smoothing_sigmas": "2x1x0vox"}``."""
    def number(v):
        return f"{v:g}"

    return {"iterations": "x".join(str(int(level[2])) for level in levels),
            "shrink_factors": "x".join(str(int(level[0])) for level in levels),
            "smoothing_sigmas": "x".join(number(float(level[1])) for level in levels) + "vox"}


__all__ = ["format_levels", "levels_from", "parse_convergence", "parse_iterations",
           "parse_radius", "parse_shrink_factors", "parse_sigmas"]
