"""What runs on the Dask workers of :func:`parareg.population.register_many`: one job.

A job registers its images, writes its outputs into its folder as one
:class:`parareg.io.OutputSet` (``record.json`` last, in the same transaction)
and returns its record; a failure becomes a record with ``status: "error"``.
The file names are :func:`output_names`'s (see :mod:`parareg.population.batch`).
"""

from __future__ import annotations

import datetime
import errno
import json
import time
import traceback
from pathlib import Path

from .._cluster import worker_name

__all__ = ["FORMAT", "NO_SPACE", "RECORD", "output_names", "run_job", "write_failure"]

#: the file that marks a finished job (its settings, status and numbers)
RECORD = "record.json"
#: role -> file name in a job's folder (transforms as parareg.io.registration_files names them)
NAMES = {"affine": "0GenericAffine.mat", "warp": "1Warp.nii.gz",
         "inverse_warp": "1InverseWarp.nii.gz", "warped": "Warped.nii.gz",
         "inverse_warped": "InverseWarped.nii.gz", "record": RECORD}
#: bump when the outputs of a job change meaning: records of another version are refused
FORMAT = 1
#: errno values of a full disk, a full quota and a file-size limit: no fault of the job
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def output_names(*, deformable: bool, also=(), inverse_warped: bool = False) -> dict:
    """Role -> file name of the outputs of a job (see :mod:`parareg.population.batch`).

    >>> sorted(output_names(deformable=False, also=["labels"]).items())
    [('affine', '0GenericAffine.mat'), ('record', 'record.json'), ('warped', 'Warped.nii.gz'), \
('warped_labels', 'Warped_labels.nii.gz')]
    """
    roles = ["affine", "warped", "record"]
    if deformable:
        roles += ["warp", "inverse_warp"]
    if inverse_warped:
        roles.append("inverse_warped")
    names = {role: NAMES[role] for role in roles}
    names.update({f"warped_{key}": f"Warped_{key}.nii.gz" for key in also})
    return names


def label_interpolation(interpolation: str) -> bool:
    """True for the label interpolations (``nearest``, ``genericlabel``): read integer labels."""
    from ..resampling import LABEL_INTERPOLATIONS, check_interpolation

    return check_interpolation(interpolation) in LABEL_INTERPOLATIONS


def _stale(folder: Path, keep) -> list[Path]:
    """Outputs of an earlier run in ``folder`` that this set does not write."""
    keep = {Path(p).name for p in keep}
    return [p for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name not in keep
            and (p.name in NAMES.values() or p.name.startswith("Warped_"))]


def run_job(spec: dict) -> dict:
    """Run one job and write its output set (a Dask task); return its record.

    Never raises for the registration's failures: they come back (and are
    written) as a record with ``status: "error"``. A full disk (or file-size
    limit) is no failure of the registration: the record comes back with
    ``status: "no-space"`` and nothing is written, so a rerun runs the job again.
    """
    from ..image import as_image
    from ..io.nifti import save
    from ..io.outputs import OutputSet
    from ..io.registration_files import stage_transforms
    from ..registration import register
    from ..transforms.diffeomorphic import DiffeomorphicMap

    folder = Path(spec["folder"])
    threads = int(spec["num_threads"])
    record = {"name": spec["name"], "status": "error", "format": FORMAT,
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
            t_also = time.perf_counter()
            for key, (image, interpolation) in spec["also"].items():
                image = as_image(image, name=f"also[{key!r}]",
                                 labels=label_interpolation(interpolation))
                save(mapping.transform(image, interpolation=interpolation, num_threads=threads),
                     paths[f"warped_{key}"], outputs=outputs)
            if spec["inverse_warped"]:
                save(mapping.transform_inverse(fixed, num_threads=threads),
                     paths["inverse_warped"], outputs=outputs)
            seconds["also"] = time.perf_counter() - t_also
            seconds["write"] = time.perf_counter() - t_write
            seconds["total"] = time.perf_counter() - t0
            record.update(status="ok", seconds=seconds, matrix=result.affine.matrix.tolist(),
                          files=names, label_roles=[
                              f"warped_{key}" for key, (_, interpolation) in spec["also"].items()
                              if label_interpolation(interpolation)],
                          finished=datetime.datetime.now().isoformat(timespec="seconds"))
            outputs.add_bytes(paths["record"], json.dumps(record, indent=1))
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            _failed(folder, record, exc, stage)
        else:
            record.update(status="no-space", error=str(exc), errno=exc.errno)
    except Exception as exc:
        _failed(folder, record, exc, stage)
    return record


def _failed(folder: Path, record: dict, exc: Exception, stage: str) -> None:
    record["error"] = f"{type(exc).__name__} while {stage}: {exc}"
    record["traceback"] = traceback.format_exc()
    write_failure(folder, record)


def write_failure(folder: Path, record: dict) -> None:
    """Write a failed job's ``record.json`` alone (earlier outputs of the job removed)."""
    from ..io.outputs import OutputSet

    folder.mkdir(parents=True, exist_ok=True)
    record = dict(record, status=record.get("status") if record.get("status") != "ok"
                  else "error", files={"record": RECORD},
                  finished=datetime.datetime.now().isoformat(timespec="seconds"))
    with OutputSet(remove=_stale(folder, [RECORD]), num_threads=1) as outputs:
        outputs.add_bytes(folder / RECORD, json.dumps(record, indent=1, default=str))

