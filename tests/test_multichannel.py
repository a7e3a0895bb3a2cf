"""Multi-channel registration: several (fixed, moving, metric, weight) pairs drive one transform.

Mechanics on a Mindboggle slice pair (2D, few iterations) whose second
channel is a non-linear intensity remap of the first (another "contrast" of
the same anatomy); the real two-contrast case (open_ms FLAIR + T2W) is in
tests/test_multichannel_open_ms.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import parareg
from parareg import Channel
from parareg.cli.main import main
from parareg.metrics import get_affine_metric
from parareg.registration.channels import (WeightedMetricSum, check_weights, combine_forces,
                                           field_norm)

from ._data import MINDBOGGLE, needs_data

AFFINE = {"pipeline": ("center_of_mass", "translation", "rigid", "affine"),
          "levels": ((4, 2.0, 30), (2, 1.0, 15))}
SYN = {"levels": ((4, 1.0, 10), (2, 0.5, 5)), "radius": 2}


def _remapped(image: parareg.Image) -> parareg.Image:
    """Another contrast of the same anatomy: a non-monotonic remap of the intensities."""
    data = image.data / max(float(image.data.max()), 1e-6)
    return parareg.Image(np.sin(3.0 * data).astype(np.float32) + 0.1, image.vox2world)


@pytest.fixture(scope="module")
def pair():
    if not MINDBOGGLE:
        pytest.skip("../shared/data is not present")
    fixed, moving = parareg.load(MINDBOGGLE[0]), parareg.load(MINDBOGGLE[1])
    return fixed, moving, _remapped(fixed), _remapped(moving)


# --- the combination rules, against NumPy twins ---------------------------------------------


def test_weights_are_checked_and_normalised():
    assert check_weights([2, 1, 1]) == [0.5, 0.25, 0.25]
    for bad, match in (([1, -1], "weight #2 must be a finite number of 0 or more"),
                       ([0, 0], "sum to 0"), ([1, float("nan")], "weight #2"),
                       ([True], "weight #1")):
        with pytest.raises(ValueError, match=match):
            check_weights(bad)


@pytest.mark.parametrize("num_threads", [1, 2, 3])
def test_combined_forces_match_numpy(num_threads):
    rng = np.random.default_rng(0)
    forces = [rng.normal(size=(61, 47, 13, 3)).astype(np.float32) * scale
              for scale in (1.0, 1e-3, 50.0)]
    forces[2][:, :5] = 0
    weights = [0.5, 0.3, 0.2]
    expected = sum(w * f.astype(np.float64) / np.linalg.norm(f.astype(np.float64))
                   for w, f in zip(weights, forces))
    assert field_norm(forces[1], num_threads=num_threads) == pytest.approx(
        np.linalg.norm(forces[1].astype(np.float64)), rel=1e-12)
    combined = combine_forces([f.copy() for f in forces], weights, num_threads=num_threads)
    np.testing.assert_allclose(combined, expected, rtol=2e-6, atol=1e-9)
    reference = combine_forces([f.copy() for f in forces], weights, num_threads=1)
    np.testing.assert_array_equal(combined, reference)
    zero = combine_forces([forces[0].copy(), np.zeros_like(forces[1])], [0.5, 0.5])
    np.testing.assert_allclose(zero, forces[0] * (0.5 / np.linalg.norm(
        forces[0].astype(np.float64))), rtol=2e-6)


@needs_data
def test_weighted_metric_sum_is_the_weighted_sum_of_the_metrics(pair):
    fixed, moving, fixed2, moving2 = pair
    mi, cc = get_affine_metric("mi"), get_affine_metric("correlation")
    states = (mi.setup(fixed, moving, seed=0), cc.setup(fixed2, moving2, seed=0))
    matrix = np.eye(3)
    matrix[:2, 2] = (3.0, -2.0)
    total = WeightedMetricSum([(mi, 0.25), (cc, 0.75)])
    value, gradient = total.value_and_gradient(states, matrix)
    parts = [m.value_and_gradient(s, matrix) for m, s in zip((mi, cc), states)]
    assert value == pytest.approx(0.25 * parts[0][0] + 0.75 * parts[1][0], rel=1e-12)
    np.testing.assert_allclose(gradient, 0.25 * parts[0][1] + 0.75 * parts[1][1], rtol=1e-12)
    assert total.value(states, matrix) == value


# --- registration ---------------------------------------------------------------------------


@needs_data
def test_a_zero_weight_channel_leaves_the_result_bit_identical(pair):
    """The channel machinery does not touch channel 0's numbers: an extra channel of weight 0
    (noise) gives the single-pair result bit for bit, affine and SyN."""
    fixed, moving, _, _ = pair
    noise = np.random.default_rng(1).random(fixed.shape).astype(np.float32)
    extra = [Channel(parareg.Image(noise, fixed.vox2world), moving, weight=0.0,
                     affine_metric="correlation", syn_metric="ssd")]
    options = {"preset": "fast", "affine_options": {"levels": AFFINE["levels"]},
               "syn_options": {"levels": SYN["levels"]}}
    single = parareg.register(fixed, moving, **options)
    zero = parareg.register(fixed, moving, channels=extra, **options)
    np.testing.assert_array_equal(zero.affine.matrix, single.affine.matrix)
    np.testing.assert_array_equal(zero.mapping.forward, single.mapping.forward)


@needs_data
def test_a_duplicated_channel_changes_nothing_affine_and_almost_nothing_syn(pair):
    fixed, moving, _, _ = pair
    single = parareg.affine_registration(fixed, moving, **AFFINE)
    twice = parareg.affine_registration(fixed, moving, channels=[Channel(fixed, moving)],
                                        **AFFINE)
    # 0.5 v + 0.5 v == v exactly: the same objective, the same bits
    np.testing.assert_array_equal(twice.matrix, single.matrix)
    one = parareg.syn_registration(fixed, moving, prealign=single.matrix, **SYN)
    two = parareg.syn_registration(fixed, moving, prealign=single.matrix,
                                   channels=[Channel(fixed, moving)], **SYN)
    assert np.abs(two.forward - one.forward).max() < 1e-2 * np.abs(one.forward).max()


@needs_data
def test_two_channels_with_their_own_metrics_drive_both_stages(pair):
    fixed, moving, fixed2, moving2 = pair
    base = parareg.register(fixed, moving, preset="fast",
                            affine_options={"levels": AFFINE["levels"]},
                            syn_options={"levels": SYN["levels"]})
    two = parareg.register(fixed, moving, preset="fast", weight=1.0,
                           channels=[Channel(fixed2, moving2, weight=1.0, syn_metric="mi")],
                           affine_options={"levels": AFFINE["levels"]},
                           syn_options={"levels": SYN["levels"]})
    assert not np.array_equal(two.affine.matrix, base.affine.matrix)
    assert not np.array_equal(two.mapping.forward, base.mapping.forward)
    # the second channel alone is a usable registration too: both agree within a few mm
    offset = np.abs(two.affine.matrix - base.affine.matrix)[:2, 2].max()
    assert offset < 5.0, offset
    other = parareg.register(fixed, moving, preset="fast", weight=1.0,
                             channels=[Channel(fixed2, moving2, weight=3.0, syn_metric="mi")],
                             affine_options={"levels": AFFINE["levels"]},
                             syn_options={"levels": SYN["levels"]})
    assert not np.array_equal(other.mapping.forward, two.mapping.forward)


@needs_data
def test_identical_bits_at_1_2_and_3_threads(pair):
    fixed, moving, fixed2, moving2 = pair
    channels = [Channel(fixed2, moving2, weight=0.5, affine_metric="correlation",
                        syn_metric="mi")]
    results = [parareg.register(fixed, moving, preset="fast", channels=channels,
                                num_threads=n, affine_options={"levels": AFFINE["levels"]},
                                syn_options={"levels": SYN["levels"]}) for n in (1, 2, 3)]
    for other in results[1:]:
        np.testing.assert_array_equal(other.affine.matrix, results[0].affine.matrix)
        np.testing.assert_array_equal(other.mapping.forward, results[0].mapping.forward)
        np.testing.assert_array_equal(other.mapping.backward, results[0].mapping.backward)


# --- bad input: one clear error before any work ---------------------------------------------


@needs_data
def test_bad_channels_are_named(pair):
    fixed, moving, fixed2, moving2 = pair
    shifted = fixed2.vox2world.copy()
    shifted[0, 2] += 1.0
    cases = [
        ([Channel(parareg.Image(fixed2.data, shifted), moving2)], {},
         "channels\\[0\\].fixed is not on the grid of fixed"),
        ([Channel(fixed2, parareg.Image(moving2.data[:-2], moving2.vox2world))], {},
         "channels\\[0\\].moving is not on the grid of moving: shape"),
        ([Channel(fixed2, moving2, weight=-1)], {}, "channels\\[0\\].weight must be"),
        ([Channel(fixed2, moving2, weight=0)], {"weight": 0}, "sum to 0"),
        ([Channel(fixed2, moving2)], {"weight": float("inf")}, "weight must be"),
        ([(fixed2, moving2)], {}, "channels\\[0\\] must be a parareg.Channel"),
        (Channel(fixed2, moving2), {}, "channels must be a list"),
        ([Channel(fixed2, moving2, affine_metric="cc")], {}, "channels\\[0\\].affine_metric"),
    ]
    for channels, extra, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            parareg.affine_registration(fixed, moving, channels=channels, **AFFINE, **extra)
    with pytest.raises(ValueError, match="channels\\[0\\].syn_metric"):
        parareg.syn_registration(fixed, moving, channels=[Channel(fixed2, moving2,
                                                                  syn_metric="nmi")])
    with pytest.raises(ValueError, match="channels\\[0\\].fixed is not on the grid"):
        parareg.register(fixed, moving, channels=[Channel(parareg.Image(fixed2.data, shifted),
                                                          moving2)])


# --- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def channel_files(pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("channels")
    _, _, fixed2, moving2 = pair
    paths = folder / "fixed2.nii.gz", folder / "moving2.nii.gz", folder / "off_grid.nii.gz"
    parareg.save(fixed2, paths[0])
    parareg.save(moving2, paths[1])
    parareg.save(parareg.Image(fixed2.data[:-3], fixed2.vox2world), paths[2])
    return tuple(str(p) for p in paths)


BASE = ["--preset", "fast", "-n", "8x4x0", "--affine-iterations", "20x10", "-q"]


@needs_data
def test_cli_channels_are_recorded_and_rerun_bit_for_bit(tmp_path, channel_files):
    fixed, moving = str(MINDBOGGLE[0]), str(MINDBOGGLE[1])
    args = ["-i", *channel_files[:2], "--weights", "1,0.5", "--channel-metrics", "cc,mi"]
    assert main(["register", fixed, moving, "-o", str(tmp_path / "two_"), *BASE, *args]) == 0
    settings = json.loads((tmp_path / "two_settings.json").read_text())
    assert settings["settings"]["inputs"] == [list(channel_files[:2])]
    assert settings["settings"]["weights"] == "1,0.5"
    assert "-i" in settings["settings"]["explicit"]
    two = parareg.load(tmp_path / "two_Warped.nii.gz").data
    assert main(["register", fixed, moving, "-o", str(tmp_path / "again_"), "-q",
                 "--settings", str(tmp_path / "two_settings.json")]) == 0
    np.testing.assert_array_equal(parareg.load(tmp_path / "again_Warped.nii.gz").data, two)
    assert main(["register", fixed, moving, "-o", str(tmp_path / "one_"), *BASE]) == 0
    assert not np.array_equal(parareg.load(tmp_path / "one_Warped.nii.gz").data, two)


@needs_data
def test_cli_bad_channels_are_one_error_line(tmp_path, capsys, channel_files):
    fixed, moving = str(MINDBOGGLE[0]), str(MINDBOGGLE[1])
    pair_files = ["-i", *channel_files[:2]]
    cases = [
        (["-i", channel_files[2], channel_files[1]], "-i FIXED2"),
        (["-i", channel_files[0], channel_files[2]], "-i MOVING2"),
        ([*pair_files, "--weights", "1"], "--weights gives 1 weight (1) but there are 2 "
                                          "channels"),
        ([*pair_files, "--weights", "1,-1"], "weight #2 must be"),
        ([*pair_files, "--weights", "0,0"], "sum to 0"),
        ([*pair_files, "--weights", "1,x"], "is not numbers separated by commas"),
        ([*pair_files, "--channel-metrics", "cc"], "--channel-metrics gives 1 metric"),
        ([*pair_files, "--channel-metrics", "cc,nmi"], "'nmi' is not one of"),
        ([*pair_files, "--metric", "mi", "--channel-metrics", "cc,mi"], "disagree"),
        (["-i", str(tmp_path / "none.nii.gz"), moving], "none.nii.gz"),
    ]
    for extra, message in cases:
        code = main(["register", fixed, moving, "-o", str(tmp_path / "bad_"), *BASE, *extra])
        err = capsys.readouterr().err
        assert code == 2, extra
        assert message in err, (extra, err)
        assert err.count("parareg: error:") == 1 and len(err.strip().splitlines()) == 1, err


# --- parareg.ants: ANTsPy's multivariate_extras are SyN channels ----------------------------


@pytest.fixture
def register_calls(monkeypatch):
    """Every parareg.register call parareg.ants makes, with its keyword arguments."""
    import parareg.registration as registration

    calls, real = [], registration.register

    def spy(fixed, moving, **kwargs):
        calls.append(kwargs)
        return real(fixed, moving, **kwargs)

    monkeypatch.setattr(registration, "register", spy)
    return calls


@needs_data
def test_ants_multivariate_extras_drive_the_syn_stage_only(pair, tmp_path, register_calls):
    import parareg.ants as pants

    fixed, moving, fixed2, moving2 = pair
    extras = [("CC", fixed2, moving2, 0.5, 3), ("MeanSquares", fixed2, moving2, 0.25, 0)]
    short = {"reg_iterations": (10, 5, 0), "outprefix": str(tmp_path / "so_")}
    one = pants.registration(fixed, moving, "SyNOnly", **short)
    two = pants.registration(fixed, moving, "SyNOnly", multivariate_extras=extras, **short)
    channels = register_calls[-1]["channels"]
    assert [c.weight for c in channels] == [0.5, 0.25]
    assert channels[0].syn_metric.radius == 3 and channels[1].syn_metric == "ssd"
    assert not np.array_equal(one["warpedmovout"].numpy(), two["warpedmovout"].numpy())
    zero = pants.registration(fixed, moving, "SyNOnly", **short,
                              multivariate_extras=[("CC", fixed2, moving2, 0, 2)])
    np.testing.assert_array_equal(zero["warpedmovout"].numpy(), one["warpedmovout"].numpy())
    # a type with linear stages: they run on (fixed, moving) alone, the extras join SyN
    register_calls.clear()
    pants.registration(fixed, moving, "antsRegistrationSyNQuick[sr]",
                       multivariate_extras=extras[:1], outprefix=str(tmp_path / "sr_"))
    linear, deformable = register_calls
    assert linear["stages"] == ("rigid",) and linear.get("channels") is None
    assert deformable["stages"] == ("syn",) and len(deformable["channels"]) == 1
    with pytest.warns(UserWarning, match="multivariate_extras not used"):
        pants.registration(fixed, moving, "Rigid", multivariate_extras=extras,
                           aff_iterations=(20, 10, 0, 0), outprefix=str(tmp_path / "rigid_"))


@needs_data
def test_ants_bad_multivariate_extras_are_named(pair):
    import parareg.ants as pants

    fixed, moving, fixed2, moving2 = pair
    off_grid = parareg.Image(fixed2.data[:-2], fixed2.vox2world)
    cases = [
        ([("CC", fixed2, moving2, 1)], r"multivariate_extras\[0\] must be \(metric name"),
        ([("Demons", fixed2, moving2, 1, 0)], r"multivariate_extras\[0\]\[0\] must be one of"),
        ([("CC", off_grid, moving2, 1, 2)], r"multivariate_extras\[0\]\[1\] is not on the grid"),
        ([("CC", fixed2, off_grid, 1, 2)], r"multivariate_extras\[0\]\[2\] is not on the grid"),
        ([("CC", fixed2, moving2, -1, 2)], r"\[0\]\[3\], the weight, must be"),
        ([("CC", fixed2, moving2, 1, 0)], r"\[0\]\[4\] is the CC radius"),
        ([("Mattes", fixed2, moving2, 1, 16)], r"\[0\]\[4\]=16 .*32 bins"),
        ("CC", "must be a list of"),
    ]
    for extras, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            pants.registration(fixed, moving, "SyNOnly", multivariate_extras=extras)


# --- the memory estimate counts the channels --------------------------------------------------


def test_memory_estimate_counts_each_channels_arrays():
    from parareg.memory import estimate

    shape = (160, 192, 224)
    voxels = int(np.prod(shape))
    one, two = estimate(shape, shape), estimate(shape, shape, channels=(None,))
    assert two.parts["channel images"] == 8 * voxels
    # at the finest SyN level a second pair adds its images, two warped images, two forces
    assert two.peak - one.peak >= (8 + 8 + 24) * voxels
    assert estimate(shape, shape, channels=(None, None)).peak > two.peak
    # the metrics run one after the other: a CC channel next to SSD brings CC's box sums
    assert "CC box sums" in estimate(shape, shape, metric="ssd", channels=("cc",)).parts
    assert "CC box sums" not in estimate(shape, shape, metric="ssd", channels=("ssd",)).parts
    with pytest.raises(ValueError, match="channels: each channel's SyN metric"):
        estimate(shape, shape, channels=("nmi",))


@needs_data
def test_max_memory_between_one_and_two_channels_refuses_only_two(tmp_path, capsys,
                                                                 channel_files, pair):
    from parareg.memory import InsufficientMemoryError, estimate_registration

    fixed, moving = str(MINDBOGGLE[0]), str(MINDBOGGLE[1])
    for cli in (False, True):
        one = estimate_registration(fixed, moving, cli=cli)[0].peak
        two = estimate_registration(fixed, moving, cli=cli, channels=(None,))[0].peak
        assert two > one
        limit = str((one + two) // 2)
        if cli:
            code = main(["register", fixed, moving, "-o", str(tmp_path / "m_"), "-q",
                         "-i", *channel_files[:2], "--max-memory", limit])
            assert code == 2 and "not enough memory" in capsys.readouterr().err
        else:
            with pytest.raises(InsufficientMemoryError):
                parareg.register(fixed, moving, max_memory=limit,
                                 channels=[Channel(*channel_files[:2])])
