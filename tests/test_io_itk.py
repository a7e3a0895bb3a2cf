"""ITK/ANTs transform files: affine .mat/.txt and displacement-field NIfTI, LPS <-> RAS.

Known answers on synthetic files; agreement with ANTs (antspyx) where it is
installed: ANTs' own reading of every parameterisation, and ANTs resampling
versus parareg resampling on real images in both directions (ANTs-written
files read by parareg, parareg-written files applied by ANTs).
"""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from scipy.io import loadmat, savemat

import parareg
from parareg.io.itk import (
    LINEAR_TRANSFORM_TYPES,
    affine_map_from_itk,
    affine_map_to_itk,
    ras_to_lps,
    read_affine,
    write_affine,
)
from parareg.io.itk_warp import read_warp, write_warp

from ._data import DATA, IXI_T1, MINDBOGGLE, needs_data

OPEN_MS = DATA / "multimodal" / "open_ms" / "patient01"

F3 = np.diag([-1.0, -1.0, 1.0, 1.0])


def random_affine(ndim, seed=0, *, angle=0.2, shift=6.0):
    """A well-conditioned, sheared, rotated (about every axis) RAS affine."""
    rng = np.random.default_rng(seed)
    m = np.eye(ndim + 1)
    skew = rng.uniform(-angle, angle, (ndim, ndim))
    m[:ndim, :ndim] = np.eye(ndim) + skew
    m[:ndim, ndim] = rng.uniform(-shift, shift, ndim)
    return m


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def write_text(path, *blocks):
    lines = ["#Insight Transform File V1.0"]
    for i, (name, params, fixed) in enumerate(blocks):
        lines += [f"#Transform {i}", f"Transform: {name}",
                  "Parameters: " + " ".join(repr(float(v)) for v in params),
                  "FixedParameters: " + " ".join(repr(float(v)) for v in fixed)]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- round trips and file layout -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mat", ".txt", ".tfm"])
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("center", [None, "given"])
def test_affine_round_trip(tmp_path, suffix, ndim, center):
    m = random_affine(ndim, seed=ndim)
    c = None if center is None else np.linspace(-30.5, 17.25, ndim)
    path = write_affine(m, tmp_path / f"t{suffix}", center=c)
    back = read_affine(path)
    assert back.shape == (ndim + 1, ndim + 1)
    np.testing.assert_allclose(back, m, rtol=0, atol=1e-10)
    assert read_affine(path, ndim=ndim).shape == back.shape
    assert [p.name for p in tmp_path.iterdir()] == [f"t{suffix}"]  # no temporary left


def test_written_files_are_lps_itk(tmp_path):
    # +1 mm towards Right, +2 towards Anterior, +3 towards Superior (RAS)
    m = np.eye(4)
    m[:3, 3] = [1.0, 2.0, 3.0]
    text = write_affine(m, tmp_path / "t.txt").read_text().splitlines()
    assert text[0] == "#Insight Transform File V1.0"
    assert "Transform: AffineTransform_double_3_3" in text
    params = [float(v) for v in text[3].split(":")[1].split()]
    assert params == [1, 0, 0, 0, 1, 0, 0, 0, 1, -1.0, -2.0, 3.0]  # LPS translation
    mat = loadmat(str(write_affine(m, tmp_path / "t.mat", center=[10.0, 20.0, 30.0])))
    assert mat["AffineTransform_double_3_3"].shape == (12, 1)
    assert mat["fixed"].ravel().tolist() == [-10.0, -20.0, 30.0]  # the center, in LPS
    np.testing.assert_allclose(mat["AffineTransform_double_3_3"].ravel()[9:], [-1, -2, 3])
    mat2 = loadmat(str(write_affine(np.eye(3), tmp_path / "t2.mat")))
    assert mat2["AffineTransform_double_2_2"].shape == (6, 1)


