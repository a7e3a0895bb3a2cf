"""Paired comparison of one method against peers in a ``parareg bench`` study.

``python benchmarks/compare.py STUDY_DIR [--method parareg:syn]`` prints, per peer, the pairs both
ran, the median time ratio (method / peer, median of per-pair ratios), the mean Dice difference,
how often the method's Dice is at least the peer's, and the median peak-memory ratio.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path


def load(study: Path) -> dict:
    """``{(fixed, moving): {method: row}}`` of the successful rows of ``results.csv``."""
    by_pair: dict = {}
    with open(study / "results.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["status"] == "ok":
                by_pair.setdefault((row["fixed"], row["moving"]), {})[row["method"]] = row
    return by_pair


def compare(by_pair: dict, method: str) -> list[str]:
    """Markdown rows comparing ``method`` with every other method of the study."""
    peers = sorted({m for rows in by_pair.values() for m in rows} - {method, "identity"})
    lines = ["| peer | shared pairs | time ratio (median) | Dice diff (mean) | method ≥ peer "
             "| peak memory ratio |", "| :--- | ---: | ---: | ---: | ---: | ---: |"]
    for peer in peers:
        shared = [rows for rows in by_pair.values() if method in rows and peer in rows]
        if not shared:
            continue
        time = statistics.median(float(r[method]["seconds"]) / float(r[peer]["seconds"])
                                 for r in shared)
        dice = [float(r[method]["dice_mean"]) - float(r[peer]["dice_mean"]) for r in shared]
        memory = statistics.median(float(r[method]["peak_rss_mb"]) / float(r[peer]["peak_rss_mb"])
                                   for r in shared)
        wins = sum(d >= 0 for d in dice)
        lines.append(f"| {peer} | {len(shared)} | {time:.3f} | {statistics.mean(dice):+.4f} "
                     f"| {wins}/{len(shared)} | {memory:.3f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a parareg bench --out folder")
    parser.add_argument("--method", default="parareg:syn")
    args = parser.parse_args(argv)
    if not (args.study / "results.csv").is_file():
        print(f"compare: no results.csv in {args.study}", file=sys.stderr)
        return 2
    print("\n".join(compare(load(args.study), args.method)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
