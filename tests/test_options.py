"""Option hygiene: names in any case, unused options refused, clashes explained, SyNError,
and the explicit prepared pair of :class:`parareg.AffineRegistration`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import parareg
from parareg.metrics import MeanSquares
from parareg.metrics.syn import get_syn_metric
from parareg.metrics.syn_cc import CCMetric
from parareg.metrics.syn_base import SyNMetric
from parareg.registration import (
    AffineRegistration,
    PreparedPair,
    RegistrationWarning,
    SymmetricDiffeomorphicRegistration,
    SyNError,
    affine_registration,
    register,
    syn_registration,
)

AFFINE_LEVELS = ((2, 1.0, 8), (1, 0.0, 4))
SYN_LEVELS = ((2, 0.5, 3), (1, 0.0, 2))


def blob(shape=(20, 22, 18), shift=(0.0, 0.0, 0.0)):
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape],
                                indexing="ij"), axis=-1)
    centre = np.array(shape) / 2 + np.array(shift)
    data = np.exp(-(((grid - centre) / 4.5) ** 2).sum(-1)) * 100 + 5
    return parareg.Image(data.astype(np.float32), np.eye(len(shape) + 1))


# --- names in any case --------------------------------------------------------------------


def test_names_are_case_insensitive_and_give_identical_results():
    fixed, moving = blob(), blob(shift=(1.0, -0.5, 0.5))
    lower = affine_registration(fixed, moving, pipeline=("center_of_mass", "rigid"),
                                metric="mi", levels=AFFINE_LEVELS, sigma_unit="vox",
                                sampling_strategy="regular", full_resolution="last")
    upper = affine_registration(fixed, moving, pipeline=("Center_Of_Mass", "RIGID"),
                                metric="MI", levels=AFFINE_LEVELS, sigma_unit="VOX",
                                sampling_strategy="Regular", full_resolution="LAST")
    np.testing.assert_array_equal(lower.matrix, upper.matrix)
    assert [h["stage"] for h in upper.history] == ["center_of_mass", "rigid", "rigid"]
    a = syn_registration(fixed, moving, metric="cc", levels=SYN_LEVELS)
    b = syn_registration(fixed, moving, metric="CC", levels=SYN_LEVELS)
    np.testing.assert_array_equal(a.forward, b.forward)
    warped = a.transform(moving, interpolation="Nearest")
    np.testing.assert_array_equal(warped.data, a.transform(moving, interpolation="nearest").data)
    assert AffineRegistration(metric="MeanSquares").metric_name == "meansquares"
    assert isinstance(get_syn_metric("SSD"), SyNMetric)


def test_register_names_are_case_insensitive():
    fixed, moving = blob(), blob(shift=(1.0, 0.0, 0.0))
    options = {"affine_options": {"levels": AFFINE_LEVELS},
               "syn_options": {"levels": SYN_LEVELS}}
    a = register(fixed, moving, transform="syn", affine_metric="mi", syn_metric="cc",
                 preset="fast", **options)
    b = register(fixed, moving, transform="SyN", affine_metric="MI", syn_metric="CC",
                 preset="Fast", **options)
    np.testing.assert_array_equal(a.warped.data, b.warped.data)


def test_the_register_command_takes_names_in_any_case(tmp_path, capsys):
    from parareg.cli.main import main

    for name, shift in (("fixed", 0.0), ("moving", 1.0)):
        parareg.save(blob(shift=(shift, 0.0, 0.0)), tmp_path / f"{name}.nii.gz")
    argv = ["register", str(tmp_path / "fixed.nii.gz"), str(tmp_path / "moving.nii.gz"),
            "-o", str(tmp_path / "o_"), "--threads", "1", "-q"]
    assert main([*argv, "-t", "Rigid", "-m", "MI", "-p", "FAST"]) == 0
    assert main([*argv, "-t", "bspline"]) == 2
    assert "invalid choice: 'bspline'" in capsys.readouterr().err


def test_a_name_that_is_no_option_still_fails():
    with pytest.raises(ValueError, match=r"metric must be one of \['correlation', "):
        AffineRegistration(metric="nmi")
    with pytest.raises(ValueError, match="preset must be one of"):
        register(blob(), blob(), preset="quick")
    with pytest.raises(ValueError, match="interpolation must be one of"):
        parareg.resample(blob(), blob(), interpolation="cubic")
    with pytest.raises(ValueError, match="pipeline step must be one of"):
        affine_registration(blob(), blob(), pipeline=(3,))


# --- options a metric does not use ---------------------------------------------------------


@pytest.mark.parametrize("metric", ["mi", "ssd", "em"])
def test_radius_is_refused_by_metrics_without_a_window(metric):
    with pytest.raises(ValueError, match=rf"radius=3 is not an option of the SyN metric "
                                         rf"'{metric}' \(it takes .*\); drop radius"):
        syn_registration(blob(), blob(), metric=metric, radius=3)


@pytest.mark.parametrize("metric", ["cc", "ssd", "em"])
def test_syn_bins_are_refused_by_metrics_without_a_histogram(metric):
    with pytest.raises(ValueError, match=rf"bins=16 is not an option of the SyN metric "
                                         rf"'{metric}'"):
        SymmetricDiffeomorphicRegistration(metric, bins=16)


def test_syn_bins_reach_mutual_information_and_bad_bins_are_named():
    assert SymmetricDiffeomorphicRegistration("mi", bins=16).metric.bins == 16
    assert SymmetricDiffeomorphicRegistration("mi").metric.bins == 32
    assert SymmetricDiffeomorphicRegistration("cc").metric.radius == 2
    with pytest.raises(ValueError, match="bins must be an integer >= 5"):
        SymmetricDiffeomorphicRegistration("mi", bins=3)


@pytest.mark.parametrize("metric", ["meansquares", "correlation"])
def test_affine_bins_are_refused_by_metrics_without_a_histogram(metric):
    with pytest.raises(ValueError, match=rf"bins=64 is not an option of the affine metric "
                                         rf"'{metric}' \(it takes moving_gradient\)"):
        affine_registration(blob(), blob(), metric=metric, bins=64)
    assert AffineRegistration(metric="mi", bins=64).metric.bins == 64
    assert AffineRegistration(metric="mi").metric.bins == 32


def test_options_next_to_a_metric_object_are_refused():
    with pytest.raises(ValueError, match=r"radius=3 is an option of a metric given by name; "
                                         r"the metric object CCMetric\(radius=4"):
        SymmetricDiffeomorphicRegistration(CCMetric(), radius=3)
    assert SymmetricDiffeomorphicRegistration(CCMetric(radius=3)).metric.radius == 3


def test_register_with_syn_mi_drops_the_presets_cc_window():
    fixed, moving = blob(), blob(shift=(1.0, 0.0, 0.0))
    result = register(fixed, moving, transform="syn", syn_metric="mi",
                      affine_options={"levels": AFFINE_LEVELS},
                      syn_options={"levels": SYN_LEVELS})
    assert np.isfinite(result.warped.data).all()
    with pytest.raises(ValueError, match="radius=3 is not an option of the SyN metric 'mi'"):
        register(fixed, moving, syn_metric="mi", syn_options={"radius": 3})


def test_a_starting_affine_that_an_initialiser_replaces_is_warned_about():
    fixed, moving = blob(), blob(shift=(1.0, 0.0, 0.0))
    start = np.eye(4)
    start[0, 3] = 1.0
    with pytest.warns(RegistrationWarning, match=r"starting_affine is not used: the pipeline "
                                                 r"starts with the initialiser 'center_of_mass'"
                                                 r".*pipeline=\('rigid',\)"):
        affine_registration(fixed, moving, pipeline=("center_of_mass", "rigid"),
                            levels=AFFINE_LEVELS, starting_affine=start)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RegistrationWarning)
        affine_registration(fixed, moving, pipeline=("rigid",), levels=AFFINE_LEVELS,
                            starting_affine=start)


# --- clashes between register's arguments and the stage options ----------------------------


@pytest.mark.parametrize("option, key, argument", [
    ("affine_options", "metric", "affine_metric"),
    ("affine_options", "fixed_mask", "fixed_mask"),
    ("affine_options", "num_threads", "num_threads"),
    ("affine_options", "seed", "seed"),
    ("syn_options", "metric", "syn_metric"),
    ("syn_options", "num_threads", "num_threads"),
    ("syn_options", "fixed_mask", "fixed_mask"),
])
def test_a_stage_option_that_repeats_an_argument_of_register_is_explained(option, key,
                                                                          argument):
    with pytest.raises(ValueError, match=rf"{option}=\{{'{key}': \.\.\.\}} clashes with "
                                         rf"register's own {argument}= argument"):
        register(blob(), blob(), **{option: {key: "correlation"}})


def test_an_unknown_stage_option_is_named_with_those_it_takes():
    with pytest.raises(ValueError, match=r"affine_options has an unknown key 'iterations'; "
                                         r"it takes \['bins', 'callback'"):
        register(blob(), blob(), affine_options={"iterations": 3})
    with pytest.raises(ValueError, match=r"syn_options has an unknown key 'fixed'"):
        register(blob(), blob(), syn_options={"fixed": blob()})
    with pytest.raises(ValueError, match="syn_options must be a dict"):
        register(blob(), blob(), syn_options=[("step", 0.3)])


# --- SyNError ------------------------------------------------------------------------------


class _NaNEnergy(SyNMetric):
    """A user's metric whose energy is not finite."""

    name = "nan"

    def compute(self, fixed_warped, moving_warped, *, vox2world, mask=None, num_threads=None):
        zeros = np.zeros((*fixed_warped.shape, fixed_warped.ndim), np.float32)
        return zeros, zeros.copy(), float("nan")


