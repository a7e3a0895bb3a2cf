"""Reading inputs fast without changing them: one-pass gzip inflation, and nearest's label rule.

- :func:`parareg.io.gzip_chunks.read_gzip` gives the bytes Python's gzip gives
  (multi-member files too; the members parareg writes in parallel, at any thread count)
  and refuses truncated or corrupt files; :class:`~parareg.io.gzip_chunks.GzipWriter`'s
  bytes do not depend on how the data is handed to it;
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


def _members_file(path, data: bytes, *, writes=(None,), threads: int = 2) -> bytes:
    """``data`` written through :class:`GzipWriter` in pieces of the sizes ``writes``."""
    from concurrent.futures import ThreadPoolExecutor

    with open(path, "wb") as f, ThreadPoolExecutor(threads) as pool, \
            gzip_chunks.GzipWriter(f, pool) as sink:
        start = 0
        for size in writes:
            stop = len(data) if size is None else start + size
            sink.write(data[start:stop])
            start = stop
        sink.write(data[start:])
        sink.finish()
    return path.read_bytes()


@pytest.fixture
def payload(monkeypatch):
    monkeypatch.setattr(gzip_chunks, "CHUNK_BYTES", 4096)  # many members from a small payload
    rng = np.random.default_rng(3)
    return np.cumsum(rng.normal(size=10000)).astype(np.float32).tobytes() + bytes(3000)


def test_members_are_found_from_their_headers_and_inflated_in_parallel(tmp_path, payload,
                                                                        monkeypatch, inflate):
    path = tmp_path / "m.gz"
    written = _members_file(path, payload)
    assert gzip.decompress(written) == payload  # ordinary gzip to every reader
    assert len(gzip_chunks._members(memoryview(written))) == -(-len(payload) // 4096)
    monkeypatch.setattr(gzip_chunks, "_read_serial", None)  # the parallel path, or a TypeError
    for threads in (1, 2, 3):
        got = gzip_chunks.read_gzip(path, len(payload), num_threads=threads)
        assert got.tobytes() == payload
    assert gzip_chunks.read_gzip(path, 5000).tobytes() == payload[:5000]


def test_member_bytes_do_not_depend_on_the_writes_or_the_threads(tmp_path, payload):
    want = _members_file(tmp_path / "a.gz", payload)
    for writes, threads in (((1, 4095, 2, 9000), 1), ((4096, 4096), 3), ((7, 13), 2)):
        assert _members_file(tmp_path / "b.gz", payload, writes=writes, threads=threads) == want
    empty = _members_file(tmp_path / "e.gz", b"")
    assert gzip.decompress(empty) == b"" and len(gzip_chunks._members(memoryview(empty))) == 1


def test_damaged_member_files_are_refused(tmp_path, payload, inflate):
    written = _members_file(tmp_path / "m.gz", payload)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(written[:len(written) // 2])
    with pytest.raises(ValueError, match="truncated"):
        gzip_chunks.read_gzip(cut, len(payload))
    bad = tmp_path / "bad.gz"
    middle = len(written) // 2
    bad.write_bytes(written[:middle] + bytes(b ^ 0xFF for b in written[middle:middle + 64])
                    + written[middle + 64:])
    with pytest.raises(ValueError):
        gzip_chunks.read_gzip(bad, len(payload))
    lying = bytearray(written)  # the first header claims one byte more than its member holds
    size = int.from_bytes(lying[20:24], "little")
    lying[20:24] = (size + 1).to_bytes(4, "little")
    (tmp_path / "lying.gz").write_bytes(lying)
    with pytest.raises(ValueError):
        gzip_chunks.read_gzip(tmp_path / "lying.gz", len(payload))


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


def test_a_reference_is_read_for_its_grid_only(tmp_path):
    from parareg.image import as_grid

    data = np.ones((20, 21, 22), np.float32)
    affine = np.diag([2.0, 3.0, 4.0, 1.0])
    path = tmp_path / "r.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    grid = as_grid(path, name="reference")
    assert grid.shape == (20, 21, 22)
    assert np.array_equal(grid.vox2world, parareg.load(path).vox2world)
    assert grid.data.strides == (0, 0, 0) and not grid.data.flags.writeable  # no voxels held
    cut = tmp_path / "cut.nii.gz"  # the header is whole, the voxels are not: the grid is known
    cut.write_bytes(path.read_bytes()[:200])
    assert as_grid(cut, name="reference").shape == (20, 21, 22)
    with pytest.raises(ValueError, match="could not read"):
        parareg.load(cut)  # whereas the voxels are read only by load
    single = _save(tmp_path, "s.nii.gz", data[:, :1])  # a single-slice volume is 2D, as load's
    assert as_grid(single, name="reference").shape == parareg.load(single).shape == (20, 22)
    with pytest.raises(FileNotFoundError, match="reference: no such file"):
        as_grid(tmp_path / "none.nii.gz", name="reference")
