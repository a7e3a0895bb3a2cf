"""``resample_field``: every component of a displacement field through an affine, one kernel.

The kernel (``kernels.resample.resample_field_affine_3d``) must give, per
component, the bits of resampling that component alone as a scalar image
(what SyN's level changes and ``transform_inverse`` did before it), agree
with ``scipy.ndimage.map_coordinates`` (its NumPy/SciPy twin), and not
depend on the thread count.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from parareg.image import Image, trusted_image
from parareg.registration.pyramid import shrink_grid
from parareg.resampling import resample, resample_zero_outside
from parareg.transforms.diffeomorphic import resample_field


def _per_component(field, field_vox2world, grid, *, affine=None, itk_edge=False,
                   num_threads=None):
    """The definition: each component resampled on its own as a scalar image."""
    out = np.empty((*grid.shape, grid.ndim), np.float32)
    for axis in range(grid.ndim):
        component = trusted_image(np.ascontiguousarray(field[..., axis]), field_vox2world)
        run = resample if itk_edge else resample_zero_outside
        out[..., axis] = run(component, grid, affine=affine, num_threads=num_threads).data
    return out


def _case(ndim, seed=0):
    """A fine grid, the coarse grid of its pyramid (factor 2) and a field on the coarse one."""
    rng = np.random.default_rng(seed)
    shape = (19, 16, 11)[:ndim]
    vox2world = np.diag([1.5, 2.0, 1.2][:ndim] + [1.0])
    vox2world[:ndim, ndim] = [-4.0, 3.0, 1.0][:ndim]
    fine = Image(np.zeros(shape, np.float32), vox2world)
    coarse = shrink_grid(fine, 2)
    field = (2.0 * rng.standard_normal((*coarse.shape, ndim))).astype(np.float32)
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] += 0.05 * rng.standard_normal((ndim, ndim))
    affine[:ndim, ndim] = rng.normal(0.0, 2.0, ndim)
    return fine, coarse, field, affine


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("itk_edge", [False, True])
@pytest.mark.parametrize("with_affine", [False, True])
def test_resample_field_gives_each_components_bits(ndim, itk_edge, with_affine):
    fine, coarse, field, affine = _case(ndim)
    affine = affine if with_affine else None
    expected = _per_component(field, coarse.vox2world, fine, affine=affine, itk_edge=itk_edge)
    got = resample_field(field, coarse.vox2world, fine, affine=affine, itk_edge=itk_edge)
    assert got.dtype == np.float32 and got.shape == (*fine.shape, ndim)
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("ndim", [2, 3])
def test_resample_field_matches_map_coordinates(ndim):
    """The zero-outside rule is map_coordinates(order=1, mode="constant") inside [0, n - 1]."""
    fine, coarse, field, affine = _case(ndim, seed=1)
    got = resample_field(field, coarse.vox2world, fine, affine=affine)
    fine_to_coarse_vox = np.linalg.inv(coarse.vox2world) @ affine @ fine.vox2world
    points = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in fine.shape],
                                  indexing="ij"), axis=-1).reshape(-1, ndim)
    coords = points @ fine_to_coarse_vox[:ndim, :ndim].T + fine_to_coarse_vox[:ndim, ndim]
    upper = np.asarray(coarse.shape) - 1
    inside = np.all((coords >= 0) & (coords <= upper), axis=1)
    assert inside.any() and not inside.all()
    for axis in range(ndim):
        twin = ndimage.map_coordinates(field[..., axis].astype(np.float64), coords.T, order=1,
                                       mode="nearest")
        twin[~inside] = 0.0
        np.testing.assert_allclose(got[..., axis].reshape(-1), twin, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("itk_edge", [False, True])
def test_resample_field_is_thread_count_invariant(itk_edge):
    fine, coarse, field, affine = _case(3, seed=2)
    runs = [resample_field(field, coarse.vox2world, fine, affine=affine, itk_edge=itk_edge,
                           num_threads=n).tobytes() for n in (1, 2, 3)]
    assert runs[0] == runs[1] == runs[2]
