"""A/B of the write phase of ``parareg register``: two source trees, interleaved runs, minima.

Each repeat runs ``parareg register FIXED MOVING -o OUT/o_`` once with each
``--src`` tree on ``PYTHONPATH`` (alternating, so load from elsewhere hits
both alike) and reads the summary's ``write`` line (outputs written, plus the
numbers the summary needs) and ``total``, and the wall time of the process.

Run::

    python benchmarks/write_phase.py --src main=/work/main/src --src new=src \\
        FIXED MOVING --repeats 5 --preset fast

Writes ``write_phase.json`` and ``write_phase.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, machine_info, markdown_table, write_json  # noqa: E402


def one_run(src: str, fixed, moving, folder: Path, *, preset: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    cmd = [sys.executable, "-m", "parareg.cli", "register", str(fixed), str(moving), "-o",
           str(folder / "o_"), "--preset", preset, "--threads", str(threads)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    stages = dict(re.findall(r"^\s+(affine|syn|warp|write|total)\s+([\d.]+) s", done.stdout,
                             flags=re.M))
    return {"wall_s": wall, **{f"{k}_s": float(v) for k, v in stages.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixed")
    parser.add_argument("moving")
    parser.add_argument("--src", action="append", required=True, metavar="NAME=DIR",
                        help="a source tree to put on PYTHONPATH (repeat for A and B)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" /
                                             "write_phase"))
    args = parser.parse_args(argv)
    sources = dict(item.split("=", 1) for item in args.src)
    runs = {name: [] for name in sources}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, src in sources.items():
                folder = Path(tmp) / name
                folder.mkdir(exist_ok=True)
                run = one_run(src, args.fixed, args.moving, folder, preset=args.preset,
                              threads=args.threads)
                log(f"repeat {repeat + 1} {name}: {run}")
                runs[name].append(run)
    keys = ("write_s", "total_s", "wall_s")
    minima = {name: {k: min(r[k] for r in rs) for k in keys} for name, rs in runs.items()}
    study = {"machine": machine_info(), "fixed": args.fixed, "moving": args.moving,
             "preset": args.preset, "threads": args.threads, "sources": sources,
             "runs": runs, "minima": minima}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "write_phase.json", study)
    text = markdown_table(["tree", "write (min)", "total (min)", "process wall (min)"],
                          [[name, f"{m['write_s']:.2f} s", f"{m['total_s']:.2f} s",
                            f"{m['wall_s']:.2f} s"] for name, m in minima.items()]) + "\n"
    (out / "write_phase.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
