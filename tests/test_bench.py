"""parareg.bench: metrics against plain NumPy, pairs and checks of the inputs, and small real
studies on the 2D Mindboggle slices run on real local Dask clusters (2 worker processes):
outputs, an injected failing method, a timeout, and interrupt-and-resume without redoing
finished rows."""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import shutil
import time
from functools import partial

import nibabel as nib
import numpy as np
import pytest

from parareg import bench
from parareg.bench import datasets, methods, peers, report, results, runner, scoring
from parareg.bench.methods import identity_method
from parareg.measures import hausdorff95
from parareg.cli.bench import main as bench_main

from ._data import DATA, needs_data

MINDBOGGLE = DATA / "mindboggle_2d"
IMAGES = str(MINDBOGGLE / "images" / "*.nii.gz")
LABELS = str(MINDBOGGLE / "labels" / "*.nii.gz")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------------------------
# test-only methods (module level, so the task processes can import them)


def boom(case):
    """A method that always fails."""
    raise RuntimeError(f"boom: injected failure on {case.moving_name} -> {case.fixed_name}")


def counted(case, *, counter):
    """The identity registration, appending ``fixed moving`` to ``counter`` on every call."""
    with open(counter, "a", encoding="utf-8") as f:
        f.write(f"{case.fixed_name} {case.moving_name}\n")
    return identity_method(case)


def sleepy(case, *, pid_file):
    """A method that hangs (for the timeout): writes its process id, then sleeps."""
    with open(pid_file, "w", encoding="utf-8") as f:
        f.write(str(os.getpid()))
    time.sleep(120)
    return identity_method(case)


@pytest.fixture
def test_methods(tmp_path):
    """Registers test:boom, test:count and test:sleep; yields the counter and pid files."""
    counter, pid_file = tmp_path / "calls.txt", tmp_path / "sleepy.pid"
    bench.register_method("test:boom", boom, warmup=False, replace=True)
    bench.register_method("test:count", partial(counted, counter=str(counter)), warmup=False,
                          replace=True)
    bench.register_method("test:sleep", partial(sleepy, pid_file=str(pid_file)), warmup=False,
                          replace=True)
    yield {"counter": counter, "pid_file": pid_file}
    for name in ("test:boom", "test:count", "test:sleep"):
        bench.unregister_method(name)


def calls(counter) -> list[tuple[str, str]]:
    if not counter.exists():
        return []
    return [tuple(line.split()) for line in counter.read_text().splitlines()]


def csv_keys(out) -> list[tuple[str, str, str]]:
    return [(r["fixed"], r["moving"], r["method"]) for r in results.read_csv(out / "results.csv")]


# ----------------------------------------------------------------------------------------------
# metrics against straightforward NumPy


def hand_made_labels():
    """Two 12x10 label maps: label 1 shifted by a row, 2 identical, 3 only fixed, 4 only moving."""
    fixed = np.zeros((12, 10), dtype=np.int32)
    moving = np.zeros_like(fixed)
    fixed[1:5, 1:5] = 1
    moving[2:6, 1:5] = 1
    fixed[7:10, 6:9] = 2
    moving[7:10, 6:9] = 2
    fixed[0, 9] = 3
    moving[11, 0] = 4
    moving[8, 6] = 1  # one voxel of 2 overwritten: 2 loses a voxel, 1 gains a stray one
    return fixed, moving


def numpy_dice_jaccard(fixed, moving, label):
    f, m = fixed == label, moving == label
    inter = np.sum(f & m)
    return 2.0 * inter / (f.sum() + m.sum()), inter / np.sum(f | m)


def numpy_nmi(a, b, bins=32):
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    joint, _, _ = np.histogram2d(a, b, bins=bins, range=[[a.min(), a.max()], [b.min(), b.max()]])
    p = joint / joint.sum()

    def h(q):
        q = q[q > 0]
        return -np.sum(q * np.log(q))

    return (h(p.sum(axis=0)) + h(p.sum(axis=1))) / h(p)


