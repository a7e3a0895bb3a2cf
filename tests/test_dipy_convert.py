"""to_dipy/from_dipy against DIPY itself: the converted mappings warp as the originals do."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import parareg
from parareg.dipy import SymmetricDiffeomorphicRegistration, from_dipy, to_dipy

from ._data import MINDBOGGLE, needs_data

imaffine = pytest.importorskip("dipy.align.imaffine")
imwarp = pytest.importorskip("dipy.align.imwarp")
dipy_metrics = pytest.importorskip("dipy.align.metrics")

pytestmark = needs_data


def corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def assert_same_warps(ours, theirs, fixed, moving) -> None:
    """A parareg and a DIPY mapping warp ``moving`` onto ``fixed`` and back alike."""
    assert corr(ours.transform(moving).data, theirs.transform(moving.data)) >= 0.9999
    assert corr(ours.transform_inverse(fixed).data,
                theirs.transform_inverse(fixed.data)) >= 0.9999


@pytest.fixture(scope="module")
def pair():
    return parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])


@pytest.fixture(scope="module")
def affine(pair):
    fixed, moving = pair
    return parareg.affine_registration(fixed, moving, levels=((4, 2.0, 30), (2, 1.0, 10)))


@pytest.fixture(scope="module")
def syn(pair, affine):
    fixed, moving = pair
    return parareg.syn_registration(fixed, moving, prealign=affine.matrix,
                                    levels=((4, 1.0, 20), (2, 0.5, 10), (1, 0.0, 3)))


@pytest.fixture(scope="module")
def dipy_syn(pair, affine):
    """DIPY's own SyN result, pre-aligned by a non-trivial affine."""
    fixed, moving = pair
    sdr = imwarp.SymmetricDiffeomorphicRegistration(dipy_metrics.CCMetric(2, radius=2),
                                                    level_iters=[20, 10, 3])
    return sdr.optimize(fixed.data, moving.data, static_grid2world=fixed.vox2world,
                        moving_grid2world=moving.vox2world, prealign=affine.matrix)


def test_affine_map_to_dipy_warps_as_parareg(pair, affine):
    fixed, moving = pair
    converted = to_dipy(affine)
    assert isinstance(converted, imaffine.AffineMap)
    assert_same_warps(affine, converted, fixed, moving)
    np.testing.assert_array_equal(from_dipy(converted).matrix, affine.matrix)


def test_dipys_own_affine_map_converts(pair):
    fixed, moving = pair
    c, s = np.cos(0.2), np.sin(0.2)
    rotation = np.array([[c, -s, 5.0], [s, c, -3.0], [0, 0, 1]])
    theirs = imaffine.AffineMap(rotation, domain_grid_shape=fixed.shape,
                                domain_grid2world=fixed.vox2world,
                                codomain_grid_shape=moving.shape,
                                codomain_grid2world=moving.vox2world)
    assert_same_warps(from_dipy(theirs), theirs, fixed, moving)


def test_diffeomorphic_map_to_dipy_warps_as_parareg(pair, syn):
    fixed, moving = pair
    converted = to_dipy(syn)
    assert isinstance(converted, imwarp.DiffeomorphicMap)
    assert_same_warps(syn, converted, fixed, moving)
    # DIPY's accessors give parareg's fields (DIPY swaps the arrays when is_inverse)
    np.testing.assert_array_equal(converted.get_forward_field(), syn.forward)
    np.testing.assert_array_equal(converted.get_backward_field(), syn.backward)
    back = from_dipy(converted)
    np.testing.assert_array_equal(back.forward, syn.forward)
    np.testing.assert_allclose(back.prealign, syn.prealign, rtol=0, atol=1e-12)


def test_dipys_own_syn_result_converts(pair, dipy_syn, affine):
    fixed, moving = pair
    ours = from_dipy(dipy_syn)
    assert_same_warps(ours, dipy_syn, fixed, moving)
    np.testing.assert_allclose(ours.prealign, affine.matrix, rtol=0, atol=1e-12)
    # the round trip gives DIPY's arrays and stored prealign back, bit for bit
    again = to_dipy(ours)
    np.testing.assert_array_equal(again.forward, dipy_syn.forward)
    np.testing.assert_array_equal(again.backward, dipy_syn.backward)
    np.testing.assert_array_equal(again.prealign, np.linalg.inv(ours.prealign))


def test_taking_dipys_stored_prealign_as_is_would_be_wrong(pair, dipy_syn):
    """The convention matters: DIPY stores inv(prealign); reading it as is mis-warps."""
    fixed, moving = pair
    wrong = parareg.DiffeomorphicMap(dipy_syn.backward, dipy_syn.forward, fixed=fixed,
                                     moving=moving, prealign=dipy_syn.prealign)
    assert corr(wrong.transform(moving).data, dipy_syn.transform(moving.data)) < 0.99


def test_a_dipy_map_in_the_other_layout_converts(pair, dipy_syn):
    """``inverse()`` gives is_inverse=False with a prealign: fields are resampled."""
    fixed, moving = pair
    theirs = dipy_syn.inverse()
    ours = from_dipy(theirs)
    assert ours.fixed_grid.shape == moving.shape
    assert_same_warps(ours, theirs, moving, fixed)


def test_the_dipy_shaped_mapping_converts_both_ways(pair):
    fixed, moving = pair
    sdr = SymmetricDiffeomorphicRegistration(dipy_metrics.CCMetric(2, radius=2),
                                             level_iters=[5, 2])
    mapping = sdr.optimize(fixed.data, moving.data, static_grid2world=fixed.vox2world,
                           moving_grid2world=moving.vox2world)
    assert from_dipy(mapping) is mapping.native
    converted = to_dipy(mapping)
    assert corr(converted.transform(moving.data), mapping.transform(moving.data)) >= 0.9999
    # the DIPY-shaped object holds what DIPY's own object holds
    for name in ("forward", "backward", "prealign", "is_inverse"):
        np.testing.assert_array_equal(getattr(converted, name), getattr(mapping, name))


def test_without_dipy_the_error_says_how_to_get_it(monkeypatch, syn):
    monkeypatch.setitem(sys.modules, "dipy.align.imwarp", None)
    with pytest.raises(ImportError, match="pip install dipy"):
        to_dipy(syn)


@pytest.mark.parametrize("bad", ["mapping.nii.gz", np.eye(3), None])
def test_what_is_not_a_mapping_is_named(bad):
    with pytest.raises(TypeError, match="mapping must be"):
        to_dipy(bad)
    with pytest.raises(TypeError, match="mapping must be"):
        from_dipy(bad)