def test_syn_error_for_a_non_finite_energy_and_for_nothing_to_register():
    fixed, moving = blob(), blob(shift=(1.0, 0.0, 0.0))
    with pytest.raises(SyNError, match=r"returned a non-finite energy \(nan\) at level 0, "
                                       r"iteration 1"):
        syn_registration(fixed, moving, metric=_NaNEnergy(), levels=SYN_LEVELS)
    flat = parareg.Image(np.full(fixed.shape, 3.0, np.float32), fixed.vox2world)
    with pytest.raises(SyNError, match="moving is constant; nothing to register"):
        syn_registration(fixed, flat, levels=SYN_LEVELS)
    assert issubclass(SyNError, ValueError)  # the CLI reports it as bad input


# --- the explicit prepared pair ------------------------------------------------------------


def _masks(image):
    mask = np.zeros(image.shape, bool)
    mask[3:-3, 3:-3, 3:-3] = True
    return mask


def test_prepare_builds_each_level_once_for_every_stage(monkeypatch):
    fixed, moving = blob(), blob(shift=(1.0, -0.5, 0.5))
    calls = []
    setup = MeanSquares.setup

    def counting_setup(self, *args, **kwargs):
        calls.append(1)
        return setup(self, *args, **kwargs)

    monkeypatch.setattr(MeanSquares, "setup", counting_setup)
    affine_registration(fixed, moving, metric="meansquares", levels=AFFINE_LEVELS,
                        pipeline=("translation", "rigid", "affine"),
                        fixed_mask=_masks(fixed), moving_mask=_masks(moving))
    assert len(calls) == len(AFFINE_LEVELS)  # not once per stage and level