def test_ras_to_lps_conjugates():
    m = random_affine(3, seed=4)
    np.testing.assert_allclose(ras_to_lps(m), F3 @ m @ F3)
    np.testing.assert_allclose(ras_to_lps(ras_to_lps(m)), m)
    m2 = random_affine(2, seed=4)
    f2 = np.diag([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(ras_to_lps(m2), f2 @ m2 @ f2)


# --- known parameterisations (no ANTs) -----------------------------------------------------


def test_matrix_offset_with_center(tmp_path):
    a = np.array([[1.01, 0.02, -0.03], [0.01, 0.99, 0.04], [-0.02, 0.03, 1.02]])
    t = np.array([1.5, -2.0, 0.75])
    c = np.array([10.0, -20.0, 5.0])
    path = write_text(tmp_path / "t.txt", ("MatrixOffsetTransformBase_double_3_3",
                                           [*a.ravel(), *t], c))
    m_ras = read_affine(path)
    x_lps = np.array([3.0, 4.0, -7.0])
    y_lps = a @ (x_lps - c) + c + t  # ITK's definition
    y_ras = m_ras[:3, :3] @ (F3[:3, :3] @ x_lps) + m_ras[:3, 3]
    np.testing.assert_allclose(F3[:3, :3] @ y_ras, y_lps, atol=1e-12)


def test_euler_and_translation_known_answers(tmp_path):
    # Euler3D: 90 degrees about z (LPS) is also 90 degrees about z in RAS (F commutes with it)
    path = write_text(tmp_path / "e.txt", ("Euler3DTransform_double_3_3",
                                           [0, 0, math.pi / 2, 1, 2, 3], [0, 0, 0, 0]))
    m = read_affine(path)
    np.testing.assert_allclose(m[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(m[:3, 3], [-1, -2, 3], atol=1e-12)
    # about x: LPS rotation by a is RAS rotation by -a
    path = write_text(tmp_path / "x.txt", ("Euler3DTransform_double_3_3",
                                           [0.3, 0, 0, 0, 0, 0], [0, 0, 0]))
    m = read_affine(path)
    c, s = math.cos(0.3), math.sin(0.3)
    np.testing.assert_allclose(m[:3, :3], [[1, 0, 0], [0, c, s], [0, -s, c]], atol=1e-12)
    path = write_text(tmp_path / "t.txt", ("TranslationTransform_float_2_2", [4, -5], []))
    np.testing.assert_allclose(read_affine(path, ndim=2), [[1, 0, -4], [0, 1, 5], [0, 0, 1]])


def test_composite_is_applied_last_first(tmp_path):
    a = random_affine(3, seed=1)
    b = random_affine(3, seed=2)
    la, lb = ras_to_lps(a), ras_to_lps(b)
    path = write_text(
        tmp_path / "c.txt", ("CompositeTransform_double_3_3", [], []),
        ("AffineTransform_double_3_3", [*la[:3, :3].ravel(), *la[:3, 3]], [0, 0, 0]),
        ("AffineTransform_double_3_3", [*lb[:3, :3].ravel(), *lb[:3, 3]], [0, 0, 0]))
    np.testing.assert_allclose(read_affine(path), a @ b, atol=1e-12)


def test_every_registered_type_reads_identity(tmp_path):
    """Each parameterisation's identity parameters give the identity matrix."""
    identity = {
        "AffineTransform": lambda n: [*np.eye(n).ravel(), *[0] * n],
        "MatrixOffsetTransformBase": lambda n: [*np.eye(n).ravel(), *[0] * n],
        "CenteredAffineTransform": lambda n: [*np.eye(n).ravel(), *[5] * n, *[0] * n],
        "Rigid3DTransform": lambda n: [*np.eye(3).ravel(), 0, 0, 0],
        "TranslationTransform": lambda n: [0] * n,
        "IdentityTransform": lambda n: [],
        "ScaleTransform": lambda n: [1] * n,
        "ScaleLogarithmicTransform": lambda n: [0] * n,
        "Rigid2DTransform": lambda n: [0, 0, 0],
        "Euler2DTransform": lambda n: [0, 0, 0],
        "Similarity2DTransform": lambda n: [1, 0, 0, 0],
        "CenteredRigid2DTransform": lambda n: [0, 3, 4, 0, 0],
        "CenteredSimilarity2DTransform": lambda n: [1, 0, 3, 4, 0, 0],
        "Euler3DTransform": lambda n: [0] * 6,
        "CenteredEuler3DTransform": lambda n: [0, 0, 0, 1, 2, 3, 0, 0, 0],
        "VersorTransform": lambda n: [0, 0, 0],
        "VersorRigid3DTransform": lambda n: [0] * 6,
        "Similarity3DTransform": lambda n: [0] * 6 + [1],
        "ScaleVersor3DTransform": lambda n: [0] * 6 + [1, 1, 1],
        "QuaternionRigidTransform": lambda n: [0, 0, 0, 1, 0, 0, 0],
    }
    assert set(identity) == set(LINEAR_TRANSFORM_TYPES)
    for base, (dims, _, n_fixed, _) in LINEAR_TRANSFORM_TYPES.items():
        for n in dims:
            fixed = [7.0] * max(n_fixed(n))
            path = write_text(tmp_path / f"{base}{n}.txt",
                              (f"{base}_double_{n}_{n}", identity[base](n), fixed))
            np.testing.assert_allclose(read_affine(path), np.eye(n + 1), atol=1e-12,
                                       err_msg=base)


# --- real reference transforms -------------------------------------------------------------


@needs_data
def test_open_ms_transforms_load():
    files = sorted(OPEN_MS.glob("*.txt"))
    assert len(files) == 6
    for path in files:
        m = read_affine(path, ndim=3)
        assert np.abs(m[:3, :3] - np.eye(3)).max() < 0.07, path.name
        assert np.abs(m[:3, 3]).max() < 10.0, path.name


@needs_data
@pytest.mark.parametrize("study", ["study1", "study2"])
@pytest.mark.parametrize("modality", ["T1W", "T2W"])
def test_open_ms_intrastudy_maps_flair_points_to_t1(study, modality):
    """``*_T1W_intrastudy_to_FLAIR.txt`` is the fixed=FLAIR -> moving=T1W point map.

    So ``resample(t1, flair, affine=read_affine(file))`` puts T1W on FLAIR: it
    beats the identity, which beats the inverse matrix, by Mattes MI (lower is
    better). Margins are small (the transforms are <= 3 mm) but the order held
    for dense sampling and every seed tried.
    """
    from parareg.metrics import get_affine_metric

    flair = parareg.load(OPEN_MS / f"{study}_FLAIR.nii.gz")
    other = parareg.load(OPEN_MS / f"{study}_{modality}.nii.gz")
    m = read_affine(OPEN_MS / f"{study}_{modality}_intrastudy_to_FLAIR.txt")
    metric = get_affine_metric("mi", bins=32)
    state = metric.setup(flair, other, sampling=0.25, seed=0)
    with_file = metric.value(state, m)
    identity = metric.value(state, np.eye(4))
    inverse = metric.value(state, np.linalg.inv(m))
    assert with_file < identity < inverse, (with_file, identity, inverse)


# --- errors --------------------------------------------------------------------------------


def test_missing_file_names_path(tmp_path):
    for reader in (read_affine, read_warp):
        with pytest.raises(FileNotFoundError, match="nope"):
            reader(tmp_path / "nope.mat")


@pytest.mark.parametrize("text,match", [
    ("#Insight Transform File V1.0\nTransform: BSplineTransform_double_3_3\nParameters: 1\n"
     "FixedParameters: 1\n", "BSplineTransform_double_3_3"),
    ("#Insight Transform File V1.0\nTransform: FancyTransform_double_3_3\nParameters: 1\n",
     "FancyTransform_double_3_3"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\n"
     "Parameters: 1 0 0 0 1 0 0 0 1 0 0\nFixedParameters: 0 0 0\n", "12 parameters"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\n"
     "Parameters: 1 0 0 0 1 0 0 0 1 0 zero 0\n", "line 3"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\n"
     "Paramters: 1 0 0 0 1 0 0 0 1 0 0 0\n", "Paramters"),
    ("Parameters: 1 0 0 0 1 0 0 0 1 0 0 0\n", "before any 'Transform:'"),
    ("hello\n", "line 1"),
    ("#Insight Transform File V1.0\n", "no 'Transform:'"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_3_2\n", "3D to 2D"),
    ("#Insight Transform File V1.0\nTransform: Euler3DTransform_double_2_2\n"
     "Parameters: 0 0 0\n", "only in 3D"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_3_3\n"
     "Parameters: 0 0 0 0 1 0 0 0 1 0 0 0\nFixedParameters: 0 0 0\n", "not invertible"),
    ("#Insight Transform File V1.0\nTransform: AffineTransform_double_2_2\nParameters: "
     "1 0 0 1 0 0\nTransform: AffineTransform_double_2_2\nParameters: 1 0 0 1 0 0\n",
     "2 transforms"),
])
def test_bad_text_files(tmp_path, text, match):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_affine(path)


def test_bad_mat_and_suffix_and_dimension(tmp_path):
    garbage = tmp_path / "g.mat"
    garbage.write_bytes(b"\x00\x01not a matlab file at all" * 10)
    with pytest.raises(ValueError, match="g.mat"):
        read_affine(garbage)
    two = tmp_path / "two.mat"
    savemat(str(two), {"AffineTransform_double_3_3": np.zeros((12, 1)),
                       "Other_double_3_3": np.zeros((12, 1))}, format="4")
    with pytest.raises(ValueError, match="one transform variable"):
        read_affine(two)
    unknown = tmp_path / "u.mat"
    savemat(str(unknown), {"WeirdTransform_double_3_3": np.zeros((12, 1)),
                           "fixed": np.zeros((3, 1))}, format="4")
    with pytest.raises(ValueError, match="WeirdTransform_double_3_3"):
        read_affine(unknown)
    with pytest.raises(ValueError, match=r"\.mat"):
        read_affine(write_affine(np.eye(4), tmp_path / "a.txt").rename(tmp_path / "a.xfm"))
    with pytest.raises(ValueError, match="expected 2D"):
        read_affine(write_affine(np.eye(4), tmp_path / "b.mat"), ndim=2)
    with pytest.raises(ValueError, match="must end in"):
        write_affine(np.eye(4), tmp_path / "c.h5")


def test_write_affine_rejects_bad_matrices(tmp_path):
    singular = np.eye(4)
    singular[2, 2] = 0.0
    with pytest.raises(ValueError, match="not invertible"):
        write_affine(singular, tmp_path / "s.mat")
    with pytest.raises(ValueError, match="4x4"):
        write_affine(np.eye(5), tmp_path / "s.mat")
    with pytest.raises(ValueError, match="center"):
        write_affine(np.eye(4), tmp_path / "s.mat", center=[1.0, 2.0])
    assert list(tmp_path.iterdir()) == []


# --- AffineMap conversion ------------------------------------------------------------------


def test_affine_map_round_trip(tmp_path):
    fixed = parareg.Image(np.zeros((10, 12, 8)), np.diag([2.0, 1.5, 3.0, 1.0]))
    moving = parareg.Image(np.zeros((9, 9, 9)), np.diag([-1.0, 1.0, 1.0, 1.0]))
    amap = parareg.AffineMap(random_affine(3, seed=9), fixed=fixed, moving=moving)
    path = affine_map_to_itk(amap, tmp_path / "0GenericAffine.mat")
    back = affine_map_from_itk(path, fixed=fixed, moving=moving)
    np.testing.assert_allclose(back.matrix, amap.matrix, atol=1e-10)
    assert back.fixed_grid.shape == fixed.shape and back.moving_grid.shape == moving.shape
    # the default center is the fixed grid's center (RAS), stored in LPS
    center_ras = np.array([9.0, 8.25, 10.5])
    np.testing.assert_allclose(loadmat(str(path))["fixed"].ravel(),
                               F3[:3, :3] @ center_ras)
    with pytest.raises(TypeError):
        affine_map_to_itk(np.eye(4), tmp_path / "x.mat")


# --- displacement fields -------------------------------------------------------------------


def smooth_field(shape, seed=0, amplitude=4.0):
    rng = np.random.default_rng(seed)
    ndim = len(shape)
    f = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), 4.0, mode="wrap")
                  for _ in range(ndim)], axis=-1)
    return (f * (amplitude / np.abs(f).max())).astype(np.float32)


@pytest.mark.parametrize("ndim", [2, 3])
def test_warp_round_trip_and_layout(tmp_path, ndim):
    shape = (11, 9, 7)[:ndim]
    vox2world = np.diag([-1.5, 2.0, 1.25, 1.0][-ndim - 1:])
    vox2world[:ndim, ndim] = [30.5, -12.0, 8.0][:ndim]
    field = smooth_field(shape, seed=ndim)
    path = write_warp(field, vox2world, tmp_path / "1Warp.nii.gz")
    back, back_v2w = read_warp(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, field)
    np.testing.assert_array_equal(back_v2w, vox2world)
    raw = nib.load(str(path))
    assert int(raw.header["intent_code"]) == 1007
    data = np.asarray(raw.dataobj)
    if ndim == 3:
        assert data.shape == (*shape, 1, 3)
        np.testing.assert_array_equal(data[:, :, :, 0, :], field * [-1, -1, 1])
    else:
        assert data.shape == (*shape, 1, 1, 2)
        np.testing.assert_array_equal(data[:, :, 0, 0, :], -field)
    assert [p.name for p in tmp_path.iterdir()] == ["1Warp.nii.gz"]


def test_read_warp_4d_and_reference_checks(tmp_path):
    field = smooth_field((8, 7, 6))
    v2w = np.diag([2.0, 2.0, 2.0, 1.0])
    four_d = tmp_path / "w4.nii.gz"
    nib.save(nib.Nifti1Image(field * np.float32([-1, -1, 1]), v2w), four_d)
    back, _ = read_warp(four_d, reference=parareg.Image(np.zeros((8, 7, 6)), v2w))
    np.testing.assert_array_equal(back, field)
    path = write_warp(field, v2w, tmp_path / "w.nii.gz")
    with pytest.raises(ValueError, match="shape"):
        read_warp(path, reference=parareg.Image(np.zeros((8, 7, 5)), v2w))
    shifted = v2w.copy()
    shifted[0, 3] = 1.0
    with pytest.raises(ValueError, match="vox2world"):
        read_warp(path, reference=parareg.Image(np.zeros((8, 7, 6)), shifted))
    scalar = tmp_path / "s.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 7, 6), np.float32), v2w), scalar)
    with pytest.raises(ValueError, match="displacement field"):
        read_warp(scalar)
    four = tmp_path / "c4.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 7, 6, 1, 4), np.float32), v2w), four)
    with pytest.raises(ValueError, match="4 components"):
        read_warp(four)
    with pytest.raises(ValueError, match=r"\(X, Y, Z, 3\)"):
        write_warp(field[:, :, 0, :2], v2w, tmp_path / "x.nii.gz")
    with pytest.raises(ValueError, match=r"\(8, 7, 6, 3\)"):
        write_warp(field[..., :2], v2w, tmp_path / "x.nii.gz")
    with pytest.raises(ValueError, match="nii"):
        write_warp(field, v2w, tmp_path / "x.mat")
    bad = field.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_warp(bad, v2w, tmp_path / "x.nii.gz")


# --- agreement with ANTs -------------------------------------------------------------------


def ants_point(tx, point_lps):
    return np.asarray(tx.apply_to_point(tuple(float(v) for v in point_lps)))


def assert_same_map(tx, m_ras, ndim, seed=0):
    """``tx`` (ANTs, LPS) and ``m_ras`` (parareg, RAS) map the same physical points."""
    flip = np.diag([-1.0, -1.0, 1.0][:ndim])
    rng = np.random.default_rng(seed)
    for point in rng.uniform(-80, 80, (4, ndim)):
        expected_lps = ants_point(tx, point)
        got_ras = m_ras[:ndim, :ndim] @ (flip @ point) + m_ras[:ndim, ndim]
        # antspyx rounds parameters and mapped points to float32
        np.testing.assert_allclose(flip @ got_ras, expected_lps, rtol=0, atol=2e-4)


_C, _S = math.cos(0.3), math.sin(0.3)
ROTATION = (np.array([[_C, -_S, 0], [_S, _C, 0], [0, 0, 1]])
            @ np.array([[1, 0, 0], [0, _C, -_S], [0, _S, _C]]))

ANTS_CREATED = {  # type: (ndim, parameters, fixed parameters)
    "AffineTransform": (3, [1.05, 0.1, -0.08, 0.05, 0.93, 0.12, -0.1, 0.07, 1.1, 4, -6, 3],
                        [10, -20, 30]),
    "Euler3DTransform": (3, [0.2, -0.3, 0.4, 4, -6, 3], [10, -20, 30]),
    "Similarity3DTransform": (3, [0.1, -0.2, 0.15, 4, -6, 3, 1.1], [10, -20, 30]),
    "QuaternionRigidTransform": (3, [*(np.array([0.1, -0.2, 0.3, 0.9]) /
                                       np.linalg.norm([0.1, -0.2, 0.3, 0.9])), 4, -6, 3],
                                 [10, -20, 30]),
    "CenteredEuler3DTransform": (3, [0.2, -0.3, 0.4, 10, -20, 30, 4, -6, 3], []),
    "AffineTransform2": (2, [1.05, 0.1, -0.08, 0.93, 4, -6], [10, -20]),
    "Euler2DTransform": (2, [0.3, 4, -6], [10, -20]),
    "Rigid2DTransform": (2, [0.3, 4, -6], [10, -20]),
    "Similarity2DTransform": (2, [1.1, 0.3, 4, -6], [10, -20]),
    "CenteredRigid2DTransform": (2, [0.3, 10, -20, 4, -6], []),
    "CenteredSimilarity2DTransform": (2, [1.1, 0.3, 10, -20, 4, -6], []),
}


@pytest.mark.parametrize("name", sorted(ANTS_CREATED))
@pytest.mark.parametrize("suffix", [".mat", ".txt"])
def test_ants_written_parameterisations(tmp_path, name, suffix):
    ants = pytest.importorskip("ants")
    ndim, params, fixed = ANTS_CREATED[name]
    kind = name.rstrip("2")
    tx = ants.create_ants_transform(transform_type=kind, precision="double", dimension=ndim)
    if fixed:
        tx.set_fixed_parameters(np.asarray(fixed, dtype=np.float64))
    tx.set_parameters(np.asarray(params, dtype=np.float64))
    path = str(tmp_path / f"t{suffix}")
    ants.write_transform(tx, path)
    if suffix == ".txt":
        assert f"{kind}_double_{ndim}_{ndim}" in open(path).read()
    m = read_affine(path, ndim=ndim)
    assert_same_map(tx, m, ndim)


@pytest.mark.parametrize("name,ndim,params,fixed", [
    ("VersorRigid3DTransform", 3, [0.1, -0.2, 0.15, 4, -6, 3], [10, -20, 30]),
    ("VersorTransform", 3, [0.1, -0.2, 0.15], [10, -20, 30]),
    ("ScaleVersor3DTransform", 3, [0.1, -0.2, 0.15, 4, -6, 3, 1.1, 0.9, 1.2], [10, -20, 30]),
    ("TranslationTransform", 3, [4, -6, 3], []),
    ("ScaleTransform", 3, [1.1, 0.9, 1.2], [10, -20, 30]),
    ("ScaleLogarithmicTransform", 3, [0.1, -0.1, 0.2], [10, -20, 30]),
    # ITK wants FixedParameters here too, but the center in Parameters wins
    ("CenteredAffineTransform", 3, [1.05, 0.1, -0.08, 0.05, 0.93, 0.12, -0.1, 0.07, 1.1,
                                    10, -20, 30, 4, -6, 3], [1, 2, 3]),
    ("CenteredEuler3DTransform", 3, [0.2, -0.3, 0.4, 10, -20, 30, 4, -6, 3], [1, 2, 3, 0]),
    ("CenteredRigid2DTransform", 2, [0.3, 10, -20, 4, -6], [1, 2]),
    ("CenteredSimilarity2DTransform", 2, [1.1, 0.3, 10, -20, 4, -6], [1, 2]),
    ("Rigid3DTransform", 3, [*ROTATION.ravel(), 4, -6, 3], [10, -20, 30]),
    ("QuaternionRigidTransform", 3, [0.2, -0.4, 0.6, 1.8, 4, -6, 3], [10, -20, 30]),  # |q| != 1
    ("MatrixOffsetTransformBase", 3, [1.05, 0.1, -0.08, 0.05, 0.93, 0.12, -0.1, 0.07, 1.1,
                                      4, -6, 3], [10, -20, 30]),
    ("Euler3DTransform", 3, [0.2, -0.3, 0.4, 4, -6, 3], [10, -20, 30, 1]),  # ComputeZYX
])
def test_ants_reads_like_parareg(tmp_path, name, ndim, params, fixed):
    """Hand-written files (types or values antspyx cannot create): ITK reads the truth."""
    ants = pytest.importorskip("ants")
    path = write_text(tmp_path / "t.txt", (f"{name}_double_{ndim}_{ndim}", params, fixed))
    try:
        tx = ants.read_transform(str(path), precision="double")
    except Exception as exc:  # an ITK build without this type registered
        pytest.skip(f"ANTs cannot read {name}: {exc}")
    assert_same_map(tx, read_affine(path), ndim)


def test_ants_composite(tmp_path):
    ants = pytest.importorskip("ants")
    txs = []
    for seed in (1, 2):
        m = ras_to_lps(random_affine(3, seed=seed))
        tx = ants.create_ants_transform(transform_type="AffineTransform", precision="double",
                                        dimension=3)
        tx.set_parameters(np.concatenate([m[:3, :3].ravel(), m[:3, 3]]))
        txs.append(tx)
    composite = ants.compose_ants_transforms(txs)
    path = str(tmp_path / "c.txt")
    ants.write_transform(composite, path)
    assert "CompositeTransform" in open(path).read()
    assert_same_map(composite, read_affine(path), 3)


@pytest.fixture(scope="module")
def ixi_pair():
    if len(IXI_T1) < 2:
        pytest.skip("../shared/data/ixi_2mm is not present")
    return IXI_T1[0], IXI_T1[1]


@pytest.fixture(scope="module")
def mindboggle_pair():
    if len(MINDBOGGLE) < 3:
        pytest.skip("../shared/data/mindboggle_2d is not present")
    return MINDBOGGLE[0], MINDBOGGLE[1]


def inside_moving(fixed, moving, affine, field=None, margin=1.0):
    """Fixed voxels whose sample point lies at least ``margin`` voxels inside ``moving``.

    ITK's linear interpolator also samples up to half a voxel beyond the
    moving grid (parareg gives 0 there), so the two agree exactly only inside.
    """
    ndim = fixed.ndim
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in fixed.shape], indexing="ij"), axis=-1)
    world = idx @ fixed.vox2world[:ndim, :ndim].T + fixed.vox2world[:ndim, ndim]
    if field is not None:
        world = world + field
    world = world @ affine[:ndim, :ndim].T + affine[:ndim, ndim]
    vox = (world - moving.vox2world[:ndim, ndim]) @ np.linalg.inv(moving.vox2world[:ndim, :ndim]).T
    return np.all((vox >= margin) & (vox <= np.array(moving.shape) - 1 - margin), axis=-1)


