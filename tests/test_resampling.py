"""parareg.resample against its SciPy twins, thread invariance, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import parareg
from parareg.kernels.resample import resample_affine_3d
from parareg.parallel import SCHEDULES, for_each_slab

from ._data import IXI_LABELS, IXI_T1, MINDBOGGLE, needs_data


def smooth_image(shape, seed=0, vox2world=None):
    rng = np.random.default_rng(seed)
    data = ndimage.gaussian_filter(rng.random(shape), 2.0).astype(np.float32) * 100
    ndim = len(shape)
    if vox2world is None:
        vox2world = np.diag([*np.linspace(0.8, 1.6, ndim), 1.0])
        vox2world[:ndim, ndim] = np.linspace(-10, 12, ndim)
    return parareg.Image(data, vox2world)


def rotation_affine(ndim, angle=0.08, shift=(1.3, -2.2, 0.7), scale=1.03):
    c, s = np.cos(angle), np.sin(angle)
    a = np.eye(ndim + 1)
    a[:2, :2] = scale * np.array([[c, -s], [s, c]])
    if ndim == 3:
        a[2, 2] = 0.98
        a[1, 2] = 0.02
    a[:ndim, ndim] = shift[:ndim]
    return a


def interior_mask(coords, shape, margin=1e-3):
    """Points strictly inside [0, n-1] on every axis (away from the boundary convention)."""
    inside = np.ones(coords.shape[1:], dtype=bool)
    for axis, n in enumerate(shape):
        inside &= (coords[axis] > margin) & (coords[axis] < n - 1 - margin)
    return inside


def moving_coords(moving, reference, affine, field=None):
    ndim = reference.ndim
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in reference.shape], indexing="ij"))
    hom = np.concatenate([idx.reshape(ndim, -1), np.ones((1, idx[0].size))])
    world = (reference.vox2world @ hom)[:ndim]
    if field is not None:
        world = world + field.reshape(-1, ndim).T.astype(np.float64)
    world_h = np.concatenate([world, np.ones((1, world.shape[1]))])
    vox = (moving.world2vox @ affine @ world_h)[:ndim]
    return vox.reshape(ndim, *reference.shape)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("order,interpolation", [(1, "linear"), (0, "nearest")])
def test_affine_matches_scipy(ndim, order, interpolation):
    shape = (40, 37) if ndim == 2 else (24, 21, 19)
    moving = smooth_image(shape, seed=1)
    reference = smooth_image(tuple(n + 3 for n in shape), seed=2)
    affine = rotation_affine(ndim)
    ours = parareg.resample(moving, reference, affine=affine, interpolation=interpolation)
    out2mov = moving.world2vox @ affine @ reference.vox2world
    twin = ndimage.affine_transform(moving.data.astype(np.float64), out2mov, order=order,
                                    mode="constant", cval=0.0, output_shape=reference.shape)
    coords = moving_coords(moving, reference, affine)
    inside = interior_mask(coords, shape, margin=0.01)
    if order == 0:  # stay clear of rounding ties at .5
        inside &= np.all(np.abs(coords - np.floor(coords) - 0.5) > 1e-3, axis=0)
    assert inside.sum() > 0.3 * inside.size
    np.testing.assert_allclose(ours.data[inside], twin[inside], rtol=1e-5, atol=1e-3)
    outside = ~interior_mask(coords, shape, margin=-0.6)
    assert np.all(ours.data[outside] == 0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_matches_map_coordinates(ndim):
    shape = (33, 30) if ndim == 2 else (20, 18, 16)
    moving = smooth_image(shape, seed=3)
    reference = smooth_image(shape, seed=4)
    rng = np.random.default_rng(5)
    field = ndimage.gaussian_filter(rng.normal(size=(*shape, ndim)) * 8, (3,) * ndim + (0,))
    field = field.astype(np.float32)
    affine = rotation_affine(ndim, angle=0.05)
    ours = parareg.resample(moving, reference, affine=affine, field=field)
    coords = moving_coords(moving, reference, affine, field)
    twin = ndimage.map_coordinates(moving.data.astype(np.float64), coords, order=1,
                                   mode="constant", cval=0.0)
    inside = interior_mask(coords, shape, margin=0.01)
    assert inside.mean() > 0.3
    np.testing.assert_allclose(ours.data[inside], twin[inside], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("ndim", [2, 3])
def test_constant_field_equals_translation(ndim):
    shape = (30, 28) if ndim == 2 else (16, 15, 14)
    img = smooth_image(shape)
    shift = np.array([1.7, -0.7, 2.1][:ndim])  # not a half voxel: -0.6 mm is -0.5 voxel in 3D
    field = np.broadcast_to(shift.astype(np.float32), (*shape, ndim)).copy()
    translation = np.eye(ndim + 1)
    translation[:ndim, ndim] = shift
    by_field = parareg.resample(img, img, field=field)
    by_affine = parareg.resample(img, img, affine=translation)
    np.testing.assert_allclose(by_field.data, by_affine.data, atol=1e-3)


def test_identity_reproduces_image():
    img = smooth_image((12, 11, 10))
    np.testing.assert_array_equal(parareg.resample(img, img).data, img.data)
    np.testing.assert_array_equal(parareg.resample(img, img, interpolation="nearest").data,
                                  img.data)


def test_nearest_keeps_label_dtype_and_values():
    labels = parareg.Image(np.random.default_rng(0).integers(0, 5, (20, 20, 20)).astype(np.int16),
                           np.eye(4))
    out = parareg.resample(labels, labels, affine=rotation_affine(3), interpolation="nearest")
    assert out.data.dtype == np.int16
    assert set(np.unique(out.data)) <= set(range(5))


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("use_field", [False, True])
def test_identical_bits_at_any_thread_count(ndim, use_field):
    shape = (300, 260) if ndim == 2 else (60, 50, 40)  # several work units
    img = smooth_image(shape, seed=7)
    field = None
    if use_field:
        field = np.random.default_rng(8).normal(size=(*shape, ndim)).astype(np.float32)
    results = [parareg.resample(img, img, affine=rotation_affine(ndim), field=field,
                                num_threads=n).data for n in (1, 2, 3)]
    with parareg.threads(3):
        results.append(parareg.resample(img, img, affine=rotation_affine(ndim), field=field).data)
    for other in results[1:]:
        np.testing.assert_array_equal(results[0], other)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_kernel_identical_under_every_schedule(schedule):
    img = smooth_image((64, 40, 30), seed=9)
    m = img.world2vox @ rotation_affine(3) @ img.vox2world
    run = resample_affine_3d
    outs = []
    for n in (1, 2, 3):
        out = np.empty(img.shape, np.float32)
        units = for_each_slab(lambda a, b: run(img.data, m, False, out, a, b), img.shape,
                              grain=2000, num_threads=n, schedule=schedule)
        outs.append(out)
    assert units > 3
    for other in outs[1:]:
        np.testing.assert_array_equal(outs[0], other)


@needs_data
def test_ixi_volume_through_known_affine_and_back():
    img = parareg.load(IXI_T1[0])
    affine = rotation_affine(3, angle=0.1, shift=(4.0, -3.0, 2.0), scale=1.0)
    there = parareg.resample(img, img, affine=affine, num_threads=2)
    back = parareg.resample(there, img, affine=np.linalg.inv(affine), num_threads=2)
    head = ndimage.binary_erosion(img.data > 20, iterations=6)
    assert head.sum() > 10_000
    # two linear interpolations blur a 2 mm volume: compare with SciPy doing the same trip
    there_vox = img.world2vox @ affine @ img.vox2world
    twin = ndimage.affine_transform(ndimage.affine_transform(img.data, there_vox, order=1),
                                    np.linalg.inv(there_vox), order=1)
    np.testing.assert_allclose(back.data[head], twin[head], atol=1e-3 * img.data.max())
    assert np.corrcoef(back.data[head], img.data[head])[0, 1] > 0.9
    labels = parareg.load(IXI_LABELS[0], labels=True)
    moved = parareg.resample(labels, labels, affine=affine, interpolation="nearest")
    assert set(np.unique(moved.data)) <= set(np.unique(labels.data))


@needs_data
def test_2d_slice_from_disk_path():
    out = parareg.resample(str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), affine=rotation_affine(2))
    assert out.ndim == 2 and out.data.std() > 0


def test_bad_input_names_the_argument(tmp_path):
    img3 = smooth_image((8, 8, 8))
    img2 = smooth_image((8, 8))
    with pytest.raises(ValueError, match="moving is 2D but reference is 3D"):
        parareg.resample(img2, img3)
    singular = np.eye(4)
    singular[2, 2] = 0
    with pytest.raises(ValueError, match="affine.*not invertible"):
        parareg.resample(img3, img3, affine=singular)
    with pytest.raises(ValueError, match="affine must be a 4x4"):
        parareg.resample(img3, img3, affine=np.eye(3))
    nan_affine = np.eye(4)
    nan_affine[0, 3] = np.nan
    with pytest.raises(ValueError, match="affine contains NaN"):
        parareg.resample(img3, img3, affine=nan_affine)
    with pytest.raises(ValueError, match="field must have shape"):
        parareg.resample(img3, img3, field=np.zeros((8, 8, 8, 2), np.float32))
    bad_field = np.zeros((8, 8, 8, 3), np.float32)
    bad_field[1, 1, 1, 0] = np.inf
    with pytest.raises(ValueError, match="field contains NaN"):
        parareg.resample(img3, img3, field=bad_field)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        parareg.resample(img3, img3, interpolation="cubic")
    with pytest.raises(FileNotFoundError, match="moving"):
        parareg.resample(tmp_path / "missing.nii.gz", img3)
    with pytest.raises(TypeError, match="reference is an ndarray without a grid: pass reference_affine="):
        parareg.resample(img3, img3.data)
    img3.data[0, 0, 0] = np.nan  # corrupted after construction
    with pytest.raises(ValueError, match="moving contains 1 NaN"):
        parareg.resample(img3, img3)
    with pytest.raises(ValueError, match="data must be a 2D or 3D array"):
        parareg.Image(np.zeros((2, 2, 2, 2)), np.eye(5))
