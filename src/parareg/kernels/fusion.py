"""Label fusion kernels: majority vote and joint label fusion (Wang et al. 2013).

Every kernel fills rows ``[start, stop)`` along axis 0 of its outputs and
reads whatever it needs around them, so slabs run in parallel without
sharing state and each voxel's sums run in a fixed order (patch offsets,
then atlases): results are bit-identical at any thread count. Images are
3D (a 2D image is ``(X, Y, 1)``, see :mod:`parareg.kernels.lift`); label
maps come as int32 *ranks* into the sorted table of labels, stacked
``(n_atlases, X, Y, Z)``. Offsets are ``(n, 3)`` int64 voxel steps. Scratch
arrays (``counts``, ``touched``, ``acc``, ...) are owned by the calling
work unit; their contents on entry do not matter.

Joint label fusion follows ITK/ANTs' ``WeightedVotingFusionImageFilter``
in two passes:

1. :func:`jlf_search_3d` (interior voxels, offset by offset over a slab)
   and :func:`jlf_weights_3d` (the rest, voxel by voxel, then the weights
   of every centre voxel ``x``): the target patch is
   normalised (mean 0, standard deviation floored at 1, as ANTs); in each
   atlas the search offset whose patch matches best (ANTs' Pearson score:
   ``-sxy**2 / var(atlas patch)`` when the correlation is positive, or
   ANTs' mean squares of the raw patches, ``sum (y - x)**2 / n``, over
   the patch voxels inside the image, at least 3) is kept; the absolute
   differences ``d_i`` of the normalised patches give
   ``M[i, j] = (d_i . d_j / (P - 1)) ** beta`` and the weights solve
   ``(M + alpha I) w = 1``, negatives set to 0, normalised to sum 1.
2. :func:`jlf_vote_3d`, per output voxel ``y``: each centre ``x = y - p``
   of a patch covering ``y`` gives atlas ``i``'s label at
   ``y + best_i(x)`` the weight ``w_i(x)``; the label of largest total
   weight wins and the posteriors are the totals over their sum.
"""

from __future__ import annotations

import numpy as np

from ._jit import helper, inline_helper, kernel


@helper
def _inside(i, j, k, nx, ny, nz):
    return 0 <= i < nx and 0 <= j < ny and 0 <= k < nz


@inline_helper
def _decide(tally, touched, n_touched, total, posteriors, with_posteriors, fused, i, j, k):
    """One voxel's vote: ``fused[i, j, k]`` becomes the touched rank of largest ``tally``
    (ties: the smallest rank), its posteriors ``tally / total`` when ``with_posteriors``;
    the touched entries of ``tally`` are reset to 0 for the next voxel."""
    chosen = -1
    top = tally[0] * 0  # 0 of the tally's type
    for t in range(n_touched):
        r = touched[t]
        if tally[r] > top or (tally[r] == top and r < chosen):
            chosen = r
            top = tally[r]
    fused[i, j, k] = chosen
    for t in range(n_touched):
        r = touched[t]
        if with_posteriors:
            posteriors[i, j, k, r] = np.float32(tally[r] / total)
        tally[r] = 0


@kernel
def majority_vote_3d(ranks, n_labels, posteriors, with_posteriors, fused, counts, touched,
                     start, stop):
    """Per voxel, the label rank most atlases give; ties go to the smallest rank.

    ``ranks`` is ``(A, X, Y, Z)`` int32, ``fused`` ``(X, Y, Z)`` int32,
    ``posteriors`` ``(X, Y, Z, n_labels)`` float32 filled with the vote
    fractions when ``with_posteriors`` (entries of labels nobody votes for
    are left as they are: the driver zeroes the array). ``counts`` is a
    ``(n_labels,)`` int64 scratch array, ``touched`` ``(A,)`` int64.
    """
    n_atlases, nx, ny, nz = ranks.shape
    for r in range(n_labels):
        counts[r] = 0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                n_touched = 0
                for a in range(n_atlases):
                    r = ranks[a, i, j, k]
                    if counts[r] == 0:
                        touched[n_touched] = r
                        n_touched += 1
                    counts[r] += 1
                _decide(counts, touched, n_touched, n_atlases, posteriors, with_posteriors,
                        fused, i, j, k)