def assert_matches_ants(ours, ants_out, fixed, moving, affine=None, field=None):
    """Equal (1e-4 of the range) wherever both sample inside the moving grid; corr > 0.999."""
    affine = np.eye(fixed.ndim + 1) if affine is None else affine
    inside = inside_moving(fixed, moving, affine, field)
    assert inside.mean() > 0.3
    np.testing.assert_allclose(ours[inside], ants_out[inside], rtol=0,
                               atol=1e-4 * np.abs(ants_out).max())
    assert corr(ours, ants_out) > 0.999


def load_both(ants, fixed_path, moving_path):
    return (parareg.load(fixed_path), parareg.load(moving_path),
            ants.image_read(str(fixed_path)), ants.image_read(str(moving_path)))


@needs_data
def test_ants_written_affine_resamples_like_parareg(tmp_path, ixi_pair):
    ants = pytest.importorskip("ants")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, *ixi_pair)
    m_lps = ras_to_lps(random_affine(3, seed=5, angle=0.15, shift=8.0))
    center = np.array([5.0, -12.0, 20.0])
    tx = ants.create_ants_transform(transform_type="AffineTransform", precision="double",
                                    dimension=3)
    tx.set_fixed_parameters(center)
    tx.set_parameters(np.concatenate([m_lps[:3, :3].ravel(),
                                      m_lps[:3, 3] - center + m_lps[:3, :3] @ center]))
    path = str(tmp_path / "0GenericAffine.mat")
    ants.write_transform(tx, path)
    ants_out = ants.apply_transforms(fixed_ants, moving_ants, [path]).numpy()
    m = read_affine(path)
    assert_matches_ants(parareg.resample(moving, fixed, affine=m).data, ants_out,
                        fixed, moving, affine=m)
    # a reader that forgot LPS -> RAS would be caught
    wrong = parareg.resample(moving, fixed, affine=ras_to_lps(m)).data
    assert corr(wrong, ants_out) < 0.95


