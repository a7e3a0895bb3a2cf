"""Run a benchmark study on Dask: one task per (pair, method), resumable, failure-tolerant.

Execution
---------
The client (this process) checks every input, then submits to a Dask
``distributed`` cluster: a :class:`~distributed.LocalCluster` of ``workers``
processes with ``threads_per_worker`` threads each (each thread runs one task
at a time), or the cluster at ``scheduler``. With a prealignment, each pair
gets one rigid parareg registration task that all of its methods depend on.
Each (pair, method) task starts a fresh ``python -m parareg.bench._task_main``
process on its worker (see :mod:`parareg.bench.task` for why) and waits for it:

* ``timeout``: the whole task process (start-up, loading, warm-up, method,
  scoring) is killed after that many seconds; the row says ``timeout``.
* a method that raises gives an ``error`` row with the message (the traceback
  goes to ``logs/``); a process that dies (segfault, out of memory) a
  ``crashed`` row. The study goes on either way.
* results come back to the client, which streams them to ``results.csv`` and
  ``per_label_dice.csv`` as they finish (atomic rewrites, see
  :mod:`parareg.bench.results`).

Resume
------
Rerunning a study into the same ``out`` skips every (fixed, moving, method)
already in ``results.csv`` (failed ones too, unless ``retry_failed``). Rows
made with other settings (method settings, prealignment, seed, threads) make
the run stop before any work, and so does a ``results.csv`` that is not a
study's. Damaged rows (torn by a full disk, edited by hand) are reported with
their line numbers, set aside in ``results.rejected.csv`` and their tasks run
again (see :mod:`parareg.bench.results`).

What the numbers mean
---------------------
``seconds``: wall time of the method call (registration + resampling the moving
image and labels); ``peak_rss_mb``: ``ru_maxrss`` of the task's own process,
i.e. the peak resident memory of a Python process that loaded the pair and ran
the method (interpreter and libraries included); ``baseline_rss_mb``: the
same just before the timed call, so ``peak - baseline`` is what the call
added; ``threads``: the thread count handed to the method (parareg
``num_threads``, ITK/OpenMP environment variables, greedy ``-threads``).
Paths must be readable from the workers (use a shared file system with a
remote cluster); everything is written on the client side.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .. import _cluster
from .._cluster import Progress, safe_name
from . import task as task_module
from .datasets import check_subjects, find_subjects, make_pairs, read_pairs_csv, sample_pairs
from .methods import resolve_methods, settings_hash
from .results import ResultStore, describe_rejected, read_csv, rejected_path

STUDY_JSON = "study.json"
PREALIGN = {"rigid": ("center_of_mass", "translation", "rigid")}
#: environment variables that carry a task's thread count to the libraries it may use
THREAD_VARIABLES = ("PARAREG_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
                    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_LOG_TAIL = 4000
#: shared with parareg.population.batch (parareg._cluster); the old private names stay
_client = _cluster.cluster
_positive = _cluster.check_positive
_usable_cpus = _cluster.usable_cpus
_worker_name = _cluster.worker_name

__all__ = ["PREALIGN", "Progress", "StudyResult", "run", "safe_name"]


@dataclass
class StudyResult:
    """What :func:`run` returns."""

    out: Path
    computed: int
    skipped: int
    failed: int
    rows: list = field(default_factory=list)
    report: Path | None = None
    skipped_methods: list = field(default_factory=list)
    #: damaged rows of the earlier results (:class:`~parareg.bench.results.RejectedRow`),
    #: set aside in ``results.rejected.csv`` / ``per_label_dice.rejected.csv``
    rejected: list = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# what runs on the workers


def prealign_pair(fixed_image, moving_image, num_threads, seed) -> dict:
    """Rigid parareg registration of a pair (a Dask task): ``{"matrix", "seconds"}``."""
    from ..registration.affine import affine_registration

    t0 = time.perf_counter()
    mapping = affine_registration(fixed_image, moving_image, pipeline=PREALIGN["rigid"],
                                  num_threads=num_threads, seed=seed)
    return {"matrix": mapping.matrix.tolist(), "seconds": time.perf_counter() - t0}


def run_isolated(task: dict, prealign, timeout) -> dict:
    """Run one (pair, method) task in a child process (a Dask task); never raises for the
    method's failures: they come back as the record's ``status`` and ``error``."""
    task = dict(task, prealign=None if prealign is None else prealign["matrix"])
    taskdir = Path(tempfile.mkdtemp(prefix="parareg-bench-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update({name: str(task["num_threads"]) for name in THREAD_VARIABLES})
    record = {}
    try:
        import cloudpickle

        with open(taskdir / task_module.TASK_FILE, "wb") as f:
            cloudpickle.dump(task, f)
        log_path = taskdir / "log.txt"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "parareg.bench._task_main", str(taskdir),
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(proc)
                code = None
            except BaseException:
                _kill(proc)
                raise
        result_path = taskdir / task_module.RESULT_FILE
        if code is None:
            record = {"status": "timeout", "error": f"timed out after {timeout:g} s"}
        elif result_path.is_file():
            with open(result_path, encoding="utf-8") as f:
                record = json.load(f)
        else:
            record = {"status": "crashed",
                      "error": f"the task process ended with code {code} and no result"}
        if record.get("status") != "ok":
            log_text = log_path.read_text(encoding="utf-8", errors="replace")
            record["log"] = log_text[-_LOG_TAIL:]
        qc = taskdir / task_module.QC_FILE
        if qc.is_file():
            record["qc_png"] = qc.read_bytes()
    finally:
        shutil.rmtree(taskdir, ignore_errors=True)
    record["worker"] = _worker_name()
    if prealign is not None:
        record["prealign_seconds"] = prealign["seconds"]
        record.setdefault("info", {})["prealign_matrix"] = prealign["matrix"]
    return record


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


# ----------------------------------------------------------------------------------------------
# the client side


def _pairs(images, labels, pairs_csv, pair_mode, n_pairs, seed):
    if pairs_csv is not None:
        if images is not None or labels is not None:
            raise ValueError("give either images and labels, or pairs_csv, not both")
        return sample_pairs(read_pairs_csv(pairs_csv), n=n_pairs, seed=seed)
    if images is None:
        raise ValueError("give images and labels (glob patterns), or pairs_csv")
    return make_pairs(find_subjects(images, labels), mode=pair_mode, n=n_pairs, seed=seed)


def _check_resume(store, hashes, method_names):
    """Refuse rows of this study's methods that other settings produced."""
    stale = sorted({row["method"] for row in store.rows.values()
                    if row["method"] in method_names
                    and row.get("settings_hash") != hashes[row["method"]]})
    if stale:
        raise ValueError(
            f"{store.results_path} holds rows of {', '.join(stale)} made with other settings "
            "(method settings, prealignment, seed or threads); use another out folder, or "
            "delete those rows to recompute them")


