"""Accuracy against regularity: a sweep of SyN's regularisation, with the peers as points.

For the IXI 2 mm pairs (3D) and the Mindboggle slices (2D) the script runs
parareg's SyN over a small grid of CC gradient (``"center"``, ``"exact"``) x
``update_sigma`` x ``field_sigma`` x ``step`` (and the named presets), scores
every registration with :func:`parareg.bench.scoring.score_registration`
(mean Dice, HD95, SDlogJ
over the fixed foreground, det J range) and plots mean Dice against mean
SDlogJ, one point per setting, with ANTs SyN, ANTs SyNQuick, greedy and DIPY
(run through :func:`parareg.bench.run`, the benchmark harness) as points over
the same pairs.

Caching (the machine is shared): the affine prealignment of every pair and
every sweep point are kept in ``OUT/cache_<dim>.json`` (keyed by the pair and
the settings; each entry records the git revision that computed it; ``--fresh``
starts afresh after a change to the method), and the peers' studies in
``OUT/peers_<dim>/`` are resumed, so a rerun only computes what is new.
parareg runs in this process (one affine per pair, then SyN per setting);
its time is the SyN stage plus resampling the image, after one warm-up.

Usage::

    python benchmarks/pareto.py --out benchmarks/out/pareto            # ~1 h on 2 busy cores
    python benchmarks/pareto.py --out /tmp/pareto --quick               # one 2D pair, 2 points

Writes ``pareto.json`` (settings, machine, versions, every point),
``pareto.md`` (the tables, also printed) and ``pareto_2d.png`` /
``pareto_3d.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402 - a sibling module, importable once its folder is on the path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
IXI = [("IXI012-HH-1211", "IXI013-HH-1212"), ("IXI014-HH-1236", "IXI015-HH-1258"),
       ("IXI033-HH-1259", "IXI034-HH-1260")]
#: Mindboggle subject pairs (fixed, moving): OASIS-TRT-20-1 <- -2, 3 <- 4, ... 11 <- 12
MINDBOGGLE = [(str(i), str(i + 1)) for i in range(1, 12, 2)]
#: the sweep, per CC gradient: update sigma x field sigma (mm, as the presets give them) x step
#: (voxels); the field sigma traces each curve (the earlier sweep over update sigma 2.4-6 mm and
#: step 0.5-1 put no point beyond the field-sigma curve at update 2.4, step 0.5). In 3D the
#: centre gradient is the earlier default only (its curve is in BENCHMARKS.md section 11)
GRID = {"2d": {"exact": {"update_sigma": (2.4,), "field_sigma": (0.5, 0.7, 1.0, 1.6, 2.0, 2.5),
                         "step": (0.5,)},
               "center": {"update_sigma": (2.4,), "field_sigma": (0.5, 0.7, 1.0, 1.6, 2.5),
                          "step": (0.5,)}},
        "3d": {"exact": {"update_sigma": (2.4,), "field_sigma": (2.0, 1.6, 2.5),
                         "step": (0.5,)},
               "center": {"update_sigma": (2.4,), "field_sigma": (1.6,), "step": (0.5,)}}}
QUICK_GRID = [{"update_sigma": 2.4, "field_sigma": 1.0, "step": 0.5},
              {"update_sigma": 6.0, "field_sigma": 2.5, "step": 0.5}]
QUICK_LEVELS = ((4, 1.0, 10), (2, 0.5, 5), (1, 0.0, 2))
PEERS = ("greedy", "ants", "ants:syn-quick", "dipy")
PRESETS = ("fast", "default", "accurate")
VERSIONS = ("numpy", "scipy", "numba", "nibabel", "parareg", "antspyx", "picsl_greedy", "dipy")


def pairs(dim: str, n: int) -> list[dict]:
    """The first ``n`` image pairs of a dimension: paths of fixed/moving images and labels."""
    if dim == "3d":
        root = DATA / "ixi_2mm"
        return [{"name": f"{f[:6]}<-{m[:6]}",
                 "fixed_image": root / "t1" / f"{f}-T1_ds.nii.gz",
                 "fixed_labels": root / "labels" / f"{f}-T1_ds_DLMUSE.nii.gz",
                 "moving_image": root / "t1" / f"{m}-T1_ds.nii.gz",
                 "moving_labels": root / "labels" / f"{m}-T1_ds_DLMUSE.nii.gz"}
                for f, m in IXI[:n]]
    root = DATA / "mindboggle_2d"
    image = "OASIS-TRT-20-{}_slice118.nii.gz"
    labels = "OASIS-TRT-20-{}_DKT31_CMA_labels_slice118.nii.gz"
    return [{"name": f"OASIS-{f}<-{m}",
             "fixed_image": root / "images" / image.format(f),
             "fixed_labels": root / "labels" / labels.format(f),
             "moving_image": root / "images" / image.format(m),
             "moving_labels": root / "labels" / labels.format(m)} for f, m in MINDBOGGLE[:n]]


def _name(options) -> str:
    """``sweep exact u2.4 f1.6 s0.5``: the point's CC gradient, update sigma, field sigma and
    step."""
    return (f"sweep {options.get('gradient', 'center')} u{options['update_sigma']:g} "
            f"f{options['field_sigma']:g} s{options['step']:g}")


def settings_grid(quick: bool, dim: str) -> list[dict]:
    if quick:
        return [dict(s, sigma_units="mm") for s in QUICK_GRID]
    return [dict(zip(axes, values), gradient=gradient, sigma_units="mm")
            for gradient, axes in GRID[dim].items()
            for values in itertools.product(*axes.values())]


# ----------------------------------------------------------------------------------------------
# parareg, in this process


class Cache:
    """A JSON file of finished results keyed by text; written after every new entry."""

    def __init__(self, path: Path, revision: str):
        self.path = path
        self.revision = revision
        self.data = {}
        if path.is_file():
            self.data = json.loads(path.read_text(encoding="utf-8"))

    def key(self, *parts) -> str:
        return json.dumps(parts, sort_keys=True, default=str)

    def get(self, key):
        entry = self.data.get(key)
        return None if entry is None else entry["value"]

    def put(self, key, value) -> None:
        self.data[key] = {"value": value, "revision": self.revision}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data), encoding="utf-8")
        tmp.replace(self.path)


def _load(pair):
    from parareg import load

    return (load(pair["fixed_image"]), load(pair["fixed_labels"], labels=True),
            load(pair["moving_image"]), load(pair["moving_labels"], labels=True))


def affine_matrix(pair, cache, threads) -> np.ndarray:
    """The affine stage that ``register(transform="syn")`` runs before SyN, cached."""
    from parareg.registration.affine import affine_registration
    from parareg.registration.pipeline import AFFINE_PIPELINES, SYN_PREALIGN_LEVELS

    key = cache.key("affine", pair["name"])
    if cache.get(key) is None:
        fixed, _, moving, _ = _load(pair)
        result = affine_registration(fixed, moving, metric="mi", pipeline=AFFINE_PIPELINES["syn"],
                                     levels=SYN_PREALIGN_LEVELS, num_threads=threads, seed=0)
        cache.put(key, result.matrix.tolist())
    return np.asarray(cache.get(key))


def _syn_key(cache, pair, options) -> str:
    """The cache key of a SyN run: options equal to the class defaults are left out, so a
    preset and the sweep point with its settings share one entry."""
    from parareg.registration.syn import DEFAULT_SYN_LEVELS

    defaults = {"levels": json.loads(json.dumps(DEFAULT_SYN_LEVELS)), "radius": 2,
                "gradient": "center"}
    short = {k: v for k, v in json.loads(json.dumps(options)).items() if defaults.get(k) != v}
    return cache.key("syn", pair["name"], short)


def run_parareg(pair, options: dict, cache, threads, loaded) -> dict:
    """SyN with ``options`` after the cached affine; scores and seconds (cached)."""
    from parareg.bench.scoring import score_registration, shared_labels
    from parareg.registration.syn import SymmetricDiffeomorphicRegistration

    key = _syn_key(cache, pair, options)
    if cache.get(key) is not None:
        return cache.get(key)
    fixed, fixed_labels, moving, moving_labels = loaded
    prealign = affine_matrix(pair, cache, threads)
    syn = SymmetricDiffeomorphicRegistration("cc", num_threads=threads, **options)
    t0 = time.perf_counter()
    mapping = syn.optimize(fixed, moving, prealign=prealign)
    warped = mapping.transform(moving, num_threads=threads)
    seconds = time.perf_counter() - t0
    labels = mapping.transform(moving_labels, interpolation="nearest", num_threads=threads)
    scores = score_registration(fixed.data, fixed_labels.data, warped.data, labels.data,
                                labels=shared_labels(fixed_labels.data, moving_labels.data),
                                jacobian=mapping.jacobian_determinant(num_threads=threads),
                                spacing=fixed.spacing, num_threads=threads)
    row = {k: scores[k] for k in ("dice_mean", "hd95_mean", "sdlogj", "jacobian_min",
                                  "jacobian_max", "folded_percent")}
    row["seconds"] = seconds
    cache.put(key, row)
    return row


def sweep(dim, the_pairs, points, cache, threads, progress, *, warm=True,
          cached_only=False) -> list[dict]:
    """Every point on every pair, point by point (an interrupted run leaves whole points);
    ``points`` are ``(label, options)``. With ``warm``, one tiny untimed run first, when a
    point is not in the cache; with ``cached_only``, points not in the cache are left out (a
    point without every pair is then left out of the summary)."""
    rows = []
    images = {pair["name"]: _load(pair) for pair in the_pairs}
    for label, options in points:
        for pair in the_pairs:
            loaded = images[pair["name"]]
            if cache.get(_syn_key(cache, pair, options)) is None and cached_only:
                progress(f"{dim} {pair['name']} {label}: not in the cache, left out")
                continue
            if warm and cache.get(_syn_key(cache, pair, options)) is None:
                warm_up(the_pairs[0], threads)
                warm = False
            row = run_parareg(pair, options, cache, threads, loaded)
            rows.append({"dim": dim, "pair": pair["name"], "method": label,
                         "options": options, **row})
            progress(f"{dim} {pair['name']} {label}: Dice {row['dice_mean']:.4f}, "
                     f"SDlogJ {row['sdlogj']:.3f}, {row['seconds']:.1f} s")
    return rows


def warm_up(pair, threads) -> None:
    """One tiny SyN run so that no point's time includes compilation."""
    from parareg.registration.syn import SymmetricDiffeomorphicRegistration

    fixed, _, moving, _ = _load(pair)
    SymmetricDiffeomorphicRegistration("cc", levels=((4, 1.0, 2),), num_threads=threads) \
        .optimize(fixed, moving)


