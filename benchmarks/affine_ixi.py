"""Rigid and affine registration on the 30 ordered IXI 2 mm pairs: parareg vs DIPY, ANTs, greedy.

For every (pair, method, transform) the script records the wall time of the
registration call alone (image loading excluded; parareg gets one untimed
warm-up registration per transform first, so numba compilation is excluded),
then scores the returned fixed->moving world matrix the same way for every
method (:func:`scoring.warp_affine`, one SciPy resampler): mean Dice and
Jaccard over the DLMUSE labels of the fixed and moving subjects (moving
labels warped with nearest neighbour), and MI, NMI (32 bins) and NCC of the
trilinearly warped moving T1 against the fixed T1 over the whole fixed grid.

All methods run in one process at one thread count: parareg ``num_threads``,
ANTs ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, greedy ``-threads``. DIPY's
affine registration is serial (about a minute per pair), so by default it
runs on the first 3 pairs only and its ratios use those shared pairs.

Usage::

    python benchmarks/affine_ixi.py --pairs 1 --dipy-pairs 0       # smoke run
    python benchmarks/affine_ixi.py                                 # the full study

Writes ``affine_ixi.json`` (settings, machine, raw rows) and ``affine_ixi.md``
(the summary, also printed) into ``--out``.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import os
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np

import _common
import peers
import scoring

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ixi_2mm"
OUT = Path(__file__).resolve().parent / "out" / "affine_ixi"
METHODS = ("parareg", "ants", "greedy", "dipy")
PARAREG_PIPELINES = {"rigid": ("center_of_mass", "translation", "rigid"),
                     "affine": ("center_of_mass", "translation", "rigid", "affine")}
PARAREG_SETTINGS = {"metric": "mi", "bins": 32}
#: the issue's targets, checked on the affine and rigid rows alike
TARGET_TIME_VS_DIPY = 0.1
TARGET_TIME_VS_ANTS = 0.5


# ----------------------------------------------------------------------------------------------
# data and methods


def ixi_subjects(data) -> list[dict]:
    """``[{"name", "t1", "labels"}, ...]`` for every T1 in ``data/t1`` (sorted), with its labels."""
    data = Path(data)
    subjects = []
    for t1 in sorted((data / "t1").glob("*.nii.gz")):
        stem = t1.name[: -len(".nii.gz")]
        labels = data / "labels" / f"{stem}_DLMUSE.nii.gz"
        if not labels.exists():
            raise FileNotFoundError(f"no label map {labels} for {t1}")
        subjects.append({"name": stem.split("-")[0], "t1": t1, "labels": labels})
    if len(subjects) < 2:
        raise FileNotFoundError(f"need at least 2 subjects in {data / 't1'}, found {len(subjects)}")
    return subjects


def ordered_pairs(subjects) -> list[tuple[dict, dict]]:
    """Every ``(fixed, moving)`` pair of distinct subjects, in a fixed order (30 for 6)."""
    return list(itertools.permutations(subjects, 2))


def register_parareg(fixed_path, moving_path, transform, num_threads) -> peers.AffineResult:
    """parareg ``affine_registration`` with :data:`PARAREG_PIPELINES` (library defaults else)."""
    import parareg
    from parareg.registration import affine_registration

    fixed, moving = parareg.load(fixed_path), parareg.load(moving_path)
    t0 = time.perf_counter()
    result = affine_registration(fixed, moving, pipeline=PARAREG_PIPELINES[transform],
                                 num_threads=num_threads, **PARAREG_SETTINGS)
    seconds = time.perf_counter() - t0
    return peers.AffineResult(np.asarray(result.matrix, dtype=np.float64), seconds,
                              {"threads": int(num_threads)})


def identity(fixed_path, moving_path, transform, num_threads) -> peers.AffineResult:
    """No registration: the identity world matrix (the score before registering)."""
    return peers.AffineResult(np.eye(4), 0.0, {})


RUNNERS = {"parareg": register_parareg, **peers.AFFINE_PEERS}


_PER_CALL = ("num_threads", "callback", "fixed_mask", "moving_mask", "starting_affine")


def parareg_settings() -> dict:
    """The options parareg runs with, library defaults included."""
    from parareg.registration import affine_registration

    defaults = {name: p.default for name, p in
                inspect.signature(affine_registration).parameters.items()
                if p.default is not inspect.Parameter.empty and name not in _PER_CALL}
    return {**defaults, **PARAREG_SETTINGS, "pipeline": PARAREG_PIPELINES}


# ----------------------------------------------------------------------------------------------
# scoring


def load_subject(subject) -> dict:
    t1, labels = nib.load(subject["t1"]), nib.load(subject["labels"])
    return {"data": t1.get_fdata(dtype=np.float32), "vox2world": t1.affine,
            "labels": np.asarray(labels.dataobj).astype(np.int32),
            "labels_vox2world": labels.affine}


def score(fixed2moving, fixed, moving) -> dict:
    """Overlap and similarity of ``moving`` brought onto ``fixed`` through ``fixed2moving``."""
    shape = fixed["data"].shape
    warped = scoring.warp_affine(moving["data"], moving["vox2world"], shape, fixed["vox2world"],
                                 fixed2moving, order=1)
    warped_labels = scoring.warp_affine(moving["labels"], moving["labels_vox2world"],
                                        fixed["labels"].shape, fixed["labels_vox2world"],
                                        fixed2moving, order=0)
    labels = np.intersect1d(np.unique(fixed["labels"]), np.unique(moving["labels"]))
    labels = labels[labels != 0]
    _, dice, jaccard = scoring.label_overlap(fixed["labels"], warped_labels, labels=labels)
    return {"dice_mean": float(np.mean(dice)), "jaccard_mean": float(np.mean(jaccard)),
            "n_labels": int(labels.size),
            "mi": scoring.mutual_information(fixed["data"], warped),
            "nmi": scoring.normalized_mutual_information(fixed["data"], warped),
            "ncc": scoring.ncc(fixed["data"], warped),
            "dice": [round(float(d), 4) for d in dice]}


# ----------------------------------------------------------------------------------------------
# running


def run(pairs, methods, transforms, *, threads, dipy_pairs, save=None) -> list[dict]:
    """Rows of :func:`score` plus timing for every (pair, transform, method); ``save(rows)``
    is called after each pair."""
    if "parareg" in methods:  # compile every numba kernel before any timing
        for transform in transforms:
            t0 = time.perf_counter()
            register_parareg(pairs[0][0]["t1"], pairs[0][1]["t1"], transform, threads)
            _common.log(f"parareg warm-up ({transform}): {time.perf_counter() - t0:.1f} s")
    rows = []
    for index, (fixed_subject, moving_subject) in enumerate(pairs):
        fixed, moving = load_subject(fixed_subject), load_subject(moving_subject)
        for transform in transforms:
            for method in ("identity", *methods):
                if method == "dipy" and index >= dipy_pairs:
                    continue
                row = {"pair": index, "fixed": fixed_subject["name"],
                       "moving": moving_subject["name"], "method": method,
                       "transform": transform}
                runner = identity if method == "identity" else RUNNERS[method]
                try:
                    result = runner(fixed_subject["t1"], moving_subject["t1"], transform, threads)
                except Exception as exc:  # keep going: one failing peer must not end the study
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    _common.log(f"[{index}] {method} {transform}: FAILED {row['error']}")
                    rows.append(row)
                    continue
                row.update(seconds=result.seconds, **result.info,
                           **score(result.matrix, fixed, moving),
                           matrix=result.matrix.round(8).tolist())
                rows.append(row)
                _common.log(f"[{index}] {row['moving']}->{row['fixed']} {method:8s} "
                            f"{transform:6s} {result.seconds:7.2f} s  "
                            f"Dice {row['dice_mean']:.4f}  NMI {row['nmi']:.4f}")
        if save is not None:
            save(rows)
    return rows


# ----------------------------------------------------------------------------------------------
# summary


def _select(rows, method, transform, pairs=None):
    return {r["pair"]: r for r in rows if r["method"] == method and r["transform"] == transform
            and "error" not in r and (pairs is None or r["pair"] in pairs)}


def summarize(rows, methods, transforms) -> dict:
    """Per (method, transform) statistics, and parareg's ratios and targets per transform."""
    stats, comparisons = {}, {}
    for transform in transforms:
        for method in ("identity", *methods):
            sel = list(_select(rows, method, transform).values())
            if not sel:
                continue
            dice = np.array([r["dice_mean"] for r in sel])
            stats[f"{method}/{transform}"] = {
                "method": method, "transform": transform, "pairs": len(sel),
                "dice_mean": float(dice.mean()),
                "dice_sd": float(dice.std(ddof=1)) if dice.size > 1 else 0.0,
                "jaccard_mean": float(np.mean([r["jaccard_mean"] for r in sel])),
                "median_s": float(np.median([r["seconds"] for r in sel])),
                "mi_mean": float(np.mean([r["mi"] for r in sel])),
                "nmi_mean": float(np.mean([r["nmi"] for r in sel])),
                "ncc_mean": float(np.mean([r["ncc"] for r in sel])),
                "failed": sum(1 for r in rows if r["method"] == method
                              and r["transform"] == transform and "error" in r)}
        ours = _select(rows, "parareg", transform)
        for peer in methods:
            theirs = _select(rows, peer, transform)
            shared = sorted(set(ours) & set(theirs))
            if peer == "parareg" or not shared:
                continue
            t_ours = np.median([ours[p]["seconds"] for p in shared])
            t_theirs = np.median([theirs[p]["seconds"] for p in shared])
            diff = np.array([ours[p]["dice_mean"] - theirs[p]["dice_mean"] for p in shared])
            comparisons[f"{peer}/{transform}"] = {
                "peer": peer, "transform": transform, "shared_pairs": len(shared),
                "time_ratio": float(t_ours / t_theirs), "dice_diff": float(diff.mean()),
                "dice_wins": int(np.sum(diff >= 0))}
    return {"stats": stats, "comparisons": comparisons}


