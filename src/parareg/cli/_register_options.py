"""``parareg register``'s explicit registration controls, in the forms ANTs and greedy users type.

Schedules (``-n 100x30x6``, ``-f 4x2x1``, ``-s 2x1x0vox``) apply to the last
stage's pyramid: SyN's with ``--transform syn``, the affine pyramid
otherwise; ``--affine-iterations`` etc. set the linear stages before SyN.
Unset options keep the preset's values, so explicit options equal to a
preset reproduce it bit for bit. ``--print-settings`` prints a preset as
those options; ``PREFIX_settings.json`` records every setting of a run and
``--settings FILE`` reruns it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ._common import CLIError

#: settings recorded in PREFIX_settings.json and read back by --settings (argparse dest names)
RECORDED = ("transform", "metric", "preset", "stages", "initial_moving_transform",
            "initial_fixed_transform",
            "iterations", "shrink_factors", "smoothing_sigmas", "affine_iterations",
            "affine_shrink_factors", "affine_smoothing_sigmas", "radius", "bins", "step",
            "update_sigma", "field_sigma", "convergence", "seed", "fixed_mask", "moving_mask",
            "inputs", "weights", "channel_metrics")
#: ANTs' [fixed,moving,feature] initialiser numbers -> parareg's names
ANTS_INITIALISERS = {"0": "geometric", "1": "com", "2": "origin"}


def add_arguments(parser) -> None:
    """The schedule, start, stage and mask options (numbers are validated in :func:`options`)."""
    group = parser.add_argument_group("registration control (unset: the preset's values)")
    group.add_argument("-n", "--iterations", metavar="NxNxN",
                       help="iterations per level of the last stage, coarse to fine, e.g. "
                            "100x30x6 (greedy -n, ANTs -c)")
    group.add_argument("-f", "--shrink-factors", metavar="NxNxN",
                       help="shrink factor per level of the last stage, e.g. 4x2x1")
    group.add_argument("-s", "--smoothing-sigmas", metavar="SxSxS[vox|mm]",
                       help="smoothing per level of the last stage, e.g. 2x1x0vox or 4x2x0mm")
    for name in ("iterations", "shrink-factors", "smoothing-sigmas"):
        group.add_argument(f"--affine-{name}", metavar="NxNxN",
                           help=f"{name.replace('-', ' ')} of the linear stages before SyN")
    group.add_argument("--radius", metavar="R[xRxR]",
                       help="SyN CC window radius in voxels (ANTs CC[...,R]; greedy -m NCC RxRxR)")
    group.add_argument("--bins", metavar="N", help="mutual-information histogram bins")
    group.add_argument("--step", metavar="X", help="SyN step, voxels (ANTs SyN[X,...])")
    group.add_argument("--update-sigma", metavar="X",
                       help="SyN smoothing of each update, mm of the fixed grid, as the presets "
                            "give it (ANTs SyN[.,X,.] and greedy -s X are voxels: times the "
                            "voxel size)")
    group.add_argument("--field-sigma", metavar="X",
                       help="SyN smoothing of the total fields, mm of the fixed grid (greedy "
                            "-s . X is voxels: times the voxel size)")
    group.add_argument("--convergence", metavar="THRESHOLD,WINDOW",
                       help="SyN: stop a level when the energy slope over WINDOW iterations "
                            "is above -THRESHOLD (ANTs -c [...,1e-6,10])")
    group.add_argument("--stages", metavar="STAGE[,STAGE]",
                       help="which of translation, rigid, similarity, affine, syn run, e.g. "
                            "syn (from --initial-moving-transform) or rigid,affine")
    group.add_argument("--initial-moving-transform", "--init", "-r", "-ia", metavar="T",
                       help="start: search (default: global rotation search, the centres "
                            "of mass when it agrees, wrong-basin check), com, geometric, "
                            "origin, identity, moments (principal axes), an ANTs "
                            "[fixed,moving,0|1|2], or a transform file (.mat/.txt/.h5, "
                            "greedy's RAS matrix)")
    group.add_argument("--initial-fixed-transform", metavar="FILE|[FILE,1]",
                       help="ANTs' -q: a linear transform (.mat/.txt/.h5, greedy's RAS "
                            "matrix; [FILE,1] its inverse) from the fixed grid's points to "
                            "FIXED's points; the metric sees FIXED through it. As ANTs', the "
                            "outputs map those points to MOVING and leave it out: to put MOVING "
                            "on FIXED itself, list [FILE,1] first, e.g. parareg apply -t "
                            "[FILE,1] PREFIX_1Warp.nii.gz PREFIX_0GenericAffine.mat")
    group.add_argument("--moving-mask", metavar="MASK",
                       help="non-zero voxels of MASK (on the MOVING grid) drive the metric")
    channels = parser.add_argument_group(
        "channels (several image pairs drive one transform; FIXED MOVING is the first)")
    channels.add_argument("-i", "--input", dest="inputs", nargs=2, action="append",
                          metavar=("FIXED2", "MOVING2"),
                          help="one more channel: FIXED2 on the grid of FIXED, MOVING2 on the "
                               "grid of MOVING (greedy -i; ANTs a second -m); repeat it for more")
    channels.add_argument("--weights", "-w", metavar="W,W[,W]",
                          help="one weight per channel, FIXED MOVING first, 0 or more, "
                               "normalised to sum to 1 (default: all 1)")
    channels.add_argument("--channel-metrics", metavar="M,M[,M]",
                          help="one --metric per channel, FIXED MOVING first, e.g. cc,mi "
                               "(default: --metric for every channel)")
    group.add_argument("--print-settings", action="store_true",
                       help="print the settings as explicit options and exit")
    group.add_argument("--settings", metavar="JSON",
                       help="rerun the settings recorded in a PREFIX_settings.json (options "
                            "given on the command line win)")


def split_masks(args) -> None:
    """``-x [fixedMask,movingMask]`` (ANTs) -> ``--fixed-mask`` and ``--moving-mask``."""
    text = args.fixed_mask
    if text is None or not text.startswith("["):
        return
    parts = [part.strip() for part in text.strip("[]").split(",")]
    if len(parts) != 2 or not text.endswith("]"):
        raise CLIError(f"-x: {text!r} is not MASK or [FIXED_MASK,MOVING_MASK]")
    if args.moving_mask is not None:
        raise CLIError("-x [FIXED_MASK,MOVING_MASK] and --moving-mask both name a moving "
                       "mask; give one")
    fixed, moving = (None if p.upper() in ("", "NULL", "NONE") else p for p in parts)
    args.fixed_mask, args.moving_mask = fixed, moving


def channels(args) -> list[tuple]:
    """``(fixed, moving, weight, metric)`` of every channel, FIXED MOVING first, from ``-i``,
    ``--weights`` and ``--channel-metrics`` (checked before any work, naming the option).

    ``metric`` is a ``--metric`` name or ``None`` (``--metric``'s); the first
    channel's ``--channel-metrics`` entry becomes ``args.metric``.
    """
    from ..registration.channels import check_weights

    pairs = [(args.fixed, args.moving)] + [tuple(pair) for pair in (args.inputs or ())]
    count = len(pairs)
    what = f"{count} channel{'s' * (count != 1)} (FIXED MOVING and {count - 1} -i pair" \
        f"{'s' * (count != 2)})"
    weights = [1.0] * count
    if args.weights is not None:
        parts = [p.strip() for p in str(args.weights).split(",")]
        try:
            weights = [float(p) for p in parts]
        except ValueError:
            raise CLIError(f"--weights: {args.weights!r} is not numbers separated by commas, "
                           "e.g. 1,0.5") from None
        if len(weights) != count:
            raise CLIError(f"--weights gives {len(weights)} weight{'s' * (len(weights) != 1)} "
                           f"({args.weights}) but there are {what}; give one weight per "
                           "channel")
        try:
            check_weights(weights)
        except ValueError as exc:
            raise CLIError(f"--weights {args.weights}: {exc}") from None
    metrics = [None] * count
    if args.channel_metrics is not None:
        from .register import METRICS

        metrics = [p.strip().lower() for p in str(args.channel_metrics).split(",")]
        if len(metrics) != count:
            raise CLIError(f"--channel-metrics gives {len(metrics)} metric"
                           f"{'s' * (len(metrics) != 1)} ({args.channel_metrics}) but there "
                           f"are {what}; give one metric per channel")
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise CLIError(f"--channel-metrics: {unknown[0]!r} is not one of "
                           f"{', '.join(sorted(METRICS))}")
        if args.metric is not None and args.metric != metrics[0]:
            raise CLIError(f"--metric {args.metric} and --channel-metrics "
                           f"{args.channel_metrics} disagree on the first channel's metric; "
                           "give one of them")
        args.metric = metrics[0]
        metrics[0] = None
    return [(f, m, w, metric) for (f, m), w, metric in zip(pairs, weights, metrics)]


def initial_transform(text):
    """``--initial-moving-transform`` value -> what :func:`parareg.register` takes."""
    if text is None:
        return None
    if text.startswith("[") and text.endswith("]"):
        parts = [p.strip() for p in text[1:-1].split(",")]
        if len(parts) == 3 and parts[2] in ANTS_INITIALISERS:
            return ANTS_INITIALISERS[parts[2]]
        if len(parts) in (1, 2) and parts[-1] in ("0", parts[0]):
            return parts[0]
        raise CLIError(f"--initial-moving-transform: {text!r} is not FILE, [FILE,0] or ANTs' "
                       "[fixed,moving,0|1|2] (0 geometric centres, 1 centres of mass, 2 "
                       "origins)")
    return text


def initial_fixed_transform(text) -> tuple[str, bool] | None:
    """``--initial-fixed-transform`` FILE, [FILE], [FILE,0] or [FILE,1] -> ``(FILE, inverse)``,
    the file checked to exist (before any work)."""
    if text is None:
        return None
    option = "--initial-fixed-transform"
    path, inverse = text, False
    if text.startswith("[") and text.endswith("]"):
        parts = [p.strip() for p in text[1:-1].split(",")]
        if len(parts) not in (1, 2) or (len(parts) == 2 and parts[1] not in ("0", "1")):
            raise CLIError(f"{option}: {text!r} is not FILE, [FILE,0] or [FILE,1] (its "
                           "inverse); ANTs' [fixed,moving,feature] start is offered for the "
                           "moving side only (--initial-moving-transform)")
        path, inverse = parts[0], len(parts) == 2 and parts[1] == "1"
    if not Path(path).is_file():
        raise CLIError(f"{option}: no such transform file: {path!r}")
    return path, inverse


def _value(parse, text, option):
    if text is None:
        return None
    try:
        return parse(text)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"{option}: {exc}") from None


def _positive(kind, name):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise ValueError(f"must be more than 0, got {text!r}")
        return value
    parse.__name__ = name
    return parse


def options(args, *, spacing, syn: bool, affine_metric: str, syn_metric: str | None):
    """``(affine_options, syn_options, affine_levels, syn_levels)`` for :func:`parareg.register`.

    Each option is checked here (before any work), naming the option.
    """
    from ..registration.affine import DEFAULT_LEVELS
    from ..registration.pipeline import SYN_PREALIGN_LEVELS, SYN_PRESETS
    from ..registration.schedule import levels_from, parse_convergence, parse_radius

    preset = SYN_PRESETS[args.preset]
    affine_base = SYN_PREALIGN_LEVELS if syn else DEFAULT_LEVELS
    last = ("iterations", "shrink_factors", "smoothing_sigmas")
    first = tuple(f"affine_{name}" for name in last)

    def pyramid(names, base, flag_prefix):
        given = {name: getattr(args, dest) for name, dest in zip(last, names)}
        if all(v is None for v in given.values()):
            return tuple(base)
        try:
            return levels_from(**given, base=base, spacing=spacing)
        except ValueError as exc:
            raise CLIError(f"{flag_prefix}: {exc}") from None

    if not syn and any(getattr(args, name) is not None for name in first):
        raise CLIError("--affine-iterations, --affine-shrink-factors and "
                       "--affine-smoothing-sigmas set the linear stages before SyN; without "
                       "SyN use -n, -f and -s")
    syn_only = ("radius", "step", "update_sigma", "field_sigma", "convergence")
    if not syn:
        given = [f"--{name.replace('_', '-')}" for name in syn_only
                 if getattr(args, name) is not None]
        if given:
            raise CLIError(f"{given[0]} is a SyN setting; it has no effect without SyN "
                           "(--transform syn or --stages ...,syn)")
    affine_levels = pyramid(first if syn else last, affine_base,
                            "--affine-iterations/-shrink-factors/-smoothing-sigmas"
                            if syn else "-n/-f/-s")
    affine_options = {"levels": affine_levels}
    syn_options = {}
    syn_levels = ()
    if syn:
        syn_levels = pyramid(last, preset["levels"], "-n/-f/-s")
        syn_options["levels"] = syn_levels
        radius = _value(parse_radius, args.radius, "--radius")
        if radius is not None:
            if syn_metric != "cc":
                raise CLIError(f"--radius is the CC window; the SyN metric is {syn_metric}")
            syn_options["radius"] = radius
        for name in ("step", "update_sigma", "field_sigma"):
            parse = _positive(float, name) if name == "step" else _nonnegative
            value = _value(parse, getattr(args, name), f"--{name.replace('_', '-')}")
            if value is not None:
                syn_options[name] = value
        convergence = _value(parse_convergence, args.convergence, "--convergence")
        if convergence is not None:
            syn_options["convergence"] = convergence
    bins = _value(_positive(int, "bins"), args.bins, "--bins")
    if bins is not None:
        if affine_metric != "mi":
            raise CLIError(f"--bins is for mutual information; the linear stages use "
                           f"{affine_metric}")
        if bins < 4:
            raise CLIError(f"--bins must be 4 or more, got {bins}")
        affine_options["bins"] = bins
    return affine_options, syn_options, affine_levels, syn_levels


def _nonnegative(text):
    value = float(text)
    if not value >= 0:
        raise ValueError(f"must be 0 or more voxels, got {text!r}")
    return value


def explicit(args, affine_levels, syn_levels, syn_options) -> list[str]:
    """The run's settings as explicit command-line options (for --print-settings)."""
    from ..registration.schedule import format_levels
    from ..registration.syn import SymmetricDiffeomorphicRegistration

    words = ["--transform", args.transform]
    if args.metric:
        words += ["--metric", args.metric]
    if args.stages:
        words += ["--stages", args.stages]
    if syn_levels:
        schedule = format_levels(syn_levels)
        words += ["-n", schedule["iterations"], "-f", schedule["shrink_factors"],
                  "-s", schedule["smoothing_sigmas"]]
        affine = format_levels(affine_levels)
        words += ["--affine-iterations", affine["iterations"], "--affine-shrink-factors",
                  affine["shrink_factors"], "--affine-smoothing-sigmas",
                  affine["smoothing_sigmas"]]
        from ..registration.pipeline import SYN_PRESETS

        defaults = {**SymmetricDiffeomorphicRegistration.__init__.__kwdefaults__,
                    **SYN_PRESETS[args.preset]}
        values = {name: syn_options.get(name, defaults.get(name))
                  for name in ("radius", "step", "update_sigma", "field_sigma", "convergence")}
        if values["radius"] is not None and metric_is_cc(args):
            words += ["--radius", str(values["radius"])]
        words += ["--step", f"{values['step']:g}",
                  "--update-sigma", f"{values['update_sigma']:g}",
                  "--field-sigma", f"{values['field_sigma']:g}",
                  "--convergence", f"{values['convergence'][0]:g},{values['convergence'][1]}"]
    else:
        schedule = format_levels(affine_levels)
        words += ["-n", schedule["iterations"], "-f", schedule["shrink_factors"],
                  "-s", schedule["smoothing_sigmas"]]
    words += ["--seed", str(args.seed)]
    for fixed, moving in args.inputs or ():
        words += ["-i", fixed, moving]
    if args.weights is not None:
        words += ["--weights", args.weights]
    if args.channel_metrics is not None:
        words += ["--channel-metrics", args.channel_metrics]
    return words


def metric_is_cc(args) -> bool:
    """Whether the SyN metric of this run is CC (the only one with a window radius)."""
    return (args.metric or "cc") == "cc"


def record(args, *, num_threads: int, affine_levels, syn_levels, syn_options) -> str:
    """PREFIX_settings.json: every setting, the version, the thread count and the seed."""
    from .. import __version__

    settings = {name: getattr(args, name, None) for name in RECORDED}
    settings["explicit"] = explicit(args, affine_levels, syn_levels, syn_options)
    return json.dumps({"parareg": __version__, "command": "register",
                       "fixed": args.fixed, "moving": args.moving, "threads": num_threads,
                       "settings": settings}, indent=2) + "\n"


def load_settings(path) -> dict:
    """The recorded settings of a PREFIX_settings.json, as argparse defaults."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        settings = data["settings"]
    except FileNotFoundError:
        raise CLIError(f"--settings: no such file: {str(path)!r}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CLIError(f"--settings: {str(path)!r} is not a PREFIX_settings.json written by "
                       f"parareg register ({exc})") from None
    unknown = sorted(set(settings) - set(RECORDED) - {"explicit"})
    if unknown:
        raise CLIError(f"--settings: {str(path)!r} holds unknown settings {unknown}")
    return {name: value for name, value in settings.items() if name != "explicit"}
