"""``parareg warmup``, the compile notice and the numba cache, in fresh processes.

Every test runs ``python`` subprocesses with ``NUMBA_CACHE_DIR`` set to a
temporary folder, so "cold" really means an empty cache. The images are tiny
2D ones; the compiling still takes a while (these are the slow tests).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import parareg
from parareg import _warmup_jobs
from parareg.cli.main import main

SRC = Path(parareg.__file__).resolve().parents[1]
NOTICE = "compiling kernels for this CPU, once"

#: run a CLI command in this process and print how many parareg functions compiled
COUNT_COMPILES = """\
import sys
from parareg.compilation import CompileWatch
from parareg.cli.main import main
with CompileWatch() as watch:
    code = main(sys.argv[1:])
print("COMPILED", len(watch.records), "EXIT", code)
"""


def _env(cache, *, src=SRC, **extra):
    env = dict(os.environ)
    env.pop("NUMBA_CACHE_DIR", None)
    env.update(PYTHONPATH=str(src), PARAREG_NUM_THREADS="1", **extra)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    return env


def _python(args, env, *, prefix=()):
    return subprocess.run([*prefix, sys.executable, *args], env=env, capture_output=True,
                          text=True, timeout=900)


def _images(folder: Path):
    """A tiny 2D fixed/moving pair as NIfTI files (the warmup's own synthetic pair)."""
    fixed, moving = _warmup_jobs._pair(2)
    return (_warmup_jobs._write(fixed, folder / "fixed.nii.gz"),
            _warmup_jobs._write(moving, folder / "moving.nii.gz"))


def _compiled(result) -> int:
    assert result.returncode == 0, result.stderr
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("COMPILED")][-1]
    assert line.endswith("EXIT 0"), result.stdout + result.stderr
    return int(line.split()[1])


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache filled by ``parareg warmup --dims 2`` (one cold warmup for the module)."""
    cache = tmp_path_factory.mktemp("warm-cache")
    result = _python(["-m", "parareg.cli", "warmup", "--dims", "2", "--jobs", "2"], _env(cache))
    assert result.returncode == 0, result.stderr
    return cache, result


def test_warmup_reports_what_it_compiled(warm_cache):
    cache, result = warm_cache
    assert "syn-cc-2d" in result.stdout and "linear-2d" in result.stdout
    assert "compiled" in result.stdout and f"cache: {cache}" in result.stdout
    assert any(cache.rglob("*.nbi")), "warmup wrote no numba index file"
    assert NOTICE not in result.stderr


@pytest.mark.parametrize("argv", [
    ["register", "{f}", "{m}", "-o", "{o}/syn_", "--metric", "mi"],
    ["register", "{f}", "{m}", "-o", "{o}/cc_"],  # 2D: the preset's exact CC gradient
    ["register", "{f}", "{m}", "-i", "{f}", "{m}", "-o", "{o}/two_", "--weights", "1,0.5"],
    ["register", "{f}", "{m}", "-o", "{o}/aff_", "--transform", "affine", "--metric", "ssd"],
    ["apply", "-i", "{labels}", "-r", "{f}", "-o", "{o}/l.nii.gz", "-n", "nearest",
     "-t", "{mat}"],
])
def test_registration_after_warmup_compiles_nothing(warm_cache, tmp_path, argv):
    from parareg.io.itk import write_affine

    cache, _ = warm_cache
    f, m = _images(tmp_path)
    _, moving = _warmup_jobs._pair(2)
    labels = _warmup_jobs._write(_warmup_jobs._labels(moving, "int16"),
                                 tmp_path / "labels.nii.gz", dtype="int16")
    mat = write_affine([[1.0, 0.1, 2.0], [0.0, 1.0, -1.0], [0.0, 0.0, 1.0]],
                       tmp_path / "a.mat")
    argv = [a.format(f=f, m=m, o=tmp_path, labels=labels, mat=mat) for a in argv]
    result = _python(["-c", COUNT_COMPILES, *argv], _env(cache))
    assert _compiled(result) == 0
    assert NOTICE not in result.stderr  # warm: no notice


def test_warmup_again_compiles_nothing(warm_cache):
    cache, _ = warm_cache
    result = _python(["-m", "parareg.cli", "warmup", "--dims", "2", "--jobs", "1"], _env(cache))
    assert result.returncode == 0, result.stderr
    assert "nothing to compile" in result.stdout


def test_notice_once_when_compiling_and_silenced_by_quiet(tmp_path):
    f, m = _images(tmp_path)
    argv = ["-m", "parareg.cli", "register", f, m, "--transform", "rigid"]
    cold = _python([*argv, "-o", tmp_path / "a_"], _env(tmp_path / "cache"))
    assert cold.returncode == 0, cold.stderr
    assert cold.stderr.count(NOTICE) == 1
    assert "parareg warmup" in cold.stderr and re.search(r"~\d+ s", cold.stderr)
    warm = _python([*argv, "-o", tmp_path / "b_"], _env(tmp_path / "cache"))
    assert warm.returncode == 0 and NOTICE not in warm.stderr
    quiet = _python([*argv, "-o", tmp_path / "c_", "-q"], _env(tmp_path / "other-cache"))
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_two_processes_compile_the_same_kernels_at_once(tmp_path):
    f, m = _images(tmp_path)
    cache = tmp_path / "cache"
    argv = ["-m", "parareg.cli", "register", f, m, "--transform", "rigid", "-q", "-o"]
    procs = [subprocess.Popen([sys.executable, *argv, str(tmp_path / f"p{i}_")],
                              env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err
    again = _python(["-c", COUNT_COMPILES, "register", f, m, "--transform", "rigid", "-q",
                     "-o", str(tmp_path / "p2_")], _env(cache))
    assert _compiled(again) == 0


#: compile f for one argument type after a barrier, with numba's index write slowed down
RACE_CHILD = """\
import os, sys, time
import numpy as np
import parareg  # installs the cache lock
from numba.core import caching
slow = caching.IndexDataCacheFile._save_index
def save_index(self, overloads):
    time.sleep(1.5)  # widen numba's read-index / write-index window
    slow(self, overloads)