def _row(pair, method, record, *, prealign, seed, hash_) -> dict:
    row = {"fixed": pair.fixed.name, "moving": pair.moving.name, "method": method.name,
           "prealign": prealign or "none", "seed": seed, "settings_hash": hash_,
           "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    for column in ("status", "dice_mean", "jaccard_mean", "hd95_mean", "n_labels", "ncc", "nmi",
                   "folded_percent", "jacobian_min", "jacobian_max", "sdlogj", "seconds",
                   "peak_rss_mb",
                   "baseline_rss_mb", "threads", "warmup_seconds", "prealign_seconds",
                   "worker", "error"):
        if column in record:
            row[column] = record[column]
    row["info"] = json.dumps(record.get("info", {}), sort_keys=True, default=str)
    return row


def _write_failure_log(out, row, record) -> None:
    folder = Path(out) / "logs"
    folder.mkdir(exist_ok=True)
    text = [f"{row['method']}: {row['moving']} -> {row['fixed']}",
            f"status: {row.get('status')}", f"error: {row.get('error')}", ""]
    text += [record.get("traceback", ""), record.get("log", "")]
    path = folder / (safe_name(row["fixed"], row["moving"], row["method"]) + ".txt")
    path.write_text("\n".join(text), encoding="utf-8")


def _study_record(out, meta, run, *, replace_last: bool = False) -> None:
    """Write ``study.json``: ``meta`` plus the list of runs (this one appended or updated)."""
    path = Path(out) / STUDY_JSON
    runs = []
    if path.is_file():
        try:
            runs = json.loads(path.read_text(encoding="utf-8")).get("runs", [])
        except (OSError, ValueError):
            runs = []
    if replace_last and runs:
        runs = runs[:-1]
    task_module.write_json_atomic(path, dict(meta, runs=runs + [run]))


