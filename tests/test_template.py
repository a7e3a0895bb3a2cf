"""A 2D template of 4 Mindboggle slices on real Dask clusters: the outputs, the same bits at
1 and 2 workers, resume after a real kill, the command line with a failing registration.

The slices are shrunk 4x (54x73 at 4 mm) and the builds are one iteration of the fast preset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import parareg
from ._data import needs_data
from .test_population_batch import QUICK, shrunk_slices

pytestmark = needs_data
pytest.importorskip("distributed")
SETTINGS = {"iterations": 1, "preset": "fast", "registration_options": QUICK}
SRC = Path(parareg.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    return shrunk_slices(tmp_path_factory.mktemp("slices"), 4)


@pytest.fixture(scope="module")
def two_workers(slices, tmp_path_factory):
    """The template built on a 2-worker local cluster, with the labels warped along."""
    images, labels = slices
    out = tmp_path_factory.mktemp("two") / "template"
    seen = []
    result = parareg.template.build(images, out=out, labels=labels, workers=2, task_threads=1,
                                    progress=seen.append, **SETTINGS)
    return result, seen


def test_template_outputs(two_workers, slices):
    result, seen = two_workers
    out = result.path.parent
    assert result.path == out / "template.nii.gz"
    for name in ("template_iter0.nii.gz", "template_iter1.nii.gz", "qc_iter0.png",
                 "qc_iter1.png", "template.json", "report.png"):
        assert (out / name).is_file(), name
    template = parareg.load(result.path)
    first = parareg.load(slices[0][0])
    assert template.shape == first.shape and np.allclose(template.vox2world, first.vox2world)
    assert np.isfinite(template.data).all() and template.data.std() > 0
    assert np.array_equal(template.data, parareg.load(out / "template_iter1.nii.gz").data)
    for name in result.names:
        folder = out / "iter1" / name
        for file in ("0GenericAffine.mat", "1Warp.nii.gz", "1InverseWarp.nii.gz",
                     "Warped.nii.gz", "Warped_labels.nii.gz", "record.json"):
            assert (folder / file).is_file(), folder / file
    summary = json.loads((out / "template.json").read_text())["iterations"]
    assert summary["1"]["mean_warp_mm"] > 0 and summary["1"]["images"] == 4
    assert [(p.iteration, p.stage) for p in seen if p.stage != "registered"] == [
        (0, "registering"), (0, "updated"), (1, "registering"), (1, "updated")]
    assert sum(p.stage == "registered" for p in seen) == 3 + 4
    assert not result.failed


def test_template_sharpens_the_average(two_workers):
    """The subjects warped to the first template agree with each other better than the
    affinely aligned ones do: what the SyN iteration is for."""
    result, _ = two_workers
    out = result.path.parent

    def spread(iteration):
        stack = np.stack([parareg.load(out / iteration / name / "Warped.nii.gz").data
                          for name in result.names[1:]])
        return float(stack.std(axis=0).mean())

    assert spread("iter1") < spread("iter0")
    assert result.summary[1]["sharpness"] > result.summary[0]["sharpness"]


def test_the_same_template_at_one_worker(two_workers, slices, tmp_path):
    images, labels = slices
    one = parareg.template.build(images, out=tmp_path / "one", labels=labels, workers=1,
                                 task_threads=1, qc=False, **SETTINGS)
    two, _ = two_workers
    for k in (0, 1):
        a = parareg.load(one.path.parent / f"template_iter{k}.nii.gz").data
        b = parareg.load(two.path.parent / f"template_iter{k}.nii.gz").data
        assert np.array_equal(a, b), k
    assert one.path.read_bytes() == two.path.read_bytes()


BUILD = """
import sys
import parareg
from tests.test_template import SETTINGS
parareg.template.build(sys.argv[2:], out=sys.argv[1], workers=2, task_threads=1, qc=False,
                       **SETTINGS)
