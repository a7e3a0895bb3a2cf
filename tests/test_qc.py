"""QC pictures: checkerboard tiling, display orientation, PNG output for 2D and real 3D images,
errors, atomic writes and the optional matplotlib import."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import threading

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg import Image
from parareg.qc import _display_planes, checkerboard, jacobian_figure, qc_figure, qc_summary

from ._data import DATA

IXI012 = DATA / "ixi_2mm" / "t1" / "IXI012-HH-1211-T1_ds.nii.gz"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib (the 'bench' extra) is not installed")
needs_ixi012 = pytest.mark.skipif(not IXI012.is_file(), reason=f"{IXI012} is not present")


# --- helpers -------------------------------------------------------------------------------


def disc(shape=(64, 80), centre=(30.0, 42.0), radius=17.0):
    """A bright disc on a dark background with a little texture."""
    i, j = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    inside = (i - centre[0]) ** 2 + (j - centre[1]) ** 2 <= radius ** 2
    return (100.0 * inside + 10.0 * np.sin(i / 3.0) * np.cos(j / 5.0)).astype(np.float32)


def read_png(path):
    """Check the PNG signature and decode the picture as a float RGBA array."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    return imread(path)


def count_fold_pixels(rgba):
    """Pixels in the fold colour (#39ff14): bright green, which no other element uses."""
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    return int(np.count_nonzero((g > 0.9) & (r < 0.4) & (b < 0.3)))


def count_edge_pixels(rgba):
    """Pixels in the edge colour (1, 0.25, 0)."""
    r, g, b = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    return int(np.count_nonzero((r > 0.9) & (g > 0.1) & (g < 0.4) & (b < 0.1)))


def runs(line):
    """Lengths of the runs of equal values along a 1D boolean array."""
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(line)) + 1, [line.size]])
    return np.diff(bounds)


# --- checkerboard --------------------------------------------------------------------------


