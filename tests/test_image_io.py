"""parareg.Image checks and NIfTI load/save, on synthetic files and on the shared real data."""

from __future__ import annotations

import errno
import gzip
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import parareg
import parareg.io.nifti as nifti
import parareg.io.outputs as outputs
from parareg import Image
from parareg.image import as_image

from ._data import IXI_LABELS, IXI_T1, MINDBOGGLE, MINDBOGGLE_LABELS, needs_data


def rotation_2d(degrees):
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def oblique_3d():
    """A rotated, anisotropic, slightly sheared, translated 3D vox2world."""
    m = np.eye(4)
    a, b = np.deg2rad(25), np.deg2rad(-40)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    shear = np.array([[1, 0.1, 0], [0, 1, 0], [0, 0, 1]])
    m[:3, :3] = rz @ rx @ shear @ np.diag([1.5, 0.8, 2.5])
    m[:3, 3] = [-90.25, 12.5, 40.0]
    return m


def write_nifti(path, data, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)
    return path


# --------------------------------------------------------------------------- Image


def test_image_properties_3d():
    vox2world = oblique_3d()
    image = Image(np.zeros((4, 5, 6)), vox2world)
    assert image.shape == (4, 5, 6) and image.ndim == 3
    assert image.data.dtype == np.float32
    assert not image.is_labels
    expected = np.linalg.norm(vox2world[:3, :3], axis=0)  # length of each voxel axis
    np.testing.assert_allclose(image.spacing, expected)
    np.testing.assert_allclose(image.world2vox @ vox2world, np.eye(4), atol=1e-12)
    assert "(4, 5, 6)" in repr(image)


def test_image_properties_2d():
    vox2world = np.eye(3)
    vox2world[:2, :2] = rotation_2d(70) @ np.diag([0.5, 3.0])
    image = Image(np.ones((7, 3), dtype=np.float64), vox2world)
    assert image.shape == (7, 3) and image.ndim == 2
    np.testing.assert_allclose(image.spacing, [0.5, 3.0])
    assert image.vox2world.dtype == np.float64


def test_image_keeps_integer_labels():
    labels = np.array([[[0, 3], [7, 148]]], dtype=np.int16)
    image = Image(labels, np.eye(4))
    assert image.is_labels and image.data.dtype == np.int16
    assert Image(labels > 5, np.eye(4)).data.dtype == np.uint8
    same_grid = image.with_data(np.ones((1, 2, 2)))
    assert same_grid.data.dtype == np.float32
    np.testing.assert_array_equal(same_grid.vox2world, image.vox2world)


@pytest.mark.parametrize("data", [np.zeros(5), np.zeros((2, 3, 4, 2)), np.float32(1.0),
                                  np.zeros((3, 0, 4)), np.zeros((0, 2))])
def test_image_rejects_bad_shapes(data):
    with pytest.raises(ValueError, match="data"):
        Image(data, np.eye(4))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_image_rejects_non_finite(bad):
    data = np.ones((3, 4, 5))
    data[1, 2, 3] = bad
    with pytest.raises(ValueError, match="data contains 1 NaN or inf"):
        Image(data, np.eye(4))


@pytest.mark.parametrize("data", [np.ones((3, 3), dtype=complex), np.array([["a", "b"]] * 2)])
def test_image_rejects_non_real(data):
    with pytest.raises(ValueError, match="data"):
        Image(data, np.eye(3))


@pytest.mark.parametrize("shape, vox2world", [
    ((3, 4, 5), np.eye(3)),
    ((3, 4), np.eye(4)),
    ((3, 4, 5), np.eye(4)[:3]),
    ((3, 4, 5), np.eye(4).ravel()),
    ((3, 4, 5), None),
    ((3, 4, 5), "identity"),
])
def test_image_rejects_bad_matrix_shape(shape, vox2world):
    with pytest.raises(ValueError, match="vox2world"):
        Image(np.zeros(shape), vox2world)


def test_image_rejects_bad_matrix_values():
    with pytest.raises(ValueError, match="vox2world.*not invertible"):
        Image(np.zeros((3, 4, 5)), np.diag([1.0, 0.0, 1.0, 1.0]))
    singular = np.eye(4)
    singular[:3, 2] = singular[:3, 0] + singular[:3, 1]  # third axis in the plane of the others
    with pytest.raises(ValueError, match="vox2world.*not invertible"):
        Image(np.zeros((3, 4, 5)), singular)
    with pytest.raises(ValueError, match="vox2world.*NaN or inf"):
        Image(np.zeros((3, 4, 5)), np.diag([1.0, np.nan, 1.0, 1.0]))
    projective = np.eye(3)
    projective[2, 0] = 0.5
    with pytest.raises(ValueError, match="vox2world.*last row"):
        Image(np.zeros((3, 4)), projective)


