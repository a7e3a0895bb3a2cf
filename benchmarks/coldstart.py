"""What a new user waits for: ``parareg register`` cold and warm, greedy, compiling, importing.

For each pair (by default the IXI 2 mm pair and the 1 mm brain pair) the
script records, in one run:

* **cold**: wall time of the whole ``parareg register FIXED MOVING -o ...``
  command (a fresh ``python`` process, as the console script runs it) with an
  empty ``NUMBA_CACHE_DIR``, so every kernel compiles. The command runs under
  a small wrapper that records every numba compilation with
  :class:`parareg.compilation.CompileWatch` (microseconds per event), which
  gives the **compile time per kernel**, sorted (the kernels compiled by the
  command's own process; on a machine of 2 cores or more the SyN kernels
  mostly compile in its helper process, see
  :class:`parareg.compilation.compile_ahead`);
* **cold, no helper**: the same with ``PARAREG_COMPILE_AHEAD=0`` (every
  kernel compiles in the command's process), interleaved with the cold runs,
  so the helper's gain is measured on the same machine state (skip with
  ``--no-cold-without-helper``);
* **warm**: the same command again with the cache that the cold run filled
  (``--repeats`` times; minimum and median);
* **greedy**: affine + deformable registration with picsl-greedy exactly as
  the benchmark harness runs it (:func:`parareg.bench.peers.greedy_deformable`:
  greedy reads the NIfTI files and writes its ``.mat`` and warp itself, so
  its time includes its file I/O), ``--repeats`` times in a fresh process
  each;

Every process finds parareg's bytecode compiled (once, untimed, into a
scratch ``PYTHONPYCACHEPREFIX``), as after a pip install. And once: the wall
time of ``python -c "import parareg"`` (median of
``--import-repeats``, next to ``python -c pass``), the thread count, the
package versions and the machine.

Usage::

    python benchmarks/coldstart.py --out /tmp/coldstart                 # both pairs
    python benchmarks/coldstart.py --out /tmp/cs --pairs ixi2mm --repeats 1
    python benchmarks/coldstart.py --out /tmp/cs --pairs FIXED:MOVING --no-greedy \\
        --register-args="--transform rigid"                              # a quick check

Writes ``coldstart.json`` (settings, machine, every raw time and compilation)
and ``coldstart.md`` (the tables, also printed) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402 - a sibling module, importable once its folder is on the path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: name -> (fixed, moving), as the issue names them
PAIRS = {
    "ixi2mm": (DATA / "ixi_2mm" / "t1" / "IXI012-HH-1211-T1_ds.nii.gz",
               DATA / "ixi_2mm" / "t1" / "IXI013-HH-1212-T1_ds.nii.gz"),
    "brain1mm": (DATA / "brain_1mm" / "vxm_t1.nii.gz",
                 DATA / "brain_1mm" / "fsaverage_brain.nii.gz"),
}
#: packages whose versions the report records
VERSIONS = ("numpy", "scipy", "numba", "llvmlite", "nibabel", "parareg", "picsl_greedy")
#: the issue's targets on a 2-core machine
TARGET_COLD_VS_GREEDY = 1.0
TARGET_WARM_VS_GREEDY = 0.5
TARGET_IMPORT_SECONDS = 0.3

#: runs ``parareg ARGS`` in this process under a CompileWatch; writes the records as JSON,
#: each top-level one with ``llvm_seconds``: the part of its compile spent in LLVM (numba's
#: ``llvm_lock`` timer; the rest is numba's own Python: typing, inlining, lowering)
COLD_WRAPPER = """\
import dataclasses, json, sys
from parareg.compilation import CompileWatch, kernel_dispatchers
from parareg.cli.main import main
with CompileWatch() as watch:
    code = main(sys.argv[2:])
llvm = {}
for d in kernel_dispatchers():
    name = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
    llvm[name] = sum((o.metadata or {}).get("timers", {}).get("llvm_lock", 0.0)
                     for o in d.overloads.values())
