"""Registration control as ANTs and greedy users drive it: schedules, starts, stages, masks,
recorded settings. On a Mindboggle pair (2D, few iterations, so the file stays quick)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

import parareg
from parareg.cli.main import main

from ._data import MINDBOGGLE, MINDBOGGLE_LABELS, needs_data

pytestmark = needs_data
#: a short SyN schedule every run here starts from
BASE = ["--preset", "fast", "-n", "12x6x0", "--affine-iterations", "30x15", "-q"]


def _run(tmp_path, name, *extra, base=BASE):
    prefix = tmp_path / f"{name}_"
    code = main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), "-o", str(prefix),
                 *base, *extra])
    assert code == 0, extra
    return parareg.load(f"{prefix}Warped.nii.gz").data, prefix


def test_explicit_options_equal_to_the_preset_reproduce_it(tmp_path, capsys):
    preset, prefix = _run(tmp_path, "preset")
    settings = json.loads((tmp_path / "preset_settings.json").read_text())
    explicit = settings["settings"]["explicit"]
    assert settings["threads"] >= 1 and "--seed" in explicit
    again = main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), "-o",
                  str(tmp_path / "explicit_"), "-q", *explicit])
    assert again == 0
    np.testing.assert_array_equal(parareg.load(tmp_path / "explicit_Warped.nii.gz").data, preset)
    assert main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), "-o",
                 str(tmp_path / "rerun_"), "-q", "--settings", str(prefix) + "settings.json"]) == 0
    np.testing.assert_array_equal(parareg.load(tmp_path / "rerun_Warped.nii.gz").data, preset)
    assert main(["register", "--print-settings", "--preset", "fast"]) == 0
    printed = capsys.readouterr().out
    assert "-n 60x30x0 -f 4x2x1 -s 1x0.5x0vox" in printed


def test_the_default_preset_printed_as_options_reproduces_it_bit_for_bit(tmp_path, capsys):
    """Issue 14: explicit options equal to the default preset give the preset's bits."""
    assert main(["register", "--print-settings"]) == 0
    words = capsys.readouterr().out.split()
    explicit = words[words.index("PREFIX") + 1:]
    assert "--preset" not in explicit and "-n" in explicit
    preset, _ = _run(tmp_path, "default", base=["-q"])
    again, _ = _run(tmp_path, "explicit", *explicit, base=["-q"])
    np.testing.assert_array_equal(again, preset)


@pytest.mark.parametrize("option", [
    # 2D runs CC's exact gradient, whose smoother fields need no inversion step at a last level
    # of 0 iterations (so -f 4x2x2 equals 4x2x1) and lower the energy by > 1 % an iteration
    # (so --convergence 1e-2,3 never stops): the options change a level that runs instead
    ["-n", "12x7x0"], ["-f", "4x3x1"], ["-s", "1x1x0vox"], ["-s", "2x1x0mm"], ["--radius", "3"],
    ["--step", "0.3"], ["--update-sigma", "2"], ["--field-sigma", "2"],
    ["--convergence", "1e-1,3"], ["--bins", "16"], ["--affine-iterations", "30x5"],
    ["--affine-shrink-factors", "3x2"], ["--affine-smoothing-sigmas", "1x1vox"]])
def test_each_option_changes_the_result(tmp_path, option):
    base, _ = _run(tmp_path, "base")
    changed, _ = _run(tmp_path, "changed", *option)
    assert not np.array_equal(base, changed), option


def test_syn_alone_from_a_given_affine_equals_the_pipeline(tmp_path):
    full, prefix = _run(tmp_path, "full")
    alone, _ = _run(tmp_path, "alone", "--stages", "syn", "--initial-moving-transform",
                    f"[{prefix}0GenericAffine.mat,0]")
    np.testing.assert_array_equal(alone, full)
    rigid, _ = _run(tmp_path, "rigid", "--stages", "rigid", "-n", "20x10x5", base=["-q"])
    assert not (tmp_path / "rigid_1Warp.nii.gz").exists()
    for name in ("com", "geometric", "origin", "[f,m,1]"):
        _run(tmp_path, "start", "--transform", "rigid", "--initial-moving-transform", name,
             "-n", "20x10x5", base=["-q"])


