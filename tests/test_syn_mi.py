"""Dense Parzen MI for SyN: NumPy twin, finite differences, BRATS data, threads, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

import parareg
from parareg.fields import invert
from parareg.metrics.syn import SYN_METRICS, get_syn_metric
from parareg.metrics.syn_base import Pair
from parareg.metrics.syn_mi import MIMetric, mi_fields
from parareg.registration.pyramid import pyramid_level, shrink_mask

from ._data import DATA
from .reference import syn_mi_reference as ref

BRATS = DATA / "multimodal" / "brats_pat0001"
needs_brats = pytest.mark.skipif(not (BRATS / "Flair_subtrMeanDivStd.nii.gz").is_file(),
                                 reason="../shared/data/multimodal/brats_pat0001 is not present")


def oblique(ndim, seed=0):
    """A vox2world with unequal spacing, a small rotation/shear and an offset."""
    rng = np.random.default_rng(seed)
    m = np.eye(ndim + 1)
    m[:ndim, :ndim] = np.diag(np.linspace(0.8, 1.6, ndim)) + 0.15 * rng.normal(size=(ndim, ndim))
    m[:ndim, ndim] = rng.normal(size=ndim) * 10
    return m


def multimodal_pair(shape, seed=0):
    """Smooth blobs, and a non-monotone remap of a shifted copy (MI sees it, CC does not)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    fixed = np.full(shape, 0.2)
    moved = np.full(shape, 0.2)
    for _ in range(6):
        centre = rng.uniform(-0.6, 0.6, len(shape))
        width = rng.uniform(0.25, 0.5)
        shift = rng.uniform(-0.15, 0.15, len(shape))
        fixed += np.exp(-sum((g - c) ** 2 for g, c in zip(grids, centre)) / width ** 2)
        moved += np.exp(-sum((g - c - s) ** 2 for g, c, s in zip(grids, centre, shift))
                        / width ** 2)
    moving = (moved - moved.mean()) ** 2 + 0.1 * grids[0]
    return fixed.astype(np.float32), moving.astype(np.float32)


