"""The template's arithmetic: the update from one iteration's registrations, sharpening, scores.

Steps 2-4 of :mod:`parareg.population.template`. Every average is accumulated in
float64 in image order from the files the registrations wrote, so the template
is bit-identical whatever the worker and thread counts, and a resumed run gives
the one an uninterrupted run gives.
"""

from __future__ import annotations

import numpy as np

__all__ = ["initial_template", "laplacian_sharpen", "mean_stretch", "sharpness", "update"]


def laplacian_sharpen(image, *, blending_weight: float = 0.75):
    """``b I + (1 - b) S(I)``, ``S(I) = I - laplace(I)`` clipped to ``I``'s range (``b`` =
    ``blending_weight``): ANTsPy's template sharpening, with a plain discrete Laplacian
    (voxel units, edges repeated).

    >>> import numpy as np
    >>> from parareg import Image
    >>> step = Image(np.repeat([[0.0] * 4 + [1.0] * 4], 3, axis=0), np.eye(3))
    >>> laplacian_sharpen(step, blending_weight=0.0).data[0].tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    >>> laplacian_sharpen(step, blending_weight=1.0).data[0].tolist()
    [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    """
    from scipy import ndimage

    data = np.asarray(image.data, dtype=np.float64)
    sharp = np.clip(data - ndimage.laplace(data, mode="nearest"), data.min(), data.max())
    blended = blending_weight * data + (1.0 - blending_weight) * sharp
    return image.with_data(blended.astype(np.float32))


def sharpness(data: np.ndarray) -> float:
    """Mean gradient magnitude over mean intensity inside the head (voxel units): higher is
    crisper; a blurry average of misaligned images scores low.

    >>> import numpy as np
    >>> ramp = np.tile(np.arange(1.0, 9.0), (4, 1))
    >>> round(sharpness(ramp), 4)
    0.2222
    """
    values = np.asarray(data, dtype=np.float64)
    inside = values > 0.1 * values.max() if values.max() > 0 else np.ones(values.shape, bool)
    grads = np.gradient(values)
    magnitude = np.sqrt(sum(g * g for g in grads))
    mean = values[inside].mean()
    return float(magnitude[inside].mean() / mean) if mean > 0 else 0.0


def mean_stretch(matrices, centre) -> np.ndarray:
    """``B``: the inverse mean non-rigid part of fixed->moving affines, about ``centre``.

    Each linear part ``L = R S`` (polar decomposition, ``S`` symmetric
    positive definite); ``B(x) = c + S_mean^-1 (x - c)``, homogeneous.

    >>> import numpy as np
    >>> a = np.diag([2.0, 2.0, 1.0]); b = np.diag([1.0, 1.0, 1.0])
    >>> mean_stretch([a, b], np.zeros(2))[:2, :2].tolist()
    [[0.6666666666666666, 0.0], [0.0, 0.6666666666666666]]
    """
    from scipy.linalg import polar

    ndim = len(centre)
    total = np.zeros((ndim, ndim))
    for matrix in matrices:
        _, stretch = polar(np.asarray(matrix, dtype=np.float64)[:ndim, :ndim], side="right")
        total += stretch
    inverse = np.linalg.inv(total / len(matrices))
    out = np.eye(ndim + 1)
    out[:ndim, :ndim] = inverse
    out[:ndim, ndim] = centre - inverse @ centre
    return out


def _centre(grid) -> np.ndarray:
    ndim = grid.ndim
    return grid.vox2world[:ndim] @ np.append((np.array(grid.shape) - 1) / 2, 1.0)


def _mean(arrays, start=None) -> np.ndarray:
    """The float64 mean of ``arrays`` (and ``start``), added in order."""
    total = None if start is None else np.asarray(start, np.float64).copy()
    count = 0 if start is None else 1
    for array in arrays:
        total = np.asarray(array, np.float64).copy() if total is None else total + array
        count += 1
    return total / count


def _read(read, results):
    """``read(result)`` of each result, in order, two files at a time (decompressing them
    releases the GIL: the update waits on them while the workers are idle)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="parareg-read") as pool:
        yield from pool.map(read, results)


def update(grid, results, *, roles, gradient_step: float, deformable: bool,
           blending_weight, num_threads=None):
    """The next templates from one iteration's successful registrations (image order).

    ``roles``: channel name -> the role of its warped image in the results
    (``{"": "warped", "t2": "warped_t2"}``). Each channel's average ``A`` is
    pulled through the same ``B`` and scaled mean inverse warp (see
    :mod:`parareg.population.template`). Returns ``({name: Image}, mean warp
    length in mm or None, B)``: ``B`` maps the new template's world to the old one's.
    """
    from ..image import Image
    from ..resampling import resample
    from ..transforms.diffeomorphic import resample_field

    stretch = mean_stretch([r.matrix for r in results], _centre(grid))
    field, mean_warp = None, None
    if deformable:
        warp = _mean(_read(lambda r: r.load_warp(), results))
        mean_warp = float(np.sqrt((warp ** 2).sum(axis=-1)).mean())
        step = (-gradient_step * warp).astype(np.float32)
        del warp
        field = resample_field(step, grid.vox2world, grid, affine=stretch,
                               num_threads=num_threads)
    templates = {}
    for name, role in roles.items():
        average = Image(_mean(_read(lambda r: r.load(role).data, results)).astype(np.float32),
                        grid.vox2world)
        updated = resample(average, grid, affine=stretch, field=field, num_threads=num_threads)
        if blending_weight is not None:
            updated = laplacian_sharpen(updated, blending_weight=blending_weight)
        templates[name] = updated
    return templates, mean_warp, stretch


def initial_template(references, results, *, roles, num_threads=None):
    """The mean of the first subject's images ``references`` (channel name -> Image) and the
    images affinely aligned to them, at the population's mean size (``B`` with no warp);
    returns ``({name: Image}, B)``."""
    from ..image import Image
    from ..resampling import resample

    first = references[""]
    ndim = first.ndim
    stretch = mean_stretch([np.eye(ndim + 1)] + [r.matrix for r in results], _centre(first))
    templates = {}
    for name, role in roles.items():
        mean = _mean(_read(lambda r: r.load(role).data, results), start=references[name].data)
        average = Image(mean.astype(np.float32), first.vox2world)
        templates[name] = resample(average, average, affine=stretch, num_threads=num_threads)
    return templates, stretch