def _dice(a, b):
    labels = [k for k in np.unique(a) if k]
    return np.mean([2 * np.sum((a == k) & (b == k)) / (np.sum(a == k) + np.sum(b == k))
                    for k in labels])


@pytest.mark.skipif(importlib.util.find_spec("ants") is None, reason="antspyx is not installed")
def test_ants_affine_as_the_start_of_syn_is_as_good_as_the_pipeline(tmp_path):
    import ants

    fixed, moving = ants.image_read(str(MINDBOGGLE[0])), ants.image_read(str(MINDBOGGLE[1]))
    start = ants.registration(fixed, moving, type_of_transform="Affine",
                              outprefix=str(tmp_path / "by_ants_"))["fwdtransforms"][0]
    labels = parareg.load(MINDBOGGLE_LABELS[1], labels=True)
    truth = parareg.load(MINDBOGGLE_LABELS[0], labels=True).data
    scores = {}
    for name, extra in (("full", []), ("ants", ["--stages", "syn", "-r", start])):
        _, prefix = _run(tmp_path, name, *extra)
        warped = parareg.apply_transforms(labels, MINDBOGGLE[0],
                                          [f"{prefix}1Warp.nii.gz", f"{prefix}0GenericAffine.mat"],
                                          interpolation="nearest")
        scores[name] = _dice(truth, warped.data)
    assert scores["ants"] >= scores["full"] - 0.01, scores


def test_moving_mask_reaches_affine_and_syn(tmp_path):
    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    options = {"preset": "fast", "syn_options": {"levels": ((4, 1.0, 12), (2, 0.5, 6))},
               "affine_options": {"levels": ((4, 2.0, 30), (2, 1.0, 15))}}
    plain = parareg.register(fixed, moving, **options)
    everywhere = parareg.register(fixed, moving, moving_mask=np.ones(moving.shape, np.uint8),
                                  **options)
    np.testing.assert_array_equal(everywhere.mapping.forward, plain.mapping.forward)
    half = np.zeros(moving.shape, np.uint8)
    half[:, : moving.shape[1] // 2] = 1
    masked = parareg.register(fixed, moving, moving_mask=half, **options)
    assert not np.array_equal(masked.affine.matrix, plain.affine.matrix)
    syn_only = parareg.register(fixed, moving, moving_mask=half, stages=("syn",),
                                initial_transform=plain.affine.matrix, **options)
    assert not np.array_equal(syn_only.mapping.forward, plain.mapping.forward)


def test_bad_control_options_are_named(tmp_path, capsys):
    small = tmp_path / "small.nii.gz"
    parareg.save(parareg.Image(np.ones((5, 5), np.float32), np.eye(3)), small)
    cases = [
        (["-n", "100x50", "-f", "4x2x1"], "iterations gives 2 levels"),
        (["--update-sigma", "-1"], "--update-sigma: must be 0 or more"),
        (["--radius", "0"], "radius must be 1 or more"),
        (["--radius", "2x3"], "window is a cube"),
        (["-s", "2x1xbig"], "smoothing_sigmas"),
        (["--convergence", "1e-6"], "THRESHOLD,WINDOW"),
        (["--transform", "affine", "--step", "0.3"], "is a SyN setting"),
        (["--bins", "2"], "--bins must be 4 or more"),
        (["--stages", "syn,affine"], "must each appear once"),
        (["--stages", "bspline"], "stages must be one or more of"),
        (["--initial-moving-transform", "none.mat"], "neither a transform file nor one of"),
        (["--moving-mask", str(small)], "--moving-mask has shape"),
        (["-x", "[a,b,c]"], "is not MASK or"),
        (["--settings", str(tmp_path / "none.json")], "--settings: no such file"),
    ]
    for extra, message in cases:
        code = main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), "-o",
                     str(tmp_path / "bad_"), "-q", *extra])
        assert code == 2, extra
        assert message in capsys.readouterr().err, (extra, message)