def _verdict(ok) -> str:
    return "n/a" if ok is None else ("**yes**" if ok else "**no**")


def to_markdown(summary, meta) -> str:
    """The report: settings line, one table of results, one of parareg's ratios and targets."""
    m = meta["machine"]
    dipy_note = (f"DIPY is serial and ran on the first {meta['dipy_pairs']} pair(s). "
                 if meta["dipy_pairs"] else "")
    lines = [
        "## Affine registration, IXI 2 mm (30 ordered pairs)", "",
        f"{meta['pairs']} pair(s), {meta['threads']} thread(s) for every threaded method, "
        f"on {m['cpu_model']} ({m['usable_cpus']} usable CPUs, load "
        f"{', '.join(f'{x:.1f}' for x in m['load_average_at_start'] or [])} at start), "
        f"{m['date']}. Times: the registration call alone (loading excluded; parareg after "
        "one untimed warm-up, so no numba compilation). "
        f"{dipy_note}Every method is scored through its fixed->moving "
        f"matrix with one SciPy resampler: Dice/Jaccard over the {meta['n_labels']} DLMUSE "
        "labels (nearest neighbour), MI (nats) / NMI (Studholme) with 32 bins and NCC over the "
        "whole fixed grid. `identity` = before registration.", ""]
    rows = [[s["method"], s["transform"], s["pairs"],
             f"{s['dice_mean']:.4f} ± {s['dice_sd']:.4f}", f"{s['jaccard_mean']:.4f}",
             _common.format_time(s["median_s"]) if s["method"] != "identity" else "–",
             f"{s['mi_mean']:.4f}", f"{s['nmi_mean']:.4f}", f"{s['ncc_mean']:.4f}"]
            for s in summary["stats"].values()]
    lines += [_common.markdown_table(
        ["method", "transform", "pairs", "Dice mean ± sd", "Jaccard", "median time", "MI",
         "NMI", "NCC"], rows, align="llrrrrrrr"), ""]
    comps = summary["comparisons"]
    if comps:
        rows = []
        for c in comps.values():
            target = {"dipy": TARGET_TIME_VS_DIPY, "ants": TARGET_TIME_VS_ANTS}.get(c["peer"])
            time_ok = None if target is None else c["time_ratio"] <= target
            dice_ok = c["dice_diff"] >= 0 if c["peer"] == "ants" else None
            rows.append([c["peer"], c["transform"], c["shared_pairs"],
                         f"{c['time_ratio']:.3f}", "–" if target is None else f"≤ {target}",
                         _verdict(time_ok), f"{c['dice_diff']:+.4f}",
                         f"{c['dice_wins']}/{c['shared_pairs']}", _verdict(dice_ok)])
        lines += ["parareg vs each peer on the pairs both ran (time ratio = median parareg time "
                  "/ median peer time; Dice diff = mean over pairs of parareg − peer):", "",
                  _common.markdown_table(
                      ["peer", "transform", "shared pairs", "time ratio", "target",
                       "time target met", "Dice diff", "parareg ≥ peer", "Dice target met"],
                      rows, align="llrrrlrrl"), ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# command line


def _csv(choices):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = sorted(set(items) - set(choices))
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}, got {text!r}")
        return items
    return parse


