"""parareg.ants against antspyx: its images in and out, and ANTs applying parareg's files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import parareg
import parareg.ants as pants
from tests._data import IXI_T1, MINDBOGGLE, MINDBOGGLE_LABELS

ants = pytest.importorskip("ants")

needs_slices = pytest.mark.skipif(len(MINDBOGGLE) < 2, reason="Mindboggle slices not present")
needs_ixi = pytest.mark.skipif(len(IXI_T1) < 2, reason="IXI 2 mm images not present")

#: zero voxels added around the registered images: ITK extrapolates half a voxel past the
#: border where parareg gives 0 (issue 13); on images with a zero border the rules agree
PAD = 3


def zero_padded(img):
    """``img`` (an ants.ANTsImage) with PAD zero voxels on every side, same world position."""
    data = np.pad(img.numpy(), PAD)
    direction = np.asarray(img.direction)
    origin = np.asarray(img.origin) - direction @ (np.asarray(img.spacing) * PAD)
    return ants.from_numpy(data, origin=origin.tolist(), spacing=img.spacing,
                           direction=direction)


def relative_max_diff(a, b, reference) -> float:
    return float(np.abs(a - b).max() / np.ptp(reference))


@pytest.fixture(scope="module")
def real_slices():
    return ants.image_read(str(MINDBOGGLE[0])), ants.image_read(str(MINDBOGGLE[1]))


@needs_slices
@pytest.mark.parametrize("type_of_transform", ["SyN", "antsRegistrationSyNQuick[s]"])
def test_ants_applies_parareg_outputs_as_parareg_does(real_slices, tmp_path, type_of_transform):
    """antspyx's own apply_transforms on parareg.ants.registration's files = its warped images."""
    fixed, moving = (zero_padded(img) for img in real_slices)
    reg = pants.registration(fixed, moving, type_of_transform, outprefix=str(tmp_path / "p_"))
    assert isinstance(reg["warpedmovout"], ants.ANTsImage)  # real images in, real images out
    assert isinstance(reg["warpedfixout"], ants.ANTsImage)
    assert reg["fwdtransforms"] == [str(tmp_path / "p_1Warp.nii.gz"),
                                    str(tmp_path / "p_0GenericAffine.mat")]
    forward = ants.apply_transforms(fixed, moving, reg["fwdtransforms"])
    assert relative_max_diff(forward.numpy(), reg["warpedmovout"].numpy(),
                             moving.numpy()) <= 1e-3
    inverse = ants.apply_transforms(moving, fixed, reg["invtransforms"])
    assert relative_max_diff(inverse.numpy(), reg["warpedfixout"].numpy(),
                             fixed.numpy()) <= 1e-3
    # and the registration did its work
    before = np.corrcoef(fixed.numpy().ravel(), ants.resample_image_to_target(
        moving, fixed).numpy().ravel())[0, 1]
    after = np.corrcoef(fixed.numpy().ravel(), reg["warpedmovout"].numpy().ravel())[0, 1]
    assert 1 - after < 0.5 * (1 - before)  # the dissimilarity at least halved


@needs_slices
def test_composite_transforms_as_antspy_writes_them(real_slices, tmp_path):
    fixed, moving = (zero_padded(img) for img in real_slices)
    prefix = str(tmp_path / "c_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg = pants.registration(fixed, moving, "SyN", outprefix=prefix,
                                 reg_iterations=(20, 10, 0), write_composite_transform=True)
    assert reg["fwdtransforms"] == prefix + "Composite.h5"  # a name, not a list, as ANTsPy
    assert reg["invtransforms"] == prefix + "InverseComposite.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c_Composite.h5",
                                                          "c_InverseComposite.h5"]
    for apply in (ants.apply_transforms, pants.apply_transforms):
        forward = apply(fixed, moving, reg["fwdtransforms"])
        assert relative_max_diff(forward.numpy(), reg["warpedmovout"].numpy(),
                                 moving.numpy()) <= 1e-3
        inverse = apply(moving, fixed, reg["invtransforms"])
        assert relative_max_diff(inverse.numpy(), reg["warpedfixout"].numpy(),
                                 fixed.numpy()) <= 1e-3


@needs_ixi
def test_ants_applies_a_3d_affine_in_an_oblique_orientation(tmp_path):
    """IXI is PSR: direction and origin conventions are checked in 3D."""
    fixed, moving = (zero_padded(ants.image_read(str(path))) for path in IXI_T1[:2])
    reg = pants.registration(fixed, moving, "Affine", outprefix=str(tmp_path / "a_"),
                             aff_iterations=(40, 20, 0), aff_shrink_factors=(4, 2, 1),
                             aff_smoothing_sigmas=(2, 1, 0))
    forward = ants.apply_transforms(fixed, moving, reg["fwdtransforms"])
    assert relative_max_diff(forward.numpy(), reg["warpedmovout"].numpy(),
                             moving.numpy()) <= 1e-3
    inverse = ants.apply_transforms(moving, fixed, reg["invtransforms"], whichtoinvert=[True])
    assert relative_max_diff(inverse.numpy(), reg["warpedfixout"].numpy(),
                             fixed.numpy()) <= 1e-3


@needs_ixi
def test_antsimage_view_matches_antspy(tmp_path):
    ours = pants.image_read(str(IXI_T1[0]))
    theirs = ants.image_read(str(IXI_T1[0]))
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert ours.shape == theirs.shape and ours.dimension == theirs.dimension
    np.testing.assert_allclose(ours.spacing, theirs.spacing, atol=1e-6)
    np.testing.assert_allclose(ours.origin, theirs.origin, atol=1e-4)
    np.testing.assert_allclose(ours.direction, theirs.direction, atol=1e-6)
    # from_numpy with ANTs geometry is the same image to both libraries
    back = pants.from_numpy(theirs.numpy(), origin=theirs.origin, spacing=theirs.spacing,
                            direction=theirs.direction)
    np.testing.assert_allclose(back.image.vox2world, ours.image.vox2world, atol=1e-4)
    # written by parareg.ants, read by ANTs
    pants.image_write(ours, str(tmp_path / "copy.nii.gz"))
    again = ants.image_read(str(tmp_path / "copy.nii.gz"))
    np.testing.assert_allclose(again.origin, theirs.origin, atol=1e-4)
    np.testing.assert_array_equal(again.numpy(), theirs.numpy())


@needs_slices
def test_apply_transforms_and_jacobian_of_ants_written_files(real_slices, tmp_path):
    """ANTs' own SyN files through parareg.ants: same image, same Jacobian in the bulk."""
    fixed, moving = real_slices
    reg = ants.registration(fixed, moving, "SyN", outprefix=str(tmp_path / "a_"),
                            reg_iterations=(20, 10, 0))
    ours = pants.apply_transforms(fixed, zero_padded(moving), reg["fwdtransforms"])
    theirs = ants.apply_transforms(fixed, zero_padded(moving), reg["fwdtransforms"])
    assert isinstance(ours, ants.ANTsImage)
    assert relative_max_diff(ours.numpy(), theirs.numpy(), moving.numpy()) <= 1e-4
    labels = pants.apply_transforms(fixed, moving, reg["fwdtransforms"],
                                    interpolator="nearestNeighbor")
    assert labels.pixeltype == fixed.pixeltype
    # ITK's edge rule and interpolators: the images themselves, without the padding trick
    for name, tolerance in (("linear", 1e-4), ("bSpline", 1e-3), ("lanczosWindowedSinc", 1e-4)):
        ours = pants.apply_transforms(fixed, moving, reg["fwdtransforms"], interpolator=name)
        theirs = ants.apply_transforms(fixed, moving, reg["fwdtransforms"], interpolator=name)
        assert relative_max_diff(ours.numpy(), theirs.numpy(), moving.numpy()) <= tolerance, name
    # a label map as ANTsPy users read it (float pixels), label by label as ANTs does
    atlas = ants.image_read(str(MINDBOGGLE_LABELS[1]))
    ours = pants.apply_transforms(fixed, atlas, reg["fwdtransforms"], interpolator="genericLabel")
    theirs = ants.apply_transforms(fixed, atlas, reg["fwdtransforms"], interpolator="genericLabel")
    assert ours.pixeltype == theirs.pixeltype
    assert np.count_nonzero(ours.numpy() != theirs.numpy()) <= 5e-4 * ours.numpy().size
    jac = pants.create_jacobian_determinant_image(fixed, reg["fwdtransforms"][0]).numpy()
    reference = ants.create_jacobian_determinant_image(fixed, reg["fwdtransforms"][0]).numpy()
    # parareg: second-order central differences; ANTs: a fourth-order stencil (docs/ants.md)
    assert float(np.median(np.abs(jac - reference))) < 1e-3
    assert np.corrcoef(jac.ravel(), reference.ravel())[0, 1] > 0.99


