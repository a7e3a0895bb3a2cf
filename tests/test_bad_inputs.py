"""The catalogue of hostile inputs: every case is run here, and docs/bad-inputs.md is made from it.

Each :class:`Case` is one hostile input: a command line (run in-process with
``parareg.cli.main.main``, in a folder of tiny files) or a Python call. The test
checks the exit status (2 for bad input, with exactly one ``parareg: error:``
line and no traceback) or the exception type, and that the message holds the
expected fragment. The same run fills docs/bad-inputs.md with the message parareg
really printed; a test checks the file is current. After changing a message:

    PYTHONPATH=src python -m tests.test_bad_inputs --write-docs
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"


@dataclass(frozen=True)
class Case:
    """One hostile input and what parareg must do with it."""

    id: str
    area: str  #: the section of the catalogue
    what: str  #: the input, in words
    call: tuple | Callable  #: a command line (``parareg`` omitted), or ``call(folder)``
    expect: int | type | None  #: exit status, the exception type a Python call raises, or
    #: None for a call that returns its message (a report of what was set aside)
    match: str  #: a regular expression the message must contain (``re.search``)


def cli(area, id, what, argv, match, expect=2):
    return Case(id, area, what, tuple(argv.split()) if isinstance(argv, str) else tuple(argv),
                expect, match)


def api(area, id, what, call, expect, match):
    return Case(id, area, what, call, expect, match)


# ----------------------------------------------------------------------------------------------
# the tiny files every case may use (made once, in one folder)

ITK_AFFINE_3D = """#Insight Transform File V1.0
#Transform 0
Transform: AffineTransform_double_3_3
Parameters: 1 0 0 0 1 0 0 0 1 0 0 0
FixedParameters: 0 0 0
"""
ITK_AFFINE_2D = """#Insight Transform File V1.0
#Transform 0
Transform: AffineTransform_double_2_2
Parameters: 1 0 0 1 0 0
FixedParameters: 0 0
"""


def make_files(folder: Path) -> None:
    rng = np.random.default_rng(0)

    def nifti(name, data, affine=None):
        nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine),
                 folder / name)

    def noise(*shape):
        return rng.random(shape).astype(np.float32)

    nifti("fixed.nii.gz", noise(12, 12, 12))
    nifti("moving.nii.gz", noise(12, 12, 12))
    nifti("big.nii.gz", noise(24, 24, 24))
    nifti("img2d.nii.gz", noise(12, 12))
    nifti("img4d.nii.gz", noise(12, 12, 12, 2))
    nifti("line.nii.gz", noise(12, 1, 1))
    nifti("tiny3.nii.gz", noise(3, 3, 3))
    nifti("tiny6.nii.gz", noise(6, 6, 6))
    nifti("const.nii.gz", np.full((12, 12, 12), 7.0, np.float32))
    nifti("zero.nii.gz", np.zeros((12, 12, 12), np.float32))
    nifti("negative.nii.gz", -noise(12, 12, 12))
    with_nan = noise(12, 12, 12)
    with_nan[3, 4, 5] = np.nan
    nifti("nan.nii.gz", with_nan)
    with_inf = noise(12, 12, 12)
    with_inf[0, 0, 0] = np.inf
    nifti("inf.nii.gz", with_inf)
    mask = np.zeros((12, 12, 12), np.uint8)
    mask[2:10, 2:10, 2:10] = 1
    nifti("mask.nii.gz", mask)
    nifti("mask_small.nii.gz", mask[:8, :8, :8])
    nifti("mask_zero.nii.gz", np.zeros((12, 12, 12), np.uint8))
    nifti("mask_nan.nii.gz", np.full((12, 12, 12), np.nan, np.float32))
    dot = np.zeros((12, 12, 12), np.uint8)
    dot[5, 5, 5] = 1
    nifti("mask_dot.nii.gz", dot)
    nifti("mask4d.nii.gz", np.ones((12, 12, 12, 2), np.uint8))
    (folder / "empty.nii.gz").write_bytes(b"")
    (folder / "text.nii").write_text("this is not an image\n")
    (folder / "corrupt.nii.gz").write_bytes(gzip.compress(b"x" * 400)[:60] + b"garbage")
    whole = (folder / "fixed.nii.gz").read_bytes()
    (folder / "truncated.nii.gz").write_bytes(whole[: len(whole) // 2])
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (folder / "folder.nii.gz").mkdir()
    (folder / "affine.txt").write_text(ITK_AFFINE_3D)
    shutil.copy(folder / "fixed.nii.gz", folder / "o_Warped.nii.gz")
    (folder / "l_Warped.nii.gz").symlink_to(folder / "moving.nii.gz")
    os.link(folder / "fixed.nii.gz", folder / "hard.nii.gz")
    huge = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    huge.header.set_data_shape((4000, 4000, 4000))
    (folder / "huge.nii.gz").write_bytes(gzip.compress(huge.header.binaryblock + bytes(4)))
    rgb = np.zeros((12, 12, 12), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), folder / "rgb.nii.gz")
    nifti("hugelabels.nii.gz", np.full((12, 12, 12), 1e20, np.float32))
    (folder / "affine2d.txt").write_text(ITK_AFFINE_2D)
    (folder / "notitk.txt").write_text("hello\nworld\n")
    (folder / "empty.txt").write_text("")
    (folder / "affine.xyz").write_text(ITK_AFFINE_3D)
    (folder / "corrupt.h5").write_bytes(b"not an hdf5 file")
    (folder / "greedy3x3.mat").write_text("1 0 0\n0 1 0\n0 0 1\n")
    import h5py

    with h5py.File(folder / "bspline.h5", "w") as handle:
        group = handle.create_group("TransformGroup/0")
        group.create_dataset("TransformType", data=[b"BSplineTransform_double_3_3"])
    warp = np.zeros((12, 12, 12, 1, 3), np.float32)
    img = nib.Nifti1Image(warp, np.eye(4))
    img.header.set_intent("vector")
    nib.save(img, folder / "warp.nii.gz")
    # bench: three tiny 2D subjects, one without a matching label map
    for sub in ("images", "labels", "badlabels"):
        (folder / sub).mkdir()
    for ident in ("sub-1", "sub-2", "sub-3"):
        nifti(f"images/{ident}_T1w.nii.gz", noise(8, 8))
        nifti(f"labels/{ident}_dseg.nii.gz", (noise(8, 8) > 0.5).astype(np.int16))
    for ident in ("sub-1", "sub-2", "other-3"):
        nifti(f"badlabels/{ident}_dseg.nii.gz", (noise(8, 8) > 0.5).astype(np.int16))
    header = "fixed_image,fixed_labels,moving_image,moving_labels\n"
    (folder / "pairs_empty_cell.csv").write_text(
        header + "images/sub-1_T1w.nii.gz,,images/sub-2_T1w.nii.gz,labels/sub-2_dseg.nii.gz\n")
    (folder / "pairs_columns.csv").write_text("a,b\n1,2\n")
    (folder / "pairs_none.csv").write_text(header)
    (folder / "foreign").mkdir()
    (folder / "foreign" / "results.csv").write_text("name,age\nalice,31\n")
    (folder / "nostudy").mkdir()
    from parareg.bench import results

    rows = [{"fixed": "sub-1_T1w", "moving": m, "method": "identity", "status": "ok",
             "settings_hash": "0123456789ab", "info": "{}"} for m in ("sub-2_T1w", "sub-3_T1w")]
    for name, damage in (("torn", lambda t: t[:-25]), ("garbage", lambda t: t + "#%&!\n"),
                         ("binary", lambda t: t + "\x00\x01\x02\n")):
        (folder / name).mkdir()
        path = results.write_csv_atomic(folder / name / "results.csv", results.COLUMNS, rows)
        path.write_text(damage(path.read_text()))
    (folder / "a_file").write_text("a file, not a folder\n")
    corner = np.zeros((24, 24, 24), np.uint8)
    corner[:4, :8, :8] = 1
    nifti("mask_corner24.nii.gz", corner)
    centre = np.zeros((24, 24, 24), np.uint8)
    centre[8:16, 8:16, 8:16] = 1
    nifti("mask_centre24.nii.gz", centre)


# ----------------------------------------------------------------------------------------------
# the cases

R = "parareg register"
REGISTER = [
    cli(R, "register-no-args", "no arguments", "register",
        "required: fixed, moving|the following arguments are required"),
    cli(R, "register-missing-fixed", "fixed image does not exist",
        "register nosuch.nii.gz moving.nii.gz -o out_", r"nosuch\.nii\.gz"),
    cli(R, "register-missing-moving", "moving image does not exist",
        "register fixed.nii.gz nosuch.nii.gz -o out_", r"nosuch\.nii\.gz"),
    cli(R, "register-directory", "a folder given as the fixed image",
        "register folder.nii.gz moving.nii.gz -o out_", r"folder\.nii\.gz"),
    cli(R, "register-empty-file", "an empty (0-byte) .nii.gz",
        "register empty.nii.gz moving.nii.gz -o out_", r"empty\.nii\.gz"),
    cli(R, "register-text-file", "a text file named .nii",
        "register text.nii moving.nii.gz -o out_", r"text\.nii"),
    cli(R, "register-corrupt-gz", "a corrupt gzip stream",
        "register corrupt.nii.gz moving.nii.gz -o out_", r"corrupt\.nii\.gz"),
    cli(R, "register-truncated", "a .nii.gz cut in half",
        "register truncated.nii.gz moving.nii.gz -o out_", r"truncated\.nii\.gz"),
    cli(R, "register-png", "a PNG picture instead of NIfTI",
        "register picture.png moving.nii.gz -o out_", r"picture\.png"),
    cli(R, "register-4d", "a 4D image",
        "register img4d.nii.gz moving.nii.gz -o out_", r"img4d.*(4D|shape|dimension)"),
    cli(R, "register-1d", "a 12x1x1 image (one line of voxels)",
        "register line.nii.gz moving.nii.gz -o out_", r"line\.nii\.gz"),
    cli(R, "register-2d-vs-3d", "a 2D fixed and a 3D moving image",
        "register img2d.nii.gz moving.nii.gz -o out_", "2D but moving.*3D"),
    cli(R, "register-nan", "an image holding a NaN",
        "register nan.nii.gz moving.nii.gz -o out_", "NaN"),
    cli(R, "register-inf", "an image holding an inf",
        "register inf.nii.gz moving.nii.gz -o out_", "inf"),
    cli(R, "register-constant", "a constant fixed image",
        "register const.nii.gz moving.nii.gz -o out_ -t rigid", "fixed is constant"),
    cli(R, "register-zero", "an all-zero fixed image",
        "register zero.nii.gz moving.nii.gz -o out_ -t rigid", "all zero"),
    cli(R, "register-negative", "an image with no positive intensity",
        "register fixed.nii.gz negative.nii.gz -o out_ -t rigid",
        "no positive intensity.*rescale"),
    cli(R, "register-tiny-3", "a 3x3x3 image that is not constant",
        "register tiny3.nii.gz tiny3.nii.gz -o out_ -t rigid",
        "3x3x3, too small for parareg register.*not constant.*at least 8 voxels"),
    cli(R, "register-tiny-6-syn", "a 6x6x6 image that is not constant, SyN",
        "register tiny6.nii.gz tiny6.nii.gz -o out_", "too small for parareg register"),
    cli(R, "register-cc-window", "12x12x12 images with SyN CC (window larger than a level)",
        "register fixed.nii.gz moving.nii.gz -o out_",
        "too small for --metric cc.*--metric ssd, em or mi"),
    cli(R, "register-threads-0", "--threads 0",
        "register fixed.nii.gz moving.nii.gz -o out_ --threads 0", "--threads"),
    cli(R, "register-threads-negative", "--threads -3",
        "register fixed.nii.gz moving.nii.gz -o out_ --threads -3", "--threads"),
    cli(R, "register-threads-text", "--threads many",
        "register fixed.nii.gz moving.nii.gz -o out_ --threads many", "--threads"),
    cli(R, "register-threads-float", "--threads 2.5",
        "register fixed.nii.gz moving.nii.gz -o out_ --threads 2.5", "--threads"),
    cli(R, "register-metric", "an unknown --metric",
        "register fixed.nii.gz moving.nii.gz -o out_ --metric nmi", "--metric.*invalid choice"),
    cli(R, "register-transform", "an unknown --transform",
        "register fixed.nii.gz moving.nii.gz -o out_ -t bspline",
        "--transform.*invalid choice"),
    cli(R, "register-preset", "an unknown --preset",
        "register fixed.nii.gz moving.nii.gz -o out_ --preset turbo",
        "--preset.*invalid choice"),
    cli(R, "register-seed", "--seed abc",
        "register fixed.nii.gz moving.nii.gz -o out_ --seed abc", "--seed"),
    cli(R, "register-no-output", "no -o",
        "register fixed.nii.gz moving.nii.gz", "-o/--output|--output"),
    cli(R, "register-levels-mismatch", "-n 100x50 with 3 shrink factors",
        "register fixed.nii.gz moving.nii.gz -o o_ -n 100x50 -f 4x2x1", "2 levels"),
    cli(R, "register-negative-sigma", "a negative smoothing sigma",
        "register fixed.nii.gz moving.nii.gz -o o_ -s 2x-1x0vox", "0 or more"),
    cli(R, "register-negative-update-sigma", "--update-sigma -1",
        "register fixed.nii.gz moving.nii.gz -o o_ --update-sigma -1", "0 or more"),
    cli(R, "register-radius-zero", "--radius 0",
        "register fixed.nii.gz moving.nii.gz -o o_ --radius 0", "1 or more"),
    cli(R, "register-syn-option-rigid", "--step with --transform rigid",
        "register fixed.nii.gz moving.nii.gz -o o_ --transform rigid --step 0.3",
        "is a SyN setting"),
    cli(R, "register-stages-order", "--stages syn,affine",
        "register fixed.nii.gz moving.nii.gz -o o_ --stages syn,affine", "in the order"),
    cli(R, "register-initial-missing", "--initial-moving-transform names a missing file",
        "register fixed.nii.gz moving.nii.gz -o o_ --initial-moving-transform nosuch.mat",
        "neither a transform file"),
    cli(R, "register-initial-2d", "a 2D initial transform for a 3D registration",
        "register fixed.nii.gz moving.nii.gz -o o_ --initial-moving-transform affine2d.txt",
        "2D transform, expected 3D"),
    cli(R, "register-moving-mask-grid", "a moving mask on another grid",
        "register fixed.nii.gz moving.nii.gz -o o_ --moving-mask mask_small.nii.gz",
        "--moving-mask has shape"),
    cli(R, "register-convergence", "--convergence 1e-6 (no window)",
        "register fixed.nii.gz moving.nii.gz -o o_ --convergence 1e-6", "THRESHOLD,WINDOW"),
    cli(R, "register-empty-prefix", "-o ''",
        ("register", "fixed.nii.gz", "moving.nii.gz", "-o", ""), "prefix is empty"),
    cli(R, "register-prefix-missing-folder", "-o into a folder that does not exist",
        "register fixed.nii.gz moving.nii.gz -o nosuchdir/sub/out_", "nosuchdir"),
    cli(R, "register-prefix-under-file", "-o under a path that is a file",
        "register fixed.nii.gz moving.nii.gz -o a_file/out_", "a_file"),
    cli(R, "register-extra-argument", "a third positional argument",
        "register fixed.nii.gz moving.nii.gz extra.nii.gz -o out_", "unrecognized arguments"),
    cli(R, "register-mask-missing", "--fixed-mask does not exist",
        "register fixed.nii.gz moving.nii.gz -o out_ -x nosuch.nii.gz", "--fixed-mask"),
    cli(R, "register-mask-shape", "--fixed-mask on another grid (8^3 vs 12^3)",
        "register fixed.nii.gz moving.nii.gz -o out_ -x mask_small.nii.gz",
        "--fixed-mask has shape"),
    cli(R, "register-mask-empty", "an all-zero --fixed-mask",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -x mask_zero.nii.gz", "empty"),
    cli(R, "register-mask-nan", "an all-NaN --fixed-mask",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -x mask_nan.nii.gz",
        "--fixed-mask.*NaN"),
    cli(R, "register-mask-dot", "a one-voxel --fixed-mask",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -x mask_dot.nii.gz",
        "--fixed-mask 'mask_dot.nii.gz' has 1 non-zero voxel.*larger mask"),
    cli(R, "register-mask-4d", "a 4D --fixed-mask",
        "register fixed.nii.gz moving.nii.gz -o out_ -x mask4d.nii.gz", "--fixed-mask"),
]

A = "parareg apply"
APPLY_OK = "apply -i moving.nii.gz -r fixed.nii.gz -o applied.nii.gz"
APPLY = [
    cli(A, "apply-no-transform", "no -t", APPLY_OK, "-t/--transform|--transform"),
    cli(A, "apply-transform-missing", "-t names a missing file",
        APPLY_OK + " -t nosuch.mat", r"nosuch\.mat"),
    cli(A, "apply-transform-bracket", "an unclosed [FILE,1",
        APPLY_OK + " -t [affine.txt,1", r"\[affine\.txt,1"),
    cli(A, "apply-transform-flag", "[FILE,2]: an inverse flag other than 0/1",
        APPLY_OK + " -t [affine.txt,2]", r"affine\.txt"),
    cli(A, "apply-invert-warp", "[warp.nii.gz,1]: inverting a displacement field",
        APPLY_OK + " -t [warp.nii.gz,1]", "cannot be inverted|InverseWarp"),
    cli(A, "apply-transform-text", "a text file that is not an ITK transform",
        APPLY_OK + " -t notitk.txt", r"notitk\.txt"),
    cli(A, "apply-transform-empty", "an empty transform file",
        APPLY_OK + " -t empty.txt", r"empty\.txt"),
    cli(A, "apply-transform-2d", "a 2D affine for 3D images",
        APPLY_OK + " -t affine2d.txt", r"affine2d\.txt.*2D|2D.*3D"),
    cli(A, "apply-transform-extension", "a transform with an unknown extension (.xyz)",
        APPLY_OK + " -t affine.xyz", r"affine\.xyz"),
    cli(A, "apply-h5-corrupt", "a corrupt .h5 transform",
        APPLY_OK + " -t corrupt.h5", r"corrupt\.h5.*HDF5"),
    cli(A, "apply-h5-type", "an .h5 holding a transform type parareg does not read",
        APPLY_OK + " -t bspline.h5", "BSplineTransform_double_3_3"),
    cli(A, "apply-greedy-size", "a greedy matrix that is not 4x4 (3D images)",
        APPLY_OK + " -t greedy3x3.mat", "3x3 text matrix.*4x4"),
    cli(A, "apply-series-3d", "-e 3 on a 3D image",
        APPLY_OK + " -t affine.txt -e 3", "-e 3: input .* not a time series"),
    cli(A, "apply-tensor", "-e 2 (tensors)",
        APPLY_OK + " -t affine.txt -e 2", "tensor"),
    cli(A, "apply-output-type", "-u half",
        APPLY_OK + " -t affine.txt -u half", "expected one of char"),
    cli(A, "apply-linear-warp", "-o Linear[...] of a list with a field",
        "apply -r fixed.nii.gz -o Linear[a.mat] -t warp.nii.gz", "collapses into a field"),
    cli(A, "apply-no-input", "no -i (an image output)",
        "apply -r fixed.nii.gz -o applied.nii.gz -t affine.txt", "-i/--input is required"),
    cli(A, "apply-scalar-as-warp", "a scalar image given as a displacement field",
        APPLY_OK + " -t moving.nii.gz", r"moving\.nii\.gz"),
    cli(A, "apply-input-missing", "-i does not exist",
        "apply -i nosuch.nii.gz -r fixed.nii.gz -o applied.nii.gz -t affine.txt",
        r"nosuch\.nii\.gz"),
    cli(A, "apply-reference-4d", "a 4D reference",
        "apply -i moving.nii.gz -r img4d.nii.gz -o applied.nii.gz -t affine.txt", "img4d"),
    cli(A, "apply-interpolation", "-n cubic",
        APPLY_OK + " -t affine.txt -n cubic", "cubic"),
    cli(A, "apply-dimensionality-4", "-d 4",
        APPLY_OK + " -t affine.txt -d 4", "-d/--dimensionality|--dimensionality"),
    cli(A, "apply-dimensionality-mismatch", "-d 2 with 3D images",
        APPLY_OK + " -t affine.txt -d 2", "-d|dimensionality|2D|3D"),
    cli(A, "apply-output-extension", "-o with a .png name",
        "apply -i moving.nii.gz -r fixed.nii.gz -o out.png -t affine.txt", r"out\.png|\.nii"),
    cli(A, "apply-output-folder", "-o is an existing folder",
        "apply -i moving.nii.gz -r fixed.nii.gz -o folder.nii.gz -t affine.txt",
        r"folder\.nii\.gz"),
    cli(A, "apply-threads", "--threads 0", APPLY_OK + " -t affine.txt --threads 0", "--threads"),
    cli(A, "apply-input-nan", "an input image holding a NaN",
        "apply -i nan.nii.gz -r fixed.nii.gz -o applied.nii.gz -t affine.txt", "NaN"),
]

B = "parareg bench"
IMAGES, LABELS = "--images images/*.nii.gz", "--labels labels/*.nii.gz"
BENCH_OK = f"bench {IMAGES} {LABELS} --methods identity --no-qc"
BENCH = [
    cli(B, "bench-no-out", "no --out", f"bench {IMAGES} {LABELS}", "--out DIR is required"),
    cli(B, "bench-no-images", "--images matches no file",
        "bench --images nothing/*.nii.gz --labels labels/*.nii.gz --out study",
        "matches no file"),
    cli(B, "bench-no-labels", "--images without --labels",
        f"bench {IMAGES} --out study", "needs --labels"),
    cli(B, "bench-images-folder", "--images names a folder, not a pattern",
        "bench --images images --labels labels/*.nii.gz --out study", "is a folder"),
    cli(B, "bench-unpaired-labels", "a label map whose name matches no image",
        f"bench {IMAGES} --labels badlabels/*.nii.gz --out study",
        "do not pair up by subject ID.*other-3"),
    cli(B, "bench-unknown-method", "an unknown --methods entry",
        f"bench {IMAGES} {LABELS} --methods identity,warp-speed --out study",
        "unknown method.*warp-speed"),
    cli(B, "bench-pairs-0", "--pairs 0", BENCH_OK + " --pairs 0 --out study", "--pairs"),
    cli(B, "bench-pairs-too-many", "--pairs 99 with 6 pairs",
        BENCH_OK + " --pairs 99 --out study", "only 6 exist"),
    cli(B, "bench-pairs-csv-missing", "--pairs-csv does not exist",
        "bench --pairs-csv nosuch.csv --methods identity --out study", "no such file"),
    cli(B, "bench-pairs-csv-empty-cell", "--pairs-csv with an empty cell",
        "bench --pairs-csv pairs_empty_cell.csv --methods identity --out study",
        r"row 1 \(line 2\).*has no 'fixed_labels'"),
    cli(B, "bench-pairs-csv-columns", "--pairs-csv without the needed columns",
        "bench --pairs-csv pairs_columns.csv --methods identity --out study", "lacks column"),
    cli(B, "bench-pairs-csv-no-rows", "--pairs-csv with a header only",
        "bench --pairs-csv pairs_none.csv --methods identity --out study", "lists no pair"),
    cli(B, "bench-pairs-csv-and-images", "--pairs-csv together with --images",
        f"bench --pairs-csv pairs_none.csv {IMAGES} {LABELS} --methods identity --out study",
        "either"),
    cli(B, "bench-timeout", "--timeout -5", BENCH_OK + " --timeout -5 --out study", "timeout"),
    cli(B, "bench-workers", "--workers 0", BENCH_OK + " --workers 0 --out study", "--workers"),
    cli(B, "bench-foreign-results", "--out holds a results.csv that is not a study's",
        BENCH_OK + " --out foreign", "not a parareg study's results.csv"),
    cli(B, "bench-plugin", "--plugin names a module that does not exist",
        BENCH_OK + " --plugin no_such_module_xyz --out study", "no_such_module_xyz"),
    cli(B, "bench-report-only-empty", "--report-only on a folder without results",
        "bench --report-only --out nostudy", "no results"),
    cli(B, "bench-report-only-foreign", "--report-only on a foreign results.csv",
        "bench --report-only --out foreign", "not a parareg study's results.csv"),
]

D = "parareg demo / scaling / parareg"
OTHER = [
    cli(D, "parareg-no-command", "no command", "", "COMMAND|required"),
    cli(D, "parareg-unknown-command", "a misspelt command", "regster", "invalid choice"),
    cli(D, "demo-threads", "demo --threads 0", "demo --threads 0", "--threads"),
    cli(D, "demo-source", "demo --source unknown", "demo --source web", "--source"),
    cli(D, "demo-out-file", "demo --out names a file", "demo --out a_file --quick", "a_file"),
    cli(D, "scaling-no-out", "scaling without --out", "scaling fixed.nii.gz moving.nii.gz",
        "--out"),
    cli(D, "scaling-threads", "scaling --threads 1,x",
        "scaling fixed.nii.gz moving.nii.gz --out sc --threads 1,x", "--threads"),
    cli(D, "scaling-threads-0", "scaling --threads 0",
        "scaling fixed.nii.gz moving.nii.gz --out sc --threads 0", "--threads"),
    cli(D, "scaling-factors", "scaling --factors 0",
        "scaling fixed.nii.gz moving.nii.gz --out sc --factors 0", "--factors"),
    cli(D, "scaling-repeats", "scaling --repeats 0",
        "scaling fixed.nii.gz moving.nii.gz --out sc --repeats 0", "--repeats"),
    cli(D, "scaling-too-small", "scaling --factors 4 of 12^3 images (3^3 left)",
        "scaling fixed.nii.gz moving.nii.gz --out sc --transform affine --factors 4 --threads 1",
        "at one of --factors 4, fixed is 3x3x3, too small.*smaller --factors"),
    cli(D, "scaling-cc-window", "scaling of 12^3 images with SyN (CC window)",
        "scaling fixed.nii.gz moving.nii.gz --out sc --factors 1 --threads 1",
        "CC window.*--transform affine"),
    cli(D, "scaling-missing", "scaling with a missing image",
        "scaling nosuch.nii.gz moving.nii.gz --out sc", r"nosuch\.nii\.gz"),
    cli(D, "scaling-2d-vs-3d", "scaling with a 2D and a 3D image",
        "scaling img2d.nii.gz moving.nii.gz --out sc", "2D|3D|dimension"),
]


def _image(folder, name="fixed.nii.gz"):
    import parareg

    return parareg.load(folder / name)


def _register(folder, fixed="fixed.nii.gz", moving="moving.nii.gz", **kwargs):
    import parareg

    kwargs.setdefault("transform", "rigid")
    return parareg.register(_image(folder, fixed), _image(folder, moving), **kwargs)


def _affine(folder, **kwargs):
    from parareg import affine_registration

    return affine_registration(_image(folder), _image(folder, "moving.nii.gz"), **kwargs)


def _syn(folder, **kwargs):
    from parareg import syn_registration

    return syn_registration(_image(folder, "big.nii.gz"), _image(folder, "big.nii.gz"), **kwargs)


def _image_of(data, vox2world):
    import parareg

    return parareg.Image(data, vox2world)


def _resample(folder, **kwargs):
    import parareg

    return parareg.resample(_image(folder), _image(folder), **kwargs)


def _metrics():
    import parareg.metrics

    return parareg.metrics


def _metrics_syn():
    import parareg.metrics.syn

    return parareg.metrics.syn


def _syn_class():
    from parareg import SymmetricDiffeomorphicRegistration

    return SymmetricDiffeomorphicRegistration


def _syn_registration():
    from parareg import syn_registration

    return syn_registration


P = "Python API"
NAN_MASK = np.full((12, 12, 12), np.nan, np.float32)
PYTHON = [
    api(P, "py-register-missing-file", "register() with a path that does not exist",
        lambda d: __import__("parareg").register(d / "nosuch.nii.gz", d / "moving.nii.gz"),
        FileNotFoundError, r"nosuch\.nii\.gz"),
    api(P, "py-register-ndarray", "register() with a bare ndarray (no grid)",
        lambda d: __import__("parareg").register(np.zeros((8, 8, 8)), _image(d)),
        TypeError, "ndarray without a grid: pass fixed_affine="),
    api(P, "py-register-nibabel-4d", "register() with a 4D nibabel image",
        lambda d: __import__("parareg").register(
            __import__("nibabel").Nifti1Image(np.zeros((8, 8, 8, 2), np.float32), np.eye(4)),
            _image(d)), ValueError, "is 4D"),
    api(P, "py-register-affine-not-ndarray", "register(fixed_affine=) with an Image fixed",
        lambda d: __import__("parareg").register(_image(d), _image(d), fixed_affine=np.eye(4)),
        TypeError, "fixed_affine is only for an ndarray fixed"),
    api(P, "py-register-transform", "register(transform='bspline')",
        lambda d: _register(d, transform="bspline"), ValueError, "transform must be one of"),
    api(P, "py-register-preset", "register(preset='turbo')",
        lambda d: _register(d, preset="turbo"), ValueError, "preset must be one of"),
    api(P, "py-register-affine-metric", "register(affine_metric='nmi')",
        lambda d: _register(d, affine_metric="nmi"), ValueError, "metric must be one of"),
    api(P, "py-register-syn-metric", "register(syn_metric='ncc')",
        lambda d: _register(d, transform="syn", syn_metric="ncc"), ValueError,
        "metric must be one of"),
    api(P, "py-register-threads", "register(num_threads=0)",
        lambda d: _register(d, num_threads=0), ValueError, "num_threads.*positive integer"),
    api(P, "py-register-seed", "register(seed='x')",
        lambda d: _register(d, seed="x"), ValueError, "seed"),
    api(P, "py-register-nan-mask", "register(fixed_mask=all-NaN array)",
        lambda d: _register(d, fixed_mask=NAN_MASK), ValueError,
        "fixed_mask holds 1728 NaN voxel"),
    api(P, "py-register-mask-shape", "register(fixed_mask=array of another shape)",
        lambda d: _register(d, fixed_mask=np.ones((5, 5, 5))), ValueError,
        "fixed_mask has shape"),
    api(P, "py-register-tiny", "register() of 3x3x3 images that are not constant",
        lambda d: _register(d, "tiny3.nii.gz", "tiny3.nii.gz"), ValueError,
        r"too small for pyramid level 0.*not constant.*levels=.*affine_options"),
    api(P, "py-register-negative", "register() of an image with no positive intensity",
        lambda d: _register(d, moving="negative.nii.gz"), ValueError,
        "no positive intensity.*geometric_centers"),
    api(P, "py-affine-pipeline-empty", "affine_registration(pipeline=())",
        lambda d: _affine(d, pipeline=()), ValueError, "at least one step"),
    api(P, "py-affine-pipeline-step", "affine_registration(pipeline=('bspline',))",
        lambda d: _affine(d, pipeline=("bspline",)), ValueError, "pipeline step must be one of"),
    api(P, "py-affine-levels-factor", "affine_registration(levels=((0, 1, 10),))",
        lambda d: _affine(d, levels=((0, 1.0, 10),)), ValueError, "factor must be an integer"),
    api(P, "py-affine-levels-shape", "affine_registration(levels=(4, 2, 1))",
        lambda d: _affine(d, levels=(4, 2, 1)), ValueError, "levels must be a sequence"),
    api(P, "py-affine-sampling", "affine_registration(sampling=2)",
        lambda d: _affine(d, sampling=2), ValueError, "sampling"),
    api(P, "py-affine-mask-dot", "affine_registration(fixed_mask=one voxel)",
        lambda d: _affine(d, fixed_mask=_image(d, "mask_dot.nii.gz")), ValueError,
        "fixed_mask has 1 non-zero voxel.*larger mask"),
    api(P, "py-syn-radius", "syn_registration(radius=0)",
        lambda d: _syn(d, radius=0), ValueError, "radius must be a positive integer"),
    api(P, "py-syn-window", "syn_registration(radius=4) on 24^3 (window 9 > level 6^3)",
        lambda d: _syn(d, radius=4), ValueError,
        r"smaller than the CC window of 2 \* radius \+ 1 = 9.*levels="),
    api(P, "py-name-case-affine-metric", "get_affine_metric('MI'): names in any case are "
        "accepted", lambda d: _metrics().get_affine_metric("MI"), None,
        r"MattesMutualInformation\(bins=32"),
    api(P, "py-name-case-syn", "SymmetricDiffeomorphicRegistration('CC').metric: any case",
        lambda d: _syn_class()("CC").metric, None, r"CCMetric\(radius=2"),
    api(P, "py-syn-radius-unused", "syn_registration(metric='mi', radius=3): MI has no window",
        lambda d: _syn(d, metric="mi", radius=3), ValueError,
        r"radius=3 is not an option of the SyN metric 'mi' \(it takes bins\); drop radius"),
    api(P, "py-syn-bins-unused", "syn_registration(bins=16) with the default metric cc",
        lambda d: _syn(d, bins=16), ValueError,
        r"bins=16 is not an option of the SyN metric 'cc' \(it takes radius, eps, gradient\)"),
    api(P, "py-affine-bins-unused", "affine_registration(metric='correlation', bins=64)",
        lambda d: _affine(d, metric="correlation", bins=64), ValueError,
        r"bins=64 is not an option of the affine metric 'correlation'"),
    api(P, "py-syn-radius-object", "SymmetricDiffeomorphicRegistration(CCMetric(), radius=3)",
        lambda d: _syn_class()(_metrics_syn().CCMetric(), radius=3), ValueError,
        r"radius=3 is an option of a metric given by name; the metric object"),
    api(P, "py-register-affine-options-clash", "register(affine_options={'metric': 'mi'})",
        lambda d: _register(d, affine_options={"metric": "mi"}), ValueError,
        r"affine_options=\{'metric': \.\.\.\} clashes with register's own affine_metric= "
        r"argument: pass affine_metric= to register"),
    api(P, "py-register-syn-options-clash", "register(syn_options={'num_threads': 2})",
        lambda d: _register(d, syn_options={"num_threads": 2}), ValueError,
        r"syn_options=\{'num_threads': \.\.\.\} clashes with register's own num_threads="),
    api(P, "py-register-options-unknown", "register(affine_options={'iterations': 3})",
        lambda d: _register(d, affine_options={"iterations": 3}), ValueError,
        r"affine_options has an unknown key 'iterations'; it takes \['bins'"),
    api(P, "py-syn-constant", "syn_registration() of a constant moving image",
        lambda d: _syn_registration()(_image(d, "big.nii.gz"), _image_of(
            np.full(_image(d, "big.nii.gz").shape, 2.0, np.float32), np.eye(4))),
        ValueError, r"moving is constant; nothing to register"),
    api(P, "py-image-singular", "Image() with a singular vox2world",
        lambda d: _image_of(np.zeros((4, 4, 4), np.float32), np.zeros((4, 4))), ValueError,
        "vox2world"),
    api(P, "py-image-nan", "Image() of data holding NaN",
        lambda d: _image_of(NAN_MASK, np.eye(4)), ValueError, "NaN"),
    api(P, "py-resample-interpolation", "resample(interpolation='cubic')",
        lambda d: _resample(d, interpolation="cubic"), ValueError, "interpolation"),
    api(P, "py-load-missing", "load() of a missing file",
        lambda d: __import__("parareg").load(d / "nosuch.nii.gz"), FileNotFoundError,
        r"nosuch\.nii\.gz"),
]


def _parallel(name):
    from parareg import parallel

    return getattr(parallel, name)


def _env_threads(value):
    from parareg.parallel import get_num_threads

    previous = os.environ.get("PARAREG_NUM_THREADS")
    os.environ["PARAREG_NUM_THREADS"] = value
    try:
        return get_num_threads()
    finally:
        if previous is None:
            del os.environ["PARAREG_NUM_THREADS"]
        else:
            os.environ["PARAREG_NUM_THREADS"] = previous


def _raise(exc):
    raise exc


L = "parallel layer"
PARALLEL = [
    api(L, "par-set-threads-0", "set_num_threads(0)",
        lambda d: _parallel("set_num_threads")(0), ValueError, "positive integer"),
    api(L, "par-threads-text", "threads('2')",
        lambda d: _parallel("threads")("2").__enter__(), ValueError, "positive integer"),
    api(L, "par-env", "PARAREG_NUM_THREADS=abc",
        lambda d: _env_threads("abc"), ValueError, "PARAREG_NUM_THREADS"),
    api(L, "par-run-units-negative", "run_units(func, -1)",
        lambda d: _parallel("run_units")(print, -1), ValueError, "n_units"),
    api(L, "par-run-units-schedule", "run_units(schedule='fast')",
        lambda d: _parallel("run_units")(print, 3, schedule="fast"), ValueError,
        "schedule must be one of"),
    api(L, "par-map-backend", "parallel_map(backend='gpu')",
        lambda d: _parallel("parallel_map")(abs, [1], backend="gpu"), ValueError,
        "backend must be one of"),
    api(L, "par-map-grain", "parallel_map(grain=0)",
        lambda d: _parallel("parallel_map")(abs, [1, 2], grain=0), ValueError, "grain"),
    api(L, "par-map-error", "a function that raises in a work unit",
        lambda d: _parallel("parallel_map")(lambda x: 1 / x, [1, 0, 2], num_threads=2),
        ZeroDivisionError, "division by zero"),
    api(L, "par-map-interrupt", "KeyboardInterrupt raised in a work unit (a pool thread)",
        lambda d: _parallel("run_units")(lambda u: u == 3 and _raise(KeyboardInterrupt("u3")),
                                          6, num_threads=3),
        KeyboardInterrupt, "u3"),
    api(L, "par-slices-1d", "map_slices of a 1D array",
        lambda d: _parallel("map_slices")(abs, np.zeros(5)), ValueError,
        "at least 2 dimensions"),
    api(L, "par-slices-axis", "map_slices(axis=5) of a 3D array",
        lambda d: _parallel("map_slices")(abs, np.zeros((2, 2, 2)), axis=5), ValueError, "axis"),
    api(L, "par-partition-grain", "partition_range(0, 10, grain=-1)",
        lambda d: _parallel("partition_range")(0, 10, grain=-1), ValueError, "grain"),
    api(L, "par-threader-threads", "DomainThreader(num_threads=0)",
        lambda d: _parallel("DomainThreader")(num_threads=0), ValueError, "positive integer"),
    api(L, "par-reduce-empty", "reduce_units of no buffers",
        lambda d: _parallel("reduce_units")(np.zeros((0, 3))), ValueError, "at least one unit"),
]

def _resume(folder, name):
    from parareg.bench.results import ResultStore, describe_rejected

    store = ResultStore(folder / name).load()
    return f"kept {len(store.rows)} row(s); " + describe_rejected(store.rejected)


S = "parareg bench: resuming a damaged study (Python, what the warning says)"
RESUME = [
    api(S, "resume-torn-row", "results.csv whose last row is torn (cut mid-row, no newline)",
        lambda d: _resume(d, "torn"), None, r"kept 1 row.*line 3 \(.*torn"),
    api(S, "resume-garbage-line", "results.csv with a garbage line appended",
        lambda d: _resume(d, "garbage"), None, r"kept 2 row.*line 4 \(1 cell"),
    api(S, "resume-binary", "results.csv with binary bytes appended",
        lambda d: _resume(d, "binary"), None, r"kept 2 row.*line 4"),
    api(S, "resume-foreign", "results.csv that is another program's CSV",
        lambda d: _resume(d, "foreign"), ValueError, "not a parareg study's results.csv"),
]

# Cases of features built by other helpers are added here by the lead after merging:
# outputs that are inputs (register/apply), file modes under a umask, label dtypes through
# `apply -n nearest`, the memory estimate (--max-memory), warm-up (`parareg warmup`).
def _cache_dir_is_a_file(folder):
    from parareg.compilation import check_cache_writable

    return check_cache_writable(folder / "affine.txt" / "cache")


def _save_labels(folder, dtype):
    import parareg

    data = np.array([[0, 1], [2, 3]], dtype=dtype)
    path = folder / f"saved_{np.dtype(dtype).name}.nii.gz"
    parareg.save(parareg.Image(data, np.eye(3)), path)
    return parareg.load(path, labels=True).data.dtype


def _load_labels(path):
    import parareg

    return parareg.load(path, labels=True)


def _estimate(**kwargs):
    def call(folder):
        from parareg.memory import estimate

        return estimate(**kwargs)
    return call


W = "outputs, labels, memory and warm-up: commands"
WP = "outputs, labels, memory and warm-up: Python"
LATER: list[Case] = [
    cli(W, "register-output-is-fixed", "the fixed image is named like an output (o_Warped.nii.gz)",
        "register o_Warped.nii.gz moving.nii.gz -o o_ -t rigid", "o_Warped.nii.gz.*input"),
    cli(W, "register-output-is-moving-link", "an output is a symlink to the moving image",
        "register fixed.nii.gz moving.nii.gz -o l_ -t rigid", "l_Warped.nii.gz.*moving"),
    cli(W, "apply-output-is-input", "apply -i X -o X",
        "apply -i fixed.nii.gz -r fixed.nii.gz -t affine.txt -o fixed.nii.gz",
        "fixed.nii.gz.*input"),
    cli(W, "apply-output-is-transform", "apply writes over its own -t file",
        "apply -i fixed.nii.gz -r fixed.nii.gz -t affine.txt -o affine.txt", "affine.txt"),
    cli(W, "apply-output-hard-link", "apply -o is a hard link to the -i image",
        "apply -i fixed.nii.gz -r fixed.nii.gz -t affine.txt -o hard.nii.gz",
        "hard.nii.gz.*fixed.nii.gz"),
    cli(W, "load-huge-header", "a header declaring 4000x4000x4000 voxels (apply reads it)",
        "apply -i huge.nii.gz -r fixed.nii.gz -t affine.txt -o o.nii.gz", "4000"),
    cli(W, "register-huge-header", "a header declaring 4000x4000x4000 voxels (register; "
        "--max-memory keeps the message the same on any machine)",
        "register huge.nii.gz moving.nii.gz -o out_ --max-memory 4G",
        "not enough memory.*TiB.*limit is 4.0 GiB"),
    cli(W, "load-rgb", "an RGB NIfTI", "register rgb.nii.gz moving.nii.gz -o out_",
        "(?i)rgb.*grey"),
    api(WP, "load-labels-too-large", "load(labels=True) of float labels of 1e20 (no integer "
        "type holds them)", lambda folder: _load_labels(folder / "hugelabels.nii.gz"),
        ValueError, "hugelabels.nii.gz"),
    api(WP, "save-uint8-labels", "uint8 labels saved and read back (kept, not widened)",
        lambda folder: _save_labels(folder, np.uint8), None, "uint8"),
    api(WP, "save-uint32-labels", "uint32 labels saved and read back",
        lambda folder: _save_labels(folder, np.uint32), None, "uint32"),
    cli(W, "max-memory-text", "--max-memory abc",
        "register fixed.nii.gz moving.nii.gz -o out_ --max-memory abc", "--max-memory"),
    cli(W, "max-memory-zero", "--max-memory 0",
        "register fixed.nii.gz moving.nii.gz -o out_ --max-memory 0", "--max-memory"),
    cli(W, "max-memory-negative", "--max-memory -1G",
        "register fixed.nii.gz moving.nii.gz -o out_ --max-memory=-1G", "--max-memory"),
    cli(W, "max-memory-unit", "--max-memory 12Q (unknown unit)",
        "register fixed.nii.gz moving.nii.gz -o out_ --max-memory 12Q", "--max-memory"),
    cli(W, "max-memory-too-small", "--max-memory 1K, below the estimate",
        "register big.nii.gz big.nii.gz -o out_ --max-memory 1K",
        "needs about.*--max-memory.*--preset fast"),
    api(WP, "estimate-bad-transform", "parareg.memory.estimate(transform='bspline')",
        _estimate(fixed_shape=(12, 12, 12), moving_shape=(12, 12, 12), transform="bspline"),
        ValueError, "transform"),
    api(WP, "estimate-bad-shape", "parareg.memory.estimate(fixed_shape=(0, 12, 12))",
        _estimate(fixed_shape=(0, 12, 12), moving_shape=(12, 12, 12)), ValueError, "shape"),
    cli(W, "warmup-jobs-0", "warmup --jobs 0", "warmup --jobs 0", "--jobs"),
    cli(W, "warmup-jobs-text", "warmup --jobs many", "warmup --jobs many", "--jobs"),
    cli(W, "warmup-dims-4", "warmup --dims 4", "warmup --dims 4", "--dims"),
    api(WP, "warmup-cache-unwritable", "a kernel cache folder that cannot be created",
        _cache_dir_is_a_file, OSError, "NUMBA_CACHE_DIR"),
    api(L, "par-blocks-halo", "map_blocks(block_shape=(8, 4), halo=5): halo larger than a block",
        lambda d: _parallel("map_blocks")(np.abs, np.zeros((16, 16)), block_shape=(8, 4),
                                          halo=5), ValueError, "halo must be at most block_shape"),
    api(L, "par-blocks-ndim", "map_blocks(block_shape=(8, 8, 8)) of a 2D array",
        lambda d: _parallel("map_blocks")(np.abs, np.zeros((16, 16)), block_shape=(8, 8, 8)),
        ValueError, "block_shape must have one entry per axis"),
    api(L, "par-blocks-result-shape", "map_blocks whose func crops one block's result",
        lambda d: _parallel("map_blocks")(lambda b: b[1:] if b[0, 0] == 1 else b,
                                          np.kron([[0, 0], [0, 1]], np.ones((8, 8))),
                                          block_shape=8, num_threads=2),
        ValueError, r"func returned shape \(7, 8\) for the block at \[8:16, 8:16\]"),
    # multi-channel registration (-i, --weights, --channel-metrics; channels=, weight=)
    cli(R, "register-channel-grid", "-i FIXED2 MOVING2 whose FIXED2 is on another grid than FIXED",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -i big.nii.gz moving.nii.gz",
        r"-i FIXED2 .*big\.nii\.gz.* is not on the grid of FIXED"),
    cli(R, "register-channel-moving-grid", "-i FIXED2 MOVING2 whose MOVING2 is on another grid",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -i fixed.nii.gz big.nii.gz",
        r"-i MOVING2 .* is not on the grid of MOVING"),
    cli(R, "register-weights-zero", "--weights 0,0 (the weights sum to 0)",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -i fixed.nii.gz moving.nii.gz "
        "--weights 0,0", "sum to 0; they must sum to more than 0"),
    cli(R, "register-weights-negative", "--weights 1,-0.5",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -i fixed.nii.gz moving.nii.gz "
        "--weights 1,-0.5", "weight #2 must be a finite number of 0 or more"),
    cli(R, "register-weights-count", "--weights 1,1,1 for two channels",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -i fixed.nii.gz moving.nii.gz "
        "--weights 1,1,1", "--weights gives 3 weights .* but there are 2 channels"),
    cli(R, "register-channel-metrics-count", "--channel-metrics mi for two channels",
        "register fixed.nii.gz moving.nii.gz -o out_ -t rigid -i fixed.nii.gz moving.nii.gz "
        "--channel-metrics mi", "--channel-metrics gives 1 metric .* but there are 2"),
    api(P, "py-register-channel-grid", "register(channels=[Channel(image on another grid, "
        "moving)])", lambda d: _register(d, channels=[_channel(d, "big.nii.gz")]),
        ValueError, r"channels\[0\]\.fixed is not on the grid of fixed"),
    api(P, "py-register-weights-zero", "register(weight=0, channels=[Channel(..., weight=0)])",
        lambda d: _register(d, weight=0, channels=[_channel(d, weight=0)]), ValueError,
        r"the channel weights weight=0, channels\[0\]\.weight=0 sum to 0"),
    api(P, "py-register-weight-negative", "register(channels=[Channel(..., weight=-1)])",
        lambda d: _register(d, channels=[_channel(d, weight=-1)]), ValueError,
        r"channels\[0\]\.weight must be a finite number of 0 or more"),
    cli(R, "register-initial-fixed-missing", "--initial-fixed-transform names a missing file",
        "register fixed.nii.gz moving.nii.gz -o o_ --initial-fixed-transform nosuch.mat",
        "--initial-fixed-transform: no such transform file"),
    cli(R, "register-initial-fixed-2d", "a 2D fixed-side initial transform for a 3D registration",
        "register fixed.nii.gz moving.nii.gz -o o_ --initial-fixed-transform affine2d.txt",
        "--initial-fixed-transform.*2D transform, expected 3D"),
    cli(R, "register-initial-fixed-form", "--initial-fixed-transform [FILE,2]",
        "register fixed.nii.gz moving.nii.gz -o o_ --initial-fixed-transform [affine.txt,2]",
        r"is not FILE, \[FILE,0\] or \[FILE,1\]"),
    api(P, "py-register-initial-fixed-missing", "register(initial_fixed_transform='nosuch.mat')",
        lambda d: _register(d, initial_fixed_transform=d / "nosuch.mat"), FileNotFoundError,
        "initial_fixed_transform: no such file"),
]



def _register_init(folder, init):
    import parareg

    return parareg.register(folder / "fixed.nii.gz", folder / "moving.nii.gz",
                            transform="rigid", initial_transform=init)


I = "robust starts: --init"
INIT: list[Case] = [
    cli(I, "register-init-unknown", "--init spiral (not a start parareg makes)",
        "register fixed.nii.gz moving.nii.gz -o o_ -t rigid --init spiral",
        "--init.*'spiral'.*moments.*search"),
    cli(I, "register-init-search-no-overlap", "--init search with a fixed mask in a corner and a "
        "moving mask at the centre: they meet at no start the search tries",
        "register big.nii.gz big.nii.gz -o o_ -t rigid --init search "
        "-x [mask_corner24.nii.gz,mask_centre24.nii.gz]",
        "overlap .*at none of .*starts.*rotations"),
    api(I + " (Python)", "register-init-python-unknown", "register(initial_transform='spiral')",
        lambda folder: _register_init(folder, "spiral"), FileNotFoundError,
        "spiral.*moments.*search"),
]


def _batch(*jobs):
    def call(folder):
        from parareg.population import register_many

        return register_many(jobs, out=folder / "batch_out")
    return call


def _job(name, fixed="fixed.nii.gz", moving="moving.nii.gz", **kwargs):
    from parareg.population import Job

    return Job(name, fixed, moving, **kwargs)


def _template(images=("fixed.nii.gz", "moving.nii.gz"), **kwargs):
    def call(folder):
        import parareg

        return parareg.template.build(list(images), out=folder / "template_out", **kwargs)
    return call


T = "parareg template (nothing runs, no cluster starts)"
TP = "population: many registrations and templates (Python)"
TEMPLATE: list[Case] = [
    cli(T, "template-one-image", "a single image", "template fixed.nii.gz -o tpl",
        "at least 2 images"),
    cli(T, "template-no-output", "no -o", "template fixed.nii.gz moving.nii.gz", "-o/--output"),
    cli(T, "template-mixed-dims", "a 3D and a 2D image",
        "template fixed.nii.gz img2d.nii.gz -o tpl", "img2d.nii.gz.* is 2D but.*3D"),
    cli(T, "template-missing-image", "an image that does not exist",
        "template fixed.nii.gz no_such.nii.gz -o tpl", "no such file.*no_such.nii.gz"),
    cli(T, "template-corrupt-image", "an image that is not NIfTI",
        "template fixed.nii.gz corrupt.nii.gz -o tpl", "corrupt.nii.gz"),
    cli(T, "template-iterations-0", "--iterations 0",
        "template fixed.nii.gz moving.nii.gz -o tpl --iterations 0", "--iterations"),
    cli(T, "template-workers-0", "--workers 0",
        "template fixed.nii.gz moving.nii.gz -o tpl --workers 0", "--workers"),
    cli(T, "template-gradient-step", "--gradient-step 1.5",
        "template fixed.nii.gz moving.nii.gz -o tpl --gradient-step 1.5", "--gradient-step"),
    api(TP, "batch-duplicate-names", "register_many with two jobs of one name",
        _batch(_job("a"), _job("a")), ValueError, "unique"),
    api(TP, "batch-unsafe-name", "a job named 'a/b' (names are folders)",
        _batch(_job("a/b")), ValueError, "file name"),
    api(TP, "batch-unknown-option", "a job with options={'metric': 'cc'}",
        _batch(_job("a", options={"metric": "cc"})), ValueError, "not an option"),
    api(TP, "batch-threads-option", "a job with options={'num_threads': 2} (the batch's)",
        _batch(_job("a", options={"num_threads": 2})), ValueError, "num_threads"),
    api(TP, "batch-mixed-dims", "a job of a 3D fixed and a 2D moving image",
        _batch(_job("a", moving="img2d.nii.gz")), ValueError, "same dimensionality"),
    api(TP, "batch-missing-image", "a job whose moving image does not exist",
        _batch(_job("a", moving="no_such.nii.gz")), FileNotFoundError, "no_such.nii.gz"),
    api(TP, "template-iterations-api", "template.build(iterations=0)",
        _template(iterations=0), ValueError, "iterations"),
    api(TP, "template-gradient-api", "template.build(gradient_step=0)",
        _template(gradient_step=0), ValueError, "gradient_step"),
    api(TP, "template-transform-api", "template.build(transform='bspline')",
        _template(transform="bspline"), ValueError, "transform"),
]

SG = "multi-atlas segmentation (parareg segment): refused before any registration"
SEG = "segment fixed.nii.gz -o seg.nii.gz"
SEGMENT: list[Case] = [
    cli(SG, "segment-atlas-2d", "a 2D atlas for a 3D target",
        f"{SEG} --atlases img2d.nii.gz --labels mask.nii.gz", "--atlases img2d.nii.gz is 2D"),
    cli(SG, "segment-atlas-unreadable", "an unreadable (corrupt) atlas",
        f"{SEG} --atlases corrupt.nii.gz --labels mask.nii.gz", "corrupt.nii.gz"),
    cli(SG, "segment-labels-missing", "an atlas without labels (2 --atlases, 1 --labels)",
        f"{SEG} --atlases moving.nii.gz fixed.nii.gz --labels mask.nii.gz",
        "2 --atlases but 1 --labels"),
    cli(SG, "segment-labels-file-missing", "a --labels file that does not exist",
        f"{SEG} --atlases moving.nii.gz --labels no_such_labels.nii.gz",
        "no such file.*no_such_labels.nii.gz"),
    cli(SG, "segment-labels-not-integer", "labels that are intensities (float noise)",
        f"{SEG} --atlases moving.nii.gz --labels moving.nii.gz", "--labels moving.nii.gz"),
    cli(SG, "segment-labels-other-grid", "labels on another grid than their atlas",
        f"{SEG} --atlases moving.nii.gz --labels mask_small.nii.gz", "atlas's grid"),
    cli(SG, "segment-fusion-unknown", "--fusion vote",
        f"{SEG} --atlases moving.nii.gz --labels mask.nii.gz --fusion vote", "--fusion"),
    cli(SG, "segment-patch-radius-0", "--patch-radius 0",
        f"{SEG} --atlases moving.nii.gz --labels mask.nii.gz --fusion jlf --patch-radius 0",
        "--patch-radius"),
    cli(SG, "segment-search-radius-negative", "--search-radius -1",
        f"{SEG} --atlases moving.nii.gz --labels mask.nii.gz --fusion jlf --search-radius=-1",
        "--search-radius"),
    cli(SG, "segment-beta-0", "--beta 0",
        f"{SEG} --atlases moving.nii.gz --labels mask.nii.gz --fusion jlf --beta 0", "--beta"),
    cli(SG, "segment-jlf-option-for-majority", "--patch-radius with --fusion majority",
        f"{SEG} --atlases moving.nii.gz --labels mask.nii.gz --patch-radius 3",
        "--patch-radius set joint label fusion"),
    cli(SG, "segment-output-not-nifti", "-o seg.png",
        "segment fixed.nii.gz -o seg.png --atlases moving.nii.gz --labels mask.nii.gz",
        "--output must end in .nii or .nii.gz"),
]

def _channel(folder, fixed="fixed.nii.gz", moving="moving.nii.gz", **kwargs):
    import parareg

    return parareg.Channel(_image(folder, fixed), _image(folder, moving), **kwargs)


CASES = (REGISTER + APPLY + BENCH + OTHER + PYTHON + RESUME + PARALLEL + LATER + INIT
         + TEMPLATE + SEGMENT)


# ----------------------------------------------------------------------------------------------
# running a case


@dataclass
class Outcome:
    status: int | str  #: exit status, or the exception's type name ("returned" if none)
    message: str  #: stderr of a command, str() of an exception
    error: type | None = None  #: the exception's type


def run_case(case: Case, folder: Path) -> Outcome:
    """Run ``case`` in ``folder``; never raises for the case's own failure."""
    old = os.getcwd()
    os.chdir(folder)
    try:
        if isinstance(case.call, tuple):
            from parareg.cli.main import main

            err, out = io.StringIO(), io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                try:
                    status = main(list(case.call))
                except SystemExit as exc:  # argparse's --help paths
                    status = exc.code
            return Outcome(status, err.getvalue())
        try:
            returned = case.call(folder)
        except BaseException as exc:  # noqa: BLE001 - the outcome is what is checked
            return Outcome(type(exc).__name__, str(exc), type(exc))
        return Outcome("returned", str(returned) if case.expect is None else "")
    finally:
        os.chdir(old)