@helper
def _patch_stats(image, i, j, k, patch, values, valid, nx, ny, nz):
    """Values of ``image`` in the patch at (i, j, k) (``valid[p]`` 1 inside the image),
    and their mean and standard deviation (``n - 1``); returns (mean, sd, count)."""
    total = 0.0
    squares = 0.0
    count = 0
    for p in range(patch.shape[0]):
        ii = i + patch[p, 0]
        jj = j + patch[p, 1]
        kk = k + patch[p, 2]
        if _inside(ii, jj, kk, nx, ny, nz):
            v = np.float64(image[ii, jj, kk])
            values[p] = v
            valid[p] = 1
            total += v
            squares += v * v
            count += 1
        else:
            values[p] = 0.0
            valid[p] = 0
    mean = total / count
    var = (squares - count * mean * mean) / (count - 1)
    sd = np.sqrt(var) if var > 0.0 else 0.0
    return mean, sd, count


#: the patch metrics of the search (``metric`` of the JLF kernels)
PEARSON = 0
MEAN_SQUARES = 1


@helper
def _match_score(atlas, a, ci, cj, ck, patch, target_norm, target_raw, target_valid, metric,
                 nx, ny, nz):
    """ANTs' score of atlas ``a``'s raw patch at (ci, cj, ck) (lower is better; +inf with
    fewer than 3 voxels): with ``metric`` PEARSON against the normalised target patch,
    with MEAN_SQUARES the mean squared difference from the raw target patch."""
    sx = 0.0
    sxx = 0.0
    sxy = 0.0
    squares = 0.0
    n = 0
    for p in range(patch.shape[0]):
        if target_valid[p] == 0:
            continue
        ii = ci + patch[p, 0]
        jj = cj + patch[p, 1]
        kk = ck + patch[p, 2]
        if _inside(ii, jj, kk, nx, ny, nz):
            x = np.float64(atlas[a, ii, jj, kk])
            sx += x
            sxx += x * x
            sxy += x * target_norm[p]
            squares += (target_raw[p] - x) ** 2
            n += 1
    if n < 3:
        return np.inf
    if metric == MEAN_SQUARES:
        return squares / n
    var = sxx - sx * sx / n
    if var < 1e-6:
        var = 1e-6
    measure = sxy * sxy / var
    return -measure if sxy > 0.0 else measure


@helper
def _solve_ones(m, w, n):
    """Solve ``m @ w = 1`` in place by Gaussian elimination with partial pivoting;
    ``m`` is destroyed. Returns False when a pivot is 0 (singular)."""
    for r in range(n):
        w[r] = 1.0
    for c in range(n):
        piv = c
        big = abs(m[c, c])
        for r in range(c + 1, n):
            if abs(m[r, c]) > big:
                big = abs(m[r, c])
                piv = r
        if big == 0.0:
            return False
        if piv != c:
            for q in range(n):
                tmp = m[c, q]
                m[c, q] = m[piv, q]
                m[piv, q] = tmp
            tmp = w[c]
            w[c] = w[piv]
            w[piv] = tmp
        for r in range(c + 1, n):
            f = m[r, c] / m[c, c]
            for q in range(c, n):
                m[r, q] -= f * m[c, q]
            w[r] -= f * w[c]
    for c in range(n - 1, -1, -1):
        s = w[c]
        for q in range(c + 1, n):
            s -= m[c, q] * w[q]
        w[c] = s / m[c, c]
    return True


@helper
def _search_one(atlases, a, i, j, k, patch, search, target_norm, target_raw, target_valid,
                metric, nx, ny, nz):
    """Index of atlas ``a``'s best search offset for the voxel (i, j, k), patch by patch."""
    score = np.inf
    chosen = 0
    for s in range(search.shape[0]):
        ci = i + search[s, 0]
        cj = j + search[s, 1]
        ck = k + search[s, 2]
        if not _inside(ci, cj, ck, nx, ny, nz):
            continue
        value = _match_score(atlases, a, ci, cj, ck, patch, target_norm, target_raw,
                             target_valid, metric, nx, ny, nz)
        if value < score:
            score = value
            chosen = s
    return chosen


@helper
def _widen(spans, c, r, j, c_from, r_from, j_from):
    """Span ``(c, r, j)`` (entries ``c``, ``c + 1`` of ``spans``) widened to cover span
    ``(c_from, r_from, j_from)``."""
    spans[c, r, j] = min(spans[c, r, j], spans[c_from, r_from, j_from])
    spans[c + 1, r, j] = max(spans[c + 1, r, j], spans[c_from + 1, r_from, j_from])