# ----------------------------------------------------------------------------------------------
# the peers, through the benchmark harness


def run_peers(dim, the_pairs, peers, out: Path, threads) -> list[dict]:
    """The peers' rows (cached: the study in ``out/peers_<dim>`` resumes)."""
    from parareg import bench
    from parareg.bench.results import read_csv

    if not peers:
        return []
    folder = out / f"peers_{dim}"
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "pairs.csv"
    columns = ("fixed_image", "fixed_labels", "moving_image", "moving_labels")
    csv_path.write_text(",".join(columns) + "\n" + "".join(
        ",".join(str(p[c]) for c in columns) + "\n" for p in the_pairs), encoding="utf-8")
    bench.run(pairs_csv=csv_path, out=folder, methods=list(peers), workers=1,
              threads_per_worker=1, task_threads=threads, qc=False, report=False)
    names = {(Path(p["fixed_image"]).name, Path(p["moving_image"]).name): p["name"]
             for p in the_pairs}
    rows = []
    for row in read_csv(folder / "results.csv"):
        key = next((v for (f, m), v in names.items()
                    if f.startswith(row["fixed"]) and m.startswith(row["moving"])), None)
        if row["status"] == "ok" and key is not None and row["method"] in peers:
            rows.append({"dim": dim, "pair": key, "method": row["method"],
                         **{k: row.get(k) for k in ("dice_mean", "hd95_mean", "sdlogj",
                                                    "jacobian_min", "jacobian_max",
                                                    "folded_percent", "seconds")}})
    return rows