def test_run_on_a_prepared_pair_equals_optimize():
    fixed, moving = blob(), blob(shift=(1.0, -0.5, 0.5))
    reg = AffineRegistration(metric="meansquares", levels=AFFINE_LEVELS)
    prepared = reg.prepare(fixed, moving, fixed_mask=_masks(fixed), moving_mask=_masks(moving))
    assert isinstance(prepared, PreparedPair) and len(prepared.levels) == 2
    by_run = reg.run(prepared, "rigid")
    by_optimize = reg.optimize(fixed, moving, "Rigid", fixed_mask=_masks(fixed),
                               moving_mask=_masks(moving))
    np.testing.assert_array_equal(by_run.matrix, by_optimize.matrix)
    with pytest.raises(TypeError, match="prepared must come from this AffineRegistration"):
        AffineRegistration(metric="meansquares", levels=AFFINE_LEVELS).run(prepared, "rigid")


def test_a_reused_instance_keeps_no_state_of_a_pair():
    """The old per-id() cache kept the last pair's states on the instance, where a new pair
    with a recycled id() would find them; now optimize leaves the instance as it was."""
    reg = AffineRegistration(metric="meansquares", levels=AFFINE_LEVELS)
    before = dict(vars(reg))
    fixed = blob()
    results = []
    for shift in (1.0, -1.0):
        results.append(reg.optimize(fixed, blob(shift=(shift, 0.0, 0.0)),
                                    "translation").matrix[0, 3])
        assert vars(reg).keys() == before.keys()
        assert all(vars(reg)[k] is v for k, v in before.items())
    np.testing.assert_allclose(results, [1.0, -1.0], atol=0.05)