records = [dict(dataclasses.asdict(r), llvm_seconds=llvm.get(r.name) if r.depth == 0 else None)
           for r in watch.records]
with open(sys.argv[1], "w") as f:
    json.dump(records, f)
sys.exit(code)
"""

#: greedy affine + deformable on one pair, as the bench harness runs it; prints its seconds
GREEDY_CHILD = """\
import json, sys, tempfile
from pathlib import Path
import numpy as np
import parareg
from parareg.bench.case import Case
from parareg.bench.peers import greedy_deformable
fixed_path, moving_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
fixed, moving = parareg.load(fixed_path), parareg.load(moving_path)
with tempfile.TemporaryDirectory() as work:
    # a label map for greedy's (untimed) nearest-neighbour resampling step: intensity quartiles
    labels = moving.with_data(np.digitize(moving.data, np.percentile(moving.data, [25, 50, 75]))
                              .astype(np.int32))
    labels_path = parareg.save(labels, Path(work) / "labels.nii.gz")
    case = Case(fixed=fixed, moving=moving, moving_labels=labels, fixed_path=Path(fixed_path),
                moving_path=Path(moving_path), moving_labels_path=Path(labels_path),
                workdir=Path(work) / "greedy", num_threads=threads)
    case.workdir.mkdir()
    out = greedy_deformable(case)
print(json.dumps({"seconds": out.info["registration_seconds"]}))
"""


#: where the timed processes keep parareg's bytecode (set by :func:`main`): compiled once,
#: untimed, before the first run, as a pip install writes its ``.pyc`` files; the source
#: tree stays clean and a ``PYTHONDONTWRITEBYTECODE`` environment cannot make every run
#: recompile ~80 modules
_PYCACHE: list = []


def _env(cache=None, **extra) -> dict:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src")]
                                        + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if _PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(_PYCACHE[0])
    env.pop("NUMBA_CACHE_DIR", None)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    return env


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv, env, cpu=None) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds of the command; its CPU seconds (its children's too) appended to ``cpu``."""
    t0, c0 = time.perf_counter(), _cpu_children()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if cpu is not None:
        cpu.append(_cpu_children() - c0)
    if result.returncode != 0:
        raise SystemExit(f"coldstart: {shlex.join(map(str, argv))} failed "
                         f"({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds, result


def _register_argv(fixed, moving, out_prefix, threads, extra) -> list[str]:
    return ["register", str(fixed), str(moving), "-o", str(out_prefix), "--threads",
            str(threads), "-q", *extra]


def run_pair(name, fixed, moving, args, scratch: Path) -> dict:
    """Cold (with compile records), warm and greedy times of one pair."""
    extra = shlex.split(args.register_args)
    row = {"pair": name, "fixed": str(fixed), "moving": str(moving), "cold_s": [],
           "cold_cpu_s": [], "cold_alone_s": [], "cold_alone_cpu_s": [], "warm_s": [],
           "warm_cpu_s": [], "greedy_s": [], "greedy_process_s": [], "compilations": []}
    cache = None
    for r in range(args.cold_repeats):
        if not args.no_cold_without_helper:  # every kernel in the command's own process
            alone = Path(tempfile.mkdtemp(prefix=f"cache-{name}-{r}-alone-", dir=scratch))
            argv = [sys.executable, "-m", "parareg.cli",
                    *_register_argv(fixed, moving, scratch / f"{name}_alone{r}_", args.threads,
                                    extra)]
            seconds, _ = _timed(argv, _env(alone, PARAREG_COMPILE_AHEAD="0"),
                                row["cold_alone_cpu_s"])
            row["cold_alone_s"].append(seconds)
            _common.log(f"{name}: cold, no helper {seconds:.1f} s")
        cache = Path(tempfile.mkdtemp(prefix=f"cache-{name}-{r}-", dir=scratch))
        records = scratch / f"compile-{name}-{r}.json"
        argv = [sys.executable, "-c", COLD_WRAPPER, str(records),
                *_register_argv(fixed, moving, scratch / f"{name}_cold{r}_", args.threads,
                                extra)]
        seconds, _ = _timed(argv, _env(cache), row["cold_cpu_s"])
        row["cold_s"].append(seconds)
        row["compilations"].append(json.loads(records.read_text()))
        _common.log(f"{name}: cold {seconds:.1f} s")
    for r in range(args.repeats):
        argv = [sys.executable, "-m", "parareg.cli",
                *_register_argv(fixed, moving, scratch / f"{name}_warm{r}_", args.threads, extra)]
        seconds, _ = _timed(argv, _env(cache), row["warm_cpu_s"])
        row["warm_s"].append(seconds)
        _common.log(f"{name}: warm {seconds:.1f} s")
        if not args.no_greedy:
            argv = [sys.executable, "-c", GREEDY_CHILD, str(fixed), str(moving),
                    str(args.threads)]
            seconds, result = _timed(argv, _env(cache))
            row["greedy_s"].append(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])
            row["greedy_process_s"].append(seconds)
            _common.log(f"{name}: greedy {row['greedy_s'][-1]:.1f} s")
    return row


