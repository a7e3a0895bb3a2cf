"""Many independent registrations on Dask: resumable, failures recorded, bit-reproducible.

The layer under template building (many subjects to one template) and
multi-atlas segmentation (many atlases to one target): a list of
:class:`Job` (fixed, moving, :func:`parareg.register` options) in, a list of
:class:`JobResult` out, in job order.

Execution
---------
Every input is read and checked on the client before any work (a missing or
unreadable image, fixed and moving of different dimensionality, an unknown
option: ``ValueError``/``FileNotFoundError``, nothing run). The jobs then run
on a Dask ``distributed`` cluster: a :class:`~distributed.LocalCluster` of
``workers`` processes (``threads_per_worker`` jobs at once each), or the
cluster at ``scheduler``. Each job runs :func:`parareg.register` with
``task_threads`` threads inside a worker and **the worker writes its outputs**
into ``out/NAME/`` as one :class:`parareg.io.OutputSet` (so paths, inputs and
``out``, must be shared with the workers of a remote cluster):

``0GenericAffine.mat``, ``1Warp.nii.gz``, ``1InverseWarp.nii.gz``
    the transforms, named and written as ``antsRegistration`` writes them
    (:mod:`parareg.io.registration_files`; no warps for rigid/affine jobs);
``Warped.nii.gz``
    the moving image on the fixed grid;
``Warped_KEY.nii.gz``
    each image of :attr:`Job.also` (e.g. an atlas' labels) on the fixed grid;
``InverseWarped.nii.gz``
    with :attr:`Job.inverse_warped`, the fixed image on the moving grid;
``record.json``
    ``status``, the settings hash, seconds (per stage), threads, worker, the
    affine matrix, which ``Warped_KEY`` images are labels.

Resume
------
``record.json`` is written in the same transaction as the files it lists, so
its presence means a complete set; a killed run leaves at most temporaries,
which the next run removes (:func:`parareg.io.outputs.recover`). Rerunning
into the same ``out`` skips every job whose record has the same settings hash
(inputs' contents, options, extra images); a record made with other settings
stops the run before any work. Failed jobs are skipped too (and warned about
again) unless ``retry_failed``.

Failures
--------
A job that raises (or whose worker dies) gets a ``record.json`` with
``status: "error"``, the message and the traceback, and a
:class:`RegistrationFailedWarning`; the other jobs go on. Its
:class:`JobResult` has ``ok == False``: callers leave it out, never silently.
A full disk is no failure of a job: the batch stops with an
:class:`~parareg.io.OutputWriteError` naming the file, nothing of the job
written, and a rerun (with space) runs it again.

Reproducibility
---------------
A job's outputs depend on its inputs and options only: parareg's
registrations are bit-identical at any thread count, and each job runs
alone, so the files (and anything a caller computes from them in job order)
are identical whatever ``workers``, ``threads_per_worker`` and
``task_threads``.

Modules: this one runs a batch; :mod:`~parareg.population.batch_checks` checks and
fingerprints the jobs before any work; :mod:`~parareg.population.batch_worker` is what a
worker runs for one job.
"""

from __future__ import annotations
import errno
import os
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._cluster import Cluster, Progress, check_positive
from .batch_checks import Inputs, check_job, read_record
from .batch_worker import FORMAT, RECORD, output_names, run_job, write_failure

__all__ = ["Cluster", "Job", "JobResult", "RECORD", "RegistrationFailedWarning", "output_names",
           "register_many"]

class RegistrationFailedWarning(RuntimeWarning):
    """A registration of a batch failed: it is recorded and left out of the results."""


@dataclass(frozen=True)
class Job:
    """One registration of a batch: ``moving`` onto ``fixed``.

    Attributes
    ----------
    name : str
        Unique in the batch; the job's folder under ``out`` (letters, digits,
        ``._-``).
    fixed, moving : Image or path
        Paths are read by the worker (so a remote cluster must see them).
    options : dict
        Keyword arguments of :func:`parareg.register` (``transform``,
        ``preset``, ``syn_metric``, ``seed``...), except the images and
        ``num_threads``.
    also : dict
        ``KEY -> (image or path, interpolation)``: more images of the moving
        space put on the fixed grid with the result, written as
        ``Warped_KEY.nii.gz`` (e.g. ``{"labels": (path, "genericlabel")}``).
        Label interpolations (``nearest``, ``genericlabel``) read and keep
        integer labels.
    inverse_warped : bool
        Also write the fixed image on the moving grid.
    """

    name: str
    fixed: Any
    moving: Any
    options: Mapping = field(default_factory=dict)
    also: Mapping = field(default_factory=dict)
    inverse_warped: bool = False


