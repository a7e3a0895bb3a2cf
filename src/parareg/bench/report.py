"""The study report: ``report.md``, a per-label summary CSV, box plots and QC links.

Everything is computed from the files of the study folder (``results.csv``,
``per_label_dice.csv``, ``study.json``, ``qc/``), so a report can be redrawn at
any time, also for a study that is still running or was interrupted
(``parareg bench --report-only --out DIR``).

Plots use matplotlib's object-oriented Agg API (no ``pyplot``); without
matplotlib they are left out and the report says so.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np

from ..io.outputs import write_file, write_text
from .results import (FAILED, PER_LABEL_CSV, RESULTS_CSV, describe_rejected, read_csv,
                      read_table, write_csv_atomic)

REPORT_MD = "report.md"
PER_LABEL_SUMMARY_CSV = "per_label_summary.csv"
DICE_PLOT = "dice_boxplot.png"
TIME_PLOT = "time_boxplot.png"
HD95_PLOT = "hd95_boxplot.png"
SDLOGJ_PLOT = "sdlogj_boxplot.png"
#: (column, heading, decimals) of the summary table
METRICS = (
    ("dice_mean", "Dice", 4),
    ("jaccard_mean", "Jaccard", 4),
    ("hd95_mean", "HD95 (mm)", 2),
    ("ncc", "NCC", 4),
    ("nmi", "NMI", 4),
    ("sdlogj", "SDlogJ", 3),
    ("jacobian_min", "min det J", 3),
    ("jacobian_max", "max det J", 2),
    ("folded_percent", "folded %", 3),
    ("seconds", "time (s)", None),
    ("peak_rss_mb", "peak memory (MB)", 0),
)

__all__ = ["METRICS", "REPORT_MD", "summarize", "write_report"]


def _finite(values) -> np.ndarray:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    return a[np.isfinite(a)]


def _mean_sd(values) -> tuple[float, float, int]:
    a = _finite(values)
    if a.size == 0:
        return math.nan, math.nan, 0
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan, int(a.size)


def _decimals(value, decimals) -> int:
    if decimals is not None:
        return decimals
    if not math.isfinite(value) or value == 0:  # 3 significant digits
        return 2
    return max(0, 2 - int(math.floor(math.log10(abs(value)))))


def _fmt(value, decimals) -> str:
    return f"{value:.{decimals}f}" if math.isfinite(value) else "–"


def mean_sd_text(values, decimals=None) -> str:
    """``"mean ± sd"`` of the finite values (``"mean"`` alone for one, ``"–"`` for none);
    ``decimals=None``: 3 significant digits of the mean, the sd alike.

    >>> mean_sd_text([0.5, 0.7, float("nan")], 3), mean_sd_text([0.27, 0.25, 0.29])
    ('0.600 ± 0.141', '0.270 ± 0.020')
    """
    mean, sd, n = _mean_sd(values)
    if n == 0:
        return "–"
    decimals = _decimals(mean, decimals)
    return _fmt(mean, decimals) if n == 1 else f"{_fmt(mean, decimals)} ± {_fmt(sd, decimals)}"


def _methods_in_order(rows, study) -> list[str]:
    names = list((study or {}).get("methods", {}))
    for row in rows:
        if row["method"] not in names:
            names.append(row["method"])
    return [n for n in names if any(r["method"] == n for r in rows)]


def summarize(rows, methods) -> list[dict]:
    """Per method: pairs run, succeeded and failed, and ``(mean, sd, n)`` of every metric over
    the succeeded pairs."""
    summary = []
    for name in methods:
        mine = [r for r in rows if r["method"] == name]
        ok = [r for r in mine if r.get("status") == "ok"]
        entry = {"method": name, "pairs": len(mine), "ok": len(ok),
                 "failed": sum(r.get("status") in FAILED for r in mine),
                 "threads": sorted({r["threads"] for r in mine if r.get("threads")})}
        for column, _, _ in METRICS:
            entry[column] = _mean_sd(r.get(column) for r in ok)
        summary.append(entry)
    return summary


def _per_label_summary(per_label, methods) -> list[dict]:
    rows = []
    for name in methods:
        mine = [r for r in per_label if r["method"] == name]
        for label in sorted({r["label"] for r in mine}):
            dice = [r["dice"] for r in mine if r["label"] == label]
            jaccard = [r["jaccard"] for r in mine if r["label"] == label]
            hd95 = [r.get("hd95") for r in mine if r["label"] == label]
            d_mean, d_sd, n = _mean_sd(dice)
            rows.append({"method": name, "label": label, "pairs": n, "dice_mean": d_mean,
                         "dice_sd": d_sd, "jaccard_mean": _mean_sd(jaccard)[0],
                         "hd95_mean": _mean_sd(hd95)[0]})
    return rows


def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _boxplot(path, rows, methods, column, ylabel, title, *, log=False) -> Path | None:
    data, names = [], []
    for name in methods:
        values = _finite(r.get(column) for r in rows
                         if r["method"] == name and r.get("status") == "ok")
        if values.size:
            data.append(values)
            names.append(name)
    if not data:
        return None
    fig = _new_figure(max(4.0, 1.1 * len(names) + 1.5), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels(names, rotation=20, ha="right")
    for i, values in enumerate(data, start=1):  # every pair as a dot, jittered deterministically
        jitter = (np.arange(values.size) % 7 - 3) * 0.03
        ax.plot(i + jitter, values, ".", color="0.3", alpha=0.6, markersize=4)
    if log and min(v.min() for v in data) > 0:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return write_file(path, lambda tmp: fig.savefig(tmp, format="png"), num_threads=1)


def _qc_links(out, rows, methods) -> list[str]:
    from .runner import safe_name

    lines = []
    for name in methods:
        ok = [r for r in rows if r["method"] == name and r.get("status") == "ok"
              and math.isfinite(r.get("dice_mean", math.nan))]
        if not ok:
            continue
        best = max(ok, key=lambda r: r["dice_mean"])
        worst = min(ok, key=lambda r: r["dice_mean"])
        for which, row in (("best", best), ("worst", worst)):
            picture = Path("qc") / (safe_name(row["fixed"], row["moving"], name) + ".png")
            if not (Path(out) / picture).is_file():
                continue
            lines += [f"**{name}**, {which} pair: {row['moving']} → {row['fixed']} "
                      f"(Dice {row['dice_mean']:.4f})", "",
                      f"![{name} {which}]({picture.as_posix()})", ""]
            if best is worst:
                break
    return lines


def _table(summary) -> list[str]:
    headers = ["method", "pairs ok / run"] + [h for _, h, _ in METRICS] + ["threads"]
    lines = ["| " + " | ".join(headers) + " |",
             "| :--- | ---: | " + " | ".join("---:" for _ in METRICS) + " | ---: |"]
    for s in summary:
        cells = [s["method"], f"{s['ok']} / {s['pairs']}"]
        for column, _, decimals in METRICS:
            mean, sd, n = s[column]
            places = _decimals(mean, decimals)
            cells.append("–" if n == 0 else _fmt(mean, places) if n == 1 else
                         f"{_fmt(mean, places)} ± {_fmt(sd, places)}")
        cells.append(",".join(str(t) for t in s["threads"]) or "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(out) -> Path:
    """Write ``report.md``, ``per_label_summary.csv`` and the box plots of a study folder.

    Parameters
    ----------
    out : path
        A study folder written by :func:`parareg.bench.run`.

    Returns
    -------
    Path
        ``out / "report.md"``.
    """
    out = Path(out)
    rows, rejected = read_table(out / RESULTS_CSV)
    if rejected:
        warnings.warn(f"{out / RESULTS_CSV}: {describe_rejected(rejected)}; left out of the "
                      "report (rerun the study to set them aside and recompute them)",
                      stacklevel=2)
    if not rows:
        raise FileNotFoundError(f"no results in {out / RESULTS_CSV}; run the study first")
    per_label = read_csv(out / PER_LABEL_CSV)
    study = {}
    if (out / "study.json").is_file():
        study = json.loads((out / "study.json").read_text(encoding="utf-8"))
    methods = _methods_in_order(rows, study)
    summary = summarize(rows, methods)
    write_csv_atomic(out / PER_LABEL_SUMMARY_CSV,
                     ("method", "label", "pairs", "dice_mean", "dice_sd", "jaccard_mean",
                      "hd95_mean"),
                     _per_label_summary(per_label, methods))
    plots = []
    try:
        plots = [_boxplot(out / DICE_PLOT, rows, methods, "dice_mean", "mean Dice per pair",
                          "Label overlap"),
                 _boxplot(out / HD95_PLOT, rows, methods, "hd95_mean", "mean HD95 per pair (mm)",
                          "Label boundaries"),
                 _boxplot(out / SDLOGJ_PLOT, rows, methods, "sdlogj",
                          "SDlogJ per pair (fixed foreground)", "Regularity of the map"),
                 _boxplot(out / TIME_PLOT, rows, methods, "seconds", "seconds per pair",
                          "Wall time of the registration", log=True)]
    except ImportError:
        plots = None

    pairs = {(r["fixed"], r["moving"]) for r in rows}
    lines = ["# Registration benchmark", ""]
    run = (study.get("runs") or [{}])[-1]
    cluster = study.get("cluster", {})
    where = (f"scheduler {cluster['scheduler']}" if cluster.get("scheduler") else
             f"local Dask cluster, {cluster.get('workers')} worker(s) × "
             f"{cluster.get('threads_per_worker')} thread(s)")
    lines += [
        f"{len(pairs)} pair(s) ({study.get('pair_mode', '?')}), {len(methods)} method(s), "
        f"prealignment: {study.get('prealign') or 'none'}, "
        f"{study.get('task_threads', '?')} thread(s) per registration, {where}; "
        f"last run started {run.get('started', '?')}. "
        "Mean ± sd over the pairs each method registered successfully. Dice/Jaccard: mean over "
        "the non-zero labels present in both the fixed and the (unwarped) moving label map, "
        "moving labels resampled with nearest neighbour; NCC and NMI (Studholme, 32 bins): "
        "warped moving vs fixed image over the whole fixed grid; HD95: per label the "
        "larger 95th percentile of the surface-to-surface distances (mm), averaged over the "
        "labels as Dice is (a label the warp loses scores the grid's diagonal); SDlogJ: "
        "standard deviation of log det J (det J clipped to [1e-9, 1e9], as Learn2Reg does) "
        "over the fixed foreground (fixed labels > 0); min/max det J and folded % (voxels "
        "with det J ≤ 0) over the whole grid (– for linear maps); time: the method call alone "
        "(registration + resampling image and labels, after an untimed warm-up; for the "
        "file-based peers their file I/O too, `registration_seconds` in the `info` column of "
        "`results.csv` is their registration call alone); peak memory: peak RSS of the "
        "task's own process.", ""]
    lines += _table(summary) + [""]
    failures = [r for r in rows if r.get("status") in FAILED]
    if failures:
        lines += [f"### Failed tasks ({len(failures)})", "",
                  "| method | moving → fixed | status | error |", "| :--- | :--- | :--- | :--- |"]
        for r in failures:
            error = str(r.get("error") or "").replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(f"| {r['method']} | {r['moving']} → {r['fixed']} | {r['status']} | "
                         f"{error} |")
        lines += ["", "Tracebacks and logs: `logs/`.", ""]
    if study.get("skipped_methods"):
        lines += [f"Not installed, skipped: {', '.join(study['skipped_methods'])}.", ""]
    if plots is None:
        lines += ["(Box plots need matplotlib: `pip install 'parareg[bench]'`.)", ""]
    else:
        for plot in plots:
            if plot is not None:
                lines += [f"![{plot.stem}]({plot.name})", ""]
    qc = _qc_links(out, rows, methods)
    if qc:
        lines += ["## Best and worst pair of each method", ""] + qc
    lines += ["## Files", "",
              f"- `{RESULTS_CSV}`: one row per pair and method (scores, time, memory, errors)",
              f"- `{PER_LABEL_CSV}`: Dice, Jaccard and HD95 of every label of every pair and "
              "method",
              f"- `{PER_LABEL_SUMMARY_CSV}`: per method and label, mean ± sd over pairs",
              "- `study.json`: inputs, every method's settings, versions, runs", ""]
    if study.get("methods"):
        lines += ["## Method settings", ""]
        for name in methods:
            record = study["methods"].get(name)
            if record:
                lines.append(f"- **{name}** ({record.get('description') or record['function']}): "
                             f"`{json.dumps(record['settings'], sort_keys=True)}`")
        lines.append("")
    path = out / REPORT_MD
    write_text(path, "\n".join(lines))
    return path
