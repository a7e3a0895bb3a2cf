"""SyN registration on real anatomy: accuracy, invertibility, folding, thread invariance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import parareg
from parareg.registration import register, syn_registration

from ._data import IXI_LABELS, IXI_T1, MINDBOGGLE, needs_data


def mean_dice(a, b):
    labels = np.intersect1d(np.unique(a[a > 0]), np.unique(b[b > 0]))
    scores = []
    for label in labels:
        x, y = a == label, b == label
        scores.append(2.0 * np.logical_and(x, y).sum() / (x.sum() + y.sum()))
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def ixi_pair_result():
    if not IXI_T1:
        pytest.skip("../shared/data is not present")
    fixed, moving = parareg.load(IXI_T1[1]), parareg.load(IXI_T1[0])  # IXI013 -> IXI012
    result = register(fixed, moving, transform="syn", num_threads=2)
    return fixed, moving, result


@needs_data
def test_syn_raises_dice_well_above_affine(ixi_pair_result):
    fixed, moving, result = ixi_pair_result
    fixed_labels = parareg.load(IXI_LABELS[1], labels=True).data
    moving_labels = parareg.load(IXI_LABELS[0], labels=True)
    affine_dice = mean_dice(fixed_labels, result.affine.transform(
        moving_labels, interpolation="nearest").data)
    syn_dice = mean_dice(fixed_labels, result.mapping.transform(
        moving_labels, interpolation="nearest").data)
    assert syn_dice > affine_dice + 0.15, (affine_dice, syn_dice)


@needs_data
def test_forward_backward_is_identity_inside_the_head(ixi_pair_result):
    fixed, _, result = ixi_pair_result
    head = ndimage.binary_erosion(fixed.data > 0.1 * fixed.data.max(), iterations=3)
    mean_mm, _ = result.mapping.inverse_consistency_error(mask=head)
    assert mean_mm / fixed.spacing.mean() < 0.1


@needs_data
def test_no_folding_with_default_settings(ixi_pair_result):
    _, _, result = ixi_pair_result
    assert float(result.mapping.jacobian_determinant().min()) > 0


@needs_data
def test_transform_inverse_puts_fixed_on_moving_grid(ixi_pair_result):
    fixed, moving, result = ixi_pair_result
    back = result.mapping.transform_inverse(fixed)
    assert back.shape == moving.shape
    inside = moving.data > 0.1 * moving.data.max()
    r = np.corrcoef(back.data[inside], moving.data[inside])[0, 1]
    r_before = np.corrcoef(parareg.resample(fixed, moving).data[inside],
                           moving.data[inside])[0, 1]
    assert r > r_before


@needs_data
@pytest.mark.parametrize("metric", ["cc", "ssd", "em"])
def test_each_metric_reduces_its_energy_on_a_real_pair(metric):
    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    prealign = parareg.affine_registration(fixed, moving, pipeline=("center_of_mass",
                                                                    "translation", "rigid"))
    mapping = syn_registration(fixed, moving, metric=metric, prealign=prealign.matrix,
                               levels=((2, 0.5, 30), (1, 0.0, 20)))
    for level in mapping.history:
        assert level["energy"] < level["first_energy"], level


@needs_data
def test_identical_bits_at_1_2_and_3_threads():
    fixed, moving = parareg.load(MINDBOGGLE[2]), parareg.load(MINDBOGGLE[3])
    prealign = parareg.affine_registration(fixed, moving, pipeline=("center_of_mass",
                                                                    "translation")).matrix
    maps = [syn_registration(fixed, moving, prealign=prealign, num_threads=n,
                             levels=((4, 1.0, 20), (2, 0.5, 10), (1, 0.0, 5)))
            for n in (1, 2, 3)]
    for other in maps[1:]:
        np.testing.assert_array_equal(maps[0].forward, other.forward)
        np.testing.assert_array_equal(maps[0].backward, other.backward)


def blob(shape=(24, 26, 22), shift=(0, 0, 0)):
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape],
                                indexing="ij"), axis=-1)
    centre = np.array(shape) / 2 + np.array(shift)
    data = np.exp(-(((grid - centre) / 5.0) ** 2).sum(-1)) * 100
    return parareg.Image(data.astype(np.float32), np.eye(len(shape) + 1))


def test_bad_input_is_named():
    img = blob()
    with pytest.raises(ValueError, match="moving is all zero"):
        syn_registration(img, parareg.Image(np.zeros(img.shape, np.float32), np.eye(4)))
    with pytest.raises(ValueError, match="fixed is 3D but moving is 2D"):
        syn_registration(img, parareg.Image(np.ones((8, 8), np.float32), np.eye(3)))
    singular = np.eye(4)
    singular[1, 1] = 0
    with pytest.raises(ValueError, match="prealign is not invertible"):
        syn_registration(img, img, prealign=singular)
    with pytest.raises(ValueError, match="fixed_mask has shape"):
        syn_registration(img, img, fixed_mask=np.ones((3, 3, 3), bool))
    tiny = parareg.Image(np.random.default_rng(0).random((4, 30, 30)).astype(np.float32),
                         np.eye(4))
    with pytest.raises(ValueError, match="smaller than the CC window"):
        syn_registration(tiny, tiny, radius=3)
    with pytest.raises(ValueError, match="metric must be one of"):
        syn_registration(img, img, metric="nope")
    with pytest.raises(ValueError, match="transform must be one of"):
        register(img, img, transform="bspline")


def test_recovers_a_smooth_shift_of_a_synthetic_blob():
    fixed, moving = blob(), blob(shift=(1.5, -1.0, 0.5))
    mapping = syn_registration(fixed, moving, levels=((2, 0.5, 40), (1, 0.0, 20)))
    warped = mapping.transform(moving)
    before = np.abs(moving.data - fixed.data).mean()
    after = np.abs(warped.data - fixed.data).mean()
    assert after < 0.3 * before


def test_levels_may_stop_at_a_coarse_grid():
    fixed, moving = blob(), blob(shift=(1.0, 0.0, 0.0))
    mapping = syn_registration(fixed, moving, levels=((2, 0.5, 10),))
    assert mapping.forward.shape == (*fixed.shape, 3)
