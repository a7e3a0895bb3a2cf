"""A/B of masked affine registration: two source trees, interleaved runs, minima.

Each repeat runs, once per ``--src`` tree (alternating, so load from elsewhere
hits both alike), a child process that loads the pair and its masks, runs
``parareg.affine_registration(fixed, moving, fixed_mask=..., moving_mask=...)``
once untimed (numba compilation, first touch), then ``--inner`` timed times,
and reports the fastest. The masks are the non-zero voxels of the label maps
(or of the images, without ``--fixed-mask``/``--moving-mask``).

What it shows: before the explicit prepared pair
(:meth:`parareg.AffineRegistration.prepare`) every stage of the pipeline
rebuilt the pyramids and metric states when masks were given.

Run::

    python benchmarks/affine_masks.py --src main=/work/main/src --src new=src \\
        FIXED MOVING --fixed-mask FIXED_LABELS --moving-mask MOVING_LABELS --repeats 5

Writes ``affine_masks.json`` and ``affine_masks.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, machine_info, markdown_table, write_json  # noqa: E402

#: the child: prints {"seconds": [...], "matrix": [...]} as one JSON line
CHILD = r"""
import json, sys, time
import parareg
fixed_path, moving_path, fixed_mask_path, moving_mask_path, metric, threads, inner = sys.argv[1:]
fixed, moving = parareg.load(fixed_path), parareg.load(moving_path)
fixed_mask = parareg.load(fixed_mask_path or fixed_path).data != 0
moving_mask = parareg.load(moving_mask_path or moving_path).data != 0
def run():
    return parareg.affine_registration(fixed, moving, metric=metric, fixed_mask=fixed_mask,
                                       moving_mask=moving_mask, num_threads=int(threads))
run()
seconds = []
for _ in range(int(inner)):
    t0 = time.perf_counter()
    result = run()
    seconds.append(time.perf_counter() - t0)
print(json.dumps({"seconds": seconds, "matrix": result.matrix.tolist()}))
"""


def one_run(src: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    cmd = [sys.executable, "-c", CHILD, str(args.fixed), str(args.moving),
           args.fixed_mask or "", args.moving_mask or "", args.metric, str(args.threads),
           str(args.inner)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fixed")
    parser.add_argument("moving")
    parser.add_argument("--fixed-mask", default=None)
    parser.add_argument("--moving-mask", default=None)
    parser.add_argument("--src", action="append", default=[], metavar="NAME=DIR",
                        help="a source tree to put on PYTHONPATH (repeat for A and B)")
    parser.add_argument("--metric", default="mi")
    parser.add_argument("--repeats", type=int, default=3, help="child processes per tree")
    parser.add_argument("--inner", type=int, default=2, help="timed runs per child")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" /
                                             "affine_masks"))
    args = parser.parse_args(argv)
    if not args.src:
        parser.error("give --src NAME=DIR (twice for an A/B)")
    sources = dict(item.split("=", 1) for item in args.src)
    runs = {name: [] for name in sources}
    for repeat in range(args.repeats):
        for name, src in sources.items():
            run = one_run(src, args)
            log(f"repeat {repeat + 1} {name}: {[round(s, 3) for s in run['seconds']]}")
            runs[name].append(run)
    minima = {name: min(min(r["seconds"]) for r in rs) for name, rs in runs.items()}
    matrices = {name: rs[-1]["matrix"] for name, rs in runs.items()}
    identical = len({json.dumps(m) for m in matrices.values()}) == 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "affine_masks.json",
               {"machine": machine_info(), "fixed": args.fixed, "moving": args.moving,
                "fixed_mask": args.fixed_mask, "moving_mask": args.moving_mask,
                "metric": args.metric, "threads": args.threads, "sources": sources,
                "runs": runs, "minima_s": minima, "identical_matrices": identical})
    text = markdown_table(["tree", "masked affine_registration (min)", "runs"],
                          [[name, f"{minima[name]:.3f} s",
                            " ".join(f"{s:.3f}" for r in rs for s in r["seconds"])]
                           for name, rs in runs.items()])
    text += f"\nmatrices bit-identical across trees: {identical}\n"
    (out / "affine_masks.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