def test_as_image():
    image = Image(np.zeros((2, 3)), np.eye(3))
    assert as_image(image, name="fixed") is image
    with pytest.raises(TypeError, match="moving is an ndarray without a grid: pass moving_affine="):
        as_image(np.zeros((2, 3)), name="moving", affine=None)
    with pytest.raises(TypeError, match="moving must be a parareg.Image, a path"):
        as_image([[0.0]], name="moving")
    with pytest.raises(FileNotFoundError, match="fixed"):
        as_image("/no/such/file.nii.gz", name="fixed")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_round_trip_3d_float(tmp_path, suffix):
    rng = np.random.default_rng(0)
    image = Image(rng.normal(size=(6, 7, 8)), oblique_3d())
    path = parareg.save(image, tmp_path / f"t1{suffix}")
    assert path == tmp_path / f"t1{suffix}"
    back = parareg.load(path)
    assert back.data.dtype == np.float32 and back.shape == (6, 7, 8)
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_allclose(back.vox2world, image.vox2world, atol=1e-5)  # header is float32
    assert os.listdir(tmp_path) == [f"t1{suffix}"]  # atomic save leaves no temporary file


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
def test_round_trip_3d_labels(tmp_path, dtype):
    labels = np.random.default_rng(1).integers(0, 149, size=(5, 6, 7)).astype(dtype)
    image = Image(labels, np.diag([2.0, 2.0, 2.0, 1.0]))
    parareg.save(image, tmp_path / "seg.nii.gz")
    back = parareg.load(tmp_path / "seg.nii.gz", labels=True)
    assert back.is_labels
    np.testing.assert_array_equal(back.data, labels)
    as_float = parareg.load(tmp_path / "seg.nii.gz")
    assert as_float.data.dtype == np.float32 and not as_float.is_labels
    np.testing.assert_array_equal(as_float.data, labels.astype(np.float32))


@pytest.mark.parametrize("degrees", [0, 30, 90, 135, -100])
def test_round_trip_2d(tmp_path, degrees):
    vox2world = np.eye(3)
    vox2world[:2, :2] = rotation_2d(degrees) @ np.diag([0.9, 2.0])
    vox2world[:2, 2] = [-12.5, 40.0]
    image = Image(np.arange(20, dtype=np.float32).reshape(4, 5), vox2world)
    parareg.save(image, tmp_path / "slice.nii.gz")
    back = parareg.load(tmp_path / "slice.nii.gz")
    assert back.ndim == 2 and back.shape == (4, 5)
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_allclose(back.vox2world, image.vox2world, atol=1e-5)


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "out.nii.gz"
    parareg.save(Image(np.zeros((2, 3, 4)), np.eye(4)), path)
    parareg.save(Image(np.ones((3, 3, 3)), np.eye(4)), path)
    np.testing.assert_array_equal(parareg.load(path).data, np.ones((3, 3, 3)))
    assert os.listdir(tmp_path) == ["out.nii.gz"]


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.nii"
    parareg.save(Image(np.full((2, 3, 4), 5.0), np.eye(4)), path)

    def crash(temp, parts):
        os.write(temp.fd, b"half a header")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(outputs.OutputSet, "_write_all", staticmethod(crash))
    with pytest.raises(OSError, match="No space left.*out.nii") as info:
        parareg.save(Image(np.zeros((2, 3, 4)), np.eye(4)), path)
    assert info.value.errno == errno.ENOSPC and str(tmp_path) in str(info.value)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["out.nii"]
    np.testing.assert_array_equal(parareg.load(path).data, np.full((2, 3, 4), 5.0))


def test_save_errors(tmp_path):
    image = Image(np.zeros((2, 3, 4)), np.eye(4))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parareg.save(image, tmp_path / "missing" / "out.nii.gz")
    with pytest.raises(ValueError, match=r"\.nii or \.nii\.gz"):
        parareg.save(image, tmp_path / "out.png")
    with pytest.raises(TypeError, match="parareg.Image"):
        parareg.save(np.zeros((2, 3, 4)), tmp_path / "out.nii")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- loading odd files


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.nii.gz"):
        parareg.load(tmp_path / "nope.nii.gz")


def test_load_directory(tmp_path):
    with pytest.raises(ValueError, match="directory"):
        parareg.load(tmp_path)