def _clean(text: str, folder: Path) -> str:
    text = text.replace(str(folder) + os.sep, "").replace(str(folder), ".")
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    make_files(folder)
    return folder, run_all(folder)


def run_all(folder: Path) -> dict:
    """Every case's outcome, run in ``folder`` (which holds :func:`make_files`' files)."""
    from parareg.cli import _common

    # the one-line compile notice (printed once per process on a cold kernel cache) is not part
    # of any case's outcome: mark it as given, so the catalogue reads the same cold or warm
    given = _common._compile_noticed.is_set()
    _common._compile_noticed.set()
    try:
        return {case.id: run_case(case, folder) for case in CASES}
    finally:
        if not given:
            _common._compile_noticed.clear()


def test_catalogue_is_large_and_ids_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, outcomes):
    folder, results = outcomes
    outcome = results[case.id]
    if isinstance(case.expect, int):
        assert outcome.status == case.expect, outcome.message
        assert "Traceback" not in outcome.message
        lines = outcome.message.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("parareg: error: "), outcome.message
    elif case.expect is None:
        assert outcome.status == "returned", outcome
    else:
        assert outcome.error is not None and issubclass(outcome.error, case.expect), outcome
    assert re.search(case.match, _clean(outcome.message, folder)), outcome.message


# ----------------------------------------------------------------------------------------------
# the document

