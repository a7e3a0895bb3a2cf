"""``parareg apply``: resample an image through a list of ITK/ANTs transforms.

The list means what it means to ``antsApplyTransforms``: for each point ``x``
of the reference grid, the **first** ``-t`` acts first, ``-t T1 T2 ... Tn``
samples the input at ``Tn(...T2(T1(x)))``. Seen as moving the image, the order
reverses (the image moves by ``Tn`` first), which is the "last transform is
applied first" of the ANTs documentation and why the forward list of a
registration is ``-t PREFIX_1Warp.nii.gz PREFIX_0GenericAffine.mat``
(``x -> x + warp(x) -> affine``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import (
    CLIError,
    add_quiet_argument,
    add_threads_argument,
    check_output_file,
    describe_grid,
    load_image,
    make_parser,
    refuse_inputs_as_outputs,
    run_command,
    sample_field,
)

#: suffix -> kind of transform file
AFFINE_SUFFIXES = (".mat", ".txt", ".tfm")
WARP_SUFFIXES = (".nii", ".nii.gz")
#: ANTs and parareg interpolation names -> parareg's
INTERPOLATIONS = {"linear": "linear", "nearest": "nearest", "nearestneighbor": "nearest",
                  "genericlabel": "nearest"}
#: reference points mapped per work unit (bounds the memory of the point arrays)
_POINTS_PER_UNIT = 1 << 18
#: below this fraction of points inside a warp's grid, say so
_MIN_COVERAGE = 0.5

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
    key = text.lower()
    if key not in INTERPOLATIONS:
        import argparse

        raise argparse.ArgumentTypeError(f"expected linear or nearest, got {text!r}")
    return INTERPOLATIONS[key]


def _get_parser():
    parser = make_parser("parareg apply", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-i", "--input", required=True, metavar="IMAGE",
                        help="image to resample (NIfTI 2D or 3D)")
    parser.add_argument("-r", "--reference", required=True, metavar="REFERENCE",
                        help="image whose grid (shape, voxel size, orientation) the output takes")
    parser.add_argument("-t", "--transform", required=True, nargs="+", action="extend",
                        metavar="T", help="transform files, FILE or [FILE,1] (inverse affine); "
                                          "may be repeated: -t A -t B equals -t A B")
    parser.add_argument("-o", "--output", required=True, metavar="OUT",
                        help="output image (.nii or .nii.gz)")
    parser.add_argument("-n", "--interpolation", type=_interpolation, default="linear",
                        metavar="{linear,nearest}",
                        help="linear (default) or nearest (label maps keep integer values); "
                             "ANTs' Linear, NearestNeighbor and GenericLabel are accepted")
    parser.add_argument("-d", "--dimensionality", type=int, choices=(2, 3), default=None,
                        help="optional, as in ANTs: checked against the images")
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


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(WARP_SUFFIXES):
        return "warp"
    if name.endswith(AFFINE_SUFFIXES):
        return "affine"
    if name.endswith((".h5", ".hdf5")):
        raise CLIError(f"-t {str(path)!r}: composite HDF5 transforms are not supported; "
                       "use the .mat and Warp.nii.gz files ANTs writes by default")
    raise CLIError(f"-t {str(path)!r}: unknown transform type; expected an affine "
                   f"({', '.join(AFFINE_SUFFIXES)}) or a displacement field "
                   f"({', '.join(WARP_SUFFIXES)})")


@dataclass
class Step:
    """A read transform: ``matrix`` for an affine, ``field`` + ``vox2world`` for a warp."""

    spec: TransformSpec
    matrix: np.ndarray | None = None
    field: np.ndarray | None = None
    vox2world: np.ndarray | None = None

    @property
    def is_warp(self) -> bool:
        return self.field is not None


def read_steps(specs, ndim: int) -> list[Step]:
    """Read every transform of the list for a ``ndim``-D reference (errors name the file)."""
    from ..io.itk import read_affine
    from ..io.itk_warp import read_warp

    steps = []
    for spec in specs:
        path = spec.path
        kind = _kind(path)
        if not path.exists():
            raise CLIError(f"-t: no such transform file: {str(path)!r}")
        if kind == "affine":
            try:
                matrix = read_affine(path, ndim=ndim)
            except ValueError as exc:
                raise CLIError(f"-t {str(path)!r}: {exc}") from exc
            steps.append(Step(spec, matrix=np.linalg.inv(matrix) if spec.inverse else matrix))
            continue
        if spec.inverse:
            raise CLIError(f"-t {spec}: a displacement field cannot be inverted on the fly; use "
                           "its inverse field (e.g. PREFIX_1InverseWarp.nii.gz) as ANTs does")
        try:
            field, vox2world = read_warp(path)
        except ValueError as exc:
            raise CLIError(f"-t {str(path)!r}: {exc}") from exc
        if field.shape[-1] != ndim:
            raise CLIError(f"-t {str(path)!r} is a {field.shape[-1]}D displacement field but "
                           f"the reference is {ndim}D")
        steps.append(Step(spec, field=field, vox2world=vox2world))
    return steps


# --- mapping reference points -----------------------------------------------------------------


def _grid_matches(step: Step, reference) -> bool:
    return (step.field.shape[:-1] == tuple(reference.shape)
            and np.allclose(step.vox2world, reference.vox2world, rtol=0.0, atol=1e-6))


def _compose_affines(steps) -> np.ndarray:
    """The matrix of affine steps applied to points in list order (first first)."""
    ndim = steps[0].matrix.shape[0] - 1 if steps else None
    total = np.eye(ndim + 1) if steps else None
    for step in steps:
        total = step.matrix @ total
    return total


def _sample_warp(step: Step, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Displacements of the warp ``step`` at world ``points`` (N, ndim), and which were inside."""
    return sample_field(step.field, step.vox2world, points)