def test_label_overlap_matches_numpy_on_hand_made_maps():
    fixed, moving = hand_made_labels()
    labels, dice, jaccard = scoring.label_overlap(fixed, moving, labels=[1, 2, 3, 4])
    for label, d, j in zip(labels, dice, jaccard):
        expected_d, expected_j = numpy_dice_jaccard(fixed, moving, label)
        assert d == pytest.approx(expected_d) and j == pytest.approx(expected_j)
    # by hand: label 1 has 16 voxels in fixed, 17 in moving, 12 shared
    assert dice[0] == pytest.approx(24 / 33) and jaccard[0] == pytest.approx(12 / 21)
    assert dice[2] == 0.0 and dice[3] == 0.0  # present in one map only
    assert scoring.shared_labels(fixed, moving).tolist() == [1, 2]


def test_score_registration_matches_numpy():
    rng = np.random.default_rng(3)
    fixed, moving = hand_made_labels()
    image = rng.normal(size=fixed.shape)
    warped = 0.7 * image + 0.3 * rng.normal(size=fixed.shape)
    jac = np.ones(fixed.shape)
    jac[0, :3] = [0.0, -0.5, 1e-9]  # two folded voxels (<= 0), one tiny positive
    s = scoring.score_registration(image, fixed, warped, moving, labels=[1, 2], jacobian=jac,
                                   spacing=(1, 2))
    expected = [numpy_dice_jaccard(fixed, moving, label) for label in (1, 2)]
    assert s["dice_mean"] == pytest.approx(np.mean([d for d, _ in expected]))
    assert s["jaccard_mean"] == pytest.approx(np.mean([j for _, j in expected]))
    assert s["n_labels"] == 2 and s["labels"] == [1, 2]
    assert s["ncc"] == pytest.approx(np.corrcoef(image.ravel(), warped.ravel())[0, 1])
    assert s["nmi"] == pytest.approx(numpy_nmi(image, warped))
    assert s["folded_percent"] == pytest.approx(100.0 * 2 / fixed.size)
    assert s["jacobian_min"] == -0.5 and s["jacobian_max"] == 1.0
    assert s["sdlogj"] == pytest.approx(np.log(np.clip(jac[fixed > 0], 1e-9, None)).std())
    assert s["hd95"] == hausdorff95(fixed, moving, labels=[1, 2], spacing=(1, 2)).tolist()
    assert s["hd95_mean"] == pytest.approx(np.mean(s["hd95"]))
    linear = scoring.score_registration(image, fixed, image, fixed, labels=[1, 2])
    assert linear["dice_mean"] == 1.0 and linear["ncc"] == pytest.approx(1.0)
    assert np.isnan(linear["folded_percent"])  # no Jacobian: not a number, not 0
    assert np.isnan(linear["sdlogj"]) and np.isnan(linear["hd95_mean"])  # nor spacing


def test_warp_affine_2d_shift():
    img = np.arange(20.0).reshape(4, 5)
    shift = np.eye(3)
    shift[1, 2] = 1.0  # fixed y -> moving y + 1
    out = scoring.warp_affine(img, np.eye(3), img.shape, np.eye(3), shift, order=0)
    assert np.array_equal(out[:, :4], img[:, 1:]) and not out[:, 4].any()


@pytest.mark.parametrize("module", [scoring, datasets, methods, runner, report, peers, bench])
def test_docstring_examples(module):
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0


# ----------------------------------------------------------------------------------------------
# subjects, pairs, methods


@needs_data
def test_find_subjects_matches_labels_in_sorted_order():
    subjects = bench.find_subjects(IMAGES, LABELS)
    assert len(subjects) == 12
    for s in subjects:  # same subject id before the first "_slice"/"_DKT31"
        assert s.labels.name.startswith(s.name.split("_")[0] + "_")
    assert datasets.check_subjects(subjects) == 2
    assert len(bench.make_pairs(subjects)) == 132
    assert len(bench.make_pairs(subjects, mode="unordered")) == 66
    sample = bench.make_pairs(subjects, n=5, seed=7)
    assert sample == bench.make_pairs(subjects, n=5, seed=7)  # seeded
    assert len(set(p.key for p in sample)) == 5 and all(p.fixed != p.moving for p in sample)
    with pytest.raises(ValueError, match="only 132 exist"):
        bench.make_pairs(subjects, n=500)


