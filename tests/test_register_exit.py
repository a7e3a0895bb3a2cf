"""The ``parareg`` program ends without the interpreter's teardown (``cli.main.exit_now``),
keeping what Python's own exit does: threads joined, ``atexit`` run, output flushed, the
exit code. Real subprocesses: the point is what the process leaves behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, *, env=None, cwd=None) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=SRC)
    environ.pop("PARAREG_FULL_EXIT", None)
    environ.pop("PYTHONUNBUFFERED", None)  # stdout block-buffered, as when piped to a file
    environ.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environ, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


EXIT_AFTER_WORK = """
    import atexit, sys, threading, time
    from pathlib import Path
    from parareg.cli.main import exit_now
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "{folder}")
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    def late():
        time.sleep(0.3)
        (out / "thread").write_text("joined")
    threading.Thread(target=late).start()  # not a daemon: Python waits for it
    print("buffered", end="")
    sys.stderr.write("to stderr")
    exit_now(3)
"""


@pytest.mark.parametrize("full", ["", "1"])
def test_exit_now_keeps_what_python_does_at_exit(tmp_path, full):
    result = _python(EXIT_AFTER_WORK.format(folder=tmp_path),
                     env={"PARAREG_FULL_EXIT": full} if full else None)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "buffered"  # piped, so block-buffered until the exit flushes it
    assert result.stderr == "to stderr"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"


def test_program_exit_codes_and_error_line(tmp_path):
    """``python -m parareg`` ends through exit_now: bad input still gives exit 2 and one
    ``parareg: error:`` line; ``--version`` (argparse's own exit) still prints and exits 0."""
    environ = dict(os.environ, PYTHONPATH=SRC)
    bad = subprocess.run([sys.executable, "-m", "parareg", "register", str(tmp_path / "no.nii"),
                          str(tmp_path / "no.nii"), "-o", str(tmp_path / "out_")],
                         env=environ, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parareg: error:"), bad.stderr
    version = subprocess.run([sys.executable, "-m", "parareg.cli", "--version"], env=environ,
                             capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("parareg "), version.stderr


def test_exit_now_when_stdout_is_closed(tmp_path):
    """A flush that fails (the reader went away) gives Python's own exit code 120."""
    code = """
        import os, sys
        from parareg.cli.main import exit_now
        print("x" * 100)
        os.close(1)
        exit_now(0)
    """
    result = _python(code)
    assert result.returncode == 120, result.stderr


def test_console_script_entry_point_is_run():
    """The installed ``parareg`` script calls ``run`` (main, then exit_now)."""
    text = (Path(SRC).parent / "pyproject.toml").read_text()
    assert 'parareg = "parareg.cli.main:run"' in text
