"""Affine registration recovers known transforms on real anatomy, identically at any thread count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import parareg
from parareg.registration import (
    AffineRegistration,
    RegistrationError,
    affine_registration,
)
from parareg.transforms import get_transform, image_center

from ._data import DATA, IXI_T1, MINDBOGGLE, needs_data

BRATS = DATA / "multimodal" / "brats_pat0001"


def known_matrix(image, kind, seed=0):
    """A moderate known fixed-world -> moving-world matrix about the image centre."""
    ndim = image.ndim
    rng = np.random.default_rng(seed)
    family = get_transform("rigid" if kind == "rigid" else "affine", ndim)
    params = family.identity_params()
    if kind == "rigid":
        params[:-ndim] = rng.uniform(-0.08, 0.08, params.size - ndim)  # ~ +-4.5 degrees
    else:
        params[:-ndim] += rng.uniform(-0.06, 0.06, params.size - ndim)
    params[-ndim:] = rng.uniform(-5, 5, ndim)  # mm
    return family.matrix(params, center=image_center(image))


def head_points(image, threshold_fraction=0.15):
    head = image.data > threshold_fraction * image.data.max()
    head = ndimage.binary_opening(head, iterations=1)
    idx = np.argwhere(head).astype(np.float64)
    return idx @ image.vox2world[:-1, :-1].T + image.vox2world[:-1, -1]


def mean_error_vox(found, truth, image):
    points = head_points(image)
    a = points @ found[:-1, :-1].T + found[:-1, -1]
    b = points @ truth[:-1, :-1].T + truth[:-1, -1]
    return float(np.mean(np.linalg.norm(a - b, axis=1)) / image.spacing.mean())


def synthetic_moving(fixed, truth):
    """``moving`` such that ``moving(truth @ x) = fixed(x)``: resample fixed through inv(truth)."""
    return parareg.resample(fixed, fixed, affine=np.linalg.inv(truth))


@needs_data
@pytest.mark.parametrize("kind", ["rigid", "affine"])
def test_recovers_known_transform_on_ixi_volume(kind):
    fixed = parareg.load(IXI_T1[0])
    truth = known_matrix(fixed, kind, seed=1)
    moving = synthetic_moving(fixed, truth)
    pipeline = ("center_of_mass", "translation", "rigid") + (("affine",) if kind == "affine"
                                                             else ())
    result = affine_registration(fixed, moving, pipeline=pipeline, num_threads=2)
    assert mean_error_vox(result.matrix, truth, fixed) < 0.5


@needs_data
@pytest.mark.parametrize("kind", ["rigid", "affine"])
def test_recovers_known_transform_on_2d_slice(kind):
    fixed = parareg.load(MINDBOGGLE[0])
    truth = known_matrix(fixed, kind, seed=2)
    moving = synthetic_moving(fixed, truth)
    pipeline = ("center_of_mass", "translation", "rigid") + (("affine",) if kind == "affine"
                                                             else ())
    result = affine_registration(fixed, moving, pipeline=pipeline)
    assert mean_error_vox(result.matrix, truth, fixed) < 0.5


@needs_data
def test_recovers_known_transform_across_contrasts_with_mi():
    flair = parareg.load(BRATS / "Flair_subtrMeanDivStd.nii.gz")
    t1c = parareg.load(BRATS / "T1c_subtrMeanDivStd.nii.gz")
    truth = known_matrix(flair, "rigid", seed=3)
    moving = synthetic_moving(t1c, truth)  # T1c contrast, moved; FLAIR fixed
    result = affine_registration(flair, moving, pipeline=("translation", "rigid"),
                                 metric="mi", sampling=0.3, num_threads=2,
                                 levels=((4, 2.0, 50), (2, 1.0, 30)))
    mask = parareg.load(BRATS / "brainmask.nii.gz")
    brain = np.argwhere(mask.data > 0).astype(np.float64)
    points = brain @ flair.vox2world[:-1, :-1].T + flair.vox2world[:-1, -1]
    err = np.linalg.norm(points @ (result.matrix - truth)[:-1, :-1].T
                         + (result.matrix - truth)[:-1, -1], axis=1)
    assert err.mean() / flair.spacing.mean() < 0.5


@needs_data
def test_identical_bits_at_1_2_and_3_threads():
    fixed = parareg.load(MINDBOGGLE[0])
    moving = parareg.load(MINDBOGGLE[1])
    levels = ((4, 2.0, 30), (2, 1.0, 20), (1, 0.0, 10))
    matrices = [affine_registration(fixed, moving, levels=levels, sampling=0.5,
                                    num_threads=n).matrix for n in (1, 2, 3)]
    for other in matrices[1:]:
        np.testing.assert_array_equal(matrices[0], other)


def blob_image(shape=(40, 44, 36), shift=(0.0, 0.0, 0.0)):
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape],
                                indexing="ij"), axis=-1)
    centre = np.array(shape) / 2 + np.array(shift)
    radii = np.array(shape) / 4.5
    data = np.exp(-(((grid - centre) / radii) ** 2).sum(-1)) * 100
    data += 30 * np.exp(-(((grid - centre - 3) / (radii / 2)) ** 2).sum(-1))
    return parareg.Image(data.astype(np.float32), np.eye(4))


def test_class_form_and_same_modality_metrics():
    fixed = blob_image()
    moving = blob_image(shift=(2.0, -1.5, 1.0))
    for metric in ("meansquares", "correlation", "mi"):
        reg = AffineRegistration(metric=metric, levels=((2, 1.0, 50), (1, 0.0, 30)))
        result = reg.optimize(fixed, moving, "translation")
        np.testing.assert_allclose(result.matrix[:3, 3], [2.0, -1.5, 1.0], atol=0.3)
        warped = result.transform(moving)
        assert warped.shape == fixed.shape
        back = result.transform_inverse(fixed)
        assert back.shape == moving.shape


def test_callback_sees_every_iteration():
    seen = []
    affine_registration(blob_image(), blob_image(shift=(1.0, 0, 0)),
                        pipeline=("translation",), levels=((2, 1.0, 5),), callback=seen.append)
    assert seen and {"stage", "level", "iteration", "value", "matrix"} <= set(seen[0])


def test_bad_input_is_named():
    img = blob_image()
    with pytest.raises(ValueError, match="pipeline step must be one of"):
        affine_registration(img, img, pipeline=("center_of_mass", "bspline"))
    with pytest.raises(ValueError, match="metric must be one of"):
        affine_registration(img, img, metric="nmi_typo")
    flat = parareg.Image(np.zeros((40, 44, 36), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="moving"):
        affine_registration(img, flat, pipeline=("translation",))
    with pytest.raises(ValueError, match="fixed_mask is empty"):
        affine_registration(img, img, fixed_mask=np.zeros(img.shape, bool))
    with pytest.raises(ValueError, match="moving_mask has shape"):
        affine_registration(img, img, moving_mask=np.ones((3, 3, 3), bool))
    img2d = parareg.Image(np.ones((10, 10), np.float32), np.eye(3))
    with pytest.raises(ValueError, match="fixed is 3D but moving is 2D"):
        affine_registration(img, img2d)
    nan = blob_image()
    nan.data[3, 3, 3] = np.nan
    with pytest.raises(ValueError, match="fixed contains 1 NaN"):
        affine_registration(nan, img)
    with pytest.raises(ValueError, match="sampling must be in"):
        affine_registration(img, img, sampling=1.5)


def test_no_overlap_is_reported():
    fixed = blob_image()
    far = parareg.Image(blob_image().data, np.array(
        [[1.0, 0, 0, 500.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))
    with pytest.raises(RegistrationError, match="do not overlap"):
        affine_registration(fixed, far, pipeline=("translation",))