# --- the moving mask at the gradient level (twin tests) -------------------------------------


def _half_mask(shape):
    """Keeps the first half of axis 0 of the moving image."""
    half = np.zeros(shape, np.uint8)
    half[: shape[0] // 2] = 1
    return half


def _fixed2moving(angle_deg=4.0, shift=(6.3, -2.7)):
    t = np.deg2rad(angle_deg)
    matrix = np.eye(3)
    matrix[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    matrix[:2, 2] = shift
    return matrix


def _kept(fixed, moving, mask, fixed2moving):
    """NumPy: fixed voxels whose moving point's nearest moving voxel is inside ``mask``
    (``floor(p + 0.5)``, 0 off the grid), as the kernels and nearest resampling define it."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in fixed.shape], indexing="ij"), -1)
    vox = (index.reshape(-1, 2) @ (moving.world2vox @ fixed2moving @ fixed.vox2world)[:2, :2].T
           + (moving.world2vox @ fixed2moving @ fixed.vox2world)[:2, 2])
    nearest = np.floor(vox + 0.5).astype(int)
    on_grid = np.all((nearest >= 0) & (nearest < np.asarray(moving.shape)), axis=1)
    kept = np.zeros(len(vox), bool)
    kept[on_grid] = mask[nearest[on_grid, 0], nearest[on_grid, 1]] != 0
    return kept.reshape(fixed.shape)


@pytest.mark.parametrize("name", ["meansquares", "correlation"])
def test_moving_mask_changes_the_affine_gradient_only_by_the_samples_it_drops(name):
    """Twin: the metric and its gradient under a moving mask that drops half of the moving
    image equal the unmasked metric over just the fixed samples that land in the kept half
    (selected in NumPy, passed as a fixed mask)."""
    from parareg.metrics import get_affine_metric

    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    half = _half_mask(moving.shape)
    matrix = _fixed2moving()
    metric = get_affine_metric(name)
    masked = metric.evaluate(metric.setup(fixed, moving, moving_mask=half), matrix)
    kept = _kept(fixed, moving, half, matrix)
    restricted = metric.evaluate(metric.setup(fixed, moving, fixed_mask=kept), matrix)
    plain = metric.evaluate(metric.setup(fixed, moving), matrix)
    assert masked.num_valid == restricted.num_valid < plain.num_valid
    assert masked.value == pytest.approx(restricted.value, rel=1e-9)
    scale = np.abs(plain.gradient).max()
    np.testing.assert_allclose(masked.gradient, restricted.gradient, rtol=1e-7,
                               atol=1e-10 * scale)
    assert np.abs(masked.gradient - plain.gradient).max() > 1e-3 * scale


class _FirstForces:
    """A SyN metric that records its first call's mask and update fields."""

    def __init__(self, metric):
        self.metric, self.seen = metric, None

    def wrap(self):
        from parareg.metrics.syn_base import SyNMetric

        spy = self

        class Spy(SyNMetric):
            name = spy.metric.name

            def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None,
                        num_threads=None):
                out = spy.metric.compute(fixed_warped, moving_warped, vox2world=vox2world,
                                         mask=mask, num_threads=num_threads)
                if spy.seen is None:
                    spy.seen = (None if mask is None else np.array(mask),
                                out[0].copy(), out[1].copy())
                return out

        return Spy()


@pytest.mark.parametrize("name", ["cc", "ssd"])
def test_moving_mask_gates_the_syn_forces_exactly_where_expected(name):
    """Twin: in SyN's first iteration the moving mask reaches the metric as the set of fixed
    voxels whose moving point (prealign, u_m = 0) is in the kept half (NumPy), and the forces
    there are the unmasked forces bit for bit, zero elsewhere."""
    from parareg.metrics.syn import get_syn_metric

    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    half = _half_mask(moving.shape)
    prealign = _fixed2moving()
    runs = {}
    for label, mask in (("plain", None), ("masked", half)):
        spy = _FirstForces(get_syn_metric(name, **({"radius": 2} if name == "cc" else {})))
        parareg.syn_registration(fixed, moving, metric=spy.wrap(), prealign=prealign,
                                 levels=((1, 0.0, 1),), moving_mask=mask)
        runs[label] = spy.seen
    expected = _kept(fixed, moving, half, prealign)
    assert runs["plain"][0] is None
    np.testing.assert_array_equal(runs["masked"][0] != 0, expected)
    for side in (1, 2):
        plain, masked = runs["plain"][side], runs["masked"][side]
        np.testing.assert_array_equal(masked, np.where(expected[..., None], plain, 0))
        assert np.abs(plain[~expected]).max() > 0  # the mask really removed forces


# --- the fixed-side initial transform (ANTs' --initial-fixed-transform) ---------------------


def _about_centre(image, angle_deg, shift):
    """A rigid world matrix turning ``angle_deg`` about the image's centre, then shifting."""
    centre = (image.vox2world @ np.r_[(np.asarray(image.shape) - 1) / 2.0, 1.0])[:2]
    t = np.deg2rad(angle_deg)
    matrix = np.eye(3)
    matrix[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    matrix[:2, 2] = centre - matrix[:2, :2] @ centre + np.asarray(shift)
    return matrix


def _mean_error_mm(matrix, reference, image):
    """Mean distance (mm) between where two world matrices send the image's non-zero voxels."""
    index = np.argwhere(image.data > 0)
    points = index @ image.vox2world[:2, :2].T + image.vox2world[:2, 2]
    difference = np.asarray(matrix) - np.asarray(reference)
    return float(np.linalg.norm(points @ difference[:2, :2].T + difference[:2, 2], axis=1).mean())


def _ncc(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def fixed_start(tmp_path_factory):
    """A Mindboggle slice registered to itself seen through a known rigid fixed-side start: the
    metric compares fixed(start(x)) with fixed(mapping(x)), so the answer is ``start``."""
    from parareg.io.itk import write_affine

    folder = tmp_path_factory.mktemp("fixed_start")
    image = parareg.load(MINDBOGGLE[0])
    start = _about_centre(image, 6.0, (5.0, -3.0))
    path = folder / "start.mat"
    write_affine(start, path)
    return image, start, path


RIGID = ["--transform", "rigid", "-n", "40x20x10", "-q"]


def test_initial_fixed_transform_enters_the_metric_as_ants_reads_it(tmp_path, fixed_start):
    from parareg.io.itk import read_affine

    image, start, path = fixed_start
    found = {}
    for name, value in (("plain", str(path)), ("inverse", f"[{path},1]")):
        prefix = tmp_path / f"{name}_"
        assert main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[0]), "-o", str(prefix),
                     *RIGID, "--initial-fixed-transform", value]) == 0
        found[name] = read_affine(f"{prefix}0GenericAffine.mat", ndim=2)
    assert _mean_error_mm(np.eye(3), start, image) > 5.0
    # the written transform maps the fixed grid's (virtual) points to moving points: the start
    assert _mean_error_mm(found["plain"], start, image) < 0.2
    assert _mean_error_mm(found["inverse"], np.linalg.inv(start), image) < 0.2
    # Warped is the moving image in the virtual space: fixed seen through the start
    seen = parareg.resample(image, image, affine=start).data
    warped = parareg.load(tmp_path / "plain_Warped.nii.gz").data
    assert _ncc(warped, seen) > 0.99
    # antsApplyTransforms' order: [start,1] first puts MOVING onto FIXED itself
    back = parareg.apply_transforms(image, image, [path, tmp_path / "plain_0GenericAffine.mat"],
                                    invert=[True, False])
    inside = parareg.resample(parareg.Image(np.ones(image.shape, np.float32), image.vox2world),
                              image, affine=np.linalg.inv(start)).data > 0
    assert _ncc(back.data[inside], image.data[inside]) > 0.99 > _ncc(warped, image.data)
    # settings record it, and a rerun from them gives the same bits
    settings = json.loads((tmp_path / "plain_settings.json").read_text())
    assert settings["settings"]["initial_fixed_transform"] == str(path)
    assert main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[0]), "-o",
                 str(tmp_path / "rerun_"), "-q", "--settings",
                 str(tmp_path / "plain_settings.json")]) == 0
    np.testing.assert_array_equal(parareg.load(tmp_path / "rerun_Warped.nii.gz").data, warped)


