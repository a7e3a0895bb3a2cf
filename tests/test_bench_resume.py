"""Resuming a study whose results.csv is damaged, and pairing images with labels by name.

The studies here run without Dask: the cluster and the task execution are replaced by an
in-process executor that records an ``ok`` row per task, so what is tested is the resume
plan (which tasks run again, what is set aside, what is refused), in milliseconds.
"""

from __future__ import annotations

import contextlib
import csv
import re
import warnings

import nibabel as nib
import numpy as np
import pytest

from parareg import bench
from parareg.bench import datasets, results, runner
from parareg.cli.bench import main as bench_main

METHODS = ["identity"]


def tiny_subjects(folder, ids=("sub-01", "sub-02", "sub-03"), *, image="{}_T1w.nii.gz",
                  labels="{}_dseg.nii.gz", grid=(6, 5)):
    """Tiny 2D images and label maps on one grid, in folder/images and folder/labels."""
    (folder / "images").mkdir(exist_ok=True)
    (folder / "labels").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for ident in ids:
        data = rng.random(grid).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.eye(4)), folder / "images" / image.format(ident))
        seg = (data > 0.5).astype(np.int16)
        nib.save(nib.Nifti1Image(seg, np.eye(4)), folder / "labels" / labels.format(ident))
    return str(folder / "images" / "*.nii.gz"), str(folder / "labels" / "*.nii.gz")


@pytest.fixture
def in_process(monkeypatch):
    """No cluster: every task gives an ``ok`` row at once; returns the list of tasks run."""
    ran = []

    def execute(client, todo, store, *, out, prealign, seed, hashes, **kwargs):
        for pair, method in todo:
            ran.append((pair.fixed.name, pair.moving.name, method.name))
            record = {"status": "ok", "dice_mean": 0.5, "n_labels": 1, "seconds": 0.01}
            row = runner._row(pair, method, record, prealign=prealign, seed=seed,
                              hash_=hashes[method.name])
            store.put(row, [{"label": 1, "dice": 0.5, "jaccard": 1 / 3}])
        return len(todo), 0

    monkeypatch.setattr(runner, "_client", lambda *a: contextlib.nullcontext())
    monkeypatch.setattr(runner, "_execute", execute)
    return ran


def study(tmp_path, **kwargs):
    images, labels = tiny_subjects(tmp_path)
    return dict(images=images, labels=labels, out=tmp_path / "study", methods=METHODS,
                qc=False, report=False, **kwargs)


def run_study(args):
    args = dict(args)
    return bench.run(args.pop("images"), args.pop("labels"), **args)


def lines(path):
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


# ----------------------------------------------------------------------------------------------
# damaged results.csv


def test_clean_resume_runs_nothing(tmp_path, in_process):
    args = study(tmp_path)
    first = run_study(args)
    assert first.computed == 6 and len(in_process) == 6
    again = run_study(args)
    assert (again.computed, again.skipped, again.rejected) == (0, 6, [])


@pytest.mark.parametrize("damage, line, reason", [
    ("garbage line", 3, "cell(s) where the header has"),
    ("torn last row", 7, "torn"),
    ("torn mid-cell", 7, "torn"),
    ("binary junk", 4, "cell(s) where the header has"),
    ("bad number", 2, "'dice_mean' is not a number"),
    ("unknown status", 5, "unknown status"),
    ("duplicate row", 8, "same (fixed, moving, method) as line 2"),
])
def test_damaged_rows_are_set_aside_and_rerun(tmp_path, in_process, damage, line, reason):
    args = study(tmp_path)
    run_study(args)
    path = args["out"] / "results.csv"
    text = lines(path)
    assert len(text) == 7  # header + 6 rows
    gone = None
    if damage == "garbage line":
        text.insert(2, "this is not a row\n")
    elif damage == "torn last row":
        gone, text[6] = text[6], text[6][:20]
    elif damage == "torn mid-cell":
        gone, text[6] = text[6], text[6].rstrip("\n")[:-1]  # the JSON of 'info' cut short
    elif damage == "binary junk":
        text.insert(3, "\x00\x1b\xff\xfe PK\x03\x04,\n")
    elif damage == "bad number":
        gone, text[1] = text[1], text[1].replace(",0.5,", ",zero point five,", 1)
    elif damage == "unknown status":
        gone, text[4] = text[4], text[4].replace(",ok,", ",okay,", 1)
    elif damage == "duplicate row":
        text.append(text[1])
    path.write_text("".join(text), encoding="utf-8")
    before = path.read_text(encoding="utf-8")
    in_process.clear()
    with pytest.warns(UserWarning, match=rf"line {line} \(.*{re.escape(reason)}.*set aside in "
                                         r"results.rejected.csv"):
        again = run_study(args)
    assert [r.line for r in again.rejected] == [line]
    assert reason in again.rejected[0].reason
    aside = list(csv.DictReader(open(args["out"] / "results.rejected.csv", encoding="utf-8")))
    assert [int(r["line"]) for r in aside] == [line]
    if gone is not None:  # a damaged row of a real task: that task, and only it, ran again
        fixed, moving, method = gone.split(",")[:3]
        assert in_process == [(fixed, moving, method)]
    else:
        assert in_process == []
    rows = results.read_csv(path)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    assert results.read_table(path)[1] == []  # the file is clean again
    assert before != path.read_text(encoding="utf-8")
    third = run_study(args)
    assert (third.computed, third.rejected) == (0, [])  # set aside once, not twice


