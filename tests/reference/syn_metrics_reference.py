"""Plain NumPy twins of the SyN metrics (CC, SSD demons, EM).

Written for clarity, not speed: explicit loops over each voxel's window, the
definitional forms of the local (co)variances, ``numpy.gradient`` for the
image gradients. Only for tiny images.
"""

from __future__ import annotations

import itertools

import numpy as np


def world_gradient(data, vox2world):
    """``numpy.gradient`` along voxel axes mapped to world axes with inv(A).T, (*shape, ndim)."""
    ndim = data.ndim
    vox = np.stack(np.gradient(data.astype(np.float64)), axis=-1)
    return vox @ np.linalg.inv(np.asarray(vox2world, float)[:ndim, :ndim])


def window(shape, index, radius):
    """Slices of the box of ``radius`` around ``index`` clipped to ``shape``."""
    return tuple(slice(max(0, p - radius), min(n, p + radius + 1)) for p, n in zip(index, shape))


def box_sums(fixed, moving, radius):
    """The five CC channels summed over each voxel's clipped window, shape (5, *shape)."""
    i = fixed.astype(np.float64)
    j = moving.astype(np.float64)
    channels = [i, j, i * i, j * j, i * j]
    out = np.zeros((5, *fixed.shape))
    for index in itertools.product(*[range(n) for n in fixed.shape]):
        box = window(fixed.shape, index, radius)
        for c, channel in enumerate(channels):
            out[(c, *index)] = channel[box].sum()
    return out


def cc(fixed, moving, radius, vox2world, mask=None, eps=1e-5):
    """Local CC fields and energy, one window at a time (DIPY semantics, parareg sign).

    Returns ``(forward, backward, energy)``; see :mod:`parareg.metrics.syn_cc`.
    """
    shape = fixed.shape
    ndim = fixed.ndim
    i_img = fixed.astype(np.float64)
    j_img = moving.astype(np.float64)
    g_fixed = world_gradient(fixed, vox2world)
    g_moving = world_gradient(moving, vox2world)
    forward = np.zeros((*shape, ndim))
    backward = np.zeros((*shape, ndim))
    total = 0.0
    count = 0
    for index in itertools.product(*[range(radius, n - radius) for n in shape]):
        if mask is not None and not mask[index]:
            continue
        count += 1
        box = window(shape, index, radius)
        wi = i_img[box]
        wj = j_img[box]
        di = wi - wi.mean()
        dj = wj - wj.mean()
        a = (di * dj).sum()
        b = (di * di).sum()
        c = (dj * dj).sum()
        if b * c < eps or b <= 1e-9 * (wi * wi).sum() or c <= 1e-9 * (wj * wj).sum():
            continue
        total += a * a / (b * c)
        ic = i_img[index] - wi.mean()
        jc = j_img[index] - wj.mean()
        forward[index] = 2 * a / (b * c) * (jc - a / b * ic) * g_fixed[index]
        backward[index] = 2 * a / (b * c) * (ic - a / c * jc) * g_moving[index]
    energy = -total / count if count else 0.0
    return forward, backward, energy


def demons(delta, grad, sigma_sq, sigma_x_sq):
    """``delta grad / (|grad|^2 + sigma_sq / sigma_x_sq)``, 0 where the denominator < 1e-9."""
    den = (grad ** 2).sum(-1) + sigma_sq / sigma_x_sq
    with np.errstate(divide="ignore", invalid="ignore"):
        step = delta[..., None] * grad / den[..., None]
    return np.where(((den < 1e-9) | (delta == 0))[..., None], 0.0, step)


def ssd(fixed, moving, vox2world, mask=None, sigma_x_sq=None):
    """Demons fields and mean squared difference (parareg sign)."""
    ndim = fixed.ndim
    if sigma_x_sq is None:
        sigma_x_sq = np.mean((np.asarray(vox2world)[:ndim, :ndim] ** 2).sum(0))
    delta = moving.astype(np.float64) - fixed.astype(np.float64)
    forward = demons(delta, world_gradient(fixed, vox2world), delta ** 2, sigma_x_sq)
    backward = demons(-delta, world_gradient(moving, vox2world), delta ** 2, sigma_x_sq)
    inside = np.ones(fixed.shape, bool) if mask is None else np.asarray(mask, bool)
    forward[~inside] = 0
    backward[~inside] = 0
    return forward, backward, float((delta[inside] ** 2).mean())


