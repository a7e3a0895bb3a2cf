"""One transform stage at one pyramid level: L-BFGS-B on conditioned parameters.

The metric returns ``d value / d M`` for the top rows of the fixed-world ->
moving-world matrix ``M``; the chain rule through ``dM/dp`` (exact for
linear transforms, computed once per stage) gives the parameter gradient.
Parameters are conditioned as ``p = p0 + scales * u`` so a unit step in any
``u`` moves points by about 1 mm.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..metrics.base import NoOverlapError


def one_blas_thread():
    """A context in which BLAS runs on one thread (when threadpoolctl is installed).

    SciPy >= 1.15's L-BFGS-B wakes the OpenBLAS thread pool for its tiny
    vector operations (scipy/scipy#23191), which costs more than a
    6-12-parameter problem's whole iteration; parareg's own threads are
    numba's, never BLAS's, and one thread gives the same bits on vectors
    that short.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # an optional speed-up: without it L-BFGS-B runs as before
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def matrix_jacobian(transform, params, *, center) -> np.ndarray:
    """``dM/dp``, shape ``(n_params, ndim, ndim + 1)``, for a linear transform.

    Exact: the transformed point is affine in the homogeneous input, so its
    Jacobian at the origin and at each unit vector gives the matrix columns.
    """
    ndim = transform.ndim
    points = np.vstack([np.zeros(ndim), np.eye(ndim)])
    jac = transform.jacobian(params, points, center=center)  # (ndim+1, ndim, n_params)
    dm = np.empty((transform.n_params, ndim, ndim + 1))
    dm[:, :, ndim] = jac[0].T
    for axis in range(ndim):
        dm[:, :, axis] = (jac[axis + 1] - jac[0]).T
    return dm


class StageResult:
    """What one stage/level optimisation found."""

    __slots__ = ("matrix", "params", "initial_value", "value", "iterations", "message")

    def __init__(self, matrix, params, initial_value, value, iterations, message):
        self.matrix = matrix
        self.params = params
        self.initial_value = initial_value
        self.value = value
        self.iterations = iterations
        self.message = message


def optimize_stage(metric, state, transform, start_matrix, *, center, scales, iterations,
                   tolerance, callback=None, info=None) -> StageResult:
    """Minimise ``metric`` over ``transform``'s parameters starting from ``start_matrix``.

    Parameters
    ----------
    metric : AffineMetric
    state : object
        From ``metric.setup``.
    transform : LinearTransform
    start_matrix : ndarray, shape (ndim + 1, ndim + 1)
        Initial fixed-world -> moving-world matrix; projected onto the
        transform's parameters (exact when the transform can express it).
    center : ndarray, shape (ndim,)
        Centre of rotation/scaling, world mm.
    scales : ndarray, shape (n_params,)
        Parameter conditioning.
    iterations : int
        Maximum iterations (0 only evaluates the start).
    tolerance : float
        Relative change of the value below which the optimiser stops.
    callback : callable, optional
        Called as ``callback(dict(info, iteration=i, value=v, matrix=M))``.
    """
    p0 = transform.params_from_matrix(start_matrix, center=center)
    # Keep what the transform cannot express (e.g. shear when a rigid stage starts from an
    # affine) as a fixed factor: M(p) = correction @ T(p), with M(p0) = start_matrix.
    correction = start_matrix @ np.linalg.inv(transform.matrix(p0, center=center))
    if np.allclose(correction, np.eye(len(correction)), atol=1e-12):
        correction = None

    def matrix_of(u):
        m = transform.matrix(p0 + scales * u, center=center)
        return m if correction is None else correction @ m

    def dmatrix_of(u):
        dm = matrix_jacobian(transform, p0 + scales * u, center=center)
        if correction is not None:
            dm = np.einsum("ab,kbc->kac", correction[:-1, :-1], dm)
        return dm

    initial_value = float(metric.value(state, matrix_of(np.zeros_like(p0))))
    if iterations == 0:
        m = matrix_of(np.zeros_like(p0))
        return StageResult(m, p0, initial_value, initial_value, 0, "no iterations requested")
    worst = abs(initial_value) * 10.0 + 1.0
    counter = {"iteration": 0}

    def fun(u):
        try:
            value, dvalue_dmatrix = metric.value_and_gradient(state, matrix_of(u))
        except NoOverlapError:
            return worst, np.zeros_like(u)
        grad_p = np.einsum("kab,ab->k", dmatrix_of(u), dvalue_dmatrix)
        return float(value), grad_p * scales

    def on_iteration(intermediate_result):
        counter["iteration"] += 1
        if callback is not None:
            callback({**(info or {}), "iteration": counter["iteration"],
                      "value": float(intermediate_result.fun),
                      "matrix": matrix_of(intermediate_result.x)})

    from scipy.optimize import minimize  # imported when first needed: it is slow to import

    with one_blas_thread():
        result = minimize(fun, np.zeros_like(p0), jac=True, method="L-BFGS-B",
                          callback=on_iteration,
                          options={"maxiter": int(iterations), "ftol": tolerance, "gtol": 1e-8,
                                   "maxcor": 10})
    u = result.x
    value = float(result.fun)
    if value > initial_value:  # never return something worse than the start
        u = np.zeros_like(p0)
        value = initial_value
    return StageResult(matrix_of(u), p0 + scales * u, initial_value, value, int(result.nit),
                       str(result.message))