def _versions() -> dict:
    from importlib import metadata

    versions = {"python": sys.version.split()[0]}
    for dist in ("parareg", "numpy", "scipy", "numba", "dask", "distributed", "dipy",
                 "antspyx", "picsl_greedy", "matplotlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def _execute(client, todo, store, *, out, prealign, seed, hashes, task_threads, timeout, qc,
             progress, skipped) -> tuple[int, int]:
    """Submit the tasks (and prealignments), record each as it finishes: ``(computed, failed)``."""
    from distributed import as_completed

    t_start = time.perf_counter()
    prealigned = {}
    if prealign:
        for pair in {p.key: p for p, _ in todo}.values():
            prealigned[pair.key] = client.submit(
                prealign_pair, str(pair.fixed.image), str(pair.moving.image), task_threads,
                seed, key=f"prealign-{safe_name(*pair.key)}-{uuid.uuid4().hex[:8]}")
    futures = {}
    for pair, method in todo:
        spec = {"method": method, "fixed": pair.fixed, "moving": pair.moving,
                "num_threads": task_threads, "seed": seed, "qc": qc,
                "title": f"{method.name}: {pair.moving.name} -> {pair.fixed.name}"}
        future = client.submit(run_isolated, spec, prealigned.get(pair.key), timeout,
                               key=f"bench-{safe_name(*pair.key, method.name)}-"
                                   f"{uuid.uuid4().hex[:8]}", pure=False)
        futures[future] = (pair, method)
    computed = failed = 0
    for future in as_completed(list(futures)):
        pair, method = futures.pop(future)
        try:
            record = future.result()
        except Exception as exc:  # a failed prealignment, a lost worker...
            record = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        row = _row(pair, method, record, prealign=prealign, seed=seed,
                   hash_=hashes[method.name])
        per_label = []
        if row.get("status") == "ok":
            hd95 = record.get("hd95") or [None] * len(record["labels"])
            per_label = [{"label": label, "dice": d, "jaccard": j, "hd95": h}
                         for label, d, j, h in zip(record["labels"], record["dice"],
                                                   record["jaccard"], hd95)]
            if record.get("qc_png"):
                (out / "qc").mkdir(exist_ok=True)
                name = safe_name(*pair.key, method.name) + ".png"
                (out / "qc" / name).write_bytes(record["qc_png"])
        else:
            failed += 1
            _write_failure_log(out, row, record)
        store.put(row, per_label)
        computed += 1
        if progress is not None:
            progress(Progress(computed, len(todo), failed, skipped,
                              time.perf_counter() - t_start, row))
    return computed, failed


