"""``parareg apply``'s inputs and outputs beyond one scalar image: ``-e``, ``-u``, ``-o [...]``.

- ``-e 0|1|3`` (or ``scalar``, ``vector``, ``time-series``): a time series
  ``(X, Y, Z, T)`` is resampled volume by volume, a vector image ``(X, Y, Z,
  1, C)`` component by component (no reorientation, as antsApplyTransforms
  ``-e 1``), both through one planned chain
  (:func:`parareg.transforms.chain.resample_series`).
- ``-u`` casts the output as antsApplyTransforms does (a direct cast, values
  not rescaled), clipped to the type's range.
- ``-o [warp.nii.gz,1]`` writes the whole list as one displacement field
  on the reference grid; ``-o Linear[affine.mat]`` writes a list of affines as
  one (``Linear[affine.mat,1]``: its inverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import CLIError

#: -e values -> kind (ANTs' numbers and names)
IMAGE_TYPES = {"0": "scalar", "scalar": "scalar", "1": "vector", "vector": "vector",
               "2": "tensor", "tensor": "tensor", "3": "time-series",
               "time-series": "time-series", "timeseries": "time-series"}
#: -u values -> NumPy dtype (None: parareg's own, float32 or the labels' type)
OUTPUT_TYPES = {"char": np.int8, "uchar": np.uint8, "short": np.int16, "ushort": np.uint16,
                "int": np.int32, "uint": np.uint32, "float": np.float32, "double": np.float64,
                "default": None}


def image_type(text: str) -> str:
    """``-e`` value -> ``"scalar"``, ``"vector"`` or ``"time-series"``."""
    import argparse

    kind = IMAGE_TYPES.get(text.lower())
    if kind is None:
        raise argparse.ArgumentTypeError(f"expected 0 (scalar), 1 (vector) or 3 (time-series), "
                                         f"got {text!r}")
    if kind == "tensor":
        raise argparse.ArgumentTypeError("2 (tensor) is not supported: parareg does not "
                                         "reorient diffusion tensors; use ANTs for them")
    return kind


def output_type(text: str):
    import argparse

    key = text.lower()
    if key not in OUTPUT_TYPES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(OUTPUT_TYPES)}, "
                                         f"got {text!r}")
    return key


@dataclass
class OutputSpec:
    """What ``-o`` asks for: an image, the collapsed field, or the collapsed affine."""

    path: Path
    mode: str = "image"  #: "image", "field" or "linear"
    inverse: bool = False  #: Linear[FILE,1]


def parse_output(text: str) -> OutputSpec:
    """``-o`` value: ``FILE``, ``[FILE,1]`` (collapsed field) or ``Linear[FILE(,1)]``."""
    raw = text.strip()
    linear = raw.lower().startswith("linear[")
    if linear:
        raw = raw[len("linear"):]
    if not raw.startswith("["):
        return OutputSpec(Path(raw))
    if not raw.endswith("]"):
        raise CLIError(f"--output: {text!r} opens '[' without closing it; write [FILE,1] "
                       "or Linear[FILE]")
    parts = [part.strip() for part in raw[1:-1].split(",")]
    flag = parts[1] if len(parts) == 2 else "0"
    if len(parts) > 2 or not parts[0] or flag not in ("0", "1"):
        raise CLIError(f"--output: {text!r} is not FILE, [FILE,1] (the list as one "
                       "displacement field) or Linear[FILE] / Linear[FILE,1]")
    path = Path(parts[0])
    if linear:
        return OutputSpec(path, "linear", inverse=flag == "1")
    return OutputSpec(path, "field" if flag == "1" else "image")


@dataclass
class Layout:
    """How the input's volumes were stacked, to write the output the same way."""

    kind: str  #: "scalar", "vector" or "time-series"
    header: object = None  #: the input's NIfTI header (time step, units, intent)


def read_volumes(path, *, kind: str, labels: bool, ndim: int | None):
    """The input as a list of 2D/3D images (one per time point or component), and its layout."""
    import nibabel as nib

    from ..io.nifti import image_from_array, stored_array

    if kind == "scalar":
        from ._common import load_image

        image = load_image(path, name="input", labels=labels)  # its own checks and messages
        return [image], Layout(kind)
    source = Path(path)
    if not source.exists():
        raise CLIError(f"input: no such file: {str(source)!r}")
    try:
        img = nib.load(str(source))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise CLIError(f"input: could not read {str(source)!r} as an image: {exc}") from exc
    shape = tuple(img.shape)
    flag = "-e 3" if kind == "time-series" else "-e 1"
    if kind == "time-series":
        if len(shape) != 4 or shape[3] < 1:
            raise CLIError(f"{flag}: input {str(source)!r} has shape {shape}, not a time series "
                           "(X, Y, Z, T); use -e 0 for a single image")
        axis = 3
    else:
        if len(shape) == 5 and shape[3] == 1:
            axis = 4
        elif len(shape) == 4:
            axis = 3
        else:
            raise CLIError(f"{flag}: input {str(source)!r} has shape {shape}, not a vector image "
                           "(X, Y, Z, 1, C); use -e 0 for a scalar image")
    labels = labels and np.issubdtype(img.get_data_dtype(), np.integer)  # else intensities
    data = stored_array(img, dtype=None if labels else np.float32)
    if axis == 4:
        data = data[:, :, :, 0, :]
    where = f"input {str(source)!r}"
    volumes = [image_from_array(data[..., t], img.affine, labels=labels,
                                where=f"{where} volume {t}") for t in range(data.shape[3])]
    if ndim is not None and volumes[0].ndim != ndim:
        raise CLIError(f"{where}: its volumes are {volumes[0].ndim}D but the reference is "
                       f"{ndim}D")
    return volumes, Layout(kind, header=img.header)


def cast(data: np.ndarray, dtype) -> np.ndarray:
    """``data`` cast to ``dtype`` as ANTs' ``-u`` does (truncation), clipped to its range."""
    if dtype is None or data.dtype == dtype:
        return data
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.trunc(data) if np.issubdtype(data.dtype, np.floating) else data
        return np.clip(values, info.min, info.max).astype(dtype)
    return data.astype(dtype)


def to_nifti(results, reference, layout: Layout, dtype):
    """The resampled volumes as one nibabel image in the input's layout, on the reference grid."""
    import nibabel as nib

    from ..io.layout import stack_to_fortran
    from ..io.nifti import _embed_affine
    from ..io.nifti import to_nifti as image_to_nifti

    if layout.kind == "scalar":
        image = results[0]
        if dtype is None:
            return image_to_nifti(image)
        data = cast(image.data, dtype)
    else:
        stack = stack_to_fortran([cast(r.data, dtype) for r in results])  # NIfTI's order
        spatial = stack.reshape(*results[0].shape, *([1] * (3 - results[0].ndim)),
                                stack.shape[-1], order="F")
        data = spatial[:, :, :, None, :] if layout.kind == "vector" else spatial
    nifti = nib.Nifti1Image(data, _embed_affine(reference), dtype=data.dtype)
    if layout.header is not None:
        zooms = layout.header.get_zooms()
        if layout.kind == "time-series" and len(zooms) > 3:
            nifti.header.set_zooms((*nifti.header.get_zooms()[:3], zooms[3]))
        nifti.header.set_xyzt_units(*layout.header.get_xyzt_units())
        if layout.kind == "vector":
            nifti.header.set_intent(layout.header.get_intent()[0] or "vector")
    nifti.set_qform(nifti.affine, code=1)
    nifti.set_sform(nifti.affine, code=1)
    return nifti
