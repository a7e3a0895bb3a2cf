"""DIPY's "Affine Registration in 3D" tutorial (the class form), as a DIPY user writes it.

Centres of mass, then translation, rigid and affine stages with
``AffineRegistration``, each starting where the last stopped (fewer
iterations than the tutorial). tests/test_dipy_script.py runs it on DIPY and
with only its ``from dipy.align... import`` lines switched to parareg.dipy.

Usage: python dipy_affine_3d.py STATIC.nii.gz MOVING.nii.gz OUT.npz
"""

import sys

import nibabel as nib
import numpy as np
from dipy.align.imaffine import (
    AffineRegistration,
    MutualInformationMetric,
    transform_centers_of_mass,
)
from dipy.align.transforms import AffineTransform3D, RigidTransform3D, TranslationTransform3D


def main(static_file, moving_file, out_file):
    static_img = nib.load(static_file)
    static = static_img.get_fdata()
    static_grid2world = static_img.affine
    moving_img = nib.load(moving_file)
    moving = moving_img.get_fdata()
    moving_grid2world = moving_img.affine

    c_of_mass = transform_centers_of_mass(static, static_grid2world, moving, moving_grid2world)
    centred = c_of_mass.transform(moving)

    nbins = 32
    sampling_prop = None
    metric = MutualInformationMetric(nbins, sampling_prop)
    level_iters = [20, 10, 5]
    sigmas = [3.0, 1.0, 0.0]
    factors = [4, 2, 1]
    affreg = AffineRegistration(metric=metric, level_iters=level_iters, sigmas=sigmas,
                                factors=factors)

    transform = TranslationTransform3D()
    params0 = None
    starting_affine = c_of_mass.affine
    translation = affreg.optimize(static, moving, transform, params0,
                                  static_grid2world=static_grid2world,
                                  moving_grid2world=moving_grid2world,
                                  starting_affine=starting_affine)

    transform = RigidTransform3D()
    rigid = affreg.optimize(static, moving, transform, params0,
                            static_grid2world=static_grid2world,
                            moving_grid2world=moving_grid2world,
                            starting_affine=translation.affine)

    transform = AffineTransform3D()
    affreg.level_iters = [10, 10, 5]
    affine = affreg.optimize(static, moving, transform, params0,
                             static_grid2world=static_grid2world,
                             moving_grid2world=moving_grid2world, starting_affine=rigid.affine)
    transformed = affine.transform(moving)
    back = affine.transform_inverse(static)

    np.savez(out_file, centred=centred, centre_of_mass=c_of_mass.affine,
             translation=translation.affine, rigid=rigid.affine, affine=affine.affine,
             transformed=transformed, back=back)


if __name__ == "__main__":
    main(*sys.argv[1:4])
