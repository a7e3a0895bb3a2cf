"""Any image in: paths, nibabel images, ANTs images and ndarrays + affine give the same bits.

And the transform-chain engine as a library function (``parareg.apply_transforms``).
"""

from __future__ import annotations

import importlib.util

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg.image import as_image

from ._data import IXI_T1, MINDBOGGLE, needs_data

needs_ants = pytest.mark.skipif(importlib.util.find_spec("ants") is None,
                                reason="antspyx is not installed")

#: a short SyN (2D), enough to exercise every path of the pipeline
SHORT_SYN = {"levels": ((4, 1.0, 8), (2, 0.5, 4))}
SHORT_AFFINE = {"levels": ((4, 2.0, 20), (2, 1.0, 10))}


def _forms(path, *, with_ants: bool):
    """The same image as a path, a nibabel image, an ndarray + affine (and an ANTsImage)."""
    img = nib.load(path)
    forms = {"path": (str(path), None), "nibabel": (img, None),
             "ndarray": (np.asanyarray(img.dataobj), img.affine)}
    if with_ants:
        import ants

        forms["ants"] = (ants.image_read(str(path)), None)
    return forms


@needs_data
@pytest.mark.parametrize("with_ants", [pytest.param(True, marks=needs_ants)])
def test_every_input_form_registers_to_the_same_bits(with_ants):
    fixed_path, moving_path = MINDBOGGLE[0], MINDBOGGLE[1]
    fixed_forms = _forms(fixed_path, with_ants=with_ants)
    moving_forms = _forms(moving_path, with_ants=with_ants)
    results = {}
    for kind in fixed_forms:
        (fixed, fixed_affine), (moving, moving_affine) = fixed_forms[kind], moving_forms[kind]
        results[kind] = parareg.register(
            fixed, moving, fixed_affine=fixed_affine, moving_affine=moving_affine,
            preset="fast", num_threads=2, affine_options=SHORT_AFFINE, syn_options=SHORT_SYN)
    reference = results.pop("path")
    for kind, result in results.items():
        np.testing.assert_array_equal(result.affine.matrix, reference.affine.matrix, err_msg=kind)
        np.testing.assert_array_equal(result.mapping.forward, reference.mapping.forward,
                                      err_msg=kind)
        np.testing.assert_array_equal(result.warped.data, reference.warped.data, err_msg=kind)


@needs_data
def test_ixi_headers_read_the_same_through_nibabel_ants_and_ndarray():
    path = IXI_T1[0]
    loaded = parareg.load(path)
    img = nib.load(path)
    for image in (as_image(img, name="x"),
                  as_image(img.get_fdata(dtype=np.float32), name="x", affine=img.affine)):
        np.testing.assert_array_equal(image.data, loaded.data)
        np.testing.assert_array_equal(image.vox2world, loaded.vox2world)
    if importlib.util.find_spec("ants") is not None:
        import ants

        image = as_image(ants.image_read(str(path)), name="x")
        np.testing.assert_array_equal(image.data, loaded.data)
        np.testing.assert_allclose(image.vox2world, loaded.vox2world, rtol=0, atol=1e-6)


def test_to_nibabel_round_trip():
    image = parareg.Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4),
                          np.diag([2.0, 3.0, 4.0, 1.0]))
    back = as_image(image.to_nibabel(), name="x")
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_array_equal(back.vox2world, image.vox2world)
    labels = parareg.Image(np.array([[1, 2], [3, 4]], np.uint8), np.eye(3))
    assert as_image(labels.to_nibabel(), name="x", labels=True).data.dtype == np.uint8


@needs_ants
@pytest.mark.parametrize("ndim", [2, 3])
def test_to_ants_round_trip_keeps_geometry(ndim):
    rng = np.random.default_rng(0)
    rotation = np.linalg.qr(rng.normal(size=(ndim, ndim)))[0]
    vox2world = np.eye(ndim + 1)
    vox2world[:ndim, :ndim] = rotation * np.array([1.5, 2.0, 2.5][:ndim])
    vox2world[:ndim, ndim] = rng.normal(size=ndim) * 10
    image = parareg.Image(rng.random((5, 6, 7)[:ndim]).astype(np.float32), vox2world)
    ants_image = image.to_ants()
    assert ants_image.dimension == ndim
    back = as_image(ants_image, name="x")
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_allclose(back.vox2world, vox2world, rtol=0, atol=1e-12)
    labels = parareg.Image(np.array([[0, 7], [3, 4]], np.int32), np.eye(3))
    assert as_image(labels.to_ants(), name="x").data.tolist() == [[0, 7], [3, 4]]


@needs_ants
def test_ants_world_matches_ants_own_physical_points(tmp_path):
    """A voxel's RAS world point is ANTs' LPS physical point with x and y negated."""
    import ants

    vox2world = np.array([[0.0, -2.0, 0.0, 10.0], [1.5, 0.0, 0.0, -4.0],
                          [0.0, 0.0, 2.5, 3.0], [0, 0, 0, 1]])
    image = parareg.Image(np.zeros((4, 5, 6), np.float32), vox2world)
    path = tmp_path / "grid.nii.gz"
    parareg.save(image, path)
    ants_image = ants.image_read(str(path))
    lps = ants.transform_index_to_physical_point(ants_image, (1, 2, 3))
    ras = (vox2world @ [1, 2, 3, 1])[:3]
    np.testing.assert_allclose(lps, ras * [-1, -1, 1], atol=1e-5)
    np.testing.assert_allclose(as_image(ants_image, name="x").vox2world, vox2world, atol=1e-6)