def cosine(a, b):
    a = np.ravel(a)
    b = np.ravel(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- #
# agreement with the NumPy twin


@pytest.mark.parametrize("ndim, bins, use_mask", [(2, 32, False), (2, 8, True), (3, 16, True),
                                                  (3, 32, False)])
def test_mi_matches_numpy_twin(ndim, bins, use_mask):
    shape = (23, 19) if ndim == 2 else (11, 10, 9)
    rng = np.random.default_rng(ndim * bins)
    fixed = (rng.random(shape) * 100 - 30).astype(np.float32)
    moving = (np.sqrt(np.abs(fixed)) + 3 * rng.random(shape)).astype(np.float32)
    vox2world = oblique(ndim, seed=bins)
    mask = rng.random(shape) > 0.3 if use_mask else None
    pair = Pair(fixed, moving, vox2world, mask)
    forward, backward, energy, hist = mi_fields(pair, bins, grain=50, return_histogram=True)
    f_ref, b_ref, e_ref, h_ref = ref.mi(fixed, moving, vox2world, bins, mask)
    n = fixed.size if mask is None else int(mask.sum())
    assert hist.sum() == pytest.approx(n, rel=1e-12)
    np.testing.assert_allclose(hist, h_ref, rtol=1e-9, atol=1e-9)
    assert energy == pytest.approx(e_ref, rel=1e-9)
    assert energy < 0
    forward, backward, energy2 = MIMetric(bins).compute(fixed, moving, vox2world=vox2world,
                                                        mask=mask)
    assert energy2 == pytest.approx(e_ref, rel=1e-9)
    assert forward.shape == backward.shape == (*shape, ndim)
    assert forward.dtype == backward.dtype == np.float32
    for field, expected in ((forward, f_ref), (backward, b_ref)):
        scale = np.abs(expected).max()
        assert scale > 0
        np.testing.assert_allclose(field, expected, rtol=1e-4, atol=1e-5 * scale)
    if mask is not None:
        assert np.all(forward[~mask] == 0) and np.all(backward[~mask] == 0)


def test_mi_of_a_function_of_the_image_beats_noise():
    rng = np.random.default_rng(1)
    fixed = rng.random((60, 50)).astype(np.float32)
    metric = MIMetric(bins=16)
    _, _, e_function = metric.compute(fixed, np.cos(4 * fixed), vox2world=np.eye(3))
    _, _, e_noise = metric.compute(fixed, rng.random((60, 50)).astype(np.float32),
                                   vox2world=np.eye(3))
    assert e_function < -1.0        # a non-monotone function: MI is still large
    assert -0.1 < e_noise <= 0.0    # independent images: MI is small (a Parzen bias only)


# --------------------------------------------------------------------------- #
# fields against finite differences of the energy w.r.t. a displacement


@pytest.mark.parametrize("which", ["forward", "backward"])
def test_fields_are_the_energy_gradient(which):
    shape = (16, 17, 18)
    fixed_data, moving_data = multimodal_pair(shape, seed=1)
    vox2world = oblique(3, seed=5)
    fixed = parareg.Image(fixed_data, vox2world)
    moving = parareg.Image(moving_data, vox2world)
    metric = MIMetric(bins=16)
    zero = np.zeros((*shape, 3), np.float32)

    def energy(fixed_field, moving_field):
        s = parareg.resample(fixed, fixed, field=fixed_field).data
        m = parareg.resample(moving, fixed, field=moving_field).data
        return metric.compute(s, m, vox2world=vox2world)[2]

    s0 = parareg.resample(fixed, fixed, field=zero).data
    m0 = parareg.resample(moving, fixed, field=zero).data
    forward, backward, _ = metric.compute(s0, m0, vox2world=vox2world)
    field = forward if which == "forward" else backward
    values = (s0 if which == "forward" else m0).astype(np.float64)
    lo, hi = values.min(), values.max()
    candidates = np.zeros(shape, bool)
    candidates[4:-4, 4:-4, 4:-4] = True
    candidates &= (values > lo + 0.05 * (hi - lo)) & (values < hi - 0.05 * (hi - lo))
    norms = np.where(candidates, np.linalg.norm(field, axis=-1), -1)
    picks = np.argsort(norms.ravel())[::-7][:6]
    h = 1.0 / 64
    fields, descent = [], []
    for flat in picks:
        index = np.unravel_index(flat, shape)
        grad = np.zeros(3)
        for k in range(3):
            plus, minus = zero.copy(), zero.copy()
            plus[(*index, k)] = h
            minus[(*index, k)] = -h
            if which == "forward":
                grad[k] = (energy(plus, zero) - energy(minus, zero)) / (2 * h)
            else:
                grad[k] = (energy(zero, plus) - energy(zero, minus)) / (2 * h)
        fields.append(field[index])
        descent.append(-grad)
    fields, descent = np.array(fields), np.array(descent)
    assert np.abs(descent).max() > 0
    for f, d in zip(fields, descent):
        assert cosine(f, d) > 0.9
    # the fields are the gradient itself (1 / N included), not only its direction
    ratio = np.linalg.norm(fields, axis=1) / np.linalg.norm(descent, axis=1)
    assert np.all((ratio > 0.8) & (ratio < 1.25)), ratio


# --------------------------------------------------------------------------- #
# real data: BRATS FLAIR against a synthetically deformed T1c of the same patient


def crop(image, box):
    """``image`` restricted to the voxel box (tuple of slices), with its world position kept."""
    shift = np.eye(image.ndim + 1)
    shift[:image.ndim, image.ndim] = [s.start for s in box]
    return parareg.Image(np.ascontiguousarray(image.data[box]), image.vox2world @ shift)


def smooth_displacement(image, seed=0, amplitude=8.0, width=25.0, bumps=6):
    """A smooth, invertible field (mm) of Gaussian bumps, shape (*image.shape, 3)."""
    rng = np.random.default_rng(seed)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape], indexing="ij"), -1)
    world = index @ image.vox2world[:3, :3].T + image.vox2world[:3, 3]
    lo, hi = world.reshape(-1, 3).min(0), world.reshape(-1, 3).max(0)
    field = np.zeros((*image.shape, 3))
    for _ in range(bumps):
        centre = rng.uniform(lo + 0.3 * (hi - lo), hi - 0.3 * (hi - lo))
        direction = rng.normal(size=3)
        weight = np.exp(-((world - centre) ** 2).sum(-1) / (2 * width ** 2))
        field += amplitude * weight[..., None] * direction / np.linalg.norm(direction)
    return field.astype(np.float32)


