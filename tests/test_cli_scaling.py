"""``parareg scaling``, called through ``main([...])``.

One affine study of two real 2D slices (mindboggle) at two sizes and 1 and 2
threads is shared by the output tests; the bit-identity check is also tested
against a registration made to differ between thread counts; bad inputs must
give exit code 2, one ``parareg: error:`` line and no output folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import types

import numpy as np
import pytest

import parareg
from parareg.bench import scaling as bench_scaling
from parareg.cli import scaling as cli_scaling
from parareg.cli.main import COMMANDS, main

from ._data import MINDBOGGLE

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def error_line(capsys) -> str:
    """The stderr of a failed command, checked to be one ``parareg: error:`` line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("parareg: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``parareg scaling`` (affine, factors 2,1, threads 1,2) on two mindboggle slices."""
    if len(MINDBOGGLE) < 2:
        pytest.skip("../shared/data/mindboggle_2d/images is not present")
    out = tmp_path_factory.mktemp("scaling") / "out"
    argv = ["scaling", str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), "--transform", "affine",
            "--factors", "2,1", "--threads", "1,2", "--out", str(out)]
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    return {"code": code, "out": out, "stdout": stdout.getvalue(),
            "json": json.loads((out / "scaling.json").read_text(encoding="utf-8"))}


@pytest.fixture
def synthetic_pair(tmp_path):
    """A 2D pair of smooth blobs (40 x 36 voxels), saved as NIfTI."""
    x, y = np.meshgrid(np.arange(40.0), np.arange(36.0), indexing="ij")
    fixed = np.exp(-((x - 20) ** 2 + (y - 18) ** 2) / 60.0)
    moving = np.exp(-((x - 22) ** 2 + (y - 17) ** 2) / 60.0)
    paths = []
    for name, data in (("fixed", fixed), ("moving", moving)):
        path = tmp_path / f"{name}.nii.gz"
        parareg.save(parareg.Image(data.astype(np.float32), np.eye(3)), path)
        paths.append(str(path))
    return paths


# --- a real study -----------------------------------------------------------------------------


