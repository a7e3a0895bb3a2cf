"""The layout kernels (NIfTI's Fortran planes <-> parareg's C-ordered fields) and what uses them.

- each kernel equals its NumPy twin, bit for bit, at 1, 2 and 3 threads;
- the files written through them are byte-identical to what nibabel writes
  from the C-ordered arrays (so outputs did not change), and read back the same.
"""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg.io.itk_warp import read_warp, warp_to_nifti, write_warp
from parareg.io.layout import field_to_fortran, fortran_to_field
from parareg.io.nifti import to_nifti

SIGN = np.array([-1.0, -1.0, 1.0], np.float32)
#: odd sizes, none a multiple of the kernels' block
SHAPE = (37, 11, 19)


def _field(shape=SHAPE, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    field = rng.normal(0.0, 3.0, (*shape, 3)).astype(dtype)
    field[0, 0, 0] = [0.0, -0.0, 1e-30]  # signed zeros and tiny values survive the sign
    return field


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fortran_to_field_equals_numpy(dtype, threads):
    stored = np.asfortranarray(_field(dtype=dtype))
    twin = np.ascontiguousarray(stored.astype(np.float32) * SIGN)
    field, finite = fortran_to_field(stored, SIGN, num_threads=threads)
    assert finite and field.flags.c_contiguous and field.dtype == np.float32
    assert field.tobytes() == twin.tobytes()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_field_to_fortran_equals_numpy(threads):
    field = _field()
    twin = np.asfortranarray(field * SIGN)
    out = field_to_fortran(field, SIGN, num_threads=threads)
    assert out.flags.f_contiguous and out.dtype == np.float32
    assert out.tobytes(order="A") == twin.tobytes(order="A")
    assert np.array_equal(out, twin)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fortran_to_field_reports_non_finite(bad):
    stored = np.asfortranarray(_field())
    stored[36, 10, 18, 2] = bad  # the last voxel of the last block
    assert fortran_to_field(stored, SIGN, num_threads=2)[1] is False


def test_other_layouts_and_dtypes_go_through_numpy():
    field = _field()
    for data in (field, field.astype(">f4"), np.asfortranarray(field.astype(np.float16))):
        out, finite = fortran_to_field(data, SIGN)
        assert finite and np.array_equal(out, data.astype(np.float32) * SIGN)


def _nibabel_bytes(nifti):
    raw = io.BytesIO()
    nifti.to_file_map(nib.Nifti1Image.make_file_map({"image": raw}))
    return raw.getvalue()


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_bytes_as_nibabel_writes_the_c_ordered_field(ndim):
    field = _field()[:, :, 0, :2] if ndim == 2 else _field()
    vox2world = np.diag([2.0] * ndim + [1.0])
    ours = warp_to_nifti(field, vox2world)
    lps = field * SIGN[:ndim]
    data = lps[:, :, None, None, :] if ndim == 2 else lps[:, :, :, None, :]
    theirs = nib.Nifti1Image(np.ascontiguousarray(data), ours.affine, header=ours.header)
    assert _nibabel_bytes(ours) == _nibabel_bytes(theirs)


@pytest.mark.parametrize("shape", [(23, 17, 5), (23, 17)])
def test_image_bytes_as_nibabel_writes_the_c_ordered_image(shape):
    rng = np.random.default_rng(1)
    image = parareg.Image(rng.normal(size=shape).astype(np.float32), np.eye(len(shape) + 1))
    ours = to_nifti(image)
    theirs = nib.Nifti1Image(image.data, ours.affine, header=ours.header)
    assert _nibabel_bytes(ours) == _nibabel_bytes(theirs)


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_round_trip_bits(tmp_path, ndim):
    field = _field()[:, :, 0, :2] if ndim == 2 else _field()
    path = write_warp(field, np.eye(ndim + 1), tmp_path / "w.nii.gz", num_threads=3)
    back, _ = read_warp(path)
    assert back.flags.c_contiguous and back.tobytes() == field.tobytes()


def test_read_warp_refuses_nan(tmp_path):
    data = np.asfortranarray(_field()[:, :, :, None, :])
    data[3, 4, 5, 0, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ValueError, match="NaN or inf displacements"):
        read_warp(tmp_path / "nan.nii.gz")
