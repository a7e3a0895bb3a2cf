"""Multi-label STAPLE: label fusion by each atlas's estimated performance.

STAPLE (Warfield, Zou and Wells, *Simultaneous truth and performance level
estimation*, IEEE TMI 2004), in its multi-label form (ITK's
``MultiLabelSTAPLEImageFilter``), estimates by expectation-maximisation
each atlas's confusion matrix ``theta[a, l, m]`` (the probability that
atlas ``a`` says ``m`` where the truth is ``l``) and each voxel's posterior
over the true label:

* **E-step**: ``W[x, l] ~ prior[l] * prod_a theta[a, l, D_a(x)]``, normalised
  over ``l`` (``D_a(x)``: atlas ``a``'s label at ``x``);
* **M-step**: ``theta[a, l, m] = sum_{x: D_a(x) = m} W[x, l] / sum_x W[x, l]``.

As ITK: the priors are the labels' fractions over every atlas and voxel
(fixed), ``theta`` starts from the majority vote (the confusion of each atlas
with it), and the iterations stop when no entry of ``theta`` moves by
``tolerance`` or more (or after ``max_iterations``). The fused label is the
largest posterior's; ties go to the smallest label value.

Where this differs from ITK, and why: a voxel's candidate true labels are the
labels its atlases give it (a label no atlas gives there has posterior 0), so
the posteriors are stored per atlas, not per label (``A`` numbers per voxel,
where the 148 labels of a brain parcellation would need 148), and a voxel
where every atlas agrees has posterior 1 for that label; the products are
summed as logs (no underflow with many atlases).

Bit-identical at any thread count: the E-step is per voxel, the M-step's
sums are per fixed slab (axis-0 rows), added in slab order.

Examples
--------
>>> import numpy as np
>>> from parareg.population.staple import staple
>>> truth = np.zeros((20, 20), np.int32); truth[5:15, 5:15] = 1
>>> noisy = truth.copy(); noisy[5:15, 5] = 0  # one atlas misses a column
>>> staple([truth, truth, noisy], posteriors=False).labels.sum() == truth.sum()
np.True_
"""

from __future__ import annotations

import numpy as np

from ..parallel import axis0_ranges, for_each_unit, resolve_num_threads
from .fusion import FusionResult, _check_labels, _ranks, _result, majority_ranks

#: ITK's MultiLabelSTAPLEImageFilter's default termination threshold on theta's change
DEFAULT_TOLERANCE = 1e-5
DEFAULT_MAX_ITERATIONS = 100
#: voxels per work unit (each unit holds its own A x L x L sums in the M-step)
STAPLE_GRAIN_VOXELS = 1 << 17


def _check_options(tolerance, max_iterations) -> tuple[float, int]:
    from .._config import as_index

    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.number)) \
            or not 0 < float(tolerance) < 1:
        raise ValueError(f"tolerance must be a number in (0, 1) (the largest change of a "
                         f"confusion-matrix entry that stops the iterations), got {tolerance!r}")
    iterations = as_index(max_iterations)
    if iterations is None or iterations < 1:
        raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    return float(tolerance), iterations


def staple(labels, *, posteriors: bool = True, tolerance: float = DEFAULT_TOLERANCE,
           max_iterations: int = DEFAULT_MAX_ITERATIONS,
           num_threads: int | None = None) -> FusionResult:
    """Fuse label maps by multi-label STAPLE (see the module docstring).

    Parameters
    ----------
    labels, num_threads
        As :func:`parareg.population.fusion.majority_vote`'s.
    posteriors : bool
        Also return each label's posterior ``W``.
    tolerance : float
        Stop when no confusion-matrix entry changes by this much (ITK's 1e-5).
    max_iterations : int
        Stop after this many EM iterations at most.

    Returns
    -------
    FusionResult
    """
    from ..kernels.fusion import staple_candidates_3d, staple_expect_3d, staple_maximise_3d

    tolerance, max_iterations = _check_options(tolerance, max_iterations)
    arrays = _check_labels(labels)
    values, ranks, _ = _ranks(arrays)
    n_threads = resolve_num_threads(num_threads)
    n_atlases, n_labels = ranks.shape[0], len(values)
    shape3 = ranks.shape[1:]
    units = axis0_ranges(shape3, grain=STAPLE_GRAIN_VOXELS)
    candidates = np.empty((*shape3, n_atlases), dtype=np.int32)
    n_candidates = np.empty(shape3, dtype=np.int32)
    for_each_unit(lambda unit, start, stop: staple_candidates_3d(
        ranks, candidates, n_candidates, start, stop), units, num_threads=n_threads)
    vote, _ = majority_ranks(ranks, n_labels, posteriors=False, num_threads=n_threads)
    weights = (candidates == vote[..., None]).astype(np.float64)
    prior = np.bincount(ranks.ravel(), minlength=n_labels) / ranks.size
    counts = np.empty((len(units), n_atlases, n_labels, n_labels))
    totals = np.empty((len(units), n_labels))

    def maximise(theta):
        for_each_unit(lambda unit, start, stop: staple_maximise_3d(
            ranks, candidates, n_candidates, weights, counts[unit], totals[unit], start, stop),
            units, num_threads=n_threads)
        count, total = counts.sum(axis=0), totals.sum(axis=0)
        seen = total > 0
        new = theta.copy()
        new[:, seen] = count[:, seen] / total[seen][None, :, None]
        return new

    theta = maximise(np.zeros((n_atlases, n_labels, n_labels)))
    with np.errstate(divide="ignore"):
        log_prior = np.log(prior)
        for _ in range(max_iterations):
            log_theta = np.log(theta)
            for_each_unit(lambda unit, start, stop: staple_expect_3d(
                ranks, candidates, n_candidates, log_theta, log_prior, weights, start, stop),
                units, num_threads=n_threads)
            new = maximise(theta)
            change = float(np.max(np.abs(new - theta)))
            theta = new
            if change < tolerance:
                break
    # candidates ascend and slots past a voxel's last hold 0: the first largest is the answer
    fused = np.take_along_axis(candidates, np.argmax(weights, axis=-1)[..., None],
                               axis=-1)[..., 0]
    post = None
    if posteriors:
        post = np.zeros((*shape3, n_labels), dtype=np.float32)
        used = candidates >= 0
        where = np.nonzero(used)
        post[(*where[:-1], candidates[used])] = weights[used]
    return _result(fused, post, values, arrays[0].shape)