def import_times(repeats: int) -> dict:
    """Wall time of ``python -c "import parareg"`` and of ``python -c pass``, interleaved."""
    times = {"import parareg": [], "pass": []}
    for _ in range(repeats):
        for statement in times:
            seconds, _ = _timed([sys.executable, "-c", statement], _env())
            times[statement].append(seconds)
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "times_s": v}
            for k, v in times.items()}


def kernel_table(compilations) -> list[tuple[str, int, float]]:
    """``(kernel, specialisations, seconds)`` of the top-level compilations, slowest first."""
    seconds, count = defaultdict(float), defaultdict(int)
    for record in compilations:
        if record["depth"] == 0:
            seconds[record["name"]] += record["seconds"]
            count[record["name"]] += 1
    return sorted(((k, count[k], seconds[k]) for k in seconds), key=lambda r: -r[2])


def llvm_seconds(compilations) -> dict:
    """Kernel -> the seconds of its compile spent in LLVM (records of the cold wrapper)."""
    return {r["name"]: r["llvm_seconds"] for r in compilations
            if r["depth"] == 0 and r.get("llvm_seconds") is not None}


def _fmt(values) -> str:
    return f"{min(values):.2f}" if values else "–"


def markdown(report) -> str:
    threads = report["settings"]["threads"]
    versions = ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
    machine = report["machine"]
    lines = [f"## Cold start ({threads} threads)", "",
             f"{machine.get('cpu_model')}, {machine.get('usable_cpus')} usable CPUs, load "
             f"{machine.get('load_average_at_start')}; {versions}", ""]
    rows = []
    for row in report["pairs"]:
        cold, warm, greedy = min(row["cold_s"]), min(row["warm_s"]), row["greedy_s"]
        g = min(greedy) if greedy else float("nan")
        compile_s = sum(s for *_, s in kernel_table(row["compilations"][0]))
        rows.append([row["pair"], f"{cold:.2f}", _fmt(row.get("cold_alone_s")), f"{warm:.2f}",
                     f"{statistics.median(row['warm_s']):.2f}", _fmt(greedy),
                     f"{cold / g:.2f}" if greedy else "–", f"{warm / g:.2f}" if greedy else "–",
                     f"{compile_s:.1f}", str(len(kernel_table(row["compilations"][0])))])
    lines.append(_common.markdown_table(
        ["pair", "cold s", "cold s, no helper", "warm s (min)", "warm s (median)", "greedy s",
         "cold/greedy", "warm/greedy", "compile s (own process)", "kernels"], rows))
    lines += ["", "CPU seconds of the whole process tree (minimum of repeats): "
              + "; ".join(f"{row['pair']}: cold {_fmt(row.get('cold_cpu_s'))}, cold no helper "
                          f"{_fmt(row.get('cold_alone_cpu_s'))}, warm {_fmt(row.get('warm_cpu_s'))}"
                          for row in report["pairs"])]
    lines += ["", f"targets: cold/greedy <= {TARGET_COLD_VS_GREEDY}, warm/greedy <= "
                  f"{TARGET_WARM_VS_GREEDY}, import <= {TARGET_IMPORT_SECONDS} s. "
                  "Times are whole processes (minimum of repeats); greedy's is its affine + "
                  "deformable commands with their file I/O, as the bench harness times it.", ""]
    imp = report["import"]
    lines.append(f"`python -c \"import parareg\"`: {imp['import parareg']['median_s']:.3f} s "
                 f"median ({imp['pass']['median_s']:.3f} s for `python -c pass`)")
    for row in report["pairs"]:
        table = kernel_table(row["compilations"][0])
        lines += ["", f"### Compile time per kernel, {row['pair']} (cold run, top level, "
                      f"inclusive of the functions each one calls)", ""]
        llvm = llvm_seconds(row["compilations"][0])
        lines.append(_common.markdown_table(
            ["kernel", "specialisations", "s", "of which LLVM s"],
            [[k, n, f"{s:.2f}", f"{llvm[k]:.2f}" if k in llvm else "–"]
             for k, n, s in table]))
        known = [(s, llvm[k]) for k, _, s in table if k in llvm]
        if known:
            total, in_llvm = sum(s for s, _ in known), sum(llvm for _, llvm in known)
            lines += ["", f"{total:.1f} s of compiling in this process: {in_llvm:.1f} s in LLVM, "
                          f"{total - in_llvm:.1f} s in numba's own Python (typing, inlining, "
                          "lowering)"]
    return "\n".join(lines) + "\n"