@needs_data
@pytest.mark.parametrize("suffix", [".mat", ".txt"])
def test_parareg_written_affine_applied_by_ants(tmp_path, ixi_pair, suffix):
    ants = pytest.importorskip("ants")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, *ixi_pair)
    m = random_affine(3, seed=6, angle=0.15, shift=8.0)
    path = write_affine(m, tmp_path / f"a{suffix}", center=[3.0, 40.0, -7.5])
    ants_out = ants.apply_transforms(fixed_ants, moving_ants, [str(path)]).numpy()
    assert_matches_ants(parareg.resample(moving, fixed, affine=m).data, ants_out,
                        fixed, moving, affine=m)


@needs_data
def test_2d_affine_against_ants(tmp_path, mindboggle_pair):
    ants = pytest.importorskip("ants")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, *mindboggle_pair)
    assert fixed_ants.dimension == 2 and fixed.ndim == 2
    m = random_affine(2, seed=7, angle=0.15, shift=8.0)
    path = write_affine(m, tmp_path / "a.mat", center=[20.0, -30.0])
    ants_out = ants.apply_transforms(fixed_ants, moving_ants, [str(path)]).numpy()
    assert_matches_ants(parareg.resample(moving, fixed, affine=m).data, ants_out,
                        fixed, moving, affine=m)
    assert corr(parareg.resample(moving, fixed, affine=ras_to_lps(m)).data, ants_out) < 0.95