@pytest.fixture(scope="module")
def brats():
    """FLAIR (fixed), T1c deformed by a known field (moving), brain mask and the field."""
    flair = parareg.load(BRATS / "Flair_subtrMeanDivStd.nii.gz")
    t1c = parareg.load(BRATS / "T1c_subtrMeanDivStd.nii.gz")
    brain = parareg.load(BRATS / "brainmask.nii.gz")  # float 0/1
    flair_l = pyramid_level(flair, factor=2, sigma=1.0)
    t1c_l = pyramid_level(t1c, factor=2, sigma=1.0)
    brain_l = shrink_mask(brain, flair_l).data > 0
    # deform on the whole (2 mm) grid, where the field vanishes at the border, then crop
    field = smooth_displacement(t1c_l)
    t1c_deformed = parareg.resample(t1c_l, t1c_l, field=field)
    where = np.nonzero(brain_l)
    box = tuple(slice(max(int(w.min()) - 4, 0), min(int(w.max()) + 5, n))
                for w, n in zip(where, brain_l.shape))
    return (crop(flair_l, box), crop(t1c_deformed, box), brain_l[box],
            np.ascontiguousarray(field[box]))


@needs_brats
@pytest.mark.parametrize("use_mask", [False, True])
def test_step_along_fields_lowers_energy_on_brats(brats, use_mask):
    flair, t1c_deformed, brain, _ = brats
    metric = MIMetric()
    mask = brain if use_mask else None
    zero = np.zeros((*flair.shape, 3), np.float32)

    def energy(fixed_field, moving_field):
        s = parareg.resample(flair, flair, field=fixed_field).data
        m = parareg.resample(t1c_deformed, flair, field=moving_field).data
        return metric.compute(s, m, vox2world=flair.vox2world, mask=mask)[2]

    forward, backward, e0 = metric.compute(flair.data, t1c_deformed.data,
                                           vox2world=flair.vox2world, mask=mask)
    assert e0 == energy(zero, zero)
    # resample() reads 0 outside the grid, not the background value (-3.6): a border voxel
    # pulled outwards would jump by 3.6, which no intensity gradient foresees; keep it still
    for field in (forward, backward):
        for axis in range(3):
            np.moveaxis(field, axis, 0)[[0, -1]] = 0
    # 0.2 mm at the strongest voxel (voxels are 2 mm): a small step, as a SyN iteration
    f = 0.2 * forward / np.linalg.norm(forward, axis=-1).max()
    b = 0.2 * backward / np.linalg.norm(backward, axis=-1).max()
    for fixed_field, moving_field in [(f, zero), (zero, b), (f, b)]:
        better = energy(fixed_field, moving_field)
        worse = energy(-fixed_field, -moving_field)
        assert better < e0 < worse, (better, e0, worse)


@needs_brats
def test_syn_with_mi_recovers_a_known_deformation_on_brats(brats):
    from parareg.registration import syn_registration

    flair, t1c_deformed, brain, field = brats
    mapping = syn_registration(flair, t1c_deformed, metric="mi",
                               levels=((2, 0.5, 30), (1, 0.0, 20)))
    # the moving image is t1c(x + u(x)): forward must undo u, i.e. equal its inverse
    truth, _ = invert(field, vox2world=flair.vox2world, iterations=50, tolerance=1e-4)
    before = np.linalg.norm(truth, axis=-1)[brain].mean()
    after = np.linalg.norm(mapping.forward - truth, axis=-1)[brain].mean()
    # before ~3.9 mm, after ~2.6 mm (CC: ~2.9 mm). The floor is ~1.4 mm: on the undeformed
    # pair, whose alignment is the truth, these settings move FLAIR by 1.4 mm on average
    # (CC: 2.5 mm), as every iteration moves by a whole voxel at its strongest point
    assert after < 0.8 * before, (before, after)
    for level in mapping.history:
        assert level["energy"] < level["first_energy"], level