@needs_data
def test_read_pairs_csv_relative_paths(tmp_path):
    subjects = bench.find_subjects(IMAGES, LABELS)[:2]
    for s in subjects:
        shutil.copy(s.image, tmp_path / s.image.name)
        shutil.copy(s.labels, tmp_path / s.labels.name)
    a, b = subjects
    (tmp_path / "pairs.csv").write_text(
        "fixed_image,fixed_labels,moving_image,moving_labels\n"
        f"{a.image.name},{a.labels.name},{b.image.name},{b.labels.name}\n")
    (pair,) = bench.read_pairs_csv(tmp_path / "pairs.csv")
    assert pair.key == (a.name, b.name) and pair.moving.labels == tmp_path / b.labels.name


def test_method_registry():
    assert bench.get_method("parareg") is bench.get_method("parareg:syn")
    assert bench.get_method("parareg:syn-fast").settings["register"]["preset"] == "fast"
    with pytest.raises(ValueError, match="unknown method.*'nope'.*choose from"):
        bench.resolve_methods("identity,nope")
    with pytest.raises(ValueError, match="without commas"):
        bench.register_method("a,b", boom)
    bench.register_method("test:absent", boom, requires=("no_such_module_xyz",), replace=True)
    try:
        installed, missing = bench.resolve_methods(["identity", "test:absent", "identity"])
        assert [m.name for m in installed] == ["identity"]
        assert [m.name for m in missing] == ["test:absent"]
        assert "test:absent" not in bench.available_methods()
    finally:
        bench.unregister_method("test:absent")


def test_list_methods_cli(capsys):
    assert bench_main(["--list-methods"]) == 0
    listing = capsys.readouterr().out
    for name in ("identity", "parareg:syn", "parareg:affine", "ants", "greedy", "dipy"):
        assert name in listing