def map_reference_points(steps, reference, *, num_threads=None):
    """Displacement ``T(x) - x`` of the chain at every reference world point ``x``.

    Returns
    -------
    field : ndarray, shape (*reference.shape, ndim), float32, millimetres
    coverage : list of float
        Per warp step, the fraction of reference points that landed inside its grid.
    """
    from ..parallel import parallel_map

    shape = tuple(reference.shape)
    ndim = len(shape)
    vox2world = reference.vox2world
    plane = int(np.prod(shape[1:]))
    rows = max(1, _POINTS_PER_UNIT // max(plane, 1))
    slabs = [(start, min(start + rows, shape[0])) for start in range(0, shape[0], rows)]
    warps = [i for i, step in enumerate(steps) if step.is_warp]

    def map_slab(slab):
        start, stop = slab
        axes = [np.arange(start, stop, dtype=np.float64)] + [
            np.arange(n, dtype=np.float64) for n in shape[1:]]
        index = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, ndim)
        world = index @ vox2world[:ndim, :ndim].T + vox2world[:ndim, ndim]
        points = world
        inside_counts = []
        for step in steps:
            if step.is_warp:
                disp, inside = _sample_warp(step, points)
                points = points + disp
                inside_counts.append(int(np.count_nonzero(inside)))
            else:
                points = points @ step.matrix[:ndim, :ndim].T + step.matrix[:ndim, ndim]
        return (points - world).astype(np.float32), inside_counts

    results = parallel_map(map_slab, slabs, num_threads=num_threads)
    field = np.concatenate([r[0] for r in results]).reshape(*shape, ndim)
    total = float(np.prod(shape))
    coverage = [sum(r[1][k] for r in results) / total for k in range(len(warps))]
    return field, coverage


def apply_transforms(image, reference, steps, *, interpolation="linear", num_threads=None):
    """``image`` sampled at ``Tn(...T1(x))`` for every point ``x`` of ``reference``.

    Returns
    -------
    Image
        On the reference grid.
    coverage : list of float
        Per warp, the fraction of reference points inside its grid.
    """
    from ..resampling import resample

    affines_only = not any(step.is_warp for step in steps)
    if affines_only:
        matrix = _compose_affines(steps) if steps else None
        return resample(image, reference, affine=matrix, interpolation=interpolation,
                        num_threads=num_threads), []
    first = steps[0]
    if first.is_warp and _grid_matches(first, reference) and not any(
            step.is_warp for step in steps[1:]):
        # x -> A(x + u(x)) with u on the reference grid: resample's own affine + field path
        # (the same computation as parareg's DiffeomorphicMap.transform)
        matrix = _compose_affines(steps[1:]) if len(steps) > 1 else None
        return resample(image, reference, affine=matrix, field=first.field,
                        interpolation=interpolation, num_threads=num_threads), [1.0]
    field, coverage = map_reference_points(steps, reference, num_threads=num_threads)
    return resample(image, reference, field=field, interpolation=interpolation,
                    num_threads=num_threads), coverage


def _run(args, console) -> int:
    from ..io.nifti import save
    from ..io.outputs import recover
    from ..parallel import resolve_num_threads

    out = check_output_file(args.output, name="--output")
    if not out.name.lower().endswith(WARP_SUFFIXES):
        raise CLIError(f"--output must end in .nii or .nii.gz, got {args.output!r}")
    specs = parse_transform_list(args.transform)
    inputs = {"input": args.input, "reference": args.reference}
    inputs.update({f"-t {spec}": spec.path for spec in specs})
    refuse_inputs_as_outputs([out], inputs)
    for folder in {spec.path.parent for spec in specs}:
        recover(folder)  # complete an output set a killed `parareg register` left mid-commit
    image = load_image(args.input, name="input", labels=args.interpolation == "nearest")
    reference = load_image(args.reference, name="reference")
    for name, img in (("input", image), ("reference", reference)):
        if args.dimensionality is not None and img.ndim != args.dimensionality:
            raise CLIError(f"-d {args.dimensionality}: {name} is {img.ndim}D")
    if image.ndim != reference.ndim:
        raise CLIError(f"input is {image.ndim}D but reference is {reference.ndim}D; both must "
                       "have the same dimensionality")
    steps = read_steps(specs, reference.ndim)
    num_threads = resolve_num_threads(args.threads)

    t0 = time.perf_counter()
    result, coverage = apply_transforms(image, reference, steps,
                                        interpolation=args.interpolation,
                                        num_threads=num_threads)
    warps = [step for step in steps if step.is_warp]
    for step, fraction in zip(warps, coverage):
        if fraction == 0.0:
            raise CLIError(f"-t {step.spec}: no reference point falls inside this displacement "
                           "field's grid; the reference does not match the warp (check -r and "
                           "the order of -t)")
        if fraction < _MIN_COVERAGE:
            console.warn(f"only {100 * fraction:.0f} % of the reference points fall inside the "
                         f"grid of {step.spec} (zero displacement outside); check -r and the "
                         "order of -t")
    save(result, out, num_threads=num_threads)
    seconds = time.perf_counter() - t0

    console.print(f"parareg apply: {args.input} -> {out} ({describe_grid(reference)}, "
                  f"{args.interpolation}, {num_threads} thread{'s' * (num_threads != 1)}, "
                  f"{seconds:.1f} s)")
    for number, step in enumerate(steps, start=1):
        kind = "displacement field" if step.is_warp else (
            "inverse affine" if step.spec.inverse else "affine")
        console.print(f"  {number}. {step.spec}  ({kind})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
