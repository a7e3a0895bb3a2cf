"""Many registrations on a real Dask cluster: complete output sets, resume, recorded failures.

The images are Mindboggle slices shrunk 4x (54x73 at 4 mm) so a registration takes well
under a second; the jobs run on a real 2-worker LocalCluster (module scope).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from parareg.population import Job, JobResult, RegistrationFailedWarning, register_many
from parareg import _cluster

from ._data import MINDBOGGLE, MINDBOGGLE_LABELS, needs_data

pytestmark = needs_data
#: a one-level affine stage: the machine is shared, and the tests are about the batch
QUICK = {"affine_options": {"levels": ((2, 1.0, 20),)}}
AFFINE = {"transform": "affine", **QUICK}
SYN = {"transform": "syn", "preset": "fast", **QUICK}


def shrunk_slices(folder, count, factor=4):
    """The first ``count`` Mindboggle slices and labels, every ``factor``-th voxel, as files."""
    import parareg
    from parareg.bench.task import shrink

    images, labels = [], []
    for i in range(count):
        for source, dest, is_labels in ((MINDBOGGLE[i], images, False),
                                        (MINDBOGGLE_LABELS[i], labels, True)):
            path = folder / f"{'lab' if is_labels else 'img'}{i}.nii.gz"
            parareg.save(shrink(parareg.load(source, labels=is_labels), factor), path)
            dest.append(path)
    return images, labels


@pytest.fixture(scope="module")
def slices(tmp_path_factory):
    return shrunk_slices(tmp_path_factory.mktemp("slices"), 3)


@pytest.fixture
def zero_image(tmp_path, slices):
    import parareg

    image = parareg.load(slices[0][0])
    path = tmp_path / "zero.nii.gz"
    parareg.save(image.with_data(np.zeros(image.shape, np.float32)), path)
    return path


def jobs_of(slices):
    images, labels = slices
    return [Job("affine", images[0], images[1], options=AFFINE),
            Job("syn", images[0], images[2], options=SYN,
                also={"labels": (labels[2], "genericlabel")}, inverse_warped=True)]


def test_jobs_write_complete_sets_and_come_back_in_order(tmp_path, slices, cluster):
    seen = []
    results = register_many(jobs_of(slices), out=tmp_path / "out", scheduler=cluster,
                            progress=seen.append)
    assert [r.name for r in results] == ["affine", "syn"]
    assert all(isinstance(r, JobResult) and r.ok and not r.skipped for r in results)
    assert sorted(p.row["name"] for p in seen) == ["affine", "syn"] and seen[-1].done == 2
    affine, syn = results
    assert sorted(affine.record["files"]) == ["affine", "record", "warped"]
    assert sorted(syn.record["files"]) == ["affine", "inverse_warp", "inverse_warped",
                                           "record", "warp", "warped", "warped_labels"]
    for result in results:
        for role in result.record["files"]:
            assert result.path(role).is_file()
        assert result.matrix.shape == (3, 3)
        assert result.load().shape == affine.load().shape
    labels = syn.load("warped_labels")
    assert labels.is_labels
    import parareg

    source = parareg.load(slices[1][2], labels=True).data
    assert set(np.unique(labels.data)) <= set(np.unique(source))
    assert syn.load_warp().shape == (*labels.shape, 2)
    # nothing but the set in the folder: no temporaries, no journal
    assert sorted(p.name for p in syn.folder.iterdir()) == sorted(syn.record["files"].values())


def test_rerun_skips_finished_jobs_and_refuses_other_settings(tmp_path, slices, cluster,
                                                              monkeypatch):
    out = tmp_path / "out"
    first = register_many(jobs_of(slices), out=out, scheduler=cluster)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a finished batch must not start a cluster")

    monkeypatch.setattr(_cluster, "cluster", no_cluster)
    again = register_many(jobs_of(slices), out=out, workers=1)
    assert all(r.skipped and r.ok for r in again)
    assert [r.record for r in again] == [r.record for r in first]
    changed = jobs_of(slices)
    changed[0] = Job("affine", changed[0].fixed, changed[0].moving,
                     options={**AFFINE, "transform": "rigid"})
    with pytest.raises(ValueError, match="other inputs or settings: affine"):
        register_many(changed, out=out, workers=1)


def test_a_failed_registration_is_recorded_and_warned_about(tmp_path, slices, zero_image,
                                                            cluster):
    images, _ = slices
    jobs = [Job("good", images[0], images[1], options=AFFINE),
            Job("bad", images[0], zero_image, options=AFFINE)]
    out = tmp_path / "out"
    with pytest.warns(RegistrationFailedWarning, match="'bad' failed"):
        good, bad = register_many(jobs, out=out, scheduler=cluster)
    assert good.ok and not bad.ok
    record = json.loads((out / "bad" / "record.json").read_text())
    assert record["status"] == "error" and "while registering" in record["error"]
    assert "Traceback" in record["traceback"]
    assert sorted(p.name for p in (out / "bad").iterdir()) == ["record.json"]
    with pytest.raises(KeyError, match="failed"):
        bad.path("warped")
    # a rerun says it again (never silently) and does not run it unless asked
    with pytest.warns(RegistrationFailedWarning, match="earlier run.*retry_failed"):
        again = register_many(jobs, out=out, scheduler=cluster)
    assert again[1].skipped and not again[1].ok
    with pytest.warns(RegistrationFailedWarning, match="'bad' failed \\("):
        retried = register_many(jobs, out=out, scheduler=cluster, retry_failed=True)
    assert retried[0].skipped and not retried[1].skipped


def test_outputs_are_identical_at_any_worker_and_thread_count(tmp_path, slices, cluster):
    """The same job on a new 1-worker local cluster with 1 thread and on the 2-worker
    cluster with 2 threads per registration: the same bytes in every file."""
    job = jobs_of(slices)[1:]
    one = register_many(job, out=tmp_path / "one", workers=1, task_threads=1)[0]
    two = register_many(job, out=tmp_path / "two", scheduler=cluster, task_threads=2)[0]
    assert one.record["threads"] == 1 and two.record["threads"] == 2
    for role, name in one.record["files"].items():
        if role != "record":
            assert (one.folder / name).read_bytes() == (two.folder / name).read_bytes(), name


def test_bad_jobs_are_refused_before_any_work(tmp_path, slices):
    images, _ = slices
    out = tmp_path / "out"
    cases = [
        ([Job("a", images[0], images[1]), Job("a", images[0], images[2])], "unique"),
        ([Job("../a", images[0], images[1])], "file name"),
        ([Job("a", images[0], images[1], options={"metric": "cc"})], "not an option"),
        ([Job("a", images[0], images[1], options={"preset": "slow"})], "preset"),
        ([Job("a", images[0], images[1], also={"bad key": (images[1], "linear")})], "also"),
        ([Job("a", images[0], images[1], also={"lab": (images[1], "cubic")})], "interpolation"),
        (["not a job"], "Job"),
    ]
    for jobs, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            register_many(jobs, out=out)
    with pytest.raises(ValueError, match="workers"):
        register_many([Job("a", images[0], images[1])], out=out, workers=0)
    assert not out.exists()


def test_warnings_point_at_the_caller(tmp_path, slices, zero_image, cluster):
    images, _ = slices
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        register_many([Job("bad", images[0], zero_image, options=AFFINE)],
                      out=tmp_path / "out", scheduler=cluster)
    assert [w.filename for w in caught if w.category is RegistrationFailedWarning] == [__file__]


def test_a_local_cluster_closes_without_killing_its_workers():
    """The local cluster's worker processes come from a fork server, not ``spawn`` (a
    spawned one outlives its closed worker while its interpreter tears down, and on a loaded
    machine its nanny kills it after 4 s: "Worker process still alive after 4.0 seconds,
    killing" at every close); each ends with its worker: exit code 0, no such warning."""
    import logging
    import logging.handlers
    import multiprocessing
    import os

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform: Dask's spawn is kept")
    from distributed import Client

    seen = logging.handlers.BufferingHandler(1000)
    logger = logging.getLogger("distributed.nanny")
    logger.addHandler(seen)
    try:
        with _cluster.local_cluster(2, 1) as local:
            with Client(local) as client:
                parents = client.run(os.getppid)
                processes = [nanny.process.process for nanny in local.workers.values()]
    finally:
        logger.removeHandler(seen)
    assert len(parents) == 2 and os.getpid() not in parents.values()  # not spawned by us
    assert [p.exitcode for p in processes] == [0, 0]
    assert not [r for r in seen.buffer if "still alive" in r.getMessage()]
