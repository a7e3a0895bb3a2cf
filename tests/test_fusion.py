"""Label fusion (majority vote, joint label fusion) against NumPy twins; thread-count bits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from parareg.population.fusion import (_jlf, _jlf_weights, _offsets, _ranks, check_fusion,
                                       joint_label_fusion, majority_vote)
from .reference.fusion_reference import box_offsets, jlf_twin, majority_twin


def _label_maps(shape, n, seed, n_labels=4):
    """``n`` noisy copies of one blocky label map (blocks of 4 voxels)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, n_labels, size=[-(-s // 4) for s in shape])
    for axis in range(len(shape)):
        base = np.repeat(base, 4, axis=axis)
    base = base[tuple(slice(0, s) for s in shape)]
    maps = []
    for _ in range(n):
        flip = rng.random(shape) < 0.3
        maps.append(np.where(flip, rng.integers(0, n_labels, size=shape), base).astype(np.int16))
    return maps


def _images(shape, n, seed):
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(shape), 1.0)
    target = (200 * smooth + 5 * rng.random(shape)).astype(np.float32)
    atlases = [(200 * np.roll(smooth, i, axis=0) + 20 * rng.random(shape)).astype(np.float32)
               for i in range(n)]
    return target, atlases


@pytest.mark.parametrize("shape", [(23, 17), (9, 8, 7)])
def test_majority_vote_equals_numpy_twin(shape):
    maps = _label_maps(shape, 5, seed=1)
    result = majority_vote(maps)
    fused, posteriors, values = majority_twin(maps)
    np.testing.assert_array_equal(result.labels, fused)
    assert result.labels.dtype == np.int16
    np.testing.assert_array_equal(result.label_values, values)
    np.testing.assert_array_equal(result.posteriors, posteriors)


def test_majority_vote_breaks_ties_to_the_smallest_label():
    a, b = np.array([[7, 3, 0]]), np.array([[3, 7, 5]])
    for maps in ([a, b], [b, a]):
        assert majority_vote(maps, posteriors=False).labels.tolist() == [[3, 3, 0]]


def test_majority_vote_identical_bits_at_1_2_3_threads():
    maps = _label_maps((64, 40, 30), 4, seed=2, n_labels=9)
    runs = [majority_vote(maps, num_threads=n) for n in (1, 2, 3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.labels, runs[0].labels)
        np.testing.assert_array_equal(run.posteriors, runs[0].posteriors)


@pytest.mark.parametrize("shape, patch, search, beta, metric", [
    ((11, 9), 1, 1, 2.0, "pc"), ((9, 8), 2, 1, 1.5, "pc"), ((6, 5, 5), 1, 1, 2.0, "pc"),
    ((11, 9), 1, 1, 2.0, "msq"), ((9, 8), 2, 2, 1.5, "msq"), ((6, 5, 5), 1, 1, 2.0, "msq")])
def test_jlf_weights_offsets_labels_equal_numpy_twin(shape, patch, search, beta, metric):
    target, atlases = _images(shape, 3, seed=3)
    maps = _label_maps(shape, 3, seed=4)
    weights, best, fused, posteriors, values = jlf_twin(
        target, atlases, maps, patch_radius=patch, search_radius=search, alpha=0.1, beta=beta,
        patch_metric=metric)
    result = joint_label_fusion(target, atlases, maps, patch_radius=patch, search_radius=search,
                                beta=beta, patch_metric=metric)
    np.testing.assert_array_equal(result.label_values, values)
    np.testing.assert_allclose(result.posteriors, posteriors, atol=1e-6)
    top2 = np.sort(posteriors, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-9  # no near-tie for the rounding to flip
    np.testing.assert_array_equal(result.labels[clear], fused[clear])
    # the kernel's weights and offsets themselves, on the 3D-lifted grid
    ndim = len(shape)
    lift = shape + (1,) * (3 - ndim)
    pad = (patch,) * ndim + (0,) * (3 - ndim)
    srch = (search,) * ndim + (0,) * (3 - ndim)
    stack = np.stack([a.reshape(lift) for a in atlases])
    s_off = _offsets(srch, np.ones(3))
    assert [tuple(o[:ndim]) for o in s_off] == box_offsets((search,) * ndim)
    w, b = _jlf_weights(target.reshape(lift), stack, np.ones(lift, np.uint8), pad, srch, 0.1,
                        beta, np.ones(3), 1, metric)
    np.testing.assert_allclose(w.reshape(*shape, 3), weights, atol=1e-6)
    np.testing.assert_array_equal(b.reshape(*shape, 3), best)


@pytest.mark.parametrize("metric", ["pc", "msq"])
def test_jlf_identical_bits_at_1_2_3_threads(metric):
    target, atlases = _images((40, 33, 6), 3, seed=5)
    maps = _label_maps((40, 33, 6), 3, seed=6, n_labels=6)
    runs = [joint_label_fusion(target, atlases, maps, patch_radius=1, search_radius=1,
                               patch_metric=metric, num_threads=n) for n in (1, 2, 3)]
    for run in runs[1:]:
        np.testing.assert_array_equal(run.labels, runs[0].labels)
        np.testing.assert_array_equal(run.posteriors, runs[0].posteriors)


@pytest.mark.parametrize("offset, metric", [(0, "pc"), (1, "pc"), (0, "msq")])  # 1: no label 0
def test_jlf_skipping_voxels_that_see_one_label_changes_nothing(offset, metric):
    shape = (60, 50)
    target, atlases = _images(shape, 3, seed=7)
    maps = [np.full(shape, offset, np.int32) for _ in range(3)]
    for i, m in enumerate(maps):
        m[12 + i:45, 10:40 - i] = 2
        m[25:29, 20:23] = 5
    args = (target, atlases, maps, (2, 2, 0), (2, 2, 0), 0.1, 2.0, True, np.ones(3), 2)
    full = _jlf(*args, restrict=False, metric=metric)
    fast = _jlf(*args, restrict=True, metric=metric)
    np.testing.assert_array_equal(fast.labels, full.labels)
    np.testing.assert_array_equal(fast.posteriors, full.posteriors)
    assert (full.labels == 2).sum() > 500


def test_jlf_with_identical_atlases_returns_their_labels():
    target, _ = _images((20, 18), 1, seed=8)
    lab = (target > np.median(target)).astype(np.uint8) * 3
    result = joint_label_fusion(target, [target] * 3, [lab] * 3, search_radius=0)
    np.testing.assert_array_equal(result.labels, lab)
    assert result.labels.dtype == np.uint8


@pytest.mark.parametrize("kwargs, match", [
    ({"patch_radius": 0}, "patch_radius must be an integer >= 1"),
    ({"patch_radius": (1, 2, 3)}, "patch_radius must be an integer >= 1 or 2 of them"),
    ({"search_radius": -1}, "search_radius must be an integer >= 0"),
    ({"search_radius": 1.5}, "search_radius must be an integer"),
    ({"beta": 0}, "beta must be a finite number > 0"),
    ({"alpha": float("nan")}, "alpha must be a finite number > 0"),
    ({"patch_metric": "cc"}, r"patch_metric must be one of \['msq', 'pc'\]"),
    ({"patch_metric": None}, "patch_metric must be one of"),
])
def test_jlf_rejects_bad_options(kwargs, match):
    target, atlases = _images((10, 10), 2, seed=9)
    maps = _label_maps((10, 10), 2, seed=9)
    with pytest.raises(ValueError, match=match):
        joint_label_fusion(target, atlases, maps, **kwargs)


def test_fusion_rejects_bad_label_maps():
    good = np.zeros((5, 5), np.int32)
    with pytest.raises(ValueError, match=r"labels\[1\] must hold integer labels"):
        majority_vote([good, good.astype(np.float32)])
    with pytest.raises(ValueError, match=r"labels\[1\] has shape \(5, 4\)"):
        majority_vote([good, good[:, :4]])
    with pytest.raises(ValueError, match="labels is empty"):
        majority_vote([])
    with pytest.raises(ValueError, match="2 atlases but 1 label maps"):
        joint_label_fusion(good.astype(np.float32), [good, good], [good])
    with pytest.raises(ValueError, match="fusion must be one of"):
        check_fusion("vote")
    assert check_fusion("JLF") == "jlf"


def test_ranks_mark_background():
    values, ranks, background = _ranks([np.array([[0, 4]]), np.array([[9, 4]])])
    assert values.tolist() == [0, 4, 9] and background == 0
    assert ranks.shape == (2, 1, 2, 1)
