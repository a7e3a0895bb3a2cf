"""DIPY's affine + SyN tutorial flow, written as a DIPY user writes it.

It follows dipy.org's "Affine Registration in 3D" and "Symmetric Diffeomorphic
Registration in 3D" examples (fewer iterations, so it runs in seconds).
tests/test_dipy_script.py runs it as written, on DIPY, and with only its
``from dipy.align... import`` lines switched to ``from parareg.dipy import``.

Usage: python dipy_affine_syn.py STATIC.nii.gz MOVING.nii.gz OUT.npz
"""

import sys

import nibabel as nib
import numpy as np
from dipy.align import affine_registration
from dipy.align.imaffine import AffineMap
from dipy.align.imwarp import SymmetricDiffeomorphicRegistration
from dipy.align.metrics import CCMetric


def main(static_file, moving_file, out_file):
    static_img = nib.load(static_file)
    static = static_img.get_fdata()
    static_affine = static_img.affine
    moving_img = nib.load(moving_file)
    moving = moving_img.get_fdata()
    moving_affine = moving_img.affine

    # the two images overlaid before any registration: resample moving on the static grid
    identity = np.eye(4)
    affine_map = AffineMap(identity, domain_grid_shape=static.shape,
                           domain_grid2world=static_affine, codomain_grid_shape=moving.shape,
                           codomain_grid2world=moving_affine)
    resampled_identity = affine_map.transform(moving)

    # centre of mass, translation, rigid, then the full affine, each starting from the last
    pipeline = ["center_of_mass", "translation", "rigid", "affine"]
    level_iters = [20, 10, 5]
    sigmas = [3.0, 1.0, 0.0]
    factors = [4, 2, 1]
    resampled, affine = affine_registration(moving, static, moving_affine=moving_affine,
                                            static_affine=static_affine, pipeline=pipeline,
                                            level_iters=level_iters, sigmas=sigmas,
                                            factors=factors)

    # SyN with cross-correlation, pre-aligned by the affine
    metric = CCMetric(3, sigma_diff=2.0, radius=2)
    sdr = SymmetricDiffeomorphicRegistration(metric, level_iters=[10, 5, 2])
    mapping = sdr.optimize(static, moving, static_grid2world=static_affine,
                           moving_grid2world=moving_affine, prealign=affine)
    warped_moving = mapping.transform(moving)
    warped_static = mapping.transform_inverse(static)

    np.savez(out_file, resampled_identity=resampled_identity, resampled=resampled,
             affine=affine, warped_moving=warped_moving, warped_static=warped_static,
             forward=mapping.get_forward_field(), backward=mapping.get_backward_field())


if __name__ == "__main__":
    main(*sys.argv[1:4])