@kernel
def jlf_search_3d(target, atlases, box_sum, box_squares, centres, patch_radius, search,
                  search_radius, metric, best, score, mean, sd, q, rows_k, rows_jk, spans,
                  start, stop):
    """Pass 1a of joint label fusion: the best search offset of every interior centre voxel.

    Interior voxels are those whose every search patch lies inside the image
    (``patch_radius + search_radius`` from each edge); for them the Pearson
    or mean-squares score of ANTs (``metric``, see :func:`_match_score`) is
    computed offset by offset for the whole slab: the sums ``sum_p atlas(x +
    s + p) * target(x + p)`` are box sums of the product image (three
    separable passes, each over the spans along k that the centres need),
    the atlas's patch sums come from ``box_sum`` / ``box_squares`` (``(A,
    X, Y, Z)`` float64). Offsets are tried in the order of ``search`` with a
    strict ``<``, so the first best one wins, as in the voxel-by-voxel
    search. Writes ``best[i, j, k, a]`` of interior centres in rows
    ``[start, stop)`` only. Scratch (float64): ``score``, ``mean``, ``sd``
    shaped ``(stop - start, Y, Z)`` (with MEAN_SQUARES ``mean`` holds the
    target patch's sum of squares); ``q``, ``rows_k``, ``rows_jk`` shaped
    ``(stop - start + 2 * patch_radius[0], Y, Z)``; ``spans`` int64 ``(6,
    stop - start + 2 * patch_radius[0], Y)``.
    """
    n_atlases, nx, ny, nz = atlases.shape
    ri, rj, rk = patch_radius[0], patch_radius[1], patch_radius[2]
    si_max, sj_max, sk_max = search_radius[0], search_radius[1], search_radius[2]
    i0 = max(start, ri + si_max)
    i1 = min(stop, nx - ri - si_max)
    j0, j1 = rj + sj_max, ny - rj - sj_max
    k0, k1 = rk + sk_max, nz - rk - sk_max
    if i0 >= i1 or j0 >= j1 or k0 >= k1:
        return
    n_patch = (2 * ri + 1) * (2 * rj + 1) * (2 * rk + 1)
    # spans along k, [lo, hi) (empty when lo >= hi): 0-1 of the centres of row (i, j), rows
    # from start; 2-3 where rows_jk is needed, 4-5 where rows_k is, rows from i0 - ri
    n_rows = spans.shape[1]
    for c in range(0, 6, 2):
        for r in range(n_rows):
            for j in range(ny):
                spans[c, r, j] = nz
                spans[c + 1, r, j] = 0
    # the box of the slab's centres: only it is scored (and only its patches are summed)
    bi0, bi1, bj0, bj1 = i1, i0, j1, j0
    for i in range(i0, i1):  # the target's patch mean and (floored) standard deviation
        for j in range(j0, j1):
            for k in range(k0, k1):
                if centres[i, j, k] == 0:
                    continue
                bi0, bi1 = min(bi0, i), max(bi1, i + 1)
                bj0, bj1 = min(bj0, j), max(bj1, j + 1)
                spans[0, i - start, j] = min(spans[0, i - start, j], k)
                spans[1, i - start, j] = k + 1
                total = 0.0
                squares = 0.0
                for di in range(-ri, ri + 1):
                    for dj in range(-rj, rj + 1):
                        for dk in range(-rk, rk + 1):
                            v = np.float64(target[i + di, j + dj, k + dk])
                            total += v
                            squares += v * v
                if metric == MEAN_SQUARES:
                    mean[i - start, j, k] = squares
                    sd[i - start, j, k] = 1.0
                    continue
                mu = total / n_patch
                var = (squares - n_patch * mu * mu) / (n_patch - 1)
                dev = np.sqrt(var) if var > 0.0 else 0.0
                mean[i - start, j, k] = mu
                sd[i - start, j, k] = dev if dev > 1.0 else 1.0
    if bi0 >= bi1:
        return
    i0, i1, j0, j1 = bi0, bi1, bj0, bj1
    lo = i0 - ri  # first row of q
    for i in range(i0, i1):  # rows_jk at (z, j): the centres of (i, j), |i - z| <= ri
        for j in range(j0, j1):
            if spans[0, i - start, j] >= spans[1, i - start, j]:
                continue
            for zi in range(i - ri, i + ri + 1):
                _widen(spans, 2, zi - lo, j, 0, i - start, j)
    for zi in range(lo, i1 + ri):  # rows_k at (z, zj): rows_jk's at (z, j), |j - zj| <= rj
        for j in range(j0, j1):
            if spans[2, zi - lo, j] >= spans[3, zi - lo, j]:
                continue
            for zj in range(j - rj, j + rj + 1):
                _widen(spans, 4, zi - lo, zj, 2, zi - lo, j)
    for a in range(n_atlases):
        for i in range(i0, i1):
            for j in range(j0, j1):
                for k in range(spans[0, i - start, j], spans[1, i - start, j]):
                    score[i - start, j, k] = np.inf
        for s in range(search.shape[0]):
            oi, oj, ok = search[s, 0], search[s, 1], search[s, 2]
            # q = atlas(z + s) * target(z), then its box sums along k (q itself when the
            # patch is flat along k, as for 2D images: the same numbers, one pass less)
            products = rows_k if rk == 0 else q
            for zi in range(lo, i1 + ri):
                for zj in range(j0 - rj, j1 + rj):
                    for zk in range(spans[4, zi - lo, zj] - rk, spans[5, zi - lo, zj] + rk):
                        products[zi - lo, zj, zk] = (
                            np.float64(atlases[a, zi + oi, zj + oj, zk + ok])
                            * np.float64(target[zi, zj, zk]))
            for zi in range(lo, i1 + ri):  # box sums along k, then j
                if rk > 0:
                    for zj in range(j0 - rj, j1 + rj):
                        for zk in range(spans[4, zi - lo, zj], spans[5, zi - lo, zj]):
                            acc = 0.0
                            for dk in range(-rk, rk + 1):
                                acc += q[zi - lo, zj, zk + dk]
                            rows_k[zi - lo, zj, zk] = acc
                for zj in range(j0, j1):
                    for zk in range(spans[2, zi - lo, zj], spans[3, zi - lo, zj]):
                        acc = 0.0
                        for dj in range(-rj, rj + 1):
                            acc += rows_k[zi - lo, zj + dj, zk]
                        rows_jk[zi - lo, zj, zk] = acc
            for i in range(i0, i1):  # along i, and the score
                for j in range(j0, j1):
                    for k in range(spans[0, i - start, j], spans[1, i - start, j]):
                        if centres[i, j, k] == 0:
                            continue
                        cross = 0.0
                        for di in range(-ri, ri + 1):
                            cross += rows_jk[i + di - lo, j, k]
                        sx = box_sum[a, i + oi, j + oj, k + ok]
                        sxx = box_squares[a, i + oi, j + oj, k + ok]
                        if metric == MEAN_SQUARES:
                            value = (sxx - 2.0 * cross + mean[i - start, j, k]) / n_patch
                        else:
                            sxy = (cross - mean[i - start, j, k] * sx) / sd[i - start, j, k]
                            var = sxx - sx * sx / n_patch
                            if var < 1e-6:
                                var = 1e-6
                            measure = sxy * sxy / var
                            value = -measure if sxy > 0.0 else measure
                        if value < score[i - start, j, k]:
                            score[i - start, j, k] = value
                            best[i, j, k, a] = s


