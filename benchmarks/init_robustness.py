"""Robust initialisation: how often each method lands in the right basin after a known perturbation.

Cases
-----
* ``ixi`` (3D, 2 mm inter-subject pairs) and ``2d`` (mindboggle_2d slices, inter-subject):
  the moving image gets an extra known rotation about each world axis (``--angles``), a
  translation of ``--shift`` mm along each axis, or a cropped field of view (the top
  ``--crop`` of its slices along the second voxel axis, superior for IXI's PSR grids) with a
  rotation; each in the same contrast and in a simulated other contrast (``--contrasts``).
* ``openms`` (open_ms patient01, study 1): T1W and T2W -> FLAIR with the reference ITK affine
  as the known answer, with the same extra rotations.

Perturbations are applied to the moving image's header (its vox2world), not by resampling: the
voxels stay as they were and the answer moves exactly, ``truth = Q @ reference`` for the world
motion ``Q``. The reference of an inter-subject pair is each method's own result on the
unperturbed, same-contrast pair (so the score is "did the perturbation change the answer?");
openms uses the reference transform. Success: mean distance < 2 mm between the result and the
truth over the fixed brain (label > 0; openms: the FLAIR head foreground) where the moving image
sees it (a cropped view: the part inside its grid). Removing 40 % of the view moves an
inter-subject affine optimum itself by a few mm, so a cropped view is scored against the right
basin's optimum: the method's own answer on the cropped pair started at the truth (ANTs and greedy
from it as their initial transform); its error against the uncropped answer stays in the JSON
(``uncropped_error_mm``).

The simulated other contrast maps the T1 through a non-monotonic curve by tissue class (its
intensity quantiles): background stays dark, CSF turns brightest, grey matter mid, white matter
and fat dark, T2-like, so only a statistical metric (MI) can match it.

Methods: parareg ``com``, ``moments``, ``search`` (``register(transform="affine",
initial_transform=...)``); ANTs ``Affine`` (antspyx, centre-of-mass start); ``antsai``
(``ants.affine_initializer``, antsAffineInitializer's sphere search, then ``Affine`` from it);
greedy ``-a -dof 12`` (picsl_greedy, image-centre start). Peers read the perturbed moving image
from an uncompressed NIfTI.

``--cost`` instead times the affine stage on the unperturbed IXI pairs with ``com`` and with
``search`` (the default start), for the default ``register`` (its affine pyramid stops at half
resolution before SyN) and for ``transform="affine"``: interleaved repeats (the order alternates),
minima of the stage's wall time and of the CPU seconds of the call (every thread), the search
alone as well, and both results scored (Dice over the 148 labels; identical matrices when the
search starts at the centres of mass). The second IXI pair has a different head coverage, so the
search adds its field-of-view-aware shifts there (501 starts instead of 157).

Run::

    python benchmarks/init_robustness.py --out results/init                  # reduced grid
    python benchmarks/init_robustness.py --out results/init --full           # the issue's grid
    python benchmarks/init_robustness.py --out results/init --cost --pairs 2  # ~3 min

Writes ``init_robustness.json``, ``init_robustness.md`` and ``init_robustness.png`` (or
``init_cost.json``/``.md``) into ``--out``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, machine_info, markdown_table, write_json  # noqa: E402

import parareg  # noqa: E402
from parareg import Image  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SUCCESS_MM = 2.0
PARAREG_METHODS = ("com", "moments", "search")
PEER_METHODS = ("ants", "antsai", "greedy")
ALL_METHODS = PARAREG_METHODS + PEER_METHODS


# ----------------------------------------------------------------------------------------------
# data


def ixi_pairs(count):
    images = sorted((DATA / "ixi_2mm" / "t1").glob("*.nii.gz"))
    labels = sorted((DATA / "ixi_2mm" / "labels").glob("*.nii.gz"))
    pairs = [(images[i], labels[i], images[i + 1], labels[i + 1]) for i in range(len(images) - 1)]
    return pairs[:count]


def slice_pairs(count):
    images = sorted((DATA / "mindboggle_2d" / "images").glob("*.nii.gz"))
    labels = sorted((DATA / "mindboggle_2d" / "labels").glob("*.nii.gz"))
    pairs = [(images[i], labels[i], images[i + 1], labels[i + 1]) for i in range(len(images) - 1)]
    return pairs[:count]


def points_of(mask: np.ndarray, vox2world: np.ndarray) -> np.ndarray:
    n = mask.ndim
    index = np.argwhere(mask).astype(np.float64)
    return index @ vox2world[:n, :n].T + vox2world[:n, n]


def other_contrast(data: np.ndarray) -> np.ndarray:
    """A non-monotonic, T2-like map of a T1 by tissue class (intensity quantiles of the head)."""
    data = np.asarray(data, dtype=np.float32)
    head = data[data > 0.1 * np.percentile(data, 99)]
    csf, gm, wm, top = np.percentile(head, [10, 45, 80, 99.5])
    return np.interp(data, [0.0, 0.5 * csf, csf, gm, wm, top, max(top, data.max()) + 1],
                     [0.0, 0.3, 1.0, 0.6, 0.3, 0.2, 0.2]).astype(np.float32) * 1000.0


def rotation(ndim: int, axis: int, degrees: float) -> np.ndarray:
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    if ndim == 2:
        return np.array([[c, -s], [s, c]])
    a, b = [k for k in range(3) if k != axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def world_motion(image: Image, rot: np.ndarray, shift) -> np.ndarray:
    """``Q``: rotate about the image's centre, then shift (world mm)."""
    n = image.ndim
    center = image.vox2world[:n, :n] @ ((np.asarray(image.shape) - 1) / 2) + image.vox2world[:n, n]
    q = np.eye(n + 1)
    q[:n, :n] = rot
    q[:n, n] = center + np.asarray(shift, dtype=np.float64) - rot @ center
    return q