@dataclass
class JobResult:
    """What :func:`register_many` returns for each job (in job order)."""

    name: str
    folder: Path
    #: the job's ``record.json``
    record: dict
    #: True when an earlier run into the same ``out`` finished the job
    skipped: bool = False

    @property
    def ok(self) -> bool:
        return self.record.get("status") == "ok"

    @property
    def error(self) -> str | None:
        return self.record.get("error")

    def path(self, role: str) -> Path:
        """The file of ``role`` (``"affine"``, ``"warp"``, ``"inverse_warp"``, ``"warped"``,
        ``"inverse_warped"``, ``"record"``, or ``"warped_KEY"`` for an image of ``also``)."""
        files = self.record.get("files", {})
        if role not in files:
            raise KeyError(f"job {self.name!r} has no {role!r} output (it has "
                           f"{sorted(files) or 'none: it failed'})")
        return self.folder / files[role]

    @property
    def matrix(self) -> np.ndarray:
        """The affine stage, fixed world -> moving world (RAS mm), float64."""
        return np.asarray(self.record["matrix"], dtype=np.float64)

    def load(self, role: str = "warped"):
        """The image of ``role`` as a :class:`parareg.Image` (labels keep their integers)."""
        from ..io.nifti import load

        labels = self.record.get("label_roles")  # records of earlier versions: every also-image
        return load(self.path(role), labels=role in labels if labels is not None
                    else role.startswith("warped_"))

    def load_warp(self, role: str = "warp") -> np.ndarray:
        """The displacement field of ``role``, shape ``(*fixed.shape, ndim)``, RAS mm."""
        from ..io.itk_warp import read_warp

        return read_warp(self.path(role))[0]


def _warn_failed(result: JobResult, *, earlier: bool, stacklevel: int) -> None:
    when = "in an earlier run " if earlier else ""
    hint = "; pass retry_failed=True to run it again" if earlier else ""
    warnings.warn(f"registration {result.name!r} failed {when}({result.error}); it is "
                  f"recorded in {result.folder / RECORD} and left out{hint}",
                  RegistrationFailedWarning, stacklevel=stacklevel + 1)


def _spec(job: Job, folder: Path, settings_hash: str, task_threads: int) -> dict:
    import dataclasses

    from ..image import Image
    from ..registration.channels import Channel

    def text(obj):
        return f"<Image {obj.shape}>" if isinstance(obj, Image) else str(obj)

    def portable(obj):  # absolute: a worker's working folder may not be this one's
        return os.path.abspath(obj) if isinstance(obj, (str, os.PathLike)) else obj

    options = dict(job.options)
    if options.get("channels"):
        options["channels"] = [
            dataclasses.replace(c, fixed=portable(c.fixed), moving=portable(c.moving))
            if isinstance(c, Channel) else c for c in options["channels"]]
    return {"name": job.name, "folder": portable(folder), "settings_hash": settings_hash,
            "num_threads": task_threads, "fixed": portable(job.fixed),
            "moving": portable(job.moving), "fixed_text": text(job.fixed),
            "moving_text": text(job.moving), "options": options,
            "also": {k: (portable(v[0]), v[1]) for k, v in dict(job.also).items()},
            "inverse_warped": bool(job.inverse_warped)}