def quantize(img, levels):
    """DIPY's quantize_positive: 0 for values <= 0, else 1 + bin among levels - 1."""
    img = img.astype(np.float64)
    positive = img[img > 0]
    if positive.size == 0:
        return np.zeros(img.shape, int)
    lo, hi = positive.min(), positive.max()
    delta = (hi - lo + 2e-8) / (levels - 1)
    bins = np.clip(np.floor((img - lo + 1e-8) / delta).astype(int), 0, levels - 2)
    return np.where(img > 0, 1 + bins, 0)


def class_stats(labels, values, levels, inside):
    means = np.zeros(levels)
    variances = np.full(levels, np.inf)
    for q in range(levels):
        v = values[(labels == q) & inside].astype(np.float64)
        if v.size:
            means[q] = v.mean()
        if v.size > 1:
            variances[q] = max((v ** 2).mean() - v.mean() ** 2, 0.0)
    means[0] = 0.0
    return means, variances


def em(fixed, moving, vox2world, levels, mask=None, sigma_x_sq=None, double_gradient=True):
    """EM demons fields and energy (see :mod:`parareg.metrics.syn_em`)."""
    ndim = fixed.ndim
    if sigma_x_sq is None:
        sigma_x_sq = np.mean((np.asarray(vox2world)[:ndim, :ndim] ** 2).sum(0))
    inside = np.ones(fixed.shape, bool) if mask is None else np.asarray(mask, bool)
    ls = quantize(fixed, levels)
    lm = quantize(moving, levels)
    fixed_means, fixed_vars = class_stats(lm, fixed, levels, inside)
    moving_means, moving_vars = class_stats(ls, moving, levels, inside)
    i_hat = fixed_means[lm]
    j_hat = moving_means[ls]
    g_i = world_gradient(fixed, vox2world)
    g_j = world_gradient(moving, vox2world)
    if double_gradient:
        g_i = (g_i + world_gradient(i_hat, vox2world)) / 2
        g_j = (g_j + world_gradient(j_hat, vox2world)) / 2
    forward = demons(i_hat - fixed, g_i, fixed_vars[lm], sigma_x_sq)
    backward = demons(j_hat - moving, g_j, moving_vars[ls], sigma_x_sq)
    forward[~inside] = 0
    backward[~inside] = 0
    sq = (fixed - i_hat) ** 2 + (moving - j_hat) ** 2
    return forward, backward, float(sq[inside].mean() / 2)


def cc_exact(fixed, moving, radius, vox2world, mask=None, eps=1e-5, kappa=0.0):
    """The exact CC gradient, one window at a time: each evaluated window ``W(y)`` adds
    ``d cc(y) / d I(x)`` (and ``/ d J(x)``) to every ``x`` in it; fields 0 outside ``mask``.
    The variances get ``kappa * window size * variance of the whole image`` added, held
    constant.

    Returns ``(forward, backward, energy)``; see :mod:`parareg.metrics.syn_cc`.
    """
    shape = fixed.shape
    ndim = fixed.ndim
    i_img = fixed.astype(np.float64)
    j_img = moving.astype(np.float64)
    g_i = np.zeros(shape)
    g_j = np.zeros(shape)
    total = 0.0
    count = 0
    size = (2 * radius + 1) ** ndim
    delta_i = kappa * size * i_img.var()
    delta_j = kappa * size * j_img.var()
    for index in itertools.product(*[range(radius, n - radius) for n in shape]):
        if mask is not None and not mask[index]:
            continue
        count += 1
        box = window(shape, index, radius)
        wi = i_img[box]
        wj = j_img[box]
        di = wi - wi.mean()
        dj = wj - wj.mean()
        a = (di * dj).sum()
        b = (di * di).sum()
        c = (dj * dj).sum()
        if b * c < eps or b <= 1e-9 * (wi * wi).sum() or c <= 1e-9 * (wj * wj).sum():
            continue
        b += delta_i
        c += delta_j
        total += a * a / (b * c)
        # cc = a^2 / (b c); d a / d I(x) = dj(x), d b / d I(x) = 2 di(x)
        g_i[box] += 2 * a / (b * c) * dj - a * a / (b * b * c) * 2 * di
        g_j[box] += 2 * a / (b * c) * di - a * a / (b * c * c) * 2 * dj
    forward = g_i[..., None] * world_gradient(fixed, vox2world)
    backward = g_j[..., None] * world_gradient(moving, vox2world)
    if mask is not None:
        forward[~mask] = 0.0
        backward[~mask] = 0.0
    energy = -total / count if count else 0.0
    return forward, backward, energy