@needs_data
def test_ants_registration_generic_affine(tmp_path):
    """The ``*GenericAffine.mat`` of ``ants.registration`` reproduces ANTs' warped image."""
    ants = pytest.importorskip("ants")
    if len(MINDBOGGLE) < 3:
        pytest.skip("../shared/data/mindboggle_2d is not present")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, MINDBOGGLE[0], MINDBOGGLE[2])
    reg = ants.registration(fixed_ants, moving_ants, type_of_transform="Affine",
                            outprefix=str(tmp_path / "r_"), random_seed=1)
    mat = [p for p in reg["fwdtransforms"] if p.endswith("GenericAffine.mat")]
    assert len(mat) == 1
    amap = affine_map_from_itk(mat[0], fixed=MINDBOGGLE[0], moving=MINDBOGGLE[2])
    assert_matches_ants(amap.transform(moving).data, reg["warpedmovout"].numpy(),
                        fixed, moving, affine=amap.matrix)


@needs_data
def test_parareg_warp_applied_by_ants(tmp_path, ixi_pair):
    ants = pytest.importorskip("ants")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, *ixi_pair)
    field = smooth_field(fixed.shape, seed=3, amplitude=4.0)
    warp = write_warp(field, fixed.vox2world, tmp_path / "1Warp.nii.gz")
    ants_out = ants.apply_transforms(fixed_ants, moving_ants, [str(warp)]).numpy()
    assert_matches_ants(parareg.resample(moving, fixed, field=field).data, ants_out,
                        fixed, moving, field=field)
    flipped = field * np.float32([-1, -1, 1])  # what ANTs would see without the LPS flip
    assert corr(parareg.resample(moving, fixed, field=flipped).data, ants_out) < 0.99
    # affine and warp together: parareg samples at A (x + u(x)), ANTs' [warp, A]
    m = random_affine(3, seed=8, angle=0.1, shift=5.0)
    mat = write_affine(m, tmp_path / "0GenericAffine.mat")
    ours_both = parareg.resample(moving, fixed, affine=m, field=field).data
    ants_both = ants.apply_transforms(fixed_ants, moving_ants, [str(warp), str(mat)]).numpy()
    assert_matches_ants(ours_both, ants_both, fixed, moving, affine=m, field=field)
    # the other order (A x + u(A x)) is measurably different
    ants_other = ants.apply_transforms(fixed_ants, moving_ants, [str(mat), str(warp)],
                                       whichtoinvert=[False, False]).numpy()
    assert corr(ours_both, ants_other) < 0.995


