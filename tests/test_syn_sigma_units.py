"""SyN sigmas in millimetres (sigma_units="mm"): the same smoothing in voxels at any spacing."""

from __future__ import annotations

import numpy as np
import pytest

import parareg
from parareg.registration import syn_registration
from parareg.registration.pipeline import SYN_PRESETS
from parareg.registration.syn import SymmetricDiffeomorphicRegistration


def blob(spacing, shift=(0.0, 0.0)):
    shape = (30, 28)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape],
                                indexing="ij"), axis=-1)
    centre = np.array(shape) / 2 + np.array(shift)
    data = np.exp(-(((grid - centre) / 5.0) ** 2).sum(-1)) * 100
    return parareg.Image(data.astype(np.float32), np.diag([*spacing, 1.0]))


def test_mm_sigmas_are_voxel_sigmas_divided_by_the_spacing():
    """2 mm voxels: update 2.4 mm / field 1.0 mm give the bits of 1.2 / 0.5 voxels."""
    levels = ((2, 0.5, 8), (1, 0.0, 4))
    fixed, moving = blob((2.0, 2.0)), blob((2.0, 2.0), shift=(1.5, -1.0))
    in_mm = syn_registration(fixed, moving, levels=levels, update_sigma=2.4, field_sigma=1.0,
                             sigma_units="mm")
    in_voxels = syn_registration(fixed, moving, levels=levels, update_sigma=1.2,
                                 field_sigma=0.5)
    np.testing.assert_array_equal(in_mm.forward, in_voxels.forward)
    np.testing.assert_array_equal(in_mm.backward, in_voxels.backward)


def test_mm_sigmas_follow_each_axis_spacing():
    syn = SymmetricDiffeomorphicRegistration(update_sigma=1.0, field_sigma=0.5,
                                             sigma_units="mm")
    update, field = syn._voxel_sigmas(blob((2.0, 0.5)))
    assert update.tolist() == [0.5, 2.0] and field.tolist() == [0.25, 1.0]
    update, _ = SymmetricDiffeomorphicRegistration(update_sigma=1.0)._voxel_sigmas(
        blob((2.0, 0.5)))
    assert update.tolist() == [1.0, 1.0]  # voxels: the spacing does not matter


def test_presets_give_sigmas_in_mm():
    for name, preset in SYN_PRESETS.items():
        assert preset["sigma_units"] == "mm", name


@pytest.mark.parametrize("value", ["pixels", "MM", None, 1])
def test_bad_sigma_units(value):
    img = blob((1.0, 1.0))
    with pytest.raises(ValueError, match=r"sigma_units must be one of \['mm', 'voxels'\]"):
        syn_registration(img, img, sigma_units=value)
