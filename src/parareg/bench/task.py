"""One benchmark task, a (pair, method), in a process of its own.

The runner starts ``python -m parareg.bench._task_main TASKDIR`` for every task:
``TASKDIR/task.pkl`` holds the task (a dict, see :func:`execute`), and the
process writes ``TASKDIR/result.json`` (atomically) and, with QC on,
``TASKDIR/qc.png``. One process per task is what makes three things honest:

* **timeout**: the runner can kill a registration stuck in C++ code;
* **peak memory**: ``ru_maxrss`` of a fresh process is the peak of this task
  alone (not of whatever ran before it in a long-lived worker);
* **threads**: ITK reads its thread count once per process.

What is timed (``seconds``): the method call alone, i.e. registration plus
bringing the moving image and labels onto the fixed grid. Not timed: starting
the process, loading the images, the prealignment (shared by all methods of a
pair; see ``prealign_seconds``), the warm-up call, the Jacobian determinant
when the method returns it lazily, scoring and QC.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import resource
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

TASK_FILE = "task.pkl"
RESULT_FILE = "result.json"
QC_FILE = "qc.png"
#: the warm-up call runs on the pair subsampled so that its longest axis has about this many voxels
WARMUP_VOXELS = 64
#: seconds between checks that the process that started this one is still alive
_WATCHDOG_PERIOD = 1.0


def rss_mb() -> float:
    """Peak resident set size of this process so far, MB (10^6 bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024) / 1e6


def shrink(image, factor: int):
    """Every ``factor``-th voxel of ``image`` on each axis, with a matching ``vox2world``."""
    from ..image import Image

    if factor <= 1:
        return image
    view = tuple(slice(None, None, factor) for _ in range(image.ndim))
    vox2world = image.vox2world.copy()
    vox2world[: image.ndim, : image.ndim] *= factor
    return Image(np.ascontiguousarray(image.data[view]), vox2world)


def _case(fixed, moving, moving_labels, folder, task, *, warmup):
    from .case import Case, write_case_images

    folder.mkdir(parents=True, exist_ok=True)
    paths = write_case_images(fixed, moving, moving_labels, folder)
    work = folder / "work"
    work.mkdir()
    return Case(fixed, moving, moving_labels, *paths, workdir=work,
                num_threads=int(task["num_threads"]), seed=task["seed"], warmup=warmup,
                fixed_name=task["fixed"].name, moving_name=task["moving"].name)


def _load_pair(task):
    """Fixed image and labels; moving image and labels with the prealignment in their header."""
    from ..image import Image
    from ..io.nifti import load

    fixed = load(task["fixed"].image)
    fixed_labels = load(task["fixed"].labels, labels=True)
    moving = load(task["moving"].image)
    moving_labels = load(task["moving"].labels, labels=True)
    if task.get("prealign") is not None:
        # moving world y = P x for fixed world x: moving voxels sit at inv(P) V in fixed world
        world = np.linalg.inv(np.asarray(task["prealign"], dtype=np.float64))
        moving = Image(moving.data, world @ moving.vox2world)
        moving_labels = Image(moving_labels.data, world @ moving_labels.vox2world)
    return fixed, fixed_labels, moving, moving_labels


def _check_output(output, shape):
    from .case import MethodOutput

    if not isinstance(output, MethodOutput):
        raise TypeError(f"a method must return a MethodOutput, got {type(output).__name__}")
    for name in ("warped", "warped_labels"):
        value = np.asarray(getattr(output, name))
        if value.shape != tuple(shape):
            raise ValueError(f"the method's {name} has shape {value.shape}, expected the fixed "
                             f"grid {tuple(shape)}")


