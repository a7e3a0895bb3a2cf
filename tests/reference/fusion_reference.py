"""Plain NumPy twins of the label fusion kernels (``parareg.kernels.fusion``).

Written for clarity, not speed: patches are read from NaN-padded float64
copies of the images, the weights come from ``numpy.linalg.solve``, and the
votes are scattered from each centre voxel to its patch (as ANTs does),
where the kernels gather them per output voxel.
"""

from __future__ import annotations

import itertools

import numpy as np


def majority_twin(labels):
    """Majority vote, ties to the smallest label; returns (fused, posteriors, values)."""
    stack = np.stack([np.asarray(a) for a in labels])
    values = np.unique(stack)
    counts = np.stack([(stack == v).sum(axis=0) for v in values], axis=-1)
    fused = values[np.argmax(counts, axis=-1)]  # argmax takes the first (smallest) of ties
    return fused, (counts / len(labels)).astype(np.float32), values


def box_offsets(radius, spacing=None):
    """Offsets of the box of ``radius`` (per axis) by physical distance, then raster order."""
    spacing = np.ones(len(radius)) if spacing is None else np.asarray(spacing, dtype=float)
    offsets = list(itertools.product(*[range(-r, r + 1) for r in radius]))
    return sorted(offsets, key=lambda o: float(np.sum((np.array(o) * spacing) ** 2)))


def _patch(padded, centre, offsets, pad):
    return np.array([padded[tuple(c + o + pad for c, o in zip(centre, off))] for off in offsets])


def _normalise(values):
    finite = np.isfinite(values)
    mean = values[finite].mean()
    sd = max(values[finite].std(ddof=1), 1.0)
    return (values - mean) / sd


def jlf_twin(target, atlases, labels, *, patch_radius, search_radius, alpha, beta,
             patch_metric="pc"):
    """Joint label fusion; returns (weights, best offsets, fused, posteriors, values).

    The search scores a patch by ANTs' Pearson score (``"pc"``) or by the mean
    squared difference of the raw patches (``"msq"``)."""
    target = np.asarray(target, dtype=np.float64)
    shape = target.shape
    ndim = target.ndim
    patch = box_offsets((patch_radius,) * ndim)
    search = box_offsets((search_radius,) * ndim)
    pad = patch_radius + search_radius
    t_pad = np.pad(target, pad, constant_values=np.nan)
    a_pad = [np.pad(np.asarray(a, dtype=np.float64), pad, constant_values=np.nan)
             for a in atlases]
    n = len(atlases)
    weights = np.zeros((*shape, n))
    best = np.zeros((*shape, n), dtype=int)
    for x in np.ndindex(shape):
        raw = _patch(t_pad, x, patch, pad)
        y = _normalise(raw)
        valid_t = np.isfinite(y)
        diffs = np.zeros((n, len(patch)))
        for i in range(n):
            scores = []
            for s in search:
                c = tuple(np.add(x, s))
                if not all(0 <= ci < ni for ci, ni in zip(c, shape)):
                    scores.append(np.inf)
                    continue
                xs = _patch(a_pad[i], c, patch, pad)
                m = valid_t & np.isfinite(xs)
                if m.sum() < 3:
                    scores.append(np.inf)
                    continue
                if patch_metric == "msq":
                    scores.append(float(np.mean((raw[m] - xs[m]) ** 2)))
                    continue
                sxy = float(np.dot(xs[m], y[m]))
                var = max(float(np.sum(xs[m] ** 2) - np.sum(xs[m]) ** 2 / m.sum()), 1e-6)
                scores.append(-sxy ** 2 / var if sxy > 0 else sxy ** 2 / var)
            j = int(np.argmin(scores))  # the first of equal scores, as the kernels' strict <
            best[x][i] = j
            xs = _patch(a_pad[i], tuple(np.add(x, search[j])), patch, pad)
            d = np.abs(_normalise(xs) - y)
            diffs[i] = np.where(valid_t & np.isfinite(xs), d, 0.0)
        m = (diffs @ diffs.T / (len(patch) - 1)) ** beta + alpha * np.eye(n)
        w = np.clip(np.linalg.solve(m, np.ones(n)), 0, None)
        weights[x] = w / w.sum()
    values = np.unique(np.stack(labels))
    votes = np.zeros((*shape, len(values)))
    for x in np.ndindex(shape):
        for p in patch:
            yv = tuple(np.add(x, p))
            if not all(0 <= c < s for c, s in zip(yv, shape)):
                continue
            for i in range(n):
                z = tuple(np.add(yv, search[best[x][i]]))
                if not all(0 <= c < s for c, s in zip(z, shape)):
                    continue
                rank = int(np.searchsorted(values, labels[i][z]))
                votes[yv][rank] += weights[x][i]
    total = votes.sum(axis=-1, keepdims=True)
    posteriors = votes / total
    fused = values[np.argmax(votes, axis=-1)]
    return weights, best, fused, posteriors, values


def staple_twin(labels, *, tolerance=1e-5, max_iterations=100):
    """Multi-label STAPLE on dense (voxel, label) arrays; returns (fused, posteriors, values).

    The same algorithm as :mod:`parareg.population.staple` written plainly:
    theta from the majority vote, priors the labels' fractions, candidate
    true labels those some atlas gives the voxel.
    """
    stack = np.stack([np.asarray(a).ravel() for a in labels])  # (A, N)
    values, inverse = np.unique(stack, return_inverse=True)
    d = inverse.reshape(stack.shape)
    n_atlases, n_voxels = d.shape
    n_labels = len(values)
    seen = np.zeros((n_voxels, n_labels), dtype=bool)
    for a in range(n_atlases):
        seen[np.arange(n_voxels), d[a]] = True
    votes = np.stack([(d == l).sum(axis=0) for l in range(n_labels)], axis=-1)
    w = np.zeros((n_voxels, n_labels))
    w[np.arange(n_voxels), np.argmax(votes, axis=-1)] = 1.0
    prior = np.bincount(d.ravel(), minlength=n_labels) / d.size

    def m_step(w, theta):
        new = theta.copy()
        total = w.sum(axis=0)
        for a in range(n_atlases):
            for m in range(n_labels):
                count = w[d[a] == m].sum(axis=0)
                new[a, total > 0, m] = count[total > 0] / total[total > 0]
        return new

    theta = m_step(w, np.zeros((n_atlases, n_labels, n_labels)))
    for _ in range(max_iterations):
        with np.errstate(divide="ignore"):
            log_w = np.log(prior)[None, :] + sum(np.log(theta[a][:, d[a]]).T
                                                 for a in range(n_atlases))
        log_w[~seen] = -np.inf
        w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
        w /= w.sum(axis=1, keepdims=True)
        new = m_step(w, theta)
        change = np.max(np.abs(new - theta))
        theta = new
        if change < tolerance:
            break
    shape = np.asarray(labels[0]).shape
    fused = values[np.argmax(w, axis=1)].reshape(shape)
    return fused, w.reshape(*shape, n_labels).astype(np.float32), values
