"""Multi-atlas segmentation end to end on a real 2-worker Dask cluster (Mindboggle slices).

One Mindboggle slice (shrunk 2x: 108 x 146 at 2 mm) is segmented from three
others (leave-one-out), by majority vote and by JLF, with the fast preset.
"""

from __future__ import annotations

import json
import warnings

import nibabel as nib
import numpy as np
import pytest

from parareg.bench.scoring import mean_dice
from parareg.population.fusion import majority_vote
from parareg.population.segment import AtlasExcludedWarning, segment

from ._data import MINDBOGGLE_LABELS, needs_data
from .test_population_batch import shrunk_slices

pytestmark = needs_data
N_ATLASES = 3


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    """Target (slice 0) and atlases (slices 1..3), shrunk 2x, with labels, as files."""
    return shrunk_slices(tmp_path_factory.mktemp("slices"), N_ATLASES + 1, factor=2)


def _truth(slices):
    import parareg

    return parareg.load(slices[1][0], labels=True).data


def _score(labels, truth):
    present = np.unique(truth)
    return mean_dice(truth, labels, labels=present[present != 0])


@pytest.fixture(scope="module")
def majority(slices, cluster, tmp_path_factory):
    images, labels = slices
    out = tmp_path_factory.mktemp("majority") / "seg.nii.gz"
    result = segment(images[0], images[1:], labels[1:], fusion="majority", preset="fast",
                     out=out, scheduler=cluster)
    return result, out


def test_leave_one_out_majority_writes_a_complete_set(majority, slices):
    result, out = majority
    truth = _truth(slices)
    assert result.labels.shape == truth.shape and result.used and not result.excluded
    saved = nib.load(out)
    np.testing.assert_array_equal(np.asarray(saved.dataobj), result.labels.data)
    report = json.loads(out.with_name("seg_segment.json").read_text())
    assert report["labels"] == result.label_values.tolist() and report["fusion"] == "majority"
    post = np.asarray(nib.load(out.with_name("seg_posteriors.nii.gz")).dataobj)
    assert post.shape == (*truth.shape, 1, len(report["labels"]))
    np.testing.assert_allclose(post.sum(axis=-1), 1.0, atol=1e-6)
    # the fused map is the majority vote of the warped labels the batch wrote
    warped = [nib.load(p).get_fdata().astype(np.int32)
              for p in sorted(out.with_name("seg_registrations").glob("*/Warped_labels.nii.gz"))]
    assert len(warped) == N_ATLASES
    np.testing.assert_array_equal(majority_vote(warped, posteriors=False).labels,
                                  result.labels.data)
    assert _score(result.labels.data, truth) > 0.45
    # the report: per label, each atlas's Dice against the fused map, the mean posterior
    per_label = {s["label"]: s for s in report["per_label"]}
    assert sorted(per_label) == [v for v in report["labels"] if v != 0]
    assert all(len(s["atlas_dice"]) == N_ATLASES for s in per_label.values())
    big = max(per_label.values(), key=lambda s: s["voxels"])
    assert 0.5 < big["posterior"] <= 1 and 0.3 < min(big["atlas_dice"]) <= 1
    assert out.with_name("seg_report.png").read_bytes()[:4] == b"\x89PNG"


def test_leave_one_out_staple_from_the_same_registrations(majority, slices, cluster):
    images, labels = slices
    registrations = majority[1].with_name("seg_registrations")  # resumed: nothing registered
    result = segment(images[0], images[1:], labels[1:], fusion="staple", preset="fast",
                     registrations=registrations, scheduler=cluster)
    np.testing.assert_allclose(result.posteriors.sum(axis=-1), 1.0, atol=1e-6)
    assert _score(result.labels.data, _truth(slices)) > 0.45
    assert set(result.seconds) == {"checks", "registrations", "fusion"}


def test_leave_one_out_jlf_beats_a_sane_floor(majority, slices, cluster, tmp_path):
    images, labels = slices
    truth = _truth(slices)
    registrations = majority[1].with_name("seg_registrations")  # resumed: nothing registered
    result = segment(images[0], images[1:], labels[1:], fusion="jlf", preset="fast",
                     registrations=registrations, scheduler=cluster, patch_radius=1,
                     search_radius=1, posteriors=False)
    assert result.posteriors is None
    jlf, maj = _score(result.labels.data, truth), _score(majority[0].labels.data, truth)
    assert jlf > 0.45 and jlf > maj - 0.05, (jlf, maj)