# --------------------------------------------------------------------------- #
# thread-count invariance


@pytest.mark.parametrize("ndim", [2, 3])
def test_identical_bits_at_any_thread_count(ndim):
    shape = (400, 300) if ndim == 2 else (70, 50, 40)
    fixed, moving = multimodal_pair(shape, seed=6)
    mask = np.random.default_rng(0).random(shape) > 0.1
    outs = [MIMetric().compute(fixed, moving, vox2world=oblique(ndim), mask=mask,
                               num_threads=n) for n in (1, 2, 3)]
    for forward, backward, energy in outs[1:]:
        np.testing.assert_array_equal(forward, outs[0][0])
        np.testing.assert_array_equal(backward, outs[0][1])
        assert energy == outs[0][2]


def test_many_small_units_give_the_same_fields():
    fixed, moving = multimodal_pair((21, 22, 23), seed=7)
    pair = Pair(fixed, moving, oblique(3), None)
    base = mi_fields(pair, 32, num_threads=1)
    for grain, threads in [(1, 3), (500, 2), (3000, 3)]:
        forward, backward, energy = mi_fields(pair, 32, num_threads=threads, grain=grain)
        # only the histogram's sum order differs: rounding-level changes of the table
        np.testing.assert_allclose(forward, base[0], rtol=1e-5, atol=1e-6 * np.abs(base[0]).max())
        np.testing.assert_allclose(backward, base[1], rtol=1e-5,
                                   atol=1e-6 * np.abs(base[1]).max())
        assert energy == pytest.approx(base[2], rel=1e-12)


# --------------------------------------------------------------------------- #
# registry and bad inputs


def test_registry():
    assert SYN_METRICS["mi"] is MIMetric
    metric = get_syn_metric("mi", bins=16)
    assert isinstance(metric, MIMetric) and metric.bins == 16
    assert repr(metric) == "MIMetric(bins=16)"


@pytest.mark.parametrize("bins", [4, 0, -3, 4.0, 32.0, True, "32", None])
def test_bad_bins(bins):
    with pytest.raises(ValueError, match="bins must be an integer >= 5"):
        MIMetric(bins)


def test_bad_images():
    metric = MIMetric()
    good = np.random.default_rng(0).random((8, 9, 10)).astype(np.float32)
    with pytest.raises(ValueError, match="moving_warped must have the shape"):
        metric.compute(good, good[:, :, :9], vox2world=np.eye(4))
    bad = good.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="moving_warped contains 1 NaN"):
        metric.compute(good, bad, vox2world=np.eye(4))
    with pytest.raises(ValueError, match="fixed_warped contains 1 NaN"):
        metric.compute(bad, good, vox2world=np.eye(4))
    flat = np.full(good.shape, 3.0, np.float32)
    with pytest.raises(ValueError, match="fixed_warped is constant"):
        metric.compute(flat, good, vox2world=np.eye(4))
    with pytest.raises(ValueError, match="moving_warped is constant"):
        metric.compute(good, flat, vox2world=np.eye(4))
    partly_flat = good.copy()
    partly_flat[:4] = 1.0
    mask = np.zeros(good.shape, bool)
    mask[:4] = True
    with pytest.raises(ValueError, match="moving_warped is constant inside mask"):
        metric.compute(good, partly_flat, vox2world=np.eye(4), mask=mask)
    metric.compute(good, partly_flat, vox2world=np.eye(4))  # varies outside the mask region
    with pytest.raises(ValueError, match="mask is empty"):
        metric.compute(good, good, vox2world=np.eye(4), mask=np.zeros(good.shape, bool))
    with pytest.raises(ValueError, match="vox2world must be a 4x4"):
        metric.compute(good, good, vox2world=np.eye(3))
    with pytest.raises(ValueError, match="num_threads"):
        metric.compute(good, good, vox2world=np.eye(4), num_threads=0)