caching.IndexDataCacheFile._save_index = save_index
sys.path.insert(0, sys.argv[1])
import racy
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
value = racy.plus_one(np.arange(3, dtype=sys.argv[3]))
print(value.dtype, value.tolist())
"""

RACE_CHECK = """\
import sys
import numpy as np
import parareg
sys.path.insert(0, sys.argv[1])
import racy
a = racy.plus_one(np.arange(3, dtype="float32"))
b = racy.plus_one(np.arange(3, dtype="int16"))
assert a.dtype == np.float32 and a.tolist() == [1.0, 2.0, 3.0], a
assert b.dtype == np.int16 and b.tolist() == [1, 2, 3], b
stats = racy.plus_one.stats
print("HITS", sum(stats.cache_hits.values()), "MISSES", sum(stats.cache_misses.values()))
"""


def test_cache_lock_keeps_concurrent_signatures_apart(tmp_path):
    """Two processes caching different signatures of one function at once: both kept.

    Without the lock both processes read the empty index, pick data file 1
    and overwrite each other's entry, so the third process would recompile one
    signature or load the other's machine code.
    """
    (tmp_path / "mod").mkdir()
    (tmp_path / "mod" / "racy.py").write_text(textwrap.dedent("""\
        from numba import njit

        @njit(cache=True)
        def plus_one(x):
            return x + x.dtype.type(1)
        """))
    go = tmp_path / "go"
    env = _env(tmp_path / "cache")
    procs = [subprocess.Popen([sys.executable, "-c", RACE_CHILD, str(tmp_path / "mod"), str(go),
                               dtype], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for dtype in ("float32", "int16")]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    check = _python(["-c", RACE_CHECK, str(tmp_path / "mod")], env)
    assert check.returncode == 0, check.stderr
    assert "HITS 2 MISSES 0" in check.stdout


def _read_only_prefix(folder: Path):
    """How to run a command that sees ``folder`` read-only, or skip the test.

    Not root: ``chmod -R a-w`` is enough. As root (who writes through
    permission bits) the command runs in a private mount namespace where
    ``folder`` is bind-mounted read-only.
    """
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-m", "--propagation", "private", "true"],
                           capture_output=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root without 'unshare -m': cannot make a folder read-only")
    return ("unshare", "-m", "--propagation", "private", "sh", "-c",
            f'mount --bind -o ro "{folder}" "{folder}" && exec "$0" "$@"')


def _writable_again(folder: Path):
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


#: check the package really is read-only, then register
READ_ONLY_CHILD = """\
import os, sys, tempfile
import parareg
package = os.path.dirname(parareg.__file__)
try:
    tempfile.TemporaryFile(dir=os.path.join(package, "kernels")).close()
    sys.exit("the package folder is writable")
except OSError:
    pass
