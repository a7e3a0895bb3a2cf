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
    ``status``, the settings hash, seconds, threads, worker, the affine matrix.

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

Reproducibility
---------------
A job's outputs depend on its inputs and options only: parareg's
registrations are bit-identical at any thread count, and each job runs
alone, so the files (and anything a caller computes from them in job order)
are identical whatever ``workers``, ``threads_per_worker`` and
``task_threads``.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
import time
import traceback
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._cluster import Progress, check_positive, cluster, usable_cpus, worker_name

__all__ = ["Cluster", "Job", "JobResult", "RECORD", "RegistrationFailedWarning", "output_names",
           "register_many"]

#: the file that marks a finished job (its settings, status and numbers)
RECORD = "record.json"
#: role -> file name in a job's folder (transforms as parareg.io.registration_files names them)
_NAMES = {"affine": "0GenericAffine.mat", "warp": "1Warp.nii.gz",
          "inverse_warp": "1InverseWarp.nii.gz", "warped": "Warped.nii.gz",
          "inverse_warped": "InverseWarped.nii.gz", "record": RECORD}
#: register() arguments a job may not set: the images are the job's, threads are the batch's
_NOT_OPTIONS = ("fixed", "moving", "num_threads")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: bump when the outputs of a job change meaning: records of another version are refused
_FORMAT = 1


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

        return load(self.path(role), labels=role.startswith("warped_"))

    def load_warp(self, role: str = "warp") -> np.ndarray:
        """The displacement field of ``role``, shape ``(*fixed.shape, ndim)``, RAS mm."""
        from ..io.itk_warp import read_warp

        return read_warp(self.path(role))[0]


def output_names(*, deformable: bool, also=(), inverse_warped: bool = False) -> dict:
    """Role -> file name of the outputs of a job (see the module docstring).

    >>> sorted(output_names(deformable=False, also=["labels"]).items())
    [('affine', '0GenericAffine.mat'), ('record', 'record.json'), ('warped', 'Warped.nii.gz'), \
('warped_labels', 'Warped_labels.nii.gz')]
    """
    roles = ["affine", "warped", "record"]
    if deformable:
        roles += ["warp", "inverse_warp"]
    if inverse_warped:
        roles.append("inverse_warped")
    names = {role: _NAMES[role] for role in roles}
    names.update({f"warped_{key}": f"Warped_{key}.nii.gz" for key in also})
    return names


# ----------------------------------------------------------------------------------------------
# what runs on the workers


def _label_interpolation(interpolation: str) -> bool:
    from ..resampling import LABEL_INTERPOLATIONS, check_interpolation

    return check_interpolation(interpolation) in LABEL_INTERPOLATIONS


def _stale(folder: Path, keep) -> list[Path]:
    """Outputs of an earlier run in ``folder`` that this set does not write."""
    keep = {Path(p).name for p in keep}
    return [p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name not in keep
            and (p.name in _NAMES.values() or p.name.startswith("Warped_"))]


def run_job(spec: dict) -> dict:
    """Run one job and write its output set (a Dask task); return its record.

    Never raises for the registration's failures: they come back (and are
    written) as a record with ``status: "error"``.
    """
    from ..image import as_image
    from ..io.nifti import save
    from ..io.outputs import OutputSet
    from ..io.registration_files import stage_transforms
    from ..registration import register
    from ..transforms.diffeomorphic import DiffeomorphicMap

    folder = Path(spec["folder"])
    threads = int(spec["num_threads"])
    record = {"name": spec["name"], "status": "error", "format": _FORMAT,
              "settings_hash": spec["settings_hash"], "threads": threads,
              "worker": worker_name(), "fixed": spec["fixed_text"],
              "moving": spec["moving_text"]}
    stage = "reading the images"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fixed = as_image(spec["fixed"], name="fixed")
        moving = as_image(spec["moving"], name="moving")
        stage = "registering"
        t0 = time.perf_counter()
        result = register(fixed, moving, num_threads=threads, **spec["options"])
        seconds = dict(result.seconds)
        stage = "writing the outputs"
        t_write = time.perf_counter()
        mapping = result.mapping
        names = output_names(deformable=isinstance(mapping, DiffeomorphicMap),
                             also=list(spec["also"]), inverse_warped=spec["inverse_warped"])
        paths = {role: folder / name for role, name in names.items()}
        with OutputSet(remove=_stale(folder, paths.values()), num_threads=threads) as outputs:
            stage_transforms(result, paths, outputs)
            save(result.warped, paths["warped"], outputs=outputs)
            for key, (image, interpolation) in spec["also"].items():
                image = as_image(image, name=f"also[{key!r}]",
                                 labels=_label_interpolation(interpolation))
                save(mapping.transform(image, interpolation=interpolation, num_threads=threads),
                     paths[f"warped_{key}"], outputs=outputs)
            if spec["inverse_warped"]:
                save(mapping.transform_inverse(fixed, num_threads=threads),
                     paths["inverse_warped"], outputs=outputs)
            seconds["write"] = time.perf_counter() - t_write
            seconds["total"] = time.perf_counter() - t0
            record.update(status="ok", seconds=seconds, matrix=result.affine.matrix.tolist(),
                          files=names,
                          finished=datetime.datetime.now().isoformat(timespec="seconds"))
            outputs.add_bytes(paths["record"], json.dumps(record, indent=1))
    except Exception as exc:
        record["error"] = f"{type(exc).__name__} while {stage}: {exc}"
        record["traceback"] = traceback.format_exc()
        write_failure(folder, record)
    return record


