"""DiffeomorphicMap: an affine prealignment followed by a dense displacement field.

Fields live on the fixed grid, in world millimetres (``ndarray, shape (*fixed.shape,
ndim)``, float32), in the pull convention of :func:`parareg.resample`:

``forward``
    fixed world point ``x`` corresponds to moving world point
    ``prealign @ (x + forward(x))``.
``backward``
    a pre-aligned point ``z = inv(prealign) @ y`` of moving world point ``y``
    corresponds to fixed world point ``z + backward(z)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..fields import inverse_consistency_error, jacobian_determinant
from ..image import Image, as_image, check_matrix, trusted_image
from ..parallel import resolve_num_threads
from ..resampling import check_field, resample, resample_vector_field

if TYPE_CHECKING:
    from .._typing import ArrayLike, ImageLike, MatrixLike


def _grid(image: Image) -> Image:
    """A grid-only image (zero-stride data) with ``image``'s shape and vox2world."""
    return trusted_image(np.broadcast_to(np.zeros((), np.float32), image.shape),
                         image.vox2world)


def resample_field(field: np.ndarray, field_vox2world: MatrixLike, grid: Image, *,
                   affine: MatrixLike | None = None, num_threads: int | None = None,
                   itk_edge: bool = False) -> np.ndarray:
    """Sample each component of ``field`` at ``affine @ x`` for every world point ``x`` of ``grid``.

    Zero outside the field's grid: outside ``[0, n - 1]`` voxels (the
    registration's rule), or with ``itk_edge`` outside ``[-0.5, n - 0.5)``
    with edge values within that half voxel (ITK's displacement-field
    transform). Returns ``(*grid.shape, ndim)`` float32.
    """
    ndim = grid.ndim
    grid_to_field = np.eye(ndim + 1) if affine is None else check_matrix(affine, ndim,
                                                                          name="affine")
    return resample_vector_field(np.ascontiguousarray(field, dtype=np.float32),
                                 np.linalg.inv(field_vox2world) @ grid_to_field, grid,
                                 itk_edge=itk_edge, num_threads=resolve_num_threads(num_threads))


class DiffeomorphicMap:
    """A prealignment affine plus forward/backward displacement fields on the fixed grid.

    Parameters
    ----------
    forward, backward : ndarray, shape (*fixed.shape, ndim), float32, mm
        See the module docstring for their meaning.
    fixed : Image
        The grid the fields live on (its data is not used).
    moving : Image
        The grid :meth:`transform_inverse` resamples onto.
    prealign : ndarray, shape (ndim + 1, ndim + 1)
        Fixed-world -> moving-world affine applied after the field.
    num_threads : int, optional
        Threads of the NaN/inf scan of the fields (``None``: the default).
    """

    def __init__(self, forward: ArrayLike, backward: ArrayLike, *, fixed: Image, moving: Image,
                 prealign: MatrixLike | None = None, num_threads: int | None = None):
        self.fixed_grid = _grid(fixed)
        self.moving_grid = _grid(moving)
        ndim = fixed.ndim
        self.prealign = np.eye(ndim + 1) if prealign is None else check_matrix(
            prealign, ndim, name="prealign")
        self.forward = check_field(forward, fixed.shape, name="forward", num_threads=num_threads)
        self.backward = check_field(backward, fixed.shape, name="backward",
                                    num_threads=num_threads)
        #: per level: dict(level, iterations, energy, seconds, ...)
        self.history: list[dict] = []

    @property
    def ndim(self) -> int:
        return self.fixed_grid.ndim

    @property
    def vox2world(self) -> np.ndarray:
        """The fields' grid (the fixed grid)."""
        return self.fixed_grid.vox2world

    def transform(self, image: ImageLike, *, interpolation: str = "linear",
                  num_threads: int | None = None,
                  image_affine: MatrixLike | None = None) -> Image:
        """``image`` in the moving world, resampled onto the fixed grid.

        ``image`` is any image :func:`parareg.resample` takes (an ndarray with
        ``image_affine``, its vox2world).
        """
        return resample(image, self.fixed_grid, affine=self.prealign, field=self.forward,
                        interpolation=interpolation, num_threads=num_threads,
                        moving_affine=image_affine)

    def transform_inverse(self, image: ImageLike, *, interpolation: str = "linear",
                          num_threads: int | None = None,
                          image_affine: MatrixLike | None = None) -> Image:
        """``image`` in the fixed world, resampled onto the moving grid."""
        image = as_image(image, name="image", affine=image_affine)
        inv_prealign = np.linalg.inv(self.prealign)
        back = resample_field(self.backward, self.vox2world, self.moving_grid,
                              affine=inv_prealign, num_threads=num_threads, itk_edge=True)
        # fixed(inv(P) y + B(inv(P) y)) = fixed(inv(P) @ (y + P_lin B(...)))
        field = back @ self.prealign[:-1, :-1].T.astype(np.float32)
        return resample(image, self.moving_grid, affine=inv_prealign, field=field,
                        interpolation=interpolation, num_threads=num_threads)

    def transform_points(self, points: ArrayLike) -> np.ndarray:
        """Map fixed world points, shape (N, ndim), to moving world points (mm)."""
        points = np.asarray(points, dtype=np.float64)
        ndim = self.ndim
        vox = (points @ np.linalg.inv(self.vox2world)[:-1, :-1].T
               + np.linalg.inv(self.vox2world)[:-1, -1])
        disp = np.empty_like(points)
        from scipy import ndimage

        for axis in range(ndim):
            disp[:, axis] = ndimage.map_coordinates(self.forward[..., axis], vox.T, order=1,
                                                    mode="constant", cval=0.0)
        moved = points + disp
        return moved @ self.prealign[:-1, :-1].T + self.prealign[:-1, -1]

    def jacobian_determinant(self, *, num_threads: int | None = None) -> np.ndarray:
        """det(d forward-map / dx) of the deformable part on the fixed grid (float32)."""
        return jacobian_determinant(self.forward, vox2world=self.vox2world,
                                    num_threads=num_threads)

    def inverse_consistency_error(self, *, mask: ArrayLike | None = None,
                                  num_threads: int | None = None) -> tuple[float, float]:
        """(mean, max) in mm of ``forward o backward`` and ``backward o forward`` residuals."""
        return inverse_consistency_error(self.forward, self.backward, vox2world=self.vox2world,
                                         mask=mask, num_threads=num_threads)

    def __repr__(self) -> str:
        return (f"DiffeomorphicMap(ndim={self.ndim}, grid={self.fixed_grid.shape}, "
                f"max |forward| = {float(np.abs(self.forward).max()):.2f} mm)")


__all__ = ["DiffeomorphicMap", "resample_field"]
