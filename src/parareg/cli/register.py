"""``parareg register``: register two images and write ANTs-compatible outputs."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._common import (
    CLIError,
    add_quiet_argument,
    add_threads_argument,
    check_output_file,
    describe_grid,
    load_image,
    make_parser,
    ncc,
    refuse_inputs_as_outputs,
    require_module,
    run_command,
)
from . import _register_options as control
from ._memory import check_memory, out_of_memory

TRANSFORMS = ("rigid", "affine", "syn")
PRESETS = ("fast", "default", "accurate")

#: --metric -> (metric of the linear stages of --transform rigid/affine, SyN metric of --transform
#: syn). With --transform syn the linear stages before SyN always use "mi", as
#: antsRegistrationSyN.sh does.
METRICS = {
    "mi": ("mi", "mi"),
    "cc": ("correlation", "cc"),
    "ssd": ("meansquares", "ssd"),
    "em": ("mi", "em"),
}
#: the metric used when --metric is not given
DEFAULT_METRIC = {"rigid": "mi", "affine": "mi", "syn": "cc"}

#: output name -> file name after the prefix, as antsRegistrationSyN.sh names them (the
#: transforms as parareg.io.registration_files.TRANSFORM_NAMES, which writes them)
OUTPUT_NAMES = {
    "affine": "0GenericAffine.mat",
    "warp": "1Warp.nii.gz",
    "inverse_warp": "1InverseWarp.nii.gz",
    "warped": "Warped.nii.gz",
    "inverse_warped": "InverseWarped.nii.gz",
    "settings": "settings.json",
    "qc": "qc.png",
}
#: a prefix ending in one of these is used as is; any other gets "_" appended
_PREFIX_ENDINGS = ("_", "-", ".", "/", "\\")

DESCRIPTION = """\
Register MOVING to FIXED (center of mass, translation, rigid, [affine, [SyN]])
and write the transforms as ANTs writes them, so antsApplyTransforms and
`parareg apply` use them interchangeably."""

EPILOG = """\
outputs (PREFIX ending in _ - . or / is used as is, as ANTs does; otherwise
"_" is added: "-o out" and "-o out_" both write out_Warped.nii.gz):
  PREFIX_0GenericAffine.mat    fixed -> moving affine (ITK, LPS), all transforms
  PREFIX_1Warp.nii.gz          syn: displacement field on the fixed grid, applied
                               to fixed points before the affine
  PREFIX_1InverseWarp.nii.gz   syn: its inverse, on the fixed grid, applied after
                               the inverse affine
  PREFIX_Warped.nii.gz         MOVING resampled onto the FIXED grid
  PREFIX_InverseWarped.nii.gz  FIXED resampled onto the MOVING grid
  PREFIX_qc.png                with --qc: checkerboard, edges, Jacobian
  The set replaces an earlier run's as a whole (files this run does not write,
  e.g. an old PREFIX_1Warp.nii.gz after --transform affine, are removed);
  Ctrl-C, SIGTERM or a full disk leave the earlier set as it was.

  Moving -> fixed:  parareg apply -i MOVING -r FIXED -o out.nii.gz \\
                        -t PREFIX_1Warp.nii.gz PREFIX_0GenericAffine.mat
  Fixed -> moving:  parareg apply -i FIXED -r MOVING -o out.nii.gz \\
                        -t [PREFIX_0GenericAffine.mat,1] PREFIX_1InverseWarp.nii.gz
  (the same -t lists work with antsApplyTransforms)
  With --initial-fixed-transform FILE, as with ANTs, the transforms and Warped
  are in the space of FIXED seen through FILE; to reach FIXED itself list
  [FILE,1] first:  -t [FILE,1] PREFIX_1Warp.nii.gz PREFIX_0GenericAffine.mat

--metric      --transform rigid/affine    --transform syn (linear stages + SyN)
  mi          Mattes MI                   MI + SyN MI
  cc          correlation                 MI + SyN local CC       (syn default)
  ssd         mean squares                MI + SyN SSD
  em          Mattes MI                   MI + SyN EM
  (default)   Mattes MI                   MI + SyN local CC
  Use mi (or em) when the two images have different contrasts (T1 vs T2).

