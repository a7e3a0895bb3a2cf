"""parareg.gradient against numpy.gradient mapped to world axes."""

from __future__ import annotations

import numpy as np
import pytest

import parareg

from ._data import IXI_T1, needs_data


def world_gradient_twin(image):
    ndim = image.ndim
    vox = np.stack(np.gradient(image.data.astype(np.float64)), axis=-1)
    g = np.linalg.inv(image.vox2world[:ndim, :ndim]).T
    return vox @ g.T


def oblique(ndim):
    rng = np.random.default_rng(ndim)
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = np.diag(np.linspace(0.7, 1.9, ndim)) + 0.2 * rng.normal(size=(ndim, ndim))
    m[:ndim, ndim] = rng.normal(size=ndim) * 10
    return m


@pytest.mark.parametrize("shape", [(31, 29), (17, 15, 13), (2, 9, 7), (40, 1)])
def test_gradient_matches_numpy(shape):
    ndim = len(shape)
    data = np.random.default_rng(1).random(shape).astype(np.float32)
    if 1 in shape:
        pytest.raises(ValueError, np.gradient, data)  # numpy needs 2 samples; we return 0
        img = parareg.Image(data, np.eye(ndim + 1))
        g = parareg.gradient(img)
        assert np.all(g[..., list(shape).index(1)] == 0)
        return
    img = parareg.Image(data, oblique(ndim))
    np.testing.assert_allclose(parareg.gradient(img), world_gradient_twin(img), rtol=1e-4,
                               atol=1e-4)


def test_gradient_of_linear_ramp_is_exact_in_world_units():
    xyz = np.stack(np.meshgrid(*[np.arange(n) for n in (10, 12, 14)], indexing="ij"))
    vox2world = oblique(3)
    world = np.einsum("ij,j...->i...", vox2world[:3, :3], xyz) + vox2world[:3, 3, None, None, None]
    slope = np.array([0.5, -2.0, 1.25])
    img = parareg.Image(np.einsum("i,i...->...", slope, world), vox2world)
    g = parareg.gradient(img)
    np.testing.assert_allclose(g.reshape(-1, 3), np.broadcast_to(slope, (g.size // 3, 3)),
                               atol=2e-3)


@pytest.mark.parametrize("ndim", [2, 3])
def test_gradient_identical_bits_at_any_thread_count(ndim):
    shape = (1200, 700) if ndim == 2 else (160, 80, 60)  # several units
    img = parareg.Image(np.random.default_rng(2).random(shape), oblique(ndim))
    outs = [parareg.gradient(img, num_threads=n) for n in (1, 2, 3)]
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


@needs_data
def test_gradient_on_real_volume():
    img = parareg.load(IXI_T1[1])
    np.testing.assert_allclose(parareg.gradient(img, num_threads=2), world_gradient_twin(img),
                               rtol=1e-4, atol=1e-3)
