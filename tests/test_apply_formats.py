"""apply parity with antsApplyTransforms and greedy: HDF5 composites, greedy/FSL matrices,
time series and vector images, the collapsed field, output types.

Compared voxel by voxel with antspyx and picsl-greedy on real data. Until ITK's
half-voxel edge rule is parareg's default, comparisons use images whose border
is zero (the Mindboggle slices are) or the voxels mapped inside the image.
"""

from __future__ import annotations

import importlib.util
import io

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg.cli.main import main
from parareg.io.itk import write_affine
from parareg.io.itk_h5 import read_h5, write_h5

from ._data import IXI_T1, MINDBOGGLE, needs_data

needs_ants = pytest.mark.skipif(importlib.util.find_spec("ants") is None,
                                reason="antspyx is not installed")
needs_greedy = pytest.mark.skipif(importlib.util.find_spec("picsl_greedy") is None,
                                  reason="picsl-greedy is not installed")


def _close(a, b, *, rtol=1e-4):
    """max |a - b| within ``rtol`` of b's range."""
    scale = float(np.ptp(b)) or 1.0
    assert float(np.max(np.abs(np.asarray(a, np.float64) - b))) <= rtol * scale


@pytest.fixture(scope="module")
def ants_2d(tmp_path_factory):
    """A short ANTs SyNQuick of two Mindboggle slices, written as composite .h5 files."""
    import ants

    out = tmp_path_factory.mktemp("ants2d")
    fixed, moving = ants.image_read(str(MINDBOGGLE[0])), ants.image_read(str(MINDBOGGLE[1]))
    result = ants.registration(fixed, moving, type_of_transform="antsRegistrationSyNQuick[s]",
                               outprefix=str(out / "q_"), write_composite_transform=True,
                               reg_iterations=(10, 5, 0))
    return fixed, moving, result["fwdtransforms"], result["invtransforms"]


@needs_data
@needs_ants
def test_ants_composite_h5_forward_and_inverse_equal_ants(ants_2d):
    import ants

    fixed, moving, forward, inverse = ants_2d
    assert [kind for kind, *_ in read_h5(forward)] == ["warp", "affine"]
    ours = parareg.apply_transforms(MINDBOGGLE[1], MINDBOGGLE[0], [forward])
    _close(ours.data, ants.apply_transforms(fixed, moving, [forward]).numpy())
    back = parareg.apply_transforms(MINDBOGGLE[0], MINDBOGGLE[1], [inverse])
    _close(back.data, ants.apply_transforms(moving, fixed, [inverse]).numpy())


@needs_data
@needs_ants
def test_written_h5_is_applied_by_ants_as_the_original(ants_2d, tmp_path):
    import ants

    fixed, moving, forward, _ = ants_2d
    ours = tmp_path / "ours.h5"
    write_h5(read_h5(forward), ours)
    np.testing.assert_array_equal(ants.apply_transforms(fixed, moving, [str(ours)]).numpy(),
                                  ants.apply_transforms(fixed, moving, [forward]).numpy())
    for a, b in zip(read_h5(ours), read_h5(forward)):
        np.testing.assert_array_equal(a[1], b[1])


@needs_data
@needs_ants
def test_collapsed_field_is_applied_by_ants_as_the_list(ants_2d, tmp_path):
    import ants

    fixed, moving, forward, _ = ants_2d
    warp = tmp_path / "collapsed.nii.gz"
    assert main(["apply", "-r", str(MINDBOGGLE[0]), "-t", forward,
                 "-o", f"[{warp},1]", "-q"]) == 0
    _close(ants.apply_transforms(fixed, moving, [str(warp)]).numpy(),
           ants.apply_transforms(fixed, moving, [forward]).numpy())


def test_corrupt_and_unsupported_h5_are_named(tmp_path):
    import h5py

    image = parareg.Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    with pytest.raises(ValueError, match="could not be read as an ITK HDF5 transform file"):
        parareg.apply_transforms(image, image, [corrupt])
    foreign = tmp_path / "bspline.h5"
    with h5py.File(foreign, "w") as handle:
        group = handle.create_group("TransformGroup/0")
        group.create_dataset("TransformType", data=[b"BSplineTransform_double_3_3"])
        group.create_dataset("TransformParameters", data=np.zeros(3))
        group.create_dataset("TransformFixedParameters", data=np.zeros(3))
    with pytest.raises(ValueError, match="'BSplineTransform_double_3_3' is a non-linear"):
        parareg.apply_transforms(image, image, [foreign])
    with pytest.raises(ValueError, match="holds a displacement field, which cannot be inverted"):
        write_h5([("warp", np.zeros((4, 4, 4, 3), np.float32), np.eye(4))], tmp_path / "w.h5")
        parareg.apply_transforms(image, image, [tmp_path / "w.h5"], invert=[True])
    assert main(["apply", "-i", str(tmp_path / "x.nii.gz"), "-r", str(tmp_path / "x.nii.gz"),
                 "-t", str(corrupt), "-o", str(tmp_path / "o.nii.gz")]) == 2