def test_checkerboard_matches_hand_tiling():
    fixed = np.full((8, 12), 1.0)
    warped = np.full((8, 12), 2.0)
    i, j = np.meshgrid(np.arange(8), np.arange(12), indexing="ij")
    expected = np.where((i // 2 + j // 3) % 2 == 0, 1.0, 2.0)   # 4 tiles of 2 x 3 pixels
    np.testing.assert_array_equal(checkerboard(fixed, warped, squares=4), expected)


@pytest.mark.parametrize("shape, squares", [((10, 7), 3), ((9, 13), 8), ((5, 6), 8),
                                            ((6, 9, 5), 4)])
def test_checkerboard_alternates_exactly(shape, squares):
    fixed = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    warped = -fixed - 1.0                       # every value says where and from which input
    out = checkerboard(fixed, warped, squares=squares)
    from_fixed = out >= 0
    np.testing.assert_array_equal(out, np.where(from_fixed, fixed, warped))
    assert from_fixed[(0,) * len(shape)]
    for axis, n in enumerate(shape):
        lines = np.moveaxis(from_fixed, axis, -1).reshape(-1, n)
        for line in lines:
            lengths = runs(line)
            assert lengths.size == min(squares, n)            # switches at every tile boundary
            assert lengths.max() - lengths.min() <= 1         # tiles as even as the size allows


def test_checkerboard_errors():
    with pytest.raises(ValueError, match=re.escape("fixed (4, 5) and warped (4, 6)")):
        checkerboard(np.zeros((4, 5)), np.zeros((4, 6)))
    with pytest.raises(ValueError, match="2D or 3D"):
        checkerboard(np.zeros(5), np.zeros(5))
    for squares in (1, 2.5, True):
        with pytest.raises(ValueError, match="squares must be an integer >= 2"):
            checkerboard(np.zeros((4, 4)), np.zeros((4, 4)), squares=squares)


# --- display geometry ----------------------------------------------------------------------


def test_planes_follow_closest_canonical_ras():
    data = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)
    vox2world = np.array([[0.0, 0.0, -2.0, 10.0],    # voxel k runs right-to-left, 2 mm
                          [3.0, 0.0, 0.0, -5.0],     # voxel i runs posterior-to-anterior, 3 mm
                          [0.0, -1.0, 0.0, 7.0],     # voxel j runs superior-to-inferior, 1 mm
                          [0.0, 0.0, 0.0, 1.0]])
    canonical = nib.as_closest_canonical(nib.Nifti1Image(data, vox2world))
    canon = canonical.get_fdata()
    point = np.array([1, 2, 3, 1.0])
    c = np.rint(np.linalg.solve(canonical.affine, vox2world @ point)[:3]).astype(int)
    spacing = np.sqrt((canonical.affine[:3, :3] ** 2).sum(axis=0))   # along R, A, S

    planes = _display_planes([data], vox2world, slices=(1, 2, 3))
    (axial, (a,), a_aspect), (coronal, (cor,), c_aspect), (sagittal, (s,), s_aspect) = planes
    np.testing.assert_array_equal(a, canon[:, :, c[2]])
    np.testing.assert_array_equal(cor, canon[:, c[1], :])
    np.testing.assert_array_equal(s, canon[c[0], :, :])
    assert (a_aspect, c_aspect, s_aspect) == pytest.approx(
        (spacing[1] / spacing[0], spacing[2] / spacing[0], spacing[2] / spacing[1]))
    assert axial.startswith("axial") and axial.endswith("j = 2")     # j runs along S
    assert coronal.endswith("i = 1") and sagittal.endswith("k = 3")


def test_planes_2d_and_default_centre():
    data = np.arange(12.0).reshape(3, 4)
    flip_rows = np.array([[-1.0, 0.0, 5.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    ((label, (plane,), aspect),) = _display_planes([data], flip_rows)
    np.testing.assert_array_equal(plane, data[::-1])
    assert aspect == pytest.approx(2.0)
    volume = np.random.default_rng(2).random((5, 6, 7))
    axial = _display_planes([volume], np.eye(4))[0][1][0]
    np.testing.assert_array_equal(axial, volume[:, :, 3])


# --- figures -------------------------------------------------------------------------------


@needs_matplotlib
@needs_ixi012
def test_qc_figure_real_3d(tmp_path):
    fixed = parareg.load(IXI012)
    warped = fixed.with_data(np.roll(fixed.data, 4, axis=1))
    jacobian = np.ones(fixed.shape, dtype=np.float32)
    centre = tuple(n // 2 for n in fixed.shape)
    jacobian[tuple(slice(c - 6, c + 6) for c in centre)] = -0.5    # a fold through all planes
    path = tmp_path / "qc.png"
    out = qc_figure(fixed, warped, path, jacobian=jacobian, title="IXI012 vs itself shifted",
                    dpi=60)
    assert out == path
    picture = read_png(path)
    height, width, channels = picture.shape
    assert channels == 4 and height > 100 and width > 100
    assert width > height                                  # 5 columns, 3 rows
    assert count_fold_pixels(picture) > 0
    assert count_edge_pixels(picture) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qc.png"]


@needs_matplotlib
def test_qc_figure_2d_synthetic(tmp_path):
    fixed = Image(disc(), np.diag([1.0, 1.5, 1.0]))
    warped = fixed.with_data(disc(centre=(33.0, 40.0)))
    path = qc_figure(fixed, warped, tmp_path / "qc2d.png", squares=6, dpi=60)
    picture = read_png(path)
    height, width, channels = picture.shape
    assert channels == 4 and height > 100 and width > 100
    assert width > 2 * height                              # one row of 4 panels
    assert count_edge_pixels(picture) > 0
    assert count_fold_pixels(picture) == 0                 # no jacobian column


@needs_matplotlib
def test_negative_jacobian_renders_and_folds_are_highlighted(tmp_path):
    fixed, warped = disc(), disc(centre=(32.0, 40.0))
    smooth = np.ones(fixed.shape, dtype=np.float32)
    smooth[::2] = 1.6
    folded = smooth.copy()
    folded[20:35, 30:45] = -0.3
    folded[40, 10] = 0.0
    plain = read_png(qc_figure(fixed, warped, tmp_path / "smooth.png", jacobian=smooth, dpi=60))
    with_folds = read_png(qc_figure(fixed, warped, tmp_path / "folded.png", jacobian=folded,
                                    dpi=60))
    assert count_fold_pixels(plain) == 0
    assert count_fold_pixels(with_folds) > 50
    standalone = read_png(jacobian_figure(folded, tmp_path / "jac.png", dpi=60))
    assert count_fold_pixels(standalone) > 50
    assert min(standalone.shape[:2]) > 100


@needs_matplotlib
def test_jacobian_figure_3d_uses_image_orientation(tmp_path):
    jac = Image(np.full((20, 24, 18), 1.2), np.diag([-2.0, 2.0, 2.5, 1.0]))
    jac.data[5:15, 6:18, 4:14] = -1.0
    picture = read_png(jacobian_figure(jac, tmp_path / "jac3d.png", title="SyN", dpi=60))
    assert picture.shape[1] > picture.shape[0] > 100      # three panels in a row
    assert count_fold_pixels(picture) > 50


@needs_matplotlib
def test_figures_from_threads_match_serial(tmp_path):
    images = [(disc(), disc(centre=(30.0 + k, 40.0))) for k in range(3)]
    serial = [read_png(qc_figure(f, w, tmp_path / f"s{k}.png", dpi=50))
              for k, (f, w) in enumerate(images)]
    errors = []

    def draw(k):
        try:
            f, w = images[k]
            qc_figure(f, w, tmp_path / f"t{k}.png", dpi=50)
        except Exception as exc:                              # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in range(3):
        np.testing.assert_array_equal(read_png(tmp_path / f"t{k}.png"), serial[k])


def test_qc_summary():
    x = disc()
    assert qc_summary(x, 3.0 * x - 2.0) == "NCC(fixed, warped) = 1.0000"
    assert qc_summary(x, np.ones_like(x)) == "NCC(fixed, warped) = n/a"
    jac = np.ones(x.shape)
    jac[:2, :5] = -1.0
    summary = qc_summary(x, -x, jacobian=jac)
    assert summary.startswith("NCC(fixed, warped) = -1.0000 | det J in [-1, 1], 10 folded")


# --- errors and atomic writes --------------------------------------------------------------


@needs_matplotlib
def test_errors(tmp_path):
    a, b = np.zeros((6, 7)), np.zeros((6, 8))
    with pytest.raises(ValueError, match=re.escape("fixed shape (6, 7) and warped shape (6, 8)")):
        qc_figure(a, b, tmp_path / "x.png")
    with pytest.raises(ValueError, match="2D or 3D"):
        qc_figure(np.zeros((3, 4, 5, 2)), np.zeros((3, 4, 5, 2)), tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        qc_figure(a, a, tmp_path / "missing" / "x.png")
    with pytest.raises(ValueError, match=re.escape("jacobian shape (6, 8) and fixed shape (6, 7)")):
        qc_figure(a, a, tmp_path / "x.png", jacobian=b)
    with pytest.raises(ValueError, match="3D images only"):
        qc_figure(a, a, tmp_path / "x.png", slices=(1, 2, 3))
    cube = np.zeros((4, 5, 6))
    with pytest.raises(ValueError, match="inside the grid"):
        qc_figure(cube, cube, tmp_path / "x.png", slices=(1, 5, 3))
    with pytest.raises(ValueError, match="path must end in one of"):
        qc_figure(a, a, tmp_path / "x.xyz")
    shifted = Image(a, [[1.0, 0.0, 3.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="different vox2world"):
        qc_figure(Image(a, np.eye(3)), shifted, tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        jacobian_figure(a, tmp_path / "missing" / "j.png")
    assert list(tmp_path.iterdir()) == []


@needs_matplotlib
def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "qc.png"
    path.write_bytes(b"old picture")

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(PNG_MAGIC + b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        qc_figure(disc(), disc(), path, jacobian=np.ones((64, 80)))
    with pytest.raises(OSError, match="disk full"):
        jacobian_figure(np.ones((64, 80)), tmp_path / "jac.png")
    assert path.read_bytes() == b"old picture"
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]


def test_missing_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)   # makes the import fail
    with pytest.raises(ImportError, match=re.escape("pip install 'parareg[bench]'")):
        qc_figure(disc(), disc(), tmp_path / "qc.png")
    assert list(tmp_path.iterdir()) == []


def test_import_does_not_load_matplotlib():
    code = "import sys, parareg.qc; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