# ----------------------------------------------------------------------------------------------
# summary, preset choice, plot


def summarize(rows) -> dict:
    """``{(dim, method): mean of every score over the pairs}``, methods with every pair only."""
    pairs_of = {}
    for r in rows:
        pairs_of.setdefault(r["dim"], set()).add(r["pair"])
    groups = {}
    for r in rows:
        groups.setdefault((r["dim"], r["method"]), []).append(r)
    summary = {}
    for (dim, method), mine in groups.items():
        if {r["pair"] for r in mine} != pairs_of[dim]:
            continue  # a peer that failed on a pair: not comparable
        entry = {k: float(np.mean([r[k] for r in mine if r[k] is not None]))
                 for k in ("dice_mean", "hd95_mean", "sdlogj", "seconds")}
        entry["jacobian_min"] = float(min(r["jacobian_min"] for r in mine))
        entry["jacobian_max"] = float(max(r["jacobian_max"] for r in mine))
        entry["options"] = mine[0].get("options")
        entry["pairs"] = len(mine)
        summary[(dim, method)] = entry
    return summary


def dominates(point, peer) -> bool:
    return point["dice_mean"] >= peer["dice_mean"] and point["sdlogj"] <= peer["sdlogj"]


def pareto_front(points: dict) -> list[str]:
    """Names of the points no other point beats on both axes, by increasing SDlogJ."""
    front = [n for n, p in points.items()
             if not any(q["dice_mean"] > p["dice_mean"] and q["sdlogj"] < p["sdlogj"]
                        for q in points.values())]
    return sorted(front, key=lambda n: points[n]["sdlogj"])