def test_a_failed_registration_is_left_out_with_a_warning(slices, cluster, tmp_path):
    import parareg

    images, labels = slices
    zero = tmp_path / "zero.nii.gz"
    image = parareg.load(images[1])
    parareg.save(image.with_data(np.zeros(image.shape, np.float32)), zero)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = segment(images[0], [images[1], zero], [labels[1], labels[1]],
                         transform="affine", out=tmp_path / "seg.nii.gz", scheduler=cluster)
    assert result.excluded == ["001_zero"] and result.used == ["000_img1"]
    assert any(issubclass(w.category, AtlasExcludedWarning) for w in caught)
    report = json.loads((tmp_path / "seg_segment.json").read_text())
    assert report["excluded"] == ["001_zero"]


def test_bad_inputs_are_refused_before_any_work(slices, tmp_path):
    images, labels = slices
    with pytest.raises(ValueError, match="2 atlases but 1 label maps"):
        segment(images[0], images[1:3], labels[1:2])
    with pytest.raises(ValueError, match=r"labels\[0\] must hold integer labels|labels\[0\]"):
        segment(images[0], images[1:2], images[2:3])
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        segment(images[0], images[1:2], labels[1:2], fusion="jlf", beta=0)
    with pytest.raises(ValueError, match="set joint label fusion"):
        segment(images[0], images[1:2], labels[1:2], patch_radius=1)
    with pytest.raises(ValueError, match="patch_metric must be one of"):
        segment(images[0], images[1:2], labels[1:2], fusion="jlf", patch_metric="mse")
    with pytest.raises(ValueError, match="patch_metric set joint label fusion"):
        segment(images[0], images[1:2], labels[1:2], patch_metric="msq")
    with pytest.raises(ValueError, match="fusion must be one of"):
        segment(images[0], images[1:2], labels[1:2], fusion="vote")
    with pytest.raises(ValueError, match="do nothing with fusion='staple'"):
        segment(images[0], images[1:2], labels[1:2], fusion="staple", search_radius=1)
    with pytest.raises(ValueError, match="preset must be one of"):
        segment(images[0], images[1:2], labels[1:2], preset="quick")
    with pytest.raises(ValueError, match="register_options must be a dict"):
        segment(images[0], images[1:2], labels[1:2], register_options=["seed", 1])
    with pytest.raises(ValueError, match="not an option of parareg.register"):
        segment(images[0], images[1:2], labels[1:2], register_options={"sed": 1})
    with pytest.raises(ValueError, match=r"labels\[0\] has shape"):
        segment(images[0], images[1:2], [MINDBOGGLE_LABELS[1]])
    assert not list(tmp_path.iterdir())


def test_command_line_writes_the_label_map(slices, cluster, tmp_path, capsys):
    from parareg.cli.main import main

    images, labels = slices
    out = tmp_path / "seg.nii.gz"
    status = main(["segment", str(images[0]), "--atlases", *map(str, images[1:3]),
                   "--labels", *map(str, labels[1:3]), "--fusion", "jlf", "--patch-radius", "1",
                   "--search-radius", "1", "--transform", "affine", "-o", str(out),
                   "--scheduler", cluster, "--no-posteriors"])
    assert status == 0, capsys.readouterr().err
    assert out.is_file() and (tmp_path / "seg_segment.json").is_file()
    assert not (tmp_path / "seg_posteriors.nii.gz").exists()
    assert "fused 2 atlases by jlf" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--fusion", "jlf", "--patch-metric", "mse"], "--patch-metric: invalid choice: 'mse'"),
    (["--patch-metric", "msq"], "--patch-metric set joint label fusion"),
])
def test_command_line_refuses_bad_patch_metric(slices, tmp_path, capsys, extra, message):
    from parareg.cli.main import main

    images, labels = slices
    with pytest.raises(SystemExit) as exit_info:
        code = main(["segment", str(images[0]), "--atlases", str(images[1]), "--labels",
                     str(labels[1]), "-o", str(tmp_path / "seg.nii.gz"), *extra])
        raise SystemExit(code)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("parareg: error:") and message in err, err
    assert not list(tmp_path.iterdir())