@pytest.mark.parametrize("name, content", [
    ("junk.nii.gz", b"\x00\x01 not gzip at all" * 10),
    ("junk.nii", b"hello, I am text, not NIfTI\n" * 20),
    ("empty.nii", b""),
    ("unknown.xyz", b"whatever"),
])
def test_load_unreadable_file(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match="could not read"):
        parareg.load(tmp_path / name)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_load_truncated_file(tmp_path, suffix):
    full = write_nifti(tmp_path / f"full{suffix}", np.ones((20, 20, 20), dtype=np.float32))
    raw = gzip.decompress(full.read_bytes()) if suffix == ".nii.gz" else full.read_bytes()
    cut = raw[: len(raw) // 2]
    (tmp_path / f"cut{suffix}").write_bytes(gzip.compress(cut) if suffix == ".nii.gz" else cut)
    with pytest.raises(ValueError, match="could not read"):
        parareg.load(tmp_path / f"cut{suffix}")


def test_load_4d_series_is_an_error(tmp_path):
    write_nifti(tmp_path / "series.nii.gz", np.zeros((4, 5, 6, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="4D"):
        parareg.load(tmp_path / "series.nii.gz")


def test_load_trailing_singleton_is_3d(tmp_path):
    data = np.random.default_rng(2).normal(size=(4, 5, 6, 1)).astype(np.float32)
    write_nifti(tmp_path / "vol.nii.gz", data, oblique_3d())
    image = parareg.load(tmp_path / "vol.nii.gz")
    assert image.ndim == 3 and image.shape == (4, 5, 6)
    np.testing.assert_array_equal(image.data, data[..., 0])
    np.testing.assert_allclose(image.vox2world, oblique_3d(), atol=1e-5)


@pytest.mark.parametrize("shape, kept", [((6, 7, 1), (0, 1)), ((6, 1, 7), (0, 2)),
                                         ((1, 6, 7), (1, 2)), ((6, 7, 1, 1), (0, 1))])
def test_load_single_slice_as_2d(tmp_path, shape, kept):
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    affine = np.diag([1.5, 2.0, 3.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 30.0]
    write_nifti(tmp_path / "slice.nii.gz", data, affine)
    image = parareg.load(tmp_path / "slice.nii.gz")
    assert image.ndim == 2 and image.shape == (6, 7)
    np.testing.assert_array_equal(image.data, data.reshape(6, 7))
    expected = np.eye(3)
    expected[[0, 1], [0, 1]] = affine[kept, kept]
    expected[:2, 2] = affine[kept, 3]
    np.testing.assert_allclose(image.vox2world, expected)


def test_single_slice_world_frame_does_not_depend_on_voxel_order(tmp_path):
    # A coronal slice of an IXI-like (PSR) volume, stored once as (1, S, R) and once
    # transposed as (1, R, S): the same voxel must land on the same world point.
    affine = np.array([[0.0, 0.0, 2.0, -88.0], [-2.0, 0.0, 0.0, 118.0],
                       [0.0, 2.0, 0.0, -135.0], [0.0, 0.0, 0.0, 1.0]])
    data = np.random.default_rng(3).normal(size=(1, 8, 9)).astype(np.float32)
    swapped = affine[:, [0, 2, 1, 3]]
    write_nifti(tmp_path / "a.nii.gz", data, affine)
    write_nifti(tmp_path / "b.nii.gz", data.transpose(0, 2, 1), swapped)
    a, b = parareg.load(tmp_path / "a.nii.gz"), parareg.load(tmp_path / "b.nii.gz")
    np.testing.assert_array_equal(a.data, b.data.T)
    for j, k in [(0, 0), (3, 5), (7, 8)]:
        np.testing.assert_allclose(a.vox2world @ [j, k, 1], b.vox2world @ [k, j, 1])
        # in-plane world coordinates are the (x, z) of the 3D position, in world order
        world = affine @ [0, j, k, 1]
        np.testing.assert_allclose(a.vox2world[:2] @ [j, k, 1], world[[0, 2]])


def test_load_line_is_an_error(tmp_path):
    write_nifti(tmp_path / "line.nii.gz", np.zeros((1, 1, 9), dtype=np.float32))
    with pytest.raises(ValueError, match="2D or 3D"):
        parareg.load(tmp_path / "line.nii.gz")


def test_load_labels_refuses_fractions(tmp_path):
    write_nifti(tmp_path / "prob.nii.gz", np.full((3, 3, 3), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="non-integer.*labels=False"):
        parareg.load(tmp_path / "prob.nii.gz", labels=True)


def test_load_labels_from_float_storage(tmp_path):
    write_nifti(tmp_path / "seg.nii.gz", np.array([[[0.0, 2.0], [31.0, 1035.0]]], np.float32))
    image = parareg.load(tmp_path / "seg.nii.gz", labels=True)
    assert image.is_labels
    np.testing.assert_array_equal(image.data, [[0, 2], [31, 1035]])


def test_load_rejects_nan(tmp_path):
    write_nifti(tmp_path / "nan.nii.gz", np.full((3, 3, 3), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="nan.nii.gz.*NaN or inf"):
        parareg.load(tmp_path / "nan.nii.gz")


# --------------------------------------------------------------------------- real data


@needs_data
def test_real_ixi_volume_and_labels():
    t1 = parareg.load(IXI_T1[0])
    assert t1.ndim == 3 and t1.shape == (120, 120, 90)
    assert t1.data.dtype == np.float32
    np.testing.assert_allclose(t1.spacing, [2.0, 2.0, 2.0], atol=1e-5)
    assert t1.data.max() > t1.data.min()

    labels = parareg.load(IXI_LABELS[0], labels=True)
    assert labels.is_labels and labels.shape == t1.shape
    values = np.unique(labels.data)
    assert values[0] == 0 and len(values) == 149  # background + the 148 DLMUSE labels
    np.testing.assert_allclose(labels.vox2world, t1.vox2world, atol=1e-4)


@needs_data
def test_real_mindboggle_slice_is_2d():
    image = parareg.load(MINDBOGGLE[0])
    assert image.ndim == 2 and image.shape == (216, 291)
    assert image.vox2world.shape == (3, 3)
    np.testing.assert_allclose(image.spacing, [1.0, 1.0], atol=1e-5)
    labels = parareg.load(MINDBOGGLE_LABELS[0], labels=True)
    assert labels.is_labels and labels.shape == image.shape
    assert len(np.unique(labels.data)) > 10


# --------------------------------------------------------------------------- load messages


def _header_only(path, shape, dtype=np.float32):
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\0" * 4
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def test_load_huge_declared_header_names_shape_and_bytes(tmp_path):
    with pytest.raises(ValueError, match=r"declares shape \(4000, 4000, 4000\) of float32 "
                                         r"\(238 GiB of data\).*truncated"):
        parareg.load(_header_only(tmp_path / "huge.nii", (4000, 4000, 4000)))
    with pytest.raises(MemoryError, match=r"declares shape \(4000, 4000, 4000\), 238 GiB in "
                                          r"memory, more than this machine has"):
        parareg.load(_header_only(tmp_path / "huge.nii.gz", (4000, 4000, 4000)))


def test_load_rgb_image_says_convert_to_grey(tmp_path):
    rgb = np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii.gz")
    with pytest.raises(ValueError, match=r"RGB/vector image \(channels R, G, B\).*convert it to "
                                         "grey first"):
        parareg.load(tmp_path / "rgb.nii.gz")


def test_load_unreadable_file_says_permission_denied(tmp_path):
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        folder.chmod(0o755)
        path = folder / "secret.nii.gz"
        parareg.save(Image(np.zeros((3, 4, 5)), np.eye(4)), path)
        path.chmod(0o000)
        # root reads any file: drop to "nobody" once the modules are imported
        code = ("import os, parareg, parareg.io.nifti\nif os.geteuid() == 0:\n"
                "    os.setuid(65534)\ntry:\n    parareg.load(%r)\n"
                "except PermissionError as e:\n    print(e)\n" % str(path))
        src = str(Path(parareg.__file__).resolve().parents[1])
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=dict(os.environ, PYTHONPATH=src), timeout=120)
        assert f"path: permission denied: cannot read {str(path)!r}" in done.stdout, done.stderr
    finally:
        shutil.rmtree(folder)


def test_float_stored_labels_are_never_narrowed(tmp_path):
    data = np.zeros((3, 4, 5), np.float64)
    data[0, 0, 0] = 4e9  # beyond int32
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "big.nii.gz")
    image = parareg.load(tmp_path / "big.nii.gz", labels=True)
    assert image.data.dtype == np.int64 and image.data[0, 0, 0] == 4_000_000_000
    data[0, 0, 0] = 2.0**60  # floats cannot hold such integers exactly
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "huge.nii.gz")
    with pytest.raises(ValueError, match="cannot represent exactly as integers.*integer NIfTI"):
        parareg.load(tmp_path / "huge.nii.gz", labels=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint32, np.int64, np.uint64])
def test_labels_keep_their_dtype_on_disk(tmp_path, dtype):
    data = np.array([[[0, 1], [2, np.iinfo(dtype).max]], [[3, 4], [5, 6]]], dtype=dtype)
    parareg.save(Image(data, np.eye(4)), tmp_path / "l.nii.gz")
    assert nib.load(tmp_path / "l.nii.gz").get_data_dtype() == dtype
    back = parareg.load(tmp_path / "l.nii.gz", labels=True).data
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, data)