@needs_data
def test_parareg_2d_warp_applied_by_ants(tmp_path, mindboggle_pair):
    ants = pytest.importorskip("ants")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, *mindboggle_pair)
    field = smooth_field(fixed.shape, seed=4, amplitude=5.0)
    warp = write_warp(field, fixed.vox2world, tmp_path / "1Warp.nii.gz")
    ants_out = ants.apply_transforms(fixed_ants, moving_ants, [str(warp)]).numpy()
    assert_matches_ants(parareg.resample(moving, fixed, field=field).data, ants_out,
                        fixed, moving, field=field)
    assert corr(parareg.resample(moving, fixed, field=-field).data, ants_out) < 0.99


@needs_data
def test_ants_written_warp_read_by_parareg(tmp_path, ixi_pair):
    """A vector image written by ANTs (ITK's NIfTI writer) reads back in RAS."""
    ants = pytest.importorskip("ants")
    fixed, moving, fixed_ants, moving_ants = load_both(ants, *ixi_pair)
    field_lps = smooth_field(fixed.shape, seed=5, amplitude=4.0)
    vec = ants.from_numpy(field_lps, origin=fixed_ants.origin, spacing=fixed_ants.spacing,
                          direction=fixed_ants.direction, has_components=True)
    path = str(tmp_path / "antsWarp.nii.gz")
    ants.image_write(vec, path)
    field, v2w = read_warp(path, reference=fixed)
    np.testing.assert_allclose(field, field_lps * np.float32([-1, -1, 1]), atol=1e-6)
    np.testing.assert_allclose(v2w, fixed.vox2world, atol=1e-4)
    ants_out = ants.apply_transforms(fixed_ants, moving_ants, [path]).numpy()
    assert_matches_ants(parareg.resample(moving, fixed, field=field).data, ants_out,
                        fixed, moving, field=field)