def choose(summary, dims, peers) -> dict:
    """Sweep points that dominate every peer (default) and the most accurate one with SDlogJ <=
    greedy's (accurate), in every dimension at once; with the shortfall when none does."""
    sweep_names = sorted({m for (d, m) in summary if m.startswith("sweep")})
    both = [n for n in sweep_names if all((d, n) in summary for d in dims)]
    result = {}
    peer_points = {d: {p: summary[(d, p)] for p in peers if (d, p) in summary} for d in dims}
    default = [n for n in both if all(dominates(summary[(d, n)], q)
                                      for d in dims for q in peer_points[d].values())]
    result["default_candidates"] = sorted(
        default, key=lambda n: -min(summary[(d, n)]["dice_mean"] for d in dims))
    gaps = {}
    for n in both:  # per point, the worst shortfall against any peer on either axis
        gap = 0.0
        for d in dims:
            for q in peer_points[d].values():
                gap = max(gap, q["dice_mean"] - summary[(d, n)]["dice_mean"],
                          summary[(d, n)]["sdlogj"] - q["sdlogj"])
        gaps[n] = gap
    if gaps:
        result["closest_to_dominating"] = min(gaps, key=gaps.get)
        result["closest_gap"] = gaps[result["closest_to_dominating"]]
    accurate = [n for n in both if all("greedy" in peer_points[d] and summary[(d, n)]["sdlogj"]
                                       <= peer_points[d]["greedy"]["sdlogj"] for d in dims)]
    if accurate:
        result["accurate"] = max(accurate, key=lambda n: np.mean(
            [summary[(d, n)]["dice_mean"] for d in dims]))
    return result