@kernel
def jlf_weights_3d(target, atlases, centres, patch, patch_radius, search, search_radius, metric,
                   alpha, beta, weights, best, target_values, target_raw, target_valid, diffs,
                   atlas_values, atlas_valid, m, start, stop):
    """Pass 1b of joint label fusion: each centre voxel's atlas weights.

    ``target`` ``(X, Y, Z)`` float32, ``atlases`` ``(A, X, Y, Z)`` float32,
    ``centres`` ``(X, Y, Z)`` uint8 (0: skip the voxel, weights 0),
    ``patch`` ``(P, 3)`` int64 offsets in raster order (the box of
    ``patch_radius``, 3 int64) and ``search`` ``(S, 3)`` (the box of
    ``search_radius``, sorted by distance, the zero offset first). The best
    offsets ``best[i, j, k, a]`` (int32 index into ``search``) of interior
    voxels come from :func:`jlf_search_3d`; the others are searched here
    voxel by voxel (and written). Writes ``weights[i, j, k, a]`` (float64,
    summing to 1 over ``a``; 0 where ``centres`` is 0). Scratch:
    ``target_values``, ``target_raw``, ``atlas_values`` ``(P,)`` float64, ``target_valid``,
    ``atlas_valid`` ``(P,)`` uint8, ``diffs`` ``(A, P)`` and ``m``
    ``(A, A)`` float64.
    """
    n_atlases, nx, ny, nz = atlases.shape
    n_patch = patch.shape[0]
    scale = 1.0 / (n_patch - 1)
    reach_i = patch_radius[0] + search_radius[0]
    reach_j = patch_radius[1] + search_radius[1]
    reach_k = patch_radius[2] + search_radius[2]
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                if centres[i, j, k] == 0:
                    for a in range(n_atlases):
                        weights[i, j, k, a] = 0.0
                        best[i, j, k, a] = 0
                    continue
                mean, sd, _ = _patch_stats(target, i, j, k, patch, target_values,
                                           target_valid, nx, ny, nz)
                if sd < 1.0:
                    sd = 1.0
                for p in range(n_patch):
                    target_raw[p] = target_values[p]
                    target_values[p] = (target_values[p] - mean) / sd
                interior = (reach_i <= i < nx - reach_i and reach_j <= j < ny - reach_j
                            and reach_k <= k < nz - reach_k)
                for a in range(n_atlases):
                    chosen = best[i, j, k, a] if interior else _search_one(
                        atlases, a, i, j, k, patch, search, target_values, target_raw,
                        target_valid, metric, nx, ny, nz)
                    best[i, j, k, a] = chosen
                    ci = i + search[chosen, 0]
                    cj = j + search[chosen, 1]
                    ck = k + search[chosen, 2]
                    amean, asd, _ = _patch_stats(atlases[a], ci, cj, ck, patch, atlas_values,
                                                 atlas_valid, nx, ny, nz)
                    if asd < 1.0:
                        asd = 1.0
                    for p in range(n_patch):
                        if target_valid[p] != 0 and atlas_valid[p] != 0:
                            diffs[a, p] = abs((atlas_values[p] - amean) / asd - target_values[p])
                        else:
                            diffs[a, p] = 0.0
                for a in range(n_atlases):
                    for b in range(a + 1):
                        dot = 0.0
                        for p in range(n_patch):
                            dot += diffs[a, p] * diffs[b, p]
                        value = (dot * scale) ** beta
                        if not np.isfinite(value):
                            value = 0.0
                        m[a, b] = value
                        m[b, a] = value
                    m[a, a] += alpha
                w = weights[i, j, k]
                solved = _solve_ones(m, w, n_atlases)
                total = 0.0
                if solved:
                    for a in range(n_atlases):
                        if not w[a] > 0.0:  # negative (or NaN) weights are dropped, as ANTs
                            w[a] = 0.0
                        total += w[a]
                if not total > 0.0:
                    for a in range(n_atlases):
                        w[a] = 1.0
                    total = n_atlases
                for a in range(n_atlases):
                    w[a] = w[a] / total