def crop_top(image: Image, fraction: float) -> Image:
    """The last ``fraction`` of the slices along voxel axis 1 (the same world positions)."""
    n = image.shape[1]
    keep = max(2, int(round(fraction * n)))
    offset = np.eye(image.ndim + 1)
    offset[1, image.ndim] = n - keep
    index = [slice(None)] * image.ndim
    index[1] = slice(n - keep, n)
    return Image(np.ascontiguousarray(image.data[tuple(index)]), image.vox2world @ offset)


def perturbations(ndim, args, *, rotations_only=False):
    axes = (0,) if ndim == 2 else tuple(args.axes)
    out = [{"kind": "rotation", "axis": 0, "angle": 0.0}]
    for axis in axes:
        out += [{"kind": "rotation", "axis": axis, "angle": float(a)} for a in args.angles if a]
    if rotations_only:
        return out
    if args.shift:
        out += [{"kind": "shift", "axis": axis, "angle": 0.0} for axis in range(ndim)]
    if args.crop:
        out += [{"kind": "crop", "axis": 0, "angle": float(a)} for a in args.crop_angles]
    return out


def perturbed(moving: Image, p, args) -> tuple[Image, np.ndarray]:
    ndim = moving.ndim
    image = crop_top(moving, args.crop) if p["kind"] == "crop" else moving
    shift = np.zeros(ndim)
    if p["kind"] == "shift":
        shift[p["axis"]] = args.shift
    q = world_motion(moving, rotation(ndim, p["axis"], p["angle"]), shift)
    return Image(image.data, q @ image.vox2world), q


# ----------------------------------------------------------------------------------------------
# methods: (fixed Image, fixed path, moving Image, moving path, threads) -> fixed2moving matrix


#: what the last parareg run said about its start (retried, a wrong-basin warning)
LAST = {}


def run_parareg(init):
    def run(fixed, fixed_path, moving, moving_path, threads):
        from parareg.registration.initialise import WrongBasinWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = parareg.register(fixed, moving, transform="affine", initial_transform=init,
                                      num_threads=threads)
        LAST.update(retried=bool(result.affine.history[0].get("retried")),
                    warned=any(issubclass(w.category, WrongBasinWarning) for w in caught))
        return result.affine.matrix
    return run


def run_ants(fixed, fixed_path, moving, moving_path, threads):
    from parareg.bench.peers import register_ants

    return register_ants(fixed_path, moving_path, "affine", threads).matrix


