"""ITK's interpolators, as ``antsApplyTransforms`` applies them, at continuous voxel coordinates.

The rules are read from ITK's sources (``itkImageFunction``,
``itkLinearInterpolateImageFunction``, ``itkNearestNeighborInterpolateImageFunction``,
``itkLabelImageGenericInterpolateImageFunction``, ``itkBSplineInterpolateImageFunction``,
``itkGaussianInterpolateImageFunction``, ``itkWindowedSincInterpolateImageFunction``) and
from ANTs' ``make_interpolator_snip.tmpl``; see :mod:`parareg.resampling` for the table
of names.

Inside
    ``itk::ResampleImageFilter`` samples a point only when its continuous
    index lies in ``[-0.5, n - 0.5)`` on every axis (``IsInsideBuffer``:
    the footprint of the grid); anything else is the default value 0.
linear
    Inside, the coordinate is clamped to ``[0, n - 1]`` and interpolated
    linearly (ITK's ``max(floor(x), 0)`` base index, a non-positive
    distance ignored, the upper neighbour clamped): the edge value within
    half a voxel of the grid.
nearest
    ``floor(x + 0.5)`` (``RoundHalfIntegerUp``): :func:`parareg.kernels.interp.nearest_3d`.
label (ANTs' GenericLabel)
    Per label, the linear interpolation (above) of its indicator image; the
    label of the largest value wins, the smallest label on a tie (ITK visits
    labels in ascending order and keeps a strictly larger value). Here the
    image holds label *ranks* (``0 .. L - 1``), and only the (at most 8)
    labels of the corner voxels can win.
bspline (order 3)
    The cubic B-spline through prefiltered coefficients, mirror boundary
    (``d c b | a b c d | c b a``), on both the prefilter and the taps.
gaussian
    Per axis, voxel ``i`` weighs ``erf((i + 0.5 - x) s) - erf((i - 0.5 - x) s)``,
    ``s = 1 / (sqrt(2) sigma)``, over voxels ``max(0, floor(x + 0.5 - c))``
    to ``min(n, ceil(x + 0.5 + c))`` (exclusive), ``c = alpha sigma``
    (sigma, c in voxels); the value is the weighted mean.
lanczos (LanczosWindowedSinc, radius 3)
    Taps ``floor(x) - 2 .. floor(x) + 3`` weigh ``sinc(t) sinc(t / 3)``,
    ``t = x - tap``, not normalised; an exact grid coordinate takes its voxel
    only; taps outside the image are 0 (ANTs' ``ConstantBoundaryCondition``).

Kernels pass 2D images as ``(X, Y, 1)``; along that axis every rule above
reduces to the voxel at 0.
"""

from __future__ import annotations

import math

from ._jit import helper, inline_helper
from .interp import trilinear

#: largest number of taps per axis (Lanczos: 6; Gaussian: ceil(2 alpha sigma) + 1)
MAX_TAPS = 8


@helper
def inside(img, x, y, z):
    """Whether ``(x, y, z)`` lies in ``[-0.5, n - 0.5)`` on every axis (False for NaN)."""
    nx, ny, nz = img.shape
    return -0.5 <= x < nx - 0.5 and -0.5 <= y < ny - 0.5 and -0.5 <= z < nz - 0.5


@helper
def clamped_corner(x, n):
    """Lower and upper neighbour and weight of the upper one, ``x`` clamped to ``[0, n - 1]``."""
    if x < 0.0:
        x = 0.0
    elif x > n - 1:
        x = n - 1.0
    i0 = int(x)
    return i0, (n - 1 if n - 1 < i0 + 1 else i0 + 1), x - i0


@helper
def clamped_corners(img, x, y, z):
    """:func:`clamped_corner` along the three axes of ``img``: 9 values, axis by axis."""
    nx, ny, nz = img.shape
    i0, i1, fx = clamped_corner(x, nx)
    j0, j1, fy = clamped_corner(y, ny)
    k0, k1, fz = clamped_corner(z, nz)
    return i0, i1, fx, j0, j1, fy, k0, k1, fz


@helper
def label_3d(ranks, x, y, z):
    """The rank whose indicator, linearly interpolated (clamped), is largest; ties: the smallest."""
    i0, i1, fx, j0, j1, fy, k0, k1, fz = clamped_corners(ranks, x, y, z)
    gx, gy, gz = 1.0 - fx, 1.0 - fy, 1.0 - fz
    labels = (ranks[i0, j0, k0], ranks[i1, j0, k0], ranks[i0, j1, k0], ranks[i1, j1, k0],
              ranks[i0, j0, k1], ranks[i1, j0, k1], ranks[i0, j1, k1], ranks[i1, j1, k1])
    weights = (gx * gy * gz, fx * gy * gz, gx * fy * gz, fx * fy * gz,
               gx * gy * fz, fx * gy * fz, gx * fy * fz, fx * fy * fz)
    best = labels[0]
    best_weight = -1.0
    for a in range(8):
        label = labels[a]
        total = 0.0
        for b in range(8):
            if labels[b] == label:
                total += weights[b]
        if total > best_weight or (total == best_weight and label < best):
            best = label
            best_weight = total
    return best