def test_identity_initial_fixed_transform_changes_no_bit():
    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    options = {"transform": "rigid", "affine_options": {"levels": ((4, 2.0, 20), (2, 1.0, 10))}}
    plain = parareg.register(fixed, moving, **options)
    same = parareg.register(fixed, moving, initial_fixed_transform=np.eye(3), **options)
    np.testing.assert_array_equal(same.mapping.matrix, plain.mapping.matrix)
    np.testing.assert_array_equal(same.warped.data, plain.warped.data)
    assert plain.initial_fixed is None


@pytest.mark.skipif(importlib.util.find_spec("ants") is None, reason="antspyx is not installed")
def test_initial_fixed_transform_agrees_with_ants(tmp_path, fixed_start):
    """antsRegistration -q (through antspyx's raw argument list) and parareg write the same
    transform, and ANTs' own apply with [start,1] first puts the moving image on the fixed."""
    import ants

    from parareg.io.itk import read_affine

    image, start, path = fixed_start
    slice_ = str(MINDBOGGLE[0])
    prefix = str(tmp_path / "ants_")
    assert ants.registration([
        "-d", "2", "-q", str(path), "-r", f"[{slice_},{slice_},1]",
        "-m", f"MI[{slice_},{slice_},1,32,Regular,0.25]", "-t", "Rigid[0.1]",
        "-c", "[100x50x25,1e-7,10]", "-s", "2x1x0vox", "-f", "4x2x1", "-o", prefix,
        "--float", "1"], None) == 0
    by_ants = read_affine(prefix + "0GenericAffine.mat", ndim=2)
    assert main(["register", slice_, slice_, "-o", str(tmp_path / "ours_"), *RIGID,
                 "--initial-fixed-transform", str(path)]) == 0
    ours = read_affine(tmp_path / "ours_0GenericAffine.mat", ndim=2)
    assert _mean_error_mm(by_ants, start, image) < 0.3  # ANTs' reading: virtual -> moving
    assert _mean_error_mm(ours, by_ants, image) < 0.3
    fi = ants.image_read(slice_)
    back = ants.apply_transforms(fi, fi, [str(path), str(tmp_path / "ours_0GenericAffine.mat")],
                                 whichtoinvert=[True, False]).numpy()
    inside = back != 0
    assert _ncc(back[inside], fi.numpy()[inside]) > 0.99