def run(images=None, labels=None, *, out, methods=("parareg:syn",), pairs_csv=None,
        pair_mode: str = "ordered", n_pairs=None, seed: int = 0, prealign=None,
        workers: int = 1, threads_per_worker: int = 1, task_threads=None, scheduler=None,
        timeout=None, retry_failed: bool = False, qc: bool = True, report: bool = True,
        progress=None) -> StudyResult:
    """Run (or resume) a registration benchmark study and write its results and report.

    Parameters
    ----------
    images, labels : str or sequence of paths
        Glob patterns of the images and of their label maps, paired by
        subject ID (:func:`~parareg.bench.datasets.find_subjects`).
    out : path
        Study folder: ``results.csv``, ``per_label_dice.csv``, ``study.json``,
        ``report.md``, plots, ``qc/``, ``logs/``. Rerunning into it resumes.
    methods : sequence of str or str
        Registered method names (comma-separated in a string); see
        :mod:`parareg.bench.methods`. Methods whose package is not installed
        are skipped with a warning.
    pairs_csv : path, optional
        A CSV of pairs instead of ``images``/``labels``.
    pair_mode : {"ordered", "unordered"}
    n_pairs : int, optional
        A seeded sample of this many pairs instead of all of them.
    seed : int
        Seed of the pair sample, the prealignment and every method.
    prealign : {None, "rigid"}
        A rigid parareg registration per pair, shared by all methods (they
        receive the moving image with it in its header).
    workers, threads_per_worker : int
        The local cluster (ignored with ``scheduler``).
    task_threads : int, optional
        Threads per registration; default: usable CPUs divided by the tasks
        that run at once on the local cluster, or 1 with ``scheduler``.
    scheduler : str or distributed.Client, optional
        Address of an existing cluster (or a client of it).
    timeout : float, optional
        Seconds after which a task is killed and recorded as ``timeout``.
    retry_failed : bool
        On resume, rerun tasks recorded as failed.
    qc : bool
        Draw a QC picture of every registration (``qc/``); the report shows
        the best and the worst pair of each method.
    report : bool
        Write ``report.md`` and the plots at the end.
    progress : callable, optional
        ``progress(Progress)`` after every finished task (the library never prints).

    Returns
    -------
    StudyResult

    Raises
    ------
    ValueError, FileNotFoundError
        Bad input, found before any work starts: no matching files, images
        without labels, a label map on another grid, an unknown method...

    Examples
    --------
    >>> from parareg import bench
    >>> bench.run("data/images/*.nii.gz", "data/labels/*.nii.gz", out="study",
    ...           methods=["parareg:syn", "greedy"], n_pairs=10)  # doctest: +SKIP
    """
    # -- check everything before any work
    out = Path(out)
    installed, missing = resolve_methods(methods)
    for method in missing:
        warnings.warn(f"method {method.name!r} needs {', '.join(method.requires)}, which is not "
                      "installed: skipped", stacklevel=2)
    if not installed:
        raise ValueError(f"none of the methods {[m.name for m in missing]} is installed")
    if prealign is not None and prealign not in PREALIGN:
        raise ValueError(f"prealign must be None or one of {sorted(PREALIGN)}, got {prealign!r}")
    workers = _positive(workers, "workers")
    threads_per_worker = _positive(threads_per_worker, "threads_per_worker")
    timeout = _positive(timeout, "timeout", allow_none=True, kind=float)
    if task_threads is None:
        task_threads = 1 if scheduler is not None else max(
            1, _usable_cpus() // (workers * threads_per_worker))
    task_threads = _positive(task_threads, "task_threads")
    pairs = _pairs(images, labels, pairs_csv, pair_mode, n_pairs, seed)
    subjects = {s.name: s for p in pairs for s in (p.fixed, p.moving)}
    ndim = check_subjects(list(subjects.values()))
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out).load()
    hashes = {m.name: settings_hash(m, prealign=prealign, seed=seed, threads=task_threads)
              for m in installed}
    _check_resume(store, hashes, set(hashes))
    rejected = store.rejected + store.rejected_per_label
    for path, rows in ((store.results_path, store.rejected),
                       (store.per_label_path, store.rejected_per_label)):
        if rows:
            warnings.warn(f"{path}: {describe_rejected(rows)}; set aside in "
                          f"{rejected_path(path).name}; tasks without a valid row run again",
                          stacklevel=2)
    store.set_aside()
    tasks = [(pair, method) for pair in pairs for method in installed]
    store.order = {(p.fixed.name, p.moving.name, m.name): i for i, (p, m) in enumerate(tasks)}
    done = store.done(retry_failed=retry_failed)
    todo = [(p, m) for p, m in tasks if (p.fixed.name, p.moving.name, m.name) not in done]
    skipped = len(tasks) - len(todo)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    meta = {
        "pairs": [{"fixed": p.fixed.name, "moving": p.moving.name} for p in pairs],
        "subjects": {n: {"image": str(s.image), "labels": str(s.labels)}
                     for n, s in sorted(subjects.items())},
        "ndim": ndim, "pair_mode": pair_mode if pairs_csv is None else "csv",
        "n_pairs": n_pairs, "seed": seed, "prealign": prealign,
        "prealign_pipeline": list(PREALIGN[prealign]) if prealign else None,
        "methods": {m.name: m.record() for m in installed},
        "settings_hash": hashes, "skipped_methods": [m.name for m in missing],
        "task_threads": task_threads, "timeout_s": timeout, "qc": qc,
        "cluster": {"scheduler": None if scheduler is None else str(scheduler),
                    "workers": None if scheduler is not None else workers,
                    "threads_per_worker": None if scheduler is not None else threads_per_worker},
        "machine": {"cpu_count": os.cpu_count(), "usable_cpus": _usable_cpus(),
                    "platform": sys.platform},
        "versions": _versions(),
    }
    _study_record(out, meta, {"started": started, "tasks": len(tasks), "skipped": skipped,
                              "to_run": len(todo)})

    # -- the work
    computed = failed = 0
    if todo:
        with _client(scheduler, workers, threads_per_worker) as client:
            computed, failed = _execute(
                client, todo, store, out=out, prealign=prealign, seed=seed, hashes=hashes,
                task_threads=task_threads, timeout=timeout, qc=qc, progress=progress,
                skipped=skipped)
    _study_record(out, meta, {"started": started,
                              "finished": datetime.datetime.now().isoformat(timespec="seconds"),
                              "tasks": len(tasks), "skipped": skipped, "computed": computed,
                              "failed": failed}, replace_last=True)
    report_path = None
    if report:
        from .report import write_report

        report_path = write_report(out)
    rows = read_csv(out / "results.csv")
    return StudyResult(out=out, computed=computed, skipped=skipped, failed=failed, rows=rows,
                       report=report_path, skipped_methods=[m.name for m in missing],
                       rejected=rejected)

