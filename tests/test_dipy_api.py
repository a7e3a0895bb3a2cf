"""parareg.dipy: DIPY's names, order and defaults map onto the native calls; bad input is named."""

from __future__ import annotations

import warnings

import nibabel as nib
import numpy as np
import pytest

import parareg
import parareg.dipy as pdipy
from parareg.dipy import DipyCompatWarning, DipyOrderError
from parareg.metrics.syn import get_syn_metric
from parareg.registration import RegistrationWarning

from ._data import MINDBOGGLE, needs_data

pytestmark = needs_data
LEVELS = dict(level_iters=[10, 5], sigmas=[1.0, 0.0], factors=[2, 1])


@pytest.fixture(scope="module")
def pair():
    return parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])


def test_affine_registration_is_the_native_call_in_dipy_order(pair):
    static, moving = pair
    resampled, affine, xopt, fopt = pdipy.affine_registration(
        moving.data, static.data, moving_affine=moving.vox2world,
        static_affine=static.vox2world, pipeline=["center_of_mass", "rigid_isoscaling"],
        ret_metric=True, **LEVELS)
    native = parareg.affine_registration(static, moving,
                                         pipeline=("center_of_mass", "similarity"),
                                         levels=((2, 1.0, 10), (1, 0.0, 5)), sampling=1.0,
                                         full_resolution="all")
    np.testing.assert_array_equal(affine, native.matrix)
    np.testing.assert_array_equal(resampled, native.transform(moving).data)
    assert xopt.shape == (4,)  # 2D similarity: angle, scale, translation
    assert fopt == native.history[-1]["value"]


def test_images_paths_and_arrays_give_the_same_bits():
    path = MINDBOGGLE[1]
    img = nib.load(path)
    static = parareg.load(MINDBOGGLE[0])
    inputs = [(path, {}), (img, {}),
              (img.get_fdata(dtype=np.float32), {"moving_affine": img.affine}),
              # as in DIPY, an affine given with an image overrides the image's own
              (nib.Nifti1Image(img.get_fdata(dtype=np.float32), np.eye(4)),
               {"moving_affine": img.affine})]
    try:
        import ants

        inputs.append((ants.image_read(str(path)), {}))
    except ImportError:
        pass
    results = [pdipy.center_of_mass(moving, static.data, static_affine=static.vox2world,
                                    **kwargs) for moving, kwargs in inputs]
    for resampled, affine in results[1:]:
        np.testing.assert_array_equal(resampled, results[0][0])
        np.testing.assert_array_equal(affine, results[0][1])


