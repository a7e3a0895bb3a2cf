"""``parareg register`` and ``apply``: inputs are never outputs; label dtypes come through."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

import parareg
from parareg.cli.main import main
from parareg.io.itk import write_affine


def _md5(path) -> str:
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parareg: error: "), lines
    return lines[0]


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(3)
    spacing = np.diag([2.0, 2.0, 2.0, 1.0])
    for name in ("f", "m"):
        data = rng.random((8, 9, 10)).astype(np.float32)
        parareg.save(parareg.Image(data, spacing), tmp_path / f"{name}.nii.gz")
    write_affine(np.eye(4), tmp_path / "id.mat")
    return tmp_path


@pytest.mark.parametrize("role", ["fixed", "moving"])
@pytest.mark.parametrize("via", ["path", "symlink", "hard link"])
def test_register_refuses_an_input_as_output(images, capsys, role, via):
    out = images / "out"
    out.mkdir()
    victim = out / "o_Warped.nii.gz"
    os.replace(images / ("f.nii.gz" if role == "fixed" else "m.nii.gz"), victim)
    given = victim
    if via == "symlink":
        given = images / "link.nii.gz"
        given.symlink_to(victim)
    elif via == "hard link":
        given = images / "hard.nii.gz"
        os.link(victim, given)
    other = images / ("m.nii.gz" if role == "fixed" else "f.nii.gz")
    argv = [str(given), str(other)] if role == "fixed" else [str(other), str(given)]
    before = _md5(victim)
    assert main(["register", *argv, "-o", str(out / "o_"), "--transform", "rigid", "-q"]) == 2
    line = _error(capsys)
    assert f"'{out / 'o_Warped.nii.gz'}' is the {role} file '{given}'" in line
    assert _md5(victim) == before and sorted(os.listdir(out)) == ["o_Warped.nii.gz"]


def test_register_refuses_an_input_it_would_remove_as_stale(images, capsys):
    """--transform rigid removes an earlier run's 1Warp; that file must not be an input."""
    out = images / "out"
    out.mkdir()
    os.replace(images / "m.nii.gz", out / "o_1Warp.nii.gz")
    assert main(["register", str(images / "f.nii.gz"), str(out / "o_1Warp.nii.gz"), "-o",
                 str(out / "o_"), "--transform", "rigid", "-q"]) == 2
    assert "is the moving file" in _error(capsys)
    assert os.listdir(out) == ["o_1Warp.nii.gz"]


@pytest.mark.parametrize("which", ["-i", "-r", "-t", "symlink"])
def test_apply_refuses_an_input_as_output(images, capsys, which):
    target = {"-i": "m.nii.gz", "-r": "f.nii.gz", "-t": "id.mat", "symlink": "m.nii.gz"}[which]
    output = images / target
    if which == "symlink":
        output = images / "link.nii.gz"
        output.symlink_to(images / target)
    if which == "-t":
        output = images / "warp.nii.gz"
        parareg.io.write_warp(np.zeros((8, 9, 10, 3), np.float32), np.diag([2.0, 2, 2, 1]),
                              output)
        transforms = [str(output)]
    else:
        transforms = [str(images / "id.mat")]
    before = _md5(images / target if which != "-t" else output)
    argv = ["apply", "-i", str(images / "m.nii.gz"), "-r", str(images / "f.nii.gz"),
            "-o", str(output), "-t", *transforms]
    assert main(argv) == 2
    line = _error(capsys)
    name = {"-i": "input", "-r": "reference", "-t": f"-t {output}", "symlink": "input"}[which]
    assert f"is the {name} file" in line and str(output) in line
    assert _md5(images / target if which != "-t" else output) == before


def _label_image(values, dtype, tmp_path, name="labels.nii.gz"):
    data = np.zeros((6, 7, 8), dtype=dtype)
    data[1:3, 2:5, 3:6] = values[0]
    data[3:5, 1:4, 1:4] = values[1]
    parareg.save(parareg.Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / name)
    return data


@pytest.mark.parametrize("dtype, values", [
    (np.uint32, (4_000_000_000, 4_294_967_295)),
    (np.uint8, (7, 255)),
    (np.int64, (2**62 + 1, -(2**62) - 3)),
    (np.uint16, (65535, 1)),
])
def test_apply_nearest_keeps_label_values_and_dtype(tmp_path, dtype, values, capsys):
    data = _label_image(values, dtype, tmp_path)
    write_affine(np.eye(4), tmp_path / "id.mat")
    labels = str(tmp_path / "labels.nii.gz")
    assert main(["apply", "-i", labels, "-r", labels, "-o", str(tmp_path / "out.nii.gz"), "-n", "nearest", "-t",
                 str(tmp_path / "id.mat"), "-q"]) == 0
    back = parareg.load(tmp_path / "out.nii.gz", labels=True)
    assert back.data.dtype == dtype
    np.testing.assert_array_equal(back.data, data)


def test_nearest_resampling_of_uint32_through_a_shift_and_a_field(tmp_path):
    data = _label_image((4_000_000_000, 3_999_999_999), np.uint32, tmp_path)
    image = parareg.load(tmp_path / "labels.nii.gz", labels=True)
    shift = np.eye(4)
    shift[0, 3] = 2.0  # one voxel along axis 0
    moved = parareg.resample(image, image, affine=shift, interpolation="nearest")
    assert moved.data.dtype == np.uint32
    np.testing.assert_array_equal(moved.data[:-1], data[1:])
    assert np.all(moved.data[-1] == 0)
    field = np.zeros((6, 7, 8, 3), np.float32)
    field[..., 0] = 2.0
    warped = parareg.resample(image, image, field=field, interpolation="nearest")
    np.testing.assert_array_equal(warped.data, moved.data)


def test_register_replaces_the_whole_earlier_set(images, capsys):
    """An earlier syn run's warps and QC picture go when a rigid run replaces the set."""
    out = images / "out"
    out.mkdir()
    for name in ("o_1Warp.nii.gz", "o_1InverseWarp.nii.gz", "o_qc.png", "o_Warped.nii.gz",
                 "other_1Warp.nii.gz"):
        (out / name).write_bytes(b"earlier run")
    assert main(["register", str(images / "f.nii.gz"), str(images / "m.nii.gz"), "-o",
                 str(out / "o_"), "--transform", "rigid", "-q"]) == 0
    assert sorted(os.listdir(out)) == ["o_0GenericAffine.mat", "o_InverseWarped.nii.gz",
                                       "o_Warped.nii.gz", "o_settings.json",
                                       "other_1Warp.nii.gz"]
    assert (out / "other_1Warp.nii.gz").read_bytes() == b"earlier run"