examples:
  parareg register fixed.nii.gz moving.nii.gz -o sub01_
  parareg register t1.nii.gz flair.nii.gz -o t1_to_flair_ --transform rigid
  parareg register template.nii.gz t1.nii.gz -o t1_to_template_ --preset fast \\
      --fixed-mask template_mask.nii.gz --threads 8 --qc
  two channels (T1 pair + T2 pair, one transform; T2s on the T1s' grids):
  parareg register t1_f.nii.gz t1_m.nii.gz -i t2_f.nii.gz t2_m.nii.gz -o t1t2_ \\
      --weights 1,0.5 --channel-metrics cc,mi

exit status: 0 on success, 2 on bad input (one "parareg: error:" line)."""


def _get_parser():
    parser = make_parser("parareg register", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("fixed", nargs="?", help="fixed (reference) image, NIfTI 2D or 3D")
    parser.add_argument("moving", nargs="?", help="moving image, same dimensionality as FIXED")
    parser.add_argument("-o", "--output", metavar="PREFIX",
                        help="output prefix (see below); required unless --print-settings")
    parser.add_argument("--transform", "-t", type=str.lower, choices=TRANSFORMS, default="syn",
                        help="transform model (default: syn = rigid + affine + SyN)")
    parser.add_argument("--metric", "-m", type=str.lower, choices=sorted(METRICS), default=None,
                        help="similarity metric (see the table below)")
    parser.add_argument("--preset", "-p", type=str.lower, choices=PRESETS, default="default",
                        help="SyN pyramid and iterations (default: default)")
    parser.add_argument("--fixed-mask", "-x", default=None, metavar="MASK",
                        help="non-zero voxels of MASK (on the FIXED grid) drive the metric; "
                             "ANTs' [FIXED_MASK,MOVING_MASK] sets both")
    add_threads_argument(parser)
    parser.add_argument("--max-memory", default=None, metavar="SIZE",
                        help="stop at once if the estimated peak memory exceeds SIZE, e.g. 8G, "
                             "512M, 1.5GiB (the memory available is always checked)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the affine stage's voxel sampling (default: 0)")
    parser.add_argument("--qc", action="store_true",
                        help="also write PREFIX_qc.png (needs matplotlib)")
    control.add_arguments(parser)
    add_quiet_argument(parser)
    return parser


def main(argv=None) -> int:
    """Run ``parareg register``; return the exit code (0, or 2 for bad input)."""
    return run_command(_run, _get_parser(), argv)


def _full_prefix(prefix) -> str:
    prefix = str(prefix)
    if not prefix:
        raise CLIError("--output: the prefix is empty")
    return prefix if prefix.endswith(_PREFIX_ENDINGS) else prefix + "_"


def output_paths(prefix: str, *, transform: str, qc: bool) -> dict:
    """The files ``parareg register -o prefix`` writes, by role."""
    prefix = _full_prefix(prefix)
    roles = ["affine", "warped", "inverse_warped", "settings"]
    if transform == "syn":
        roles[1:1] = ["warp", "inverse_warp"]
    if qc:
        roles.append("qc")
    return {role: Path(prefix + OUTPUT_NAMES[role]) for role in roles}


def stale_paths(prefix: str, written) -> list[Path]:
    """Output files of an earlier run with ``prefix`` that this run does not write.

    They are removed when the new set is committed, so the folder never holds
    a new affine next to an old warp.
    """
    prefix = _full_prefix(prefix)
    written = set(written)
    return [Path(prefix + name) for name in OUTPUT_NAMES.values()
            if Path(prefix + name) not in written]


def metrics_for(transform: str, metric: str | None) -> tuple[str, str | None]:
    """``(affine metric, SyN metric or None)`` for ``--transform`` and ``--metric``."""
    metric = metric or DEFAULT_METRIC[transform]
    linear, deformable = METRICS[metric]
    if transform == "syn":
        return "mi", deformable
    return linear, None


def _apply_settings(args) -> None:
    """``--settings FILE``: the recorded values for every option left at its default."""
    if args.settings is None:
        return
    defaults = _get_parser().parse_args([])
    for name, value in control.load_settings(args.settings).items():
        if getattr(args, name) == getattr(defaults, name):
            setattr(args, name, value)


def _run(args, console) -> int:
    with _compile_ahead(args):
        return _register(args, console)


def _compile_ahead(args):
    """On a cold cache, the SyN kernels compile in a helper process while this one compiles
    and runs the affine stage (:class:`parareg.compilation.compile_ahead`)."""
    from contextlib import nullcontext

    from ..compilation import compile_ahead

    syn_metric = metrics_for(args.transform, args.metric)[1]
    stages = getattr(args, "stages", None)
    if syn_metric is None or getattr(args, "print_settings", False) or (
            stages and "syn" not in str(stages).lower()):
        return nullcontext()
    options = [syn_metric] + ["masked"] * (args.fixed_mask is not None) \
        + ["jacobian"] * (not args.quiet or args.qc)
    return compile_ahead(f"ahead-{'-'.join(options)}-3d")


def _register(args, console) -> int:
    from .. import register
    from .._hints import InputError
    from ._hints import register_error
    from ..io.nifti import save
    from ..io.outputs import OutputSet
    from ..io.registration_files import stage_transforms
    from ..parallel import resolve_num_threads
    from ..registration.pipeline import c_ordered, check_stages

    _apply_settings(args)
    control.split_masks(args)
    channel_list = control.channels(args)
    try:
        stages = check_stages(args.stages, args.transform) if args.stages else None
    except ValueError as exc:
        raise CLIError(f"--stages: {exc}") from None
    if stages is not None:
        args.transform = "syn" if "syn" in stages else (
            "rigid" if stages[-1] in ("translation", "rigid") else "affine")
    syn = args.transform == "syn"
    affine_metric, syn_metric = metrics_for(args.transform, args.metric)
    if args.print_settings:
        spacing = load_image(args.fixed, name="fixed").spacing if args.fixed else None
        _, syn_options, affine_levels, syn_levels = control.options(
            args, spacing=spacing, syn=syn, affine_metric=affine_metric, syn_metric=syn_metric)
        console.quiet = False
        console.print("parareg register FIXED MOVING -o PREFIX "
                      + " ".join(control.explicit(args, affine_levels, syn_levels, syn_options)))
        return 0
    missing = [name for name in ("fixed", "moving") if getattr(args, name) is None]
    if missing or args.output is None:
        need = missing + (["-o/--output"] if args.output is None else [])
        raise CLIError(f"the following arguments are required: {', '.join(need)} (see "
                       "'parareg register --help')")
    initial = control.initial_transform(args.initial_moving_transform)
    if initial is not None:
        from ..registration.pipeline import INITIALISERS

        if initial.lower() not in INITIALISERS and not Path(initial).is_file():
            raise CLIError(f"--init/--initial-moving-transform: {initial!r} is neither a "
                           f"transform file nor one of {', '.join(sorted(INITIALISERS))}")
    initial_fixed = control.initial_fixed_transform(args.initial_fixed_transform)

    paths = output_paths(args.output, transform=args.transform, qc=args.qc)
    stale = stale_paths(args.output, paths.values())
    for path in paths.values():
        check_output_file(path, name="--output")
    inputs = {"fixed": args.fixed, "moving": args.moving}
    for number, (fixed_c, moving_c, _, _) in enumerate(channel_list[1:], start=2):
        inputs[f"-i FIXED{number}"], inputs[f"-i MOVING{number}"] = fixed_c, moving_c
    for option, value in (("--fixed-mask", args.fixed_mask), ("--moving-mask", args.moving_mask),
                          ("--initial-moving-transform", initial),
                          ("--initial-fixed-transform", initial_fixed and initial_fixed[0])):
        if value is not None and Path(str(value)).exists():
            inputs[option] = value
    refuse_inputs_as_outputs([*paths.values(), *stale], inputs)
    if args.qc:
        require_module("matplotlib", purpose="--qc", extra="bench")
    memory = {"syn_metric": syn_metric, "quiet": console.quiet}
    check_memory(args, **memory)
    # both files are read at once (inflating releases the GIL); errors in the arguments' order
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="parareg-read") as readers:
        reads = [readers.submit(load_image, path, name=name)
                 for path, name in ((args.fixed, "fixed"), (args.moving, "moving"))]
        fixed, moving = (read.result() for read in reads)
    if fixed.ndim != moving.ndim:
        raise CLIError(f"fixed {args.fixed!r} is {fixed.ndim}D but moving {args.moving!r} is "
                       f"{moving.ndim}D; register images of the same dimensionality")
    masks = {}
    for role, image, text in (("fixed", fixed, args.fixed_mask),
                              ("moving", moving, args.moving_mask)):
        if text is None:
            continue
        masks[role] = load_image(text, name=f"--{role}-mask")
        if masks[role].shape != image.shape:
            raise CLIError(f"--{role}-mask has shape {masks[role].shape} but {role} has shape "
                           f"{image.shape}; the mask must be on the {role} grid")
    channels, weight = _load_channels(args, channel_list, fixed, moving)
    if initial_fixed is not None:
        import numpy as np

        from ..registration.pipeline import linear_transform

        matrix = linear_transform(initial_fixed[0], fixed.ndim,
                                  name="--initial-fixed-transform")
        initial_fixed = np.linalg.inv(matrix) if initial_fixed[1] else matrix
    affine_options, syn_options, affine_levels, syn_levels = control.options(
        args, spacing=fixed.spacing, syn=syn, affine_metric=affine_metric,
        syn_metric=syn_metric)
    num_threads = resolve_num_threads(args.threads)

    metric_text = affine_metric + (f" + SyN {syn_metric}" if syn_metric else "")
    if channels:
        names = [metrics_for(args.transform, metric or args.metric)
                 for *_, metric in channel_list]
        metric_text = (" + ".join(a for a, _ in names)
                       + (" + SyN " + " + ".join(s for _, s in names) if syn_metric else "")
                       + f", {len(channel_list)} channels, weights "
                       + ",".join(f"{w:g}" for *_, w, _ in channel_list))
    console.print(f"parareg register: {args.transform} (metric {metric_text}"
                  + (f", preset {args.preset}" if syn_metric else "")
                  + f"), {num_threads} thread{'s' * (num_threads != 1)}")
    console.print(f"  fixed   {args.fixed}: {describe_grid(fixed)}")
    console.print(f"  moving  {args.moving}: {describe_grid(moving)}")

    t0 = time.perf_counter()  # progress: the library's log records (run_command shows them)
    try:
        result = register(fixed, moving, transform=args.transform, affine_metric=affine_metric,
                          syn_metric=syn_metric or "cc", preset=args.preset,
                          fixed_mask=masks.get("fixed"), moving_mask=masks.get("moving"),
                          num_threads=num_threads, seed=args.seed, stages=stages,
                          initial_transform=initial, initial_fixed_transform=initial_fixed,
                          affine_options=affine_options,
                          syn_options=syn_options, channels=channels, weight=weight)
    except InputError as exc:  # re-said with this command's options
        raise register_error(exc, files={"fixed": args.fixed, "moving": args.moving,
                                         "fixed_mask": args.fixed_mask,
                                         "moving_mask": args.moving_mask}) from exc
    except MemoryError as exc:
        raise CLIError(out_of_memory(exc, args, **memory)) from exc
    mapping = result.mapping
    # what the metric saw: FIXED through --initial-fixed-transform (ANTs' virtual domain)
    seen = fixed if initial_fixed is None else _fixed_seen(fixed, result.initial_fixed,
                                                           num_threads)

    t_write = time.perf_counter()
    summary = not console.quiet
    # The files are compressed in background threads while InverseWarped is computed, and the
    # numbers only the summary and --qc need are computed alongside, in one more thread.
    with OutputSet(remove=stale, num_threads=num_threads) as outputs, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="parareg-summary") as side:
        stage_transforms(result, paths, outputs)
        save(result.warped, paths["warped"], outputs=outputs)
        outputs.add_bytes(paths["settings"], control.record(
            args, num_threads=num_threads, affine_levels=affine_levels, syn_levels=syn_levels,
            syn_options=syn_options))
        numbers = side.submit(_side_numbers, seen, moving, result, masks.get("fixed"),
                              jacobian=args.transform == "syn" and (summary or args.qc),
                              similarity=summary, num_threads=num_threads)
        inverse_warped = mapping.transform_inverse(c_ordered(seen, num_threads=num_threads),
                                                   num_threads=num_threads)
        save(inverse_warped, paths["inverse_warped"], outputs=outputs)
        jacobian, before, after, regularity = numbers.result()
        if args.qc:
            from ..qc import qc_figure

            title = f"{Path(args.moving).name} -> {Path(args.fixed).name} ({args.transform})"
            qc_figure(seen, result.warped, paths["qc"], jacobian=jacobian, title=title,
                      outputs=outputs)
    seconds = dict(result.seconds)
    seconds["write"] = time.perf_counter() - t_write
    total = time.perf_counter() - t0

    if summary:
        for line in _summary(result, seconds, total, affine_metric, syn_metric, before, after,
                             regularity):
            console.print(line)
        console.print("outputs:")
        for path in outputs.paths:
            console.print(f"  {path}")
    return 0


def _fixed_seen(fixed, initial_fixed, num_threads):
    """FIXED on its own grid through the fixed-side initial transform (for InverseWarped,
    the summary and --qc, which compare what the metric compared)."""
    from ..resampling import resample

    return resample(fixed, fixed, affine=initial_fixed, num_threads=num_threads)


def _load_channels(args, channel_list, fixed, moving):
    """``(channels, weight)`` for :func:`parareg.register` from ``-i``, ``--weights`` and
    ``--channel-metrics``: the ``-i`` images loaded and checked against the grids of FIXED
    and MOVING (before any work)."""
    if len(channel_list) == 1:
        return None, 1.0
    from ..registration.channels import Channel, GRID_ATOL
    import numpy as np

    channels = []
    for number, (fixed_c, moving_c, weight, metric) in enumerate(channel_list[1:], start=2):
        images = {}
        for role, path, reference, text in (("fixed", fixed_c, fixed, args.fixed),
                                            ("moving", moving_c, moving, args.moving)):
            image = load_image(path, name=f"-i {role.upper()}{number}")
            if image.shape != reference.shape or not np.allclose(
                    image.vox2world, reference.vox2world, rtol=0, atol=GRID_ATOL):
                detail = (f"{describe_grid(image)} vs {describe_grid(reference)}"
                          if image.shape != reference.shape else
                          "same shape, another vox2world: origin, orientation or voxel size")
                raise CLIError(f"-i {role.upper()}{number} {path!r} is not on the grid of "
                               f"{role.upper()} {text!r} ({detail}); every channel's {role} "
                               f"image must share one grid: resample it onto {text!r} first, "
                               f"e.g. parareg apply -i {path} -r {text} -t identity "
                               "-o ON_GRID.nii.gz")
            images[role] = image
        affine_metric, syn_metric = metrics_for(args.transform, metric or args.metric)
        channels.append(Channel(images["fixed"], images["moving"], weight=weight,
                                affine_metric=affine_metric, syn_metric=syn_metric))
    return channels, channel_list[0][2]


def _side_numbers(fixed, moving, result, mask, *, jacobian: bool, similarity: bool,
                  num_threads):
    """``(Jacobian determinant, NCC before, NCC after registration, regularity)``; ``None``
    where not asked. ``regularity`` is ``(JacobianStats over the whole grid, SDlogJ over the
    fixed mask or None)``: one pass over the determinant, under 1 % of a 2 mm run, so the
    summary always shows it."""
    from ..measures import jacobian_stats
    from ..resampling import resample

    jac = result.mapping.jacobian_determinant(num_threads=num_threads) if jacobian else None
    if not similarity:
        return jac, None, None, None
    regularity = None
    if jac is not None:
        regularity = (jacobian_stats(jac, num_threads=num_threads),
                      None if mask is None else jacobian_stats(
                          jac, mask=mask.data != 0, num_threads=num_threads).sdlogj)
    before = ncc(fixed.data, resample(moving, fixed, num_threads=num_threads).data)
    return jac, before, ncc(fixed.data, result.warped.data), regularity


def _summary(result, seconds, total, affine_metric, syn_metric, before, after, regularity):
    """Lines of the stage table and the final numbers."""
    lines = ["stage        time  metric at the finest level each stage ran (start -> end)"]
    stages = {}
    for entry in result.affine.history:
        if "value" not in entry:
            continue
        stage = stages.setdefault(entry["stage"], {"iterations": 0})
        stage.update(start=entry["initial_value"], end=entry["value"], level=entry["level"])
        stage["iterations"] += entry["iterations"]
    parts = [f"{name} {s['start']:.4g} -> {s['end']:.4g} (level {s['level'] + 1}, "
             f"{s['iterations']} it in all)" for name, s in stages.items()]
    lines.append(f"  affine {seconds.get('affine', 0.0):6.1f} s  {affine_metric}: "
                 + ("; ".join(parts) if parts else "initialisation only"))
    if syn_metric is not None:
        history = getattr(result.mapping, "history", [])
        parts = [f"shrink {h['factor']} {h['first_energy']:.4g} -> {h['energy']:.4g} "
                 f"({h['iterations']} it)" for h in history if h.get("energy") is not None]
        lines.append(f"  syn    {seconds.get('syn', 0.0):6.1f} s  {syn_metric} energy: "
                     + ("; ".join(parts) if parts else "no iteration"))
    lines.append(f"  warp   {seconds.get('warp', 0.0):6.1f} s")
    lines.append(f"  write  {seconds.get('write', 0.0):6.1f} s")
    lines.append(f"  total  {total:6.1f} s")
    lines.append(f"NCC(fixed, moving) {before:.4f} before, {after:.4f} after registration")
    if regularity is not None:
        grid, in_mask = regularity
        folds = round(grid.folded_percent * grid.voxels / 100)
        masked = "" if in_mask is None else f", {in_mask:.3f} in the fixed mask"
        lines.append(f"Jacobian determinant in [{grid.min:.3g}, {grid.max:.3g}], {folds} folded "
                     f"voxels; SDlogJ {grid.sdlogj:.3f} over the grid{masked}")
    return lines


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