def write_failure(folder: Path, record: dict) -> None:
    """Write a failed job's ``record.json`` alone (earlier outputs of the job removed)."""
    from ..io.outputs import OutputSet

    folder.mkdir(parents=True, exist_ok=True)
    record = dict(record, status=record.get("status") if record.get("status") != "ok"
                  else "error", files={"record": RECORD},
                  finished=datetime.datetime.now().isoformat(timespec="seconds"))
    with OutputSet(remove=_stale(folder, [RECORD]), num_threads=1) as outputs:
        outputs.add_bytes(folder / RECORD, json.dumps(record, indent=1, default=str))


# ----------------------------------------------------------------------------------------------
# the client side


class Cluster:
    """A Dask cluster that several batches share, started when a job first needs it.

    Pass it as ``scheduler=`` to :func:`register_many`; it is closed when the
    ``with`` block ends. A batch with nothing left to run (a resumed one)
    starts nothing.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        An existing cluster; otherwise a :class:`~distributed.LocalCluster`.
    workers : int, optional
        Worker processes of the local cluster; default: the jobs of the first
        batch that runs, at most the usable CPUs.
    threads_per_worker : int
        Jobs at once per worker of the local cluster.
    task_threads : int, optional
        Threads per registration (see :func:`register_many`).

    Examples
    --------
    >>> with Cluster(workers=2) as cluster:                    # doctest: +SKIP
    ...     first = register_many(jobs, out="round1", scheduler=cluster)
    ...     second = register_many(more_jobs, out="round2", scheduler=cluster)
    """

    def __init__(self, *, scheduler=None, workers: int | None = None,
                 threads_per_worker: int = 1, task_threads: int | None = None):
        self.scheduler = scheduler
        self.workers = check_positive(workers, "workers", allow_none=True)
        self.threads_per_worker = check_positive(threads_per_worker, "threads_per_worker")
        self.task_threads = check_positive(task_threads, "task_threads", allow_none=True)
        self._client = None
        self._stack = contextlib.ExitStack()

    def client(self, jobs: int):
        """The client, starting the cluster (sized for ``jobs`` jobs) on the first call."""
        if self._client is None:
            if self.workers is None:
                self.workers = max(1, min(jobs, usable_cpus()))
            if self.task_threads is None:
                self.task_threads = 1 if self.scheduler is not None else max(
                    1, usable_cpus() // (self.workers * self.threads_per_worker))
            self._client = self._stack.enter_context(
                cluster(self.scheduler, self.workers, self.threads_per_worker))
        return self._client

    def close(self) -> None:
        self._client = None
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _digest(image) -> str:
    """sha256 of an image's grid, dtype and values (what a registration depends on)."""
    h = hashlib.sha256()
    data = np.ascontiguousarray(image.data)
    h.update(f"{data.dtype.str}{data.shape}".encode())
    h.update(np.ascontiguousarray(image.vox2world, dtype=np.float64).tobytes())
    h.update(memoryview(data).cast("B"))
    return h.hexdigest()


class _Inputs:
    """Each distinct input read once, checked, fingerprinted (path -> (ndim, digest))."""

    def __init__(self):
        self.seen: dict = {}

    def check(self, obj, *, name: str, labels: bool = False) -> tuple[int, str]:
        from ..image import Image, as_image

        key = (str(obj), labels) if not isinstance(obj, Image) else (id(obj), labels)
        if key not in self.seen:
            image = as_image(obj, name=name, labels=labels)
            self.seen[key] = (image.ndim, _digest(image))
        return self.seen[key]


def _value_text(value):
    """A JSON-able, content-faithful form of an option value (for the settings hash)."""
    from ..image import Image

    if isinstance(value, Image):
        return {"image": _digest(value)}
    if isinstance(value, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
                "shape": list(value.shape), "dtype": value.dtype.str}
    if isinstance(value, Mapping):
        return {str(k): _value_text(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_value_text(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _check_job(job, index: int, inputs: _Inputs) -> str:
    """Check ``job`` before any work; return its settings hash."""
    from .._options import accepted_options, choice
    from ..registration import register
    from ..registration.pipeline import AFFINE_PIPELINES, SYN_PRESETS

    if not isinstance(job, Job):
        raise TypeError(f"jobs[{index}] must be a parareg.population.Job, got "
                        f"{type(job).__name__}")
    where = f"job {job.name!r}"
    if not isinstance(job.name, str) or not _NAME_RE.match(job.name):
        raise ValueError(f"jobs[{index}].name must be a file name of letters, digits and ._- "
                         f"(the job's folder), got {job.name!r}")
    options = dict(job.options)
    accepted = accepted_options(register) or []
    for key in options:
        if key in _NOT_OPTIONS:
            what = "register_many's task_threads=" if key == "num_threads" else \
                f"the job's own {key}"
            raise ValueError(f"{where}: options has {key!r}, which the batch sets itself: use "
                             f"{what}")
        if key not in accepted:
            takes = [k for k in accepted if k not in _NOT_OPTIONS]
            raise ValueError(f"{where}: options has {key!r}, which is not an option of "
                             f"parareg.register here; it takes {takes}")
    if "transform" in options:
        options["transform"] = choice(options["transform"], sorted(AFFINE_PIPELINES),
                                      name=f"{where}: options['transform']")
    if "preset" in options:
        options["preset"] = choice(options["preset"], sorted(SYN_PRESETS),
                                   name=f"{where}: options['preset']")
    fixed_ndim, fixed_digest = inputs.check(job.fixed, name=f"{where}: fixed")
    moving_ndim, moving_digest = inputs.check(job.moving, name=f"{where}: moving")
    if fixed_ndim != moving_ndim:
        raise ValueError(f"{where}: fixed is {fixed_ndim}D but moving is {moving_ndim}D; "
                         "register images of the same dimensionality")
    also = {}
    for key, value in dict(job.also).items():
        if not isinstance(key, str) or not _KEY_RE.match(key):
            raise ValueError(f"{where}: also keys must be letters, digits, _ and - (they name "
                             f"Warped_KEY.nii.gz), got {key!r}")
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"{where}: also[{key!r}] must be (image or path, interpolation), "
                             f"got {value!r}")
        image, interpolation = value
        labels = _label_interpolation(interpolation)
        ndim, digest = inputs.check(image, name=f"{where}: also[{key!r}]", labels=labels)
        if ndim != moving_ndim:
            raise ValueError(f"{where}: also[{key!r}] is {ndim}D but moving is "
                             f"{moving_ndim}D; it must be an image of the moving space")
        also[key] = [digest, interpolation]
    settings = {"format": _FORMAT, "fixed": fixed_digest, "moving": moving_digest,
                "options": _value_text(options), "also": also,
                "inverse_warped": bool(job.inverse_warped)}
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_record(folder: Path) -> dict | None:
    """The job's record, or ``None`` when it has none (or an unreadable one)."""
    from ..io.outputs import recover

    if not folder.is_dir():
        return None
    recover(folder)  # finish or clean up what a killed writer left
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("status") == "ok" and not all(
            (folder / name).is_file() for name in record.get("files", {}).values()):
        return None  # outputs removed by hand: run it again
    return record


def _warn_failed(result: JobResult, *, earlier: bool, stacklevel: int) -> None:
    when = "in an earlier run " if earlier else ""
    hint = "; pass retry_failed=True to run it again" if earlier else ""
    warnings.warn(f"registration {result.name!r} failed {when}({result.error}); it is "
                  f"recorded in {result.folder / RECORD} and left out{hint}",
                  RegistrationFailedWarning, stacklevel=stacklevel + 1)


def _spec(job: Job, folder: Path, settings_hash: str, task_threads: int) -> dict:
    from ..image import Image

    def text(obj):
        return f"<Image {obj.shape}>" if isinstance(obj, Image) else str(obj)

    def portable(obj):
        return str(obj) if isinstance(obj, Path) else obj

    return {"name": job.name, "folder": str(folder), "settings_hash": settings_hash,
            "num_threads": task_threads, "fixed": portable(job.fixed),
            "moving": portable(job.moving), "fixed_text": text(job.fixed),
            "moving_text": text(job.moving), "options": dict(job.options),
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
        ``progress(Progress)`` after each finished job (``Progress.row`` is its
        record); the library never prints.

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
    inputs = _Inputs()
    hashes = [_check_job(job, i, inputs) for i, job in enumerate(jobs)]
    del inputs
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, JobResult] = {}
    stale = []
    for job, settings_hash in zip(jobs, hashes):
        folder = out / job.name
        record = _read_record(folder)
        if record is None:
            continue
        if record.get("settings_hash") != settings_hash or record.get("format") != _FORMAT:
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
            record = {"name": job.name, "status": "error", "format": _FORMAT,
                      "settings_hash": spec["settings_hash"], "fixed": spec["fixed_text"],
                      "moving": spec["moving_text"],
                      "error": f"{type(exc).__name__}: {exc}"}
            write_failure(folder, record)
        result = JobResult(job.name, folder, record)
        results[job.name] = result
        done += 1
        if not result.ok:
            failed += 1
            _warn_failed(result, earlier=False, stacklevel=3)
        if progress is not None:
            progress(Progress(done, len(todo), failed, skipped, time.perf_counter() - t0,
                              {k: record.get(k) for k in ("name", "status", "seconds", "error",
                                                          "worker")}))