# --- bad input ---------------------------------------------------------------------------------


def test_bad_inputs_are_named():
    data = np.zeros((4, 5, 6), np.float32)
    with pytest.raises(TypeError, match="fixed is an ndarray without a grid: pass fixed_affine="):
        parareg.register(data, data)
    with pytest.raises(TypeError, match="moving_affine is only for an ndarray moving"):
        parareg.register(data, parareg.Image(data, np.eye(4)), fixed_affine=np.eye(4),
                         moving_affine=np.eye(4))
    with pytest.raises(ValueError, match="fixed_affine must be a 4x4"):
        as_image(data, name="fixed", affine=np.eye(2))
    with pytest.raises(ValueError, match=r"fixed \(an ndarray\): vox2world is not invertible"):
        as_image(data, name="fixed", affine=np.zeros((4, 4)) + np.diag([0, 0, 0, 1.0]))
    four_d = nib.Nifti1Image(np.zeros((4, 5, 6, 3), np.float32), np.eye(4))
    with pytest.raises(ValueError, match=r"moving \(a Nifti1Image\) is 4D .*four_to_three"):
        as_image(four_d, name="moving")
    with pytest.raises(TypeError, match="image must be a parareg.Image, a path.*; got list"):
        parareg.gradient([[1.0, 2.0]])
    # a function with no *_affine keyword does not suggest one
    with pytest.raises(TypeError, match=r"without a grid: pass parareg.Image\(array, vox2world\)"):
        parareg.gradient(data)


@needs_ants
def test_multi_component_ants_image_is_refused():
    import ants

    vector = ants.from_numpy(np.zeros((4, 5, 6, 4), np.float32), has_components=True)
    with pytest.raises(ValueError, match="fixed .an ANTsImage. has 4 components.*split_channels"):
        as_image(vector, name="fixed")


# --- the transform chain as a library function -------------------------------------------------


@needs_data
def test_apply_transforms_takes_files_and_mappings(tmp_path):
    from parareg.cli.main import main

    fixed_path, moving_path = MINDBOGGLE[0], MINDBOGGLE[1]
    prefix = tmp_path / "out_"
    assert main(["register", str(fixed_path), str(moving_path), "-o", str(prefix),
                 "--preset", "fast", "-q"]) == 0
    files = [f"{prefix}1Warp.nii.gz", f"{prefix}0GenericAffine.mat"]
    fixed, moving = parareg.load(fixed_path), parareg.load(moving_path)
    from_files = parareg.apply_transforms(moving, fixed, files)
    cli_out = tmp_path / "cli.nii.gz"
    assert main(["apply", "-i", str(moving_path), "-r", str(fixed_path), "-o", str(cli_out),
                 "-t", *files, "-q"]) == 0
    np.testing.assert_array_equal(parareg.load(cli_out).data, from_files.data)
    written = parareg.load(f"{prefix}Warped.nii.gz")
    np.testing.assert_allclose(from_files.data, written.data, atol=1e-4)
    # the same chain from Python objects, and the inverse list
    result = parareg.register(fixed, moving, preset="fast")
    from_mapping = parareg.apply_transforms(moving, fixed, result.mapping)
    np.testing.assert_array_equal(from_mapping.data, result.warped.data)
    inverse_files = [f"{prefix}0GenericAffine.mat", f"{prefix}1InverseWarp.nii.gz"]
    back = parareg.apply_transforms(fixed, moving, inverse_files, invert=[True, False])
    back_mapping = parareg.apply_transforms(fixed, moving, result.mapping, invert=[True])
    inside = np.abs(back.data - back_mapping.data) < 1e-3 * float(np.ptp(fixed.data))
    assert inside.mean() > 0.99  # the edge rule of fields differs by half a voxel at the border


def test_apply_transforms_bad_lists_are_named(tmp_path):
    image = parareg.Image(np.zeros((4, 4), np.float32), np.eye(3))
    with pytest.raises(ValueError, match="invert has 2 entries but there are 1 transforms"):
        parareg.apply_transforms(image, image, [np.eye(3)], invert=[True, False])
    with pytest.raises(TypeError, match=r"transforms\[0\] \(a list\) must be a transform file"):
        parareg.apply_transforms(image, image, [[1, 2]])
    with pytest.raises(FileNotFoundError, match=r"transforms\[0\] .*no such transform file"):
        parareg.apply_transforms(image, image, [tmp_path / "none.mat"])
    with pytest.raises(ValueError, match=r"unknown transform type; expected an affine"):
        parareg.apply_transforms(image, image, [tmp_path / "c.xfm"])
    with pytest.raises(ValueError, match="interpolation must be one of"):
        parareg.apply_transforms(image, image, [np.eye(3)], interpolation="cubic")
    assert parareg.apply_transforms(image, image, [np.eye(3)],
                                    interpolation="NearestNeighbor").data.dtype == np.float32
