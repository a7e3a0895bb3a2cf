"""``parareg segment``: multi-atlas segmentation (register every atlas, fuse the labels).

Examples::

    parareg segment subject.nii.gz --atlases a1.nii.gz a2.nii.gz a3.nii.gz \\
        --labels l1.nii.gz l2.nii.gz l3.nii.gz --fusion jlf -o subject_labels.nii.gz
    parareg segment subject.nii.gz --atlases a*.nii.gz --labels l*.nii.gz \\
        --fusion majority -o seg.nii.gz --workers 4 --preset fast

Each atlas is registered to TARGET on a local Dask cluster (--workers
processes) or on the cluster at --scheduler; its labels follow
(GenericLabel). The labels are fused by majority vote (ties to the smallest
label), joint label fusion (Wang et al. 2013, as antsJointFusion) or
multi-label STAPLE (Warfield et al. 2004, as ITK's). Writes
OUT (the label map), OUT_posteriors.nii.gz (one 4D file: volume l is the
l-th label of OUT_segment.json's "labels"), OUT_segment.json, and the
registrations in OUT_registrations/ (a rerun resumes from them). A
registration that fails is recorded there and left out with a warning.
"""

from __future__ import annotations

import argparse
import re
import sys

from ._common import (CLIError, EXIT_OK, add_quiet_argument, add_threads_argument,
                      check_output_file, make_parser, positive_float, positive_int,
                      refuse_inputs_as_outputs, run_command)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _get_parser():
    from ..population.fusion import DEFAULT_PATCH_METRIC, FUSIONS, PATCH_METRICS
    from ..population.segment import PRESETS
    from ..registration.pipeline import AFFINE_PIPELINES

    parser = make_parser("parareg segment", description=__doc__.split("\n\n")[0]
                         .replace("``", ""), epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("target", metavar="TARGET", help="image to segment (2D or 3D NIfTI)")
    parser.add_argument("--atlases", nargs="+", required=True, metavar="IMAGE",
                        help="atlas images, registered to TARGET")
    parser.add_argument("--labels", nargs="+", required=True, metavar="LABELS",
                        help="the atlases' integer label maps, in the same order")
    parser.add_argument("--fusion", choices=sorted(FUSIONS), default="majority",
                        help="label fusion (%(default)s)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.nii.gz",
                        help="fused label map; posteriors and report go next to it")
    parser.add_argument("--transform", choices=sorted(AFFINE_PIPELINES), default="syn",
                        help="registration of each atlas (%(default)s)")
    parser.add_argument("--preset", choices=PRESETS, default="atlas",
                        help="registration settings: atlas (made for label fusion: SyN to half "
                             "resolution) or one of parareg register's (%(default)s)")
    parser.add_argument("--patch-radius", type=positive_int, default=2, metavar="R",
                        help="jlf: patch radius in voxels (%(default)s, as antsJointFusion)")
    parser.add_argument("--search-radius", type=_non_negative_int, default=3, metavar="R",
                        help="jlf: search radius in voxels (%(default)s)")
    parser.add_argument("--alpha", type=positive_float, default=0.1,
                        help="jlf: regularisation added to M's diagonal (%(default)s)")
    parser.add_argument("--beta", type=positive_float, default=2.0,
                        help="jlf: exponent of the patch differences (%(default)s)")
    parser.add_argument("--patch-metric", choices=sorted(PATCH_METRICS),
                        default=DEFAULT_PATCH_METRIC,
                        help="jlf: the search's patch metric, Pearson correlation or mean "
                             "squares of the raw intensities (%(default)s, as antsJointFusion; "
                             "antspyx's default is msq)")
    parser.add_argument("--no-posteriors", action="store_true",
                        help="do not compute or write OUT_posteriors.nii.gz")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="worker processes of the local Dask cluster (default: one per "
                             "registration, at most the usable CPUs)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="address of a running Dask scheduler (e.g. tcp://host:8786) "
                             "instead of a local cluster; it must see the files")
    add_threads_argument(parser)
    add_quiet_argument(parser)
    return parser


def _cli_names(message: str, args) -> str:
    """The library's argument names in ``message`` as this command's options."""
    def item(match):
        files = args.atlases if match[1] == "atlases" else args.labels
        return f"--{match[1]} {files[int(match[2])]}"

    message = re.sub(r"\b(atlases|labels)\[(\d+)\]", item, message)
    for name in ("patch_radius", "search_radius", "alpha", "beta", "patch_metric"):
        message = re.sub(rf"\b{name}\b", "--" + name.replace("_", "-"), message)
    return re.sub(r"^target\b", "TARGET", message)


def _run(args, console) -> int:
    from ..io.nifti import check_nifti_path
    from ..population.fusion import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_PATCH_METRIC
    from ..population.segment import output_paths, segment

    try:
        check_nifti_path(args.output, name="--output")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    out = check_output_file(args.output, name="--output")
    if len(args.atlases) != len(args.labels):
        raise CLIError(f"got {len(args.atlases)} --atlases but {len(args.labels)} --labels: "
                       "give every atlas its label map, in the same order")
    if args.fusion != "jlf":
        changed = [opt for opt, value, default in (
            ("--patch-radius", args.patch_radius, 2), ("--search-radius", args.search_radius, 3),
            ("--alpha", args.alpha, DEFAULT_ALPHA), ("--beta", args.beta, DEFAULT_BETA),
            ("--patch-metric", args.patch_metric, DEFAULT_PATCH_METRIC))
            if value != default]
        if changed:
            raise CLIError(f"{', '.join(changed)} set joint label fusion: add --fusion jlf "
                           "or drop them")
    paths = output_paths(out)
    inputs = {"TARGET": args.target}
    inputs.update({f"--atlases {p}": p for p in args.atlases})
    inputs.update({f"--labels {p}": p for p in args.labels})
    refuse_inputs_as_outputs([paths["labels"], paths["posteriors"], paths["report"]], inputs)
    jlf = {"patch_radius": args.patch_radius, "search_radius": args.search_radius,
           "alpha": args.alpha, "beta": args.beta,
           "patch_metric": args.patch_metric} if args.fusion == "jlf" else {}

    def progress(info) -> None:
        if console.quiet:
            return
        row = info.row
        state = row.get("status")
        print(f"registration {info.done}/{info.total} {row.get('name')}: {state}",
              file=sys.stderr, flush=True)

    try:
        result = segment(args.target, args.atlases, args.labels, fusion=args.fusion,
                         transform=args.transform, preset=args.preset, out=out,
                         workers=args.workers, scheduler=args.scheduler,
                         posteriors=not args.no_posteriors, num_threads=args.threads,
                         progress=progress, **jlf)
    except (ValueError, FileNotFoundError) as exc:  # the library's names as these options
        raise type(exc)(_cli_names(str(exc), args)) from exc
    console.print(f"fused {len(result.used)} atlases by {args.fusion} into {out} "
                  f"({len(result.label_values)} labels)")
    for path in result.files[1:]:
        console.print(f"wrote {path}")
    return EXIT_OK


def main(argv=None) -> int:
    """Run ``parareg segment ...``; return the exit code."""
    return run_command(_run, _get_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