def ants_affine(fixed_path, moving_path, threads, *, start=None):
    """ANTs ``Affine`` from antsAI's start (``start=None``) or from the RAS matrix ``start``."""
    from parareg.bench.peers import ANTS_RANDOM_SEED, environment, itk_affine_to_ras

    with environment(ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=threads,
                     ANTS_RANDOM_SEED=ANTS_RANDOM_SEED):
        import ants

        f, m = ants.image_read(str(fixed_path)), ants.image_read(str(moving_path))
        ndim = f.dimension
        with tempfile.TemporaryDirectory(prefix="antsai_") as tmp:
            init = str(Path(tmp) / "init.mat")
            if start is None:
                init = ants.affine_initializer(f, m, txfn=init)
            else:  # RAS -> ITK's LPS, about the origin
                flip = np.diag([-1.0, -1.0] + [1.0] * (ndim - 1))
                lps = flip @ np.asarray(start, dtype=np.float64) @ flip
                tx = ants.create_ants_transform(
                    transform_type="AffineTransform", precision="double", dimension=ndim,
                    parameters=[*lps[:ndim, :ndim].ravel(), *lps[:ndim, ndim]],
                    fixed_parameters=[0.0] * ndim)
                ants.write_transform(tx, init)
            out = ants.registration(f, m, type_of_transform="Affine", initial_transform=init,
                                    outprefix=str(Path(tmp) / "reg_"))
            matrix = np.eye(ndim + 1)
            for path in out["fwdtransforms"]:  # the last one acts on a point first
                tx = ants.read_transform(path)
                matrix = matrix @ itk_affine_to_ras(tx.parameters, tx.fixed_parameters)
    return matrix


def run_antsai(fixed, fixed_path, moving, moving_path, threads):
    return ants_affine(fixed_path, moving_path, threads)


def run_greedy(fixed, fixed_path, moving, moving_path, threads):
    from parareg.bench.peers import register_greedy

    return register_greedy(fixed_path, moving_path, "affine", threads).matrix


def greedy_from(fixed_path, moving_path, start, threads):
    """greedy ``-a -dof 12`` (the options of :func:`run_greedy`) from the RAS matrix ``start``."""
    import io

    import SimpleITK as sitk

    from parareg.bench.peers import GREEDY_OPTIONS, _greedy

    fixed = sitk.ReadImage(str(fixed_path), sitk.sitkFloat32)
    moving = sitk.ReadImage(str(moving_path), sitk.sitkFloat32)
    with tempfile.TemporaryDirectory(prefix="greedy_from_") as tmp:
        path = Path(tmp) / "start.mat"
        np.savetxt(path, np.asarray(start, dtype=np.float64))
        options = GREEDY_OPTIONS.replace("-ia-image-centers", f"-ia {path}")
        greedy = _greedy(fixed.GetDimension())
        log_text = io.StringIO()
        greedy.execute(f"-i fixed moving -a -dof 12 {options} -threads {int(threads)} "
                       "-o fixed2moving", out=log_text, err=log_text, fixed=fixed,
                       moving=moving, fixed2moving=None)
        return np.array(greedy["fixed2moving"], dtype=np.float64)


def basin_optimum(method, fixed, fixed_path, moving, moving_path, start, threads):
    """``method``'s own answer on a perturbed pair when started at ``start`` (the truth): the
    optimum of the right basin. A cropped view's reference: removing 40 % of the view moves
    the inter-subject affine optimum itself by a few mm, so "did the start find the right
    basin?" is asked against this, not against the uncropped answer."""
    if method in PARAREG_METHODS:  # com, moments, search share the pipeline after the start
        return parareg.register(fixed, moving, transform="affine", initial_transform=start,
                                num_threads=threads).affine.matrix
    if method == "greedy":
        return greedy_from(fixed_path, moving_path, start, threads)
    return ants_affine(fixed_path, moving_path, threads, start=start)  # ants, antsai


METHODS = {"com": run_parareg("com"), "moments": run_parareg("moments"),
           "search": run_parareg("search"), "ants": run_ants, "antsai": run_antsai,
           "greedy": run_greedy}


def seen(points, truth, moving: Image) -> np.ndarray:
    """The ``points`` whose true position lies inside the moving grid (a cropped view sees
    only part of the fixed brain; the error is measured where both images see it)."""
    n = points.shape[1]
    m2v = np.linalg.inv(moving.vox2world) @ truth
    vox = points @ m2v[:n, :n].T + m2v[:n, n]
    inside = np.all((vox >= 0) & (vox <= np.asarray(moving.shape) - 1), axis=1)
    return points[inside]


