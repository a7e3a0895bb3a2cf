"""Library errors re-said with the command line's options (see :mod:`parareg._hints`).

The library's messages name Python arguments (``levels=``, ``pipeline=``,
``starting_affine``). ``parareg register`` has none of them, so for the
situations it can meet, :func:`register_error` writes the message again with
the file names the user typed and only the options the command really has.
"""

from __future__ import annotations

from .._hints import InputError
from ._common import CLIError

__all__ = ["register_error", "scaling_error"]


def _shape(shape) -> str:
    return "x".join(str(n) for n in shape)


def _single_value(who, f) -> str:
    return (f"{who} has shape {_shape(f['shape'])}, too small for parareg register: every "
            f"--transform and --preset starts on a pyramid level shrunk {f['factor']} times, "
            f"which leaves {_shape(f['level_shape'])} voxel(s) holding a single value (the "
            f"image itself is not constant); give images of at least {2 * f['factor']} voxels "
            "along each axis (resample them to smaller voxels)")


def _cc_window(who, f) -> str:
    return (f"{who} has shape {_shape(f['shape'])}, too small for --metric cc: SyN's level "
            f"{f['level']}, shrunk {f['factor']} times (with every --preset), has shape "
            f"{_shape(f['level_shape'])}, smaller than the {f['window']}-voxel CC window; use "
            "--metric ssd, em or mi (no window), --transform affine, or images of at least "
            f"{f['factor'] * f['window']} voxels along each axis")


def _mask_vanishes(who, f) -> str:
    return (f"{who} has {f['voxels']} non-zero voxel(s), too few for the pyramid: on its level "
            f"shrunk {f['factor']} times (shape {_shape(f['level_shape'])}) none is left; give "
            f"a larger mask (a region at least {f['factor']} voxels across along each axis), "
            "or no --fixed-mask")


def _mask_empty(who, f) -> str:
    return f"{who} is empty (no non-zero voxel); give a mask that covers part of fixed, or none"


def _all_zero(who, f) -> str:
    return f"{who} is all zero; nothing to register"


def _no_mass(who, f) -> str:
    return (f"{who} has no positive intensity (maximum {f['maximum']:g}), so its centre of "
            "mass, where parareg register starts, is undefined; rescale the image so that the "
            "object is brighter than 0")


def _no_overlap(who, f) -> str:
    return (f"the {f['stage']} stage found no overlap between fixed and moving; check the two "
            "files' headers (origin, orientation, voxel size): they must describe overlapping "
            "regions of the world")


def _search_no_overlap(who, f) -> str:
    return (f"fixed and moving overlap (with their masks) at none of {f['tried']}; check the "
            "two files' headers (origin, orientation, voxel size) and the masks, or give --init "
            "a transform file")


_REGISTER = {
    "pyramid_single_value": _single_value,
    "pyramid_cc_window": _cc_window,
    "pyramid_mask_vanishes": _mask_vanishes,
    "mask_empty": _mask_empty,
    "all_zero": _all_zero,
    "no_positive_intensity": _no_mass,
    "no_overlap": _no_overlap,
    "search_no_overlap": _search_no_overlap,  # registration/initialise.py
}


def register_error(exc: InputError, *, files: dict) -> Exception:
    """The error ``parareg register`` reports for ``exc``: a :class:`CLIError` in the CLI's
    terms, or ``exc`` itself when its kind is not one the CLI re-says.

    Parameters
    ----------
    exc : InputError
    files : dict
        ``{"fixed": path, "moving": path, "fixed_mask": path or None}`` as typed.
    """
    say = _REGISTER.get(exc.kind)
    if say is None:
        return exc
    labels = {"fixed": "fixed", "moving": "moving", "fixed_mask": "--fixed-mask"}
    name = exc.facts.get("name", "")
    who = f"{labels.get(name, name)} {files.get(name)!r}" if files.get(name) else name
    return CLIError(say(who, exc.facts))


def scaling_error(exc: InputError, *, factors) -> Exception:
    """The error ``parareg scaling`` reports for ``exc`` (an image shrunk by one of ``--factors``
    too far for a registration), or :func:`register_error`'s."""
    f = exc.facts
    listed = ",".join(str(n) for n in factors)
    if exc.kind == "pyramid_single_value":
        detail = (f"its pyramid shrinks it {f['factor']} more times, to "
                  f"{_shape(f['level_shape'])} voxel(s) holding a single value")
        need = 2 * f["factor"]
    elif exc.kind == "pyramid_cc_window":
        detail = (f"SyN's level shrunk {f['factor']} more times has shape "
                  f"{_shape(f['level_shape'])}, smaller than the {f['window']}-voxel CC window "
                  "(--transform affine or rigid has no window)")
        need = f["factor"] * f["window"]
    else:
        return register_error(exc, files={})
    return CLIError(f"at one of --factors {listed}, {f['name']} is {_shape(f['shape'])}, too "
                    f"small to register: {detail}; use smaller --factors (1 is full size) or "
                    f"larger images, so that every size keeps at least {need} voxels along each "
                    "axis")