# ----------------------------------------------------------------------------------------------
# bad input: a clear error before any work starts


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a Dask cluster is started."""
    def refuse(*args, **kwargs):
        raise AssertionError("a cluster was started although the input is bad")

    monkeypatch.setattr(runner, "_client", refuse)


def two_subjects(folder, *, break_grid=False):
    """Copy 2 Mindboggle subjects to folder/images, folder/labels; optionally move a label map
    to another grid (one column cropped)."""
    (folder / "images").mkdir()
    (folder / "labels").mkdir()
    for s in bench.find_subjects(IMAGES, LABELS)[:2]:
        shutil.copy(s.image, folder / "images" / s.image.name)
        shutil.copy(s.labels, folder / "labels" / s.labels.name)
    if break_grid:
        path = sorted((folder / "labels").iterdir())[1]
        img = nib.load(path)
        cropped = np.asarray(img.dataobj)[:, 1:]
        nib.save(nib.Nifti1Image(cropped, img.affine, img.header), path)
    return str(folder / "images" / "*.nii.gz"), str(folder / "labels" / "*.nii.gz")


@needs_data
@pytest.mark.parametrize("case, error, message", [
    ("no files", FileNotFoundError, "matches no file"),
    ("no labels", ValueError, "needs a label map"),
    ("labels missing for some", ValueError, "2 image.*1 label map"),
    ("label map on another grid", ValueError, "another grid than the image"),
    ("unknown method", ValueError, "unknown method.*'parareg:warp-speed'"),
])
def test_bad_input_fails_before_any_work(tmp_path, no_work, case, error, message):
    images, labels = two_subjects(tmp_path, break_grid=case == "label map on another grid")
    kwargs = {"methods": ["identity"]}
    if case == "no files":
        images = str(tmp_path / "empty" / "*.nii.gz")
    elif case == "no labels":
        labels = None
    elif case == "labels missing for some":
        os.remove(sorted((tmp_path / "labels").iterdir())[0])
    elif case == "unknown method":
        kwargs["methods"] = ["identity", "parareg:warp-speed"]
    out = tmp_path / "study"
    with pytest.raises(error, match=message):
        bench.run(images, labels, out=out, **kwargs)
    assert not (out / "results.csv").exists()


@needs_data
def test_bad_input_cli_exit_status(tmp_path, no_work, capsys):
    code = bench_main(["--images", str(tmp_path / "*.nii.gz"), "--labels", LABELS,
                       "--methods", "identity", "--out", str(tmp_path / "study")])
    assert code == 2
    assert "matches no file" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# atomic CSV writes


def test_csv_write_is_atomic(tmp_path, monkeypatch):
    store = results.ResultStore(tmp_path)
    row = {"fixed": "a", "moving": "b", "method": "m", "status": "ok", "dice_mean": 0.5}
    store.put(row, [{"label": 1, "dice": 0.5, "jaccard": 1 / 3}])
    before = (tmp_path / "results.csv").read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")

    from parareg.io import outputs

    monkeypatch.setattr(outputs.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(dict(row, moving="c"), [])
    monkeypatch.undo()
    assert (tmp_path / "results.csv").read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["per_label_dice.csv", "results.csv"]
    (loaded,) = results.read_csv(tmp_path / "results.csv")
    assert loaded["dice_mean"] == 0.5 and loaded["status"] == "ok"


# ----------------------------------------------------------------------------------------------
# real studies on Dask


@needs_data
def test_cli_study_end_to_end(tmp_path, test_methods, capsys):
    """parareg presets + an injected failing method, rigid prealignment, a local cluster with 2
    workers started by the command itself: CSVs, markdown, PNGs, failure recorded."""
    pytest.importorskip("distributed")
    out = tmp_path / "study"
    argv = ["--images", IMAGES, "--labels", LABELS, "--pairs", "2", "--seed", "3",
            "--methods", "identity,parareg:syn-fast,test:boom", "--prealign", "rigid",
            "--workers", "2", "--threads-per-worker", "1", "--task-threads", "1",
            "--out", str(out)]
    assert bench_main(argv) == 1  # the study finished, with failures recorded
    captured = capsys.readouterr()
    assert "6 task(s) run, 0 already done, 2 failed" in captured.out
    assert "6/6" in captured.err  # the progress line

    rows = results.read_csv(out / "results.csv")
    assert len(rows) == 6 and len({(r["fixed"], r["moving"]) for r in rows}) == 2
    by_method = {m: [r for r in rows if r["method"] == m]
                 for m in ("identity", "parareg:syn-fast", "test:boom")}
    for r in by_method["test:boom"]:
        assert r["status"] == "error" and "RuntimeError" in r["error"]
        assert "injected failure" in r["error"]
    for r in by_method["identity"] + by_method["parareg:syn-fast"]:
        assert r["status"] == "ok", r["error"]
        assert 0 < r["dice_mean"] <= 1 and 0 < r["jaccard_mean"] <= r["dice_mean"]
        assert r["n_labels"] > 10 and -1 <= r["ncc"] <= 1 and 1 <= r["nmi"] <= 2
        assert r["seconds"] > 0 and r["peak_rss_mb"] >= r["baseline_rss_mb"] > 0
        assert r["threads"] == 1 and r["prealign"] == "rigid" and r["prealign_seconds"] > 0
        assert len(json.loads(r["info"])["prealign_matrix"]) == 3  # 2D: a 3x3 world matrix
    for ident, syn in zip(by_method["identity"], by_method["parareg:syn-fast"]):
        assert syn["dice_mean"] > ident["dice_mean"]  # registration improves the overlap
        assert syn["ncc"] > ident["ncc"]
        assert 0 <= syn["folded_percent"] < 1  # a SyN map: measured, and barely folds
        assert ident["folded_percent"] == 0
    per_label = results.read_csv(out / "per_label_dice.csv")
    assert len(per_label) == sum(r["n_labels"] for r in rows if r["status"] == "ok")
    for r in by_method["parareg:syn-fast"]:
        mine = [p["dice"] for p in per_label
                if (p["fixed"], p["moving"], p["method"]) == (r["fixed"], r["moving"],
                                                              r["method"])]
        assert np.mean(mine) == pytest.approx(r["dice_mean"])

    md = (out / "report.md").read_text()
    assert "| method | pairs ok / run | Dice |" in md
    assert "| parareg:syn-fast | 2 / 2 |" in md and "| test:boom | 0 / 2 |" in md
    assert " ± " in md and "Failed tasks (2)" in md and "injected failure" in md
    if importlib.util.find_spec("matplotlib") is not None:  # plots need the 'bench' extra
        for png in ("dice_boxplot.png", "time_boxplot.png"):
            assert (out / png).read_bytes()[:8] == PNG_MAGIC
    assert (out / "per_label_summary.csv").is_file()
    assert len(list((out / "logs").glob("*.txt"))) == 2
    study = json.loads((out / "study.json").read_text())
    assert study["methods"]["parareg:syn-fast"]["settings"]["register"]["preset"] == "fast"
    assert study["prealign_pipeline"] == ["center_of_mass", "translation", "rigid"]
    (out / "report.md").unlink()
    assert bench_main(["--report-only", "--out", str(out)]) == 0  # redrawn from the files
    assert (out / "report.md").read_text() == md
    if importlib.util.find_spec("parareg.qc") is None:  # QC pictures need parareg.qc
        return
    pictures = sorted((out / "qc").glob("*.png"))
    assert len(pictures) == 4  # every successful registration
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in pictures)
    assert "## Best and worst pair of each method" in md and "](qc/" in md


@needs_data
def test_interrupted_study_resumes_without_redoing_finished_rows(tmp_path, test_methods,
                                                                 cluster):
    counter = test_methods["counter"]
    out = tmp_path / "study"
    study = dict(out=out, methods=["test:count"], n_pairs=4, seed=5, scheduler=cluster,
                 qc=False, report=False)

    def interrupt_after_two(p):
        if p.done == 2:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the study

    with pytest.raises(KeyboardInterrupt):
        bench.run(IMAGES, LABELS, progress=interrupt_after_two, **study)
    first = results.read_csv(out / "results.csv")
    assert len(first) == 2  # the file holds exactly the rows finished before the interrupt
    finished = {(r["fixed"], r["moving"]) for r in first}

    second = bench.run(IMAGES, LABELS, **study)
    assert (second.computed, second.skipped, second.failed) == (2, 2, 0)
    assert len(second.rows) == 4 and all(r["status"] == "ok" for r in second.rows)
    made = calls(counter)
    for key in finished:  # finished rows were not recomputed...
        assert made.count(key) == 1
    for row in first:  # ...and kept as they were
        (again,) = [r for r in second.rows if (r["fixed"], r["moving"]) == (row["fixed"],
                                                                             row["moving"])]
        assert again["finished"] == row["finished"] and again["seconds"] == row["seconds"]

    # a study killed between two writes loses at most its last rows: drop one, rerun
    keys = csv_keys(out)
    kept = [r for r in results.read_csv(out / "results.csv") if r["moving"] != keys[1][1]
            or r["fixed"] != keys[1][0]]
    results.write_csv_atomic(out / "results.csv", results.COLUMNS, kept)
    n_calls = len(calls(counter))
    third = bench.run(IMAGES, LABELS, **study)
    assert (third.computed, third.skipped) == (1, 3)
    assert calls(counter)[n_calls:] == [keys[1][:2]]  # only the missing row was computed
    assert csv_keys(out) == keys  # rows back in the study's order

    fourth = bench.run(IMAGES, LABELS, **study)  # all done: nothing runs
    assert (fourth.computed, fourth.skipped) == (0, 4) and len(calls(counter)) == n_calls + 1

    with pytest.raises(ValueError, match="other settings"):  # a changed study is not mixed in
        bench.run(IMAGES, LABELS, **dict(study, prealign="rigid"))


@needs_data
def test_timeout_kills_the_task_and_the_study_goes_on(tmp_path, test_methods, cluster):
    out = tmp_path / "study"
    result = bench.run(IMAGES, LABELS, out=out, methods=["test:sleep", "test:count"],
                       n_pairs=1, scheduler=cluster, timeout=6, qc=False)
    rows = {r["method"]: r for r in result.rows}
    assert rows["test:sleep"]["status"] == "timeout"
    assert "timed out after 6 s" in rows["test:sleep"]["error"]
    assert rows["test:count"]["status"] == "ok"
    assert result.failed == 1 and (out / "report.md").is_file()
    pid = int(test_methods["pid_file"].read_text())
    with pytest.raises(ProcessLookupError):  # the hung process was killed, not left behind
        os.kill(pid, 0)