@helper
def mirror(i, n):
    """Index ``i`` reflected into ``[0, n)`` about the first and last sample (whole-sample)."""
    if n == 1:
        return 0
    period = 2 * n - 2
    i = i % period
    return period - i if i >= n else i


@helper
def bspline3_weights(x, n):
    """The 4 taps ``floor(x) - 1 .. floor(x) + 2`` (mirrored into ``[0, n)``) and their weights."""
    f = math.floor(x)
    t = x - f
    t2 = t * t
    t3 = t2 * t
    first = int(f) - 1
    taps = mirror(first, n), mirror(first + 1, n), mirror(first + 2, n), mirror(first + 3, n)
    weights = ((1.0 - t) * (1.0 - t) * (1.0 - t) / 6.0, (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0,
               (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0, t3 / 6.0)
    return taps, weights


@inline_helper
def bspline3_3d(coefficients, x, y, z):
    """Cubic B-spline value at ``(x, y, z)`` of prefiltered ``coefficients`` (mirror boundary)."""
    nx, ny, nz = coefficients.shape
    ii, wi = bspline3_weights(x, nx)
    jj, wj = bspline3_weights(y, ny)
    (k0, k1, k2, k3), (w0, w1, w2, w3) = bspline3_weights(z, nz)
    total = 0.0
    for a in range(4):
        ia = ii[a]
        for b in range(4):
            jb = jj[b]
            line = (w0 * coefficients[ia, jb, k0] + w1 * coefficients[ia, jb, k1]
                    + w2 * coefficients[ia, jb, k2] + w3 * coefficients[ia, jb, k3])
            total += wi[a] * wj[b] * line
    return total


@helper
def gaussian_weights(x, n, scale, cutoff, scratch, axis):
    """Gaussian (erf) weights of one axis into ``scratch[axis]``; returns (first voxel, count)."""
    begin = max(0, int(math.floor(x + 0.5 - cutoff)))
    end = min(n, int(math.ceil(x + 0.5 + cutoff)))
    t = (begin - 0.5 - x) * scale
    last = math.erf(t)
    for m in range(end - begin):
        t += scale
        now = math.erf(t)
        scratch[axis, m] = now - last
        last = now
    return begin, end - begin


@inline_helper
def gaussian_3d(img, params, scratch, x, y, z):
    """Gaussian-weighted mean around ``(x, y, z)``; ``params`` = (scale x 3, cutoff x 3), voxels."""
    nx, ny, nz = img.shape
    i, ci = gaussian_weights(x, nx, params[0], params[3], scratch, 0)
    j, cj = gaussian_weights(y, ny, params[1], params[4], scratch, 1)
    k, ck = gaussian_weights(z, nz, params[2], params[5], scratch, 2)
    total = 0.0
    weight = 0.0
    for a in range(ci):
        for b in range(cj):
            wab = scratch[0, a] * scratch[1, b]
            for c in range(ck):
                w = wab * scratch[2, c]
                total += w * img[i + a, j + b, k + c]
                weight += w
    return total / weight


@helper
def lanczos_weights(x, scratch, axis):
    """Lanczos-windowed sinc weights (radius 3) of taps ``floor(x) - 2 .. + 3``; returns the first."""
    f = math.floor(x)
    d = x - f
    for m in range(6):
        t = d + 2.0 - m
        if d == 0.0:
            scratch[axis, m] = 1.0 if m == 2 else 0.0
        else:
            pt = math.pi * t
            scratch[axis, m] = (math.sin(pt) / pt) * (math.sin(pt / 3.0) / (pt / 3.0))
    return int(f) - 2


@inline_helper
def lanczos_3d(img, scratch, x, y, z):
    """Lanczos-windowed sinc value at ``(x, y, z)``; taps outside the image count as 0."""
    nx, ny, nz = img.shape
    i = lanczos_weights(x, scratch, 0)
    j = lanczos_weights(y, scratch, 1)
    k = lanczos_weights(z, scratch, 2)
    total = 0.0
    for a in range(6):
        ia = i + a
        if ia < 0 or ia >= nx or scratch[0, a] == 0.0:
            continue
        for b in range(6):
            jb = j + b
            if jb < 0 or jb >= ny or scratch[1, b] == 0.0:
                continue
            wab = scratch[0, a] * scratch[1, b]
            for c in range(6):
                kc = k + c
                if 0 <= kc < nz:
                    total += wab * scratch[2, c] * img[ia, jb, kc]
    return total


@helper
def linear_clamped_3d(img, x, y, z):
    """Trilinear value at ``(x, y, z)`` clamped to ``[0, n - 1]`` per axis (ITK's linear)."""
    i0, i1, fx, j0, j1, fy, k0, k1, fz = clamped_corners(img, x, y, z)
    return trilinear(img, i0, i1, fx, j0, j1, fy, k0, k1, fz)
