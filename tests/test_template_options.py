"""Bad values of every template option: a clear error naming the option, before any work —
nothing written (the output folder is not even created) and no cluster started.

Tiny synthetic images (no real data, no Dask workers).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

import parareg
from parareg import _cluster


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("options")
    rng = np.random.default_rng(0)

    def nifti(name, shape, affine=None):
        path = folder / name
        nib.save(nib.Nifti1Image(rng.random(shape).astype(np.float32),
                                 np.eye(4) if affine is None else affine), path)
        return path

    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    return {"a": nifti("a.nii.gz", (12, 12, 12)), "b": nifti("b.nii.gz", (12, 12, 12)),
            "a2": nifti("a_t2.nii.gz", (12, 12, 12)), "b2": nifti("b_t2.nii.gz", (12, 12, 12)),
            "small": nifti("small.nii.gz", (10, 12, 12)),
            "shifted": nifti("shifted.nii.gz", (12, 12, 12), shifted),
            "flat": nifti("flat.nii.gz", (12, 12))}


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a refused build must not start a cluster")

    monkeypatch.setattr(_cluster, "cluster", refuse)


def _t2(f):
    return {"t2": [f["a2"], f["b2"]]}


#: (id, the build's keyword arguments from the files, what the message says)
CASES = [
    ("one-image", lambda f: {"images": [f["a"]]}, "at least 2 images"),
    ("iterations-0", lambda f: {"iterations": 0}, "iterations"),
    ("iterations-float", lambda f: {"iterations": 1.5}, "iterations"),
    ("iterations-bool", lambda f: {"iterations": True}, "iterations"),
    ("transform", lambda f: {"transform": "bspline"}, "transform"),
    ("preset", lambda f: {"preset": "slow"}, "preset"),
    ("early-levels-0", lambda f: {"early_levels": 0}, "early_levels"),
    ("early-levels-float", lambda f: {"early_levels": 1.5}, "early_levels"),
    ("early-levels-text", lambda f: {"early_levels": "all"}, "early_levels"),
    ("syn-metric", lambda f: {"syn_metric": "nmi"}, "syn_metric"),
    ("gradient-step-0", lambda f: {"gradient_step": 0}, "gradient_step"),
    ("gradient-step-nan", lambda f: {"gradient_step": float("nan")}, "gradient_step"),
    ("blending-weight", lambda f: {"blending_weight": 1.5}, "blending_weight"),
    ("labels-count", lambda f: {"labels": [f["a"]]}, "one label map per image"),
    ("registration-options-preset", lambda f: {"registration_options": {"preset": "fast"}},
     "repeats build's own preset"),
    ("registration-options-channels", lambda f: {"registration_options": {"channels": []}},
     "repeats build's own channels"),
    ("workers", lambda f: {"workers": 0}, "workers"),
    ("threads-per-worker", lambda f: {"threads_per_worker": -1}, "threads_per_worker"),
    ("task-threads", lambda f: {"task_threads": 0}, "task_threads"),
    ("mixed-dims", lambda f: {"images": [f["a"], f["flat"]]}, "must all be 2D or all 3D"),
    ("initial-dims", lambda f: {"initial": f["flat"]}, "initial is 2D"),
    ("channels-list", lambda f: {"channels": [f["a2"], f["b2"]]}, "channels must be a dict"),
    ("channels-labels", lambda f: {"channels": {"labels": [f["a2"], f["b2"]]}},
     "channels: names"),
    ("channels-name", lambda f: {"channels": {"t 2": [f["a2"], f["b2"]]}}, "channels: names"),
    ("channels-count", lambda f: {"channels": {"t2": [f["a2"]]}},
     r"channels\['t2'\]: give one image per subject"),
    ("channels-shape", lambda f: {"channels": {"t2": [f["a2"], f["small"]]}},
     r"channels\['t2'\]\[1\] must be on the grid"),
    ("channels-grid", lambda f: {"channels": {"t2": [f["a2"], f["shifted"]]}},
     r"channels\['t2'\]\[1\] must be on the grid"),
    ("channels-missing", lambda f: {"channels": {"t2": [f["a2"], f["a"].parent / "no.nii.gz"]}},
     "no.nii.gz"),
    ("channels-initial", lambda f: {"channels": _t2(f), "initial": f["a"]},
     "initial with channels"),
    ("weights-alone", lambda f: {"channel_weights": {"t2": 1.0}},
     "channel_weights needs channels"),
    ("weights-name", lambda f: {"channels": _t2(f), "channel_weights": {"pd": 1.0}},
     "not one of channels"),
    ("weights-negative", lambda f: {"channels": _t2(f), "channel_weights": {"t2": -1}},
     r"channel_weights\['t2'\]"),
    ("weights-inf", lambda f: {"channels": _t2(f), "channel_weights": {"t2": float("inf")}},
     r"channel_weights\['t2'\]"),
]


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_a_bad_option_is_refused_before_anything_is_written(files, tmp_path, case):
    _, make, match = case
    kwargs = make(files)
    images = kwargs.pop("images", [files["a"], files["b"]])
    out = tmp_path / "out"
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        parareg.template.build(images, out=out, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_other_settings_in_out_are_refused_and_nothing_changes(files, tmp_path):
    """A folder holding another build's template.json: refused, and not a byte of it changes."""
    from parareg.population.template_outputs import SETTINGS

    out = tmp_path / "out"
    out.mkdir()
    (out / SETTINGS).write_text('{"settings_hash": "0123456789abcdef"}')
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    with pytest.raises(ValueError, match="other images or settings"):
        parareg.template.build([files["a"], files["b"]], out=out)
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before