def plot(path: Path, dim: str, summary, title: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    mine = {m: s for (d, m), s in summary.items() if d == dim}
    sweep = {m: s for m, s in mine.items() if m.startswith("sweep")}
    for gradient, colour in (("center", "0.6"), ("exact", "0.15")):
        mine_g = {n: s for n, s in sweep.items()
                  if s["options"].get("gradient", "center") == gradient}
        if not mine_g:
            continue
        ax.scatter([s["sdlogj"] for s in mine_g.values()],
                   [s["dice_mean"] for s in mine_g.values()], marker="o", color=colour, s=22)
        front = pareto_front(mine_g)
        ax.plot([mine_g[n]["sdlogj"] for n in front], [mine_g[n]["dice_mean"] for n in front],
                "-", color=colour, lw=1, label=f"parareg, CC gradient {gradient!r}")
    colours = {"greedy": "tab:red", "ants": "tab:blue", "ants:syn-quick": "tab:cyan",
               "dipy": "tab:green"}
    for name, colour in colours.items():
        if name in mine:
            ax.scatter([mine[name]["sdlogj"]], [mine[name]["dice_mean"]], marker="D", s=60,
                       color=colour, edgecolor="k", label=name, zorder=3)
    for name, colour in zip(PRESETS, ("gold", "darkorange", "magenta")):
        key = f"preset:{name}"
        if key in mine:
            ax.scatter([mine[key]["sdlogj"]], [mine[key]["dice_mean"]], marker="*", s=160,
                       color=colour, edgecolor="k", zorder=4, label=f"parareg {name}")
    ax.set_xlabel("SDlogJ over the fixed foreground (lower: smoother)")
    ax.set_ylabel("mean Dice (higher: more accurate)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _cells(s) -> list[str]:
    return [f"{s['dice_mean']:.4f}", f"{s['sdlogj']:.3f}", f"{s['hd95_mean']:.2f}",
            f"{s['jacobian_min']:.2f} to {s['jacobian_max']:.2f}", f"{s['seconds']:.1f}"]


def markdown(report) -> str:
    summary = {(d, m): s for d, m, s in report["summary"]}
    lines = [f"# Accuracy vs regularity (`benchmarks/pareto.py`), {report['machine']['date']}",
             "", "Sweep points: `sweep <CC gradient> u<update sigma, mm> f<field sigma, mm> s<step, voxels>`, "
             f"default levels. {report['settings']['threads']} threads; parareg time: SyN stage + resampling "
             "(in process, after the cached affine); peers: the whole method (bench harness, "
             "own process, own affine). Means over the pairs of each dimension.", ""]
    headers = ["method", "Dice", "SDlogJ", "HD95 (mm)", "det J range", "time (s)"]
    for dim in report["settings"]["dims"]:
        names = [m for (d, m) in summary if d == dim]
        peers = [m for m in names if m in PEERS]
        presets = [m for m in names if m.startswith("preset:")]
        lines += [f"## {dim.upper()}: {', '.join(report['pairs'][dim])}", ""]
        rows = [[m] + _cells(summary[(dim, m)]) for m in peers + presets]
        lines += [_common.markdown_table(headers, rows), ""]
        sweep = {m: summary[(dim, m)] for m in names if m.startswith("sweep")}
        front = pareto_front(sweep)
        rows = [[m] + _cells(sweep[m]) for m in front]
        lines += ["Pareto front of the sweep:", "", _common.markdown_table(headers, rows), ""]
        for p in presets:
            beaten = [q for q in peers if dominates(summary[(dim, p)], summary[(dim, q)])]
            lines.append(f"- {p} dominates (Dice >= and SDlogJ <=): {', '.join(beaten) or 'none'}")
        lines.append("")
    lines += ["## Preset choice (sweep points, both dimensions at once)", "",
              "```", json.dumps(report["choice"], indent=1), "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------


def _get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for every file")
    parser.add_argument("--quick", action="store_true",
                        help="one 2D pair, two short settings, no peers: checks that it runs")
    parser.add_argument("--threads", type=int, default=2, help="threads per registration")
    parser.add_argument("--pairs-2d", type=int, default=6, help="Mindboggle pairs (1-6)")
    parser.add_argument("--pairs-3d", type=int, default=2, help="IXI pairs (1-3)")
    parser.add_argument("--dims", default="2d,3d", help="comma-separated: 2d, 3d")
    parser.add_argument("--cached-only", action="store_true",
                        help="report the parareg points already computed, compute none")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the cache of parareg results (the peers' studies resume)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="comma-separated bench method names ('' for none)")
    return parser


def main(argv=None) -> int:
    parser = _get_parser()
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    for dim, most in (("2d", len(MINDBOGGLE)), ("3d", len(IXI))):
        n = getattr(args, f"pairs_{dim}")
        if not 1 <= n <= most:
            parser.error(f"--pairs-{dim} must be 1 to {most}, got {n}")
    if args.fresh and args.cached_only:
        parser.error("--fresh and --cached-only exclude each other: give one")
    dims = [d.strip() for d in args.dims.split(",") if d.strip()]
    if not dims or set(dims) - {"2d", "3d"}:
        parser.error(f"--dims must list 2d and/or 3d, got {args.dims!r}")
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    if set(peers) - set(PEERS):
        parser.error(f"--peers must be among {', '.join(PEERS)}, got {args.peers!r}")
    n_pairs = {"2d": args.pairs_2d, "3d": args.pairs_3d}
    if args.quick:
        dims, peers, n_pairs = ["2d"], [], {"2d": 1}
    from parareg.registration.pipeline import SYN_PRESETS, preset_options

    args.out.mkdir(parents=True, exist_ok=True)
    revision = _common.git_revision(REPO / "src" / "parareg" / "__init__.py")

    rows, used = [], {}
    for dim in dims:
        the_pairs = pairs(dim, n_pairs[dim])
        points = [(_name(s), dict(s, levels=QUICK_LEVELS) if args.quick else s)
                  for s in settings_grid(args.quick, dim)]
        if not args.quick:
            points += [(f"preset:{name}", preset_options(name, 2 if dim == "2d" else 3))
                       for name in PRESETS]
        missing = [str(p[k]) for p in the_pairs for k in ("fixed_image", "moving_image")
                   if not Path(p[k]).is_file()]
        if missing:
            parser.error(f"no such image {missing[0]} (is ../shared/data there?)")
        used[dim] = [p["name"] for p in the_pairs]
        cache = Cache(args.out / f"cache_{dim}.json", revision.get("commit", "unknown"))
        if args.fresh:
            cache.data = {}
        rows += sweep(dim, the_pairs, points, cache, args.threads, _common.log,
                      warm=not args.quick, cached_only=args.cached_only)
        rows += run_peers(dim, the_pairs, peers, args.out, args.threads)
    summary = summarize(rows)
    report = {
        "settings": {"threads": args.threads, "dims": dims, "quick": args.quick,
                     "grid": GRID if not args.quick else QUICK_GRID, "peers": peers,
                     "cached_only": args.cached_only,
                     "presets": {n: SYN_PRESETS[n] for n in PRESETS}},
        "machine": _common.machine_info(),
        "versions": _common.package_versions(VERSIONS),
        "revision": revision,
        "pairs": used,
        "rows": rows,
        "summary": [[d, m, s] for (d, m), s in summary.items()],
        "choice": choose(summary, dims, peers),
    }
    _common.write_json(args.out / "pareto.json", report)
    for dim in dims:
        plot(args.out / f"pareto_{dim}.png", dim, summary,
             f"{dim.upper()}: Dice vs SDlogJ, mean of {len(used[dim])} pairs")
    text = markdown(report)
    (args.out / "pareto.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
