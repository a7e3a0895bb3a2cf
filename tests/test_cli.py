"""The ``parareg`` command line, called through ``main([...])``.

One fast SyN registration of two real 2D slices (mindboggle) is shared by the
tests of outputs and of ``parareg apply``; bad inputs must give exit code 2,
one ``parareg: error:`` line on stderr and no output files.
"""

from __future__ import annotations

import importlib.util
import re

import nibabel as nib
import numpy as np
import pytest
from scipy.io import loadmat

import parareg
from parareg.cli import apply as cli_apply
from parareg.cli import demo as cli_demo
from parareg.cli import register as cli_register
from parareg.cli.main import COMMANDS, main
from parareg.io.itk import write_affine

from ._data import MINDBOGGLE, MINDBOGGLE_LABELS

needs_slices = pytest.mark.skipif(len(MINDBOGGLE) < 2,
                                  reason="../shared/data/mindboggle_2d/images is not present")
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def error_line(capsys) -> str:
    """The stderr of a failed command, checked to be one ``parareg: error:`` line."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("parareg: error: "), err
    assert "Traceback" not in err
    return lines[0]


def files_in(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def syn_run(tmp_path_factory):
    """``parareg register --transform syn --preset fast --qc`` on two mindboggle slices."""
    if len(MINDBOGGLE) < 2:
        pytest.skip("../shared/data/mindboggle_2d/images is not present")
    folder = tmp_path_factory.mktemp("syn")
    fixed, moving = MINDBOGGLE[0], MINDBOGGLE[1]
    argv = ["register", str(fixed), str(moving), "-o", str(folder / "out"), "--preset", "fast",
            "--threads", "2"]
    if HAS_MATPLOTLIB:
        argv.append("--qc")
    code = main(argv)
    assert code == 0
    return {"folder": folder, "fixed": fixed, "moving": moving,
            "prefix": str(folder / "out_")}


# --- help and dispatch --------------------------------------------------------------------------


def test_top_level_help_lists_commands_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("register", "apply", "demo", "examples:"):
        assert command in out
    if "bench" in COMMANDS:
        assert "bench" in out


@pytest.mark.parametrize("command", ["register", "apply", "demo"])
def test_command_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"parareg {command}" in out and "examples:" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert parareg.__version__ in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["--frobnicate"]])
def test_dispatcher_rejects_unknown_commands(argv, capsys):
    assert main(argv) == 2
    error_line(capsys)


def test_dispatcher_runs_each_command_module(monkeypatch):
    calls = []
    for name, module in (("register", cli_register), ("apply", cli_apply), ("demo", cli_demo)):
        monkeypatch.setattr(module, "main", lambda argv, name=name: calls.append((name, argv)) or 7)
    assert main(["register", "a", "b"]) == 7
    assert main(["apply", "-i", "x"]) == 7
    assert main(["demo", "-q"]) == 7
    assert calls == [("register", ["a", "b"]), ("apply", ["-i", "x"]), ("demo", ["-q"])]
    if "bench" in COMMANDS:
        import parareg.cli.bench as cli_bench

        monkeypatch.setattr(cli_bench, "main", lambda argv: calls.append(("bench", argv)) or 5)
        assert main(["bench", "--list-methods"]) == 5
        assert calls[-1] == ("bench", ["--list-methods"])


# --- helpers with known answers -------------------------------------------------------------


@pytest.mark.parametrize("prefix, warped", [("out", "out_Warped.nii.gz"),
                                            ("out_", "out_Warped.nii.gz"),
                                            ("d/", "d/Warped.nii.gz"),
                                            ("a.b.", "a.b.Warped.nii.gz")])
def test_output_prefix_follows_ants(prefix, warped):
    paths = cli_register.output_paths(prefix, transform="syn", qc=True)
    assert str(paths["warped"]) == warped
    stem = warped[: -len("Warped.nii.gz")]
    assert {str(p) for p in paths.values()} == {
        stem + name for name in ("0GenericAffine.mat", "1Warp.nii.gz", "1InverseWarp.nii.gz",
                                 "Warped.nii.gz", "InverseWarped.nii.gz", "settings.json",
                                 "qc.png")}
    rigid = cli_register.output_paths(prefix, transform="rigid", qc=False)
    assert set(rigid) == {"affine", "warped", "inverse_warped", "settings"}


def test_metric_table():
    assert cli_register.metrics_for("syn", None) == ("mi", "cc")
    assert cli_register.metrics_for("syn", "ssd") == ("mi", "ssd")
    assert cli_register.metrics_for("affine", None) == ("mi", None)
    assert cli_register.metrics_for("affine", "cc") == ("correlation", None)
    assert cli_register.metrics_for("rigid", "ssd") == ("meansquares", None)
    assert cli_register.metrics_for("rigid", "em") == ("mi", None)


def test_transform_list_parsing():
    specs = cli_apply.parse_transform_list(["w.nii.gz", "[a.mat,", "1]", "identity", "[b.txt,0]",
                                           "[c.mat]"])
    assert [(str(s.path), s.inverse) for s in specs] == [
        ("w.nii.gz", False), ("a.mat", True), ("b.txt", False), ("c.mat", False)]
    for bad in (["[a.mat,2]"], ["[a.mat,1"], ["[a.mat,1]x"], ["[f.nii,m.nii,1]"]):
        with pytest.raises(cli_apply.CLIError):
            cli_apply.parse_transform_list(bad)


def test_apply_order_is_first_listed_first(tmp_path):
    from parareg.transforms.chain import resample_through

    """-t A B samples at B(A(x)): a scaling then a shift gives 2 x + 1, not 2 (x + 1)."""
    ramp = parareg.Image(np.tile(np.arange(40.0, dtype=np.float32)[:, None], (1, 5)), np.eye(3))
    scale = write_affine(np.diag([2.0, 1.0, 1.0]), tmp_path / "scale.mat")
    shift = np.eye(3)
    shift[0, 2] = 1.0
    shift = write_affine(shift, tmp_path / "shift.txt")
    steps = cli_apply.read_steps(cli_apply.parse_transform_list([str(scale), str(shift)]), 2)
    out, _ = resample_through(ramp, ramp, steps)
    assert out.data[3, 2] == pytest.approx(7.0)
    # the same chain through the point-mapping path (a warp of zeros first)
    zero = tmp_path / "zero.nii.gz"
    from parareg.io.itk_warp import write_warp

    write_warp(np.zeros((40, 5, 2), np.float32), np.eye(3), zero)
    steps = cli_apply.read_steps(
        cli_apply.parse_transform_list([str(scale), str(zero), str(shift)]), 2)
    out, coverage = resample_through(ramp, ramp, steps)
    assert out.data[3, 2] == pytest.approx(7.0)
    assert 0.0 < coverage[0] < 1.0  # 2 x leaves the field's grid for x >= 20
    # the library's engine reads the same list the same way
    again = parareg.apply_transforms(ramp, ramp, [scale, zero, shift])
    np.testing.assert_array_equal(again.data, out.data)


# --- register --------------------------------------------------------------------------------


@needs_slices
def test_register_syn_writes_ants_files(syn_run):
    folder = syn_run["folder"]
    names = files_in(folder)
    expected = {"out_0GenericAffine.mat", "out_1Warp.nii.gz", "out_1InverseWarp.nii.gz",
                "out_Warped.nii.gz", "out_InverseWarped.nii.gz", "out_settings.json"}
    if HAS_MATPLOTLIB:
        expected.add("out_qc.png")
    assert names == expected  # and no temporary files left
    mat = loadmat(str(folder / "out_0GenericAffine.mat"))
    assert "AffineTransform_double_2_2" in mat and mat["fixed"].shape == (2, 1)
    warp = nib.load(str(folder / "out_1Warp.nii.gz"))
    fixed = parareg.load(syn_run["fixed"])
    assert warp.shape == (*fixed.shape, 1, 1, 2)
    assert warp.header.get_intent()[0] == "vector"
    warped = parareg.load(folder / "out_Warped.nii.gz")
    moving = parareg.load(syn_run["moving"])
    assert warped.shape == fixed.shape
    before = corr(fixed.data, parareg.resample(moving, fixed).data)
    assert 1.0 - corr(fixed.data, warped.data) < 0.5 * (1.0 - before)


@needs_slices
def test_register_prints_summary_and_progress(tmp_path, capsys):
    code = main(["register", str(MINDBOGGLE[2]), str(MINDBOGGLE[3]), "-o", str(tmp_path / "r_"),
                 "--transform", "rigid", "--metric", "cc", "--threads", "1"])
    assert code == 0
    captured = capsys.readouterr()
    assert "correlation" in captured.out and "outputs:" in captured.out
    assert str(tmp_path / "r_0GenericAffine.mat") in captured.out
    assert "affine rigid" in captured.err and "level 3/3" in captured.err
    assert files_in(tmp_path) == {"r_0GenericAffine.mat", "r_Warped.nii.gz",
                                  "r_InverseWarped.nii.gz", "r_settings.json"}


@needs_slices
def test_register_quiet_prints_nothing(tmp_path, capsys):
    code = main(["register", str(MINDBOGGLE[2]), str(MINDBOGGLE[3]), "-o", str(tmp_path / "q"),
                 "--transform", "rigid", "-q"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert "q_Warped.nii.gz" in files_in(tmp_path)


# --- apply -----------------------------------------------------------------------------------


@needs_slices
def test_apply_forward_reproduces_warped(syn_run, tmp_path):
    prefix = syn_run["prefix"]
    out = tmp_path / "moving_in_fixed.nii.gz"
    code = main(["apply", "-i", str(syn_run["moving"]), "-r", str(syn_run["fixed"]),
                 "-t", prefix + "1Warp.nii.gz", prefix + "0GenericAffine.mat", "-o", str(out),
                 "-q"])
    assert code == 0
    expected = parareg.load(prefix + "Warped.nii.gz").data
    assert corr(parareg.load(out).data, expected) > 0.999
    # the general point-mapping path (an identity affine listed first) agrees too
    identity = write_affine(np.eye(3), tmp_path / "identity.txt")
    out2 = tmp_path / "general.nii.gz"
    code = main(["apply", "-i", str(syn_run["moving"]), "-r", str(syn_run["fixed"]),
                 "-t", str(identity), "-t", prefix + "1Warp.nii.gz",
                 "-t", prefix + "0GenericAffine.mat", "-o", str(out2), "-q"])
    assert code == 0
    assert corr(parareg.load(out2).data, expected) > 0.999


@needs_slices
def test_apply_inverse_reproduces_inverse_warped(syn_run, tmp_path):
    prefix = syn_run["prefix"]
    out = tmp_path / "fixed_in_moving.nii.gz"
    code = main(["apply", "-i", str(syn_run["fixed"]), "-r", str(syn_run["moving"]),
                 "-t", f"[{prefix}0GenericAffine.mat,", "1]", prefix + "1InverseWarp.nii.gz",
                 "-o", str(out), "-q"])
    assert code == 0
    result = parareg.load(out).data
    assert corr(result, parareg.load(prefix + "InverseWarped.nii.gz").data) > 0.999
    # and it is the inverse: the fixed image lands on the moving one
    moving = parareg.load(syn_run["moving"]).data
    fixed_on_moving_grid = parareg.resample(syn_run["fixed"], syn_run["moving"]).data
    assert 1.0 - corr(result, moving) < 0.5 * (1.0 - corr(fixed_on_moving_grid, moving))


@needs_slices
def test_apply_nearest_keeps_labels(syn_run, tmp_path):
    labels_path = MINDBOGGLE_LABELS[1]
    assert labels_path.name.split("_")[0] == syn_run["moving"].name.split("_")[0]
    labels = parareg.load(labels_path, labels=True).data
    out = tmp_path / "labels.nii.gz"
    code = main(["apply", "-i", str(labels_path), "-r", str(syn_run["fixed"]),
                 "-n", "NearestNeighbor", "-q", "-o", str(out),
                 "-t", syn_run["prefix"] + "1Warp.nii.gz",
                 syn_run["prefix"] + "0GenericAffine.mat"])
    assert code == 0
    warped = parareg.load(out, labels=True).data
    assert np.issubdtype(warped.dtype, np.integer)
    assert set(np.unique(warped)) <= set(np.unique(labels))
    # the warped labels overlap the fixed labels better than the unregistered ones
    fixed_labels = parareg.load(MINDBOGGLE_LABELS[0], labels=True).data
    unregistered = parareg.resample(parareg.load(labels_path, labels=True), syn_run["fixed"],
                                    interpolation="nearest").data
    assert np.mean((warped > 0) == (fixed_labels > 0)) > np.mean(
        (unregistered > 0) == (fixed_labels > 0))


# --- bad input: exit code 2, one line, no outputs -------------------------------------------


@pytest.fixture
def small_files(tmp_path):
    """A 3D image, a 4D image, a non-image and a stray transform type, in ``tmp_path / 'in'``."""
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((10, 12, 14)).astype(np.float32), np.eye(4)),
             str(folder / "vol.nii.gz"))
    nib.save(nib.Nifti1Image(rng.random((10, 12, 14, 3)).astype(np.float32), np.eye(4)),
             str(folder / "series.nii.gz"))
    (folder / "junk.nii.gz").write_text("not an image")
    (folder / "t.xfm").write_text("1 0 0")
    write_affine(np.eye(4), folder / "affine3d.mat")
    return folder


@needs_slices
@pytest.mark.parametrize("make_argv", [
    lambda d, s, o: ["register", str(d / "missing.nii.gz"), s[1], "-o", o],
    lambda d, s, o: ["register", str(d / "junk.nii.gz"), s[1], "-o", o],
    lambda d, s, o: ["register", s[0], str(d / "vol.nii.gz"), "-o", o],
    lambda d, s, o: ["register", s[0], str(d / "series.nii.gz"), "-o", o],
    lambda d, s, o: ["register", s[0], s[1], "-o", o, "--transform", "bspline"],
    lambda d, s, o: ["register", s[0], s[1], "-o", o, "--threads", "0"],
    lambda d, s, o: ["register", s[0], s[1], "-o", o, "--fixed-mask", str(d / "vol.nii.gz")],
    lambda d, s, o: ["register", s[0], s[1], "-o", str(d / "no" / "such" / "dir" / "x_")],
    lambda d, s, o: ["register", s[0], "-o", o],
    lambda d, s, o: ["apply", "-i", s[1], "-r", s[0], "-t", str(d / "t.xfm"), "-o", o + ".nii"],
    lambda d, s, o: ["apply", "-i", s[1], "-r", s[0], "-t", str(d / "none.mat"),
                     "-o", o + ".nii"],
    lambda d, s, o: ["apply", "-i", s[1], "-r", s[0], "-t", str(d / "affine3d.mat"),
                     "-o", o + ".nii"],
    lambda d, s, o: ["apply", "-i", s[1], "-r", str(d / "vol.nii.gz"),
                     "-t", str(d / "affine3d.mat"), "-o", o + ".nii"],
    lambda d, s, o: ["apply", "-i", s[1], "-r", s[0], "-t", str(d / "affine3d.mat"),
                     "-o", o + ".png"],
    lambda d, s, o: ["apply", "-i", s[1], "-r", s[0], "-o", o + ".nii"],
])
def test_bad_input_exits_2_with_one_line(make_argv, small_files, tmp_path, capsys):
    out_folder = tmp_path / "out"
    out_folder.mkdir()
    argv = make_argv(small_files, [str(MINDBOGGLE[0]), str(MINDBOGGLE[1])],
                     str(out_folder / "res"))
    before = files_in(small_files)
    assert main(argv) == 2
    error_line(capsys)
    assert files_in(out_folder) == set()
    assert files_in(small_files) == before


@needs_slices
def test_apply_rejects_warps_that_do_not_fit(syn_run, small_files, tmp_path, capsys):
    prefix = syn_run["prefix"]
    out = tmp_path / "o.nii.gz"
    # the inverse of a displacement field
    assert main(["apply", "-i", str(syn_run["moving"]), "-r", str(syn_run["fixed"]),
                 "-t", f"[{prefix}1Warp.nii.gz,1]", "-o", str(out)]) == 2
    assert "InverseWarp" in error_line(capsys)
    # a 2D warp for a 3D reference
    vol = str(small_files / "vol.nii.gz")
    assert main(["apply", "-i", vol, "-r", vol, "-t", prefix + "1Warp.nii.gz",
                 "-o", str(out)]) == 2
    assert "2D" in error_line(capsys)
    # a reference grid far away from the warp's grid
    fixed = parareg.load(syn_run["fixed"])
    far = fixed.vox2world.copy()
    far[:2, 2] += 5000.0
    far_path = tmp_path / "far.nii.gz"
    parareg.save(parareg.Image(fixed.data, far), far_path)
    assert main(["apply", "-i", str(syn_run["moving"]), "-r", str(far_path),
                 "-t", prefix + "1Warp.nii.gz", prefix + "0GenericAffine.mat",
                 "-o", str(out)]) == 2
    assert "does not match" in error_line(capsys)
    assert not out.exists()


@needs_slices
def test_failed_write_leaves_no_outputs(tmp_path, monkeypatch, capsys):
    """A failure after some files were written removes them: all outputs or none."""
    import parareg.io.nifti

    def disk_full(image, path, **options):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(parareg.io.nifti, "save", disk_full)
    code = main(["register", str(MINDBOGGLE[2]), str(MINDBOGGLE[3]), "-o", str(tmp_path / "f_"),
                 "--transform", "rigid", "-q"])
    assert code == 2
    assert "No space left on device" in error_line(capsys)
    assert files_in(tmp_path) == set()


# --- demo ------------------------------------------------------------------------------------


@pytest.mark.skipif(cli_demo.dipy_file() is None, reason="dipy is not installed")
def test_demo_quick_on_dipy_slice(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--source", "dipy", "--out", str(out), "--threads", "2"]) == 0
    text = capsys.readouterr().out
    assert "mean Dice" in text and "thread" in text
    names = files_in(out)
    assert {"fixed.nii.gz", "moving.nii.gz", "warped.nii.gz"} <= names
    assert ("qc.png" in names) == HAS_MATPLOTLIB
    # the registration recovers the known deformation: the residual shrinks
    row = next(line for line in text.splitlines() if "psi(phi(x))" in line)
    before, after = (float(v) for v in row.split()[-2:])
    assert after < 0.5 * before


@pytest.mark.skipif(cli_demo.nilearn_files() is None, reason="nilearn is not installed")
def test_demo_quick_on_mni_template(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--source", "nilearn", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    before, after = (float(v) for v in
                     re.search(r"mean Dice\D*?([0-9.]+)\D+?([0-9.]+)", report).groups())
    assert after > before + 0.05, report  # the demo reports a Dice gain
    warped = parareg.load(out / "warped.nii.gz")
    assert warped.ndim == 3
    assert corr(warped.data, parareg.load(out / "fixed.nii.gz").data) > corr(
        parareg.load(out / "moving.nii.gz").data, parareg.load(out / "fixed.nii.gz").data)


def test_demo_without_data_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli_demo, "nilearn_files", lambda: None)
    monkeypatch.setattr(cli_demo, "dipy_file", lambda: None)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    assert "pip install 'parareg[demo]'" in error_line(capsys)


# --- progress ---------------------------------------------------------------------------------


class _Terminal:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text

    def flush(self):
        pass

    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_progress_redraws_on_a_terminal_and_writes_one_line_per_level_otherwise(
        tty, monkeypatch, capsys):
    from parareg.cli._common import RegistrationProgress

    terminal = _Terminal()
    if tty:
        monkeypatch.setattr("sys.stderr", terminal)
    progress = RegistrationProgress(enabled=True, affine_levels=((4, 2.0, 10), (2, 1.0, 5)),
                                    syn_levels=((2, 1.0, 7),), affine_metric="mi",
                                    syn_metric="cc", interval=0.0)
    for level, iterations in ((0, 3), (1, 2)):
        for iteration in range(1, iterations + 1):
            progress.affine({"stage": "rigid", "level": level, "iteration": iteration,
                             "value": -0.5 - iteration})
    progress.syn({"level": 0, "iteration": 1, "energy": -0.25})
    progress.close()
    text = terminal.text if tty else capsys.readouterr().err
    lines = [line.split("\r")[-1].rstrip() for line in text.split("\n") if line]
    assert lines == ["affine rigid       level 1/2  iteration   3/10  mi -3.5",
                     "affine rigid       level 2/2  iteration   2/5  mi -2.5",
                     "syn    shrink 2    level 1/1  iteration   1/7  cc energy -0.25"]
    assert ("\r" in text) == tty
    quiet = RegistrationProgress(enabled=False, affine_levels=((1, 0.0, 1),))
    quiet.affine({"stage": "rigid", "level": 0, "iteration": 1, "value": 1.0})
    quiet.close()
    assert capsys.readouterr().err == ""


@needs_slices
def test_apply_reproduces_ants_own_output_from_ants_written_files(tmp_path):
    """antsRegistration's own [Warp, GenericAffine] list through `parareg apply` = ANTs' warp."""
    ants = pytest.importorskip("ants")
    fixed, moving = ants.image_read(str(MINDBOGGLE[0])), ants.image_read(str(MINDBOGGLE[1]))
    reg = ants.registration(fixed, moving, type_of_transform="SyN",
                            outprefix=str(tmp_path / "ants_"))
    out = tmp_path / "applied.nii.gz"
    assert main(["apply", "-i", str(MINDBOGGLE[1]), "-r", str(MINDBOGGLE[0]), "-t",
                 *reg["fwdtransforms"], "-o", str(out), "-q"]) == 0
    ours = parareg.load(out).data
    theirs = reg["warpedmovout"].numpy()
    inside = theirs != 0  # ITK extends edge values half a voxel where parareg gives 0
    assert np.corrcoef(ours[inside], theirs[inside])[0, 1] > 0.999
