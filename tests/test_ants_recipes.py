"""parareg.ants' table of ANTsPy transform types and its argument checks (no registration runs)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import parareg.ants as pants
from parareg.ants._recipes import RECIPES, get_recipe
from parareg.ants._registration import _linear_levels, _syn_options
from parareg.cli import register as cli_register
from parareg.io.registration_files import TRANSFORM_NAMES, transform_paths


def test_required_types_are_supported():
    for name in ("SyN", "SyNRA", "SyNOnly", "Affine", "Rigid", "antsRegistrationSyNQuick[s]",
                 "antsRegistrationSyN[s]"):
        assert get_recipe(name) is RECIPES[name]
    assert get_recipe("") is RECIPES["SyN"]  # ANTsPy's meaning of ""
    assert get_recipe(["Affine"]) is RECIPES["Affine"]


def test_recipes_copy_antspy_stages():
    syn = get_recipe("SyN")
    assert syn.linear == ("affine",) and syn.deformable and syn.center_of_mass
    assert get_recipe("SyNRA").linear == ("rigid", "affine")
    only = get_recipe("SyNOnly")
    assert only.linear == () and only.deformable and not only.center_of_mass
    script = get_recipe("antsRegistrationSyN[s]")
    assert script.linear == ("rigid", "affine") and script.syn_metric == ("cc", 2)
    assert script.syn_levels[-1] == (1, 0.0, 20)
    quick = get_recipe("antsRegistrationSyNQuick[s]")
    assert quick.syn_metric == ("mattes", 32) and quick.syn_levels[-1] == (1, 0.0, 0)
    assert get_recipe("antsRegistrationSyNRepro[a]").linear_metric == ("gc", 1)
    assert not get_recipe("antsRegistrationSyNQuick[so]").center_of_mass
    # arguments ANTsPy reads for each type
    assert "reg_iterations" in syn.arguments() and "aff_iterations" not in syn.arguments()
    assert "reg_iterations" not in script.arguments()
    assert "aff_iterations" in get_recipe("Affine").arguments()
    assert "mask_all_stages" in syn.arguments()


@pytest.mark.parametrize("name, message", [
    ("SyNFoo", "not an ANTsPy transform type"),
    ("antsRegistrationSyN[b]", "B-spline SyN"),
    ("antsRegistrationSyNQuick[bo]", "B-spline SyN"),
    ("antsRegistrationSyN[s,4]", "no extra parameters"),
    ("TV[2]", "time-varying"),
    ("Elastic", "Gaussian displacement field"),
    ("SyNCC", "different pyramids"),
])
def test_unknown_and_refused_types_name_themselves(name, message):
    with pytest.raises(ValueError, match=message) as info:
        get_recipe(name)
    assert repr(name) in str(info.value)


def test_type_of_transform_must_be_a_string():
    with pytest.raises(TypeError, match="type_of_transform must be a string"):
        get_recipe(3)


def test_levels_as_antspy_builds_them():
    syn = _syn_options(get_recipe("SyN"), (40, 20, 0), "mattes", 32, 0.2, 3, 0)
    assert syn["levels"] == ((4, 2.0, 40), (2, 1.0, 20), (1, 0.0, 0))
    assert syn["metric"] == "mi" and syn["step"] == 0.2
    assert syn["update_sigma"] == pytest.approx(np.sqrt(3)) and syn["field_sigma"] == 0.0
    cc = _syn_options(get_recipe("SyN"), (10,), "CC", 4, 0.25, 2, 1)
    assert cc["metric"] == "cc" and cc["radius"] == 4 and cc["levels"] == ((1, 0.0, 10),)
    # trailing linear levels without iterations are dropped: they change nothing
    assert _linear_levels(get_recipe("Affine"), (100, 50, 0, 0), (6, 4, 2, 1),
                          (3, 2, 1, 0)) == ((6, 3, 100), (4, 2, 50))
    assert _linear_levels(get_recipe("SyN"), None, None, None)[-1] == (2, 1.0, 1200)


@pytest.mark.parametrize("kwargs, message", [
    ({"syn_metric": "demons"}, "demons"),
    ({"syn_metric": "jhmi"}, "syn_metric must be one of"),
    ({"syn_sampling": 16}, "32 bins"),
    ({"grad_step": -1.0}, "grad_step must be a finite number"),
    ({"reg_iterations": ()}, "reg_iterations must hold"),
])
def test_bad_syn_arguments(kwargs, message):
    args = {"reg_iterations": (40, 20, 0), "syn_metric": "mattes", "syn_sampling": 32,
            "grad_step": 0.2, "flow_sigma": 3, "total_sigma": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        _syn_options(get_recipe("SyN"), **args)


def test_mismatched_affine_schedule_is_refused():
    with pytest.raises(ValueError, match="same length"):
        _linear_levels(get_recipe("Affine"), (100, 50), (4, 2, 1), (2, 1, 0))


def test_cli_and_library_name_the_transform_files_alike():
    for role, name in TRANSFORM_NAMES.items():
        assert cli_register.OUTPUT_NAMES[role] == name
    paths = transform_paths("out/sub01", deformable=True)
    assert [str(p) for p in paths.values()] == [
        "out/sub010GenericAffine.mat", "out/sub011Warp.nii.gz", "out/sub011InverseWarp.nii.gz"]


@pytest.mark.parametrize("kwargs, message", [
    ({"restrict_transformation": (1, 1, 0)}, "restriction"),
    ({"restrict_transformation": np.array([1, 1, 0])}, "restriction"),
    ({"use_legacy_histogram_matching": True}, "histogram matching"),
    ({"type_of_transform": "antsRegistrationSyN[b]"}, "B-spline"),
])
def test_registration_refuses_before_reading_images(kwargs, message):
    """The refusals come first: the images here do not even exist."""
    with pytest.raises(ValueError, match=message):
        pants.registration("nosuch_fixed.nii.gz", "nosuch_moving.nii.gz", **kwargs)


def test_registration_refuses_antspy_raw_argument_lists():
    with pytest.raises(ValueError, match="raw antsRegistration argument list"):
        pants.registration(["-d", "3"], None)


def test_from_numpy_geometry_is_itk_lps():
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    img = pants.from_numpy(np.zeros((3, 4, 5), np.float32), origin=(10.0, -20.0, 5.0),
                           spacing=(1.0, 2.0, 3.0), direction=direction)
    assert img.origin == (10.0, -20.0, 5.0) and img.spacing == (1.0, 2.0, 3.0)
    np.testing.assert_allclose(img.direction, direction)
    # parareg's RAS vox2world: the first two world axes flipped
    np.testing.assert_allclose(img.image.vox2world[:3, 3], [-10.0, 20.0, 5.0])
    assert img.shape == (3, 4, 5) and img.dimension == 3 and img.pixeltype == "float"
    assert img.numpy() is not img.view()


@pytest.mark.parametrize("call, message", [
    (lambda: pants.from_numpy(np.zeros((4, 4, 3)), has_components=True), "scalar images"),
    (lambda: pants.from_numpy(np.zeros((4, 4)), spacing=(1.0,)), "spacing must hold 2"),
    (lambda: pants.from_numpy(np.zeros((4, 4, 4, 4))), "2D or 3D"),
    (lambda: pants.image_read("x.nii.gz", reorient="RPI"), "reorient"),
    (lambda: pants.registration(np.zeros((5, 5)), np.zeros((5, 5)), "Rigid"), "from_numpy"),
    (lambda: pants.image_read("x.nii.gz", pixeltype="short"), "pixeltype must be one of"),
])
def test_image_helpers_bad_input(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


def test_no_warning_for_defaults():
    from parareg.ants._registration import _DEFAULTS, _warn_unused

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_unused(dict(_DEFAULTS), {}, get_recipe("Affine"), "Affine")
        _warn_unused({**_DEFAULTS, "flow_sigma": 3.0}, {}, get_recipe("Rigid"), "Rigid")
    with pytest.warns(UserWarning, match="aff_iterations not used by type_of_transform='SyN'"):
        _warn_unused({**_DEFAULTS, "aff_iterations": (10,)}, {}, get_recipe("SyN"), "SyN")
    with pytest.warns(UserWarning, match="unknown keyword argument.*foo"):
        _warn_unused(dict(_DEFAULTS), {"foo": 1}, get_recipe("SyN"), "SyN")


def test_other_antspy_names_say_what_is_offered():
    with pytest.raises(AttributeError, match="parareg.ants has no 'resample_image'.*registration"):
        pants.resample_image  # noqa: B018