@kernel
def jlf_vote_3d(ranks, weights, best, centres, patch, search, n_labels, fallback,
                posteriors, with_posteriors, fused, acc, touched, start, stop):
    """Pass 2 of joint label fusion: every output voxel gathers the weighted votes.

    ``ranks`` ``(A, X, Y, Z)`` int32 label ranks of the atlases; ``weights``
    and ``best`` from :func:`jlf_weights_3d`; ``centres`` its mask. Writes
    ``fused`` ``(X, Y, Z)`` int32 ranks (ties: the smallest rank) and, when
    ``with_posteriors``, the posteriors ``(X, Y, Z, n_labels)`` float32 of
    the labels that got votes (the driver zeroes the array). A voxel
    without any vote gets rank ``fallback[i, j, k]`` (int32) with posterior
    1 (none when it is -1). Scratch: ``acc`` ``(n_labels,)`` float64, ``touched``
    ``(n_labels,)`` int64.
    """
    n_atlases, nx, ny, nz = ranks.shape
    for r in range(n_labels):
        acc[r] = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                n_touched = 0
                total = 0.0
                for p in range(patch.shape[0]):
                    xi = i - patch[p, 0]
                    xj = j - patch[p, 1]
                    xk = k - patch[p, 2]
                    if not _inside(xi, xj, xk, nx, ny, nz) or centres[xi, xj, xk] == 0:
                        continue
                    for a in range(n_atlases):
                        s = best[xi, xj, xk, a]
                        zi = i + search[s, 0]
                        zj = j + search[s, 1]
                        zk = k + search[s, 2]
                        if not _inside(zi, zj, zk, nx, ny, nz):
                            continue
                        r = ranks[a, zi, zj, zk]
                        w = weights[xi, xj, xk, a]
                        if acc[r] == 0.0 and w > 0.0:
                            touched[n_touched] = r
                            n_touched += 1
                        acc[r] += w
                        total += w
                if not total > 0.0:
                    r = fallback[i, j, k]
                    fused[i, j, k] = r
                    if with_posteriors and r >= 0:
                        posteriors[i, j, k, r] = 1.0
                    for t in range(n_touched):
                        acc[touched[t]] = 0.0
                    continue
                _decide(acc, touched, n_touched, total, posteriors, with_posteriors, fused,
                        i, j, k)


