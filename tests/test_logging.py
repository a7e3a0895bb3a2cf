"""Progress goes through logging: silent for library users, shown by the CLI (-q, -v)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import parareg
from parareg.cli.main import main

from .test_options import blob as options_blob

ROOT = Path(__file__).resolve().parents[1]
AFFINE_LEVELS = ((2, 1.0, 6), (1, 0.0, 3))
SYN_LEVELS = ((2, 0.5, 3), (1, 0.0, 2))


def blob(shape=(24, 26, 22), shift=(0.0, 0.0, 0.0)):
    return options_blob(shape, shift)


def test_a_library_user_gets_nothing_printed():
    code = ("import numpy as np, parareg\n"
            "from tests.test_logging import blob, AFFINE_LEVELS, SYN_LEVELS\n"
            "f, m = blob(), blob(shift=(1.0, 0, 0))\n"
            "a = parareg.affine_registration(f, m, levels=AFFINE_LEVELS)\n"
            "parareg.syn_registration(f, m, prealign=a.matrix, levels=SYN_LEVELS)\n"
            "import logging\n"
            "print(logging.getLogger('parareg').handlers)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == "[<NullHandler (NOTSET)>]"


def test_records_come_from_named_loggers_with_their_numbers(caplog):
    caplog.set_level(logging.DEBUG, logger="parareg")
    fixed, moving = blob(), blob(shift=(1.0, 0.0, 0.0))
    parareg.affine_registration(fixed, moving, pipeline=("translation",),
                                levels=AFFINE_LEVELS)
    parareg.syn_registration(fixed, moving, levels=SYN_LEVELS)
    affine = [r for r in caplog.records if r.name == "parareg.registration.affine"]
    syn = [r for r in caplog.records if r.name == "parareg.registration.syn"]
    done = [r for r in affine if r.level_done]
    assert [r.levelno for r in done] == [logging.INFO, logging.INFO]
    assert done[0].getMessage().startswith("affine translation level 1/2: ")
    assert done[0].progress["iterations"] >= 1
    steps = [r for r in affine if not r.level_done]
    assert steps and all(r.levelno == logging.DEBUG for r in steps)
    assert steps[0].progress == {**steps[0].progress, "kind": "affine", "stage": "translation",
                                 "level": 0, "iteration": 1, "levels": 2,
                                 "max_iterations": 6, "metric": "mi"}
    assert [r.progress["factor"] for r in syn if r.level_done] == [2, 1]
    assert any(r.progress.get("energy") is not None for r in syn if not r.level_done)


def test_no_record_is_built_when_nobody_listens(monkeypatch):
    built = []
    monkeypatch.setattr(logging.Logger, "makeRecord",
                        lambda self, *a, **k: built.append(a) or logging.LogRecord(*a[:7]))
    logging.getLogger("parareg").setLevel(logging.WARNING)
    try:
        parareg.affine_registration(blob(), blob(shift=(1.0, 0, 0)), pipeline=("translation",),
                                    levels=AFFINE_LEVELS)
    finally:
        logging.getLogger("parareg").setLevel(logging.NOTSET)
    assert built == []


@pytest.fixture
def pair(tmp_path):
    fixed, moving = tmp_path / "fixed.nii.gz", tmp_path / "moving.nii.gz"
    parareg.save(blob(), fixed)
    parareg.save(blob(shift=(1.0, -1.0, 0.5)), moving)
    return fixed, moving, tmp_path


def _register(pair, *flags):
    fixed, moving, folder = pair
    return main(["register", str(fixed), str(moving), "-o", str(folder / "o_"),
                 "--transform", "rigid", "--threads", "1", *flags])


def test_the_cli_draws_progress_from_the_records(pair, capsys):
    logger = logging.getLogger("parareg")
    level = logger.level
    assert _register(pair) == 0
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("affine ") for line in err), err
    assert err[0].startswith("affine translation level 1/3  iteration ")
    assert logger.level == level and not any(
        type(h).__name__ == "LogHandler" for h in logger.handlers)


def test_the_cli_quiet_prints_nothing_and_verbose_every_record(pair, capsys):
    assert _register(pair, "-q") == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert _register(pair, "-v") == 0
    err = capsys.readouterr().err.splitlines()
    # the default start (the search) logs its own records and its parallel maps first
    assert err and all(line.startswith(("parareg: registration.affine: affine ",
                                        "parareg: registration.initialise: initial search",
                                        "parareg: parallel: parallel_map")) for line in err), err
    assert any(line.startswith("parareg: registration.affine: affine ") for line in err)
    assert any(": 1 iterations" in line or " iterations, mi " in line for line in err)
    assert any(" iteration 1/" in line for line in err)