def test_early_iterations_run_the_coarsest_syn_levels():
    from parareg.population.template import _early_options
    from parareg.registration.pipeline import preset_options

    options = {"transform": "syn", "preset": "fast", "seed": 3}
    levels = preset_options("fast", 3)["levels"]
    for count in (1, 2):
        early = _early_options(options, count, 3)
        assert early["syn_options"]["levels"] == tuple(levels[:count])
        assert early["preset"] == "fast" and early["seed"] == 3
    assert _early_options(options, 9, 3)["syn_options"]["levels"] == tuple(levels)
    given = {**options, "syn_options": {"levels": ((1, 0.0, 5),), "step": 0.3}}
    assert _early_options(given, 1, 3)["syn_options"] == given["syn_options"]
    assert options == {"transform": "syn", "preset": "fast", "seed": 3}  # not changed


@pytest.mark.parametrize("extra, match", [
    (["--early-levels", "0"], "--early-levels"),
    (["--early-levels", "some"], "--early-levels"),
    (["--channel", "t2"], "--channel t2: give one image per subject, got 0 for 2"),
    (["--channel", "t2", "A2"], "--channel t2: give one image per subject, got 1 for 2"),
    (["--channel", "t2", "A2", "B2", "--channel", "t2", "A2", "B2"], "given twice"),
    (["--channel", "labels", "A2", "B2"], "channels: names"),
    (["--channel", "t2", "A2", "SMALL"], r"channels\['t2'\]\[1\] must be on the grid"),
])
def test_a_bad_command_line_option_is_one_error_line_and_nothing_written(files, tmp_path,
                                                                         capsys, extra, match):
    import re

    from parareg.cli.main import main

    paths = {"A2": files["a2"], "B2": files["b2"], "SMALL": files["small"]}
    out = tmp_path / "out"
    argv = ["template", str(files["a"]), str(files["b"]), "-o", str(out),
            *[str(paths.get(a, a)) for a in extra]]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("parareg: error: "), lines
    assert re.search(match, lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == []


def test_a_chained_registration_runs_the_coarsest_prealign_level():
    from parareg.population.template import CHAINED_AFFINE_LEVELS
    from parareg.registration.pipeline import SYN_PREALIGN_LEVELS

    assert CHAINED_AFFINE_LEVELS == tuple(SYN_PREALIGN_LEVELS[:1])