from parareg.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("where", ["NUMBA_CACHE_DIR", "user-wide cache", "private temp folder"])
def test_registration_with_a_read_only_package(tmp_path, where):
    """The package is read-only; the cache goes to NUMBA_CACHE_DIR, else ~/.cache, else $TMPDIR."""
    read_only = tmp_path / "ro"
    src = read_only / "src"
    shutil.copytree(SRC / "parareg", src / "parareg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    f, m = _images(tmp_path)
    cache, tmpdir = tmp_path / "cache", tmp_path / "tmp"
    xdg = (read_only if where == "private temp folder" else tmp_path) / "xdg"
    for folder in (xdg, tmpdir):
        folder.mkdir()
    env = _env(cache if where == "NUMBA_CACHE_DIR" else None, src=src, XDG_CACHE_HOME=str(xdg),
               TMPDIR=str(tmpdir))
    prefix = _read_only_prefix(read_only)
    try:
        result = _python(["-c", READ_ONLY_CHILD, "register", f, m, "--transform", "rigid",
                          "-o", str(tmp_path / "ro_")], env, prefix=prefix)
    finally:
        _writable_again(read_only)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ro_Warped.nii.gz").is_file()
    assert not list(read_only.rglob("*.nbi")), "numba wrote into the read-only folder"
    expected = {"NUMBA_CACHE_DIR": cache, "user-wide cache": xdg,
                "private temp folder": tmpdir / f"numba-cache-{os.getuid()}"}[where]
    assert any(expected.rglob("*.nbi"))


def test_warmup_unwritable_cache_names_numba_cache_dir(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocker / "cache"))
    assert main(["warmup", "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("parareg: error:") and len(err.splitlines()) == 1
    assert "NUMBA_CACHE_DIR" in err and str(blocker / "cache") in err


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_warmup_rejects_bad_jobs(value, capsys):
    assert main(["warmup", "--jobs", value]) == 2
    err = capsys.readouterr().err
    assert "parareg: error:" in err and "--jobs" in err and repr(value) in err


def test_warmup_rejects_bad_dims(capsys):
    assert main(["warmup", "--dims", "4"]) == 2
    assert "--dims" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"jobs": 0}, "jobs must be a positive integer"),
    ({"jobs": True}, "jobs must be a positive integer"),
    ({"ndims": (4,)}, "ndims must hold 2 and/or 3"),
    ({"ndims": ()}, "ndims must hold 2 and/or 3"),
])
def test_warmup_function_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parareg.warmup(**kwargs)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_interrupted_warmup_stops_its_workers(tmp_path):
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "parareg.cli", "warmup", "--jobs", "2"],
                            env=_env(tmp_path / "cache"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    workers = []
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        workers = _children(proc.pid)
    assert len(workers) == 2, "the warmup did not start two workers"
    time.sleep(1.0)  # let them get into compiling
    signalled = time.monotonic()
    proc.send_signal(signal.SIGINT)  # the parent only: it must stop the workers itself
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "parareg: error: interrupted" in err
    # soon, not after the workers finished their jobs (a cold `warmup --jobs 2` takes 50 s on
    # this 2-core machine); the bound is loose because on the 2 cores, shared by pytest and two
    # compiling workers, the parent once took 14.6 s to be scheduled, interrupted and reaped.
    # That the workers are gone (below) is the check that the parent stopped them itself.
    assert time.monotonic() - signalled < 30
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text(
        ).split()[2], f"worker {pid} outlived the interrupted warmup"


# --- compile_ahead: a cold 'register' hands the SyN kernels to a helper process ---------------

#: run 'parareg register' in this process; print the parareg kernels this process compiled
NAMES_COMPILED = """\
import json, sys
from parareg.compilation import CompileWatch
from parareg.cli.main import main
with CompileWatch() as watch:
    code = main(sys.argv[1:])
print("NAMES", json.dumps(sorted({r.name for r in watch.records if r.depth == 0})), code)
"""


def _names(result) -> set:
    assert result.returncode == 0, result.stderr
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("NAMES")][-1]
    names, code = line[len("NAMES "):].rsplit(" ", 1)
    assert code == "0", result.stdout + result.stderr
    return set(json.loads(names))


def _images_3d(folder: Path):
    fixed, moving = _warmup_jobs._pair(3)
    return (_warmup_jobs._write(fixed, folder / "fixed3.nii.gz"),
            _warmup_jobs._write(moving, folder / "moving3.nii.gz"))


@pytest.mark.parametrize("metric", ["cc", "mi"])
def test_ahead_job_leaves_only_the_affine_kernels_to_register(tmp_path, metric):
    """After the helper's job, a SyN 'register' compiles just what an affine one compiles."""
    f, m = _images_3d(tmp_path)
    cache = tmp_path / "cache"
    job = _python(["-m", "parareg._warmup_jobs", f"ahead-{metric}-3d", str(tmp_path / "j.json")],
                  _env(cache))
    assert job.returncode == 0, job.stderr
    off = {"PARAREG_COMPILE_AHEAD": "0"}
    syn = _names(_python(["-c", NAMES_COMPILED, "register", f, m, "-o", str(tmp_path / "s_"),
                          "--metric", metric, "-q"], _env(cache, **off)))
    affine = _names(_python(["-c", NAMES_COMPILED, "register", f, m, "-o",
                             str(tmp_path / "a_"), "--transform", "affine", "-q"],
                            _env(tmp_path / "affine-cache", **off)))
    assert syn <= affine, f"the ahead job missed {sorted(syn - affine)}"