def mean_error(a, b, points) -> float:
    n = points.shape[1]
    diff = points @ (a[:n, :n] - b[:n, :n]).T + (a[:n, n] - b[:n, n])
    return float(np.linalg.norm(diff, axis=1).mean())


def timed(method, *call):
    LAST.clear()
    t0 = time.perf_counter()
    try:
        matrix = METHODS[method](*call)
        return matrix, time.perf_counter() - t0, None
    except Exception as exc:  # noqa: BLE001 - a failed method is a failed case, recorded
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:300]


# ----------------------------------------------------------------------------------------------
# the grid


def datasets(args):
    """(dataset, pair name, fixed path, fixed brain mask, moving path, known matrix or None)."""
    for name in args.datasets:
        if name in ("ixi", "2d"):
            pairs = ixi_pairs(args.pairs) if name == "ixi" else slice_pairs(args.pairs_2d)
            for fixed_path, fixed_labels, moving_path, _ in pairs:
                brain = parareg.load(fixed_labels, labels=True).data > 0
                yield (name, f"{moving_path.name.split('_')[0]}->{fixed_path.name.split('_')[0]}",
                       fixed_path, brain, moving_path, None)
        elif name == "openms":
            from parareg.transforms.chain import read_transforms

            folder = DATA / "multimodal" / "open_ms" / "patient01"
            flair = folder / "study1_FLAIR.nii.gz"
            data = parareg.load(flair).data
            head = data > 0.2 * np.percentile(data, 99)
            for contrast in args.openms_contrasts:
                (step,) = read_transforms([folder / f"study1_{contrast}_intrastudy_to_FLAIR.txt"],
                                          ndim=3)
                yield ("openms", f"{contrast}->FLAIR", flair, head,
                       folder / f"study1_{contrast}.nii.gz", step.matrix)


def run_grid(args, checkpoint=None) -> list:
    """Every case of the grid; ``checkpoint(rows)`` after each perturbation."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="init_robustness_") as tmp:
        tmp = Path(tmp)
        for dataset, pair, fixed_path, brain, moving_path, known in datasets(args):
            fixed = parareg.load(fixed_path)
            points = points_of(brain, fixed.vox2world)
            original = parareg.load(moving_path)
            ndim = fixed.ndim
            references = {}
            if known is None:  # each method's own answer on the unperturbed pair
                for method in args.methods:
                    matrix, seconds, error = timed(method, fixed, fixed_path, original,
                                                   moving_path, args.threads)
                    references[method] = matrix
                    log(f"{dataset} {pair} reference {method}: {seconds:.1f} s {error or ''}")
            contrasts = ("same",) if dataset == "openms" else args.contrasts
            for contrast in contrasts:
                base = original if contrast == "same" else Image(other_contrast(original.data),
                                                                 original.vox2world)
                for p in perturbations(ndim, args, rotations_only=dataset == "openms"):
                    moving, q = perturbed(base, p, args)
                    path = tmp / f"moving_{len(rows)}.nii"
                    parareg.save(moving, path)
                    basins = {}  # a cropped view: the right basin's optimum, per start matrix
                    for method in args.methods:
                        reference = known if known is not None else references[method]
                        matrix, seconds, error = timed(method, fixed, fixed_path, moving, path,
                                                       args.threads)
                        extra = dict(LAST)
                        truth = None if reference is None else q @ reference
                        mm = (float("nan") if matrix is None or truth is None
                              else mean_error(matrix, truth, seen(points, truth, moving)))
                        if p["kind"] == "crop" and matrix is not None and truth is not None:
                            key = (method if method not in PARAREG_METHODS else "parareg",
                                   truth.tobytes())
                            if key not in basins:
                                basins[key] = basin_optimum(method, fixed, fixed_path, moving,
                                                            path, truth, args.threads)
                            extra["uncropped_error_mm"] = mm
                            mm = mean_error(matrix, basins[key],
                                            seen(points, basins[key], moving))
                        rows.append({"dataset": dataset, "pair": pair, "contrast": contrast,
                                     **p, "method": method, "error_mm": mm,
                                     "success": bool(mm < SUCCESS_MM), "seconds": seconds,
                                     "failure": error, **extra})
                        log(f"{dataset} {pair} {contrast} {p['kind']} axis {p['axis']} "
                            f"{p['angle']:.0f} deg {method}: {mm:.2f} mm, {seconds:.1f} s")
                    path.unlink()
                    if checkpoint is not None:
                        checkpoint(rows)
    return rows


#: one progress line of :func:`run_grid` (a run stopped early is summarised from its log)
LOG_LINE = re.compile(r"(?P<dataset>2d|ixi|openms) (?P<pair>\S+) (?P<contrast>same|other) (?P<kind>\w+) "
                      r"axis (?P<axis>\d) (?P<angle>[\d.]+) deg (?P<method>\w+): "
                      r"(?P<error_mm>\S+) mm, (?P<seconds>[\d.]+) s$")


def rows_from_log(path) -> list:
    """The rows of the progress lines in a log of this script (``--from-log``)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        match = LOG_LINE.search(line.strip())
        if match:
            row = match.groupdict()
            row.update(axis=int(row["axis"]), angle=float(row["angle"]),
                       error_mm=float(row["error_mm"]), seconds=float(row["seconds"]))
            row["success"] = bool(row["error_mm"] < SUCCESS_MM)
            rows.append(row)
    return rows


