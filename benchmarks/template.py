"""Template of the 6 IXI subjects: parareg.template.build against ANTsPy's ants.build_template.

Both build a SyN template of the same images with the same number of
iterations; each is timed as one wall-clock call (parareg: its local Dask
cluster included, start-up and all; ANTsPy: ``build_template`` with its
registrations one after another, each on ``--threads`` ITK threads). Quality
is measured the same way for both: every subject's DLMUSE labels are put in
template space through that subject's transforms of the **last** iteration
(``GenericLabel``: parareg writes them with the registration, untimed for ANTs
by ``ants.apply_transforms`` on ``output_dir``'s files), and the mean Dice over
the labels of each pair of subjects there is averaged over the 15 pairs
(higher: the subjects agree better in template space). The sharpness of each
template (mean gradient magnitude over mean intensity inside the head) is
reported too. Besides wall seconds, each method's CPU seconds (user + system,
its processes and threads: parareg's Dask workers included) are reported,
which a loaded machine disturbs less; parareg's per-iteration seconds and the
mean stage seconds of its registrations (``record.json``) go to the JSON.

parareg runs first on a cold kernel cache in the worker processes the way a
user meets it, unless ``--warm`` (one untimed 2-iteration build, labels and
QC pictures included, on 2x-shrunk images first: the on-disk kernel cache is
then warm, each new worker process still loads it).

Usage::

    python benchmarks/template.py --shrink 2 --iterations 1 --out /tmp/tpl   # smoke: 4 mm
    python benchmarks/template.py --iterations 4 --workers 6 --threads 12     # the real one

Writes ``template.json`` and ``template.md`` (also printed) into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import log, machine_info, markdown_table, write_json  # noqa: E402
from tests._data import IXI_LABELS, IXI_T1  # noqa: E402


def _get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=4,
                        help="template iterations of both (default 4)")
    parser.add_argument("--shrink", type=int, default=1,
                        help="take every N-th voxel first (2: 4 mm; default 1: 2 mm)")
    parser.add_argument("--subjects", type=int, default=6, help="first N IXI subjects")
    parser.add_argument("--workers", type=int, default=None,
                        help="parareg's Dask workers (default: one per subject, at most the "
                             "CPUs)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads of each method in all: ANTs' ITK threads; parareg's "
                             "workers x threads per registration (default: all CPUs)")
    parser.add_argument("--preset", default="default", help="parareg's SyN preset (the last "
                        "iteration's)")
    parser.add_argument("--early-levels", default=None,
                        help="parareg's SyN pyramid levels before the last iteration (an "
                             "integer, or all; default: build's default)")
    parser.add_argument("--no-qc", action="store_true", help="parareg writes no QC pictures")
    parser.add_argument("--methods", default="parareg,ants", help="comma-separated")
    parser.add_argument("--warm", action="store_true", help="one untimed parareg build first")
    parser.add_argument("--out", default="benchmarks/out/template")
    return parser


def prepare(out: Path, count: int, shrink: int):
    """The subjects' images and labels (shrunk copies with --shrink) as file paths."""
    import parareg
    from parareg.bench.task import shrink as every_nth

    if shrink <= 1:
        return [str(p) for p in IXI_T1[:count]], [str(p) for p in IXI_LABELS[:count]]
    folder = out / f"data_shrink{shrink}"
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    for image, label in zip(IXI_T1[:count], IXI_LABELS[:count]):
        for source, dest, is_labels in ((image, images, False), (label, labels, True)):
            path = folder / source.name
            if not path.exists():
                parareg.save(every_nth(parareg.load(source, labels=is_labels), shrink), path)
            dest.append(str(path))
    return images, labels


def pairwise_dice(label_maps) -> dict:
    """Mean Dice over the labels of each pair of label maps on one grid, and its average."""
    from parareg.bench.scoring import mean_dice

    pairs = {f"{a}-{b}": mean_dice(label_maps[a], label_maps[b])
             for a, b in itertools.combinations(range(len(label_maps)), 2)}
    return {"mean": float(np.mean(list(pairs.values()))), "pairs": pairs}


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and all its descendants: those that ended
    and were waited for, and those alive (the Dask fork server, whose figures hold those of
    the worker processes it forked and that ended)."""
    import psutil  # a dependency of distributed

    def total(times):
        return times.user + times.system + times.children_user + times.children_system

    own = psutil.Process()
    seconds = total(own.cpu_times())
    for child in own.children(recursive=True):
        try:
            seconds += total(child.cpu_times())
        except psutil.NoSuchProcess:  # ended meanwhile: its parent's figures have it
            pass
    return seconds


def stage_seconds(folder: Path, iterations: int) -> dict:
    """Per iteration, the mean of each stage's seconds over its registrations (record.json)."""
    stages = {}
    for k in range(iterations + 1):
        records = [json.loads(p.read_text())
                   for p in sorted(folder.glob(f"iter{k}/*/record.json"))]
        seconds = [r["seconds"] for r in records if r.get("status") == "ok"]
        keys = sorted({key for s in seconds for key in s})
        stages[k] = {key: float(np.mean([s.get(key, 0.0) for s in seconds])) for key in keys}
    return stages


