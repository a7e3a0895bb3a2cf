"""The output writer (parareg.io.outputs): transactions under real signals, full disks, modes.

The fault tests run ``parareg register`` in a subprocess with the test-only
hook ``PARAREG_FAULT_POINT``: the writer creates a marker file and sleeps at
the named point, the test waits for the marker and sends a real signal.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import parareg
from parareg.io import gzip_chunks
from parareg.io import outputs as writer
from parareg.io.outputs import OutputSet, recover

SRC = str(Path(parareg.__file__).resolve().parents[1])
NAMES = ("0GenericAffine.mat", "1Warp.nii.gz", "1InverseWarp.nii.gz", "Warped.nii.gz",
         "InverseWarped.nii.gz")


def _blob(centre, widths, shape=(20, 20, 20)):
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    return np.exp(-sum((g - c) ** 2 / w for g, c, w in zip(grid, centre, widths)))


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in (writer.ENV_FAULT_POINT, writer.ENV_FAULT_MARKER, writer.ENV_FAULT_SLEEP):
        env.pop(key, None)
    env.update(extra)
    return env


def _register_cmd(fixed, moving, prefix):
    return [sys.executable, "-m", "parareg.cli", "register", str(fixed), str(moving), "-o",
            str(prefix), "--preset", "fast", "--threads", "2", "-q"]


def _run(cmd, **env):
    return subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=300)


def _md5s(folder, prefix="o_"):
    return {name: hashlib.md5((Path(folder) / (prefix + name)).read_bytes()).hexdigest()
            for name in NAMES if (Path(folder) / (prefix + name)).exists()}


def _hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A tiny 3D pair, the outputs of an earlier run, and those the new run must give."""
    root = tmp_path_factory.mktemp("pair")
    spacing = np.diag([2.0, 2.0, 2.0, 1.0])
    parareg.save(parareg.Image(_blob((10, 10, 10), (30, 30, 30)), spacing), root / "f.nii.gz")
    parareg.save(parareg.Image(_blob((11, 9, 10), (40, 25, 30)), spacing), root / "m.nii.gz")
    parareg.save(parareg.Image(_blob((9, 11, 10), (25, 40, 30)), spacing), root / "old.nii.gz")
    (root / "earlier").mkdir()
    (root / "new").mkdir()
    for folder, moving in (("earlier", "old.nii.gz"), ("new", "m.nii.gz")):
        done = _run(_register_cmd(root / "f.nii.gz", root / moving, root / folder / "o_"))
        assert done.returncode == 0, done.stderr
    old, new = _md5s(root / "earlier"), _md5s(root / "new")
    assert len(old) == len(NAMES) and all(old[n] != new[n] for n in NAMES)
    return root, old, new


# (signal, fault point, outcome before any recovery, outcome after recover())
CASES = [
    (signal.SIGINT, "staging", "old", "old"),
    (signal.SIGINT, "staged", "old", "old"),
    (signal.SIGTERM, "staged", "old", "old"),
    (signal.SIGINT, "renamed", "new", "new"),  # after the commit point: held back, then exit
    (signal.SIGKILL, "staging", "old", "old"),
    (signal.SIGKILL, "staged", "old", "old"),
    (signal.SIGKILL, "journal", "old", "new"),
    (signal.SIGKILL, "renamed", "mixed", "new"),
    (signal.SIGKILL, "committed", "new", "new"),
]