def summary(rows, methods) -> str:
    lines = []
    groups = sorted({(r["dataset"], r["contrast"]) for r in rows})
    for dataset, contrast in groups:
        sub = [r for r in rows if r["dataset"] == dataset and r["contrast"] == contrast]
        ran = [m for m in methods if any(r["method"] == m for r in sub)]
        keys = sorted({(r["kind"], r["angle"]) for r in sub},
                      key=lambda k: (["rotation", "shift", "crop"].index(k[0]), k[1]))
        table = []
        for kind, angle in keys:
            row = [f"{kind} {angle:.0f}°" if kind != "shift" else "shift"]
            for method in ran:
                hits = [r["success"] for r in sub if r["kind"] == kind and r["angle"] == angle
                        and r["method"] == method]
                row.append(f"{sum(hits)}/{len(hits)}" if hits else "-")
            table.append(row)
        total = ["all"]
        for method in ran:
            hits = [r["success"] for r in sub if r["method"] == method]
            total.append(f"{100.0 * sum(hits) / max(len(hits), 1):.0f} %")
        table.append(total)
        lines.append(f"\n**{dataset}, {contrast} contrast** (successes / cases)\n")
        lines.append(markdown_table(["case", *ran], table))
    return "\n".join(lines)


def plot(rows, methods, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets_ = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(datasets_), figsize=(5 * len(datasets_), 3.8), squeeze=False)
    colours = {m: f"C{k}" for k, m in enumerate(ALL_METHODS)}
    for ax, dataset in zip(axes[0], datasets_):
        for method in methods:
            for contrast, style in (("same", "-"), ("other", "--")):
                sub = [r for r in rows if r["dataset"] == dataset and r["method"] == method
                       and r["contrast"] == contrast and r["kind"] == "rotation"]
                angles = sorted({r["angle"] for r in sub})
                if not angles:
                    continue
                rate = [100.0 * np.mean([r["success"] for r in sub if r["angle"] == a])
                        for a in angles]
                ax.plot(angles, rate, style, marker="o", markersize=3, color=colours[method],
                        label=f"{method} ({contrast})")
        ax.set_title(dataset)
        ax.set_xlabel("extra rotation (degrees)")
        ax.set_ylabel("success rate (%)")
        ax.set_ylim(-5, 105)
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------------------------
# cost of the search on the unperturbed IXI pairs


#: --cost scopes: the affine stage of the default ``register`` (transform "syn": its pyramid stops
#: at half resolution) and of ``register(transform="affine")`` (the full pyramid)
COST_SCOPES = ("syn", "affine")


def _cost_call(fixed, moving, init, levels, threads):
    """One affine stage from ``init``: (result, wall seconds of the stage, CPU seconds of the
    call, the process's threads together)."""
    cpu = time.process_time()
    result = parareg.register(fixed, moving, transform="affine", initial_transform=init,
                              affine_options={"levels": levels}, num_threads=threads)
    return result, result.seconds["affine"], time.process_time() - cpu