@needs_slices
def test_real_antsimage_masks_are_accepted(real_slices, tmp_path):
    fixed, moving = real_slices
    mask = ants.get_mask(fixed)
    reg = pants.registration(fixed, moving, "Rigid", mask=mask, moving_mask=ants.get_mask(moving),
                             outprefix=str(tmp_path / "m_"), aff_iterations=(20, 10, 0),
                             aff_shrink_factors=(4, 2, 1), aff_smoothing_sigmas=(2, 1, 0))
    assert isinstance(reg["warpedmovout"], ants.ANTsImage)


def test_an_antsimage_with_components_is_refused():
    rgba = ants.from_numpy(np.zeros((8, 8, 4), np.float32), has_components=True)
    scalar = ants.from_numpy(np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="4 components"):
        pants.registration(rgba, scalar, "Rigid")
    with pytest.raises(ValueError, match="4 components"):
        pants.apply_transforms(scalar, rgba, [])


def test_parareg_images_convert_to_antspy_and_back():
    image = parareg.Image(np.random.default_rng(0).random((5, 6, 7), np.float32),
                          np.diag([2.0, 1.0, 3.0, 1.0]))
    view = pants.ANTsImage(image)
    real = image.to_ants()
    np.testing.assert_allclose(view.origin, real.origin)
    np.testing.assert_allclose(view.direction, real.direction)
    assert view.spacing == pytest.approx(real.spacing)
