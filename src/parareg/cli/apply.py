"""``parareg apply``: resample an image through a list of ITK/ANTs transforms.

The list means what it means to ``antsApplyTransforms`` (the engine and its
order: :mod:`parareg.transforms.chain`, which Python users call as
:func:`parareg.apply_transforms`); this module parses the ``-t`` syntax.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..image import as_grid
from ..transforms.chain import AFFINE_SUFFIXES, WARP_SUFFIXES
from ._apply_io import (
    OUTPUT_TYPES,
    image_type,
    output_type,
    parse_output,
    read_volumes,
    to_nifti,
)
from ._common import (
    CLIError,
    add_quiet_argument,
    add_threads_argument,
    check_output_file,
    describe_grid,
    make_parser,
    refuse_inputs_as_outputs,
    run_command,
)

DESCRIPTION = """\
Resample IMAGE onto the grid of REFERENCE through a list of transforms, as
antsApplyTransforms does. Affine files (.mat, .txt, .tfm: ITK/ANTs, or
written by `parareg register`) and displacement fields (.nii.gz, ITK vector
NIfTI) are accepted; [FILE,1] uses the inverse of an affine file."""

EPILOG = """\
order: for each REFERENCE point the first -t acts first (-t T1 T2 maps x to
T2(T1(x)) and samples IMAGE there), exactly as antsApplyTransforms reads its
-t list. A displacement field is zero outside its grid; a field cannot be
inverted on the fly ([warp.nii.gz,1] is an error, as in ANTs): use the
InverseWarp file.

examples:
  with the outputs of `parareg register FIXED MOVING -o out_` (or of
  antsRegistrationSyN.sh), which name the same files:

  moving onto the fixed grid:
    parareg apply -i MOVING -r FIXED -o moving_in_fixed.nii.gz \\
        -t out_1Warp.nii.gz out_0GenericAffine.mat
  fixed (or its labels) onto the moving grid:
    parareg apply -i FIXED_LABELS -r MOVING -o labels_in_moving.nii.gz \\
        -n nearest -t [out_0GenericAffine.mat,1] out_1InverseWarp.nii.gz
  an affine only:
    parareg apply -i MOVING -r FIXED -t out_0GenericAffine.mat -o affine.nii.gz

exit status: 0 on success, 2 on bad input (one "parareg: error:" line)."""


def _interpolation(text: str) -> str:
    """``-n`` value -> parareg's interpolator name (the one table in :mod:`parareg.resampling`)."""
    import argparse

    from ..resampling import check_interpolation

    try:
        return check_interpolation(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _get_parser():
    parser = make_parser("parareg apply", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-i", "--input", metavar="IMAGE",
                        help="image to resample (NIfTI 2D or 3D; with -e 1 or 3, a vector "
                             "image or a time series); not needed with -o [FILE,1]")
    parser.add_argument("-r", "--reference", required=True, metavar="REFERENCE",
                        help="image whose grid (shape, voxel size, orientation) the output takes")
    parser.add_argument("-t", "--transform", required=True, nargs="+", action="extend",
                        metavar="T", help="transform files, FILE or [FILE,1] (inverse affine); "
                                          "may be repeated: -t A -t B equals -t A B")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output image (.nii or .nii.gz); [FILE.nii.gz,1]: the whole list "
                             "as one displacement field (ANTs' composite warp); "
                             "Linear[FILE.mat] (or [FILE.mat,1], its inverse): a list of "
                             "affines as one")
    parser.add_argument("-n", "--interpolation", type=_interpolation, default="linear",
                        metavar="NAME",
                        help="Linear (default), NearestNeighbor, GenericLabel (label maps keep "
                             "their integer type), BSpline[3], Gaussian or LanczosWindowedSinc, "
                             "in any case, as antsApplyTransforms names them")
    parser.add_argument("-d", "--dimensionality", type=int, choices=(2, 3), default=None,
                        help="optional, as in ANTs: checked against the images")
    parser.add_argument("-e", "--input-image-type", type=image_type, default="scalar",
                        metavar="{0,1,3}",
                        help="0 scalar (default), 1 vector (X,Y,Z,1,C: each component, not "
                             "reoriented), 3 time series (X,Y,Z,T: each volume); ANTs' names "
                             "scalar, vector, time-series are accepted")
    parser.add_argument("-u", "--output-data-type", type=output_type, default="default",
                        metavar="TYPE",
                        help="char, uchar, short, ushort, int, uint, float, double or default "
                             "(float32; label maps keep their type): a direct cast as in ANTs, "
                             "clipped to the type's range")
    parser.add_argument("--float", action="store_true",
                        help="accepted for ANTs scripts: parareg always computes in float32 "
                             "and writes float32 unless -u says otherwise")
    add_threads_argument(parser)
    add_quiet_argument(parser)
    return parser


