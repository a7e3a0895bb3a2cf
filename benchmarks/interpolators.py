"""Each interpolator of ``parareg.apply_transforms`` against ``ants.apply_transforms`` (antspyx).

One IXI 2 mm volume (IXI013, labels for GenericLabel) resampled onto the grid
of another (IXI012) through an ANTs-written chain: a displacement field
(smooth, up to 3 mm) and an affine ``.mat``, the shape of a SyN output. Both
read the transform files on every call; the images are in memory. parareg
runs at ``--threads`` (``num_threads``), ANTs at the same count
(``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``, set before antspyx is imported).
Calls are interleaved repeat by repeat (``_common.measure``: one untimed call
first, numba compilation excluded) and the minimum of the repeats is
reported, with the largest difference between the two results. A third
column times parareg with the transform files read once beforehand
(``read_transforms`` + ``resample_through``): the interpolation itself.

Usage::

    python benchmarks/interpolators.py --repeats 2 --crop 40     # smoke run
    python benchmarks/interpolators.py                           # 2 mm volumes, 7 repeats
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ixi_2mm"
#: parareg's name -> antspyx's
NAMES = {"Linear": "linear", "NearestNeighbor": "nearestNeighbor",
         "GenericLabel": "genericLabel", "BSpline": "bSpline", "Gaussian": "gaussian",
         "LanczosWindowedSinc": "lanczosWindowedSinc"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--crop", type=int, default=None,
                        help="crop both volumes to N^3 voxels (smoke runs)")
    parser.add_argument("--only", nargs="*", default=None, choices=sorted(NAMES))
    args = parser.parse_args(argv)
    os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(args.threads)
    import ants

    import _common
    import parareg
    from parareg.image import as_image
    from parareg.transforms.chain import read_transforms, resample_through

    window = np.s_[:] if args.crop is None else np.s_[:args.crop, :args.crop, :args.crop]
    tmp = Path(tempfile.mkdtemp(prefix="parareg_interp_"))
    paths = {}
    for name, sub, subject in (("moving", "t1", "IXI013"), ("labels", "labels", "IXI013"),
                               ("reference", "t1", "IXI012")):
        src = next((DATA / sub).glob(f"{subject}*.nii.gz"))
        paths[name] = tmp / f"{name}.nii.gz"
        nib.save(nib.load(src).slicer[window], paths[name])
    fixed = ants.image_read(str(paths["reference"]))
    rng = np.random.default_rng(1)
    tx = ants.create_ants_transform(
        transform_type="AffineTransform", dimension=3,
        matrix=np.eye(3) + rng.normal(scale=0.04, size=(3, 3)),
        translation=rng.normal(scale=3, size=3), center=list(fixed.origin))
    ants.write_transform(tx, str(tmp / "affine.mat"))
    grid = np.meshgrid(*[np.linspace(0, np.pi, n) for n in fixed.shape], indexing="ij")
    field = np.stack([3.0 * np.sin(grid[0] + a) * np.cos(grid[1] - a) for a in range(3)], -1)
    ants.image_write(ants.from_numpy(field.astype(np.float32), origin=fixed.origin,
                                     spacing=fixed.spacing, direction=fixed.direction,
                                     has_components=True), str(tmp / "warp.nii.gz"))
    chain = [str(tmp / "warp.nii.gz"), str(tmp / "affine.mat")]

    ants_images = {k: ants.image_read(str(p)) for k, p in paths.items()}
    ours_images = {"moving": as_image(nib.load(paths["moving"]), name="moving"),
                   "labels": as_image(paths["labels"], name="labels", labels=True),
                   "reference": as_image(paths["reference"], name="reference")}
    steps = read_transforms(chain, ndim=3)
    rows = []
    for ours, theirs in NAMES.items():
        if args.only and ours not in args.only:
            continue
        source = "labels" if ours == "GenericLabel" else "moving"

        def run_ants(theirs=theirs, source=source):
            return ants.apply_transforms(ants_images["reference"], ants_images[source], chain,
                                         interpolator=theirs)

        def run_ours(ours=ours, source=source):
            return parareg.apply_transforms(ours_images[source], ours_images["reference"],
                                            chain, interpolation=ours,
                                            num_threads=args.threads)

        def run_read_once(ours=ours, source=source):
            return resample_through(ours_images[source], ours_images["reference"], steps,
                                    interpolation=ours, num_threads=args.threads)

        times = _common.measure({"ants": run_ants, "parareg": run_ours,
                                 "read_once": run_read_once},
                                repeats=args.repeats, min_time=0.0)
        a = run_ants().numpy().astype(np.float64)
        p = run_ours().data.astype(np.float64)
        value_range = float(a.max() - a.min()) or 1.0
        agreement = (f"{np.count_nonzero(a != p) / a.size:.2e} of voxels differ"
                     if ours in ("GenericLabel", "NearestNeighbor")
                     else f"max diff {np.max(np.abs(a - p)) / value_range:.1e} of range")
        ants_s, ours_s = times["ants"]["min_s"], times["parareg"]["min_s"]
        once_s = times["read_once"]["min_s"]
        rows.append([ours, f"{ants_s:.3f}", f"{ours_s:.3f}", f"{ours_s / ants_s:.2f}",
                     f"{once_s:.3f}", agreement])
        print(f"{ours}: ants {ants_s:.3f} s, parareg {ours_s:.3f} s (transforms read once "
              f"{once_s:.3f} s), {agreement}", file=sys.stderr, flush=True)
    shape = "x".join(map(str, ours_images["reference"].shape))
    print(f"\n{shape} voxels, {args.threads} threads, min of {args.repeats} interleaved repeats\n")
    print(_common.markdown_table(["interpolator", "antspyx s", "parareg s", "parareg/ants",
                                  "parareg, transforms read once s", "agreement"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