def _early(args) -> dict:
    """build()'s early_levels from --early-levels (nothing: build's default)."""
    if args.early_levels is None:
        return {}
    return {"early_levels": None if args.early_levels == "all" else int(args.early_levels)}


def run_parareg(images, labels, args, out: Path) -> dict:
    import parareg
    from parareg.population.template import sharpness

    workers = args.workers or max(1, min(len(images), os.cpu_count() or 1))
    task_threads = max(1, args.threads // workers)
    folder = out / "parareg"
    shutil.rmtree(folder, ignore_errors=True)
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    result = parareg.template.build(images, out=folder, labels=labels,
                                    iterations=args.iterations, preset=args.preset,
                                    workers=workers, task_threads=task_threads,
                                    qc=not args.no_qc, **_early(args))
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    last = folder / f"iter{args.iterations}"
    maps = [parareg.load(last / name / "Warped_labels.nii.gz", labels=True).data
            for name in result.names]
    return {"seconds": seconds, "cpu_seconds": cpu, "workers": workers,
            "task_threads": task_threads, "preset": args.preset,
            "early_levels": args.early_levels, "dice": pairwise_dice(maps),
            "sharpness": sharpness(result.template.data), "failed": result.failed,
            "summary": result.summary, "stages": stage_seconds(folder, args.iterations),
            "template": str(result.path)}


def run_ants(images, labels, args, out: Path) -> dict:
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import ants

    from parareg.population.template import sharpness

    folder = out / "ants"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    subjects = [ants.image_read(p) for p in images]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    template = ants.build_template(image_list=subjects, iterations=args.iterations,
                                   output_dir=str(folder), type_of_transform="SyN")
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    ants.image_write(template, str(folder / "template.nii.gz"))
    maps = []
    for k, label in enumerate(labels):
        prefix = folder / f"img{k:04d}" / "out"
        warped = ants.apply_transforms(
            fixed=template, moving=ants.image_read(label),
            transformlist=[f"{prefix}1Warp.nii.gz", f"{prefix}0GenericAffine.mat"],
            interpolator="genericLabel")
        maps.append(warped.numpy().astype(np.int64))
    return {"seconds": seconds, "cpu_seconds": cpu, "threads": args.threads,
            "type_of_transform": "SyN", "dice": pairwise_dice(maps),
            "sharpness": sharpness(template.numpy()),
            "template": str(folder / "template.nii.gz")}


def report(results: dict, args) -> str:
    rows = []
    ants = results.get("ants", {})
    for name, r in results.items():
        ratio = f"{r['seconds'] / ants['seconds']:.2f}x" if ants else "-"
        cpu_ratio = f"{r['cpu_seconds'] / ants['cpu_seconds']:.2f}x" if ants else "-"
        rows.append([name, f"{r['seconds']:.1f}", ratio, f"{r['cpu_seconds']:.1f}", cpu_ratio,
                     f"{r['dice']['mean']:.4f}", f"{r['sharpness']:.4f}"])
    spacing = 2 * args.shrink
    title = (f"Template of {args.subjects} IXI subjects at {spacing} mm, {args.iterations} "
             f"iteration(s), {args.threads} thread(s) per method; parareg preset "
             f"{args.preset}, early levels {args.early_levels or '(default)'}")
    return (f"### {title}\n\n"
            + markdown_table(["method", "seconds", "time vs ANTsPy", "CPU seconds",
                              "CPU vs ANTsPy", "mean pairwise Dice", "sharpness"], rows) + "\n")


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = prepare(out, args.subjects, args.shrink)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.warm and "parareg" in methods:
        import parareg

        small, small_labels = prepare(out, args.subjects, args.shrink * 2)
        log("warm-up build (untimed)")
        shutil.rmtree(out / "warmup", ignore_errors=True)  # a resumed one would warm nothing
        parareg.template.build(small, out=out / "warmup", labels=small_labels, iterations=2,
                               preset=args.preset, **_early(args))
    results = {}
    for method in methods:
        log(f"{method}: building")
        results[method] = (run_parareg if method == "parareg" else run_ants)(
            images, labels, args, out)
        log(f"{method}: {results[method]['seconds']:.1f} s, mean pairwise Dice "
            f"{results[method]['dice']['mean']:.4f}")
    text = report(results, args)
    write_json(out / "template.json", {"args": vars(args), "machine": machine_info(),
                                       "results": results})
    (out / "template.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