def main(argv=None) -> int:
    """Run ``parareg apply``; return the exit code (0, or 2 for bad input)."""
    return run_command(_run, _get_parser(), argv)


# --- the transform list ----------------------------------------------------------------------


@dataclass
class TransformSpec:
    """One ``-t`` entry: a file and whether its inverse is wanted."""

    path: Path
    inverse: bool = False

    def __str__(self) -> str:
        return f"[{self.path},1]" if self.inverse else str(self.path)


def parse_transform_list(tokens) -> list[TransformSpec]:
    """ANTs ``-t`` values -> specs; ``[a.mat, 1]`` split over two words is joined back.

    Accepted forms: ``FILE``, ``[FILE]``, ``[FILE,0]``, ``[FILE,1]`` and
    ``identity`` (skipped).
    """
    words, pending = [], None
    for token in tokens:
        if pending is not None:
            pending += token
            if "]" in token:
                words.append(pending)
                pending = None
            continue
        if token.startswith("[") and "]" not in token:
            pending = token
            continue
        words.append(token)
    if pending is not None:
        raise CLIError(f"-t: {pending!r} opens '[' without closing it; write [FILE,1]")
    specs = []
    for word in words:
        if word.lower() == "identity":
            continue
        if word.startswith("["):
            if not word.endswith("]"):
                raise CLIError(f"-t: {word!r} has text after ']'; write [FILE,1]")
            parts = [part.strip() for part in word[1:-1].split(",")]
            if len(parts) > 2 or not parts[0]:
                raise CLIError(f"-t: {word!r} is not FILE, [FILE,0] or [FILE,1] (initializer "
                               "transforms [fixed,moving,feature] are not supported)")
            flag = parts[1] if len(parts) == 2 else "0"
            if flag not in ("0", "1"):
                raise CLIError(f"-t: the inverse flag of {word!r} must be 0 or 1, got {flag!r}")
            specs.append(TransformSpec(Path(parts[0]), inverse=flag == "1"))
        else:
            specs.append(TransformSpec(Path(word)))
    return specs


def read_steps(specs, ndim: int, *, num_threads: int | None = None):
    """Read every transform of the list for a ``ndim``-D reference (errors name the ``-t``).

    ``num_threads`` threads lay out the displacement fields (from any thread).
    """
    from ..parallel import resolve_num_threads, threads
    from ..transforms.chain import file_kind, read_transforms

    labels = [f"-t {spec}" for spec in specs]
    try:
        for spec, label in zip(specs, labels):
            file_kind(spec.path, label=label)  # an unknown suffix before a missing file
        with threads(resolve_num_threads(num_threads)):
            return read_transforms([spec.path for spec in specs], ndim=ndim,
                                   invert=[spec.inverse for spec in specs], labels=labels)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from exc