def test_study_writes_every_file(study):
    assert study["code"] == 0
    names = {p.name for p in study["out"].iterdir()}
    expected = {"scaling.json", "scaling.md"}
    if HAS_MATPLOTLIB:
        expected |= {"speedup.png", "time_vs_voxels.png"}
    assert names == expected  # no temporary files left behind
    if HAS_MATPLOTLIB:
        for name in ("speedup.png", "time_vs_voxels.png"):
            assert (study["out"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_json_has_every_run_and_they_are_identical(study):
    data = study["json"]
    assert data["machine"]["cpu_count"] >= 1 and data["machine"]["cpu_model"]
    assert data["versions"]["numpy"] == np.__version__
    config = data["config"]
    assert (config["transform"], config["threads"], config["factors"]) == ("affine", [1, 2],
                                                                           [2, 1])
    runs = data["runs"]
    assert sorted((r["factor"], r["threads"]) for r in runs) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    full = parareg.load(MINDBOGGLE[0]).shape
    for run in runs:
        shape = list(full) if run["factor"] == 1 else [n // 2 for n in full]
        assert run["shape"] == shape and run["voxels"] == int(np.prod(shape))
        assert run["seconds"] > 0 and len(run["times_s"]) == 1
        assert run["identical"] is True
    for factor in (1, 2):
        hashes = {r["warped_sha256"] for r in runs if r["factor"] == factor}
        assert len(hashes) == 1
        one = next(r for r in runs if (r["factor"], r["threads"]) == (factor, 1))
        assert one["speedup"] == 1.0
    assert data["identical"] is True
    fit = next(f for f in data["fits"] if f["threads"] == 2)
    assert fit["points"] == 2 and np.isfinite(fit["exponent"])


def test_study_markdown_has_the_tables_and_is_printed(study):
    text = (study["out"] / "scaling.md").read_text(encoding="utf-8")
    assert "| size (factor) | voxels | 1 thr | 2 thr |" in text
    assert "## Speed-up over 1 thread (efficiency)" in text
    assert "Fitted exponent p of time ∝ voxels^p at 2 thread(s)" in text
    assert "**bit-identical**" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "(÷" in line]
    assert len(rows) == 4  # two sizes in the time and in the speed-up table
    assert study["stdout"].strip() == text.strip()


# --- the checks of the study itself ------------------------------------------------------------


def test_differences_between_thread_counts_are_reported(synthetic_pair, tmp_path, monkeypatch,
                                                        capsys):
    """A registration that depends on the thread count: identical=False and exit code 1."""
    calls = []

    def fake_register(fixed, moving, *, transform, preset, num_threads):
        calls.append((fixed.shape, num_threads))
        warped = fixed.with_data(fixed.data + np.float32(num_threads > 1) * np.float32(1e-6))
        return types.SimpleNamespace(warped=warped, seconds={"affine": 0.0},
                                     affine=types.SimpleNamespace(matrix=np.eye(3)))

    monkeypatch.setattr(parareg.registration, "register", fake_register)
    out = tmp_path / "out"
    code = main(["scaling", *synthetic_pair, "--transform", "rigid", "--factors", "1,2",
                 "--threads", "2", "--repeats", "2", "--out", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == cli_scaling.EXIT_NOT_IDENTICAL
    assert captured.out == ""  # -q
    assert "differ between thread counts" in captured.err
    # per size: a warm-up at 2 threads, then 1 and 2 threads interleaved twice, larger last
    assert calls == [((20, 18), 2), ((20, 18), 1), ((20, 18), 2), ((20, 18), 1), ((20, 18), 2),
                     ((40, 36), 2), ((40, 36), 1), ((40, 36), 2), ((40, 36), 1), ((40, 36), 2)]
    data = json.loads((out / "scaling.json").read_text(encoding="utf-8"))
    assert {(r["threads"], r["identical"]) for r in data["runs"]} == {(1, True), (2, False)}
    assert all(len(r["times_s"]) == 2 for r in data["runs"])
    assert data["identical"] is False
    assert "**Not bit-identical**" in (out / "scaling.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("cpus, expected", [(1, [1]), (2, [1, 2]), (6, [1, 2, 4, 6]),
                                            (16, [1, 2, 4, 8, 16])])
def test_default_threads(cpus, expected):
    assert bench_scaling.default_threads(cpus) == expected


def test_power_law_fit_recovers_a_known_exponent():
    fit = bench_scaling.fit_power_law([1e3, 1e4, 1e5], [2.0, 2.0 * 10**1.5, 2.0 * 10**3])
    assert fit["exponent"] == pytest.approx(1.5) and fit["r2"] == pytest.approx(1.0)


def test_command_is_dispatched():
    assert "scaling" in COMMANDS


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value", [("--threads", "0"), ("--threads", "a"),
                                           ("--threads", "1,,-2"), ("--factors", "0"),
                                           ("--repeats", "0"), ("--transform", "bspline"),
                                           ("--preset", "slow")])
def test_bad_options_exit_2(option, value, synthetic_pair, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["scaling", *synthetic_pair, option, value, "--out", str(out)]) == 2
    assert option in error_line(capsys)
    assert not out.exists()


def test_missing_file_exits_2(synthetic_pair, tmp_path, capsys):
    out = tmp_path / "out"
    missing = str(tmp_path / "missing.nii.gz")
    assert main(["scaling", synthetic_pair[0], missing, "--out", str(out)]) == 2
    assert "missing.nii.gz" in error_line(capsys)
    assert not out.exists()


def test_2d_vs_3d_exits_2(synthetic_pair, tmp_path, capsys):
    volume = tmp_path / "volume.nii.gz"
    parareg.save(parareg.Image(np.ones((8, 8, 8), np.float32), np.eye(4)), volume)
    out = tmp_path / "out"
    assert main(["scaling", synthetic_pair[0], str(volume), "--out", str(out)]) == 2
    line = error_line(capsys)
    assert "2D" in line and "3D" in line
    assert not out.exists()


def test_out_is_required(synthetic_pair, capsys):
    assert main(["scaling", *synthetic_pair]) == 2
    assert "--out" in error_line(capsys)
