"""``parareg apply`` on the files ANTs writes, against ``ants.apply_transforms`` (issue 13).

Sources: short antspyx registrations of real data -- two Mindboggle slices (2D)
and crops of the IXI pair (3D) -- of each type users run (``SyN``,
``antsRegistrationSyNQuick[s]``, ``Affine``), written both ways ANTs writes
them: ``0GenericAffine.mat`` + ``1Warp.nii.gz`` / ``1InverseWarp.nii.gz``, and
``Composite.h5`` / ``InverseComposite.h5`` (``--write-composite-transform``).
Each is applied forward (moving onto fixed) and inverse (fixed onto moving)
by the CLI and by antspyx, on the images themselves (no zero padding: ITK's
half-voxel edge rule is parareg's): an intensity image by linear
interpolation within 1e-4 of its range, and a brain mask by nearest
neighbour, exactly. The other interpolators' tolerances are
tests/test_interpolators.py's ``test_equals_ants_apply_transforms``.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from parareg.cli.main import main

from ._data import IXI_LABELS, IXI_T1, MINDBOGGLE, MINDBOGGLE_LABELS, needs_data

ants = pytest.importorskip("ants")

#: antspyx type -> iterations that keep a run short (the files, not the fit, are tested)
TYPES = {
    "SyN": {"reg_iterations": (6, 3, 0), "aff_iterations": (20, 10, 0, 0)},
    "antsRegistrationSyNQuick[s]": {"reg_iterations": (6, 3, 0)},
    "Affine": {"aff_iterations": (20, 10, 0, 0)},
}
#: ndim -> (fixed image, moving image, fixed labels, moving labels, crop)
SOURCES = {
    2: (MINDBOGGLE[:2], MINDBOGGLE_LABELS[:2], np.s_[20:200, 30:260]),
    3: (IXI_T1[:2], IXI_LABELS[:2], np.s_[32:88, 30:90, 22:70]),
} if len(MINDBOGGLE) >= 2 and len(IXI_T1) >= 2 else {}


@pytest.fixture(scope="module", params=[2, 3], ids=["2d", "3d"])
def pair(request, tmp_path_factory):
    """Cropped fixed/moving images and their brain masks (uint8), as files."""
    if request.param not in SOURCES:
        pytest.skip("../shared/data is not present")
    images, labels, crop = SOURCES[request.param]
    out = tmp_path_factory.mktemp(f"pair{request.param}d")
    paths = {}
    for role, image, label in zip(("fixed", "moving"), images, labels):
        img = nib.load(image).slicer[crop]
        nib.save(img, out / f"{role}.nii.gz")
        lab = nib.load(label).slicer[crop]
        mask = (np.asarray(lab.dataobj) > 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(mask, lab.affine), out / f"{role}_mask.nii.gz")
        paths[role], paths[f"{role}_mask"] = out / f"{role}.nii.gz", out / f"{role}_mask.nii.gz"
    return request.param, paths


def _lists(reg):
    """Per direction: (the CLI's -t words, antspyx's list, antspyx's whichtoinvert)."""
    forward, inverse = ([reg[key]] if isinstance(reg[key], str) else list(reg[key])
                        for key in ("fwdtransforms", "invtransforms"))  # a composite: a str
    flags = [p.endswith(".mat") for p in inverse]  # ANTs' inverse list inverts its affine
    return {"forward": (forward, forward, [False] * len(forward)),
            "inverse": ([f"[{p},1]" if flag else p for p, flag in zip(inverse, flags)],
                        inverse, flags)}


@needs_data
@pytest.mark.parametrize("composite", [False, True], ids=["mat+warp", "composite"])
@pytest.mark.parametrize("kind", sorted(TYPES))
def test_apply_equals_ants_on_ants_written_files(pair, kind, composite, tmp_path):
    ndim, paths = pair
    fixed, moving = (ants.image_read(str(paths[role])) for role in ("fixed", "moving"))
    reg = ants.registration(fixed, moving, type_of_transform=kind, random_seed=1,
                            outprefix=str(tmp_path / "a_"), write_composite_transform=composite,
                            **TYPES[kind])
    lists = _lists(reg)
    names = [Path(p).name.removeprefix("a_") for p in lists["forward"][1] + lists["inverse"][1]]
    assert names == (["Composite.h5", "InverseComposite.h5"] if composite else
                     ["0GenericAffine.mat"] * 2 if kind == "Affine" else
                     ["1Warp.nii.gz", "0GenericAffine.mat", "0GenericAffine.mat",
                      "1InverseWarp.nii.gz"])
    for direction, source, target in (("forward", "moving", "fixed"),
                                      ("inverse", "fixed", "moving")):
        words, theirs_list, flags = lists[direction]
        for suffix, interpolation, theirs_name in (("", "Linear", "linear"),
                                                   ("_mask", "NearestNeighbor",
                                                    "nearestNeighbor")):
            out = tmp_path / f"{direction}{suffix}.nii.gz"
            assert main(["apply", "-i", str(paths[source + suffix]), "-r", str(paths[target]),
                         "-n", interpolation, "-o", str(out), "-q", "-t", *words]) == 0
            ours = np.asarray(nib.load(out).dataobj, dtype=np.float64)
            theirs = ants.apply_transforms(
                ants.image_read(str(paths[target])), ants.image_read(str(paths[source + suffix])),
                theirs_list, interpolator=theirs_name, whichtoinvert=flags).numpy()
            where = f"{kind}, {'composite' if composite else 'mat+warp'}, {direction}, {ndim}D"
            assert ours.shape == theirs.shape, where
            if suffix:
                assert np.count_nonzero(ours != theirs) == 0, f"{where}: mask"
                assert 0 < np.count_nonzero(theirs) < theirs.size, where
            else:
                assert np.max(np.abs(ours - theirs)) <= 1e-4 * float(np.ptp(theirs)), where
                assert np.count_nonzero(theirs == 0) > 0, where  # the outside is in the picture