@kernel
def staple_candidates_3d(ranks, candidates, n_candidates, start, stop):
    """STAPLE's candidate labels: per voxel the distinct ranks its atlases give, ascending.

    ``ranks`` ``(A, X, Y, Z)`` int32; writes ``candidates[i, j, k, :n]``
    (int32, the rest -1) and ``n_candidates[i, j, k] = n`` (int32).
    """
    n_atlases, nx, ny, nz = ranks.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                n = 0
                for a in range(n_atlases):
                    r = ranks[a, i, j, k]
                    at = n
                    seen = False
                    for c in range(n):
                        if candidates[i, j, k, c] == r:
                            seen = True
                            break
                        if candidates[i, j, k, c] > r:
                            at = c
                            break
                    if seen:
                        continue
                    for c in range(n, at, -1):  # insertion: keep them ascending
                        candidates[i, j, k, c] = candidates[i, j, k, c - 1]
                    candidates[i, j, k, at] = r
                    n += 1
                for c in range(n, n_atlases):
                    candidates[i, j, k, c] = -1
                n_candidates[i, j, k] = n


@kernel
def staple_expect_3d(ranks, candidates, n_candidates, log_theta, log_prior, weights, start,
                     stop):
    """STAPLE's E-step: each voxel's posterior over its candidate labels.

    ``weights[i, j, k, c]`` (float64) becomes the posterior of label rank
    ``candidates[i, j, k, c]``: ``prior[l] * prod_a theta[a, l, D_a]``
    normalised over the candidates, computed from logs (``log_theta``
    ``(A, L, L)``: row ``l`` the true label, column the atlas's;
    ``log_prior`` ``(L,)``) with the largest term factored out, so nothing
    underflows. Candidates whose terms are all ``-inf`` (impossible under
    ``theta``) leave equal weights. The atlases' terms add in atlas order.
    """
    n_atlases, nx, ny, nz = ranks.shape
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                n = n_candidates[i, j, k]
                if n == 1:
                    weights[i, j, k, 0] = 1.0
                    continue
                top = -np.inf
                for c in range(n):
                    label = candidates[i, j, k, c]
                    s = log_prior[label]
                    for a in range(n_atlases):
                        s += log_theta[a, label, ranks[a, i, j, k]]
                    weights[i, j, k, c] = s
                    if s > top:
                        top = s
                if top == -np.inf:
                    for c in range(n):
                        weights[i, j, k, c] = 1.0 / n
                    continue
                total = 0.0
                for c in range(n):
                    e = np.exp(weights[i, j, k, c] - top)
                    weights[i, j, k, c] = e
                    total += e
                for c in range(n):
                    weights[i, j, k, c] = weights[i, j, k, c] / total


@kernel
def staple_maximise_3d(ranks, candidates, n_candidates, weights, counts, totals, start, stop):
    """STAPLE's M-step sums over rows ``[start, stop)``: ``counts[a, l, m] +=`` the
    posterior of true label ``l`` at the voxels where atlas ``a`` says ``m``, and
    ``totals[l] +=`` that posterior (both float64, zeroed here; voxels in raster order)."""
    n_atlases, nx, ny, nz = ranks.shape
    counts[:] = 0.0
    totals[:] = 0.0
    for i in range(start, stop):
        for j in range(ny):
            for k in range(nz):
                for c in range(n_candidates[i, j, k]):
                    label = candidates[i, j, k, c]
                    w = weights[i, j, k, c]
                    totals[label] += w
                    for a in range(n_atlases):
                        counts[a, label, ranks[a, i, j, k]] += w