def test_bad_initial_fixed_transforms_are_named(tmp_path, capsys, fixed_start):
    _, _, path = fixed_start
    cases = [
        (str(tmp_path / "none.mat"), "--initial-fixed-transform: no such transform file"),
        (f"[{path},2]", "is not FILE, [FILE,0] or [FILE,1]"),
        (f"[{MINDBOGGLE[0]},{MINDBOGGLE[1]},1]", "is not FILE, [FILE,0] or [FILE,1]"),
    ]
    for value, message in cases:
        code = main(["register", str(MINDBOGGLE[0]), str(MINDBOGGLE[1]), "-o",
                     str(tmp_path / "bad_"), *RIGID, "--initial-fixed-transform", value])
        err = capsys.readouterr().err
        assert code == 2 and message in err, (value, err)
        assert len(err.strip().splitlines()) == 1, err
    fixed = parareg.load(MINDBOGGLE[0])
    with pytest.raises(FileNotFoundError, match="initial_fixed_transform: no such file"):
        parareg.register(fixed, fixed, transform="rigid",
                         initial_fixed_transform=tmp_path / "none.mat")
    with pytest.raises(ValueError, match="initial_fixed_transform"):
        parareg.register(fixed, fixed, transform="rigid", initial_fixed_transform=np.eye(4))
    far = np.eye(3)
    far[:2, 2] = 1e4
    with pytest.raises(ValueError, match="sends every point of the fixed grid off"):
        parareg.register(fixed, fixed, transform="rigid", initial_fixed_transform=far)