INTRO = """# Hostile inputs and what parareg does with them

Generated by `tests/test_bad_inputs.py`, which runs every case below and checks the outcome;
do not edit by hand (`PYTHONPATH=src python -m tests.test_bad_inputs --write-docs` rewrites it,
and a test fails when it is out of date).

Command lines run in a folder of tiny files (12x12x12 noise images, 8x8 bench subjects, masks,
ITK transform files); the message column is what parareg printed (commands: the one
`parareg: error:` line on stderr, exit status 2 and nothing written; Python: the exception).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: dict, folder: Path) -> str:
    lines = [INTRO]
    number = 0
    for area in dict.fromkeys(case.area for case in CASES):
        cases = [c for c in CASES if c.area == area]
        commands = isinstance(cases[0].call, tuple)
        lines += [f"## {area}", "",
                  "| # | hostile input | command | outcome | message |" if commands else
                  "| # | hostile input (Python) | outcome | message |",
                  "| ---: | :--- | :--- | :--- | :--- |" if commands else
                  "| ---: | :--- | :--- | :--- |"]
        for case in cases:
            number += 1
            outcome = results[case.id]
            message = _cell(_clean(outcome.message, folder).removeprefix("parareg: error: "))
            if commands:
                call = "`parareg " + " ".join(a if a else "''" for a in case.call) + "`"
                lines.append(f"| {number} | {_cell(case.what)} | {_cell(call)} | "
                             f"exit {outcome.status} | {message} |")
                continue
            status = "returns" if case.expect is None else f"`{outcome.status}`"
            if outcome.error is not None and outcome.error is not case.expect:
                status += f" (a `{case.expect.__name__}`)"
            lines.append(f"| {number} | {_cell(case.what)} | {status} | {message} |")
        lines.append("")
    return "\n".join(lines)


def test_doc_is_current(outcomes):
    folder, results = outcomes
    expected = render(results, folder)
    assert DOC.is_file() and DOC.read_text(encoding="utf-8") == expected, (
        "docs/bad-inputs.md is out of date: run "
        "PYTHONPATH=src python -m tests.test_bad_inputs --write-docs")


def write_docs() -> Path:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_files(folder)
        results = run_all(folder)
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(render(results, folder), encoding="utf-8")
    return DOC


if __name__ == "__main__":
    if "--write-docs" in sys.argv[1:]:
        print(write_docs())
    else:
        print(__doc__)