def _get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the JSON and MD")
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS),
                        help=f"pair names ({', '.join(PAIRS)}) or FIXED:MOVING paths")
    parser.add_argument("--repeats", type=int, default=3,
                        help="warm parareg and greedy runs per pair (default 3)")
    parser.add_argument("--cold-repeats", type=int, default=1,
                        help="cold runs per pair, each with a fresh empty cache (default 1)")
    parser.add_argument("--import-repeats", type=int, default=9,
                        help="'import parareg' timings (default 9)")
    parser.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    parser.add_argument("--no-greedy", action="store_true", help="skip greedy")
    parser.add_argument("--no-cold-without-helper", action="store_true",
                        help="skip the cold runs with PARAREG_COMPILE_AHEAD=0")
    parser.add_argument("--register-args", default="",
                        help="extra 'parareg register' arguments, e.g. '--preset fast'")
    return parser


def _pair(text):
    if text in PAIRS:
        return text, *PAIRS[text]
    fixed, sep, moving = text.partition(":")
    if not sep:
        raise SystemExit(f"--pairs: {text!r} is neither one of {sorted(PAIRS)} nor FIXED:MOVING")
    return Path(fixed).stem.split(".")[0], Path(fixed), Path(moving)


def main(argv=None) -> int:
    args = _get_parser().parse_args(argv)
    for name in ("repeats", "cold_repeats", "import_repeats", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    pairs = [_pair(p) for p in args.pairs]
    for _, fixed, moving in pairs:
        for path in (fixed, moving):
            if not path.is_file():
                raise SystemExit(f"coldstart: no such image {str(path)!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items()},
              "machine": _common.machine_info(), "git": _common.git_revision(__file__),
              "versions": _common.package_versions(VERSIONS)}
    with tempfile.TemporaryDirectory(prefix="coldstart-") as scratch:
        _PYCACHE[:] = [Path(scratch) / "pyc"]
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "parareg")],
                       env=_env(), check=True, stdout=subprocess.DEVNULL)
        report["import"] = import_times(args.import_repeats)
        report["pairs"] = [run_pair(name, fixed, moving, args, Path(scratch))
                           for name, fixed, moving in pairs]
    _common.write_json(args.out / "coldstart.json", report)
    text = markdown(report)
    (args.out / "coldstart.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
