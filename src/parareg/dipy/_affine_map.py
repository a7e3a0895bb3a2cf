"""DIPY's ``AffineMap`` (``dipy.align.imaffine``) and ``resample``, on :func:`parareg.resample`."""

from __future__ import annotations

import numpy as np

from ..image import check_matrix
from ..resampling import resample as _resample
from ._inputs import grid, read_image

__all__ = ["AffineMap", "resample"]


class AffineMap:
    """An affine from a domain grid (static) to a codomain grid (moving), as DIPY's.

    Parameters
    ----------
    affine : ndarray, shape (dim + 1, dim + 1) or None
        Maps domain (static) world points to codomain (moving) world points;
        ``None`` is the identity.
    domain_grid_shape, codomain_grid_shape : sequence of int, optional
        Default output grids of :meth:`transform` and :meth:`transform_inverse`.
    domain_grid2world, codomain_grid2world : ndarray, optional
        Their voxel-to-world matrices (identity when omitted).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(16.0).reshape(4, 4)
    >>> shift = np.array([[1.0, 0, 1], [0, 1, 0], [0, 0, 1]])
    >>> AffineMap(shift, domain_grid_shape=(4, 4), codomain_grid_shape=(4, 4)).transform(
    ...     image)[0].tolist()
    [4.0, 5.0, 6.0, 7.0]
    """

    def __init__(self, affine, *, domain_grid_shape=None, domain_grid2world=None,
                 codomain_grid_shape=None, codomain_grid2world=None):
        self.domain_shape = domain_grid_shape
        self.domain_grid2world = domain_grid2world
        self.codomain_shape = codomain_grid_shape
        self.codomain_grid2world = codomain_grid2world
        self.set_affine(affine)

    def set_affine(self, affine) -> None:
        """Set the matrix (``None``: identity) and its inverse ``affine_inv``."""
        if affine is None:
            self.affine = self.affine_inv = None
            return
        affine = np.asarray(affine, dtype=np.float64)
        self.affine = check_matrix(affine, affine.shape[0] - 1, name="affine")
        self.affine_inv = np.linalg.inv(self.affine)

    def get_affine(self):
        """The matrix, or ``None`` for the identity (DIPY's convention)."""
        return self.affine

    def _apply(self, image, *, inverse, interpolation, image_grid2world, sampling_grid_shape,
               sampling_grid2world, resample_only):
        src_grid2world = self.domain_grid2world if inverse else self.codomain_grid2world
        shape = (self.codomain_shape if inverse else self.domain_shape) \
            if sampling_grid_shape is None else sampling_grid_shape
        if shape is None:
            raise ValueError("unknown sampling grid: pass sampling_grid_shape= or give the map "
                             f"its {'codomain' if inverse else 'domain'}_grid_shape")
        if sampling_grid2world is None:
            sampling_grid2world = self.codomain_grid2world if inverse else self.domain_grid2world
        data = np.asarray(image)
        if image_grid2world is None:
            image_grid2world = np.eye(data.ndim + 1) if src_grid2world is None else \
                src_grid2world
        matrix = self.affine_inv if inverse else self.affine
        if matrix is None or resample_only:
            matrix = np.eye(data.ndim + 1)
        moving = read_image(data, image_grid2world, name="image")
        out = _resample(moving, grid(shape, sampling_grid2world, name="sampling grid"),
                        affine=matrix, interpolation=interpolation)
        return out.data

    def transform(self, image, *, interpolation="linear", image_grid2world=None,
                  sampling_grid_shape=None, sampling_grid2world=None, resample_only=False):
        """``image`` (on the codomain grid) resampled onto the domain grid; ndarray."""
        return self._apply(image, inverse=False, interpolation=interpolation,
                           image_grid2world=image_grid2world,
                           sampling_grid_shape=sampling_grid_shape,
                           sampling_grid2world=sampling_grid2world, resample_only=resample_only)

    def transform_inverse(self, image, *, interpolation="linear", image_grid2world=None,
                          sampling_grid_shape=None, sampling_grid2world=None,
                          resample_only=False):
        """``image`` (on the domain grid) resampled onto the codomain grid; ndarray."""
        return self._apply(image, inverse=True, interpolation=interpolation,
                           image_grid2world=image_grid2world,
                           sampling_grid_shape=sampling_grid_shape,
                           sampling_grid2world=sampling_grid2world, resample_only=resample_only)

    def __repr__(self) -> str:
        matrix = None if self.affine is None else np.round(self.affine, 4).tolist()
        return f"AffineMap(affine={matrix})"


def resample(moving, static, *, moving_affine=None, static_affine=None, between_affine=None):
    """DIPY's ``dipy.align.resample``: ``moving`` on the grid of ``static``, a nibabel image.

    ``between_affine`` maps static world points to moving world points
    (identity when omitted).
    """
    import nibabel as nib

    moving = read_image(moving, moving_affine, name="moving")
    static = read_image(static, static_affine, name="static")
    from ..io.nifti import _embed_affine

    out = _resample(moving, static, affine=between_affine)
    return nib.Nifti1Image(out.data, _embed_affine(static))