def _search_alone(fixed, moving, levels, threads):
    from parareg.registration.initialise import initial_search

    wall, cpu = time.perf_counter(), time.process_time()
    initial_search(fixed, moving, level=levels[0][:2], num_threads=threads)
    return time.perf_counter() - wall, time.process_time() - cpu


def run_cost(args) -> dict:
    """Per IXI pair and scope: the affine stage from ``com`` and from ``search`` and the search
    alone, interleaved (the order alternates each repeat; one untimed round compiles first);
    minima of wall and of CPU seconds, and whether both starts give the same matrix."""
    from parareg.bench.scoring import mean_dice, warp_affine
    from parareg.registration.affine import DEFAULT_LEVELS
    from parareg.registration.pipeline import SYN_PREALIGN_LEVELS

    scope_levels = {"syn": SYN_PREALIGN_LEVELS, "affine": DEFAULT_LEVELS}
    out = []
    for fixed_path, fixed_labels, moving_path, moving_labels in ixi_pairs(args.pairs):
        fixed, moving = parareg.load(fixed_path), parareg.load(moving_path)
        fl = parareg.load(fixed_labels, labels=True).data
        ml = parareg.load(moving_labels, labels=True)
        points = points_of(fl > 0, fixed.vox2world)
        pair = f"{moving_path.name.split('_')[0]}->{fixed_path.name.split('_')[0]}"
        for scope in args.cost_scopes:
            levels = scope_levels[scope]
            wall = {"com": [], "search": [], "alone": []}
            cpu = {"com": [], "search": [], "alone": []}
            matrices, retried = {}, False
            for repeat in range(args.repeats + 1):  # round 0 compiles: not kept
                order = ("com", "search") if repeat % 2 else ("search", "com")
                for init in order:
                    result, seconds, cpu_s = _cost_call(fixed, moving, init, levels,
                                                        args.threads)
                    matrices[init] = result.affine.matrix
                    if init == "search":
                        retried = retried or bool(result.affine.history[0].get("retried"))
                    if repeat:
                        wall[init].append(seconds)
                        cpu[init].append(cpu_s)
                seconds, cpu_s = _search_alone(fixed, moving, levels, args.threads)
                if repeat:
                    wall["alone"].append(seconds)
                    cpu["alone"].append(cpu_s)
            dice = {init: mean_dice(fl, warp_affine(ml.data, ml.vox2world, fixed.shape,
                                                    fixed.vox2world, m, order=0))
                    for init, m in matrices.items()}
            row = {"pair": pair, "scope": scope, "wall": wall, "cpu": cpu, "dice": dice,
                   "search_retried": retried,
                   "identical": bool(np.array_equal(matrices["com"], matrices["search"])),
                   "com_vs_search_mm": mean_error(matrices["com"], matrices["search"], points)}
            for kind in ("wall", "cpu"):
                best = {init: min(values) for init, values in row[kind].items()}
                row[f"{kind}_min"] = best
                row[f"{kind}_extra_percent"] = 100.0 * (best["search"] / best["com"] - 1.0)
                row[f"{kind}_alone_percent"] = 100.0 * best["alone"] / best["com"]
            apart = ("identical" if row["identical"]
                     else f"{row['com_vs_search_mm']:.2f} mm apart")
            log(f"cost {pair} {scope}: com {row['wall_min']['com']:.2f} s, search "
                f"{row['wall_min']['search']:.2f} s ({row['wall_extra_percent']:+.0f} % wall, "
                f"{row['cpu_extra_percent']:+.0f} % cpu), the search alone "
                f"{row['wall_alone_percent']:.0f} % wall / {row['cpu_alone_percent']:.0f} % cpu "
                f"of com; Dice {dice['com']:.4f} / {dice['search']:.4f}, "
                f"{apart}"
                f"{', retried' if retried else ''}")
            out.append(row)
    return {"pairs": out}


