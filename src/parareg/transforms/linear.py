"""Linear (homogeneous-matrix) transforms: translation, rigid, similarity, affine.

Every transform maps **fixed world** points (millimetres) to **moving world**
points. With a linear part ``A(p)`` built from the non-translation parameters,
a translation ``t`` and a centre of rotation ``c`` (world mm)::

    M(x) = A (x - c) + c + t

so ``t`` is the displacement of the centre itself and rotations/scalings
pivot about ``c``. The parameter vector is always laid out as
``[linear params..., t_0, ..., t_{ndim-1}]``: ``params[-ndim:]`` is the
translation for every transform.

Parametrisation
---------------
translation
    ``t`` (``ndim`` values, mm).
rigid, 2D
    ``[theta, tx, ty]``: counter-clockwise angle in radians.
rigid, 3D
    ``[w0, w1, w2, tx, ty, tz]``: a rotation vector (exponential map of
    so(3)); the axis is ``w / |w|`` and the angle ``|w|`` radians. Unlike
    Euler angles (ITK's ``Euler3DTransform``) it has no gimbal lock and its
    three directions are equally scaled at and near the identity, which keeps
    the optimisation well conditioned; it is the same local chart as ANTs'
    versor (``sin(angle/2) * axis``) to first order. The Jacobian is the
    closed-form derivative of Rodrigues' formula, with Taylor series near 0.
similarity
    the rigid rotation parameters, then ``log(s)`` for the isotropic scale
    ``s > 0``, then ``t``: ``A = exp(log_s) R``. The log keeps the scale
    positive and makes up- and down-scaling symmetric.
affine
    the ``ndim x ndim`` entries of ``A`` in row-major order, then ``t``;
    the identity parameters are the entries of the identity matrix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .._options import choice
from ..image import check_matrix

__all__ = [
    "TRANSFORMS",
    "AffineTransform",
    "LinearTransform",
    "RigidTransform",
    "SimilarityTransform",
    "TranslationTransform",
    "get_transform",
]

#: below this rotation angle (radians) Rodrigues coefficients use Taylor series
_SMALL_ANGLE = 1e-2


# --------------------------------------------------------------------------- #
# rotation helpers (private, pure functions)
# --------------------------------------------------------------------------- #
def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix ``[v]x`` of a 3-vector, shape (3, 3)."""
    return np.array([[0.0, -v[2], v[1]],
                     [v[2], 0.0, -v[0]],
                     [-v[1], v[0], 0.0]])


#: ``_GENERATORS[i] = [e_i]x``, the so(3) generators, shape (3, 3, 3)
_GENERATORS = np.stack([_skew(e) for e in np.eye(3)])


def _rodrigues_coefficients(theta: float) -> tuple[float, float, float, float]:
    """``a, b`` of ``R = I + a K + b K^2`` and ``c = a'/theta``, ``d = b'/theta``."""
    t2 = theta * theta
    if theta < _SMALL_ANGLE:
        a = 1.0 - t2 / 6.0 + t2 * t2 / 120.0
        b = 0.5 - t2 / 24.0 + t2 * t2 / 720.0
        c = -1.0 / 3.0 + t2 / 30.0 - t2 * t2 / 840.0
        d = -1.0 / 12.0 + t2 / 180.0 - t2 * t2 / 6720.0
    else:
        s, co = np.sin(theta), np.cos(theta)
        a = s / theta
        b = (1.0 - co) / t2
        c = (theta * co - s) / (t2 * theta)
        d = (theta * s - 2.0 * (1.0 - co)) / (t2 * t2)
    return a, b, c, d


def _rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) of a rotation vector (radians) by Rodrigues' formula."""
    a, b, _, _ = _rodrigues_coefficients(float(np.linalg.norm(rotvec)))
    k = _skew(rotvec)
    return np.eye(3) + a * k + b * (k @ k)


