"""Reading inputs fast without changing them: one-pass gzip inflation, and nearest's label rule.

- :func:`parareg.io.gzip_chunks.read_gzip` gives the bytes Python's gzip gives
  (multi-member files too) and refuses truncated or corrupt files;
- :func:`parareg.io.nifti.stored_array` equals nibabel's ``dataobj`` /
  ``get_fdata(float32)`` bit for bit, for every storage type and scaling;
- :func:`parareg.io.nifti.load_labels_or_intensities` (what ``apply -n
  nearest`` and ``apply_transforms(interpolation="nearest")`` read) keeps
  integer labels and reads anything else as intensities.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg.cli.apply import main as apply_main
from parareg.io import gzip_chunks
from parareg.io.nifti import load_labels_or_intensities, stored_array


def _inflaters():
    """zlib, and ISA-L's inflate where the optional package is installed."""
    import importlib.util
    import zlib

    found = [zlib]
    if importlib.util.find_spec("isal") is not None:
        from isal import isal_zlib

        found.append(isal_zlib)
    return found


@pytest.fixture(params=_inflaters(), ids=lambda m: m.__name__)
def inflate(request, monkeypatch):
    monkeypatch.setattr(gzip_chunks, "_INFLATE", request.param)


def test_read_gzip_equals_python_gzip(tmp_path, monkeypatch, inflate):
    monkeypatch.setattr(gzip_chunks, "_READ_STEP", 1000)  # many steps, and members split by them
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 4, 5000, dtype=np.uint8).tobytes(), bytes(20000), b"tail" * 999]
    path = tmp_path / "multi.gz"
    path.write_bytes(b"".join(gzip.compress(p, mtime=0) for p in parts))
    whole = b"".join(parts)
    assert gzip_chunks.read_gzip(path, len(whole)).tobytes() == whole
    assert gzip_chunks.read_gzip(path, 7000).tobytes() == whole[:7000]


def test_read_gzip_refuses_truncated_and_corrupt(tmp_path, inflate):
    data = gzip.compress(np.arange(10000, dtype=np.float32).tobytes())
    (tmp_path / "short.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        gzip_chunks.read_gzip(tmp_path / "short.gz", 40000)
    (tmp_path / "bad.gz").write_bytes(data[:20] + b"\xff" * 100 + data[120:])
    with pytest.raises(ValueError):
        gzip_chunks.read_gzip(tmp_path / "bad.gz", 40000)


CASES = {
    "float32": (np.float32, None),
    "float64": (np.float64, None),
    "int16": (np.int16, None),
    "uint8": (np.uint8, None),
    "int64": (np.int64, None),
    "big-endian float32": (">f4", None),
    "int16 scaled": (np.int16, (0.37, -4.0)),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_stored_array_equals_nibabel(tmp_path, case, suffix):
    dtype, scaling = CASES[case]
    rng = np.random.default_rng(1)
    kind, size = np.dtype(dtype).kind, np.dtype(dtype).itemsize
    if kind == "f":
        values = rng.normal(0, 100, (9, 8, 7))
    else:  # int64 beyond float's exact integers: nibabel's float64 step rounds them
        low, high = (0, 200) if kind == "u" else (-2 ** (8 * size - 2), 2 ** (8 * size - 2))
        values = rng.integers(low, high, (9, 8, 7))
    nifti = nib.Nifti1Image(values.astype(dtype), np.eye(4), dtype=dtype)
    if scaling is not None:
        nifti.header.set_slope_inter(*scaling)
    path = tmp_path / f"image{suffix}"
    nib.save(nifti, path)
    for want_dtype in (None, np.float32):
        expected = (np.asanyarray(nib.load(path).dataobj) if want_dtype is None
                    else nib.load(path).get_fdata(dtype=want_dtype))
        got = stored_array(nib.load(path), dtype=want_dtype)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes(order="F") == expected.tobytes(order="F")


def test_stored_array_of_a_truncated_file_gives_nibabels_error(tmp_path):
    path = tmp_path / "cut.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 20, 20), np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(Exception) as ours:
        stored_array(nib.load(path))
    with pytest.raises(Exception) as theirs:
        np.asanyarray(nib.load(path).dataobj)
    assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)


def _save(tmp_path, name, data):
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def test_labels_or_intensities(tmp_path):
    labels = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    image = load_labels_or_intensities(_save(tmp_path, "l.nii.gz", labels), name="input")
    assert image.data.dtype == np.int16 and np.array_equal(image.data, labels)
    whole = _save(tmp_path, "w.nii.gz", labels.astype(np.float32))  # integer values as float
    assert load_labels_or_intensities(whole, name="input").data.dtype == np.int32
    smooth = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    image = load_labels_or_intensities(_save(tmp_path, "s.nii.gz", smooth), name="input")
    assert image.data.dtype == np.float32 and np.array_equal(image.data, smooth)
    with pytest.raises(FileNotFoundError, match="input: no such file"):
        load_labels_or_intensities(tmp_path / "missing.nii.gz", name="input")


def test_nearest_reads_labels_and_intensities_alike_in_cli_and_library(tmp_path):
    smooth = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    reference = _save(tmp_path, "r.nii.gz", smooth)
    matrix = tmp_path / "a.mat"
    parareg.io.itk.write_affine(np.eye(4), matrix)
    for name, data in (("s.nii.gz", smooth), ("l.nii.gz", labels)):
        source = _save(tmp_path, name, data)
        out = tmp_path / f"out_{name}"
        assert apply_main(["-i", str(source), "-r", str(reference), "-o", str(out), "-n",
                           "NearestNeighbor", "-t", str(matrix), "-q"]) == 0
        written = nib.load(out)
        library = parareg.apply_transforms(source, reference, [str(matrix)],
                                           interpolation="nearest")
        assert written.get_data_dtype() == data.dtype == library.data.dtype
        assert np.array_equal(np.asanyarray(written.dataobj), data)
        assert np.array_equal(library.data, data)