def cost_table(rows) -> str:
    table = [[r["pair"], r["scope"], f"{r['wall_min']['com']:.2f}",
              f"{r['wall_min']['search']:.2f}", f"{r['wall_extra_percent']:+.0f} %",
              f"{r['cpu_min']['com']:.2f}", f"{r['cpu_min']['search']:.2f}",
              f"{r['cpu_extra_percent']:+.0f} %",
              f"{r['wall_alone_percent']:.0f} % / {r['cpu_alone_percent']:.0f} %",
              f"{r['dice']['com']:.4f} / {r['dice']['search']:.4f}",
              "identical" if r["identical"] else f"{r['com_vs_search_mm']:.2f} mm"]
             for r in rows]
    return markdown_table(["pair", "affine stage of", "com (s)", "search (s)", "extra (wall)",
                           "com cpu (s)", "search cpu (s)", "extra (cpu)",
                           "search alone / com (wall / cpu)", "Dice com / search",
                           "results"], table)


def parse_angles(text):
    start, stop, step = (float(v) for v in text.split(":"))
    return list(np.arange(start, stop + 1e-9, step))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--full", action="store_true",
                        help="the issue's grid: 0..180 every 15 degrees, 5 IXI pairs, 11 slices")
    parser.add_argument("--angles", type=parse_angles, default=parse_angles("0:180:30"),
                        help="START:STOP:STEP degrees (default 0:180:30)")
    parser.add_argument("--crop-angles", type=parse_angles, default=parse_angles("0:180:90"))
    parser.add_argument("--pairs", type=int, default=1, help="IXI pairs")
    parser.add_argument("--pairs-2d", type=int, default=2, help="2D slice pairs")
    parser.add_argument("--datasets", nargs="+", default=["2d", "ixi", "openms"],
                        choices=["2d", "ixi", "openms"])
    parser.add_argument("--contrasts", nargs="+", default=["same", "other"],
                        choices=["same", "other"])
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    parser.add_argument("--axes", type=int, nargs="+", default=[0, 1, 2],
                        help="3D world axes rotated about (0 x, 1 y, 2 z)")
    parser.add_argument("--openms-contrasts", nargs="+", default=["T1W", "T2W"],
                        choices=["T1W", "T2W"])
    parser.add_argument("--shift", type=float, default=50.0, help="mm (0: no shift cases)")
    parser.add_argument("--crop", type=float, default=0.6,
                        help="fraction of the slices kept (0: no crop cases)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cost", action="store_true", help="time com vs search instead")
    parser.add_argument("--repeats", type=int, default=3, help="--cost repeats")
    parser.add_argument("--cost-scopes", nargs="+", default=list(COST_SCOPES),
                        choices=COST_SCOPES,
                        help="--cost: the affine stage of the default register (syn) and/or of "
                             "transform='affine'")
    parser.add_argument("--from-log", type=Path, nargs="+",
                        help="summarise the progress lines of earlier runs' logs instead")
    args = parser.parse_args(argv)
    if args.full:
        args.angles = parse_angles("0:180:15")
        args.crop_angles = parse_angles("0:180:45")
        args.pairs, args.pairs_2d = 5, 11
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/init_robustness.py " + " ".join(argv or sys.argv[1:])
    info = {"command": command, "machine": machine_info(), "threads": args.threads}
    if args.cost:
        cost = run_cost(args)
        write_json(args.out / "init_cost.json", {**info, **cost})
        text = cost_table(cost["pairs"])
        (args.out / "init_cost.md").write_text(text + "\n")
        print(text)
        return 0
    from parareg.bench.peers import peer_versions

    info["peers"] = peer_versions()
    info["grid"] = {k: getattr(args, k) for k in ("angles", "axes", "crop_angles", "pairs",
                                                  "pairs_2d", "openms_contrasts",
                                                  "datasets", "contrasts", "methods", "shift",
                                                  "crop")}
    if args.from_log:
        rows = [row for path in args.from_log for row in rows_from_log(path)]
        info["from_log"] = [str(path) for path in args.from_log]
        args.methods = [m for m in ALL_METHODS if any(r["method"] == m for r in rows)]
    else:
        rows = run_grid(args, checkpoint=lambda rows: write_json(
            args.out / "init_robustness.json", {**info, "rows": rows, "partial": True}))
    write_json(args.out / "init_robustness.json", {**info, "rows": rows})
    text = summary(rows, args.methods)
    (args.out / "init_robustness.md").write_text(text + "\n")
    plot(rows, args.methods, args.out / "init_robustness.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