def test_set_aside_rows_accumulate(tmp_path, in_process):
    args = study(tmp_path)
    run_study(args)
    path = args["out"] / "results.csv"
    for junk in ("first junk\n", "second junk\n"):
        path.write_text("".join(lines(path)) + junk, encoding="utf-8")
        with pytest.warns(UserWarning, match="damaged row"):
            run_study(args)
    aside = (args["out"] / "results.rejected.csv").read_text(encoding="utf-8")
    assert "first junk" in aside and "second junk" in aside


@pytest.mark.parametrize("content", [
    "name,age\nalice,31\nbob,42\n",
    "fixed,moving\na,b\n",
    "\x89PNG\r\n\x1a\n\x00\x00 binary",
    "fixed,fixed,moving,method,status,settings_hash\n",
])
def test_foreign_results_csv_is_refused(tmp_path, in_process, content):
    args = study(tmp_path)
    args["out"].mkdir()
    path = args["out"] / "results.csv"
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(results.ForeignTableError, match="is not a parareg study's results.csv"):
        run_study(args)
    assert path.read_bytes() == content.encode("utf-8")  # untouched
    assert in_process == []


def test_foreign_results_csv_cli(tmp_path, in_process, capsys):
    args = study(tmp_path)
    args["out"].mkdir()
    (args["out"] / "results.csv").write_text("name,age\nalice,31\n", encoding="utf-8")
    code = bench_main(["--images", args["images"], "--labels", args["labels"], "--methods",
                       "identity", "--no-qc", "--no-report", "-q", "--out", str(args["out"])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("parareg: error:") and "not a parareg study's results.csv" in err
    assert "Traceback" not in err


def test_damaged_per_label_rows_are_set_aside(tmp_path, in_process):
    args = study(tmp_path)
    run_study(args)
    path = args["out"] / "per_label_dice.csv"
    path.write_text("".join(lines(path)) + "a,b,identity,not-a-label,0.5,0.3\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="per_label_dice.csv: 1 damaged row"):
        run_study(args)
    assert "not-a-label" in (args["out"] / "per_label_dice.rejected.csv").read_text()


def test_report_of_a_damaged_study(tmp_path, in_process):
    """--report-only reads what it can, says what it left out, never a traceback."""
    pytest.importorskip("matplotlib")
    args = study(tmp_path)
    run_study(args)
    path = args["out"] / "results.csv"
    path.write_text("".join(lines(path)) + "garbage, line\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="left out of the report"):
        bench.write_report(args["out"])
    path.write_text("name,age\nalice,31\n", encoding="utf-8")
    with pytest.raises(results.ForeignTableError):
        bench.write_report(args["out"])


def test_empty_results_csv_is_a_fresh_study(tmp_path, in_process):
    args = study(tmp_path)
    args["out"].mkdir()
    (args["out"] / "results.csv").write_text("", encoding="utf-8")
    assert run_study(args).computed == 6


# ----------------------------------------------------------------------------------------------
# pairing images and labels by subject ID


def test_labels_that_sort_differently_are_paired_by_id(tmp_path):
    """Images sort as sub-10_T1w, sub-1_T1w ('0' < '_'), labels as sub-1, sub-10 ('.' < '0'):
    sorted order would pair each image with the other subject's labels (same grids)."""
    images, labels = tiny_subjects(tmp_path, ("sub-1", "sub-10"), labels="{}.nii.gz")
    subjects = bench.find_subjects(images, labels)
    assert [s.image.name for s in subjects] == ["sub-10_T1w.nii.gz", "sub-1_T1w.nii.gz"]
    assert [s.labels.name for s in subjects] == ["sub-10.nii.gz", "sub-1.nii.gz"]


def test_ixi_names_pair_up():
    assert datasets.subject_id("IXI012-HH-1211-T1_ds.nii.gz") == \
        datasets.subject_id("IXI012-HH-1211-T1_ds_DLMUSE.nii.gz") == "IXI012-HH-1211-T1"


def test_shuffled_names_refused_not_mispaired(tmp_path):
    """Same grids, same counts, sorted order would pair them: names do not match, so refuse."""
    images, _ = tiny_subjects(tmp_path, ("s1", "s2"), labels="{}.nii.gz")
    (tmp_path / "labels" / "s2.nii.gz").rename(tmp_path / "labels" / "t2.nii.gz")
    with pytest.raises(ValueError, match=r"do not pair up by subject ID.*'s2_T1w.nii.gz'.*'t2"):
        bench.find_subjects(images, str(tmp_path / "labels" / "*.nii.gz"))


def test_two_files_with_one_id_refused(tmp_path):
    images, labels = tiny_subjects(tmp_path, ("sub-01_ses-1", "sub-01_ses-2"))
    with pytest.raises(ValueError, match="same subject ID 'sub-01'.*pairs CSV"):
        bench.find_subjects(images, labels)


@pytest.mark.parametrize("cells, missing", [
    ("a.nii.gz,,b.nii.gz,bl.nii.gz", "'fixed_labels'"),
    (",al.nii.gz,,bl.nii.gz", "'fixed_image' and no 'moving_image'"),
    ("a.nii.gz,al.nii.gz", "'moving_image' and no 'moving_labels'"),
])
def test_empty_cell_in_pairs_csv(tmp_path, cells, missing):
    path = tmp_path / "pairs.csv"
    path.write_text("fixed_image,fixed_labels,moving_image,moving_labels\n"
                    "a.nii.gz,al.nii.gz,b.nii.gz,bl.nii.gz\n" + cells + "\n")
    with pytest.raises(ValueError, match=rf"row 2 \(line 3\) of .* has no {missing}"):
        bench.read_pairs_csv(path)


def test_warnings_are_real_warnings(tmp_path, in_process):
    """A clean resume warns about nothing."""
    args = study(tmp_path)
    run_study(args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_study(args)


def test_cli_resume_of_a_damaged_study(tmp_path, in_process, capsys):
    """The command line: a warning line naming the damaged line, the study goes on, exit 0."""
    args = study(tmp_path)
    argv = ["--images", args["images"], "--labels", args["labels"], "--methods", "identity",
            "--no-qc", "--no-report", "-q", "--out", str(args["out"])]
    assert bench_main(argv) == 0
    path = args["out"] / "results.csv"
    text = lines(path)
    path.write_text("".join(text[:-1]) + text[-1][:30], encoding="utf-8")  # a torn last row
    capsys.readouterr()
    assert bench_main(argv) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    assert err.startswith("parareg: warning: ") and "line 7" in err
    assert "results.rejected.csv" in err
    assert len(results.read_csv(path)) == 6


def test_per_label_rows_of_a_rejected_row_are_kept_aside(tmp_path, in_process):
    """The task of a torn results row runs again; its earlier per-label rows are not lost."""
    args = study(tmp_path)
    run_study(args)
    path = args["out"] / "results.csv"
    text = lines(path)
    path.write_text("".join(text[:-1]) + text[-1][:30], encoding="utf-8")
    with pytest.warns(UserWarning, match="line 7"):
        run_study(args)
    aside = list(csv.DictReader(open(args["out"] / "per_label_dice.rejected.csv",
                                     encoding="utf-8")))
    assert len(aside) == 1 and aside[0]["reason"] == "no row of results.csv has its key"
    assert len(results.read_csv(args["out"] / "per_label_dice.csv")) == 6


def test_resume_reads_a_table_written_before_the_hd95_and_sdlogj_columns(tmp_path, in_process):
    """A study from an older parareg (no hd95_mean, jacobian_max, sdlogj; no per-label hd95)
    resumes as it is: nothing rejected, nothing rerun, and the report draws."""
    args = study(tmp_path)
    run_study(args)
    new = {"hd95_mean", "jacobian_max", "sdlogj", "hd95"}
    for name in ("results.csv", "per_label_dice.csv"):
        path = args["out"] / name
        rows = list(csv.DictReader(open(path, encoding="utf-8")))
        columns = [c for c in rows[0] if c not in new]
        assert len(columns) < len(rows[0])
        results.write_csv_atomic(path, columns, rows)
    again = run_study(args)
    assert (again.computed, again.skipped, again.rejected) == (0, 6, [])
    if __import__("importlib").util.find_spec("matplotlib"):
        bench.write_report(args["out"])
