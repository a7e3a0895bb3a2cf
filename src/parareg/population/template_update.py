"""The template's arithmetic: the update from one iteration's registrations, sharpening, scores.

Steps 2-4 of :mod:`parareg.population.template`. Every average is accumulated in
float64 in image order from the files the registrations wrote, so the template
is bit-identical whatever the worker and thread counts, and a resumed run gives
the one an uninterrupted run gives.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Sums", "initial_sums", "initial_template", "laplacian_sharpen", "mean_stretch",
           "sharpness", "update"]


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


class Sums:
    """The float64 sums of one iteration's warps and warped images, added in image order as
    its registrations finish (``add``, from a batch's progress callback: the client reads
    and adds them while the workers register the others, not after the last one).

    ``names``: the jobs' names in image order; a result is added once those before it are
    (failed ones are skipped), so the sums have the bits of adding every successful result
    in image order: whatever the order the registrations finish in, the worker count or a
    resume (``finish`` adds the rest). ``start``: role -> an array added first (iteration
    0's reference image).
    """

    def __init__(self, names, *, roles, deformable: bool, start=None):
        self.names, self.roles, self.deformable = list(names), roles, deformable
        self.waiting, self.next = {}, 0
        self.images = {role: None for role in roles.values()}
        self.warp, self.count = None, 0
        for role, array in (start or {}).items():
            self.images[role] = np.asarray(array, np.float64).copy()
        self.count = 1 if start else 0
        self.added: list = []

    def add(self, result) -> None:
        """Take ``result`` (a :class:`~parareg.population.JobResult`); add every result
        whose turn has come."""
        self.waiting[result.name] = result
        while self.next < len(self.names) and self.names[self.next] in self.waiting:
            ready = self.waiting.pop(self.names[self.next])
            self.next += 1
            if ready.ok:
                self._add(ready, self._load(ready))

    def finish(self, results) -> None:
        """Add the ``results`` not added yet (image order), two files read at a time."""
        names = {r.name for r in self.added}
        rest = [r for r in results if r.ok and r.name not in names]
        for result, loaded in zip(rest, _read(self._load, rest)):
            self._add(result, loaded)
        self.next = len(self.names)

    def mean(self, role: str) -> np.ndarray:
        return self.warp / self.count if role == "warp" else self.images[role] / self.count

    def _load(self, result):
        warp = result.load_warp() if self.deformable else None
        return warp, {role: result.load(role).data for role in self.images}

    def _add(self, result, loaded) -> None:
        warp, images = loaded
        if warp is not None:
            self.warp = _plus(self.warp, warp)
        for role, data in images.items():
            self.images[role] = _plus(self.images[role], data)
        self.count += 1
        self.added.append(result)


def _plus(total, array) -> np.ndarray:
    """``total + array`` in float64 (``array`` copied as float64 when ``total`` is None)."""
    return np.asarray(array, np.float64).copy() if total is None else total + array


def _read(read, results):
    """``read(result)`` of each result, in order, two files at a time (decompressing them
    releases the GIL: the update waits on them while the workers are idle)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2, thread_name_prefix="parareg-read") as pool:
        yield from pool.map(read, results)


def update(grid, results, *, roles, gradient_step: float, deformable: bool,
           blending_weight, sums=None, num_threads=None):
    """The next templates from one iteration's successful registrations (image order).

    ``roles``: channel name -> the role of its warped image in the results
    (``{"": "warped", "t2": "warped_t2"}``). Each channel's average ``A`` is
    pulled through the same ``B`` and scaled mean inverse warp (see
    :mod:`parareg.population.template`). ``sums``: a :class:`Sums` that already holds
    some of them (the rest are added). Returns ``({name: Image}, mean warp
    length in mm or None, B)``: ``B`` maps the new template's world to the old one's.
    """
    from ..image import Image
    from ..resampling import resample
    from ..transforms.diffeomorphic import resample_field

    if sums is None:
        sums = Sums([r.name for r in results], roles=roles, deformable=deformable)
    sums.finish(results)
    stretch = mean_stretch([r.matrix for r in results], _centre(grid))
    field, mean_warp = None, None
    if deformable:
        warp = sums.mean("warp")
        mean_warp = float(np.sqrt((warp ** 2).sum(axis=-1)).mean())
        step = (-gradient_step * warp).astype(np.float32)
        del warp
        field = resample_field(step, grid.vox2world, grid, affine=stretch,
                               num_threads=num_threads)
    templates = {}
    for name, role in roles.items():
        average = Image(sums.mean(role).astype(np.float32), grid.vox2world)
        updated = resample(average, grid, affine=stretch, field=field, num_threads=num_threads)
        if blending_weight is not None:
            updated = laplacian_sharpen(updated, blending_weight=blending_weight)
        templates[name] = updated
    return templates, mean_warp, stretch


def initial_template(references, results, *, roles, sums=None, num_threads=None):
    """The mean of the first subject's images ``references`` (channel name -> Image) and the
    images affinely aligned to them (``sums``: a :class:`Sums` started with the references
    and holding some of them), at the population's mean size (``B`` with no warp); returns
    ``({name: Image}, B)``."""
    from ..image import Image
    from ..resampling import resample

    first = references[""]
    ndim = first.ndim
    if sums is None:
        sums = initial_sums([r.name for r in results], references, roles=roles)
    sums.finish(results)
    stretch = mean_stretch([np.eye(ndim + 1)] + [r.matrix for r in results], _centre(first))
    templates = {}
    for name, role in roles.items():
        average = Image(sums.mean(role).astype(np.float32), first.vox2world)
        templates[name] = resample(average, average, affine=stretch, num_threads=num_threads)
    return templates, stretch


def initial_sums(names, references, *, roles) -> Sums:
    """The :class:`Sums` of iteration 0: each channel's reference image first."""
    return Sums(names, roles=roles, deformable=False,
                start={role: references[name].data for name, role in roles.items()})