def _get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the ixi_2mm folder")
    parser.add_argument("--methods", type=_csv(METHODS), default=list(METHODS),
                        help="comma-separated, from %(default)s")
    parser.add_argument("--transforms", type=_csv(peers.TRANSFORMS),
                        default=list(peers.TRANSFORMS))
    parser.add_argument("--pairs", type=int, default=None, help="first N ordered pairs (all)")
    parser.add_argument("--dipy-pairs", type=int, default=3,
                        help="run DIPY on the first M pairs only (%(default)s)")
    parser.add_argument("--threads", type=int, default=_common.usable_cpus(),
                        help="threads for parareg, ANTs and greedy (usable CPUs)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    return parser


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    for name in ("threads", "pairs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name} must be at least 1, got {value}")
    methods = []
    for method in args.methods:
        if method != "parareg" and not peers.available(method):
            _common.log(f"{method} is not installed: skipped")
        else:
            methods.append(method)
    pairs = ordered_pairs(ixi_subjects(args.data))[: args.pairs]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": "affine_ixi", "pairs": len(pairs), "threads": args.threads,
        "dipy_pairs": min(args.dipy_pairs, len(pairs)) if "dipy" in methods else 0,
        "methods": methods, "transforms": args.transforms, "data": str(args.data),
        "machine": _common.machine_info(), "git": _common.git_revision(__file__),
        "peer_versions": peers.peer_versions(),
        "settings": {"parareg": parareg_settings() if "parareg" in methods else None,
                     "dipy": {**peers.DIPY_SETTINGS, "pipeline": peers.DIPY_PIPELINES,
                              "threads": "serial"},
                     "ants": {"type_of_transform": peers.ANTS_TYPES,
                              "ANTS_RANDOM_SEED": peers.ANTS_RANDOM_SEED,
                              "threads": "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"},
                     "greedy": {"dof": peers.GREEDY_DOF, "options": peers.GREEDY_OPTIONS},
                     "scoring": {"bins": scoring.BINS, "resampler": "scipy.ndimage",
                                 "labels": "non-zero labels of both subjects"}}}

    def save(rows):
        meta["machine"]["load_average_now"] = list(os.getloadavg())
        _common.write_json(args.out / "affine_ixi.json", {**meta, "rows": rows})

    # ITK reads its thread count once per process: set it before ANTs first runs
    with peers.environment(ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=args.threads):
        rows = run(pairs, methods, args.transforms, threads=args.threads,
                   dipy_pairs=args.dipy_pairs, save=save)
    save(rows)
    meta["n_labels"] = max((r.get("n_labels", 0) for r in rows), default=0)
    report = to_markdown(summarize(rows, methods, args.transforms), meta)
    (args.out / "affine_ixi.md").write_text(report + "\n", encoding="utf-8")
    print(report)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