def _interrupt(pair, folder, sig, point):
    """Run the new registration into a copy of the earlier set; send ``sig`` at ``point``."""
    root, _, _ = pair
    shutil.copytree(root / "earlier", folder)
    marker = folder.parent / f"{folder.name}.marker"
    held = point in ("journal", "renamed", "committed")  # signals are held back there
    proc = subprocess.Popen(
        _register_cmd(root / "f.nii.gz", root / "m.nii.gz", folder / "o_"),
        env=_env(PARAREG_FAULT_POINT=point, PARAREG_FAULT_MARKER=str(marker),
                 PARAREG_FAULT_SLEEP="1" if held and sig != signal.SIGKILL else "120"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the fault point was never reached"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _state(folder, old, new):
    md5 = _md5s(folder)
    if md5 == old:
        return "old"
    if md5 == new:
        return "new"
    return "mixed"


@pytest.mark.parametrize("sig, point, before, after", CASES,
                         ids=[f"{s.name}-{p}" for s, p, _, _ in CASES])
def test_signal_during_write_phase_leaves_one_complete_set(pair, tmp_path, sig, point, before,
                                                            after):
    _, old, new = pair
    folder = tmp_path / "out"
    code, err = _interrupt(pair, folder, sig, point)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == (130 if sig == signal.SIGINT else 143), err
        assert err.strip().endswith("interrupted" if sig == signal.SIGINT else "terminated")
        assert _hidden(folder) == []  # a signal handled in Python leaves no temporary
    assert _state(folder, old, new) == before
    if before == "mixed" or before != after:
        assert any(name.startswith(".parareg-journal-") for name in _hidden(folder))
    recover(folder)
    assert _state(folder, old, new) == after
    assert _hidden(folder) == []


def test_next_register_run_removes_a_killed_runs_temporaries(pair, tmp_path):
    root, old, new = pair
    folder = tmp_path / "out"
    _interrupt(pair, folder, signal.SIGKILL, "staged")
    assert _state(folder, old, new) == "old"
    assert any(writer._TMP_MARK in name for name in _hidden(folder))
    done = _run(_register_cmd(root / "f.nii.gz", root / "m.nii.gz", folder / "o_"))
    assert done.returncode == 0, done.stderr
    assert _state(folder, old, new) == "new" and _hidden(folder) == []


def test_apply_completes_a_set_killed_mid_commit_before_reading_it(pair, tmp_path):
    root, old, new = pair
    folder = tmp_path / "out"
    _interrupt(pair, folder, signal.SIGKILL, "renamed")
    assert _state(folder, old, new) == "mixed"
    done = _run([sys.executable, "-m", "parareg.cli", "apply", "-i", str(root / "m.nii.gz"),
                 "-r", str(root / "f.nii.gz"), "-o", str(tmp_path / "moved.nii.gz"), "-t",
                 str(folder / "o_1Warp.nii.gz"), str(folder / "o_0GenericAffine.mat"), "-q"])
    assert done.returncode == 0, done.stderr
    assert _state(folder, old, new) == "new" and _hidden(folder) == []
    np.testing.assert_array_equal(parareg.load(tmp_path / "moved.nii.gz").data,
                                  parareg.load(root / "new" / "o_Warped.nii.gz").data)


def test_full_disk_keeps_the_earlier_set_and_names_the_file(pair, tmp_path):
    root, old, new = pair
    folder = tmp_path / "small"
    folder.mkdir()
    size = sum((root / "earlier" / ("o_" + n)).stat().st_size for n in NAMES)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size + 64 * 1024}", "tmpfs",
                              str(folder)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        for name in NAMES:
            shutil.copy(root / "earlier" / ("o_" + name), folder)
        done = _run(_register_cmd(root / "f.nii.gz", root / "m.nii.gz", folder / "o_"))
        assert done.returncode == 2
        line = done.stderr.strip().splitlines()[-1]
        assert line.startswith("parareg: error: No space left on device: could not write")
        assert str(folder / "o_") in line and f"in the folder {str(folder)!r}" in line
        assert _state(folder, old, new) == "old" and _hidden(folder) == []
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_failed_write_in_process_keeps_the_earlier_files(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")

    def full(view, start, stop, level):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gzip_chunks, "compress_chunk", full)
    image = parareg.Image(np.ones((4, 5, 6), np.float32), np.eye(4))
    with pytest.raises(OSError, match=r"No space left on device: could not write .*c\.nii\.gz"):
        with OutputSet() as outputs:
            outputs.add_bytes(tmp_path / "a.txt", "new a")
            parareg.save(image, tmp_path / "c.nii.gz", outputs=outputs)
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt"]


def test_exception_in_the_block_discards_the_set(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with OutputSet(remove=[tmp_path / "b.txt"]) as outputs:
            outputs.add_bytes(tmp_path / "a.txt", b"new")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_commit_replaces_the_set_and_removes_its_stale_files(tmp_path):
    (tmp_path / "a.txt").write_text("old")
    (tmp_path / "stale.txt").write_text("old")
    with OutputSet(remove=[tmp_path / "stale.txt"]) as outputs:
        outputs.add_bytes(tmp_path / "a.txt", b"new")
        outputs.add(tmp_path / "b.bin", lambda tmp: Path(tmp).write_bytes(b"b"))
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin"]
    assert outputs.paths == [tmp_path / "a.txt", tmp_path / "b.bin"]


def test_parallel_gzip_is_valid_and_independent_of_threads(tmp_path):
    import gzip

    rng = np.random.default_rng(0)
    data = np.cumsum(rng.standard_normal((40, 50, 60)), axis=0).astype(np.float32)  # > 1 chunk
    image = parareg.Image(data, np.diag([1.0, 2.0, 3.0, 1.0]))
    paths = [parareg.save(image, tmp_path / f"t{n}.nii.gz", num_threads=n) for n in (1, 3)]
    assert paths[0].read_bytes() == paths[1].read_bytes()
    nifti = gzip.decompress(paths[0].read_bytes())
    assert len(nifti) == 352 + data.nbytes
    np.testing.assert_array_equal(parareg.load(paths[0]).data, data)


def test_gzip_level_is_checked():
    with pytest.raises(ValueError, match="gzip_level must be an integer 0-9"):
        OutputSet(gzip_level=10)


def test_set_must_live_in_one_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="one folder"):
        with OutputSet() as outputs:
            outputs.add_bytes(tmp_path / "a.txt", b"a")
            outputs.add_bytes(tmp_path / "sub" / "b.txt", b"b")
    assert os.listdir(tmp_path) == ["sub"]


def test_recover_leaves_a_live_writers_temporaries(tmp_path):
    with OutputSet() as outputs:
        outputs.add_bytes(tmp_path / "a.txt", b"a")
        outputs._wait()
        assert len(_hidden(tmp_path)) == 1
        assert recover(tmp_path) == []  # locked by this (live) writer
        assert len(_hidden(tmp_path)) == 1
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_take_the_umask_mode(tmp_path, mask, mode):
    (tmp_path / "a.txt").write_text("old")
    os.chmod(tmp_path / "a.txt", 0o600)
    previous = os.umask(mask)
    try:
        parareg.io.write_text(tmp_path / "a.txt", "new")
        parareg.save(parareg.Image(np.zeros((3, 4, 5)), np.eye(4)), tmp_path / "b.nii.gz")
    finally:
        os.umask(previous)
    for name in ("a.txt", "b.nii.gz"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode


def test_register_outputs_are_0644_under_umask_022(pair, tmp_path):
    root, _, _ = pair
    (tmp_path / "o_Warped.nii.gz").write_bytes(b"x")
    os.chmod(tmp_path / "o_Warped.nii.gz", 0o600)
    done = subprocess.run(_register_cmd(root / "f.nii.gz", root / "m.nii.gz", tmp_path / "o_"),
                          env=_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr
    for name in NAMES:
        assert stat.S_IMODE((tmp_path / ("o_" + name)).stat().st_mode) == 0o644


def test_writers_refuse_an_outputs_that_is_not_an_output_set(tmp_path):
    image = parareg.Image(np.zeros((3, 4, 5)), np.eye(4))
    with pytest.raises(TypeError, match="outputs must be a parareg.io.OutputSet or None, got "
                                        "list"):
        parareg.save(image, tmp_path / "a.nii.gz", outputs=[])
    with pytest.raises(TypeError, match="outputs must be a parareg.io.OutputSet"):
        parareg.io.write_affine(np.eye(4), tmp_path / "a.mat", outputs="x")
    assert os.listdir(tmp_path) == []


def test_another_process_leaves_a_live_writers_temporaries(pair, tmp_path):
    """While run A holds its staged files, this process recovers and writes in the same folder."""
    root, _, new = pair
    folder = tmp_path / "out"
    folder.mkdir()
    marker = tmp_path / "a.marker"
    a = subprocess.Popen(_register_cmd(root / "f.nii.gz", root / "m.nii.gz", folder / "o_"),
                         env=_env(PARAREG_FAULT_POINT="staged", PARAREG_FAULT_MARKER=str(marker),
                                  PARAREG_FAULT_SLEEP="3"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert a.poll() is None and time.monotonic() < deadline, a.communicate()
        time.sleep(0.02)
    staged = _hidden(folder)
    assert len(staged) == len(NAMES) + 1  # and PREFIX_settings.json
    assert recover(folder) == []  # A is alive: its temporaries are locked
    parareg.save(parareg.Image(np.ones((3, 4, 5)), np.eye(4)), folder / "b.nii.gz")
    assert a.poll() is None and _hidden(folder) == staged
    _, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    assert _md5s(folder) == new and _hidden(folder) == []
    assert (folder / "b.nii.gz").exists()
