"""benchmarks/scoring.py against hand-made label maps and images with known answers."""

from __future__ import annotations

import doctest
import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "scoring.py"
_spec = importlib.util.spec_from_file_location("benchmark_scoring", _PATH)
scoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scoring)


def two_cubes():
    """Fixed: label 1 a 4x4x4 cube, label 2 a 2x2x2 cube. Moving: label 1 shifted by one voxel,
    label 2 identical, label 3 only in moving."""
    fixed = np.zeros((10, 10, 10), dtype=np.uint8)
    moving = np.zeros_like(fixed)
    fixed[1:5, 1:5, 1:5] = 1  # 64 voxels
    moving[2:6, 1:5, 1:5] = 1  # 64 voxels, overlap 3*4*4 = 48
    fixed[7:9, 7:9, 7:9] = 2
    moving[7:9, 7:9, 7:9] = 2
    moving[0, 9, 9] = 3
    return fixed, moving


def test_dice_and_jaccard_of_known_overlaps():
    fixed, moving = two_cubes()
    labels, dice, jaccard = scoring.label_overlap(fixed, moving)
    assert labels.tolist() == [1, 2]  # 3 is only in moving
    np.testing.assert_allclose(dice, [2 * 48 / 128, 1.0])
    np.testing.assert_allclose(jaccard, [48 / 80, 1.0])
    np.testing.assert_allclose(jaccard, dice / (2 - dice))
    assert scoring.mean_dice(fixed, moving) == pytest.approx((0.75 + 1.0) / 2)


def test_listed_labels_absent_from_one_map_score_zero_and_from_both_nan():
    fixed, moving = two_cubes()
    labels, dice, _ = scoring.label_overlap(fixed, moving, labels=[1, 3, 7, 300])
    assert labels.tolist() == [1, 3, 7, 300]
    np.testing.assert_allclose(dice[:2], [0.75, 0.0])
    assert np.isnan(dice[2]) and np.isnan(dice[3])
    assert scoring.mean_dice(fixed, moving, labels=[1, 3]) == pytest.approx(0.375)


def test_overlap_is_symmetric_and_accepts_float_labels():
    fixed, moving = two_cubes()
    _, d1, _ = scoring.label_overlap(fixed, moving, labels=[1, 2, 3])
    _, d2, _ = scoring.label_overlap(moving.astype(np.float32), fixed, labels=[1, 2, 3])
    np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize("bad, match", [(np.full((2, 2), 0.5), "integer labels"),
                                        (np.full((2, 2), -1), "negative"),
                                        (np.zeros((3, 2), dtype=int), "one shape")])
def test_bad_label_maps_raise(bad, match):
    with pytest.raises(ValueError, match=match):
        scoring.label_overlap(np.zeros((2, 2), dtype=int), bad)


def test_ncc_of_affine_related_and_constant_images():
    rng = np.random.default_rng(0)
    a = rng.random((6, 7, 8))
    assert scoring.ncc(a, 2.5 * a - 3) == pytest.approx(1.0)
    assert scoring.ncc(a, -a) == pytest.approx(-1.0)
    assert np.isnan(scoring.ncc(a, np.ones_like(a)))
    mask = np.zeros(a.shape, dtype=bool)
    mask[:3] = True
    b = a.copy()
    b[3:] = rng.random(b[3:].shape)  # differs only outside the mask
    assert scoring.ncc(a, b, mask=mask) == pytest.approx(1.0)
    assert scoring.ncc(a, b) < 0.9


def test_mutual_information_of_identical_and_independent_images():
    # a varies along axis 0, b along axis 1: every (a, b) pair occurs equally often
    a = np.broadcast_to(np.arange(4.0)[:, None], (4, 4)) * 10
    b = np.broadcast_to(np.arange(4.0)[None, :], (4, 4))
    assert scoring.mutual_information(a, b, bins=4) == pytest.approx(0.0, abs=1e-12)
    assert scoring.normalized_mutual_information(a, b, bins=4) == pytest.approx(1.0)
    assert scoring.mutual_information(a, a, bins=4) == pytest.approx(np.log(4))
    assert scoring.normalized_mutual_information(a, a, bins=4) == pytest.approx(2.0)
    # a decreasing linear remapping keeps MI: 32 distinct levels, one per bin
    rng = np.random.default_rng(1)
    c = rng.integers(0, 32, size=(16, 16, 16)).astype(np.float64)
    c[0, 0, :2] = (0, 31)  # both ends of the range present
    mi = scoring.mutual_information(c, c)
    assert scoring.mutual_information(c, 7.0 - 0.3 * c) == pytest.approx(mi)


def test_joint_histogram_counts_every_voxel_in_its_bin():
    f = np.array([0.0, 0.0, 1.0, 1.0])
    m = np.array([5.0, 6.0, 6.0, 6.0])
    np.testing.assert_array_equal(scoring.joint_histogram(f, m, bins=2), [[1, 1], [0, 2]])


def test_warp_affine_translation_and_nearest_keeps_labels():
    labels = np.zeros((5, 6, 7), dtype=np.uint8)
    labels[2, 3, 4] = 9
    fixed_vox2world = np.diag([2.0, 2.0, 2.0, 1.0])
    moving_vox2world = fixed_vox2world.copy()
    moving_vox2world[:3, 3] = (-2.0, 0.0, 4.0)  # moving voxel (i, j, k) sits at 2*(i,j,k) + t
    out = scoring.warp_affine(labels, moving_vox2world, labels.shape, fixed_vox2world, np.eye(4),
                              order=0)
    assert out.dtype == np.uint8
    assert np.argwhere(out == 9).tolist() == [[1, 3, 6]]
    lin = scoring.warp_affine(labels.astype(np.float32), moving_vox2world, labels.shape,
                              fixed_vox2world, np.eye(4), order=1)
    assert lin.dtype == np.float32 and lin[1, 3, 6] == pytest.approx(9.0)


def test_docstring_examples():
    failures, _ = doctest.testmod(scoring, optionflags=doctest.ELLIPSIS)
    assert failures == 0
