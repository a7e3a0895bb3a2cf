"""Convert mappings between parareg and DIPY (``dipy.align.imaffine.AffineMap``,
``dipy.align.imwarp.DiffeomorphicMap``); DIPY is imported only here, on call.

Conventions (``dipy/align/imwarp.py``): a DIPY map warps with
``_warp_forward`` (domain point ``x`` -> ``P x + F(P x)``) and
``_warp_backward`` (codomain point ``y`` -> ``inv(P) (y + B(y))``), where ``P``
is its stored ``prealign``, ``F``/``B`` its ``forward``/``backward`` arrays
(world mm, on the ``disp`` grid) and ``transform`` is the backward warp when
``is_inverse``. DIPY's SyN returns ``is_inverse=True`` with ``P`` the inverse
of the prealign it was given, so parareg's ``forward`` is DIPY's ``backward``
array and parareg's ``prealign`` is ``inv(P)``. :func:`to_dipy` builds exactly
that object; :func:`from_dipy` reads either kind.
"""

from __future__ import annotations

import numpy as np

from ..registration.affine import AffineMap as _AffineMap
from ..transforms.diffeomorphic import DiffeomorphicMap as _DiffeomorphicMap
from ..transforms.diffeomorphic import resample_field
from ._affine_map import AffineMap as _DipyShapedAffineMap
from ._inputs import grid
from .syn import DiffeomorphicMap as _DipyShapedMap

__all__ = ["from_dipy", "to_dipy"]


def _dipy(module: str):
    try:
        import importlib

        return importlib.import_module(f"dipy.align.{module}")
    except ImportError as exc:
        raise ImportError(f"to_dipy/from_dipy need DIPY ({exc}); install it with "
                          "`pip install dipy`, or keep parareg's own mappings") from None


def _contiguous(field) -> np.ndarray:
    return np.ascontiguousarray(field, dtype=np.float32)


def to_dipy(mapping):
    """A parareg mapping as DIPY's own object.

    Parameters
    ----------
    mapping : parareg AffineMap or DiffeomorphicMap, or a parareg.dipy mapping

    Returns
    -------
    dipy.align.imaffine.AffineMap or dipy.align.imwarp.DiffeomorphicMap
        Its ``transform`` puts the moving image on the fixed (static) grid,
        as ``mapping.transform`` does; a DiffeomorphicMap is built as DIPY's
        SyN builds its result (``is_inverse=True``, ``inv(prealign)`` stored).
    """
    if isinstance(mapping, _DipyShapedMap):
        mapping = mapping.native
    if isinstance(mapping, _DipyShapedAffineMap):
        imaffine = _dipy("imaffine")
        return imaffine.AffineMap(mapping.affine, domain_grid_shape=mapping.domain_shape,
                                  domain_grid2world=mapping.domain_grid2world,
                                  codomain_grid_shape=mapping.codomain_shape,
                                  codomain_grid2world=mapping.codomain_grid2world)
    if isinstance(mapping, _AffineMap):
        imaffine = _dipy("imaffine")
        return imaffine.AffineMap(mapping.matrix, domain_grid_shape=mapping.fixed_grid.shape,
                                  domain_grid2world=mapping.fixed_grid.vox2world,
                                  codomain_grid_shape=mapping.moving_grid.shape,
                                  codomain_grid2world=mapping.moving_grid.vox2world)
    if not isinstance(mapping, _DiffeomorphicMap):
        raise TypeError(f"mapping must be a parareg AffineMap or DiffeomorphicMap, got "
                        f"{type(mapping).__name__}")
    imwarp = _dipy("imwarp")
    fixed, moving = mapping.fixed_grid, mapping.moving_grid
    out = imwarp.DiffeomorphicMap(mapping.ndim, fixed.shape, disp_grid2world=fixed.vox2world,
                                  domain_shape=moving.shape, domain_grid2world=moving.vox2world,
                                  codomain_shape=fixed.shape,
                                  codomain_grid2world=fixed.vox2world,
                                  prealign=np.linalg.inv(mapping.prealign))
    out.forward = _contiguous(mapping.backward)
    out.backward = _contiguous(mapping.forward)
    out.is_inverse = True
    return out