def register_many(jobs, *, out, workers: int | None = None, threads_per_worker: int = 1,
                  task_threads: int | None = None, scheduler=None, retry_failed: bool = False,
                  progress=None) -> list[JobResult]:
    """Run (or resume) independent registrations on Dask; one :class:`JobResult` per job.

    Parameters
    ----------
    jobs : sequence of Job
    out : path
        Each job writes ``out/NAME/`` (see the module docstring). Rerunning
        into it resumes.
    workers : int, optional
        Worker processes of the local cluster; default: as many as jobs to
        run, at most the usable CPUs. Ignored with ``scheduler``.
    threads_per_worker : int
        Jobs at once per worker (ignored with ``scheduler``).
    task_threads : int, optional
        Threads per registration; default: usable CPUs divided by the jobs
        running at once on the local cluster, or 1 with ``scheduler``. The
        outputs do not depend on it.
    scheduler : str, distributed.Client or Cluster, optional
        Address of an existing cluster, a client of it (left open), or a
        :class:`Cluster` shared by several batches (its own sizes then apply).
    retry_failed : bool
        Run again the jobs that an earlier run recorded as failed.
    progress : callable, optional
        ``progress(Progress)`` after each finished job (``Progress.row`` holds
        its record's status, seconds and error, ``Progress.result`` is its
        :class:`JobResult`); the library never prints.

    Returns
    -------
    list of JobResult
        In the order of ``jobs``. Failed jobs have ``ok == False`` and came
        with a :class:`RegistrationFailedWarning`.

    Raises
    ------
    ValueError, FileNotFoundError, TypeError
        Before any work: a bad job (duplicate or unsafe name, unknown option,
        unreadable image, fixed and moving of different dimensionality), or
        a job folder holding a registration made with other settings.
    ImportError
        ``distributed`` is not installed (and some job is left to run).
    parareg.io.OutputWriteError
        A job could not write its outputs for want of space (a full disk or
        quota, a file-size limit): the other jobs are cancelled, the finished
        ones kept; a rerun resumes.

    Examples
    --------
    >>> from parareg.population import Job, register_many
    >>> jobs = [Job(f"sub{i}", "template.nii.gz", f"sub{i}.nii.gz",
    ...             options={"preset": "fast"}) for i in range(4)]
    >>> results = register_many(jobs, out="registrations", workers=2)  # doctest: +SKIP
    >>> [r.ok for r in results]  # doctest: +SKIP
    [True, True, True, True]
    """
    jobs = list(jobs)
    out = Path(out)
    threads_per_worker = check_positive(threads_per_worker, "threads_per_worker")
    workers = check_positive(workers, "workers", allow_none=True)
    task_threads = check_positive(task_threads, "task_threads", allow_none=True)
    names = [getattr(job, "name", None) for job in jobs]
    duplicates = sorted({n for n in names if names.count(n) > 1}, key=str)
    if duplicates:
        raise ValueError(f"job names must be unique (each is a folder), got {duplicates} "
                         "more than once")
    inputs = Inputs()
    for i, job in enumerate(jobs):
        if not isinstance(job, Job):
            raise TypeError(f"jobs[{i}] must be a parareg.population.Job, got "
                            f"{type(job).__name__}")
    hashes = [check_job(job, i, inputs) for i, job in enumerate(jobs)]
    del inputs
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, JobResult] = {}
    stale = []
    for job, settings_hash in zip(jobs, hashes):
        folder = out / job.name
        record = read_record(folder)
        if record is None:
            continue
        if record.get("settings_hash") != settings_hash or record.get("format") != FORMAT:
            stale.append(job.name)
        elif record.get("status") == "ok" or not retry_failed:
            results[job.name] = JobResult(job.name, folder, record, skipped=True)
    if stale:
        raise ValueError(f"{out} holds registrations made with other inputs or settings: "
                         f"{', '.join(stale)}; use another out folder, or delete those "
                         "folders to compute them again")
    for result in results.values():
        if not result.ok:
            _warn_failed(result, earlier=True, stacklevel=2)
    todo = [(job, h) for job, h in zip(jobs, hashes) if job.name not in results]
    if todo:
        shared = isinstance(scheduler, Cluster)
        runner = scheduler if shared else Cluster(
            scheduler=scheduler, workers=workers, threads_per_worker=threads_per_worker,
            task_threads=task_threads)
        try:
            client = runner.client(len(todo))
            _execute(client, todo, out, task_threads or runner.task_threads, results, progress,
                     skipped=len(jobs) - len(todo))
        finally:
            if not shared:
                runner.close()
    return [results[job.name] for job in jobs]


def _execute(client, todo, out, task_threads, results, progress, *, skipped) -> None:
    from distributed import as_completed

    from ..io.outputs import OutputWriteError

    t0 = time.perf_counter()
    futures = {}
    for job, settings_hash in todo:
        spec = _spec(job, out / job.name, settings_hash, task_threads)
        future = client.submit(run_job, spec, key=f"parareg-register-{job.name}-"
                                                  f"{uuid.uuid4().hex[:8]}", pure=False)
        futures[future] = (job, spec)
    done = failed = 0
    for future in as_completed(list(futures)):
        job, spec = futures.pop(future)
        folder = out / job.name
        try:
            record = future.result()
        except Exception as exc:  # the worker died (segfault, out of memory), was lost...
            record = {"name": job.name, "status": "error", "format": FORMAT,
                      "settings_hash": spec["settings_hash"], "fixed": spec["fixed_text"],
                      "moving": spec["moving_text"],
                      "error": f"{type(exc).__name__}: {exc}"}
            write_failure(folder, record)
        if record.get("status") == "no-space":
            client.cancel(list(futures))
            raise OutputWriteError(record.get("errno", errno.ENOSPC),
                                   f"{record['error']}; the registrations that finished are "
                                   f"kept in {out}: free some space and rerun to resume")
        result = JobResult(job.name, folder, record)
        results[job.name] = result
        done += 1
        if not result.ok:
            failed += 1
            _warn_failed(result, earlier=False, stacklevel=3)
        if progress is not None:
            progress(Progress(done, len(todo), failed, skipped, time.perf_counter() - t0,
                              {k: record.get(k) for k in ("name", "status", "seconds", "error",
                                                          "worker")}, result))