"""


def _command(images, out):
    return [sys.executable, "-c", BUILD, str(out), *map(str, images)]


def test_resume_after_a_kill(two_workers, slices, tmp_path):
    """SIGKILL the whole run (client and workers) once an iteration-1 registration has
    finished; the rerun keeps the finished ones and gives the uninterrupted run's template."""
    images, _ = slices
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(SRC.parent)]))
    proc = subprocess.Popen(_command(images, out), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300  # a loaded machine (six helpers) needed > 120 s
        while not list(out.glob("iter1/*/record.json")):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no registration finished in 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "template.nii.gz").exists()
    before = {p.parent.name: p.read_text() for p in out.glob("iter1/*/record.json")}
    assert 0 < len(before) < 4
    done = subprocess.run(_command(images, out), env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    after = {p.parent.name: p.read_text() for p in out.glob("iter1/*/record.json")}
    assert len(after) == 4 and all(after[name] == text for name, text in before.items())
    expected, _ = two_workers
    assert np.array_equal(parareg.load(out / "template.nii.gz").data, expected.template.data)
    assert not list(out.rglob(".*parareg-tmp*")) and not list(out.rglob(".parareg-journal*"))


def test_other_settings_are_refused_before_any_work(two_workers, slices):
    result, _ = two_workers
    with pytest.raises(ValueError, match="other images or settings"):
        parareg.template.build(slices[0], out=result.path.parent, gradient_step=0.5,
                               labels=slices[1], **SETTINGS)


def test_the_command_line_reports_progress_and_leaves_a_failed_registration_out(
        slices, tmp_path, capsys):
    """``parareg template`` with an all-zero image among three slices (affine, to be quick):
    its registrations fail, are recorded and left out with a warning; the others make the
    template; a line per registration and per iteration."""
    from parareg.cli.main import main

    images, _ = slices
    zero = tmp_path / "zero.nii.gz"
    first = parareg.load(images[0])
    parareg.save(first.with_data(np.zeros(first.shape, np.float32)), zero)
    out = tmp_path / "cli"
    code = main(["template", *map(str, images[:3]), str(zero), "-o", str(out),
                 "--iterations", "1", "--transform", "affine", "--workers", "2", "--no-qc"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"template: {out / 'template.nii.gz'}" in captured.out
    assert "left out after failing: zero" in captured.out
    lines = captured.err.splitlines()
    assert "initial template: 3 registrations" in lines
    assert "iteration 1/1: 4 registrations" in lines
    progress = [line for line in lines if line.startswith("  [")]
    assert len(progress) == 7 and sum("zero FAILED" in line for line in progress) == 2
    warned = [line for line in lines if line.startswith("parareg: warning: registration 'zero'")]
    assert len(warned) == 2 and all("left out" in line for line in warned)
    summary = json.loads((out / "template.json").read_text())["iterations"]
    assert summary["1"]["images"] == 3 and summary["1"]["failed"] == ["zero"]
    record = json.loads((out / "iter1" / "zero" / "record.json").read_text())
    assert record["status"] == "error" and "while registering" in record["error"]
    template = parareg.load(out / "template.nii.gz").data
    assert np.isfinite(template).all() and template.std() > 0


def test_a_two_contrast_template(two_workers, slices, tmp_path):
    """T1 and a second contrast per subject (here the T1's intensities inverted inside the
    head, as a T2 looks): each contrast gets its template, every registration is driven by
    both (its affine differs from the T1-only build's), and the second template is the
    second contrast's (anti-correlated with the T1 template in the head)."""
    images, _ = slices
    second = []
    for i, path in enumerate(images):
        t1 = parareg.load(path)
        inside = t1.data > 0.1 * t1.data.max()
        second.append(tmp_path / f"t2_{i}.nii.gz")
        parareg.save(t1.with_data(np.where(inside, t1.data.max() - t1.data, 0.0)
                                  .astype(np.float32)), second[-1])
    out = tmp_path / "two-contrast"
    result = parareg.template.build(images, out=out, channels={"t2": second}, workers=2,
                                    task_threads=1, qc=False, **SETTINGS)
    for name in ("template.nii.gz", "template_t2.nii.gz", "template_iter1.nii.gz",
                 "template_t2_iter0.nii.gz", "template_t2_iter1.nii.gz"):
        assert (out / name).is_file(), name
    for name in result.names:
        assert (out / "iter1" / name / "Warped_t2.nii.gz").is_file()
    t1, t2 = result.template, result.channels["t2"]
    assert t2.shape == t1.shape and np.allclose(t2.vox2world, t1.vox2world)
    assert np.array_equal(parareg.load(out / "template_t2.nii.gz").data, t2.data)
    head = t1.data > 0.3 * t1.data.max()
    assert np.corrcoef(t1.data[head], t2.data[head])[0, 1] < -0.5
    single, _ = two_workers
    for name in result.names[1:]:
        both = json.loads((out / "iter0" / name / "record.json").read_text())["matrix"]
        alone = json.loads((single.path.parent / "iter0" / name / "record.json").read_text())
        assert not np.allclose(both, alone["matrix"]), name
    assert result.summary[1]["images"] == 4 and not result.failed


def test_a_full_disk_stops_the_build_with_one_line_and_a_rerun_finishes_it(slices, tmp_path):
    """A real write failure for want of space (``RLIMIT_FSIZE`` of 4 KiB in the build's
    processes, its Dask workers included: every image file fails as on a full disk): one
    ``parareg: error:`` line naming the file, exit 2, no registration recorded as failed and
    no temporaries; the same command without the limit then builds the template."""
    import resource

    images, _ = slices
    out = tmp_path / "full"
    argv = [sys.executable, "-m", "parareg", "template", *map(str, images[:3]), "-o", str(out),
            "--iterations", "1", "--transform", "affine", "--workers", "2", "--no-qc"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(SRC.parent)]))

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    full = subprocess.run(argv, env=env, preexec_fn=small_files, capture_output=True, text=True,
                          timeout=300)
    assert full.returncode == 2, full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("parareg: error:")]
    assert len(errors) == 1, full.stderr
    assert errors[0].startswith("parareg: error: File too large: could not write")
    assert "Warped.nii.gz" in errors[0] and "rerun to resume" in errors[0]
    assert not list(out.rglob("record.json"))  # nothing recorded as a failed registration
    assert not list(out.rglob(".*parareg-tmp*")) and not list(out.rglob(".parareg-journal*"))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (out / "template.nii.gz").is_file()
    summary = json.loads((out / "template.json").read_text())["iterations"]
    assert summary["1"]["images"] == 3 and summary["1"]["failed"] == []