# --- greedy and FSL matrices ------------------------------------------------------------------


@needs_data
@needs_greedy
def test_greedy_reslicing_is_reproduced_from_its_matrix_and_warp(tmp_path):
    import picsl_greedy

    fixed, moving = str(MINDBOGGLE[0]), str(MINDBOGGLE[1])
    affine, warp, resliced = tmp_path / "affine.mat", tmp_path / "warp.nii.gz", tmp_path / "r.nii"
    greedy = picsl_greedy.Greedy2D()
    log = io.StringIO()
    greedy.execute(f"-i {fixed} {moving} -a -dof 6 -ia-image-centers -n 20x10 -m NMI "
                   f"-threads 2 -o {affine}", out=log, err=log)
    greedy.execute(f"-i {fixed} {moving} -it {affine} -n 10x5 -m NCC 2x2 -threads 2 "
                   f"-o {warp}", out=log, err=log)
    greedy.execute(f"-rf {fixed} -rm {moving} {resliced} -r {warp} {affine}", out=log, err=log)
    ours = parareg.apply_transforms(moving, fixed, [warp, affine])
    _close(ours.data, parareg.load(resliced).data)


def test_greedy_matrix_of_the_wrong_size_is_named(tmp_path):
    image = parareg.Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    bad = tmp_path / "affine.mat"
    bad.write_text("1 0 0\n0 1 0\n0 0 1\n")
    with pytest.raises(ValueError, match="is a 3x3 text matrix; a greedy/c3d RAS matrix for 3D "
                                         "images is 4x4"):
        parareg.apply_transforms(image, image, [bad])
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("1 0 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match="holds rows of"):
        parareg.apply_transforms(image, image, [ragged])


@needs_data
def test_fsl_matrix_goes_through_nitransforms_in_parareg_convention(tmp_path):
    from nitransforms.io.fsl import FSLLinearTransform
    from nitransforms.io.itk import ITKLinearTransform

    from parareg.io.matrices import read_fsl

    reference, moving = nib.load(IXI_T1[0]), nib.load(IXI_T1[1])
    rotation = np.eye(4)
    c, s = np.cos(0.2), np.sin(0.2)
    rotation[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    rotation[:3, 3] = [4.0, -2.0, 1.5]
    # nitransforms reads an ITK file in parareg's convention, so its FSL conversion is too
    itk = write_affine(rotation, tmp_path / "r.txt")
    np.testing.assert_allclose(ITKLinearTransform.from_filename(str(itk)).to_ras(), rotation,
                               atol=1e-9)
    flirt = tmp_path / "flirt.mat"
    FSLLinearTransform.from_ras(rotation, reference=reference, moving=moving).to_filename(
        str(flirt))
    np.testing.assert_allclose(read_fsl(flirt, reference=IXI_T1[0], moving=IXI_T1[1]), rotation,
                               atol=1e-6)
    with pytest.raises(FileNotFoundError, match="moving: no such file"):
        read_fsl(flirt, reference=IXI_T1[0], moving=tmp_path / "none.nii.gz")


# --- time series, vectors, output types --------------------------------------------------------


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """5 volumes (a cropped, zero-padded IXI volume, scaled), an affine, and their paths."""
    out = tmp_path_factory.mktemp("series")
    volume = parareg.load(IXI_T1[0])
    crop = np.pad(volume.data[30:70, 30:70, 30:55], 3)
    vox2world = volume.vox2world
    data = np.stack([crop * (1 + 0.1 * t) for t in range(5)], axis=-1).astype(np.float32)
    image = nib.Nifti1Image(data, vox2world)
    image.header.set_zooms((*image.header.get_zooms()[:3], 2.5))
    path = out / "series.nii.gz"
    nib.save(image, path)
    reference = out / "reference.nii.gz"
    nib.save(nib.Nifti1Image(crop, vox2world), reference)
    rotation = np.eye(4)
    c, s = np.cos(0.1), np.sin(0.1)
    rotation[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    centre = vox2world @ [*(np.array(crop.shape) / 2), 1]
    rotation[:3, 3] = centre[:3] - rotation[:3, :3] @ centre[:3] + [1.0, -0.5, 0.3]
    affine = write_affine(rotation, out / "affine.mat")
    return path, reference, affine, data


@needs_data
def test_time_series_is_each_volume_through_one_chain(series, tmp_path):
    path, reference, affine, data = series
    out = tmp_path / "out.nii.gz"
    assert main(["apply", "-e", "3", "-i", str(path), "-r", str(reference), "-t", str(affine),
                 "-o", str(out), "-q", "--threads", "3"]) == 0
    written = nib.load(out)
    assert written.shape == (*nib.load(reference).shape, 5)
    assert written.header.get_zooms()[3] == pytest.approx(2.5)
    grid = parareg.load(reference)
    for t in range(5):
        single = parareg.apply_transforms(parareg.Image(data[..., t], nib.load(path).affine),
                                          grid, [affine], num_threads=1)
        np.testing.assert_array_equal(np.asarray(written.dataobj)[..., t], single.data)


@needs_data
@needs_ants
def test_time_series_equals_ants_per_volume(series, tmp_path):
    import ants

    path, reference, affine, _ = series
    out = tmp_path / "out.nii.gz"
    assert main(["apply", "-e", "time-series", "-i", str(path), "-r", str(reference),
                 "-t", str(affine), "-o", str(out), "-q"]) == 0
    ours = np.asarray(nib.load(out).dataobj)
    ref = ants.image_read(str(reference))
    theirs = ants.apply_transforms(ref, ants.image_read(str(path)), [str(affine)],
                                   imagetype=3).numpy()
    _close(ours, theirs)


@needs_data
def test_vector_image_is_transformed_per_component(series, tmp_path):
    path, reference, affine, data = series
    vector = nib.Nifti1Image(data[:, :, :, None, :3], nib.load(path).affine)
    vector.header.set_intent("vector")
    vector_path = tmp_path / "vector.nii.gz"
    nib.save(vector, vector_path)
    out = tmp_path / "out.nii.gz"
    assert main(["apply", "-e", "1", "-i", str(vector_path), "-r", str(reference),
                 "-t", str(affine), "-o", str(out), "-q"]) == 0
    written = nib.load(out)
    assert written.shape == (*nib.load(reference).shape, 1, 3)
    assert written.header.get_intent()[0] == "vector"
    series_out = tmp_path / "series.nii.gz"
    assert main(["apply", "-e", "3", "-i", str(path), "-r", str(reference), "-t", str(affine),
                 "-o", str(series_out), "-q"]) == 0
    np.testing.assert_array_equal(np.asarray(written.dataobj)[:, :, :, 0, :],
                                  np.asarray(nib.load(series_out).dataobj)[..., :3])


@needs_data
def test_output_type_casts_as_ants_does(series, tmp_path):
    _, reference, affine, _ = series
    out = tmp_path / "out.nii.gz"
    assert main(["apply", "-i", str(reference), "-r", str(reference), "-t", str(affine),
                 "-u", "uchar", "-o", str(out), "-q"]) == 0
    written = nib.load(out)
    assert written.get_data_dtype() == np.uint8
    linear = parareg.apply_transforms(reference, reference, [affine]).data
    np.testing.assert_array_equal(np.asarray(written.dataobj),
                                  np.clip(np.trunc(linear), 0, 255).astype(np.uint8))
    assert main(["apply", "-i", str(reference), "-r", str(reference), "-t", str(affine),
                 "-u", "double", "--float", "-o", str(out), "-q"]) == 0
    assert nib.load(out).get_data_dtype() == np.float64


@needs_data
def test_series_and_output_bad_inputs_are_named(series, tmp_path, capsys):
    path, reference, affine, _ = series
    out = str(tmp_path / "o.nii.gz")
    base = ["apply", "-r", str(reference), "-t", str(affine), "-o", out]
    cases = [
        (["-e", "3", "-i", str(reference)], "-e 3: input .* not a time series"),
        (["-e", "2", "-i", str(path)], "tensor. is not supported"),
        (["-e", "7", "-i", str(path)], "expected 0 .scalar., 1 .vector. or 3"),
        (["-u", "half", "-i", str(path)], "expected one of char, uchar"),
        (["-i", str(path)], "is 4D .* -e 3"),
        ([], "-i/--input is required"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        assert __import__("re").search(message, capsys.readouterr().err), (extra, message)
    assert main(["apply", "-r", str(reference), "-t", str(affine), "-o",
                 f"Linear[{tmp_path / 'a.nii.gz'}]"]) == 2
    assert "must end in .mat" in capsys.readouterr().err


def test_generic_label_on_a_float_image_is_named(tmp_path, capsys):
    path = tmp_path / "float.nii.gz"
    nib.save(nib.Nifti1Image(np.linspace(0, 1, 60, dtype=np.float32).reshape(3, 4, 5),
                             np.eye(4)), path)
    affine = write_affine(np.eye(4), tmp_path / "a.mat")
    assert main(["apply", "-i", str(path), "-r", str(path), "-t", str(affine),
                 "-n", "GenericLabel", "-o", str(tmp_path / "o.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("parareg: error:") and "'genericlabel' needs an integer label" in err
    assert not (tmp_path / "o.nii.gz").exists()