def _rotvec_derivatives(rotvec: np.ndarray) -> np.ndarray:
    """``dR/dw_i`` for i = 0, 1, 2, shape (3, 3, 3), exact at and near 0."""
    a, b, c, d = _rodrigues_coefficients(float(np.linalg.norm(rotvec)))
    k = _skew(rotvec)
    k2 = k @ k
    e = _GENERATORS
    return (a * e + b * (e @ k + k @ e)
            + c * rotvec[:, None, None] * k + d * rotvec[:, None, None] * k2)


def _matrix_to_rotvec(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector (3,) with angle in [0, pi] of a proper rotation matrix.

    Goes through a unit quaternion by Shepperd's method, which stays accurate
    for every angle including those near 0 and pi.
    """
    r = rotation
    tr = np.trace(r)
    i = int(np.argmax([tr, r[0, 0], r[1, 1], r[2, 2]]))
    if i == 0:
        w = 0.5 * np.sqrt(1.0 + tr)
        v = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (4.0 * w)
    else:
        j, k = i % 3, (i + 1) % 3  # the other two axes, cyclic after axis i - 1
        a = i - 1
        v = np.empty(3)
        v[a] = 0.5 * np.sqrt(max(1.0 + 2.0 * r[a, a] - tr, 0.0))
        v[j] = (r[j, a] + r[a, j]) / (4.0 * v[a])
        v[k] = (r[k, a] + r[a, k]) / (4.0 * v[a])
        w = (r[k, j] - r[j, k]) / (4.0 * v[a])
    if w < 0.0:
        v, w = -v, -w
    n = float(np.linalg.norm(v))
    if n < 1e-300:
        return np.zeros(3)
    return v * (2.0 * np.arctan2(n, w) / n)


def _nearest_rotation(linear: np.ndarray) -> tuple[np.ndarray, float]:
    """Closest proper rotation ``R`` (Frobenius) to ``linear`` and the best scale ``s``.

    ``s R`` is the closest similarity to ``linear``: from the SVD
    ``U S V^T``, ``R = U D V^T`` with ``D = diag(1, ..., det(U V^T))`` and
    ``s = trace(S D) / ndim`` (always > 0 for an invertible ``linear``).
    """
    u, sv, vt = np.linalg.svd(linear)
    diag = np.ones(linear.shape[0])
    diag[-1] = np.sign(np.linalg.det(u @ vt))
    rotation = (u * diag) @ vt
    scale = float(np.dot(sv, diag)) / linear.shape[0]
    return rotation, scale


def _angle_matrix(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _angle_derivative(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[-s, -c], [c, -s]])


def _rotation(ndim: int, rot_params: np.ndarray) -> np.ndarray:
    return _angle_matrix(rot_params[0]) if ndim == 2 else _rotvec_to_matrix(rot_params)


def _rotation_derivatives(ndim: int, rot_params: np.ndarray) -> np.ndarray:
    if ndim == 2:
        return _angle_derivative(rot_params[0])[None]
    return _rotvec_derivatives(rot_params)


def _rotation_params(ndim: int, rotation: np.ndarray) -> np.ndarray:
    if ndim == 2:
        return np.array([np.arctan2(rotation[1, 0], rotation[0, 0])])
    return _matrix_to_rotvec(rotation)


# --------------------------------------------------------------------------- #
# transforms
# --------------------------------------------------------------------------- #
class LinearTransform(ABC):
    """A family of homogeneous transforms ``M(x) = A(p) (x - c) + c + t``.

    Subclasses define the linear part ``A`` from the first :attr:`n_linear`
    parameters; the last ``ndim`` parameters are always the translation ``t``
    (mm). Objects hold no parameters: the state is the ``params`` array passed
    to each method.

    Parameters
    ----------
    ndim : {2, 3}
        Dimension of the world space.
    """

    #: registry name
    name: str = ""

    def __init__(self, ndim: int):
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
        self.ndim = int(ndim)

    # -- what subclasses define ------------------------------------------- #
    @property
    @abstractmethod
    def n_linear(self) -> int:
        """Number of parameters of the linear part (before the translation)."""

    @abstractmethod
    def _linear(self, lin: np.ndarray) -> np.ndarray:
        """``A``, shape (ndim, ndim), from the linear parameters (n_linear,)."""

    @abstractmethod
    def _linear_derivatives(self, lin: np.ndarray) -> np.ndarray:
        """``dA/dp_k``, shape (n_linear, ndim, ndim)."""

    @abstractmethod
    def _linear_params(self, linear: np.ndarray) -> np.ndarray:
        """Linear parameters (n_linear,) of the closest ``A`` to ``linear``."""

    @abstractmethod
    def _linear_scales(self, radius: float) -> np.ndarray:
        """Step of each linear parameter that moves points at ``radius`` mm by ~1 mm."""

    # -- public API ---------------------------------------------------------- #
    @property
    def n_params(self) -> int:
        """Total number of parameters, ``n_linear + ndim``."""
        return self.n_linear + self.ndim

    def identity_params(self) -> np.ndarray:
        """Parameters of the identity transform.

        Returns
        -------
        params : ndarray, shape (n_params,), float64
        """
        lin = self._linear_params(np.eye(self.ndim))
        return np.concatenate([lin, np.zeros(self.ndim)])

    def matrix(self, params, *, center=None) -> np.ndarray:
        """Homogeneous fixed-world -> moving-world matrix for ``params``.

        Parameters
        ----------
        params : array_like, shape (n_params,)
            Linear parameters then translation (mm); see the module docstring.
        center : array_like, shape (ndim,), optional
            Centre of rotation/scaling in world mm; the world origin if omitted.

        Returns
        -------
        fixed_world2moving_world : ndarray, shape (ndim + 1, ndim + 1), float64

        Examples
        --------
        >>> import numpy as np
        >>> rigid = get_transform("rigid", 2)
        >>> m = rigid.matrix([np.pi / 2, 0.0, 0.0], center=[10.0, 0.0])
        >>> np.round(m @ [10.0, 0.0, 1.0], 12).tolist()  # the centre stays put
        [10.0, 0.0, 1.0]
        """
        p = self._check_params(params)
        c = self._check_center(center)
        n = self.ndim
        linear = self._linear(p[: self.n_linear])
        out = np.eye(n + 1)
        out[:n, :n] = linear
        out[:n, n] = c + p[self.n_linear:] - linear @ c
        return out

    def params_from_matrix(self, matrix, *, center=None) -> np.ndarray:
        """Parameters whose :meth:`matrix` best matches ``matrix``.

        Exact for matrices of this family. Otherwise the linear part is
        projected onto the family (rigid: nearest rotation by polar/SVD
        decomposition, reflections excluded; similarity: nearest rotation
        times the best isotropic scale) and the translation is chosen so that
        ``center`` maps where ``matrix`` maps it.

        Parameters
        ----------
        matrix : array_like, shape (ndim + 1, ndim + 1)
            Fixed-world -> moving-world homogeneous matrix (invertible).
        center : array_like, shape (ndim,), optional
            Centre of rotation/scaling in world mm; the world origin if omitted.

        Returns
        -------
        params : ndarray, shape (n_params,), float64

        Examples
        --------
        >>> import numpy as np
        >>> sim = get_transform("similarity", 3)
        >>> p = sim.params_from_matrix(np.diag([2.0, 2.0, 2.0, 1.0]))
        >>> bool(np.isclose(p[3], np.log(2.0)))
        True
        """
        m = check_matrix(matrix, self.ndim, name="matrix")
        c = self._check_center(center)
        n = self.ndim
        lin = self._linear_params(m[:n, :n])
        translation = m[:n, :n] @ c + m[:n, n] - c  # M(c) - c
        return np.concatenate([lin, translation])

    def jacobian(self, params, points, *, center=None) -> np.ndarray:
        """Derivative of the mapped points with respect to the parameters.

        Parameters
        ----------
        params : array_like, shape (n_params,)
        points : array_like, shape (N, ndim)
            Fixed-world points, mm.
        center : array_like, shape (ndim,), optional
            Centre of rotation/scaling in world mm; the world origin if omitted.

        Returns
        -------
        jac : ndarray, shape (N, ndim, n_params), float64
            ``jac[i, a, k] = d M(points[i])[a] / d params[k]`` (mm per
            parameter unit).

        Examples
        --------
        >>> import numpy as np
        >>> t = get_transform("translation", 3)
        >>> t.jacobian(t.identity_params(), np.zeros((5, 3))).shape
        (5, 3, 3)
        """
        p = self._check_params(params)
        x = self._check_points(points)
        c = self._check_center(center)
        n, k = self.ndim, self.n_linear
        jac = np.zeros((x.shape[0], n, self.n_params))
        if k:
            derivs = self._linear_derivatives(p[:k])
            jac[:, :, :k] = np.einsum("kab,nb->nak", derivs, x - c)
        jac[:, np.arange(n), k + np.arange(n)] = 1.0
        return jac

    def param_scales(self, extent_mm) -> np.ndarray:
        """Per-parameter step that moves points by about 1 mm.

        For an image of the given extent, ``radius = |extent_mm| / 2`` (half
        the diagonal): translations get 1, rotation angles, log-scale and
        matrix entries get ``1 / radius``. An optimiser working on
        ``u = params / scales`` then sees every direction at a comparable
        scale (the inverse of ITK's "optimizer scales").

        Parameters
        ----------
        extent_mm : float or array_like, shape (ndim,)
            Physical size of the image along each axis, mm
            (e.g. ``image.shape * image.spacing``); a scalar is used for every axis.

        Returns
        -------
        scales : ndarray, shape (n_params,), float64

        Examples
        --------
        >>> get_transform("rigid", 2).param_scales([30.0, 40.0]).tolist()
        [0.04, 1.0, 1.0]
        """
        e = np.asarray(extent_mm, dtype=np.float64)
        if e.ndim == 0:
            e = np.full(self.ndim, float(e))
        if e.shape != (self.ndim,) or not np.all(np.isfinite(e)) or np.any(e <= 0):
            raise ValueError(f"extent_mm must be a positive finite number or {self.ndim} of "
                             f"them, got {extent_mm!r}")
        radius = 0.5 * float(np.linalg.norm(e))
        return np.concatenate([self._linear_scales(radius), np.ones(self.ndim)])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ndim={self.ndim})"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.ndim == other.ndim

    def __hash__(self) -> int:
        return hash((type(self), self.ndim))

    # -- validation ---------------------------------------------------------- #
    def _check_params(self, params) -> np.ndarray:
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (self.n_params,):
            raise ValueError(f"params must have shape ({self.n_params},) for a {self.ndim}D "
                             f"{self.name} transform, got shape {p.shape}")
        if not np.all(np.isfinite(p)):
            raise ValueError("params contains NaN or inf values")
        return p

    def _check_points(self, points) -> np.ndarray:
        x = np.asarray(points, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.ndim:
            raise ValueError(f"points must have shape (N, {self.ndim}), got shape {x.shape}")
        return x

    def _check_center(self, center) -> np.ndarray:
        if center is None:
            return np.zeros(self.ndim)
        c = np.asarray(center, dtype=np.float64)
        if c.shape != (self.ndim,):
            raise ValueError(f"center must have shape ({self.ndim},), got shape {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("center contains NaN or inf values")
        return c


class TranslationTransform(LinearTransform):
    """``M(x) = x + t``; params ``t`` (ndim,), mm.

    Examples
    --------
    >>> TranslationTransform(3).matrix([1.0, 2.0, 3.0])[:3, 3].tolist()
    [1.0, 2.0, 3.0]
    """

    name = "translation"

    @property
    def n_linear(self) -> int:
        return 0

    def _linear(self, lin):
        return np.eye(self.ndim)

    def _linear_derivatives(self, lin):
        return np.zeros((0, self.ndim, self.ndim))

    def _linear_params(self, linear):
        return np.zeros(0)

    def _linear_scales(self, radius):
        return np.zeros(0)


class RigidTransform(LinearTransform):
    """Rotation about the centre plus translation.

    2D params ``[theta, tx, ty]`` (radians, mm); 3D params
    ``[w0, w1, w2, tx, ty, tz]`` with ``w`` a rotation vector (angle ``|w|``
    radians about axis ``w/|w|``).

    Examples
    --------
    >>> import numpy as np
    >>> r = RigidTransform(3).matrix([0.0, 0.0, np.pi / 2, 0.0, 0.0, 0.0])
    >>> np.round(r[:3, :3] @ [1.0, 0.0, 0.0], 12).tolist()
    [0.0, 1.0, 0.0]
    """

    name = "rigid"

    @property
    def n_linear(self) -> int:
        return 1 if self.ndim == 2 else 3

    def _linear(self, lin):
        return _rotation(self.ndim, lin)

    def _linear_derivatives(self, lin):
        return _rotation_derivatives(self.ndim, lin)

    def _linear_params(self, linear):
        rotation, _ = _nearest_rotation(linear)
        return _rotation_params(self.ndim, rotation)

    def _linear_scales(self, radius):
        return np.full(self.n_linear, 1.0 / radius)


class SimilarityTransform(LinearTransform):
    """Rotation and isotropic scaling about the centre plus translation.

    Params: the rigid rotation parameters, ``log(s)``, then ``t``:
    ``[theta, log_s, tx, ty]`` in 2D, ``[w0, w1, w2, log_s, tx, ty, tz]`` in 3D.

    Examples
    --------
    >>> import numpy as np
    >>> m = SimilarityTransform(2).matrix([0.0, np.log(3.0), 0.0, 0.0])
    >>> np.diag(m).round(12).tolist()
    [3.0, 3.0, 1.0]
    """

    name = "similarity"

    @property
    def n_linear(self) -> int:
        return 2 if self.ndim == 2 else 4

    def _linear(self, lin):
        return np.exp(lin[-1]) * _rotation(self.ndim, lin[:-1])

    def _linear_derivatives(self, lin):
        scale = np.exp(lin[-1])
        rotation = _rotation(self.ndim, lin[:-1])
        d_rot = scale * _rotation_derivatives(self.ndim, lin[:-1])
        return np.concatenate([d_rot, (scale * rotation)[None]])

    def _linear_params(self, linear):
        rotation, scale = _nearest_rotation(linear)
        return np.concatenate([_rotation_params(self.ndim, rotation), [np.log(scale)]])

    def _linear_scales(self, radius):
        return np.full(self.n_linear, 1.0 / radius)


class AffineTransform(LinearTransform):
    """General affine map: params are ``A`` row-major (ndim*ndim values) then ``t``.

    Examples
    --------
    >>> AffineTransform(2).identity_params().tolist()
    [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    """

    name = "affine"

    @property
    def n_linear(self) -> int:
        return self.ndim * self.ndim

    def _linear(self, lin):
        return lin.reshape(self.ndim, self.ndim).copy()

    def _linear_derivatives(self, lin):
        return np.eye(self.n_linear).reshape(self.n_linear, self.ndim, self.ndim)

    def _linear_params(self, linear):
        return np.asarray(linear, dtype=np.float64).reshape(-1).copy()

    def _linear_scales(self, radius):
        return np.full(self.n_linear, 1.0 / radius)


#: transform families by name
TRANSFORMS = {
    "translation": TranslationTransform,
    "rigid": RigidTransform,
    "similarity": SimilarityTransform,
    "affine": AffineTransform,
}


def get_transform(name: str, ndim: int) -> LinearTransform:
    """The transform family ``name`` in ``ndim`` dimensions.

    Parameters
    ----------
    name : {"affine", "rigid", "similarity", "translation"}
    ndim : {2, 3}

    Returns
    -------
    LinearTransform

    Examples
    --------
    >>> t = get_transform("affine", 3)
    >>> t.n_params
    12
    """
    return TRANSFORMS[choice(name, sorted(TRANSFORMS), name="transform")](ndim)