def test_cold_register_with_a_helper_gives_the_same_bits(tmp_path):
    """The helper compiles part of the kernels; the outputs are those of a run without it."""
    import nibabel as nib
    import numpy as np

    f, m = _images_3d(tmp_path)
    runs = {}
    for name, flag in (("helper", "1"), ("alone", "0")):
        result = _python(["-c", NAMES_COMPILED, "register", f, m, "-o", str(tmp_path / f"{name}_"),
                          "-q"], _env(tmp_path / f"cache-{name}", PARAREG_COMPILE_AHEAD=flag))
        runs[name] = _names(result)
    assert runs["helper"] < runs["alone"], "the helper compiled nothing"
    for suffix in ("Warped.nii.gz", "1Warp.nii.gz", "InverseWarped.nii.gz"):
        a, b = (np.asanyarray(nib.load(tmp_path / f"{name}_{suffix}").dataobj)
                for name in ("helper", "alone"))
        assert a.tobytes() == b.tobytes(), suffix
    mats = [(tmp_path / f"{name}_0GenericAffine.mat").read_bytes() for name in ("helper", "alone")]
    assert mats[0] == mats[1]


#: compile_ahead in this process: whether a helper started, and whether it is gone at the end
AHEAD_CHILD = """\
import numpy as np
from parareg import fields
from parareg.compilation import compile_ahead
with compile_ahead("ahead-cc-3d") as ahead:
    fields.max_norm(np.zeros((4, 4, 4, 3), np.float32))
print("STARTED", ahead.process is not None,
      "STOPPED", ahead.process is None or ahead.process.poll() is not None)
"""


@pytest.mark.parametrize("cold, flag, started", [
    (True, "1", True), (True, "0", False), (False, "1", False)])
def test_compile_ahead_starts_a_helper_only_when_compiling(tmp_path, cold, flag, started):
    cache = tmp_path / "cache"
    env = _env(cache, PARAREG_COMPILE_AHEAD=flag)
    if not cold:
        assert _python(["-c", AHEAD_CHILD], _env(cache, PARAREG_COMPILE_AHEAD="0")).returncode == 0
    result = _python(["-c", AHEAD_CHILD], env)
    assert result.returncode == 0, result.stderr
    assert f"STARTED {started} STOPPED True" in result.stdout


#: enter compile_ahead and say at once whether the helper started (before any compile)
AHEAD_AT_ENTRY = """\
from parareg.compilation import compile_ahead
with compile_ahead("ahead-cc-3d") as ahead:
    print("AT ENTRY", ahead.process is not None)
"""


@pytest.mark.parametrize("empty", [True, False])
def test_compile_ahead_starts_at_entry_on_an_empty_cache(tmp_path, empty):
    """An empty cache starts the helper before anything compiles; a partly filled one waits
    for the first compile (the test above)."""
    cache = tmp_path / "cache"
    if not empty:
        assert _python(["-c", AHEAD_CHILD], _env(cache, PARAREG_COMPILE_AHEAD="0")).returncode == 0
    result = _python(["-c", AHEAD_AT_ENTRY], _env(cache, PARAREG_COMPILE_AHEAD="1"))
    assert result.returncode == 0, result.stderr
    assert f"AT ENTRY {empty}" in result.stdout


#: compile one kernel in this process and say whether it compiled or came from the cache
ONE_KERNEL = """\
import sys, time
import numpy as np
from parareg import fields
from parareg.compilation import CompileWatch
while not __import__("os").path.exists(sys.argv[1]):
    time.sleep(0.01)
with CompileWatch() as watch:
    fields.max_norm(np.zeros((4, 4, 4, 3), np.float32))
print("COMPILED", len(watch.records))
"""


def test_two_processes_missing_one_kernel_compile_it_once(tmp_path):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", ONE_KERNEL, str(go)],
                              env=_env(tmp_path / "cache"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    go.touch()
    compiled = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        compiled.append(int(out.split()[-1]) > 0)
    assert sorted(compiled) == [False, True], "both processes compiled the kernel (or neither)"


def test_compile_ahead_starts_no_helper_on_a_busy_machine(monkeypatch):
    from parareg import compilation

    monkeypatch.delenv("PARAREG_COMPILE_AHEAD", raising=False)
    monkeypatch.setattr(compilation, "spare_cores", lambda: 0)
    ahead = compilation.compile_ahead("ahead-cc-3d")
    ahead._start()  # what the first compile in the block calls
    assert ahead.process is None
    monkeypatch.undo()  # the real one answers an int (negative on a loaded machine) or None
    assert isinstance(compilation.spare_cores(), (int, type(None)))
