"""Parallel Gaussian smoothing and pyramid levels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import parareg
from parareg.filters import gaussian_smooth
from parareg.registration.pyramid import check_levels, pyramid_level, shrink_grid


@pytest.mark.parametrize("sigma", [1.5, (0.0, 2.0, 0.7)])
def test_gaussian_smooth_equals_scipy_bits_at_any_thread_count(sigma):
    data = np.random.default_rng(0).random((70, 60, 50)).astype(np.float32)
    twin = ndimage.gaussian_filter(data, sigma, output=np.float32)
    for n in (1, 2, 3):
        np.testing.assert_array_equal(gaussian_smooth(data, sigma, num_threads=n), twin)


def test_gaussian_smooth_rejects_negative_sigma():
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        gaussian_smooth(np.zeros((4, 4)), -1.0)


def test_shrink_grid_keeps_field_of_view_centre():
    img = parareg.Image(np.zeros((40, 30, 20)), np.diag([2.0, 2.0, 3.0, 1.0]))
    coarse = shrink_grid(img, 4)
    assert coarse.shape == (10, 7, 5)
    np.testing.assert_allclose(coarse.spacing, [8.0, 8.0, 12.0])
    np.testing.assert_allclose(coarse.vox2world[:3, 3], [3.0, 3.0, 4.5])  # centre of 1st block


def test_pyramid_level_of_constant_image_is_constant_inside():
    img = parareg.Image(np.full((32, 32, 32), 5.0), np.eye(4))
    level = pyramid_level(img, factor=2, sigma=1.0)
    assert level.shape == (16, 16, 16)
    np.testing.assert_allclose(level.data[2:-2, 2:-2, 2:-2], 5.0, rtol=1e-5)
    mm = pyramid_level(img, factor=1, sigma=2.0, sigma_unit="mm")
    np.testing.assert_allclose(mm.data, 5.0, rtol=1e-5)


def test_check_levels_errors():
    assert check_levels([(4, 2, 10)])[0].factor == 4
    for bad in ([], [(0, 1, 1)], [(2, -1, 3)], [(2, 1, -3)], [(2, 1)]):
        with pytest.raises(ValueError, match="levels"):
            check_levels(bad)
