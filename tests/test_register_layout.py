"""``registration.pipeline.c_ordered``: images read in NIfTI's Fortran order are copied into C
order once, with their values, so no pyramid level or resampling copies them again."""

from __future__ import annotations

import numpy as np
import pytest

from parareg.image import Image
from parareg.registration.pipeline import c_ordered


def _image(data):
    return Image(data, np.diag([2.0, 1.5, 1.0, 1.0])[: data.ndim + 1, : data.ndim + 1]
                 if data.ndim == 3 else np.diag([2.0, 1.5, 1.0]))


@pytest.mark.parametrize("shape", [(7, 5, 3), (40, 30, 50), (9, 4), (1, 1, 1)])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_fortran_data_becomes_c_ordered_with_the_same_values(shape, threads):
    rng = np.random.default_rng(0)
    data = np.asfortranarray(rng.standard_normal(shape).astype(np.float32))
    image = _image(data)
    out = c_ordered(image, num_threads=threads)
    assert out.data.flags.c_contiguous
    assert out.data.dtype == np.float32
    assert np.array_equal(out.data, data)
    assert np.array_equal(out.vox2world, image.vox2world)


def test_c_ordered_data_is_returned_as_is():
    image = _image(np.zeros((4, 5, 6), np.float32))
    assert c_ordered(image) is image


def test_strided_data_is_copied():
    data = np.arange(6 * 5 * 8, dtype=np.float32).reshape(6, 5, 8)[:, ::2, 1::3]
    out = c_ordered(_image(data), num_threads=2)
    assert out.data.flags.c_contiguous and np.array_equal(out.data, data)