def test_masks_drive_the_centre_of_mass_as_in_dipy(pair):
    static, moving = pair
    mask = np.zeros(static.shape, bool)
    mask[:, : static.shape[1] // 2] = True
    _, plain = pdipy.center_of_mass(moving.data, static.data, moving_affine=moving.vox2world,
                                    static_affine=static.vox2world)
    _, masked = pdipy.center_of_mass(moving.data, static.data, moving_affine=moving.vox2world,
                                     static_affine=static.vox2world, static_mask=mask)
    expected = parareg.transforms.center_of_mass(static.with_data(static.data * mask), moving)
    np.testing.assert_array_equal(masked, expected)
    assert not np.allclose(masked, plain)


def test_center_of_mass_replaces_starting_affine_with_dipys_warning(pair):
    static, moving = pair
    with pytest.warns(UserWarning, match="starting_affine overwritten"):
        pdipy.center_of_mass(moving, static, starting_affine=np.eye(3))


def test_syn_maps_dipys_parameters_and_metric_objects(pair):
    dipy_metrics = pytest.importorskip("dipy.align.metrics")
    static, moving = pair
    runs = []
    for metric in (dipy_metrics.CCMetric(2, sigma_diff=1.5, radius=2),
                   pdipy.CCMetric(2, sigma_diff=1.5, radius=2)):
        sdr = pdipy.SymmetricDiffeomorphicRegistration(metric, level_iters=[8, 4],
                                                       step_length=0.3, ss_sigma_factor=0.5)
        runs.append(sdr.optimize(static.data, moving.data, static_grid2world=static.vox2world,
                                 moving_grid2world=moving.vox2world))
        assert len(sdr.full_energy_profile) == sum(h["iterations"]
                                                   for h in runs[-1].native.history)
    native = parareg.SymmetricDiffeomorphicRegistration(
        get_syn_metric("cc", radius=2), levels=((2, 0.5, 8), (1, 0.0, 4)), step=0.3,
        update_sigma=1.5, field_sigma=0.0, convergence=(1.2e-4, 12)).optimize(static, moving)
    for mapping in runs:
        np.testing.assert_array_equal(mapping.get_forward_field(), native.forward)
        np.testing.assert_array_equal(mapping.get_backward_field(), native.backward)
        np.testing.assert_array_equal(mapping.transform(moving.data),
                                      native.transform(moving).data)


def test_syn_registration_returns_dipys_pair(pair):
    static, moving = pair
    warped, mapping = pdipy.syn_registration(moving.data, static.data,
                                             moving_affine=moving.vox2world,
                                             static_affine=static.vox2world, metric="ssd",
                                             dim=2, level_iters=[4, 2], smooth=2.0)
    assert isinstance(warped, np.ndarray) and warped.shape == static.shape
    np.testing.assert_array_equal(warped, mapping.transform(moving.data))
    assert mapping.transform_inverse(static.data).shape == moving.shape


def test_gauss_newton_steps_warn_and_demons_steps_do_not():
    with pytest.warns(DipyCompatWarning, match="gauss_newton.*demons"):
        pdipy.SymmetricDiffeomorphicRegistration(pdipy.EMMetric(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdipy.SymmetricDiffeomorphicRegistration(pdipy.EMMetric(2, step_type="demons"))


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("call, keyword, fix", [
    (lambda: parareg.affine_registration("m.nii", static="s.nii"), "static=", "fixed="),
    (lambda: parareg.syn_registration("s.nii", "m.nii", static_mask=1), "static_mask=",
     "fixed_mask="),
    (lambda: parareg.register("m.nii", "s.nii", static_affine=np.eye(4)), "static_affine=",
     "parareg.dipy"),
])
def test_dipy_order_keywords_get_the_fix(call, keyword, fix):
    with pytest.raises(DipyOrderError, match=keyword) as info:
        call()
    assert isinstance(info.value, TypeError)
    assert fix in str(info.value) and "parareg.dipy." in str(info.value)


def test_the_order_check_keeps_warnings_pointing_at_the_caller(pair):
    static, _ = pair
    with pytest.warns(RegistrationWarning) as record:  # 0 iterations: no improvement
        parareg.affine_registration(static, static, pipeline=("rigid",), levels=((2, 0.0, 0),))
    assert record[0].filename == __file__


@pytest.mark.parametrize("pipeline, match", [
    (["center_of_mass", "shear"], r"pipeline\[1\] must be one of"),
    (["rigid_scaling"], "use 'affine'"),
])
def test_unknown_or_missing_pipeline_steps_are_named(pair, pipeline, match):
    static, moving = pair
    with pytest.raises(ValueError, match=match):
        pdipy.affine_registration(moving, static, pipeline=pipeline)


def test_an_array_needs_its_affine(pair):
    static, moving = pair
    with pytest.raises(TypeError, match="moving is an ndarray without a grid: pass "
                                        "moving_affine="):
        pdipy.affine_registration(moving.data, static)


@pytest.mark.parametrize("call, error, match", [
    (lambda s, m: pdipy.affine_registration(m, s, nbinz=32), TypeError, "nbinz"),
    (lambda s, m: pdipy.affine_registration(m, s, metric="CC"), ValueError, "'MI'"),
    (lambda s, m: pdipy.affine_registration(m, s, factors=[2.5, 1], sigmas=[1, 0],
                                            level_iters=[3, 3]), ValueError, "whole numbers"),
    (lambda s, m: pdipy.affine_registration(m, s, level_iters=[3, 3]), ValueError,
     "one entry per pyramid level"),
    (lambda s, m: pdipy.center_of_mass(m, s, ret_metric=True), ValueError, "ret_metric"),
    (lambda s, m: pdipy.syn_registration(m, s, metric="CC", dim=2, smooth=1.0), TypeError,
     "smooth"),
    (lambda s, m: pdipy.syn_registration(m, s, metric="MI", dim=2), ValueError, "CC"),
    (lambda s, m: pdipy.syn_registration(m, s, dim=3, level_iters=[1]), ValueError,
     "pass dim=2"),
    (lambda s, m: pdipy.SymmetricDiffeomorphicRegistration(pdipy.CCMetric(3)).optimize(
        s.data, m.data), ValueError, r"CCMetric\(2"),
    (lambda s, m: pdipy.SymmetricDiffeomorphicRegistration(pdipy.CCMetric(2),
                                                           callback=print), TypeError,
     "callback"),
    (lambda s, m: pdipy.SymmetricDiffeomorphicRegistration(pdipy.CCMetric(2),
                                                           level_iters=[]), ValueError,
     "level_iters"),
    (lambda s, m: pdipy.SymmetricDiffeomorphicRegistration("CC"), TypeError,
     "CCMetric"),
    (lambda s, m: pdipy.SSDMetric(4), ValueError, "dim"),
    (lambda s, m: pdipy.SymmetricDiffeomorphicRegistration(
        pdipy.SSDMetric(2, step_type="newton")), ValueError, "step_type"),
])
def test_unsupported_parameters_are_named(pair, call, error, match):
    static, moving = pair
    with pytest.raises(error, match=match):
        call(static, moving)


def test_parameters_parareg_cannot_honour_warn(pair):
    static, moving = pair
    with pytest.warns(DipyCompatWarning, match="inv_tol"):
        pdipy.SymmetricDiffeomorphicRegistration(pdipy.CCMetric(2), inv_tol=1e-2)
    with pytest.warns(DipyCompatWarning, match="optimizer_options"):
        pdipy.center_of_mass(moving, static, optimizer_options={"maxiter": 5})


def test_a_mapping_samples_only_its_own_grid(pair):
    static, moving = pair
    sdr = pdipy.SymmetricDiffeomorphicRegistration(pdipy.SSDMetric(2), level_iters=[1])
    mapping = sdr.optimize(static.data, moving.data, static_grid2world=static.vox2world,
                           moving_grid2world=moving.vox2world)
    with pytest.raises(ValueError, match="out_shape"):
        mapping.transform(moving.data, out_shape=(10, 10))


# -- the class form ---------------------------------------------------------------------
def _class_run(pair, transform, **kwargs):
    static, moving = pair
    affreg = pdipy.AffineRegistration(metric=pdipy.MutualInformationMetric(16),
                                      level_iters=[6, 3], sigmas=[1.0, 0.0], factors=[2, 1])
    return affreg.optimize(static.data, moving.data, transform, None,
                           static_grid2world=static.vox2world,
                           moving_grid2world=moving.vox2world, **kwargs)


def test_the_class_form_accepts_dipys_own_transform_objects(pair):
    dipy_transforms = pytest.importorskip("dipy.align.transforms")
    ours = _class_run(pair, pdipy.RigidTransform2D(), starting_affine="mass")
    theirs = _class_run(pair, dipy_transforms.RigidTransform2D(), starting_affine="mass")
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    static, moving = pair
    native = parareg.AffineRegistration(metric="mi", bins=16, sampling=1.0,
                                        levels=((2, 1.0, 6), (1, 0.0, 3))).optimize(
        static, moving, "rigid", starting_affine=parareg.transforms.center_of_mass(static,
                                                                                  moving))
    np.testing.assert_array_equal(ours.affine, native.matrix)


@pytest.mark.parametrize("transform, kwargs, error, match", [
    (pdipy.RigidScalingTransform2D(), {}, ValueError, "AffineTransform"),
    (pdipy.RigidTransform3D(), {}, ValueError, "use the 2D form"),
    ("rigid", {}, TypeError, "RigidTransform3D"),
    (pdipy.RigidTransform2D(), {"starting_affine": "middle"}, ValueError, "'mass'"),
])
def test_the_class_form_names_bad_input(pair, transform, kwargs, error, match):
    with pytest.raises(error, match=match):
        _class_run(pair, transform, **kwargs)


def test_the_class_form_refuses_what_it_cannot_honour(pair):
    static, moving = pair
    with pytest.raises(ValueError, match="params0=None"):
        pdipy.AffineRegistration().optimize(static.data, moving.data,
                                            pdipy.RigidTransform2D(), np.zeros(3))
    with pytest.raises(TypeError, match="MutualInformationMetric"):
        pdipy.AffineRegistration(metric=pdipy.CCMetric(2))
    with pytest.warns(DipyCompatWarning, match="method"):
        pdipy.AffineRegistration(method="Powell")
