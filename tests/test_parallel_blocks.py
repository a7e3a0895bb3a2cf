"""map_blocks: n-D blocks with a halo, views in, one preallocated output, failures, bad input."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scipy import ndimage

from parareg.parallel import in_work_unit, map_blocks
from parareg.parallel.map import block_regions

pytestmark = pytest.mark.usefixtures("clean_threads")

VOLUME = np.random.default_rng(3).normal(size=(19, 23, 17)).astype(np.float32)
IMAGE = np.random.default_rng(4).normal(size=(37, 29)).astype(np.float32)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("grain", [None, 1, 2])
@pytest.mark.parametrize("block_shape", [(8, 8, 8), (5, 23, 4), 7])
def test_gaussian_with_halo_equals_the_whole_array_filter(num_threads, grain, block_shape):
    # radius int(4 * 1.0 + 0.5) = 4 <= halo: every core voxel sees all it needs
    out = map_blocks(ndimage.gaussian_filter, VOLUME, block_shape=block_shape, halo=4,
                     num_threads=num_threads, grain=grain, sigma=1.0)
    assert out.dtype == np.float32 and out.shape == VOLUME.shape
    np.testing.assert_array_equal(out, ndimage.gaussian_filter(VOLUME, sigma=1.0))


def test_too_small_a_halo_differs_inside_but_not_in_a_single_block():
    full = ndimage.gaussian_filter(IMAGE, sigma=2.0)
    assert not np.array_equal(
        map_blocks(ndimage.gaussian_filter, IMAGE, block_shape=10, halo=2, sigma=2.0), full)
    np.testing.assert_array_equal(
        map_blocks(ndimage.gaussian_filter, IMAGE, block_shape=(40, 40), halo=0, sigma=2.0),
        full)


@pytest.mark.parametrize("halo", [0, 3, (1, 5)])
def test_equals_dask_map_overlap_with_boundary_none(halo):
    da = pytest.importorskip("dask.array")

    def edges(block):  # depends on where the block ends: shows the boundary rule
        return ndimage.sobel(block, axis=0, mode="constant") + block.shape[0]

    depth = halo if isinstance(halo, int) else dict(enumerate(halo))
    expected = da.from_array(IMAGE, chunks=(8, 6)).map_overlap(
        edges, depth=depth, boundary="none", dtype=IMAGE.dtype).compute()
    for n in (1, 2, 3):
        out = map_blocks(edges, IMAGE, block_shape=(8, 6), halo=halo, num_threads=n, grain=1)
        np.testing.assert_array_equal(out, expected)


def test_blocks_are_views_of_the_input_in_c_order():
    seen = []

    def record(block):
        assert np.shares_memory(block, IMAGE) and block.base is not None
        seen.append(block.shape)
        return block

    out = map_blocks(record, IMAGE, block_shape=(16, 20), halo=(2, 3), num_threads=1)
    np.testing.assert_array_equal(out, IMAGE)
    # rows of blocks [0:16], [16:32], [32:37]; columns [0:20], [20:29]; halos clipped at the edges
    assert seen == [(18, 23), (18, 12), (20, 23), (20, 12), (7, 23), (7, 12)]


def test_block_regions_cover_once():
    cover = np.zeros((11, 7), int)
    for core, extended, inner in block_regions((11, 7), (4, 3), (2, 1)):
        cover[core] += 1
        assert np.arange(11)[extended[0]][inner[0]].tolist() == np.arange(11)[core[0]].tolist()
    assert np.all(cover == 1)


def test_one_dimensional_and_dtype_of_the_first_block():
    values = np.arange(10)
    out = map_blocks(lambda b: b * 0.5, values, block_shape=3, num_threads=2, grain=1)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, values * 0.5)


class Recorder:
    def __init__(self, fail_at, error, sleep=0.0):
        self.fail_at, self.error, self.sleep = fail_at, error, sleep
        self.ran = []
        self.lock = threading.Lock()

    def __call__(self, block):
        time.sleep(self.sleep)  # a few ms: the adaptive path's helpers join
        with self.lock:
            self.ran.append(float(block.flat[0]))
        if float(block.flat[0]) in self.fail_at:
            raise self.error(f"block starting {block.flat[0]:g}")
        return block


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("grain", [None, 1])
def test_an_exception_is_raised_after_every_block_ran(num_threads, grain):
    data = np.arange(64.0).reshape(8, 8)
    func = Recorder({36.0, 4.0}, ValueError)  # blocks 1 and 6 of eight 4x2 blocks
    with pytest.raises(ValueError, match="block starting 4$"):
        map_blocks(func, data, block_shape=(4, 2), num_threads=num_threads, grain=grain)
    assert len(func.ran) == 8


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("grain", [None, 1])
def test_a_base_exception_stops_promptly(num_threads, fatal, grain):
    data = np.arange(64.0).reshape(8, 8)
    func = Recorder({0.0}, fatal)  # the very first block
    with pytest.raises(fatal, match="block starting 0"):
        map_blocks(func, data, block_shape=(4, 2), num_threads=num_threads, grain=grain)
    if grain is None or num_threads == 1:  # the adaptive path times block 0 alone, first
        assert func.ran == [0.0]
    else:  # on the pool, blocks other threads had started finish (all 7, if they are quick)
        assert 0.0 in func.ran


@pytest.mark.parametrize("fatal", [KeyboardInterrupt, SystemExit])
def test_a_base_exception_in_a_helper_of_the_adaptive_path_is_reraised(fatal):
    data = np.arange(400.0).reshape(40, 10)
    func = Recorder({300.0}, fatal, sleep=0.002)  # block 30 of 40: past the timing phase
    with pytest.raises(fatal, match="block starting 300"):
        map_blocks(func, data, block_shape=(1, 10), num_threads=2)
    assert len(func.ran) < 40  # stopped: not every block ran


def test_nested_calls_run_serially_inside_a_unit():
    flags = []

    def inner(block):
        flags.append(in_work_unit())  # every block runs in a work unit, the caller's too
        return map_blocks(np.negative, block, block_shape=2, num_threads=3, grain=1)

    done = []
    worker = threading.Thread(target=lambda: done.append(
        map_blocks(inner, VOLUME, block_shape=(5, 6, 7), num_threads=3, grain=1)), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "nested map_blocks deadlocked"
    np.testing.assert_array_equal(done[0], -VOLUME)
    assert all(flags) and len(flags) == 4 * 4 * 3


# --------------------------------------------------------------------------- bad input


def test_halo_larger_than_the_block():
    with pytest.raises(ValueError, match=r"halo must be at most block_shape .* halo 5 > "
                                         r"block_shape 4 along axis 1"):
        map_blocks(np.abs, IMAGE, block_shape=(8, 4), halo=5)


@pytest.mark.parametrize("block_shape", [(8, 8, 8), (8,), ()])
def test_block_shape_of_the_wrong_length(block_shape):
    with pytest.raises(ValueError, match="block_shape must have one entry per axis of the 2-D"):
        map_blocks(np.abs, IMAGE, block_shape=block_shape)


@pytest.mark.parametrize("name, kwargs", [
    ("block_shape", dict(block_shape=0)),
    ("block_shape", dict(block_shape=(4, -1))),
    ("block_shape", dict(block_shape=(4, 2.5))),
    ("block_shape", dict(block_shape="4")),
    ("block_shape", dict(block_shape=None)),
    ("halo", dict(block_shape=4, halo=-1)),
    ("halo", dict(block_shape=4, halo=(1, True))),
    ("halo", dict(block_shape=4, halo=(1, 2, 3))),
    ("grain", dict(block_shape=4, grain=0)),
])
def test_bad_block_options_name_the_argument(name, kwargs):
    with pytest.raises(ValueError, match=f"^{name} "):
        map_blocks(np.abs, IMAGE, **kwargs)


def test_block_shape_is_required():
    with pytest.raises(TypeError, match="block_shape"):
        map_blocks(np.abs, IMAGE)


@pytest.mark.parametrize("num_threads", [1, 2])
def test_wrong_result_shape_names_the_block(num_threads):
    def crop_one_block(block):
        return block[1:] if block[0, 0] == IMAGE[16, 0] else block

    with pytest.raises(ValueError, match=r"func returned shape \(15, 10\) for the block at "
                                         r"\[16:32, 0:10\] \(block 3\), expected \(16, 10\)"):
        map_blocks(crop_one_block, IMAGE, block_shape=(16, 10), num_threads=num_threads,
                   grain=1)


@pytest.mark.parametrize("array", [np.zeros((0, 3)), np.float32(2.0)])
def test_empty_or_scalar_array(array):
    with pytest.raises(ValueError, match="array must have at least one voxel"):
        map_blocks(np.abs, array, block_shape=2)


def test_bad_schedule_and_threads():
    with pytest.raises(ValueError, match="schedule must be one of"):
        map_blocks(np.abs, IMAGE, block_shape=4, schedule="fast")
    with pytest.raises(ValueError, match="num_threads"):
        map_blocks(np.abs, IMAGE, block_shape=4, num_threads=0)
