"""An ANTsPy registration script, written as an ANTsPy user writes it.

It follows ANTsPy's registration tutorial: SyN of moving to fixed, the moving
image warped with the forward transforms, the fixed image with the inverse
ones, and the log-Jacobian of the warp. tests/test_ants_script.py runs it as
written, on ANTsPy, and with only ``import ants`` changed to
``import parareg.ants as ants``.

Usage: python ants_registration.py FIXED.nii.gz MOVING.nii.gz OUTPREFIX
"""

import sys

import ants


def main(fixed_file, moving_file, outprefix):
    fixed = ants.image_read(fixed_file)
    moving = ants.image_read(moving_file)

    reg = ants.registration(fixed=fixed, moving=moving, type_of_transform="SyN",
                            outprefix=outprefix, reg_iterations=(40, 20, 0))

    warped = ants.apply_transforms(fixed=fixed, moving=moving,
                                   transformlist=reg["fwdtransforms"])
    ants.image_write(warped, outprefix + "warped.nii.gz")
    inverse = ants.apply_transforms(fixed=moving, moving=fixed,
                                    transformlist=reg["invtransforms"])
    ants.image_write(inverse, outprefix + "inverse.nii.gz")
    ants.image_write(reg["warpedmovout"], outprefix + "warpedmovout.nii.gz")

    log_jacobian = ants.create_jacobian_determinant_image(fixed, reg["fwdtransforms"][0],
                                                          do_log=True)
    ants.image_write(log_jacobian, outprefix + "logjac.nii.gz")

    print("fwdtransforms:", " ".join(reg["fwdtransforms"]))
    print("invtransforms:", " ".join(reg["invtransforms"]))
    print("warped:", warped.shape, warped.spacing, warped.origin)


if __name__ == "__main__":
    main(*sys.argv[1:4])
