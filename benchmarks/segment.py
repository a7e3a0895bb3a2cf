"""Leave-one-out multi-atlas segmentation: parareg (majority vote, JLF) vs ANTs (SyN + JLF).

Each target subject is segmented from the others of its data set:

* Mindboggle 2D slices (12, manual DKT31 + aseg labels): each from the other 11;
* IXI 2 mm T1s (6, DLMUSE labels): each from the other 5.

Methods, all from the same atlases:

``parareg-jlf`` / ``parareg-jlf-msq`` / ``parareg-majority`` / ``parareg-staple``
    :func:`parareg.population.segment.segment` (SyN, ``--preset``; labels by
    GenericLabel) on a local Dask cluster of ``--workers`` processes shared
    by all targets; joint label fusion with the first ``--patch-metric``
    from scratch (its registrations folder is emptied first), then JLF with
    the other metrics, majority vote and STAPLE from the same (resumed)
    registrations. Times: the first JLF call whole (input checks,
    registrations, warped images read back, fusion); for the others, that
    without the first JLF's fusion, plus their own fusion.
``ants-majority`` / ``ants-jlf``
    ``ants.registration(type_of_transform=--ants-transform)`` per atlas,
    labels by ``apply_transforms(interpolator="genericLabel")``, then
    antsJointFusion as ``ants.joint_label_fusion`` calls it (beta, rho =
    alpha, patch and search radius as parareg's; each patch metric of
    ``--patch-metric``: PC, Pearson correlation, antsJointFusion's default
    and parareg's, and MSQ, mean squares, antspyx's default) inside a mask of the
    warped labels dilated by patch + search radius (outside it JLF can only
    give background), keeping antsJointFusion's own label image (the
    wrapper's argmax over posterior files never gives background: see
    :func:`ants_joint_fusion`); majority vote of the same warped labels by
    parareg's ``majority_vote`` (untimed).
    ANTs runs in this process with ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``
    = ``--threads``.

Dice is the mean over the target's own non-zero labels (a label missing from
the result scores 0). parareg's kernels are compiled by an untimed warm-up
segmentation first.

Usage::

    python benchmarks/segment.py --dataset mindboggle --targets 2 --atlases 3   # smoke run
    python benchmarks/segment.py --dataset both                                 # the full study

Writes ``segment.json`` (settings, machine, versions, rows with each label's
Dice), ``segment.md`` (the table, also printed) and ``segment_dice_DATASET.png``
(each label's mean Dice per method; needs matplotlib) into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import _common

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out" / "segment"
DATASETS = ("mindboggle", "ixi")
METHODS = ("parareg", "ants")
#: the issue's target: JLF Dice >= ANTs' JLF in <= 0.2x its time
TARGET_TIME_RATIO = 0.2


def subjects(dataset: str, data: Path) -> list[dict]:
    """``[{"name", "image", "labels"}, ...]`` of one data set, sorted by name."""
    if dataset == "mindboggle":
        images = sorted((data / "mindboggle_2d" / "images").glob("*.nii.gz"))
        labels = sorted((data / "mindboggle_2d" / "labels").glob("*.nii.gz"))
    else:
        images = sorted((data / "ixi_2mm" / "t1").glob("*.nii.gz"))
        labels = sorted((data / "ixi_2mm" / "labels").glob("*.nii.gz"))
    if not images or len(images) != len(labels):
        raise SystemExit(f"{dataset}: found {len(images)} images and {len(labels)} label maps "
                         f"under {data}")
    return [{"name": p.name.split(".")[0], "image": p, "labels": q}
            for p, q in zip(images, labels)]


def dice_scores(result, truth) -> tuple[float, dict]:
    """Mean Dice over the target's own non-zero labels, and each label's Dice."""
    from parareg.bench.scoring import label_overlap

    present = np.unique(truth)
    labels, dice, _ = label_overlap(truth, result, labels=present[present != 0])
    return float(np.nanmean(dice)), {int(k): float(v) for k, v in zip(labels, dice)}


def _row(method, labels, truth, seconds, **extra) -> dict:
    dice, per_label = dice_scores(labels, truth)
    return {"method": method, "dice": dice, "seconds": seconds, **extra,
            "dice_per_label": per_label}


def run_parareg(target, atlases, folder: Path, cluster, settings: dict, threads: int) -> list:
    """JLF from scratch (timed whole: checks, registrations, reads, fusion), then majority
    vote and STAPLE from the same registrations (resumed): their time is JLF's without
    its fusion, plus their own fusion."""
    from parareg.population.segment import segment

    truth = _load(target["labels"], labels=True)
    common = {"preset": settings["preset"], "registrations": folder / "registrations",
              "scheduler": cluster, "num_threads": threads, "posteriors": False,
              "register_options": settings.get("register_options")}
    images = [a["image"] for a in atlases]
    labels = [a["labels"] for a in atlases]
    first, *others = settings["patch_metrics"]
    t0 = time.perf_counter()
    jlf = segment(target["image"], images, labels, fusion="jlf", **settings["jlf"],
                  patch_metric=first.lower(), **common)
    t_jlf = time.perf_counter() - t0
    rows = [_row("parareg-jlf", jlf.labels.data, truth, t_jlf, atlases_used=len(jlf.used),
                 fusion_seconds=jlf.seconds["fusion"], steps=jlf.seconds, patch_metric=first)]
    before_fusion = t_jlf - jlf.seconds["fusion"]
    runs = [(_jlf_name("parareg", m, settings), "jlf", {**settings["jlf"],
                                                         "patch_metric": m.lower()})
            for m in others] + [(f"parareg-{f}", f, {}) for f in ("majority", "staple")]
    for name, fusion, options in runs:
        other = segment(target["image"], images, labels, fusion=fusion, **options, **common)
        rows.append(_row(name, other.labels.data, truth, before_fusion + other.seconds["fusion"],
                         atlases_used=len(other.used), fusion_seconds=other.seconds["fusion"]))
    return rows


def _jlf_name(method: str, metric: str, settings: dict) -> str:
    """``METHOD-jlf`` for the first of --patch-metric, ``METHOD-jlf-msq``... for the others."""
    return f"{method}-jlf" if metric == settings["patch_metrics"][0] else \
        f"{method}-jlf-{metric.lower()}"


def _load(path, *, labels=False) -> np.ndarray:
    import parareg

    return parareg.load(path, labels=labels).data


def run_ants(target, atlases, folder: Path, settings: dict, threads: int) -> list:
    """ANTs SyN per atlas, labels by GenericLabel, then antsJointFusion with the patch
    metric(s) of --patch-metric (antsJointFusion's default is PC, Pearson correlation,
    as parareg's; antspyx's is MSQ)."""
    from scipy import ndimage

    from parareg.population.fusion import majority_vote

    truth = _load(target["labels"], labels=True)
    jlf = settings["jlf"]
    with _common_env(threads):
        import ants

        fixed = ants.image_read(str(target["image"]))
        warped, warped_labels = [], []
        t0 = time.perf_counter()
        for i, atlas in enumerate(atlases):
            moving = ants.image_read(str(atlas["image"]))
            moving_labels = ants.image_read(str(atlas["labels"]), pixeltype="float")
            out = ants.registration(fixed, moving, type_of_transform=settings["ants_transform"],
                                    outprefix=str(folder / f"ants{i:02d}_"))
            warped.append(out["warpedmovout"])
            warped_labels.append(ants.apply_transforms(fixed, moving_labels,
                                                       transformlist=out["fwdtransforms"],
                                                       interpolator="genericLabel"))
        t_reg = time.perf_counter() - t0
        label_arrays = [np.rint(w.numpy()).astype(np.int32) for w in warped_labels]
        grow = jlf["patch_radius"] + jlf["search_radius"]
        mask = ndimage.maximum_filter(np.any(np.stack(label_arrays) != 0, axis=0)
                                      .astype(np.float32), size=2 * grow + 1)
        mask_image = fixed.new_image_like(mask)
        rows = []
        for metric in settings["patch_metrics"]:
            t0 = time.perf_counter()
            segmentation = ants_joint_fusion(fixed, mask_image, warped, warped_labels,
                                             metric=metric, **jlf)
            t_fuse = time.perf_counter() - t0
            name = _jlf_name("ants", metric, settings)
            rows.append(_row(name, segmentation, truth, t_reg + t_fuse,
                             registration_seconds=t_reg, fusion_seconds=t_fuse,
                             patch_metric=metric))
    majority = majority_vote(label_arrays, posteriors=False).labels
    return [_row("ants-majority", majority, truth, t_reg, registration_seconds=t_reg), *rows]


def ants_joint_fusion(fixed, mask, atlases, labels, *, metric, patch_radius, search_radius,
                      alpha, beta) -> np.ndarray:
    """``ants.joint_label_fusion``'s fused labels, background included.

    antspyx's wrapper (0.6.3) returns an argmax over antsJointFusion's posterior files, and
    antsJointFusion writes no posterior for the background (label 0), so that argmax gives
    every voxel of the mask a foreground label (Mindboggle slice 10 from 3 atlases: no
    background left inside the mask, Dice 0.495). The background's posterior is what the
    others leave, ``1 - sum``; the argmax with it is antsJointFusion's own label image
    (identical on that slice, Dice 0.593; that image, which the wrapper also asks for and
    drops, came back with garbage values in one of our runs, so it is not read here).
    """
    import ants

    fused = ants.joint_label_fusion(fixed, mask, atlas_list=atlases, beta=beta,
                                    rad=patch_radius, label_list=labels, rho=alpha,
                                    r_search=search_radius, usecor=metric == "PC")
    posteriors = np.stack([p.numpy() for p in fused["probabilityimages"]])
    values = np.array([0, *fused["segmentation_numbers"]], dtype=np.int32)
    every = np.concatenate([1.0 - posteriors.sum(axis=0, keepdims=True), posteriors])
    return np.where(mask.numpy() > 0, values[np.argmax(every, axis=0)], 0).astype(np.int32)


def _common_env(threads):
    from parareg.bench.peers import ANTS_RANDOM_SEED, environment

    return environment(ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=threads,
                       ANTS_RANDOM_SEED=ANTS_RANDOM_SEED)


def summarize(rows: list) -> list:
    """One row per (dataset, method): targets, mean Dice, mean seconds per target."""
    table = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for method in dict.fromkeys(r["method"] for r in rows):
            hits = [r for r in rows if r["dataset"] == dataset and r["method"] == method]
            if not hits:
                continue
            table.append({"dataset": dataset, "method": method, "targets": len(hits),
                          "atlases": hits[0]["atlases"],
                          "dice": float(np.mean([r["dice"] for r in hits])),
                          "seconds": float(np.mean([r["seconds"] for r in hits]))})
    for row in table:
        ants = [r for r in table if r["dataset"] == row["dataset"] and r["method"] == "ants-jlf"]
        row["time_vs_ants_jlf"] = row["seconds"] / ants[0]["seconds"] if ants else None
    return table


def dice_per_label(rows: list, dataset: str) -> dict:
    """``{method: {label: mean Dice over the targets}}`` of one data set."""
    result = {}
    for method in dict.fromkeys(r["method"] for r in rows if r["dataset"] == dataset):
        scores: dict = {}
        for r in rows:
            if r["dataset"] == dataset and r["method"] == method:
                for label, dice in r["dice_per_label"].items():
                    scores.setdefault(int(label), []).append(dice)
        result[method] = {k: float(np.nanmean(v)) for k, v in sorted(scores.items())}
    return result


def plot_dice_per_label(rows: list, dataset: str, path: Path) -> Path | None:
    """Each label's mean Dice per method (labels sorted by parareg-jlf's); None without
    matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    scores = dice_per_label(rows, dataset)
    if not scores:
        return None
    key = "parareg-jlf" if "parareg-jlf" in scores else next(iter(scores))
    labels = sorted(scores[key], key=lambda k: scores[key][k])
    fig = Figure(figsize=(max(6.0, 0.09 * len(labels) + 2), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method, per_label in scores.items():
        ax.plot(range(len(labels)), [per_label.get(k, np.nan) for k in labels], marker=".",
                linewidth=0.8, label=f"{method} ({np.nanmean(list(per_label.values())):.3f})")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels([str(k) for k in labels], rotation=90, fontsize=5)
    ax.set_xlabel(f"label (sorted by {key}'s Dice)")
    ax.set_ylabel("Dice (mean over targets)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{dataset}: leave-one-out Dice per label", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return path


def to_markdown(table: list, meta: dict) -> str:
    lines = [f"Leave-one-out multi-atlas segmentation, {meta['threads']} threads "
             f"(parareg: {meta['workers']} Dask workers), preset {meta['settings']['preset']!r}, "
             f"ANTs {meta['settings']['ants_transform']!r}; JLF patch radius "
             f"{meta['settings']['jlf']['patch_radius']}, search radius "
             f"{meta['settings']['jlf']['search_radius']}, alpha "
             f"{meta['settings']['jlf']['alpha']}, beta {meta['settings']['jlf']['beta']}.", ""]
    rows = [[r["dataset"], r["method"], r["targets"], r["atlases"], f"{r['dice']:.3f}",
             _common.format_time(r["seconds"]),
             "" if r["time_vs_ants_jlf"] is None else f"{r['time_vs_ants_jlf']:.2f}x"]
            for r in table]
    lines.append(_common.markdown_table(
        ["data", "method", "targets", "atlases each", "mean Dice", "time per target",
         "time / ANTs JLF"], rows))
    return "\n".join(lines)


def _get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--dataset", choices=(*DATASETS, "both"), default="both")
    parser.add_argument("--targets", type=int, default=None,
                        help="segment the first N subjects of each data set (all)")
    parser.add_argument("--atlases", type=int, default=None,
                        help="use at most N of the other subjects as atlases (all)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated: parareg, ants (%(default)s)")
    parser.add_argument("--preset", default="atlas",
                        help="parareg.segment's registration preset (%(default)s)")
    parser.add_argument("--ants-transform", default="SyN",
                        help="ants.registration type_of_transform (%(default)s)")
    parser.add_argument("--patch-metric", "--ants-patch-metric", dest="patch_metric",
                        default="PC,MSQ",
                        help="JLF's patch metric(s), for parareg and ANTs, comma-separated: "
                             "PC (Pearson correlation: antsJointFusion's default and "
                             "parareg's), MSQ (mean squares: antspyx's default); the first "
                             "gives parareg-jlf and ants-jlf, the others parareg-jlf-msq... "
                             "(%(default)s)")
    parser.add_argument("--patch-radius", type=int, default=2)
    parser.add_argument("--search-radius", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--beta", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=_common.usable_cpus(),
                        help="threads of ANTs and of parareg's fusion (usable CPUs)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parareg's Dask workers, one thread each (default: --threads)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    return parser


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    methods = [m for m in args.methods.split(",") if m]
    if any(m not in METHODS for m in methods):
        raise SystemExit(f"--methods: choose from {','.join(METHODS)}, got {args.methods!r}")
    workers = args.workers or args.threads
    datasets = DATASETS if args.dataset == "both" else (args.dataset,)
    settings = {"preset": args.preset, "ants_transform": args.ants_transform,
                "jlf": {"patch_radius": args.patch_radius, "search_radius": args.search_radius,
                        "alpha": args.alpha, "beta": args.beta},
                "patch_metrics": [m.strip().upper() for m in
                                  args.patch_metric.split(",") if m.strip()],
                "label_interpolation": "genericlabel", "dice": "mean over the target's labels"}
    if not settings["patch_metrics"] or any(
            m not in ("PC", "MSQ") for m in settings["patch_metrics"]):
        raise SystemExit(f"--patch-metric: PC, MSQ or both, got {args.patch_metric!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": "segment", "threads": args.threads, "workers": workers,
            "datasets": list(datasets), "targets": args.targets, "atlases": args.atlases,
            "methods": methods, "settings": settings, "command": " ".join(sys.argv),
            "machine": _common.machine_info(), "git": _common.git_revision(__file__),
            "versions": _common.package_versions(
                ("numpy", "scipy", "numba", "dask", "distributed", "antspyx", "parareg"))}
    rows: list = []

    def save():
        meta["machine"]["load_average_now"] = list(os.getloadavg())
        _common.write_json(args.out / "segment.json", {**meta, "rows": rows})

    cluster = None
    if "parareg" in methods:
        from parareg.population import Cluster

        cluster = Cluster(workers=workers, threads_per_worker=1, task_threads=1)
    try:
        for dataset in datasets:
            people = subjects(dataset, args.data)
            if cluster is not None:  # untimed warm-up: compile every kernel on the workers
                _common.log(f"{dataset}: warm-up")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    shutil.rmtree(args.out / "warmup" / dataset, ignore_errors=True)
                    run_parareg(people[0], people[1:3], args.out / "warmup" / dataset, cluster,
                                settings, args.threads)
            for t, target in enumerate(people[: args.targets]):
                atlases = [p for p in people if p is not target][: args.atlases]
                folder = args.out / dataset / target["name"]
                folder.mkdir(parents=True, exist_ok=True)
                base = {"dataset": dataset, "target": target["name"], "atlases": len(atlases)}
                if cluster is not None:
                    shutil.rmtree(folder / "registrations", ignore_errors=True)  # no resuming
                    for row in run_parareg(target, atlases, folder, cluster, settings,
                                           args.threads):
                        rows.append({**base, **row})
                        _common.log(f"{dataset} {target['name']} {row['method']}: "
                                    f"Dice {row['dice']:.3f} in {row['seconds']:.1f} s")
                if "ants" in methods:
                    for row in run_ants(target, atlases, folder, settings, args.threads):
                        rows.append({**base, **row})
                        _common.log(f"{dataset} {target['name']} {row['method']}: "
                                    f"Dice {row['dice']:.3f} in {row['seconds']:.1f} s")
                save()
    finally:
        if cluster is not None:
            cluster.close()
    save()
    table = summarize(rows)
    meta["summary"] = table
    _common.write_json(args.out / "segment.json", {**meta, "rows": rows})
    for dataset in datasets:
        meta.setdefault("plots", []).append(str(plot_dice_per_label(
            rows, dataset, args.out / f"segment_dice_{dataset}.png")))
    report = to_markdown(table, meta)
    (args.out / "segment.md").write_text(report + "\n", encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