def _run(args, console) -> int:
    from ..io.outputs import recover, write_nifti
    from ..parallel import resolve_num_threads, threads
    from ..transforms.chain import check_coverage, resample_series

    output = parse_output(args.output)
    out = check_output_file(output.path, name="--output")
    suffixes = AFFINE_SUFFIXES if output.mode == "linear" else WARP_SUFFIXES
    if not out.name.lower().endswith(suffixes):
        raise CLIError(f"--output must end in {' or '.join(suffixes)}, got {args.output!r}")
    if output.mode == "image" and args.input is None:
        raise CLIError("-i/--input is required (except with -o [FILE,1] or Linear[FILE], which "
                       "write the transform list itself)")
    specs = parse_transform_list(args.transform)
    inputs = {"reference": args.reference, **({"input": args.input} if args.input else {})}
    inputs.update({f"-t {spec}": spec.path for spec in specs})
    refuse_inputs_as_outputs([out], inputs)
    for folder in {spec.path.parent for spec in specs}:
        recover(folder)  # complete an output set a killed `parareg register` left mid-commit
    reference = as_grid(Path(args.reference), name="reference")  # its header: data unused
    if args.dimensionality is not None and reference.ndim != args.dimensionality:
        raise CLIError(f"-d {args.dimensionality}: reference is {reference.ndim}D")
    num_threads = resolve_num_threads(args.threads)
    if output.mode != "image":
        steps = read_steps(specs, reference.ndim, num_threads=num_threads)
        t0 = time.perf_counter()
        _write_collapsed(output, out, steps, reference, num_threads)
        what = "the list as one displacement field" if output.mode == "field" else (
            "the list as one affine")
        console.print(f"parareg apply: {what} -> {out} ({time.perf_counter() - t0:.1f} s)")
        return 0
    t0 = time.perf_counter()
    # the transforms (a warp's inflation releases the GIL) are read while the input is read
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parareg-read") as pool:
        pending = pool.submit(read_steps, specs, reference.ndim, num_threads=num_threads)
        try:
            with threads(num_threads):  # its inflate and NaN scan use --threads too
                volumes, layout = _read_input(args, reference)
        except BaseException:
            if pending.exception() is not None:  # a bad -t is reported first, as before
                raise pending.exception() from None
            raise
        steps = pending.result()
    results, coverage = resample_series(volumes, reference, steps,
                                        interpolation=args.interpolation,
                                        num_threads=num_threads)
    try:
        check_coverage(steps, coverage, hint="check -r and the order of -t")
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    with threads(num_threads):  # the layout into NIfTI's order
        nifti = to_nifti(results, reference, layout, OUTPUT_TYPES[args.output_data_type])
    write_nifti(out, nifti, num_threads=num_threads)
    seconds = time.perf_counter() - t0

    series = ("" if layout.kind == "scalar" else
              f", {len(volumes)} {'volumes' if layout.kind == 'time-series' else 'components'}")
    console.print(f"parareg apply: {args.input} -> {out} ({describe_grid(reference)}{series}, "
                  f"{args.interpolation}, {num_threads} thread{'s' * (num_threads != 1)}, "
                  f"{seconds:.1f} s)")
    for number, step in enumerate(steps, start=1):
        console.print(f"  {number}. {step.label[3:]}  ({step.kind})")
    return 0


def _read_input(args, reference):
    """``-i`` as a list of volumes (one unless ``-e 1``/``-e 3``) and its layout, checked."""
    from ..resampling import LABEL_INTERPOLATIONS

    nearest = args.interpolation in LABEL_INTERPOLATIONS
    try:
        volumes, layout = read_volumes(args.input, kind=args.input_image_type, labels=nearest,
                                       ndim=reference.ndim)
    except ValueError as exc:
        if args.input_image_type == "scalar" and (" is 4D" in str(exc) or " is 5D" in str(exc)):
            raise CLIError(f"{exc}; or, to resample every volume, pass -e 3 (a time series) "
                           "or -e 1 (a vector image)") from exc
        raise
    if args.dimensionality is not None and volumes[0].ndim != args.dimensionality:
        raise CLIError(f"-d {args.dimensionality}: input is {volumes[0].ndim}D")
    if volumes[0].ndim != reference.ndim:
        raise CLIError(f"input is {volumes[0].ndim}D but reference is {reference.ndim}D; both "
                       "must have the same dimensionality")
    return volumes, layout


def _write_collapsed(output, out, steps, reference, num_threads) -> None:
    """``-o [FILE,1]``: the list as one field; ``-o Linear[FILE]``: a list of affines as one."""
    import numpy as np

    from ..io.itk import write_affine
    from ..io.itk_warp import write_warp
    from ..transforms.chain import check_coverage, displacement_field

    if output.mode == "linear":
        warps = [step.label for step in steps if step.is_warp]
        if warps:
            raise CLIError(f"--output Linear[...]: {warps[0]} is a displacement field; a list "
                           "with fields collapses into a field: write -o [FILE.nii.gz,1]")
        total = np.eye(reference.ndim + 1)
        for step in steps:
            total = step.matrix @ total
        write_affine(np.linalg.inv(total) if output.inverse else total, out)
        return
    field, coverage = displacement_field(steps, reference, num_threads=num_threads)
    try:
        check_coverage(steps, coverage, hint="check -r and the order of -t")
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    write_warp(field, reference.vox2world, out, num_threads=num_threads)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
