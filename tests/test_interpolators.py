"""The interpolators of parareg.resample: ITK's rules, against SciPy/NumPy twins and against ANTs.

* twins: each interpolator at the points of a random affine (the reference
  grid larger than the image, so the half-voxel edge strip and the outside
  are hit) equals a plain SciPy/NumPy implementation of ITK's rule;
* 1, 2 and 3 threads give identical bits, through an affine and a field;
* ``ants.apply_transforms`` through ANTs-written transforms (an affine
  ``.mat``, and a displacement field + the affine) on crops of real data,
  2D and 3D, without any padding: linear <= 1e-4 of the range, nearest
  exact, GenericLabel <= 0.05 % of voxels, BSpline <= 1e-3 of the range;
  Gaussian and Lanczos within 1e-5 (measured: 1e-7 and exact);
* bad names and GenericLabel on floats are refused.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage, special

import parareg
from parareg.resampling import INTERPOLATIONS, check_interpolation, resample_zero_outside

from ._data import DATA, IXI_LABELS, IXI_T1, MINDBOGGLE, MINDBOGGLE_LABELS, needs_data

FLOAT_METHODS = ("linear", "nearest", "bspline", "gaussian", "lanczoswindowedsinc")


def random_case(shape, seed=0, *, labels=False):
    """An image on the identity grid, a reference grid 4 voxels larger, and a random affine."""
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    if labels:
        data = ndimage.zoom(rng.integers(0, 5, size=[-(-n // 3) for n in shape]),
                            3, order=0)[tuple(slice(n) for n in shape)].astype(np.int16) * 7
    else:
        data = (ndimage.gaussian_filter(rng.random(shape), 1.0) * 100).astype(np.float32)
    image = parareg.Image(data, np.eye(ndim + 1))
    ref_v2w = np.eye(ndim + 1)
    ref_v2w[:ndim, ndim] = -2.0
    reference = parareg.Image(np.zeros([n + 4 for n in shape], np.float32), ref_v2w)
    affine = np.eye(ndim + 1)
    affine[:ndim, :ndim] += rng.normal(scale=0.05, size=(ndim, ndim))
    affine[:ndim, ndim] = rng.normal(scale=0.7, size=ndim)
    index = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in reference.shape],
                                 indexing="ij"), axis=-1).reshape(-1, ndim)
    world = index @ ref_v2w[:ndim, :ndim].T + ref_v2w[:ndim, ndim]
    coords = (world @ affine[:ndim, :ndim].T + affine[:ndim, ndim]).T  # moving voxels, (ndim, N)
    return image, reference, affine, coords


def inside_mask(coords, shape):
    return np.all([(c >= -0.5) & (c < n - 0.5) for c, n in zip(coords, shape)], axis=0)


def twin_linear(data, coords):
    clamped = [np.clip(c, 0, n - 1) for c, n in zip(coords, data.shape)]
    return ndimage.map_coordinates(data.astype(np.float64), clamped, order=1)


def twin_nearest(data, coords):
    index = [np.floor(c + 0.5).astype(int) for c in coords]
    return data[tuple(index)]


def twin_bspline(data, coords):
    return ndimage.map_coordinates(data.astype(np.float64), coords, order=3, mode="mirror")


def _separable(data, taps):
    """sum over tap products ``w_0[i] w_1[j] ... data[i, j, ...]``; ``taps``: per axis (index, w)."""
    total = 0.0
    for combo in np.ndindex(*[t[0].shape[0] for t in taps]):
        w = np.prod([taps[a][1][combo[a]] for a in range(len(taps))], axis=0)
        index = tuple(taps[a][0][combo[a]] for a in range(len(taps)))
        total = total + w * data[index]
    return total


def twin_gaussian(data, coords, sigma=1.0, alpha=1.0):
    data = data.astype(np.float64)
    taps = []
    for c, n in zip(coords, data.shape):
        begin = np.maximum(0, np.floor(c + 0.5 - alpha * sigma)).astype(int)
        end = np.minimum(n, np.ceil(c + 0.5 + alpha * sigma)).astype(int)
        offsets = np.arange(int((end - begin).max()))[:, None]
        index = begin + offsets
        s = 1.0 / (np.sqrt(2) * sigma)
        w = special.erf((index + 0.5 - c) * s) - special.erf((index - 0.5 - c) * s)
        w = np.where(index < end, w, 0.0)
        taps.append((np.minimum(index, n - 1), w))
    return _separable(data, taps) / _separable(np.ones_like(data), taps)


def twin_lanczos(data, coords, radius=3):
    taps = []
    for c, n in zip(coords, data.shape):
        base = np.floor(c)
        index = (base + np.arange(-radius + 1, radius + 1)[:, None]).astype(int)
        t = c - index
        w = np.sinc(t) * np.sinc(t / radius)
        w = np.where(c == base, (index == base).astype(float), w)  # exact grid point: itself
        w = np.where((index >= 0) & (index < n), w, 0.0)  # ANTs' constant (zero) boundary
        taps.append((np.clip(index, 0, n - 1), w))
    return _separable(data.astype(np.float64), taps)


def twin_label(data, coords):
    labels = np.unique(data)
    clamped = [np.clip(c, 0, n - 1) for c, n in zip(coords, data.shape)]
    votes = np.stack([ndimage.map_coordinates((data == v).astype(np.float64), clamped, order=1)
                      for v in labels])
    return labels[np.argmax(votes, axis=0)]  # the first (smallest) label on a tie, as ITK


TWINS = {"linear": twin_linear, "nearest": twin_nearest, "bspline": twin_bspline,
         "gaussian": twin_gaussian, "lanczoswindowedsinc": twin_lanczos,
         "genericlabel": twin_label}


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("method", sorted(TWINS))
def test_interpolator_equals_its_twin(method, ndim):
    shape = (23, 19) if ndim == 2 else (13, 11, 9)
    image, reference, affine, coords = random_case(shape, seed=ndim,
                                                   labels=method == "genericlabel")
    got = parareg.resample(image, reference, affine=affine, interpolation=method).data.ravel()
    inside = inside_mask(coords, shape)
    assert 0.2 < inside.mean() < 0.9  # the edge strip and the outside are both exercised
    want = TWINS[method](image.data, coords[:, inside])
    assert not np.any(got[~inside])
    if method in ("nearest", "genericlabel"):
        assert got.dtype == image.data.dtype
        np.testing.assert_array_equal(got[inside], want)
    else:
        assert got.dtype == np.float32
        np.testing.assert_allclose(got[inside], want, rtol=0, atol=1e-4)


def test_linear_uses_the_edge_voxels_within_half_a_voxel():
    data = np.arange(1.0, 5.0, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    image = parareg.Image(data, np.eye(3))
    shift = np.eye(3)
    for dx, want in ((-0.49, 1.0), (-0.51, 0.0), (3.49, 4.0), (3.5, 0.0), (2.5, 3.5)):
        shift[0, 2] = dx
        assert parareg.resample(image, image, affine=shift).data[0, 1] == pytest.approx(want)
    # the registration's rule: nothing beyond the outer voxel centres
    shift[0, 2] = -0.25
    assert resample_zero_outside(image, image, affine=shift).data[0, 1] == 0.0


@pytest.mark.parametrize("method", sorted(TWINS))
def test_identical_bits_at_1_2_3_threads(method):
    image, reference, affine, _ = random_case((30, 12, 10), seed=4,
                                              labels=method == "genericlabel")
    field = np.random.default_rng(5).normal(scale=0.6, size=(*reference.shape, 3))
    for kwargs in ({"affine": affine}, {"affine": affine, "field": field.astype(np.float32)}):
        runs = [parareg.resample(image, reference, interpolation=method, num_threads=n,
                                 **kwargs).data for n in (1, 2, 3)]
        assert runs[0].tobytes() == runs[1].tobytes() == runs[2].tobytes()


def test_names_are_case_insensitive_with_ants_spellings():
    for name in ("Linear", "NearestNeighbor", "GenericLabel", "BSpline", "BSpline[3]",
                 "Gaussian", "LanczosWindowedSinc", "NEAREST", "bspline[ 3 ]"):
        assert check_interpolation(name) in INTERPOLATIONS.values()
    assert check_interpolation("NearestNeighbor") == "nearest"


@pytest.mark.parametrize("bad, match", [
    ("cubic", "interpolation must be one of"),
    (3, "interpolation must be one of"),
    ("BSpline[5]", "only B-splines of order 3"),
    ("multiLabel", "interpolation must be one of"),
])
def test_bad_interpolation_names(bad, match):
    image = parareg.Image(np.ones((4, 4), np.float32), np.eye(3))
    with pytest.raises(ValueError, match=match):
        parareg.resample(image, image, interpolation=bad)


def test_generic_label_refuses_a_float_image():
    image = parareg.Image(np.ones((4, 4), np.float32), np.eye(3))
    with pytest.raises(ValueError, match="'genericlabel' needs an integer label image.*float32"):
        parareg.resample(image, image, interpolation="GenericLabel")


def test_generic_label_keeps_dtype_and_large_labels():
    data = np.array([[0, 70000], [3, 70000]], np.uint32)[:, :, None] * np.ones(3, np.uint32)
    data[0, 0, 0] = 2**31 + 5  # beyond the lookup table's range: ranked by sorting
    image = parareg.Image(data, np.eye(4))
    out = parareg.resample(image, image, interpolation="GenericLabel").data
    assert out.dtype == np.uint32
    np.testing.assert_array_equal(out, data)


# --- against antsApplyTransforms (antspyx) -----------------------------------------------------

#: ours -> (antspyx's name, max |difference| / range, max fraction of voxels that differ)
ANTS_CASES = {
    "Linear": ("linear", 1e-4, None),
    "NearestNeighbor": ("nearestNeighbor", 0.0, None),
    "GenericLabel": ("genericLabel", None, 5e-4),
    "BSpline": ("bSpline", 1e-3, None),
    "Gaussian": ("gaussian", 1e-5, None),
    "LanczosWindowedSinc": ("lanczosWindowedSinc", 1e-5, None),
}


@pytest.fixture(scope="module", params=[2, 3], ids=["2d", "3d"])
def ants_case(request, tmp_path_factory):
    """Crops of real data (moving, labels, a shifted reference) and ANTs-written transforms."""
    ants = pytest.importorskip("ants")
    if not DATA.is_dir():
        pytest.skip("../shared/data is not present")
    ndim = request.param
    tmp = tmp_path_factory.mktemp(f"ants{ndim}d")
    if ndim == 3:
        crop, ref_crop = np.s_[30:78, 30:74, 20:60], np.s_[26:70, 34:80, 24:60]
        image, labels = IXI_T1[0], IXI_LABELS[0]
    else:
        crop, ref_crop = np.s_[40:140, 60:180], np.s_[30:130, 70:200]
        image, labels = MINDBOGGLE[0], MINDBOGGLE_LABELS[0]
    paths = {}
    for name, src, window in (("moving", image, crop), ("labels", labels, crop),
                              ("reference", image, ref_crop)):
        paths[name] = tmp / f"{name}.nii.gz"
        nib.save(nib.load(src).slicer[window], paths[name])
    fixed = ants.image_read(str(paths["reference"]))
    rng = np.random.default_rng(1)
    tx = ants.create_ants_transform(
        transform_type="AffineTransform", dimension=ndim,
        matrix=np.eye(ndim) + rng.normal(scale=0.04, size=(ndim, ndim)),
        translation=rng.normal(scale=3, size=ndim), center=list(fixed.origin))
    ants.write_transform(tx, str(tmp / "affine.mat"))
    grid = np.meshgrid(*[np.linspace(0, np.pi, n) for n in fixed.shape], indexing="ij")
    field = np.stack([3.0 * np.sin(grid[0] + a) * np.cos(grid[1] - a) for a in range(ndim)], -1)
    warp = ants.from_numpy(field.astype(np.float32), origin=fixed.origin, spacing=fixed.spacing,
                           direction=fixed.direction, has_components=True)
    ants.image_write(warp, str(tmp / "warp.nii.gz"))
    return ants, paths, {"affine": [str(tmp / "affine.mat")],
                         "warp+affine": [str(tmp / "warp.nii.gz"), str(tmp / "affine.mat")]}


@needs_data
@pytest.mark.parametrize("chain", ["affine", "warp+affine"])
@pytest.mark.parametrize("ours", sorted(ANTS_CASES))
def test_equals_ants_apply_transforms(ants_case, ours, chain):
    ants, paths, chains = ants_case
    theirs, tolerance, fraction = ANTS_CASES[ours]
    source = paths["labels"] if ours == "GenericLabel" else paths["moving"]
    want = ants.apply_transforms(ants.image_read(str(paths["reference"])),
                                 ants.image_read(str(source)), chains[chain],
                                 interpolator=theirs).numpy().astype(np.float64)
    # an intensity image as a nibabel object (a path with nearest would be read as labels)
    image = source if ours == "GenericLabel" else nib.load(source)
    got = parareg.apply_transforms(image, paths["reference"], chains[chain],
                                   interpolation=ours).data
    value_range = float(want.max() - want.min())
    assert np.count_nonzero(want == 0) > 0.05 * want.size  # the outside is in the picture
    if fraction is not None:
        assert np.issubdtype(got.dtype, np.integer)
        assert np.count_nonzero(got != want) <= fraction * want.size
    else:
        assert np.max(np.abs(got - want)) <= tolerance * value_range