def execute(task: dict, workdir) -> dict:
    """Run one task in this process and return its result record.

    Parameters
    ----------
    task : dict
        ``method`` (:class:`~parareg.bench.methods.Method`), ``fixed`` and
        ``moving`` (:class:`~parareg.bench.datasets.Subject`), ``prealign``
        (fixed->moving world matrix or ``None``), ``num_threads``, ``seed``,
        ``qc`` (bool), ``title`` (str).
    workdir : path
        Scratch folder (the QC picture is written there as ``qc.png``).

    Returns
    -------
    dict
        ``status`` ("ok" or "error"), ``error``, ``traceback``, ``seconds``,
        ``peak_rss_mb``, ``baseline_rss_mb``, ``warmup_seconds``, ``threads``,
        the scores of :func:`~parareg.bench.scoring.score_registration` and ``info``.
    """
    from .scoring import score_registration, shared_labels

    workdir = Path(workdir)
    method = task["method"]
    threads = int(task["num_threads"])
    record = {"status": "error", "threads": threads, "info": {}}
    stage = "loading the images"
    try:
        fixed, fixed_labels, moving, moving_labels = _load_pair(task)
        if method.warmup:
            stage = "the warm-up call"
            factor = max(1, math.ceil(max(fixed.shape) / WARMUP_VOXELS))
            t0 = time.perf_counter()
            try:
                small = _case(shrink(fixed, factor), shrink(moving, factor),
                              shrink(moving_labels, factor), workdir / "warmup", task,
                              warmup=True)
                method.func(small)
            except Exception as exc:  # the timed call will fail too, or not: record, go on
                record["info"]["warmup_error"] = f"{type(exc).__name__}: {exc}"
            record["warmup_seconds"] = time.perf_counter() - t0
        stage = "running the method"
        case = _case(fixed, moving, moving_labels, workdir / "case", task, warmup=False)
        record["baseline_rss_mb"] = rss_mb()
        t0 = time.perf_counter()
        output = method.func(case)
        record["seconds"] = time.perf_counter() - t0
        record["peak_rss_mb"] = rss_mb()
        _check_output(output, fixed.shape)
        stage = "computing the Jacobian determinant"
        jacobian = output.jacobian() if callable(output.jacobian) else output.jacobian
        stage = "scoring"
        scores = score_registration(fixed.data, fixed_labels.data, np.asarray(output.warped),
                                    np.asarray(output.warped_labels),
                                    labels=shared_labels(fixed_labels.data, moving_labels.data),
                                    jacobian=jacobian, spacing=fixed.spacing,
                                    num_threads=threads)
        record.update(scores)
        record["info"].update(output.info)
        record["status"] = "ok"
    except Exception as exc:
        record["error"] = f"{type(exc).__name__} while {stage}: {exc}"
        record["traceback"] = traceback.format_exc()
        return record
    if task.get("qc"):
        _draw_qc(fixed, output, jacobian, workdir / QC_FILE, task.get("title"), record)
    return record


def _draw_qc(fixed, output, jacobian, path, title, record):
    try:
        from ..qc import qc_figure
    except ImportError:  # parareg.qc not there yet: no pictures
        return
    from ..image import Image

    try:
        warped = Image(np.asarray(output.warped, dtype=np.float32), fixed.vox2world)
        qc_figure(fixed, warped, path, jacobian=jacobian, title=title)
    except Exception as exc:  # matplotlib missing or a drawing problem: the scores stand
        record["info"]["qc_error"] = f"{type(exc).__name__}: {exc}"


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def write_json_atomic(path, data) -> None:
    """Write ``data`` as JSON next to ``path`` then rename it into place."""
    path = Path(path)
    from ..io.outputs import write_text

    write_text(path, json.dumps(_jsonable(data)))


def _watch_parent(parent: int) -> None:
    """End this process when the one that started it is gone (a killed worker leaves no orphan)."""
    while True:
        time.sleep(_WATCHDOG_PERIOD)
        if os.getppid() != parent:
            os._exit(3)


def main(argv=None) -> int:
    """``python -m parareg.bench._task_main TASKDIR [PARENT_PID]``: run, write the result."""
    argv = sys.argv[1:] if argv is None else argv
    taskdir = Path(argv[0])
    if len(argv) > 1:
        threading.Thread(target=_watch_parent, args=(int(argv[1]),), daemon=True).start()
    try:
        with open(taskdir / TASK_FILE, "rb") as f:
            task = pickle.load(f)
    except Exception as exc:  # e.g. the method's module cannot be imported here
        record = {"status": "error", "error": f"{type(exc).__name__} while loading the task: "
                                             f"{exc}", "traceback": traceback.format_exc()}
    else:
        record = execute(task, taskdir)
    write_json_atomic(taskdir / RESULT_FILE, record)
    return 0

