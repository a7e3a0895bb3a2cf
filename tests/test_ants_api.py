"""parareg.ants without antspyx: files, outputs, starts, masks, warnings and bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import parareg
import parareg.ants as pants
from parareg.io import read_affine, read_warp, write_affine, write_warp
from tests._data import MINDBOGGLE

needs_slices = pytest.mark.skipif(len(MINDBOGGLE) < 2, reason="Mindboggle slices not present")

#: a cheap affine schedule (ANTsPy's names) for tests that need any registration
CHEAP = {"aff_iterations": (30, 20, 0), "aff_shrink_factors": (4, 2, 1),
         "aff_smoothing_sigmas": (2, 1, 0)}


@pytest.fixture(scope="module")
def slices():
    return pants.image_read(str(MINDBOGGLE[0])), pants.image_read(str(MINDBOGGLE[1]))


@needs_slices
def test_image_read_is_parareg_load_with_antspy_attributes(slices):
    fixed, _ = slices
    image = parareg.load(MINDBOGGLE[0])
    assert isinstance(fixed, pants.ANTsImage)
    np.testing.assert_array_equal(fixed.numpy(), image.data)
    assert fixed.shape == image.shape and fixed.dimension == 2
    assert fixed.spacing == tuple(image.spacing)
    with pytest.raises(ValueError, match="holds a 2D image"):
        pants.image_read(str(MINDBOGGLE[0]), dimension=3)


@needs_slices
def test_affine_files_outputs_and_stale_removal(slices, tmp_path):
    fixed, moving = slices
    prefix = str(tmp_path / "sub01_")
    old_warp = Path(prefix + "1Warp.nii.gz")
    old_warp.write_bytes(b"an earlier run's warp")
    keep = Path(prefix + "notes.txt")
    keep.write_text("not ours")
    tx = pants.registration(fixed, moving, "Affine", outprefix=prefix, **CHEAP)
    assert tx["fwdtransforms"] == [prefix + "0GenericAffine.mat"]
    assert tx["invtransforms"] == tx["fwdtransforms"]
    assert not old_warp.exists() and keep.exists()  # the set replaces the earlier one
    assert isinstance(tx["warpedmovout"], pants.ANTsImage)
    assert tx["warpedmovout"].shape == fixed.shape and tx["warpedfixout"].shape == moving.shape
    # the written matrix is the registration's: applying it reproduces warpedmovout
    again = pants.apply_transforms(fixed, moving, tx["fwdtransforms"])
    scale = float(np.ptp(moving.numpy()))
    assert np.abs(again.numpy() - tx["warpedmovout"].numpy()).max() <= 1e-4 * scale
    back = pants.apply_transforms(moving, fixed, tx["invtransforms"], whichtoinvert=[True])
    assert np.abs(back.numpy() - tx["warpedfixout"].numpy()).max() <= 1e-4 * scale


@needs_slices
@pytest.mark.parametrize("type_of_transform, files", [
    ("Similarity", 1), ("BOLDAffine", 1), ("antsRegistrationSyNRepro[a]", 1),
    ("antsRegistrationSyNQuick[sr]", 3)])
def test_more_types_run_with_their_antspy_defaults(slices, tmp_path, type_of_transform, files):
    fixed, moving = slices
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tx = pants.registration(fixed, moving, type_of_transform, outprefix=str(tmp_path / "t_"))
    assert len(set(tx["fwdtransforms"]) | set(tx["invtransforms"])) == files
    before = np.corrcoef(fixed.numpy().ravel(), moving.numpy().ravel())[0, 1]
    after = np.corrcoef(fixed.numpy().ravel(), tx["warpedmovout"].numpy().ravel())[0, 1]
    assert after > before


@needs_slices
def test_empty_outprefix_writes_a_new_temporary_folder(slices):
    fixed, moving = slices
    tx = pants.registration(fixed, moving, "Rigid", **CHEAP)
    path = Path(tx["fwdtransforms"][0])
    assert path.name == "0GenericAffine.mat" and path.parent.name.startswith("parareg_ants_")
    assert path.exists()


@needs_slices
def test_paths_and_parareg_images_are_accepted_and_give_the_same_bits(slices, tmp_path):
    fixed, moving = slices
    a = pants.registration(fixed, moving, "Rigid", outprefix=str(tmp_path / "a_"), **CHEAP)
    b = pants.registration(str(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1]), "Rigid",
                           outprefix=str(tmp_path / "b_"), **CHEAP)
    np.testing.assert_array_equal(a["warpedmovout"].numpy(), b["warpedmovout"].numpy())
    assert (tmp_path / "a_0GenericAffine.mat").read_bytes() == \
        (tmp_path / "b_0GenericAffine.mat").read_bytes()


@needs_slices
def test_syn_only_starts_from_the_initial_transform(slices, tmp_path):
    fixed, moving = slices
    start = pants.registration(fixed, moving, "Affine", outprefix=str(tmp_path / "aff_"),
                               **CHEAP)
    tx = pants.registration(fixed, moving, "SyNOnly", outprefix=str(tmp_path / "syn_"),
                            initial_transform=start["fwdtransforms"][0], reg_iterations=(10, 0))
    assert tx["fwdtransforms"] == [str(tmp_path / "syn_1Warp.nii.gz"),
                                   str(tmp_path / "syn_0GenericAffine.mat")]
    np.testing.assert_allclose(read_affine(tx["fwdtransforms"][1]),
                               read_affine(start["fwdtransforms"][0]), atol=1e-9)
    field, _ = read_warp(tx["fwdtransforms"][0])
    assert np.abs(field).max() > 0.1  # SyN moved something
    identity = pants.registration(fixed, moving, "SyNOnly", outprefix=str(tmp_path / "id_"),
                                  reg_iterations=(2,))
    np.testing.assert_allclose(read_affine(identity["fwdtransforms"][1]), np.eye(3), atol=1e-12)


@needs_slices
def test_masks_and_their_warnings(slices, tmp_path):
    fixed, moving = slices
    mask = pants.from_numpy((fixed.numpy() > 0).astype(np.float32), origin=fixed.origin,
                            spacing=fixed.spacing, direction=fixed.direction)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a mask on a linear type means what it means in ANTsPy
        pants.registration(fixed, moving, "Rigid", mask=mask, outprefix=str(tmp_path / "r_"),
                           **CHEAP)
    with pytest.warns(UserWarning, match="SyN stage only"):
        pants.registration(fixed, moving, "SyN", mask=mask, reg_iterations=(2,),
                           outprefix=str(tmp_path / "s_"))
    with pytest.warns(UserWarning, match="SyN stage only"):
        pants.registration(fixed, moving, "SyN", moving_mask=mask, reg_iterations=(2,),
                           outprefix=str(tmp_path / "m_"))
    with pytest.raises(ValueError, match="mask has shape"):
        pants.registration(fixed, moving, "Rigid", mask=pants.from_numpy(np.ones((5, 5))))


@needs_slices
def test_arguments_antspy_ignores_warn(slices, tmp_path):
    fixed, moving = slices
    with pytest.warns(UserWarning, match="reg_iterations not used by type_of_transform='Rigid'"):
        pants.registration(fixed, moving, "Rigid", reg_iterations=(5,), outprefix=str(
            tmp_path / "r_"), **CHEAP)
    with pytest.warns(UserWarning, match="unknown keyword argument.*typo_iterations"):
        pants.registration(fixed, moving, "Rigid", typo_iterations=3,
                           outprefix=str(tmp_path / "t_"), **CHEAP)


@needs_slices
def test_verbose_logs_progress(slices, tmp_path, caplog):
    fixed, moving = slices
    with caplog.at_level("INFO", logger="parareg.ants"):
        pants.registration(fixed, moving, "Rigid", verbose=True, outprefix=str(tmp_path / "v_"),
                           **CHEAP)
    assert any(r.name == "parareg.ants" and "rigid level 1 iteration" in r.getMessage()
               for r in caplog.records)


@needs_slices
@pytest.mark.parametrize("kwargs, error, message", [
    ({"initial_transform": "warp.nii.gz"}, ValueError, "is a displacement field"),
    ({"initial_transform": ["a.mat", "b.mat"]}, ValueError, "holds 2 transforms"),
    ({"initial_transform": "nosuch.mat"}, FileNotFoundError, "nosuch.mat"),
    ({"aff_metric": "CC"}, ValueError, "aff_metric must be one of"),
    ({"outprefix": "nosuch_folder/sub01_"}, FileNotFoundError, "does not exist"),
])
def test_registration_bad_input(slices, kwargs, error, message):
    fixed, moving = slices
    with pytest.raises(error, match=message):
        pants.registration(fixed, moving, "Rigid", **{**CHEAP, **kwargs})


@pytest.fixture()
def transform_files(tmp_path):
    """A zero warp and an identity affine on a small 2D grid."""
    warp = write_warp(np.zeros((6, 7, 2), np.float32), np.eye(3), tmp_path / "z1Warp.nii.gz")
    mat = write_affine(np.eye(3), tmp_path / "z0GenericAffine.mat")
    image = pants.ANTsImage(parareg.Image(np.arange(42, dtype=np.float32).reshape(6, 7), np.eye(3)))
    return image, str(warp), str(mat)


def test_apply_transforms_inverts_as_antspy(transform_files):
    image, warp, mat = transform_files
    from parareg.ants._apply import _which_to_invert

    assert _which_to_invert([mat, warp], None) == [True, False]  # an invtransforms list
    assert _which_to_invert([warp, mat], None) == [False, False]
    assert _which_to_invert([mat], [None]) == [False]
    out = pants.apply_transforms(image, image, [warp, mat])
    np.testing.assert_allclose(out.numpy(), image.numpy(), atol=1e-5)
    nearest = pants.apply_transforms(image, image, mat, interpolator="nearestNeighbor")
    np.testing.assert_array_equal(nearest.numpy(), image.numpy())
    # a label map read as float (ants.image_read's default) is interpolated label by label
    generic = pants.apply_transforms(image, image, [warp, mat], interpolator="genericLabel")
    np.testing.assert_array_equal(generic.numpy(), image.numpy())
    for name in ("bSpline", "gaussian", "lanczosWindowedSinc"):
        out = pants.apply_transforms(image, image, mat, interpolator=name)
        np.testing.assert_allclose(out.numpy(), parareg.apply_transforms(
            image.image, image.image, [mat], interpolation=name).data)


def test_generic_label_refuses_fractional_values(transform_files):
    image, _, mat = transform_files
    blurred = pants.ANTsImage(parareg.Image(image.numpy() + 0.5, np.eye(3)))
    with pytest.raises(ValueError, match="genericLabel.*fractional values.*'linear'"):
        pants.apply_transforms(blurred, blurred, mat, interpolator="genericLabel")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"whichtoinvert": [True, False], "order": "warp_first"}, ValueError, r"whichtoinvert\[0\]"),
    ({"whichtoinvert": [True]}, ValueError, "whichtoinvert has 1 entries"),
    ({"interpolator": "multiLabel"}, ValueError, "not offered by parareg.ants; use"),
    ({"interpolator": "cubic"}, ValueError, "interpolator must be one of"),
    ({"imagetype": 3}, ValueError, "scalar"),
    ({"compose": "out_"}, ValueError, "compose"),
    ({"defaultvalue": 1}, ValueError, "defaultvalue"),
    ({"missing": True}, FileNotFoundError, "does not exist"),
])
def test_apply_transforms_bad_input(transform_files, kwargs, error, message):
    image, warp, mat = transform_files
    kwargs = dict(kwargs)
    order = kwargs.pop("order", None)
    transforms = [warp, mat] if order == "warp_first" else [mat, warp]
    if kwargs.pop("missing", False):
        transforms = [mat, mat + ".gone.mat"]
    with pytest.raises(error, match=message):
        pants.apply_transforms(image, image, transforms, **kwargs)


def test_jacobian_of_a_known_field(tmp_path):
    # u = 0.1 * x along axis 0 (1 mm voxels): det = 1.1 everywhere inside
    x = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 9), np.float32)
    field = np.stack([0.1 * x, np.zeros_like(x)], axis=-1)
    warp = write_warp(field, np.eye(3), tmp_path / "w1Warp.nii.gz")
    domain = pants.ANTsImage(parareg.Image(np.zeros((8, 9), np.float32), np.eye(3)))
    jac = pants.create_jacobian_determinant_image(domain, str(warp))
    np.testing.assert_allclose(jac.numpy()[1:-1, 1:-1], 1.1, rtol=1e-5)
    log = pants.create_jacobian_determinant_image(domain, str(warp), do_log=True)
    np.testing.assert_allclose(log.numpy()[1:-1, 1:-1], np.log(1.1), rtol=1e-4)
    with pytest.raises(ValueError, match="geom=True"):
        pants.create_jacobian_determinant_image(domain, str(warp), geom=True)


def test_antspyx_is_never_imported_for_parareg_images():
    import subprocess
    import sys

    code = ("import sys, numpy as np; import parareg.ants as ants; "
            "img = ants.from_numpy(np.ones((6, 7), np.float32)); "
            "ants.apply_transforms(img, img, []); "
            "assert 'ants' not in sys.modules, 'antspyx was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_antsimage_clone_write_and_pixeltypes(tmp_path):
    data = np.array([[0.2, 1.6], [2.5, 7.0]], np.float32)
    img = pants.ANTsImage(parareg.Image(data, np.eye(3)))
    labels = img.clone("unsigned char")
    assert labels.pixeltype == "unsigned int" and labels.view().dtype == np.uint8
    np.testing.assert_array_equal(labels.numpy(), [[0, 2], [2, 7]])
    copy = img.clone()
    copy.view()[0, 0] = 5.0
    assert img.numpy()[0, 0] == np.float32(0.2)  # a clone owns its voxels
    assert pants.image_write(img, str(tmp_path / "a.nii.gz"), ri=True) is img
    img.to_file(str(tmp_path / "b.nii.gz"))
    back = pants.image_read(str(tmp_path / "b.nii.gz"))
    np.testing.assert_array_equal(back.numpy(), data)
    np.testing.assert_array_equal(back.image.vox2world, np.eye(3))
    with pytest.raises(ValueError, match="pixeltype must be one of"):
        img.clone("short")