def _eye_or(matrix, ndim):
    return np.eye(ndim + 1) if matrix is None else np.asarray(matrix, dtype=np.float64)


def _on_grid(field, field_grid, target, affine, linear) -> np.ndarray:
    """``linear @ field(affine @ x)`` for every world point ``x`` of ``target`` (exact when the
    grids agree and ``affine`` is the identity)."""
    ndim = target.ndim
    same = (field_grid.shape == target.shape and np.allclose(affine, np.eye(ndim + 1))
            and np.allclose(field_grid.vox2world, target.vox2world, atol=1e-6))
    out = _contiguous(field) if same else resample_field(
        _contiguous(field), field_grid.vox2world, target, affine=affine)
    if not np.allclose(linear, np.eye(ndim)):
        out = _contiguous(out @ linear.T)
    return out


def from_dipy(mapping):
    """DIPY's AffineMap or DiffeomorphicMap as a parareg mapping (same ``transform``).

    A DiffeomorphicMap made by DIPY's SyN (or by :func:`to_dipy`) converts
    exactly; other layouts (``is_inverse=False`` with a prealign, fields on
    another grid than the output) are resampled linearly onto parareg's
    layout: fields on the grid ``transform`` samples on, prealign after them.
    """
    kind = type(mapping).__name__
    if kind == "AffineMap" and hasattr(mapping, "affine"):
        domain, codomain = mapping.domain_shape, mapping.codomain_shape
        if domain is None or codomain is None:
            raise ValueError("mapping has no domain_grid_shape or codomain_grid_shape; "
                             "parareg's AffineMap needs both grids")
        ndim = len(domain)
        return _AffineMap(_eye_or(mapping.affine, ndim),
                          fixed=grid(domain, mapping.domain_grid2world, name="domain"),
                          moving=grid(codomain, mapping.codomain_grid2world, name="codomain"))
    if kind != "DiffeomorphicMap" or not hasattr(mapping, "get_forward_field"):
        raise TypeError(f"mapping must be DIPY's AffineMap or DiffeomorphicMap, got {kind}")
    if isinstance(mapping, _DipyShapedMap):
        return mapping.native
    if mapping.forward is None or mapping.backward is None:
        raise ValueError("mapping has no displacement fields (forward/backward are None)")
    ndim = int(mapping.dim)
    domain = grid(mapping.domain_shape, mapping.domain_grid2world, name="domain")
    codomain = grid(mapping.codomain_shape, mapping.codomain_grid2world, name="codomain")
    disp = grid(mapping.disp_shape, mapping.disp_grid2world, name="disp")
    prealign = _eye_or(mapping.prealign, ndim)
    eye = np.eye(ndim)
    if mapping.is_inverse:  # transform: codomain y -> inv(P) (y + B(y))
        fixed, moving, native_prealign = codomain, domain, np.linalg.inv(prealign)
        forward = _on_grid(mapping.backward, disp, fixed, np.eye(ndim + 1), eye)
        backward = _on_grid(mapping.forward, disp, fixed, np.eye(ndim + 1), eye)
    else:  # transform: domain x -> P x + F(P x) = P (x + inv(P_lin) F(P x))
        fixed, moving, native_prealign = domain, codomain, prealign
        inv_linear = np.linalg.inv(prealign[:ndim, :ndim])
        forward = _on_grid(mapping.forward, disp, fixed, prealign, inv_linear)
        backward = _on_grid(mapping.backward, disp, fixed, prealign, inv_linear)
    return _DiffeomorphicMap(forward, backward, fixed=fixed, moving=moving,
                             prealign=native_prealign)
